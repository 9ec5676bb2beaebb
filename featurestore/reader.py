"""Random batches of a split's notes by index, without loading the split
(:class:`SpectraReader`): a memory map of the chunks where the layout allows, h5py otherwise,
byte ranges on object storage."""
from __future__ import annotations

import mmap
import os
import reprlib
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple

import h5py
import numpy as np

import featurestore.remote as remote
from .errors import InputError, StoreError, check_positive_int
from .schema import LABELS, SPECTRA, read_label_names
from .splitcheck import check_split
from .store import open_file

__all__ = ["SpectraReader", "chunk_offsets"]


def chunk_offsets(ds: h5py.Dataset) -> Optional[np.ndarray]:
    """Byte offset in the file of each note's chunk of ``ds`` (``/spectra``), or None when the
    layout does not allow reading the notes' bytes there directly (not one unfiltered,
    uncompressed note per chunk, or a chunk not allocated)."""
    if ds.chunks is None or ds.chunks[1:] != ds.shape[1:] or ds.chunks[0] != 1 \
            or ds.id.get_create_plist().get_nfilters():
        return None
    offsets = np.full(ds.shape[0], -1, dtype=np.int64)

    def visit(info):
        offsets[info.chunk_offset[0]] = info.byte_offset
    try:
        ds.id.chunk_iter(visit)
    except (AttributeError, RuntimeError):  # HDF5 < 1.12.3: one call per chunk
        for i in range(ds.id.get_num_chunks()):
            info = ds.id.get_chunk_info(i)
            offsets[info.chunk_offset[0]] = info.byte_offset
    return None if (offsets < 0).any() else offsets


class SpectraReader:
    """Random batches of ``/spectra`` (and labels) by index, without loading the split.

    Parameters
    ----------
    path : str or pathlib.Path
        A split file, or its URL on object storage (:mod:`featurestore.remote`).
    method : {'mmap', 'h5py'}
        ``'mmap'``: a numpy memory map over the chunks (byte offsets from HDF5's chunk index);
        falls back to ``'h5py'`` when the dataset is compressed or not chunked one note per chunk.
        ``'h5py'``: h5py reads one note (one chunk) at a time; its fancy indexing with
        sorted unique indices is far slower (``docs/loader.md``). A split named by a URL is
        read by byte ranges at the chunks' offsets (``'remote'``: one request a note, or a run
        of notes), whatever the method, or by h5py where the layout does not allow that.

    Attributes
    ----------
    n : int
        Notes in the split.
    shape : tuple
        ``(frames, bins)`` of one note.
    labels : np.ndarray, int32
        All labels (small: 4 bytes a note).
    label_names : tuple of str
        The store's label set: ``label_names[labels[i]]`` is note ``i``'s class.
    method : str
        The method in use after any fallback: ``'mmap'``, ``'h5py'`` or ``'remote'``.
    note_bytes : int
        Bytes of one note's spectra.
    in_order : bool
        Whether each note lies in the file after the one before (as ``build`` allocates them,
        with HDF5's index nodes between some): then :meth:`rows` reads a run of notes with one
        read.
    watch : featurestore.remote.VersionWatch or None
        For a split on object storage, what its reads are checked against (``None`` for a
        local file).

    Examples
    --------
    >>> with SpectraReader("store/train.h5") as reader:     # doctest: +SKIP
    ...     x, y = reader.batch([3, 17, 42])
    """

    def __init__(self, path, method: str = "mmap"):
        if method not in ("mmap", "h5py"):
            raise InputError(f"method must be 'mmap' or 'h5py', got {method!r}")
        self.path = path if remote.is_url(path) else Path(path)
        if not remote.is_url(path) and self.path.is_dir():
            raise StoreError(f"{self.path}: is a folder; a reader reads one split file "
                             f"({self.path / 'train.h5'}, ...)")
        # what the byte reads are checked against: the chunk index read next is this object's
        self.watch = remote.VersionWatch(self.path) if remote.is_url(self.path) else None
        self._file = open_file(self.path, "r")
        self._closed = False
        try:
            check_split(self._file)
        except StoreError:
            self._file.close()
            raise
        self._ds = self._file[SPECTRA]
        self.n = int(self._ds.shape[0])
        self.shape = tuple(self._ds.shape[1:])
        self.labels = self._file[LABELS][:].astype(np.int32)
        self.label_names = read_label_names(self._file)
        self._rows = self._offsets = self._mm = None
        self.method = "h5py"
        self.note_bytes = int(np.prod(self.shape)) * 2
        self.in_order = False
        byte_reads = method == "mmap" or remote.is_url(self.path)
        offsets = chunk_offsets(self._ds) if byte_reads and self.n else None
        if offsets is None:
            return
        self._offsets = offsets
        self.in_order = bool((np.diff(offsets) >= self.note_bytes).all())
        if remote.is_url(self.path):
            self.method = "remote"
            return
        self._fh = open(self.path, "rb")
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        if (np.diff(offsets) == self.note_bytes).all():  # nothing between notes: one view
            self._rows = np.ndarray((self.n,) + self.shape, dtype=np.float16,
                                    buffer=self._mm, offset=int(offsets[0]))
        self.method = "mmap"

    def batch(self, indices: Sequence[int], labels: bool = True):
        """Spectra (float16, ``(len(indices), frames, bins)``) in the order of ``indices``;
        consecutive indices of notes that lie in order are one read (:meth:`rows`).

        Returns ``(x, y)`` when ``labels`` is true, else ``x``.
        """
        self._check_open()
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise TypeError(f"{self.path}: indices must be a sequence of ints, got "
                            f"{reprlib.repr(indices)}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):  # before int64 wraps a uint64
            raise IndexError(f"{self.path}: indices must be in [0, {self.n}), "
                             f"got {idx.min()}..{idx.max()}")
        idx = idx.astype(np.int64, copy=False)
        if self.in_order and len(idx) > 1 and (np.diff(idx) == 1).all():
            x = self.rows(int(idx[0]), int(idx[-1]) + 1)
        elif self._rows is not None:
            x = self._rows[idx]
        elif self.method == "remote":
            unique, inverse = np.unique(idx, return_inverse=True)
            starts = [int(self._offsets[i]) for i in unique]
            got = self._read_ranges([(at, at + self.note_bytes) for at in starts])
            x = self._decode(b"".join(got), len(unique))[inverse.reshape(-1)]
        elif self._offsets is not None:
            x = np.empty((len(idx),) + self.shape, dtype=np.float16)
            count = int(np.prod(self.shape))
            for k, i in enumerate(idx):
                x[k] = np.frombuffer(self._mm, np.float16, count,
                                     int(self._offsets[i])).reshape(self.shape)
        else:  # one chunk per note: row reads beat h5py's fancy indexing (docs/loader.md),
            # and its low-level calls build no selection a row as read_direct does
            x = np.empty((len(idx),) + self.shape, dtype=np.float16)
            row, origin = (1,) + self.shape, (0,) * len(self.shape)
            file_space, memory_space = self._ds.id.get_space(), h5py.h5s.create_simple(row)
            for k, i in enumerate(idx):
                file_space.select_hyperslab((int(i),) + origin, row)
                self._ds.id.read(memory_space, file_space, x[k:k + 1])
        return (x, self.labels[idx]) if labels else x

    def _check_open(self):
        if self._closed:
            raise ValueError(f"{self.path}: this reader is closed")

    def _decode(self, data, n: int) -> np.ndarray:
        return np.frombuffer(data, np.float16).reshape((n,) + self.shape)

    def rows(self, start: int, stop: int, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Spectra of notes ``start`` to ``stop - 1``, float16 ``(stop - start, frames, bins)``
        (into ``out`` when given).

        When the notes lie in order (:attr:`in_order`) they are one read of the file
        (``os.preadv``; one request on object storage) for each stretch of notes with nothing
        between them, else read as :meth:`batch` reads them.
        """
        if out is None:
            out = np.empty((max(stop - start, 0),) + self.shape, dtype=np.float16)
        return self.runs([(start, stop)], out)

    def runs(self, spans: Sequence[Tuple[int, int]], out: np.ndarray) -> np.ndarray:
        """The notes of several runs, ``[(start, stop), ...]``, one after another into
        ``out`` (float16, ``(notes, frames, bins)``), as :meth:`rows` reads one: on object
        storage, the requests of every run go together."""
        self._check_open()
        for start, stop in spans:
            if not 0 <= start <= stop <= self.n:
                raise IndexError(f"{self.path}: rows must lie in [0, {self.n}], got "
                                 f"{start}:{stop}")
        notes = sum(stop - start for start, stop in spans)
        want = (notes,) + self.shape
        if not isinstance(out, np.ndarray) or out.shape != want or out.dtype != np.float16 \
                or not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError(f"out must be a writable C-contiguous float16 array of shape "
                             f"{want} (the runs are read into its memory), got " + (
                                 f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray)
                                 else type(out).__name__))
        parts, at = [], 0
        flat = out.reshape(len(out), int(np.prod(self.shape))).view(np.uint8)
        for start, stop in spans:
            count = stop - start
            if not self.in_order and count:
                out[at:at + count] = self.batch(np.arange(start, stop), labels=False)
            elif count:
                offsets = self._offsets[start:stop]
                # stretches with nothing between their notes (HDF5's index nodes lie between
                # some)
                cuts = [0, *(np.flatnonzero(np.diff(offsets) != self.note_bytes) + 1), count]
                parts += [(int(offsets[a]), flat[at + a:at + b].reshape(-1))
                          for a, b in zip(cuts[:-1], cuts[1:])]
            at += count
        self._read_bytes(parts)
        return out

    def _read_bytes(self, parts):
        """Fill each uint8 array of ``parts``, ``[(offset, array), ...]``, with the file's
        bytes from its offset on (the requests of object storage go together)."""
        if self.method == "remote":
            got = self._read_ranges([(at, at + len(into)) for at, into in parts])
            for (_, into), data in zip(parts, got):
                into[:] = np.frombuffer(data, np.uint8)
            return
        for offset, into in parts:
            view = memoryview(into)
            while len(view):
                got = os.preadv(self._fh.fileno(), [view], offset)
                if got <= 0:
                    raise StoreError(f"{self.path}: the file ends at byte {offset}, inside a "
                                     f"note")
                view, offset = view[got:], offset + got

    def _read_ranges(self, ranges):
        """The bytes of ``ranges`` of the object, which is asked, after the reads and at most
        every :data:`featurestore.remote.VERSION_SECONDS`, whether another upload replaced it:
        a read of a replaced split stops within that time."""
        try:
            got = remote.read_ranges(self.path, ranges)
        except remote.ShortObject:  # a smaller object put in its place: say that
            self.watch.check(now=True)
            raise
        self.watch.check()
        return got

    def will_need(self, start: int, stop: int):
        """Ask the kernel to start reading notes ``start`` to ``stop - 1`` of a local file now
        (``posix_fadvise(WILLNEED)``), for a :meth:`rows` call to come; nothing otherwise."""
        if self._mm is not None and self.in_order and hasattr(os, "posix_fadvise") \
                and stop > start:
            os.posix_fadvise(self._fh.fileno(), int(self._offsets[start]),
                             (stop - start) * self.note_bytes, os.POSIX_FADV_WILLNEED)

    @property
    def file(self) -> h5py.File:
        """The split file, open for reading: its attrs and other datasets."""
        self._check_open()
        return self._file

    def has(self, name: str) -> bool:
        """Whether the split holds the dataset ``name`` (per-note or not: ``skipped``)."""
        self._check_open()
        return name in self._file

    def field(self, name: str) -> np.ndarray:
        """The whole of another dataset of the split (``instrument``, ``names``, ``skipped``,
        ...), as h5py reads it: text as ``bytes`` (:class:`~featurestore.SplitDataset` gives
        ``str``)."""
        self._check_open()
        if name not in self._file:
            raise StoreError(f"{self.path}: no dataset /{name} (it has "
                             f"{', '.join(sorted(self._file))})")
        return self._file[name][:]

    def __len__(self):
        return self.n

    def iter_batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """All spectra in order, ``batch_size`` notes at a time."""
        check_positive_int("batch_size", batch_size)
        for start in range(0, self.n, batch_size):
            yield self.rows(start, min(start + batch_size, self.n))

    def close(self):
        self._closed = True
        self._rows = None
        if self._mm is not None:
            self._mm.close()
            self._fh.close()
            self._mm = None
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
