"""Writing analysis results back into a split file, safely.

A result is written under a temporary name (``/.partial-NAME``), filled, given its attrs, and
only then moved to ``/NAME`` (replacing the old one), so a crash mid-write never leaves a
dataset that looks complete; leftovers of a crashed write are removed by the next one. The
datasets written by ``build`` are never touched.

A split is opened for results with :func:`results_file`, which first reserves on disk the space
the results will take: HDF5 updates a file in place, and a disk that fills in the middle of its
writes leaves a file it can no longer read. Within reserved space its writes cannot fail for
lack of room; without it the command stops before touching the file, saying how much is needed.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from typing import Iterable, Iterator, Mapping

import h5py
import numpy as np

from featurestore import schema
from featurestore.store import StoreError, open_split, split_path

__all__ = ["write_result", "results_file"]

#: Reserved beyond the results' own bytes, for HDF5's metadata (headers, attributes, indexes).
METADATA_BYTES = 1 << 20

PREFIX = ".partial-"


def write_result(f: h5py.File, name: str, *, shape, blocks: Iterable[np.ndarray],
                 attrs: Mapping, dtype=np.float32) -> h5py.Dataset:
    """Write ``/name`` from consecutive row blocks, atomically within the file.

    Parameters
    ----------
    f : h5py.File
        Open for writing.
    name : str
    shape : tuple
        Full shape; the blocks fill it along axis 0, in order.
    blocks : iterable of np.ndarray
    attrs : mapping
        Attributes of the finished dataset.
    """
    if name in schema.BUILT:
        raise ValueError(f"/{name} is written by the build and cannot be replaced")
    for leftover in [k for k in f if k.startswith(PREFIX)]:
        del f[leftover]
    temporary = PREFIX + name
    ds = f.create_dataset(temporary, shape=shape, dtype=dtype)
    start = 0
    for block in blocks:
        ds[start:start + len(block)] = block
        start += len(block)
    if start != shape[0]:
        del f[temporary]
        raise ValueError(f"/{name}: {start} rows written, expected {shape[0]}")
    ds.attrs.update(dict(attrs))
    if name in f:
        del f[name]
    f.move(temporary, name)
    f.flush()
    return f[name]


@contextlib.contextmanager
def results_file(store, split: str, nbytes: int) -> Iterator[h5py.File]:
    """``open_split(store, split, 'r+')``, with room for ``nbytes`` of results reserved first.

    The room is allocated after the file's end (``posix_fallocate``) before HDF5 opens it;
    HDF5 places new data at the end of what it uses and cuts the file back to that when it
    closes it, so what was not needed is given back.

    Raises
    ------
    StoreError
        Not enough free space (nothing was written), or what :func:`open_split` raises.
    """
    path = split_path(store, split)
    size = path.stat().st_size if path.is_file() else None
    reserved = size is not None and _reserve(path, size, nbytes + METADATA_BYTES)
    try:
        f = open_split(store, split, "r+")
    except BaseException:
        if reserved:  # refused (another program has it, ...): give the room back
            os.truncate(path, size)
        raise
    with f:
        yield f


def _reserve(path, size: int, nbytes: int) -> bool:
    """Allocate ``nbytes`` after the first ``size`` bytes of ``path``; whether it was done
    (not where the file cannot be written: opening it says why, or where the file system
    cannot allocate ahead: then its free space is checked instead)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        os.posix_fallocate(fd, size, nbytes)
        return True
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        os.ftruncate(fd, size)  # a failed allocation can leave part of it
        free = shutil.disk_usage(path.parent).free
        if err.errno in (errno.EOPNOTSUPP, errno.EINVAL) and free >= nbytes:
            return False
        raise StoreError(f"{path}: not enough free space for the results ({nbytes / 2**20:.1f} "
                         f"MiB needed, {free / 2**20:.1f} MiB free); nothing was written: make "
                         f"room and run it again") from None
    finally:
        os.close(fd)
