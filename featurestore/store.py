"""The read side of a feature store: its split files, found and opened with clear errors
(random batches of notes by index: :class:`featurestore.reader.SpectraReader`).

A store is a folder with one HDF5 file per split (``train.h5``, ``valid.h5``, ``test.h5``);
:mod:`featurestore.schema` lists what each file holds. A store on object storage is named by
its URL (``s3://bucket/store``) and read through fsspec (:mod:`featurestore.remote`), never
written. ``read_params`` and ``read_stats``
(from the schema) are here too, for those who read a store.
"""
from __future__ import annotations

import errno
import logging
import os
import re
from pathlib import Path
from typing import Optional

import h5py

import featurestore.remote as remote
from .errors import StoreError, not_a_file
from .files import locked_by_another, real_path
from .commit import finish_commit
from .nsynth import SPLITS
from .schema import CONTENT_DIGEST, SPECTRA, read_params, read_stats
from .splitcheck import check_split

__all__ = ["split_path", "store_id", "store_name", "require_store", "no_splits", "open_split",
           "open_file", "read_params", "read_stats", "store_splits", "StoreError",
           "held_by_another", "in_use", "never_written", "not_writable", "errnos",
           "unfinished_splits"]

log = logging.getLogger(__name__)

SUFFIX = ".h5"


def split_path(store, split: str):
    """``STORE/SPLIT.h5`` (a :class:`pathlib.Path`, or a URL for a store named by one);
    ``split`` is a name (``train``, ``valid``, ``test``, ...), not a path."""
    if not isinstance(split, str) or not split or Path(split).name != split or \
            split.startswith("."):
        raise StoreError(f"split must be a name such as train, valid or test, not {split!r}")
    if not isinstance(store, (str, os.PathLike)):
        raise StoreError(f"store must be a folder's path or a URL, not {store!r}")
    if remote.is_url(store):
        return remote.join(store, f"{split}{SUFFIX}")
    return Path(store) / f"{split}{SUFFIX}"


def store_id(store) -> str:
    """A store as results record it: its URL, or its absolute path."""
    return store if remote.is_url(store) else str(real_path(store))


def store_name(store) -> str:
    """The last part of a store's path or URL (``demo/store`` -> ``store``)."""
    return str(store).rstrip("/").rsplit("/", 1)[-1] if remote.is_url(store) \
        else real_path(store).name


def store_splits(store) -> list:
    """The finished splits of a store, in NSynth order then any others by name (a hidden
    file, such as a temporary copy, is none); :class:`StoreError` for a store folder that
    cannot be listed."""
    if remote.is_url(store):
        found = [name[:-len(SUFFIX)] for name in remote.list_files(store, SUFFIX)]
    else:
        try:  # a glob of a folder that cannot be listed finds nothing, without a word
            if Path(store).is_dir():
                os.scandir(store).close()
        except OSError as err:
            raise StoreError(f"{store}: the store folder cannot be read ({err.strerror or err})"
                             ) from None
        finish_commit(Path(store))
        found = sorted(p.stem for p in Path(store).glob(f"*{SUFFIX}"))
    found = [name for name in found if not name.startswith(".")]
    return [s for s in SPLITS if s in found] + [s for s in found if s not in SPLITS]


def content_digests(store, *, warn: bool = True) -> dict:
    """``{split: content digest}`` of a store's finished splits: a model records them, and
    ``evaluate`` and ``train --resume`` tell when they changed. Splits built before splits
    recorded one are left out, with a warning unless not ``warn``."""
    found, splits = {}, store_splits(store)
    for split in splits:
        with open_split(store, split) as f:
            if CONTENT_DIGEST in f.attrs:
                found[split] = str(f.attrs[CONTENT_DIGEST])
    old = [split for split in splits if split not in found]
    if old and warn:
        log.warning("%s: its %s built before splits recorded their content, so a model cannot "
                    "tell when its notes change (evaluate's warning, train --resume's refusal): "
                    "build it again with --overwrite to record it", store,
                    " and ".join(old) + (" splits were" if len(old) > 1 else " split was"))
    return found


def never_written(path) -> StoreError:
    """The error for writing into a store on object storage."""
    return StoreError(f"{path}: a store on object storage is read, never written; write results "
                      f"into a local copy of the store")


def in_use(path, doing: str) -> StoreError:
    """The error for a split another process holds: ``doing`` is 'written by' (for a reader)
    or 'open in' (for a writer)."""
    return StoreError(f"{path}: {doing} another program (HDF5 lets a file be written only while "
                      f"no one else has it open); wait for it or close it there, and try again")


def not_writable(path) -> StoreError:
    """The error for results into a split that cannot be written."""
    return StoreError(f"{path}: not writable (read-only file or file system), cannot write "
                      f"results into it")


def errnos(err: OSError) -> set:
    """``err``'s errno and those HDF5 gives only in its message (``errno = N``)."""
    return {err.errno, *map(int, re.findall(r"errno = (\d+)", str(err)))}


def held_by_another(err: OSError) -> bool:
    """Whether h5py could not open a file because another process holds HDF5's lock on it."""
    return errno.EAGAIN in errnos(err)


def require_store(store, *, local_for: Optional[str] = None) -> None:
    """Refuse a ``store`` that is neither a URL on object storage nor a local folder.

    Parameters
    ----------
    store : str or pathlib.Path
    local_for : str, optional
        A command that needs a local store: a URL is refused too, naming it.

    Raises
    ------
    StoreError
        Naming the path, and whether it is missing, a file or a URL.
    """
    if remote.is_url(store):
        if local_for:
            raise StoreError(f"{store}: {local_for} needs a local store (a store on object "
                             f"storage is read by inspect, train, evaluate and embed --into)")
        return
    if Path(store).is_dir():
        return
    what = ("no such store folder" if not Path(store).exists() else
            f"is a split file, not a store: give the store, its folder "
            f"{real_path(store).parent}" if _is_split_file(Path(store)) else
            "is a file, not a store (a store is a folder of split files)")
    raise StoreError(f"{store}: {what}")


def _is_split_file(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file holding ``/spectra`` (a split file, not a model's);
    only a regular file is opened (a pipe would wait for a writer)."""
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return SPECTRA in f
    except (OSError, ValueError):
        return False


def unfinished_splits(store) -> list:
    """The files of a build that has not finished in a store folder.

    Parameters
    ----------
    store : str or pathlib.Path
        A store folder (a URL has none).

    Returns
    -------
    list of str
        The names of its ``SPLIT.h5.partial`` files, sorted (a hidden ``.SPLIT.h5.partial`` is
        a copy that ``embed`` or ``tsne`` writes results into, not a build's).
    """
    return [] if remote.is_url(store) else sorted(
        p.name for p in Path(store).glob(f"*{SUFFIX}.partial") if not p.name.startswith("."))


def no_splits(store) -> StoreError:
    """The error for a store folder (or URL) that holds no split file: not a store (a model
    folder, named as such), or one whose build has not finished a split (named, and whether
    it is being written now)."""
    models = [] if remote.is_url(store) or not Path(store).is_dir() else sorted(
        p.name for p in Path(store).glob("*.keras"))
    return StoreError(f"{store}: no split files (*.h5) in this folder"
                      f"{_unfinished(store, unfinished_splits(store))}" + (
                          f"; it holds {models[0]}: a model folder? Give the store folder "
                          f"(the model's config.json names the one it was trained on)"
                          if models else ""))


def _unfinished(store, partials: list) -> str:
    """What a message adds of a build's ``partials`` in ``store``: whether one is writing
    them now or a stopped one left them (empty text for none)."""
    unfinished = ", ".join(partials)
    if unfinished and locked_by_another(store):
        return f"; a build is writing {unfinished} now: wait for it to finish"
    return f"; an unfinished build left {unfinished} (run build again to resume)" if unfinished \
        else ""


def open_split(store, split: str, mode: str = "r") -> h5py.File:
    """Open ``STORE/SPLIT.h5``, raising :class:`StoreError` with a clear message if absent."""
    path = split_path(store, split)
    if remote.is_url(store):
        have = store_splits(store)
        there = split in have
    else:
        require_store(store)
        finish_commit(Path(store))  # the renames of a build --add a kill interrupted
        there = path.is_file()
        have = None if there else store_splits(store)
    if not there:
        if not remote.is_url(store) and path.exists():  # a pipe would block the open
            raise StoreError(f"{not_a_file(path)}; a split is an HDF5 file")
        if not have:
            raise no_splits(store)
        partial = [name for name in unfinished_splits(store) if name == f"{path.name}.partial"]
        hint = (f"; give '{split[:-len(SUFFIX)]}', without {SUFFIX}"
                if split.endswith(SUFFIX) and split[:-len(SUFFIX)] in have else "")
        raise StoreError(f"{path}: the store has no '{split}' split (splits present: "
                         f"{', '.join(have)}){hint}{_unfinished(store, partial)}")
    f = open_file(path, mode)
    try:
        check_split(f)
    except StoreError:
        f.close()
        raise
    return f


def open_file(path: Path, mode: str) -> h5py.File:
    """``h5py.File(path, mode)``, with a :class:`StoreError` that says what to do when it
    cannot be opened.

    HDF5 lets one process write a file while no other has it open: a writer (``embed``,
    ``tsne``) holds an exclusive lock and every reader a shared one, so a reader of a file
    being written, or a writer of a file being read, is refused here instead of seeing half of
    a change.
    """
    if remote.is_url(path):
        if mode != "r":
            raise never_written(path)
        fileobj = remote.open_binary(path)
        try:
            return h5py.File(fileobj, "r")
        except (OSError, *remote.client_errors()) as err:
            fileobj.close()
            if type(err) is OSError and err.errno is None:  # h5py's: no HDF5 file, or cut short
                raise StoreError(f"{path}: not a readable HDF5 file ({err})") from None
            # the storage's (access denied, connection lost), passed on by h5py
            raise remote.cannot_read(path, err) from None
    try:
        return h5py.File(path, mode)
    except OSError as err:
        if held_by_another(err):
            raise in_use(path, "written by" if mode == "r" else "open in") from None
        if mode != "r" and errnos(err) & {errno.EACCES, errno.EROFS}:
            raise not_writable(path) from None
        if errno.EACCES in errnos(err):
            raise StoreError(f"{path}: cannot be read (permission denied)") from None
        if errno.ENOENT in errnos(err) and not Path(path).exists():
            raise StoreError(f"{path}: no such file") from None
        raise StoreError(f"{path}: not a readable HDF5 file ({err})") from None
