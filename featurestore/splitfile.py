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
would (same rows, same float64 statistics: batches are merged in the same order). A journal
whose inputs or parameters no longer match starts the split anew. :func:`finalize` writes the
rest of the schema (labels, metadata, ``/skipped``, ``/adjusted``, attrs).
"""
from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import h5py
import numpy as np

from . import __version__
from .files import atomic_write_text
from .nsynth import FAMILIES, QUALITIES
from .params import FeatureParams
from .stats import RunningStats

__all__ = ["Progress", "Summary", "create_partial", "note_writer", "finalize", "fingerprint",
           "inputs_digest", "JOURNAL_SECONDS"]

JOURNAL_SECONDS = 1.0  # at most this much finished work is redone after an interruption
STRING = h5py.string_dtype("utf-8")


def fingerprint(params: FeatureParams, items) -> str:
    digest = hashlib.sha1(params.to_json().encode())
    for example, path in items:
        digest.update(f"{example.note_str}\0{path}\0".encode())
    return digest.hexdigest()


def inputs_digest(items) -> str:
    """What a finished split was built from: each note's name and file size (stored in the
    split's attrs, so a later build can tell that the folder changed)."""
    digest = hashlib.sha1()
    for _, path in items:
        try:
            size = path.stat().st_size
        except OSError:  # gone, or a broken link (recorded in /skipped)
            size = -1
        digest.update(f"{path.stem}\0{size}\0".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Summary:
    """Mean and standard deviation of a split, as stored on ``/spectra``."""

    mean: np.ndarray
    std: np.ndarray
    count: int

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

    def save(self, path: Path):
        stats = None
        if self.stats.count:
            stats = {"count": self.stats.count, "mean": self.stats.mean.tolist(),
                     "m2": self.stats.m2.tolist()}
        atomic_write_text(path, json.dumps({
            "fingerprint": self.fingerprint, "position": self.position,
            "n_written": self.n_written, "stats": stats, "skipped": self.skipped,
            "adjusted": self.adjusted}))

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> Optional["Progress"]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("fingerprint") != fingerprint:
            return None
        stats = RunningStats()
        if data["stats"]:
            stats = RunningStats(data["stats"]["count"], np.array(data["stats"]["mean"]),
                                 np.array(data["stats"]["m2"]))
        return cls(fingerprint, data["position"], data["n_written"], stats,
                   [tuple(s) for s in data["skipped"]], [tuple(a) for a in data["adjusted"]])


def create_partial(path: Path, n: int, params: FeatureParams):
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # every chunk placed now, in order
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)     # ... without writing fill values
        f.create_dataset("spectra", shape=(n,) + params.shape, dtype=np.float16,
                         maxshape=(None,) + params.shape, chunks=(1,) + params.shape,
                         dcpl=dcpl)
        f.attrs.update(params.to_attrs())


def note_writer(spectra: h5py.Dataset):
    """``write_note(i, features)``: note ``i``'s features as its chunk of ``/spectra``.

    The chunks are allocated when the partial file is created, one note each, uncompressed and
    without filters, so a note's bytes are its chunk (h5py's ``write_direct_chunk``). Writing
    them with ``os.pwrite`` at the chunks' byte offsets instead, which frees the GIL while
    they are copied, made the build no faster (``benchmarks/fastpaths.py``).
    """
    def write_note(i: int, row: np.ndarray):
        spectra.id.write_direct_chunk((i, 0, 0), np.ascontiguousarray(row))
    return write_note


def _strings(rows) -> np.ndarray:
    """``[name, text]`` rows as HDF5 can store them: a name from a json key may hold what UTF-8
    strings in HDF5 cannot (a NUL, a lone surrogate), which is written escaped."""
    def storable(text: str) -> str:
        return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\0", "\\0")
    return np.array([[storable(a), storable(b)] for a, b in rows], dtype=object).reshape(-1, 2)


def finalize(f: h5py.File, split: str, root: Path, items, state: Progress,
              problems, summary: Optional[Summary], stats_split: str):
    skipped_pos = {pos for pos, _ in state.skipped}
    kept = [i for i in range(len(items)) if i not in skipped_pos]
    written = [items[i][0] for i in kept]

    def key(i):  # the json key, i.e. the file name audio/NAME.wav
        return items[i][1].stem
    assert len(written) == state.n_written
    for name in [name for name in f if name != "spectra"]:  # from a finalize that failed
        del f[name]
    spectra = f["spectra"]
    if summary is not None:
        spectra.attrs.update({"mean": summary.mean, "std": summary.std,
                              "stats_count": summary.count, "stats_split": stats_split})
    f.create_dataset("labels", data=np.array([e.instrument_family for e in written], np.int32))
    f["labels"].attrs["names"] = np.array(FAMILIES, dtype=STRING)
    columns = {
        "names": ([key(i) for i in kept], STRING),
        "pitch": ([e.pitch for e in written], np.int16),
        "velocity": ([e.velocity for e in written], np.int16),
        "instrument": ([e.instrument for e in written], np.int32),
        "instrument_str": ([e.instrument_str for e in written], STRING),
        "source": ([e.instrument_source_str for e in written], STRING),
    }
    for name, (values, dtype) in columns.items():
        f.create_dataset(name, data=np.array(values, dtype=object if dtype is STRING else dtype),
                         dtype=dtype)
    f.create_dataset("qualities", data=np.array([e.qualities for e in written], np.uint8)
                     .reshape(-1, len(QUALITIES)))
    f["qualities"].attrs["names"] = np.array(QUALITIES, dtype=STRING)
    skipped = sorted(list(problems) + [(key(p), r) for p, r in state.skipped])
    f.create_dataset("skipped", data=_strings(skipped), dtype=STRING, maxshape=(None, 2))
    f.create_dataset("adjusted", data=_strings(
        [(key(p), what) for p, what in state.adjusted]), dtype=STRING,
        maxshape=(None, 2))
    for name in ("skipped", "adjusted"):
        f[name].attrs["columns"] = np.array(["name", "reason" if name == "skipped" else "what"],
                                            dtype=STRING)
    f.attrs.update({"split": split, "n_examples": state.n_written,
                    "inputs_digest": inputs_digest(items),
                    "timbremap_version": __version__, "source_root": str(root.resolve()),
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat()})
    if spectra.shape[0] != state.n_written:  # last: a failed finalize can be redone
        spectra.resize(state.n_written, axis=0)
    return skipped
