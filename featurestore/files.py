"""Files written whole or not at all: under a temporary name beside the destination, then
renamed over it (``os.replace`` is atomic on POSIX and Windows), so a reader, or a run after a
``kill -9``, finds the previous file or the new one, never half of one."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

__all__ = ["replaced", "atomic_write_text"]


@contextlib.contextmanager
def replaced(path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success it replaces ``path``, on
    an exception it is removed.

    Parameters
    ----------
    path : str or pathlib.Path
        The destination.
    suffix : str
        Ending the temporary name must have (some writers insist: ``'.keras'``,
        ``'.weights.h5'``); the name is ``.NAME.partial`` plus it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path, text: str):
    """Write ``text`` (UTF-8) to ``path`` whole or not at all."""
    with replaced(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
