"""Random batches by index from a store, for Keras.

:class:`StoreBatches` is a ``keras.utils.PyDataset``: each step reads one batch of notes by
index through :class:`featurestore.reader.SpectraReader` (a memory map of the uncompressed
chunks by default), so a split is never loaded whole. Sampling is class-balanced: every label
of the store's label set is drawn equally often and, within a label, every group equally often
(``/group``: NSynth's instruments, a player or session, a recording), so the model cannot win
by memorising the largest ones.

A split larger than the memory training may keep of it in the page cache is read in the block
order instead (:mod:`training.blockorder`): runs of consecutive notes in random order,
shuffled within a buffer, each run one read of the file.

A batch is what the store holds, float16, with its labels: casting, normalising, augmenting and
mixing happen in the model, on the accelerator where there is one. For mixup the batches carry
the mixing weights and the labels mixed with them; :class:`training.models.Mixup` mixes the
notes alike.
"""
from __future__ import annotations

import logging
import math
from typing import Optional, Tuple

import keras
import numpy as np

from featurestore import schema
from featurestore.reader import SpectraReader
from featurestore.store import StoreError, split_path

from .blockorder import Buffers, block_plan, memory_for_cache
from .config import TrainConfig

log = logging.getLogger(__name__)

__all__ = ["StoreBatches", "run_batches", "balanced_weights", "folder_weights"]

#: Buffers of the block order kept in memory at once: the one being trained on, the one read
#: ahead, and one for a reader thread that lags behind.
BUFFERS_KEPT = 3


def balanced_weights(labels: np.ndarray, instruments: Optional[np.ndarray] = None) -> np.ndarray:
    """Sampling probability of each note: the labels present equally likely (whatever their
    number), then the instruments within a label.

    Parameters
    ----------
    labels : np.ndarray of int, shape ``(N,)``
    instruments : np.ndarray, shape ``(N,)``, optional
        Instrument ids, or any other groups (``/group``: a player, a session, a recording);
        without them, notes of a label are equally likely.

    Returns
    -------
    np.ndarray, float64, shape ``(N,)``, summing to 1.
    """
    labels = np.asarray(labels)
    if instruments is None:
        instruments = np.zeros_like(labels)
    weights = np.zeros(len(labels), dtype=np.float64)
    families = np.unique(labels)
    for family in families:
        in_family = labels == family
        owners, counts = np.unique(instruments[in_family], return_counts=True)
        per_note = 1.0 / (len(families) * len(owners) * counts)
        weights[in_family] = per_note[np.searchsorted(owners, instruments[in_family])]
    return weights / weights.sum()


def folder_weights(folders: np.ndarray) -> np.ndarray:
    """Weights under which a weighted mean over notes is the mean over their folders of each
    folder's mean: every folder counts the same, whatever its number of notes.

    Parameters
    ----------
    folders : np.ndarray of int, shape ``(N,)``
        Each note's folder (``/source_folder``), or any other groups.

    Returns
    -------
    np.ndarray, float32, shape ``(N,)``
        Mean 1; all ones for a single folder.
    """
    folders = np.asarray(folders)
    _, index, counts = np.unique(folders, return_inverse=True, return_counts=True)
    return (len(folders) / (len(counts) * counts[index])).astype(np.float32)


def _warn_of_folders_without_notes(path, folders: np.ndarray, names):
    """Warn of the NOTES folders (``names``, the store's) none of a split's notes come from:
    the mean over folders leaves them out."""
    missing = [str(name) for k, name in enumerate(names) if not (folders == k).any()]
    if missing:
        log.warning("%s: no notes of %s: the validation accuracy, the mean over the NOTES "
                    "folders, is over the others", path, ", ".join(missing))


class StoreBatches(keras.utils.PyDataset):
    """Batches ``(x, y)`` of one split: ``x`` float16 ``(B, frames, bins)`` (the stored
    features as stored: the model casts and normalises), ``y`` one-hot float32 ``(B, C)`` over
    the split's label set (``label_names``, ``C`` labels).

    Parameters
    ----------
    path : pathlib.Path
        A split file.
    batch_size : int
    shuffle : bool
        Training mode: each epoch draws ``steps`` batches of random indices (balanced when
        ``balance``); otherwise the split is read once, in order.
    balance : bool
    steps : int, optional
        Batches per epoch in training mode (default ``ceil(N / batch_size)``).
    mixup_alpha : float
        For a model behind :func:`training.models.with_mixup`: ``x`` is ``{'spectra': x,
        'mix': w}``, with ``w`` float32 ``(B,)`` from Beta(alpha, alpha) (at least 0.5: the
        note stays the main one) and ``y`` mixed as :class:`~training.models.Mixup` mixes the
        notes (``2k`` with ``2k + 1``); read in order, ``w`` is 1 (no mixing). 0: no mixup.
    seed : int
        Epoch ``e`` uses ``default_rng([seed, e])``: a resumed run sees the same batches.
    loader : {'auto', 'mmap', 'h5py', 'block'}
        ``'mmap'`` and ``'h5py'``: notes drawn independently, read one by one by that method
        of :class:`~featurestore.reader.SpectraReader`. ``'block'``: the block order
        (:mod:`training.blockorder`). ``'auto'``: the block order when the split is larger
        than :func:`~training.blockorder.memory_for_cache` or on object storage, else
        ``'mmap'``. Read in order (``shuffle=False``), every loader reads runs of notes.
    block_mib, buffer_mib : float
        The block order's runs of notes and the buffer their notes are shuffled in, in MiB
        (at least one note each); :data:`BUFFERS_KEPT` buffers are held at once.
    multiple_of : int
        Read in order (``shuffle=False``), batches are ``(x, y, weight)`` whose length is a
        multiple of this (the devices a batch is split over): a short last batch is filled with
        repeated notes of weight 0, which count in no metric.
    weigh_by : {None, 'folders', 'labels'}
        Read in order, each note weighs :func:`folder_weights` of its ``/source_folder``, or
        of its label, in ``(x, y, weight)``: Keras's weighted metrics (and loss) are then the
        mean over the folders, or over the labels (accuracy: balanced accuracy). A split
        without ``/source_folder`` weighs every note the same by folder.
    **kwargs
        ``keras.utils.PyDataset``'s: ``workers`` threads read batches ahead, and at most
        ``max_queue_size`` batches wait (each batch depends on its epoch and index alone, so
        the threads change no result).
    """

    def __init__(self, path, batch_size: int, shuffle: bool = False, balance: bool = True,
                 steps: Optional[int] = None, mixup_alpha: float = 0.0, seed: int = 0,
                 loader: str = "auto", block_mib: float = 0.5, buffer_mib: float = 256.0,
                 multiple_of: int = 1, weigh_by: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        if loader not in ("auto", "mmap", "h5py", "block"):
            raise ValueError(f"loader must be 'auto', 'mmap', 'h5py' or 'block', got {loader!r}")
        if shuffle and weigh_by:
            raise ValueError("weigh_by needs shuffle=False (it weighs the notes of a split read "
                             "in order)")
        self.multiple_of = int(multiple_of)
        self.reader = SpectraReader(path, method="h5py" if loader == "h5py" else "mmap")
        self.note_weights = None
        if weigh_by == "labels":
            self.note_weights = folder_weights(self.reader.labels)
        elif weigh_by == "folders" and self.reader.has(schema.SOURCE_FOLDER):
            folders = self.reader.field(schema.SOURCE_FOLDER)
            self.note_weights = folder_weights(folders)
            _warn_of_folders_without_notes(path, folders, self.reader.file[
                schema.SOURCE_FOLDER].attrs[schema.LIST_NAMES])
        self.label_names = self.reader.label_names
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.mixup_alpha = float(mixup_alpha)
        self.seed = seed
        self.epoch = 0
        n = len(self.reader)
        if n == 0:
            raise StoreError(f"{path}: the split holds no notes")
        self.steps = steps or math.ceil(n / self.batch_size)
        if shuffle:
            # within a label, each group (NSynth: instrument) equally often
            owners = self.reader.field(schema.GROUP if self.reader.has(schema.GROUP)
                                       else schema.INSTRUMENT)
            self.weights = (balanced_weights(self.reader.labels, owners) if balance
                            else np.full(n, 1.0 / n))
        big = self.reader.method == "remote" or n * self.reader.note_bytes > memory_for_cache()
        self.order = ("block" if shuffle and (loader == "block" or loader == "auto" and big)
                      else "random")
        self.block = max(1, int(block_mib * 2**20 // self.reader.note_bytes))
        self.window = max(1, int(buffer_mib * 2**20 // (self.block * self.reader.note_bytes)))
        self._buffers = Buffers(BUFFERS_KEPT)
        self._order = self._draw()
        self.failure: Optional[StoreError] = None  # the first error a read raised

    def _draw(self):
        """This epoch's notes: an array of indices, or a block plan."""
        self._buffers.clear()
        if not self.shuffle:
            return np.arange(len(self.reader))
        rng = np.random.default_rng([self.seed, self.epoch])
        total = self.steps * self.batch_size
        if self.order == "block":
            return block_plan(self.weights, total, block=self.block, window=self.window, rng=rng)
        return rng.choice(len(self.reader), size=total, p=self.weights)

    def _read(self, index: int):
        """Spectra, labels and weights of batch ``index``."""
        part = np.s_[index * self.batch_size:(index + 1) * self.batch_size]
        if self.order == "random":  # in order (shuffle=False), a run: one read
            x, labels = self.reader.batch(self._order[part])
            weight = (np.ones(len(labels), np.float32) if self.note_weights is None
                      else self.note_weights[self._order[part]])
            return x, labels, weight
        plan = self._order
        idx, windows, slots = plan.notes[part], plan.window[part], plan.slot[part]
        x = np.empty((len(idx),) + self.reader.shape, dtype=np.float16)
        cuts = [0, *(np.flatnonzero(np.diff(windows)) + 1), len(idx)]  # buffer by buffer
        for a, b in zip(cuts[:-1], cuts[1:]):
            with self._buffer(plan, int(windows[a])) as buffer:
                for k in range(a, b):  # note by note: faster than a fancy index of the buffer
                    x[k] = buffer[slots[k]]
        return x, self.reader.labels[idx], np.ones(len(idx), np.float32)

    def _buffer(self, plan, w: int):
        """The notes of buffer ``w``, read block by block in file order, the next buffer's
        blocks asked of the kernel ahead (a context: the buffer is held while in it)."""
        n, block = len(self.reader), plan.block
        sizes = [min(int(s) + block, n) - int(s) for s in plan.blocks[w]]

        def fill(array):
            self.reader.runs([(int(s), int(s) + size) for s, size in zip(plan.blocks[w], sizes)],
                             array)
            for s in plan.blocks[w + 1] if w + 1 < len(plan.blocks) else ():
                self.reader.will_need(int(s), min(int(s) + block, n))
        # keyed by the plan too: a thread still reading the last epoch's plan never fills a
        # buffer of this epoch's
        return self._buffers.use((id(plan), w), (sum(sizes),) + self.reader.shape, np.float16,
                                 fill, owner=plan)

    def __len__(self):
        return self.steps if self.shuffle else math.ceil(len(self.reader) / self.batch_size)

    def __getitem__(self, index):
        try:
            x, labels, weight = self._read(index)
        except StoreError as err:  # kept: the backend passes it on as its own error's text
            self.failure = self.failure or err
            raise
        n = len(labels)
        y = np.eye(len(self.label_names), dtype=np.float32)[labels]
        mix = np.ones(n, np.float32)
        if self.shuffle and self.mixup_alpha > 0:
            rng = np.random.default_rng([self.seed, self.epoch, index, 1])
            mix = rng.beta(self.mixup_alpha, self.mixup_alpha, size=n).astype(np.float32)
            mix = np.maximum(mix, 1 - mix)
            y = mix[:, None] * y + (1 - mix[:, None]) * y[np.arange(n) ^ 1]
        fill = 0 if self.shuffle else -len(x) % self.multiple_of
        if fill:
            again = np.arange(fill) % len(x)
            x, y, mix = (np.concatenate([a, a[again]]) for a in (x, y, mix))
            weight = np.concatenate([weight, np.zeros(fill, np.float32)])
        if self.mixup_alpha > 0:
            x = {"spectra": x, "mix": mix}
        weighted = not self.shuffle and (self.multiple_of > 1 or self.note_weights is not None)
        return (x, y, weight) if weighted else (x, y)

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._draw()

    def set_epoch(self, epoch: int):
        """Continue the sampling sequence at ``epoch`` (for resumed runs)."""
        self.epoch = epoch
        self._order = self._draw()

    def close(self):
        self.reader.close()


def run_batches(store, config: TrainConfig, n_train: int
                ) -> Tuple[StoreBatches, StoreBatches]:
    """``(train, valid)``: random balanced training batches (``config.workers`` threads read
    them ahead), and the validation split (each NOTES folder, or each label, weighing the same
    with ``config.valid_weights`` ``'folders'`` or ``'labels'``). With several devices
    (:func:`training.backend.replicas`) a batch holds ``batch_size`` notes for each of them, and
    an epoch as many notes in fewer steps."""
    from .backend import replicas
    devices = replicas()
    batch = config.batch_size * devices
    steps = math.ceil(config.steps(n_train) / devices)
    train_data = StoreBatches(split_path(store, "train"), batch, shuffle=True,
                              balance=config.balance, steps=steps, mixup_alpha=config.mixup(),
                              seed=config.seed, loader=config.loader, block_mib=config.block_mib,
                              buffer_mib=config.buffer_mib, workers=config.workers,
                              max_queue_size=2 * config.workers)
    return train_data, StoreBatches(split_path(store, "valid"), 2 * batch, loader=config.loader,
                                    mixup_alpha=config.mixup(), multiple_of=devices,
                                    weigh_by=None if config.valid_weights == "notes"
                                    else config.valid_weights)
