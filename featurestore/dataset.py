"""A split of a store as a map-style dataset that any framework's loader can use
(:class:`SplitDataset`): it opens its file lazily, in each process that reads it."""
from __future__ import annotations

import numbers
import os
import reprlib
import weakref
from pathlib import Path
from typing import Optional, Sequence, Tuple

import h5py
import numpy as np

import featurestore.remote as remote
from .errors import InputError, StoreError
from .schema import CONTENT_DIGEST, LABELS, NOT_PER_NOTE, SPECTRA, note_datasets
from .reader import SpectraReader
from .store import open_split, split_path

__all__ = ["SplitDataset"]


def _close(pid: int, *handles):
    """Close the handles process ``pid`` opened (in a child forked from it: none)."""
    if os.getpid() == pid:
        for handle in handles:
            if handle is not None:
                handle.close()


class SplitDataset:
    """One split of a store, read by index: ``len(ds)``, ``ds[i]``, ``ds[[i, j, ...]]``.

    The file is opened the first time a process reads an item, and again in any other process
    the dataset reaches, by pickling (``spawn``, ``forkserver``: a PyTorch ``DataLoader``'s
    workers, a ``multiprocessing`` pool) or by ``fork`` (an HDF5 file handle must not cross a
    fork: the child opens its own). So hand the dataset to the workers as it is; nothing needs
    to be opened in a ``worker_init_fn``.

    Parameters
    ----------
    store : str or pathlib.Path
        The store folder (a relative path is from the working folder when the dataset is
        made, whatever it is later), or its URL on object storage (:mod:`featurestore.remote`).
    split : str
        ``'train'``, ``'valid'``, ``'test'``, or another split the store has.
    fields : sequence of str
        Datasets of the split file to read for each item, in this order (default
        ``('spectra', 'labels')``): any dataset whose first axis is the notes, e.g. ``names``,
        ``pitch``, ``instrument``, ``source_folder``, ``embeddings``, or a manifest's column
        ``metadata/COLUMN`` (a leading ``/``, as h5py takes a path, is dropped).
    method : {'mmap', 'h5py'}
        How ``spectra`` are read (:class:`featurestore.reader.SpectraReader`).

    Attributes
    ----------
    path : pathlib.Path or str
        The split file (its URL for a store named by one).
    fields : tuple of str
    shapes : dict of str to tuple
        Each field's shape for one note (``()`` for a scalar).

    Examples
    --------
    >>> ds = SplitDataset("store", "train")                   # doctest: +SKIP
    >>> x, y = ds[0]            # float16 (frames, bins) as stored, int32 family
    >>> xs, ys = ds[[3, 1, 4]]  # (3, frames, bins), (3,)
    """

    def __init__(self, store, split: str, *, fields: Sequence[str] = (SPECTRA, LABELS),
                 method: str = "mmap"):
        if method not in ("mmap", "h5py"):
            raise InputError(f"method must be 'mmap' or 'h5py', got {method!r}")
        if isinstance(fields, str) or not fields or not all(isinstance(name, str)
                                                             for name in fields):
            raise InputError(f"fields must be a non-empty sequence of dataset names, "
                             f"got {fields!r}")
        self.path = split_path(store, split)  # both checked
        if not remote.is_url(store):  # a relative one would follow os.chdir to another store
            store = Path(store).absolute()
            self.path = store / self.path.name
        self._store, self._split = store, split
        self.fields = tuple(name.lstrip("/") for name in fields)  # '/labels' as in h5py
        self.method = method
        with open_split(store, split) as f:
            notes = note_datasets(f)
            if missing := [name for name in self.fields if name not in notes]:
                raise StoreError(f"{self.path}: {_not_per_note(f, missing[0])} (its per-note "
                                 f"datasets: {', '.join(sorted(notes))})")
            self.shapes = {name: tuple(f[name].shape[1:]) for name in self.fields}
            self._strings = {name for name in self.fields
                             if h5py.check_string_dtype(f[name].dtype) is not None}
            self._content = self._content_of(f)
        self._n = int(self._content[0])
        self._opened = None  # (pid, SpectraReader or None, h5py.File), in the process using it
        self._watch = None  # of the object the other fields are read from, in that process

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):
        """The fields of note ``index`` (an int, negative from the end), or of notes
        ``index`` (a sequence or array of ints, a slice, or a mask of ``len(ds)`` bools)
        stacked in that order. Consecutive notes (``ds[range(a, b)]``, ``ds[a:b]``) are one
        read of the file.

        Returns
        -------
        tuple
            One value per field: an array of the field's shape for one note (a scalar or
            ``str`` for scalar fields), or stacked on a first axis for several notes.
        """
        one = not isinstance(index, slice) and np.ndim(index) == 0  # 3, np.int64(3), np.array(3)
        rows = self._rows(index)
        reader, f = self._open()
        values = []
        for name in self.fields:
            if name == SPECTRA:
                value = reader.batch(rows, labels=False)  # which watches its object itself
            else:
                try:
                    value = _read_rows(f[name], rows)
                except (OSError, RuntimeError, ValueError, KeyError):
                    if self._watch is not None:  # a replaced object: said as such
                        self._watch.check(now=True)
                    raise
                if name in self._strings:
                    value = np.array([v.decode("utf-8") for v in value], dtype=object)
            values.append(value[0] if one else value)
        if self._watch is not None:  # the other fields, read from an object on the storage
            self._watch.check()
        return tuple(values)

    def _rows(self, index) -> np.ndarray:
        """``index`` as an int64 array of rows in ``[0, len)``."""
        if isinstance(index, slice):
            return np.arange(self._n, dtype=np.int64)[index]
        rows = np.atleast_1d(np.asarray(index))
        if rows.ndim == 1 and rows.size == 0:  # [] or range(0): no notes
            return np.zeros(0, np.int64)
        if rows.dtype != bool and isinstance(index, (list, tuple)) and any(
                isinstance(i, (bool, np.bool_)) for i in index):  # numpy makes True a 1
            raise TypeError(f"index must be ints or a mask of bools, not both, got "
                            f"{reprlib.repr(index)}")
        if rows.dtype == bool and np.ndim(index) == 1:  # a mask: the notes it is true for
            if len(rows) != self._n:
                raise IndexError(f"{self.path}: a mask of {len(rows)} values for {self._n} "
                                 f"notes")
            return np.flatnonzero(rows)
        if rows.dtype.kind == "O" and rows.ndim == 1 and all(
                isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in rows):
            if any(not -self._n <= i < self._n for i in rows):  # beyond int64 too
                raise self._out_of_range(rows)
            rows = rows.astype(np.int64)
        if rows.dtype.kind not in "iu" or rows.ndim != 1:
            raise TypeError(f"index must be an int, a sequence of ints, a mask of bools or a "
                            f"slice, got {reprlib.repr(index)}")
        if rows.dtype.kind == "u" and rows.max() >= self._n:  # before int64 wraps a uint64
            raise self._out_of_range(rows)
        if rows.size and (rows.min() < -self._n or rows.max() >= self._n):
            raise self._out_of_range(rows)
        rows = rows.astype(np.int64)
        return np.where(rows < 0, rows + self._n, rows)

    def _out_of_range(self, rows: np.ndarray) -> IndexError:
        """The error of an index with a row outside ``-len..len-1``, naming the first."""
        at = next(k for k, i in enumerate(rows) if not -self._n <= i < self._n)
        where = f" (item {at} of {len(rows)})" if len(rows) > 1 else ""
        return IndexError(f"{self.path}: index {rows[at]}{where} out of range for "
                          f"{self._n} notes")

    def _open(self) -> Tuple[Optional[SpectraReader], Optional[h5py.File]]:
        """This process's spectra reader and file (for the other fields), each opened on first
        use, and again after a fork. They are closed by :meth:`close`, when the dataset is
        collected, or as the process exits before Python tears its modules down (an HDF5 file
        on a Python file object, as a store URL is, must not outlive them: a ``spawn``
        worker's exit would crash)."""
        if self._opened is None or self._opened[0] != os.getpid():
            self._opened = None  # a parent's handles are never used (nor closed) here
            reader = (SpectraReader(self.path, self.method) if SPECTRA in self.fields
                      else None)
            others = set(self.fields) - {SPECTRA}
            self._watch = None  # of an object on the storage the other fields are read from
            if others and remote.is_url(self.path):
                self._watch = reader.watch if reader is not None else remote.VersionWatch(
                    self.path)
            f = open_split(self._store, self._split) if others else None
            opened = (os.getpid(), reader, f)
            try:  # on the file the items are read from
                self._check_unchanged(f if f is not None else reader.file)
            except StoreError:
                _close(*opened)
                raise
            self._opened = opened
            self._closer = weakref.finalize(self, _close, *self._opened)
        return self._opened[1], self._opened[2]

    def _content_of(self, f: h5py.File) -> tuple:
        """What the items depend on: the number of notes, the split's content digest (their
        names, labels, files), the fields' shapes and dtypes, the split's attributes (how
        and when it was built) and the fields' (the model whose results they are, ...)."""
        return (int(f[SPECTRA].shape[0]), str(f.attrs.get(CONTENT_DIGEST, "")),
                tuple((name, f[name].shape, str(f[name].dtype)) if name in f else (name,)
                      for name in self.fields),
                _attributes(f), tuple(_attributes(f[name]) if name in f else ()
                                      for name in self.fields))

    def _check_unchanged(self, f: h5py.File):
        """Refuse a split file that is no longer the one this dataset was made from (a
        ``build --add`` grew it, ``--overwrite`` built it again, its results were written
        again): its length, which row is which note, or what a row holds would not be this
        dataset's."""
        now = self._content_of(f)
        if now != self._content:
            raise StoreError(f"{self.path}: changed since this dataset was made ("
                             f"{_what_changed(self._content, now)}; built again, grown by build "
                             f"--add, or given other results): make a new SplitDataset")

    def close(self):
        """Close this process's handles (the next read opens them again)."""
        if self._opened is not None and self._opened[0] == os.getpid():
            self._closer()
        self._opened = None

    def __enter__(self) -> "SplitDataset":
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_opened"] = state["_watch"] = None  # the path travels, not the open file
        state.pop("_closer", None)
        return state

    def __repr__(self) -> str:
        return (f"SplitDataset({str(self._store)!r}, {self._split!r}, "
                f"fields={self.fields!r}) with {self._n} notes")


def _attributes(obj) -> tuple:
    """An HDF5 object's attributes as comparable values, in name order."""
    def plain(value):
        value = np.asarray(value)
        return (value.dtype.str, value.shape, value.tobytes()) if value.dtype.kind != "O" \
            else repr(value.tolist())
    return tuple((name, plain(obj.attrs[name])) for name in sorted(obj.attrs))


def _what_changed(then: tuple, now: tuple) -> str:
    """What differs between two :meth:`SplitDataset._content_of` results, in words."""
    n, digest, shapes, attrs, field_attrs = now
    gone = [name for name, *rest in shapes if not rest]
    if gone:
        return f"no /{', /'.join(gone)} any more"
    if n != then[0]:
        return f"{then[0]} notes then, {n} now"
    if digest != then[1]:
        return "other notes"
    other = [name for (name, *rest), was in zip(shapes, then[2]) if (name, *rest) != was]
    if other:
        return f"/{', /'.join(other)} of another shape or type"
    if attrs != then[3]:
        return f"its attributes differ: {', '.join(_differing(then[3], attrs))}"
    return "; ".join(f"the attributes of /{name} differ: {', '.join(_differing(was, mine))}"
                     for name, was, mine in zip((name for name, *_ in shapes), then[4],
                                                field_attrs) if was != mine)


def _differing(then: tuple, now: tuple) -> list:
    """The names of the attributes that differ between two :func:`_attributes` results."""
    then, now = dict(then), dict(now)
    return [name for name in sorted(set(then) | set(now)) if then.get(name) != now.get(name)]


def _not_per_note(f: h5py.File, name: str) -> str:
    """Why ``name`` is no field of the split file ``f``: missing, or not a row per note."""
    if name not in f:
        return f"no dataset /{name}"
    item = f[name]
    if not isinstance(item, h5py.Dataset):
        return f"/{name} is a group, not a dataset"
    if name in NOT_PER_NOTE:
        return f"/{name} is not per-note: its rows are not the notes"
    n = f[SPECTRA].shape[0]
    return f"/{name} is not per-note (shape {item.shape}; the split has {n} notes)"


def _read_rows(ds: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """``ds[rows]`` for rows in any order, with repeats (h5py reads increasing ones only)."""
    if not rows.size:
        return np.empty((0,) + ds.shape[1:], dtype=ds.dtype)
    unique, inverse = np.unique(rows, return_inverse=True)
    return ds[unique][inverse]
