"""The parallel build: NSynth-layout folder -> one HDF5 file per split.

Workers (joblib: threads or loky processes, see :func:`resolve_backend`, or a dask cluster)
read audio with soundfile and compute features and partial statistics for batches of notes;
this process is the only writer.
Local worker processes (loky) compute each batch's features straight into a slot of a small
memory-mapped ring file next to the output (:class:`_Ring`), so 250 KB a note are not pickled
through pipes; the writer copies them once, into the HDF5 file, and frees the slot. Dask
workers, which may run on other machines, return their features as arrays.

Never half-written, resumable
-----------------------------
Each split is written to ``SPLIT.h5.partial`` next to its destination and renamed to
``SPLIT.h5`` only when complete, so a reader of ``SPLIT.h5`` sees the previous finished file
or none. ``/spectra`` is allocated in full when the partial file is created, so filling it
writes raw chunk data only and never changes HDF5's metadata: a ``kill -9`` can at worst leave
rows that are later overwritten. Every :data:`JOURNAL_SECONDS` (after the batch that crosses
it) the file is flushed and a small journal (``SPLIT.h5.journal``: position, rows written,
merged statistics, skipped inputs) replaces the previous one atomically; saving it after every
batch cost more than the batch's own writes. Running the build again continues from the
journal, recomputing and overwriting the rows written after it, and produces the same file an
uninterrupted build would (same rows, same float64 statistics: batches are merged in the same
order). A journal whose inputs or parameters no longer match starts the split anew.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import h5py
import numpy as np
from joblib import Parallel, delayed, parallel_config
from tqdm.auto import tqdm

from . import __version__
from .audio import AudioError
from .errors import TimbremapError
from .features import Workspace, note_features
from .files import atomic_write_text
from .nsynth import FAMILIES, QUALITIES, SPLITS, find_splits, read_split
from .params import FeatureParams
from .stats import RunningStats
from .store import (StoreError, chunk_offsets, held_by_another, read_params, read_stats,
                    split_path)

__all__ = ["build_store", "BuildError", "SplitReport", "resolve_backend"]

log = logging.getLogger(__name__)
BACKENDS = ("auto", "loky", "dask", "threading")
#: ``backend='auto'`` runs up to this many jobs as threads, more as loky processes.
THREADS_UP_TO = 2
JOURNAL_SECONDS = 1.0  # at most this much finished work is redone after an interruption
RING_SLOTS_PER_JOB = 4  # batches of features a loky worker can be ahead of the writer
STRING = h5py.string_dtype("utf-8")


class BuildError(TimbremapError, RuntimeError):
    """A build that cannot start or go on; the message names the path and the problem."""


@dataclass
class SplitReport:
    """What building one split did (printed as the build's summary)."""

    split: str
    path: Path
    status: str  # 'built', 'resumed' or 'kept'
    n_examples: int = 0
    n_skipped: int = 0
    n_adjusted: int = 0
    seconds: float = 0.0
    steady_rate: float = float("nan")
    resumed_at: int = 0
    skipped: List[Tuple[str, str]] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size if self.path.is_file() else 0

    @property
    def rate(self) -> float:
        done = self.n_examples + self.n_skipped - self.resumed_at
        return done / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class _Ring:
    """A memory-mapped ring of ``slots`` batches of features, shared by the writer and its loky
    workers.

    The file holds an int64 header, the number of batches the writer has consumed, then the
    slots. Batch ``k`` of a run fills slot ``k % slots`` once the writer has consumed batch
    ``k - slots``; batches are taken and consumed in order, so the batch the writer waits for
    never waits itself. Workers map the file anew for every batch (a rebuilt ring is a new
    file: a long-lived worker never writes into an old one).
    """

    path: str
    slots: int
    batch_size: int
    shape: Tuple[int, int]
    owner: int  # the writer's pid: a worker stops waiting when it is gone

    HEADER = 64  # bytes, keeps the slots aligned

    @classmethod
    def create(cls, path: Path, slots: int, batch_size: int, shape) -> "_Ring":
        ring = cls(str(path), slots, batch_size, tuple(shape), os.getpid())
        size = cls.HEADER + slots * batch_size * int(np.prod(shape)) * 2
        with open(path, "wb") as f:
            f.truncate(size)  # sparse and zero: nothing consumed yet
        return ring

    @classmethod
    @contextlib.contextmanager
    def beside(cls, store: Path, slots: int, batch_size: int, shape):
        """A new ring ``STORE.ring-ID`` for one run, removed afterwards."""
        ring = cls.create(store.with_name(f"{store.name}.ring-{uuid.uuid4().hex[:12]}"), slots,
                          batch_size, shape)
        try:
            yield ring
        finally:
            Path(ring.path).unlink(missing_ok=True)

    def open(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(consumed, slots)``: the header as a 1-element int64 array, and the slots as
        float16 ``(slots, batch_size, frames, bins)``, both views of the mapped file."""
        memory = np.memmap(self.path, dtype=np.uint8, mode="r+")
        consumed = memory[:8].view(np.int64)
        slots = memory[self.HEADER:].view(np.float16).reshape(
            (self.slots, self.batch_size) + self.shape)
        return consumed, slots

    def slot_for(self, number: int, timeout: float = 600.0) -> np.ndarray:
        """Worker side: batch ``number``'s slot, once the writer is done with its last use."""
        consumed, slots = self.open()
        deadline = time.monotonic() + timeout
        while consumed[0] < number - self.slots + 1:
            try:
                os.kill(self.owner, 0)
            except ProcessLookupError:
                raise BuildError(f"{self.path}: the build's writer (pid {self.owner}) is gone") \
                    from None
            if time.monotonic() > deadline:
                raise BuildError(f"{self.path}: batch {number} waited {timeout:g} s for the "
                                 f"writer to free its slot")
            time.sleep(0.001)
        return slots[number % self.slots]


def _extract(batch: Sequence[Tuple[int, str]], params: FeatureParams,
             ring: Optional[_Ring] = None, number: int = 0):
    """Worker: features, per-note statistics, skips and adjustments of a batch of files.

    The features go into slot ``number`` of ``ring`` when one is given (and ``None`` is
    returned in their place), otherwise into a new array that is returned.

    The statistics are one :class:`RunningStats` per note, merged by the writer note by note, so
    the float64 result does not depend on how notes were batched (a resumed build may batch the
    notes after its journal differently from an uninterrupted one).
    """
    if ring is None:
        features = np.empty((len(batch),) + params.shape, dtype=np.float16)
    else:
        features = ring.slot_for(number)
    stats, workspace = [], Workspace(params)
    done, skipped, adjusted = [], [], []
    for pos, path in batch:
        try:  # the features go straight into their row; a skipped note's row is reused
            _, total, squares, adjustments = note_features(
                Path(path), params, out=features[len(done)], workspace=workspace)
        except AudioError as err:
            skipped.append((pos, err.reason))
            continue
        stats.append(RunningStats.from_sums(params.n_frames, total, squares))
        done.append(pos)
        if adjustments:
            adjusted.append((pos, "; ".join(adjustments)))
    return done, None if ring is not None else features[:len(done)], stats, skipped, adjusted


def _fingerprint(params: FeatureParams, items) -> str:
    digest = hashlib.sha1(params.to_json().encode())
    for example, path in items:
        digest.update(f"{example.note_str}\0{path}\0".encode())
    return digest.hexdigest()


def _inputs_digest(items) -> str:
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
class _Summary:
    """Mean and standard deviation of a split, as stored on ``/spectra``."""

    mean: np.ndarray
    std: np.ndarray
    count: int

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.mean).all() and np.isfinite(self.std).all())


@dataclass
class _Progress:
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
    def load(cls, path: Path, fingerprint: str) -> Optional["_Progress"]:
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


def _create_partial(path: Path, n: int, params: FeatureParams):
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # every chunk placed now, in order
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)     # ... without writing fill values
        f.create_dataset("spectra", shape=(n,) + params.shape, dtype=np.float16,
                         maxshape=(None,) + params.shape, chunks=(1,) + params.shape,
                         dcpl=dcpl)
        f.attrs.update(params.to_attrs())


@contextlib.contextmanager
def _note_writer(path: Path, spectra: h5py.Dataset):
    """``write_note(i, features)``: note ``i``'s features into its chunk of ``/spectra``.

    The chunks are allocated when the partial file is created, one note each, uncompressed and
    without filters, so a note's bytes are its chunk: they go to the chunk's byte offset with
    ``os.pwrite``, which releases the GIL while the 250 KB are copied (h5py's
    ``write_direct_chunk`` holds it: 88 against 50 microseconds a note measured here), so
    worker threads go on meanwhile. HDF5 writes only the file's metadata. Where the offsets
    cannot be read, or without ``os.pwrite``, ``write_direct_chunk`` writes the chunk.
    """
    offsets = chunk_offsets(spectra) if hasattr(os, "pwrite") else None
    fd = None if offsets is None else os.open(path, os.O_WRONLY)

    def write_note(i, row):
        if fd is None:
            spectra.id.write_direct_chunk((i, 0, 0), row)
            return
        data, position = memoryview(np.ascontiguousarray(row)).cast("B"), int(offsets[i])
        while data:
            written = os.pwrite(fd, data, position)
            data, position = data[written:], position + written
    try:
        yield write_note
    finally:
        if fd is not None:
            os.close(fd)


def _strings(rows) -> np.ndarray:
    """``[name, text]`` rows as HDF5 can store them: a name from a json key may hold what UTF-8
    strings in HDF5 cannot (a NUL, a lone surrogate), which is written escaped."""
    def storable(text: str) -> str:
        return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\0", "\\0")
    return np.array([[storable(a), storable(b)] for a, b in rows], dtype=object).reshape(-1, 2)


def _finalize(f: h5py.File, split: str, root: Path, items, state: _Progress,
              problems, summary: Optional[_Summary], stats_split: str):
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
                    "inputs_digest": _inputs_digest(items),
                    "timbremap_version": __version__, "source_root": str(root.resolve()),
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat()})
    if spectra.shape[0] != state.n_written:  # last: a failed finalize can be redone
        spectra.resize(state.n_written, axis=0)
    return skipped


@contextlib.contextmanager
def _backend(backend: str, jobs: int):
    """joblib's parallel configuration; for dask, a client (an existing one, or a local cluster)."""
    if backend != "dask":
        with parallel_config(backend=backend, n_jobs=jobs):
            yield
        return
    try:
        from dask.distributed import Client, LocalCluster, get_client
    except ImportError:
        raise BuildError("--backend dask needs dask.distributed: pip install 'dask[distributed]'") \
            from None
    try:
        get_client()
        own = contextlib.nullcontext()
    except ValueError:  # no client yet: run a local cluster for this build
        log.info("starting a dask LocalCluster with %d workers", jobs)
        own = Client(LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                  dashboard_address=None))
    with own, parallel_config(backend="dask", n_jobs=-1):
        yield


def _build_split(split: str, root: Path, path: Path, params: FeatureParams, items, problems,
                 train_stats: Optional[_Summary], jobs: int, batch_size: int,
                 progress: bool, local_processes: bool) -> Tuple[SplitReport, RunningStats]:
    partial = path.with_name(path.name + ".partial")
    journal = path.with_name(path.name + ".journal")
    fingerprint = _fingerprint(params, items)
    state = _Progress.load(journal, fingerprint) if partial.is_file() else None
    if state is not None:
        try:
            with h5py.File(partial, "r") as f:
                if f["spectra"].shape != (len(items),) + params.shape:
                    state = None
        except (OSError, KeyError):
            state = None
        if state is None:
            log.warning("%s: unreadable partial file, starting %s again", partial, split)
    if state is None:
        _create_partial(partial, len(items), params)
        state = _Progress(fingerprint)
        state.save(journal)
    resumed_at = state.position
    if resumed_at:
        log.info("%s: resuming at note %d of %d", split, resumed_at, len(items))

    positions = range(state.position, len(items))
    batches = [[(i, str(items[i][1])) for i in positions[k:k + batch_size]]
               for k in range(0, len(positions), batch_size)]
    start = time.perf_counter()
    steady_start, steady_done = None, 0
    bar = tqdm(total=len(items), initial=state.position, unit="note", desc=split,
               disable=not progress, dynamic_ncols=True)
    for stale in path.parent.glob(f"{path.name}.ring-*"):  # left by a killed build
        stale.unlink()
    handoff = contextlib.nullcontext()
    if local_processes and batches:
        handoff = _Ring.beside(path, RING_SLOTS_PER_JOB * jobs, batch_size, params.shape)
    with handoff as ring, h5py.File(partial, "r+") as f, bar, \
            _note_writer(partial, f["spectra"]) as write_note:
        if ring is not None:
            consumed, slots = ring.open()
        # batch_size=1: joblib must not group batches into one task, or a worker could wait
        # for a slot that only the results still held in its own task would free
        results = Parallel(return_as="generator", pre_dispatch="2*n_jobs", batch_size=1)(
            delayed(_extract)(batch, params, ring, number)
            for number, batch in enumerate(batches))
        last_save = time.monotonic()
        for number, ((done, features, stats, skipped, adjusted), batch) in enumerate(
                zip(results, batches)):
            if ring is not None:  # the worker computed them into its slot
                features = slots[number % ring.slots][:len(done)]
            for row in features:
                write_note(state.n_written, row)
                state.n_written += 1
            if ring is not None:
                consumed[0] = number + 1  # the slot is free again
            state.position = batch[-1][0] + 1
            for note_stats in stats:
                state.stats.merge(note_stats)
            state.skipped += skipped
            state.adjusted += adjusted
            if time.monotonic() - last_save >= JOURNAL_SECONDS:
                f.flush()
                state.save(journal)
                last_save = time.monotonic()
            bar.update(len(batch))
            if steady_start is None:  # the first batch carries worker start-up
                steady_start = time.perf_counter()
            else:
                steady_done += len(batch)
        if train_stats is None:
            own = state.stats
            summary = _Summary(own.mean, own.std, own.count) if own.count else None
            stats_split = split
        else:
            summary, stats_split = train_stats, "train"
        if summary is not None and not summary.finite:
            raise BuildError(f"{path}: the statistics of {split} are not finite although every "
                             f"note's features were; nothing was finished (a bug: please "
                             f"report it)")
        skipped = _finalize(f, split, root, items, state, problems, summary, stats_split)
    os.replace(partial, path)
    journal.unlink()
    seconds = time.perf_counter() - start
    steady = steady_done / (time.perf_counter() - steady_start) if steady_done else float("nan")
    report = SplitReport(split, path, "resumed" if resumed_at else "built", state.n_written,
                         len(skipped), len(state.adjusted), seconds, steady, resumed_at, skipped)
    return report, state.stats


def _check_writable(out: Path):
    if out.exists() and not out.is_dir():
        raise BuildError(f"{out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".timbremap-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise BuildError(f"{out}: cannot write there ({err.strerror or err})") from None


@contextlib.contextmanager
def _locked(out: Path):
    """An exclusive lock on the store folder itself for the build (POSIX ``flock`` on its
    descriptor: no file is left behind, and the lock goes when the process ends, however it
    ends), so two builds never write the same store. Where folders cannot be locked (no
    ``fcntl``, some network file systems) the build runs unlocked."""
    try:
        import fcntl
    except ImportError:
        fcntl = None
    fd = os.open(out, os.O_RDONLY) if fcntl is not None else None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise BuildError(f"{out}: another build is writing this store; wait for "
                                     f"it to finish") from None
                log.debug("%s: cannot be locked (%s); building unlocked", out, err)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def resolve_backend(backend: str, jobs: int) -> str:
    """The joblib backend ``build_store`` runs: ``'auto'`` is ``'threading'`` for up to
    :data:`THREADS_UP_TO` jobs and ``'loky'`` beyond; other names are kept.

    The hot path (soundfile reads, the numba kernels, scipy's FFT, numpy on whole notes) runs
    without the GIL, so on few cores threads lose little to it and save each loky process's
    start-up (~1.5 s of imports and numba's LLVM; measured on 2 cores for 3,000 notes: the
    whole command 5.5 s with 2 threads, 6.3-6.7 s with 2 processes, alternating runs). On
    more cores the GIL-bound parts would add up, so processes take over.
    """
    if backend not in BACKENDS:
        raise BuildError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "threading" if jobs <= THREADS_UP_TO else "loky"
    return backend


def build_store(root, out, params: FeatureParams = FeatureParams(), *, jobs: int = 2,
                backend: str = "auto", batch_size: int = 32, overwrite: bool = False,
                splits: Optional[Sequence[str]] = None, progress: bool = True
                ) -> List[SplitReport]:
    """Build ``OUT/SPLIT.h5`` for every split of an NSynth-layout folder.

    Parameters
    ----------
    root : str or pathlib.Path
        Folder with ``train/``, ``valid/`` and/or ``test/``, each holding ``examples.json`` and
        ``audio/*.wav``.
    out : str or pathlib.Path
        The store folder (created if needed).
    params : FeatureParams
        The features to compute (recorded in every file's attrs).
    jobs : int
        Worker threads or processes or, for dask, local-cluster workers when no client exists.
    backend : {'auto', 'loky', 'dask', 'threading'}
        joblib backend; ``'auto'``: see :func:`resolve_backend`. ``'dask'`` uses the current
        ``dask.distributed`` client, or starts a ``LocalCluster`` for the build.
    batch_size : int
        Notes per worker task (also the resume granularity).
    overwrite : bool
        Rebuild splits whose finished file exists; otherwise those are kept as they are.
    splits : sequence of str, optional
        Only these splits (default: every split found in ``root``).
    progress : bool
        Show a tqdm bar per split.

    Returns
    -------
    list of SplitReport
        One per split, in NSynth order (train first: its statistics go into every split).

    Raises
    ------
    BuildError
        Missing ``root``, a ``root`` without splits, an unwritable ``out``, or a kept split
        built with other feature parameters.
    """
    root, out = Path(root), Path(out)
    if not isinstance(jobs, int) or jobs < 1:
        raise BuildError(f"jobs must be a positive integer, got {jobs!r}")
    backend = resolve_backend(backend, jobs)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise BuildError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not root.is_dir():
        raise BuildError(f"{root}: " + ("not a folder" if root.exists() else "no such folder"))
    found = find_splits(root)
    if not found:
        raise BuildError(f"{root}: no split folder with an examples.json "
                         f"(expected {', '.join(s + '/' for s in SPLITS)})")
    if splits is not None:
        missing = [s for s in splits if s not in found]
        if missing:
            raise BuildError(f"{root}: no split {', '.join(missing)} "
                             f"(found {', '.join(found)})")
        found = [s for s in found if s in splits]
    _check_writable(out)

    reports, train_stats = [], None
    # loky's worker processes share this machine's files: they hand features over in a ring
    local_processes = backend == "loky" and jobs > 1 and os.name == "posix"
    with _locked(out), _backend(backend, jobs):
        for split in found:
            path = split_path(out, split)
            if path.is_file() and not overwrite:
                try:
                    with h5py.File(path, "r") as f:
                        differences = read_params(f).differences(params)
                except OSError as err:
                    if held_by_another(err):
                        raise BuildError(f"{path}: open in another program; close it there "
                                         f"and try again") from None
                    raise BuildError(f"{path}: exists and is not a timbremap split file; move "
                                     f"it away or use --overwrite") from None
                except ValueError as err:  # StoreError, or parameters FeatureParams refuses
                    raise BuildError(f"{path}: exists, but its feature parameters cannot be "
                                     f"read ({err}); use --overwrite to rebuild it") from None
                if differences:
                    raise BuildError(f"{path}: exists and was built with other feature parameters "
                                     f"({'; '.join(differences)}); use --overwrite to rebuild")
                reports.append(_kept(split, path, root))
                continue
            if split != "train" and train_stats is None:
                train_stats = _existing_train_stats(out, params)
            items, problems = read_split(root / split)
            if split == "train" and not items:
                first = f"; first: {problems[0][0]}: {problems[0][1]}" if problems else ""
                raise BuildError(f"{root / split}: no usable notes in the train split "
                                 f"({len(problems)} problems{first})")
            try:
                report, stats = _build_split(split, root, path, params, items, problems,
                                             train_stats if split != "train" else None, jobs,
                                             batch_size, progress, local_processes)
            except OSError as err:  # a full disk, most likely; the journal keeps what was done
                raise BuildError(f"{path}: cannot be written ({err.strerror or err}); what was "
                                 f"done is kept in {path.name}.partial: make room and run the "
                                 f"same build again to resume") from None
            if items and not report.n_examples:
                first = report.skipped[0] if report.skipped else ("?", "?")
                if split == "train":  # no statistics, nothing to train on: not a store
                    path.unlink()
                    raise BuildError(f"{root / split}: none of its {len(items)} notes could be "
                                     f"used (first: {first[0]}: {first[1]}); nothing written")
                log.warning("%s: none of its %d notes could be used (first: %s: %s)",
                            root / split, len(items), *first)
            if split == "train":
                train_stats = _Summary(stats.mean, stats.std, stats.count) if stats.count else None
            reports.append(report)
    return reports


def _kept(split: str, path: Path, root: Path) -> SplitReport:
    """The report of a finished split left as it is, with a warning when its inputs changed."""
    with h5py.File(path, "r") as f:
        skipped = [tuple(row) for row in f["skipped"].asstr()[:]] if "skipped" in f else []
        report = SplitReport(split, path, "kept", int(f["spectra"].shape[0]),
                             n_skipped=len(skipped), skipped=skipped,
                             n_adjusted=len(f["adjusted"]) if "adjusted" in f else 0)
        digest = f.attrs.get("inputs_digest")
    try:
        items, _ = read_split(root / split)
        changed = digest is not None and digest != _inputs_digest(items)
    except (OSError, ValueError):
        changed = True
    if changed:
        log.warning("%s: kept, but %s changed since it was built; use --overwrite to rebuild",
                    path, root / split)
    else:
        log.info("%s: finished store kept (use --overwrite to rebuild)", path)
    return report


def _existing_train_stats(out: Path, params: FeatureParams) -> Optional["_Summary"]:
    path = split_path(out, "train")
    if not path.is_file():
        log.warning("no train split: each split's statistics are its own")
        return None
    with h5py.File(path, "r") as f:
        if read_params(f).differences(params):
            raise BuildError(f"{path}: built with other feature parameters; use --overwrite")
        attrs = f["spectra"].attrs
        if "mean" not in attrs:
            return None
        try:
            mean, std = read_stats(f)
        except StoreError as err:
            raise BuildError(str(err)) from None
        return _Summary(mean, std, int(attrs["stats_count"]))
