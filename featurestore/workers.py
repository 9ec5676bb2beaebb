"""The build's parallel map: workers that read audio and compute features for batches of notes.

Workers are joblib threads or loky processes (:func:`resolve_backend`), or the workers of a dask
cluster (:func:`parallel_backend`); the build's own process is the only writer
(:mod:`featurestore.splitfile`). Workers on the build's machine compute each batch's features
straight into a slot of a small ring (:class:`Ring`): in memory for threads, a memory-mapped
file next to the output for loky processes (chosen for more than :data:`THREADS_UP_TO` jobs),
so 250 KB a note are not pickled through pipes. The writer copies them once, into the HDF5
file, and frees the slot; a worker waits for a free slot, so the features waiting to be written
stay within the ring however far the disk falls behind. Dask workers, which may run on other
machines, return their features as arrays, and the build submits batches in order no more than
:data:`RING_SLOTS_PER_JOB` per cluster thread ahead of the writer (:func:`on_dask`), so there too
what waits for the disk stays bounded. Threads and loky processes are measured against each
other in ``docs/extraction.md``.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, Tuple

import numpy as np
from joblib import cpu_count, parallel_config

from .audio import AudioError
from .errors import BuildError, check_positive_int, install_hint
from .files import size_text
from .features import Workspace, note_features
from .params import FeatureParams
from .stats import RunningStats

__all__ = ["BACKENDS", "Ring", "extract", "in_order", "on_dask", "parallel_backend",
           "resolve_backend", "ring_kind", "usable_memory", "usable_jobs", "check_ring_fits"]

log = logging.getLogger(__name__)
BACKENDS = ("auto", "loky", "dask", "threading")
#: ``backend='auto'`` runs up to this many jobs as threads, more as loky processes.
THREADS_UP_TO = 2
RING_SLOTS_PER_JOB = 4  # batches of features a worker can be ahead of the writer


def usable_jobs(jobs: int, backend: str) -> int:
    """``jobs`` checked, and cut to the cores this process may use (CPU affinity, cgroups),
    with a warning, but for dask (whose workers may be other machines): more would only
    queue, and cost their memory."""
    check_positive_int("jobs", jobs)
    cores = cpu_count()
    if backend != "dask" and jobs > cores:
        log.warning("jobs=%d is more than the %d cores here; building with %d", jobs, cores,
                    cores)
        return cores
    return jobs


def check_ring_fits(most: int, params: FeatureParams, jobs: int, batch_size: int,
                    backend: str):
    """Refuse a ``batch_size`` whose batches of features, those the workers may be ahead of
    the writer by, would take more than half the memory; a batch holds at most ``most``
    notes, those of the largest split built. A dask cluster's workers hold theirs in their
    own memory."""
    if backend == "dask":
        return
    batches, batch = RING_SLOTS_PER_JOB * jobs, min(batch_size, most)
    held, room = batches * batch * params.note_bytes, usable_memory() // 2
    if held > room:
        notes = f"{batch} notes" + (" (a split's)" if batch < batch_size else "")
        raise BuildError(f"batch_size must keep the notes being built within half the memory "
                         f"({size_text(room)}): {batches} batches of {notes} of "
                         f"{params.note_bytes / 2**10:.0f} KiB ({jobs} jobs) would take "
                         f"{size_text(held)}")


def usable_memory() -> int:
    """Bytes of memory this process may use: the machine's RAM, or its cgroup's limit when
    lower."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        ram = min(ram, int(limit)) if limit.isdigit() else ram
    except OSError:
        pass
    return ram


@dataclass(frozen=True)
class Ring:
    """A ring of ``slots`` batches of features, shared by the writer and its workers: in the
    build's own memory for threads (:meth:`in_memory`), a memory-mapped file beside the store
    for loky processes (:meth:`beside`).

    It holds an int64 header, the number of batches the writer has consumed (:data:`STOPPED`
    once the writer has stopped), then the slots. Batch ``k`` of a run fills slot
    ``k % slots`` once the writer has consumed batch ``k - slots``; batches are taken and
    consumed in order, so the batch the writer waits for never waits itself, and at most
    ``slots`` batches of features wait for a writer slower than its workers (a disk that
    cannot take them as fast). Workers map the file anew for every batch (a rebuilt ring is a
    new file: a long-lived worker never writes into an old one).
    """

    path: Optional[str]  # None: in memory
    slots: int
    batch_size: int
    shape: Tuple[int, int]
    owner: int  # the writer's pid: a worker stops waiting when it is gone
    memory: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    HEADER = 64  # bytes, keeps the slots aligned
    STOPPED = -1

    @classmethod
    def size(cls, slots: int, batch_size: int, shape) -> int:
        """Bytes of a ring."""
        return cls.HEADER + slots * batch_size * int(np.prod(shape)) * 2

    @classmethod
    def create(cls, path: Path, slots: int, batch_size: int, shape) -> "Ring":
        """A ring in a new file at ``path``."""
        with open(path, "wb") as f:
            f.truncate(cls.size(slots, batch_size, shape))  # sparse and zero: nothing consumed
        return cls(str(path), slots, batch_size, tuple(shape), os.getpid())

    @classmethod
    @contextlib.contextmanager
    def beside(cls, store: Path, slots: int, batch_size: int, shape):
        """A new ring file ``STORE.ring-ID`` for one run, stopped and removed afterwards."""
        ring = cls.create(store.with_name(f"{store.name}.ring-{uuid.uuid4().hex[:12]}"), slots,
                          batch_size, shape)
        try:
            with ring._stopping():
                yield ring
        finally:
            Path(ring.path).unlink(missing_ok=True)

    @classmethod
    @contextlib.contextmanager
    def in_memory(cls, slots: int, batch_size: int, shape):
        """A new ring in this process's memory for one run (workers that are threads),
        stopped afterwards."""
        ring = cls(None, slots, batch_size, tuple(shape), os.getpid(),
                   np.zeros(cls.size(slots, batch_size, shape), dtype=np.uint8))
        with ring._stopping():
            yield ring

    @contextlib.contextmanager
    def _stopping(self):
        """Tell waiting workers that the writer has stopped, however it stops."""
        try:
            yield
        finally:
            self.open()[0][0] = self.STOPPED

    def open(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(consumed, slots)``: the header as a 1-element int64 array, and the slots as
        float16 ``(slots, batch_size, frames, bins)``, both views of the ring."""
        memory = self.memory
        if memory is None:
            memory = np.memmap(self.path, dtype=np.uint8, mode="r+")
        consumed = memory[:8].view(np.int64)
        slots = memory[self.HEADER:].view(np.float16).reshape(
            (self.slots, self.batch_size) + self.shape)
        return consumed, slots

    def slot_for(self, number: int, timeout: float = 600.0) -> np.ndarray:
        """Worker side: batch ``number``'s slot, once the writer is done with its last use."""
        consumed, slots = self.open()
        name = self.path or "the build's ring"
        deadline = time.monotonic() + timeout
        while consumed[0] < number - self.slots + 1:
            if consumed[0] == self.STOPPED:
                raise BuildError(f"{name}: the build's writer stopped before batch {number}")
            try:
                if self.memory is None:  # a file: the writer is another process
                    os.kill(self.owner, 0)
            except ProcessLookupError:
                raise BuildError(f"{name}: the build's writer (pid {self.owner}) is gone") \
                    from None
            if time.monotonic() > deadline:
                raise BuildError(f"{name}: batch {number} waited {timeout:g} s for the "
                                 f"writer to free its slot")
            time.sleep(0.001)
        return slots[number % self.slots]


def extract(batch: Sequence[Tuple[int, str, float]], params: FeatureParams,
            ring: Optional[Ring] = None, number: int = 0, hop: Optional[float] = None):
    """Worker: features, per-note statistics, skips and adjustments of a batch of notes, each
    ``(position, file, offset in seconds)``; ``hop``: the notes are windows of longer
    recordings, ``hop`` seconds apart (see :func:`featurestore.audio.load_audio`).

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
    for pos, path, offset in batch:
        try:  # the features go straight into their row; a skipped note's row is reused
            _, total, squares, adjustments = note_features(
                Path(path), params, out=features[len(done)], workspace=workspace, offset=offset,
                hop=hop)
        except AudioError as err:
            skipped.append((pos, err.reason))
            continue
        stats.append(RunningStats.from_sums(params.n_frames, total, squares))
        done.append(pos)
        if adjustments:
            adjusted.append((pos, "; ".join(adjustments)))
    return done, None if ring is not None else features[:len(done)], stats, skipped, adjusted


def in_order(submit: Callable, calls: Iterable[tuple], ahead: int) -> Iterator:
    """The results of joblib ``delayed`` calls, in order, each submitted with
    ``submit(function, *args, **kwargs)`` (which returns a future) no more than ``ahead`` calls
    before its result is taken: a consumer slower than the workers holds at most ``ahead``
    results. (joblib's generator submits a call whenever one finishes, however many results
    wait to be taken.)"""
    pending = collections.deque()
    try:
        for function, args, kwargs in calls:
            pending.append(submit(function, *args, **kwargs))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # the consumer stopped, or a call failed: what was submitted is not needed
        for future in pending:
            future.cancel()


def on_dask(calls: Iterable[tuple]) -> Iterator:
    """:func:`in_order` on the current dask client, :data:`RING_SLOTS_PER_JOB` calls ahead per
    thread of its cluster when the build starts (an adaptive cluster that grows later keeps
    that bound)."""
    from dask.distributed import get_client
    client = get_client()
    threads = sum(client.nthreads().values())

    def submit(function, *args, **kwargs):
        return client.submit(function, *args, pure=False, **kwargs)
    return in_order(submit, calls, RING_SLOTS_PER_JOB * max(1, threads))


@contextlib.contextmanager
def parallel_backend(backend: str, jobs: int):
    """joblib's parallel configuration; for dask, a client (an existing one, or a local cluster)
    that :func:`on_dask` finds."""
    if backend != "dask":
        with parallel_config(backend=backend, n_jobs=jobs):
            yield
        return
    try:
        from dask.distributed import Client, LocalCluster, get_client
    except ImportError:
        raise BuildError(f"--backend dask needs dask.distributed: {install_hint('dask')}") \
            from None
    try:
        get_client()
        own = contextlib.nullcontext()
    except ValueError:  # no client yet: run a local cluster for this build
        log.info("starting a dask LocalCluster with %d workers", jobs)
        own = Client(LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                  dashboard_address=None))
    with own:
        yield


def resolve_backend(backend: str, jobs: int) -> str:
    """The joblib backend ``build_store`` runs: ``'auto'`` is ``'threading'`` for up to
    :data:`THREADS_UP_TO` jobs and ``'loky'`` beyond; other names are kept.

    The hot path (soundfile reads, the numba kernels, scipy's FFT, numpy on whole notes) runs
    without the GIL, so on few cores threads lose little to it and save each loky process's
    start-up (its imports and numba's LLVM; ``docs/extraction.md`` measures both). On more
    cores the GIL-bound parts would add up, so processes take over.
    """
    if backend not in BACKENDS:
        raise BuildError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "threading" if jobs <= THREADS_UP_TO else "loky"
    return backend


def ring_kind(backend: str, jobs: int) -> Optional[str]:
    """Where a build's workers hand features over to the writer: ``'memory'`` (a :class:`Ring`
    of threads), ``'file'`` (loky processes sharing this machine's files), ``None`` (one job,
    or dask workers, whose results come back with them)."""
    if jobs > 1 and backend == "threading":
        return "memory"
    if jobs > 1 and backend == "loky" and os.name == "posix":
        return "file"
    return None
