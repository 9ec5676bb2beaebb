"""The command's standard streams: its results go to stdout and its messages to stderr,
whatever the caller gave it (a stream closed, a pipe whose reader stops, an encoding that
cannot write a name)."""
from __future__ import annotations

import json
import os
import sys

from featurestore.errors import TimbremapError, one_line

__all__ = ["set_up_streams", "write_results", "write_json_array", "one_line", "error_line",
           "ReaderGone", "EXIT_READER_GONE"]

EXIT_READER_GONE = 141  # as a process SIGPIPE ends: 128 + 13


class ReaderGone(Exception):
    """stdout's reader stopped (``timbremap predict ... | head -1``): the command ends quietly,
    as a Unix filter does."""


def set_up_streams():
    """A standard stream the caller closed (``2>&-``) reads as ``/dev/null``, taking its
    descriptor back; stdout writes a character its encoding lacks as a backslash escape, as
    stderr does, rather than failing after the work is done. Called by each
    :func:`analysis.cli.main`: a Python caller's ``sys.stdout`` keeps the escapes after it."""
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:  # the lowest free descriptor: its own, 0, 1 or 2
            setattr(sys, name, open(os.devnull, mode))
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")


def write_results(*lines):
    """Write ``lines`` to stdout, each ending in a newline, at once.

    Raises
    ------
    ReaderGone
        The pipe's reader stopped; stdout is pointed at ``/dev/null`` so that nothing more
        is tried there.
    TimbremapError
        stdout cannot be written (a full disk), naming it.
    """
    try:
        sys.stdout.write("".join(f"{line}\n" for line in lines))
        sys.stdout.flush()
    except BrokenPipeError:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, sys.stdout.fileno())
        except (OSError, ValueError):  # a stream without a descriptor of its own
            pass
        finally:
            os.close(null)
        raise ReaderGone() from None
    except OSError as err:
        raise TimbremapError(f"stdout: cannot be written ({err.strerror or err})") from None


def write_json_array(objects):
    """Write ``objects`` (JSON-able, such as dicts) to stdout as one JSON array, each object on
    a line of its own as it comes (``[{...}``, ``,{...}``, ..., ``]``). The array is closed
    also when the iteration is stopped (Ctrl-C, SIGTERM: ``[]`` before any object), so that
    what was written parses; an error before the first object writes nothing. Raises what
    :func:`write_results` raises."""
    started = False
    try:
        for obj in objects:
            write_results(("," if started else "[") + json.dumps(obj))
            started = True
    except KeyboardInterrupt:
        write_results("]" if started else "[]")
        raise
    except BaseException:
        if started:
            write_results("]")
        raise
    write_results("]" if started else "[]")


def error_line(err: Exception) -> str:
    """The text of an error for its one line: an ``OSError`` naming a file as ``FILE: what``
    (``/store/m: Read-only file system``), not Python's ``[Errno 30] ...: 'FILE'``."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{one_line(str(err.filename))}: {err.strerror}" + (
            f" (to {one_line(str(err.filename2))})" if err.filename2 is not None else "")
    return str(err).strip()
