"""Files written whole or not at all: under a temporary name beside the destination, then
renamed over it (``os.replace`` is atomic on POSIX and Windows), so a reader, or a run after a
``kill -9``, finds the previous file or the new one, never half of one."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Iterator

__all__ = ["replaced", "atomic_write_text", "copy_file"]


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


#: What ``copy_file_range`` answers where it cannot copy these two files (then an ordinary
#: copy does).
NO_RANGE_COPY = (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF,
                 errno.EPERM)


def copy_file(src, dst):
    """Write ``dst``, a copy of ``src``'s bytes (``copy_file_range``: shared extents where the
    file system has them, XFS and Btrfs, so that the copy takes neither time nor room until
    one of the two is written; elsewhere, the bytes copied in the kernel)."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        left = os.fstat(fin.fileno()).st_size
        try:
            while left > 0:
                done = os.copy_file_range(fin.fileno(), fout.fileno(), left)
                if done == 0:
                    break
                left -= done
        except (AttributeError, OSError) as err:  # none here, or not between these files
            if isinstance(err, OSError) and err.errno not in NO_RANGE_COPY:
                raise
            fin.seek(0)
            fout.seek(0)
            fout.truncate()
            shutil.copyfileobj(fin, fout, 2 ** 24)
