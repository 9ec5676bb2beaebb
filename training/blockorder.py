"""The block-wise reading order: contiguous runs of notes, read in random order and shuffled
within a buffer, for a split larger than the memory training may keep of it.

Reading notes one by one at random costs one seek (or one request, on object storage) a note;
reading runs of notes as they lie in the file costs one per run. WebDataset's shards and
TFRecord's interleaved readers do the same: :func:`block_plan` draws an epoch as runs
("blocks") of ``block`` consecutive notes in random order, gathers ``window`` blocks into a
buffer and shuffles the notes within it. Class balance is kept in expectation, and a note drawn
more than once a pass is drawn in different buffers: with ``r`` a note's sampling weight times
the split's size (its expected takes a pass), a block is read ``floor(m)`` or ``ceil(m)`` times a
pass, ``m`` its notes' largest ``r``, and each read takes each of its notes with probability
``r / m`` (when sampling is uniform every ``r`` is 1, so a pass takes every note once).
"""
from __future__ import annotations

import contextlib
import mmap
import threading
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional

import numpy as np

from featurestore.workers import usable_memory

__all__ = ["BlockPlan", "block_plan", "Buffers", "memory_for_cache"]


@dataclass(frozen=True)
class BlockPlan:
    """One epoch of the block order.

    Attributes
    ----------
    notes : np.ndarray, int64, shape ``(total,)``
        The notes in the order they are trained on.
    window : np.ndarray, int64, shape ``(total,)``
        The buffer each position's note is read into.
    slot : np.ndarray, int64, shape ``(total,)``
        The note's row within its buffer.
    blocks : list of np.ndarray, int64
        For each buffer, the first note of each of its blocks, in file order (the order they
        are read in; a block read twice in one buffer is there twice).
    block : int
        Notes a block (the last block of the split may be shorter).
    """

    notes: np.ndarray
    window: np.ndarray
    slot: np.ndarray
    blocks: List[np.ndarray]
    block: int


def block_plan(weights: np.ndarray, total: int, *, block: int, window: int,
               rng: np.random.Generator) -> BlockPlan:
    """Draw ``total`` notes block by block.

    Parameters
    ----------
    weights : np.ndarray, float, shape ``(N,)``
        Sampling probability of each note (summing to 1): the expected share of the epoch each
        note takes.
    total : int
        Notes in the epoch.
    block : int
        Consecutive notes read at once (>= 1).
    window : int
        Blocks a buffer holds: the notes of ``window`` blocks are shuffled together (>= 1).
    rng : numpy.random.Generator

    Returns
    -------
    BlockPlan
    """
    n = len(weights)
    if n == 0 or total < 1 or block < 1 or window < 1:
        raise ValueError(f"block_plan needs notes, total >= 1, block >= 1 and window >= 1; got "
                         f"{n} notes, total={total}, block={block}, window={window}")
    expected = np.asarray(weights, dtype=np.float64) * n  # takes per note and pass (mean 1)
    starts = np.arange(0, n, block)
    sizes = np.minimum(starts + block, n) - starts
    most = np.maximum.reduceat(expected, starts)  # each block's largest expected take
    notes, windows, slots, buffers = [], [], [], []
    drawn = 0
    while drawn < total:  # passes: each block read about `most` times, in a new random order
        reads = np.floor(most).astype(np.int64) + (rng.random(len(most)) < most % 1)
        visits = rng.permutation(np.repeat(np.arange(len(starts)), reads))
        for first in range(0, len(visits), window):
            chosen = np.sort(visits[first:first + window])  # in file order
            members = np.concatenate([np.arange(starts[b], starts[b] + sizes[b])
                                      for b in chosen])
            odds = expected[members] / np.repeat(most[chosen], sizes[chosen])
            slot = rng.permutation(np.flatnonzero(rng.random(len(members)) < odds))
            if not len(slot):
                continue
            notes.append(members[slot])
            slots.append(slot)
            windows.append(np.full(len(slot), len(buffers)))
            buffers.append(starts[chosen])
            drawn += len(slot)
            if drawn >= total:
                break
    notes, windows, slots = (np.concatenate(parts)[:total].astype(np.int64)
                             for parts in (notes, windows, slots))
    return BlockPlan(notes, windows, slots, buffers[:int(windows[-1]) + 1], block)


def memory_for_cache() -> int:
    """Bytes of a split that training counts on the page cache to keep: half of the memory
    this process may use (:func:`featurestore.workers.usable_memory`)."""
    return usable_memory() // 2


@dataclass
class _Buffer:
    lock: threading.Lock
    owner: object = None  # what the key names, kept alive while the buffer is held
    base: Optional[np.ndarray] = None  # the memory, reused by a later buffer
    array: Optional[np.ndarray] = None  # the notes, once read
    users: int = 0
    dropped: bool = False


class Buffers:
    """The block order's buffers, each read once (by whichever thread asks first), at most
    ``kept`` of them held (the ones asked for last), their memory reused by the next ones
    (fresh memory costs the kernel a page fault a page).

    Parameters
    ----------
    kept : int
        Buffers held at once: the oldest beyond it is dropped when a new one is asked for.
    """

    def __init__(self, kept: int):
        self.kept = int(kept)
        self._lock = threading.Lock()
        self._held: Dict[int, _Buffer] = {}
        self._spare: List[np.ndarray] = []

    @contextlib.contextmanager
    def use(self, key, shape: tuple, dtype, fill: Callable[[np.ndarray], None], *,
            owner: object = None) -> Iterator[np.ndarray]:
        """Buffer ``key`` (any hashable) of ``shape``, filled by ``fill(array)`` the first time
        it is asked for; held (not reused) until the ``with`` block ends. ``owner`` is kept
        alive as long as the buffer (for a key made of its ``id``)."""
        with self._lock:
            entry = self._held.get(key)
            if entry is None:
                entry = self._held[key] = _Buffer(threading.Lock(), owner)
                for old in [k for k in self._held if k != key][:len(self._held) - self.kept]:
                    self._drop(self._held.pop(old))  # the oldest asked for
            entry.users += 1
        try:
            with entry.lock:
                if entry.array is None:
                    with self._lock:
                        entry.base = self._take(shape, dtype)
                    array = entry.base[:shape[0]]
                    fill(array)
                    entry.array = array
            yield entry.array
        finally:
            with self._lock:
                entry.users -= 1
                if entry.dropped and not entry.users:
                    self._recycle(entry)

    def clear(self):
        """Drop every buffer (a new epoch's plan): their memory is kept for the next ones."""
        with self._lock:
            for entry in self._held.values():
                self._drop(entry)
            self._held = {}

    def _drop(self, entry: _Buffer):
        entry.dropped = True
        if not entry.users:
            self._recycle(entry)

    def _recycle(self, entry: _Buffer):
        if entry.base is not None:
            self._spare.append(entry.base)
        entry.base = entry.array = None

    def _take(self, shape: tuple, dtype) -> np.ndarray:
        for i, spare in enumerate(self._spare):
            if spare.shape[0] >= shape[0] and spare.shape[1:] == shape[1:] \
                    and spare.dtype == dtype:
                return self._spare.pop(i)
        return _new_memory(shape, dtype)


def _new_memory(shape: tuple, dtype) -> np.ndarray:
    """An array in memory of its own, in huge pages where the kernel offers them (Linux's
    ``MADV_HUGEPAGE``): its first touch then costs a page fault every 2 MiB, not every 4 KiB."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if not hasattr(mmap, "MADV_HUGEPAGE") or not nbytes:
        return np.empty(shape, dtype)
    memory = mmap.mmap(-1, nbytes)
    memory.madvise(mmap.MADV_HUGEPAGE)
    return np.frombuffer(memory, dtype).reshape(shape)
