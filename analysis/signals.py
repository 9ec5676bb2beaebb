"""SIGTERM ends a command as Ctrl-C does (``kill``, ``timeout``, a scheduler's stop), and so
does SIGHUP (its terminal closed) where nothing set it aside (``nohup`` ignores it): what it
was writing is removed, or left to resume, as after an interrupt, and it exits 128 + the
signal's number (143, 129)."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

__all__ = ["Terminated", "terminated_as_interrupted", "exit_status", "stopped_by"]

#: The signals that end a command as Ctrl-C does, and what it says of each.
_STOPS = {signal.SIGTERM: "terminated", signal.SIGHUP: "hung up (SIGHUP: its terminal closed)"}


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``signum``) arrived: a :class:`KeyboardInterrupt`, so every
    clean-up an interrupt runs runs."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__()
        self.signum = signum


def _terminated(signum, frame):
    raise Terminated(signum)


@contextlib.contextmanager
def terminated_as_interrupted() -> Iterator[None]:
    """Raise :class:`Terminated` in the main thread when SIGTERM, or SIGHUP where its handler
    is the default one, arrives during the block; the handlers before it are put back after.
    Off the main thread (where no handler can be set) the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _terminated) for signum in _STOPS
                if signum == signal.SIGTERM or signal.getsignal(signum) is signal.SIG_DFL}
    try:
        yield
    finally:  # None: a handler set outside Python, which cannot be put back
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def exit_status(stop: KeyboardInterrupt) -> int:
    """A shell's status for a process that a signal ended: 128 + the signal's number."""
    return 128 + (stop.signum if isinstance(stop, Terminated) else signal.SIGINT)


def stopped_by(stop: KeyboardInterrupt) -> str:
    """What the command says as it stops: ``terminated`` (SIGTERM), ``hung up ...`` (SIGHUP)
    or ``interrupted``."""
    return _STOPS[stop.signum] if isinstance(stop, Terminated) else "interrupted"
