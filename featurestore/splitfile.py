"""One split file being written: the single writer, its journal, and finishing the file.

Never half-written, resumable
-----------------------------
Each split is written to ``SPLIT.h5.partial`` next to its destination and renamed to
``SPLIT.h5`` only when complete, so a reader of ``SPLIT.h5`` sees the previous finished file
or none. ``/spectra`` is allocated in full when the partial file is created
(:func:`create_partial`), so filling it writes raw chunk data only and never changes HDF5's
metadata: a ``kill -9`` can at worst leave rows that are later overwritten. Every
:data:`JOURNAL_SECONDS` (after the batch that crosses it) the file is flushed and a small
journal (``SPLIT.h5.journal``, :class:`Progress`: position, rows written, merged statistics,
skipped inputs) replaces the previous one atomically; saving it after every batch cost more
than the batch's own writes. Running the build again continues from the journal, recomputing
and overwriting the rows written after it, and produces the same file an uninterrupted build
would (same rows, same float64 statistics: batches are merged in the same order); once every
note is written the journal says so, and once :func:`finalize` has written the file whole and
it is closed, that it is finished: a kill after it redoes only the rename. A journal whose
inputs or parameters no longer match starts the split anew, and so does one that cannot be
read (:class:`JournalError`, reported by the build before it starts again). :func:`finalize`
writes the rest of the schema (labels, metadata, ``/skipped``, ``/adjusted``, attrs).

The room allocated for notes that were then skipped is not given back by HDF5 when
``/spectra`` shrinks to the notes kept, nor that of results ``build --add`` removes; where it
is much (:func:`give_back_room`), the finished partial file is copied without it, so a file's
size follows what it keeps, not the inputs it was given.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import h5py
import numpy as np

from . import schema
from .files import atomic_write_text, own_like, real_path, replaced
from .jsonstream import read_json, reason
from .notes import Notes
from .params import FeatureParams
from .stats import RunningStats

__all__ = ["Progress", "JournalError", "Summary", "create_partial", "note_writer", "finalize",
           "fingerprint", "give_back_room", "inputs_digest", "JOURNAL_SECONDS", "SPARE_BYTES"]

log = logging.getLogger(__name__)

JOURNAL_SECONDS = 1.0  # at most this much finished work is redone after an interruption
#: Room no dataset uses (left by skipped notes, or removed results) that a finished split
#: file may keep, beside a quarter of the room its notes take (:func:`give_back_room`).
SPARE_BYTES = 64 << 20


def fingerprint(params: FeatureParams, notes: Notes) -> str:
    """What a journal belongs to: the parameters and each note's name and wav file."""
    digest = hashlib.sha1(params.to_json().encode())
    for i in range(len(notes)):
        digest.update(f"{notes.note_str[i]}\0{notes.path(i)}\0{notes.offset[i]!r}\0".encode())
    return digest.hexdigest()


def inputs_digest(notes: Notes) -> str:
    """What a finished split was built from: each note's name and file size (stored in the
    split's attrs, so a later build can tell that the folder changed)."""
    digest = hashlib.sha1()
    for i, name in enumerate(notes.names):
        try:
            size = notes.path(i).stat().st_size
        except OSError:  # gone, or a broken link (recorded in /skipped)
            size = -1
        digest.update(f"{name}\0{size}\0".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Summary:
    """Mean and standard deviation of a split, as stored on ``/spectra``."""

    mean: np.ndarray
    std: np.ndarray
    count: int

    @classmethod
    def of(cls, stats: RunningStats) -> Optional["Summary"]:
        """The summary of streamed statistics; ``None`` when they hold no frame."""
        return cls(stats.mean, stats.std, stats.count) if stats.count else None

    @classmethod
    def read(cls, f: h5py.File) -> Optional["Summary"]:
        """The statistics a split file holds on ``/spectra``; ``None`` when it holds none.

        Raises
        ------
        StoreError
            When they are not finite (:func:`featurestore.schema.read_stats`).
        """
        count, _ = schema.read_stats_count(f)
        if not count:
            return None
        mean, std = schema.read_stats(f)
        return cls(mean, std, count)

    def running(self) -> RunningStats:
        """These statistics as :class:`RunningStats`, to merge others into (``M2`` from the
        standard deviation)."""
        return RunningStats(self.count, self.mean.copy(), self.std ** 2 * self.count)

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.mean).all() and np.isfinite(self.std).all())


@dataclass
class Progress:
    """The resumable state of a split being built (mirrored in its journal)."""

    fingerprint: str
    position: int = 0
    n_written: int = 0
    stats: RunningStats = field(default_factory=RunningStats)
    skipped: list = field(default_factory=list)   # [position, reason]
    adjusted: list = field(default_factory=list)  # [position, what]
    finished: bool = False  # finalize wrote the file whole: only its rename is left

    def save(self, path: Path):
        stats = None
        if self.stats.count:
            stats = {"count": self.stats.count, "mean": self.stats.mean.tolist(),
                     "m2": self.stats.m2.tolist()}
        atomic_write_text(path, json.dumps({
            "fingerprint": self.fingerprint, "position": self.position,
            "n_written": self.n_written, "stats": stats, "skipped": self.skipped,
            "adjusted": self.adjusted, "finished": self.finished}))

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> Optional["Progress"]:
        """The progress a journal holds.

        Parameters
        ----------
        path : pathlib.Path
            The journal, ``SPLIT.h5.journal``.
        fingerprint : str
            What the split is built from now (:func:`fingerprint`).

        Returns
        -------
        Progress or None
            ``None`` when there is no journal or it belongs to other inputs or parameters.

        Raises
        ------
        JournalError
            The journal cannot be read, or does not hold what :meth:`save` writes.
        """
        try:
            data = read_json(path, max_bytes=None)  # it grows with the notes adjusted
        except FileNotFoundError:
            return None
        except OSError as err:
            raise JournalError(f"cannot be read ({err.strerror or err})") from err
        except ValueError as err:  # not UTF-8, or not json (read_json names the file)
            raise JournalError(reason(err, path)) from err
        if not isinstance(data, dict):
            raise JournalError(f"not a json object but {type(data).__name__}")
        if data.get("fingerprint") != fingerprint:
            return None
        try:
            stats = RunningStats()
            if data["stats"]:
                stats = RunningStats(data["stats"]["count"], np.array(data["stats"]["mean"]),
                                     np.array(data["stats"]["m2"]))
            return cls(fingerprint, int(data["position"]), int(data["n_written"]), stats,
                       [tuple(s) for s in data["skipped"]],
                       [tuple(a) for a in data["adjusted"]], data.get("finished") is True)
        except KeyError as err:
            raise JournalError(f"no {err} in it") from err
        except (TypeError, ValueError) as err:
            raise JournalError(f"a field of the wrong type ({err})") from err


class JournalError(ValueError):
    """A journal that cannot be read or does not hold what :meth:`Progress.save` writes."""


def create_partial(path: Path, n: int, params: FeatureParams):
    with h5py.File(path, "w") as f:
        schema.create_spectra(f, n, params)


def note_writer(spectra: h5py.Dataset):
    """``write_note(i, features)``: note ``i``'s features as its chunk of ``/spectra``.

    The chunks are allocated when the partial file is created, one note each, uncompressed and
    without filters, so a note's bytes are its chunk (h5py's ``write_direct_chunk``). Writing
    them with ``os.pwrite`` at the chunks' byte offsets instead, which frees the GIL while
    they are copied, made the build no faster (``docs/extraction.md``, the fast-path table).
    """
    def write_note(i: int, row: np.ndarray):
        spectra.id.write_direct_chunk((i, 0, 0), np.ascontiguousarray(row))
    return write_note


def content_digest(f: h5py.File) -> str:
    """What a split file holds: SHA-1 of its label set and of each note's name, label, file
    (as ``/file`` records it) and offset, in order. A model records it, so ``evaluate`` can
    tell that the store changed; read from the written columns, it is the same for the same
    notes however the build reached them (a first build, ``--add``)."""
    label_names = schema.read_label_names(f)
    digest = hashlib.sha1("\0".join(label_names).encode("utf-8", "surrogatepass"))
    columns = (f[schema.NAMES].asstr()[:], f[schema.LABELS][:], f[schema.FILE].asstr()[:],
               f[schema.OFFSET][:])
    for name, label, file, offset in zip(*columns):
        digest.update(f"\0{name}\0{label_names[label]}\0{file}\0{float(offset)!r}"
                      .encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def finalize(f: h5py.File, split: str, roots: Sequence[Path], notes: Notes, state: Progress,
             problems, summary: Optional[Summary], stats_split: str, *,
             label_names: Sequence[str], attrs: dict, held: Optional[Notes] = None,
             held_problems=((), ()), held_computed=(), digest: Optional[str] = None):
    """Write the rest of the schema around the filled ``/spectra``; returns the rows of
    ``/skipped`` and ``/adjusted`` as written.

    ``label_names`` is the store's label set, ``attrs`` what else the root attrs record (how
    the inputs were read). ``held``: the notes the file held before these were added after
    them (``build --add``), with their ``(skipped, adjusted)`` rows and the runs they were
    computed in (:data:`~featurestore.schema.COMPUTED`), and ``digest`` the
    inputs' (:func:`inputs_digest`; default: of ``held`` and ``notes``). Safe to run again
    after it failed part way."""
    kept = np.ones(len(notes), bool)
    kept[[pos for pos, _ in state.skipped]] = False
    assert kept.sum() == state.n_written
    written = notes.take(np.flatnonzero(kept))
    names = notes.names
    skipped = sorted(list(problems) + [(names[p], r) for p, r in state.skipped])
    adjusted = [(names[p], what) for p, what in state.adjusted]
    everything = notes
    if held is not None:
        written, everything = Notes.concat([held, written]), Notes.concat([held, notes])
        skipped = _problems_after(list(held_problems[0]), skipped, set(written.names))
        adjusted = list(held_problems[1]) + adjusted
    schema.clear_metadata(f)
    if summary is not None:
        schema.write_stats(f, summary.mean, summary.std, summary.count, stats_split)
    roots = [str(real_path(root)) for root in roots]
    schema.write_notes(f, written, roots, label_names)
    schema.write_problems(f, skipped, adjusted)
    schema.write_provenance(f, split=split, n=len(written),
                            inputs_digest=digest or inputs_digest(everything),
                            source_root=roots[0], held=0 if held is None else len(held),
                            computed_before=held_computed)
    f.attrs.update(attrs)
    f.attrs[schema.CONTENT_DIGEST] = content_digest(f)
    spectra = f[schema.SPECTRA]
    if spectra.shape[0] != len(written):  # last: a failed finalize can be redone
        spectra.resize(len(written), axis=0)
    return skipped, adjusted


def give_back_room(path: Path, *, shown: Optional[Path] = None) -> bool:
    """Copy the finished split file ``path`` without the room in it that no dataset uses, when
    that room is over :data:`SPARE_BYTES` and over a quarter of what its notes take; True if
    it did.

    HDF5 does not give room back: neither that allocated for notes then skipped, when
    ``/spectra`` shrinks to the notes kept, nor that of datasets removed (the analysis results
    of a split ``build --add`` grows). Room never written takes no disk where files can be
    sparse, but it counts in the file's size, and a copy elsewhere (``aws s3 sync``, ``tar``)
    writes it out. The copy is written beside it and renamed over it: every note's chunk is
    copied as it is (allocated in order, as :func:`create_partial` allocates them), and every
    other dataset, group and attribute as HDF5 copies objects, and the file's mode and owner.
    Where the disk has no room for the copy, or it fails, the file is kept as it is, with a
    warning naming ``shown`` (default: ``path``); so is a file whose notes are not one a
    chunk (contiguous, as another program may write them).
    """
    shown = path if shown is None else shown
    with h5py.File(path, "r") as f:
        spectra = f[schema.SPECTRA]
        if spectra.chunks != (1,) + spectra.shape[1:]:
            return False
        kept, note = spectra.shape[0], spectra.dtype.itemsize * int(np.prod(spectra.shape[1:]))
        most = max(SPARE_BYTES, kept * note // 4)
        datasets = _datasets(f)
        # and HDF5's own records, a little; strings' text is read only when it could tell
        spare = path.stat().st_size - sum(ds.id.get_storage_size() for ds in datasets)
        if spare > most:
            spare -= _text_bytes(datasets)
    if spare <= most:
        return False
    if shutil.disk_usage(path.parent).free < 2 * kept * note + SPARE_BYTES:
        log.warning("%s: no room on its disk to copy it without its %.1f MiB of unused room; "
                    "kept as it is", shown, spare / 2**20)
        return False
    try:
        _copy_without_room(path, kept)
    except (OSError, RuntimeError, ValueError) as err:  # h5py's, as well as the disk's
        log.warning("%s: could not be copied without its %.1f MiB of unused room (%s); kept as "
                    "it is", shown, spare / 2**20, getattr(err, "strerror", None) or err)
        return False
    return True


def _datasets(f: h5py.File) -> list:
    """Every dataset of ``f``, in its groups too."""
    found = []

    def visit(_, obj):
        if isinstance(obj, h5py.Dataset):
            found.append(obj)
    f.visititems(visit)
    return found


def _text_bytes(datasets) -> int:
    """The text of the variable-length strings of ``datasets``, which HDF5 keeps apart from
    their storage, in its heaps."""
    return sum(sum(len(v) for v in np.ravel(ds[()])) for ds in datasets
               if ds.size and h5py.check_vlen_dtype(ds.dtype) is not None)


def _copy_without_room(path: Path, kept: int):
    """:func:`give_back_room`'s copy of ``path``, its first ``kept`` notes, renamed over it."""
    with replaced(path) as tmp:  # .SPLIT.h5.partial.partial: not a split file's name
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))  # its owner's
        with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
            _copy_attrs(src, dst)
            schema.create_spectra(dst, kept, schema.read_params(src))
            _copy_attrs(src[schema.SPECTRA], dst[schema.SPECTRA])
            read, write = src[schema.SPECTRA].id.read_direct_chunk, \
                dst[schema.SPECTRA].id.write_direct_chunk
            for i in range(kept):
                write((i, 0, 0), read((i, 0, 0))[1])
            for name in src:
                if name != schema.SPECTRA:
                    src.copy(src[name], dst, name=name)
        own_like(path, tmp)  # the split's mode and owner, once it is whole


def _copy_attrs(src, dst):
    """Every attribute of ``src`` onto ``dst``, each with its own HDF5 type."""
    for name in src.attrs:
        dst.attrs.create(name, src.attrs[name], dtype=src.attrs.get_id(name).dtype)


def _problems_after(old: List[Tuple[str, str]], new: List[Tuple[str, str]],
                    held: set) -> List[Tuple[str, str]]:
    """``/skipped`` after an ``--add``: the newest reason for each name still not held (the
    held rows' names as they were stored, :func:`schema.stored_text`)."""
    latest = dict(old)
    latest.update((schema.stored_text(name), why) for name, why in new)
    return sorted((name, why) for name, why in latest.items() if name not in held)
