"""SIGTERM ends a command as Ctrl-C does (``kill``, ``timeout``, a scheduler's stop): what it
was writing is removed, or left to resume, as after an interrupt, and it exits 143."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

__all__ = ["Terminated", "terminated_as_interrupted", "exit_status", "stopped_by"]


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: a :class:`KeyboardInterrupt`, so every clean-up an interrupt runs
    runs."""


def _terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def terminated_as_interrupted() -> Iterator[None]:
    """Raise :class:`Terminated` in the main thread when SIGTERM arrives during the block; the
    handler before it is put back after. Off the main thread (where no handler can be set)
    the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:  # None: a handler set outside Python, which cannot be put back
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def exit_status(stop: KeyboardInterrupt) -> int:
    """A shell's status for a process that a signal ended: 128 + SIGTERM or SIGINT."""
    return 128 + (signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)


def stopped_by(stop: KeyboardInterrupt) -> str:
    """What the command says as it stops: ``terminated`` (SIGTERM) or ``interrupted``."""
    return "terminated" if isinstance(stop, Terminated) else "interrupted"
