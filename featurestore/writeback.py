"""Writing into a finished split file, whole or not at all: the analysis results of ``embed``
and ``tsne``, and the train split's statistics that a build gives a split it keeps.

HDF5 updates a file in place, without a journal: a ``kill -9`` or a full disk in the middle of
its metadata writes can leave a file it no longer opens. So results never go into the split
file itself. :func:`results_file` copies it to ``.SPLIT.h5.partial`` beside it, the command
writes its results into the copy, and the copy is renamed over the split once closed
(``os.replace`` is atomic): a reader, or a run after a kill, finds the old split or the new one,
never half of one. The split is only read, under HDF5's lock, which keeps every other program,
reader or writer, out of it until the new file is in its place. :func:`write_result` never
replaces a dataset ``build`` writes.
"""
from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Tuple

import h5py
import numpy as np

from . import schema
from .files import (copy_file, exclusive_lock, free_room, hdf5_locks_off, real_path, replaced,
                    size_text, temporary)
from .remote import is_url
from .splitcheck import check_split
from .splitfile import give_back_room
from .store import (StoreError, errnos, in_use, never_written, not_writable, open_split,
                    split_path)

__all__ = ["write_result", "results_file", "check_writable"]

#: Asked free beyond the split's copy and the results' own bytes, for HDF5's metadata.
METADATA_BYTES = 1 << 20

#: Datasets a crashed write of an earlier version could leave in a split file.
LEFTOVER_PREFIX = ".partial-"

#: The errors of a full disk or quota.
FULL = {errno.ENOSPC, errno.EDQUOT}

#: Why results need room for a copy of their split, for the message that asks for it.
WHY = "a copy of the split with them is written beside it, then renamed over it"


def write_result(f: h5py.File, name: str, *, shape, blocks: Iterable[np.ndarray],
                 attrs: Mapping, dtype=np.float32) -> h5py.Dataset:
    """Write ``/name`` from consecutive row blocks, replacing what was there.

    ``f`` is a file written whole or not at all (:func:`results_file`, or a new file renamed
    into place), so a write that fails leaves nothing the file's readers see.

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

    Raises
    ------
    ValueError
        ``name`` is a dataset the build writes, or the blocks do not fill ``shape[0]`` rows.
    """
    if name in schema.BUILT:
        raise ValueError(f"/{name} is written by the build and cannot be replaced")
    if name in f:  # first, so that its room is used again
        del f[name]
    ds = f.create_dataset(name, shape=shape, dtype=dtype)
    start = 0
    for block in blocks:
        ds[start:start + len(block)] = block
        start += len(block)
    if start != shape[0]:
        raise ValueError(f"/{name}: {start} rows written, expected {shape[0]}")
    ds.attrs.update(dict(attrs))
    return ds


def check_writable(store, split: str, nbytes: int = 0, *, what: str = "the results") -> Path:
    """Refuse, before any work, a split whose results could not be written; the file that
    holds it (a linked split's target).

    Parameters
    ----------
    store : str or pathlib.Path
    split : str
    nbytes : int
        What the results will add, for the check of free space.
    what : str
        What is written, as the messages name it.

    Raises
    ------
    StoreError
        What :func:`open_split` raises (no such split, another program writes it, ...), another
        program that has it open, a file or folder that cannot be written, or not enough free
        space for a copy of the split and the results.
    """
    path = split_path(store, split)
    if is_url(store):
        raise never_written(path)
    with open_split(store, split):
        pass
    real = real_path(path)
    if not os.access(real, os.W_OK):
        raise not_writable(path)
    if not os.access(real.parent, os.W_OK | os.X_OK):
        raise StoreError(f"{real.parent}: the folder cannot be written, and {what} of "
                         f"{path.name} are written into a copy of it there, then renamed over it")
    with _locked(path, real):  # no other program has it open
        pass
    need = real.stat().st_size + nbytes + METADATA_BYTES
    free = free_room(temporary(real))  # a copy a killed run left is removed first
    if free < need:
        raise StoreError(f"{path}: not enough free space for {what} ({size_text(need)} "
                         f"needed: {WHY}; {size_text(free)} free); the split is as it was: make "
                         f"room and run it again")
    return real


def split_version(store, split: str) -> Tuple[int, int, int, int]:
    """The split file as it is now: device, inode, size and modification time (ns) of the file
    that holds it. Every rewrite (``build``, ``embed``, ``tsne``: each renames a new file
    in) changes it; take it before reading what results are computed from."""
    st = os.stat(real_path(split_path(store, split)))
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@contextlib.contextmanager
def results_file(store, split: str, nbytes: int, *,
                 version: Optional[Tuple[int, int, int, int]] = None,
                 what: str = "the results") -> Iterator[h5py.File]:
    """A copy of ``STORE/SPLIT.h5`` open for writing, renamed over the split when the block
    ends without an exception (and removed when it raises), without the room of results
    removed when it is much (:func:`~featurestore.splitfile.give_back_room`).

    The split is never written: it is only read, under an exclusive lock (``flock``, the lock
    HDF5 takes), so no other program opens it, to read or to write, until the new file is in
    its place.

    Parameters
    ----------
    store : str or pathlib.Path
    split : str
    nbytes : int
        What the results will add, for the check of free space before anything is copied.
    version : tuple, optional
        :func:`split_version` as the results' data was read: a split rewritten since is
        refused (results of other notes, or of other embeddings, are not written into it).
    what : str
        What is written, as the messages name it.

    Raises
    ------
    StoreError
        What :func:`check_writable` raises (the split is as it was), a split rewritten since
        ``version``, or a disk that filled while the copy was written (the copy is removed).
    """
    path = split_path(store, split)
    real = check_writable(store, split, nbytes, what=what)
    with _locked(path, real), replaced(real, durable=True) as tmp:
        if version is not None and split_version(store, split) != version:
            raise StoreError(f"{path}: another program rewrote it (a build, embed or "
                             f"tsne) while these results were computed from it; it is as that "
                             f"program left it: run this command again")
        temporary(tmp).unlink(missing_ok=True)  # left by a killed give_back_room
        try:
            copy_file(real, tmp)
            with h5py.File(tmp, "r+") as f:
                check_split(f)
                for leftover in [k for k in f if k.startswith(LEFTOVER_PREFIX)]:
                    del f[leftover]
                yield f
            give_back_room(tmp, shown=path)  # that of results replaced, when it is much
        except OSError as err:
            if not errnos(err) & FULL:
                raise
            raise StoreError(f"{path}: the disk (or quota) filled while {what} were "
                             f"written ({WHY}); the split is as it was: make room and run it "
                             f"again") from None


def _locked(path: Path, real: Path):
    """Hold HDF5's lock on ``real`` for writing (not where HDF5's locks are switched off, or
    the file system has none)."""
    if hdf5_locks_off():
        return contextlib.nullcontext()
    return exclusive_lock(real, lambda: in_use(path, "open in"))
