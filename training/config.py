"""Training configuration: one typed place for every knob, saved next to the model."""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from featurestore.errors import InputError, check_seed
from featurestore.files import size_text
from featurestore.params import KEYWORD_ONLY, FeatureParams

__all__ = ["TrainConfig", "MODELS", "EMBEDDING_LAYER", "LOADERS", "SCHEDULES", "PRECISIONS",
           "VALID_WEIGHTS", "EPOCH_NOTES", "EPOCH_MIN_STEPS", "RESUMABLE"]

MODELS = ("default", "tutorial")
#: The name of each model's embedding layer, the penultimate (what ``embed`` and ``place`` read).
EMBEDDING_LAYER = "embedding"
LOADERS = ("auto", "mmap", "h5py", "block")
SCHEDULES = ("plateau", "cosine")
PRECISIONS = ("auto", "mixed", "float32")
VALID_WEIGHTS = ("notes", "folders", "labels")
#: Settings a resumed run may take anew: how many threads read its batches and how long it
#: may run, not what it learns from them (the same batches, in the same order, whatever they
#: are; the loader is not one of them: the block loader draws its batches in another order).
RESUMABLE = ("workers", "budget_minutes")
#: The most threads that may read batches ahead (each holds its batch, and the queue two a
#: thread).
MAX_WORKERS = 64
#: Bytes an epoch's draws take at their peak for each note drawn, all drawn as it starts (the
#: block order's plan; the random order's take about a quarter of it).
DRAW_BYTES = 64
#: An epoch is one pass over the training split, or this many notes of it when it holds more
#: (so that validation, early stopping and backups come every few minutes on 2 cores), ...
EPOCH_NOTES = 20_000
#: ... and at least this many batches (2,048 notes at the default 64), drawn again, when it
#: holds fewer: the learning-rate and stopping rules count epochs, each enough steps to judge.
EPOCH_MIN_STEPS = 32
#: AdamW's starting learning rate for each model, where none is given (the tutorial's
#: network, with no batch norm, collapsed to one output at the default model's rate:
#: docs/quality.md).
LEARNING_RATES = {"default": 2e-3, "tutorial": 5e-4}
#: Fields added after runs were saved without them, and the value those runs had: a run
#: resumed from such a ``config.json`` goes on as it started.
BEFORE = {"time_pool": 2}
#: Fields saved under another name by earlier versions: the name a run's ``config.json`` may
#: hold, and the field's.
RENAMED = {"max_minutes": "budget_minutes"}
_BOOLS = (bool, np.bool_)
#: What a field of each annotated type takes, the Python type it is stored as, and how
#: messages say it.
_KINDS = {"bool": (_BOOLS, bool, "True or False"), "str": (str, str, "a string"),
          "int": (numbers.Integral, int, "an integer"), "float": (numbers.Real, float, "a number")}


@dataclass(frozen=True, **KEYWORD_ONLY)
class TrainConfig:
    """How a model is trained.

    Parameters
    ----------
    model : {'default', 'tutorial'}
        ``'default'``: our CNN (early downsampling, batch norm, global pooling, augmentation).
        ``'tutorial'``: the tutorial's network rebuilt in Keras 3 (no augmentation).
    epochs : int, optional
        At most this many epochs (default: as many as ``budget_minutes`` and ``patience``
        allow). Required by the ``cosine`` schedule.
    steps_per_epoch : int, optional
        Batches per epoch (default: one pass over the training split, ``ceil(N /
        batch_size)``, or :data:`EPOCH_NOTES` notes of it when it holds more, and at least
        :data:`EPOCH_MIN_STEPS`). The notes are drawn at random (balanced when ``balance``),
        so a pass sees most notes once.
    batch_size : int
        Notes per batch and device (even with mixup: notes are mixed in pairs).
    learning_rate : float, optional
        Learning rate of AdamW: constant until validation stops improving (``plateau``), or the
        peak of a cosine over ``epochs`` (``cosine``). Default: the model's
        (:data:`LEARNING_RATES`).
    schedule : {'plateau', 'cosine'}
        ``'plateau'``: the learning rate halves after every ``lr_patience`` epochs without a
        better validation accuracy (never rising again); training stops after ``patience``
        epochs without one, or when the budget is spent. ``'cosine'``: from
        ``learning_rate`` to 5 % of it over ``epochs`` epochs.
    lr_patience : int
        Epochs without a better validation accuracy before the ``plateau`` schedule halves the
        learning rate.
    weight_decay : float
        AdamW's decoupled weight decay, per unit of learning rate (Keras multiplies it by the
        rate: 0.05 takes about 1e-4 of each weight a step at the starting rate). 0.05 scored
        higher on the selection bank than 1e-4 in every seed (docs/quality.md).
    label_smoothing : float
    patience : int
        Epochs without a better validation accuracy before stopping.
    valid_weights : {'notes', 'folders', 'labels'}
        What the validation accuracy (the best epoch, the plateau, early stopping) averages:
        ``'notes'``, every note of the valid split the same; ``'folders'``, every NOTES folder
        the split was built from (``/source_folder``) the same, whatever its size: the mean of
        the folders' accuracies; ``'labels'``, every label the same (balanced accuracy).
    budget_minutes : float, optional
        Training time: no epoch starts that would, at the pace of the epochs so far, end
        after it (``None``: no limit). The model is the best epoch's, whatever stops the run.
    seed : int
        Seeds weights, sampling and augmentation.
    deterministic : bool
        Kernels that give the same bits on every run, so that the same seed gives the same
        model, and a resumed run the model of an uninterrupted one. They train more slowly (by
        how much: ``docs/training.md``), so they are asked for. Under TensorFlow they stay on
        for the rest of the process (it has no public way to turn them off).
    precision : {'auto', 'mixed', 'float32'}
        ``'mixed'``: float16 arithmetic with float32 weights, output and loss (Keras's
        ``mixed_float16``); ``'auto'``: mixed where a GPU is present, else float32.
    loader : {'auto', 'mmap', 'h5py', 'block'}
        How training batches are read from the store (:class:`training.data.StoreBatches`):
        notes drawn one by one through a memory map (``'mmap'``) or h5py (``'h5py'``), or in
        the block order, runs of consecutive notes shuffled within a buffer (``'block'``: for
        a split larger than RAM, or on object storage); ``'auto'``: the block order when the
        train split is larger than half the memory or on object storage, else ``'mmap'``
        (docs/scale.md).
    block_mib, buffer_mib : float
        The block order's runs of notes, and the buffer whose notes are shuffled together, in
        MiB.
    workers : int
        Threads that read training batches ahead of the training step (at most ``2 *
        workers`` batches wait in memory), 1 to :data:`MAX_WORKERS`; 1 reads each batch when
        it is needed.
    balance : bool
        Sample every label of the store equally often, and every instrument of a label
        equally often.
    augment : bool
        Gain, frequency shift, SpecAugment masks and mixup (default model only: ``False``
        for the tutorial's, whatever is given).
    gain_db, tilt_db, shift_bins : float, float, int
        Random gain within +-``gain_db``, spectral tilt within +-``tilt_db`` (low to high
        bins), frequency shift within +-``shift_bins`` bins (mel bands for the default model;
        at most a sixteenth of them).
    freq_masks, freq_mask_bins, time_masks, time_mask_frames : int
        SpecAugment masks: how many, and how wide at most (and at most a fifth of the note's
        bands or frames, so that a small note is not masked whole).
    mixup_alpha : float
        Mixup with Beta(alpha, alpha) weights (0 disables it).
    bands : int
        Mel bands the default model averages STFT bins into before its convolutions (stores
        of ``bands`` bins or fewer, e.g. mel features, are used as they are).
    time_pool : int
        Frames the default model averages before its first convolution (4: 64 ms with the
        default hop; 2 cost more per note and were no better on the selection bank:
        docs/quality.md).
    width : int
        Channels of the default model's first convolution (doubling per block).
    dropout : float
    bn_momentum : float
        Momentum of the batch-norm moving statistics (used at inference). 0.9 lets them settle
        within tens of steps; at 0.99 a third of their start values (mean 0, variance 1) is
        still in them after 100 steps, which makes the first epochs' validation scores
        meaningless (near chance) although the weights are the same.
    """

    model: str = "default"
    epochs: Optional[int] = None
    steps_per_epoch: Optional[int] = None
    batch_size: int = 64
    learning_rate: Optional[float] = None
    schedule: str = "plateau"
    lr_patience: int = 2
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    patience: int = 6
    valid_weights: str = "notes"
    budget_minutes: Optional[float] = 30.0
    seed: int = 0
    deterministic: bool = False
    precision: str = "auto"
    loader: str = "auto"
    block_mib: float = 0.5
    buffer_mib: float = 256.0
    workers: int = 2
    balance: bool = True
    augment: bool = True
    gain_db: float = 12.0
    tilt_db: float = 6.0
    shift_bins: int = 2
    freq_masks: int = 2
    freq_mask_bins: int = 12
    time_masks: int = 2
    time_mask_frames: int = 20
    mixup_alpha: float = 0.2
    bands: int = 96
    time_pool: int = 4
    width: int = 16
    dropout: float = 0.3
    bn_momentum: float = 0.9

    def __post_init__(self):
        self._check_types()
        if self.model not in MODELS:
            raise InputError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.model == "tutorial":  # its network never augments: config.json says so
            object.__setattr__(self, "augment", False)
        if self.learning_rate is None:
            object.__setattr__(self, "learning_rate", LEARNING_RATES[self.model])
        if self.loader not in LOADERS:
            raise InputError(f"loader must be one of {LOADERS}, got {self.loader!r}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.valid_weights not in VALID_WEIGHTS:
            raise InputError(f"valid_weights must be one of {VALID_WEIGHTS}, got "
                             f"{self.valid_weights!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("batch_size", "patience", "lr_patience", "bands", "time_pool", "width",
                     "workers"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("epochs", "steps_per_epoch"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.schedule == "cosine" and self.epochs is None:
            raise InputError("epochs must be given for the cosine schedule")
        if not 0 < self.learning_rate < math.inf:
            raise InputError(f"learning_rate must be positive and finite, got "
                             f"{self.learning_rate}")
        if self.budget_minutes is not None and not 0 < self.budget_minutes < math.inf:
            raise InputError(f"budget_minutes must be a positive, finite number of minutes "
                             f"(None: no limit), got {self.budget_minutes}")
        check_seed(self.seed)
        if not 0 < self.block_mib <= self.buffer_mib < math.inf:
            raise InputError(f"block_mib and buffer_mib must be positive and finite, the "
                             f"block at most the buffer; got {self.block_mib} and "
                             f"{self.buffer_mib}")
        for name in ("weight_decay", "gain_db", "tilt_db", "mixup_alpha"):
            if not 0 <= getattr(self, name) < math.inf:
                raise InputError(f"{name} must be >= 0 and finite, got {getattr(self, name)}")
        if self.mixup() and self.batch_size % 2:
            raise InputError(f"batch_size must be even with mixup (notes mixed in pairs; no "
                             f"mixup without augmentation: --no-augment), got {self.batch_size}")
        if not 0 <= self.dropout < 1 or not 0 <= self.label_smoothing < 1:
            raise InputError("dropout and label_smoothing must be in [0, 1)")
        if not 0 <= self.bn_momentum <= 1:
            raise InputError(f"bn_momentum must be in [0, 1], got {self.bn_momentum}")
        for name in ("shift_bins", "freq_masks", "freq_mask_bins", "time_masks",
                     "time_mask_frames"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")

    def _check_types(self):
        """Refuse a value not of its field's type (a string, a float where a count goes, a
        number where a switch goes), and store NumPy's numbers as Python's (``config.json``)."""
        for field in dataclasses.fields(self):
            value, optional = getattr(self, field.name), field.type.startswith("Optional[")
            kind = field.type[len("Optional["):-1] if optional else field.type
            if value is None and optional:
                continue
            takes, convert, said = _KINDS[kind]
            if not isinstance(value, takes) or kind != "bool" and isinstance(value, _BOOLS):
                raise InputError(f"{field.name} must be {said}{' or None' if optional else ''}, "
                                 f"got {value!r}")
            try:
                object.__setattr__(self, field.name, convert(value))
            except OverflowError:
                raise InputError(f"{field.name} must be a finite number, got {value!r}") from None

    def augments(self) -> bool:
        """Whether training augments: ``augment`` for the default model (the tutorial's
        network never does)."""
        return self.augment and self.model == "default"

    def mixup(self) -> float:
        """The mixup alpha training uses: ``mixup_alpha`` when it augments, else 0."""
        return self.mixup_alpha if self.augments() else 0.0

    def steps(self, n_train: int) -> int:
        """Batches per epoch for a training split of ``n_train`` notes."""
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        return max(math.ceil(min(n_train, EPOCH_NOTES) / self.batch_size), EPOCH_MIN_STEPS)

    def check_fits(self, params: FeatureParams, input_shape, *, resumed: bool = False):
        """Refuse settings the store's notes cannot fit: more frames pooled than a note has,
        more than :data:`MAX_WORKERS` workers, or batches in memory (those read ahead, those
        being read, the one trained on and a validation batch of twice the size) and an
        epoch's draws (:data:`DRAW_BYTES` a note) that would take more than half the memory
        (:func:`training.blockorder.memory_for_cache`), or a model that with its batches would
        take more than all of it (:meth:`model_bytes`, a lower bound; not checked again on a
        resumed run). Settings
        read back from a run (``resumed``) are held to what this machine can hold, and the
        message says to start again."""
        from .blockorder import memory_for_cache
        again = "; start the run again (--overwrite) with other settings" if resumed else ""
        frames = int(input_shape[0])
        if self.model == "default" and self.time_pool > frames:
            raise InputError(f"time_pool must be at most the {frames} frames of a note, got "
                             f"{self.time_pool}{again}")
        if self.workers > MAX_WORKERS and not resumed:
            raise InputError(f"workers must be at most {MAX_WORKERS}, got {self.workers}")
        batches = 3 * self.workers + 3
        held, room = batches * self.batch_size * params.note_bytes, memory_for_cache()
        if held > room:
            raise InputError(f"batch_size and workers must keep the batches in memory within "
                             f"half of it ({size_text(room)}): {batches} batches of "
                             f"{self.batch_size} notes of {params.note_bytes / 2**10:.0f} KiB "
                             f"with {self.workers} workers would take {size_text(held)}{again}")
        model, memory = self.model_bytes(input_shape), 2 * room
        if held + model > memory and not resumed:  # a lower bound: the machine's whole memory
            sizes = ("width and batch_size", f" of width {self.width}") \
                if self.model == "default" else ("batch_size", "")
            raise InputError(f"{sizes[0]} must keep training within the memory "
                             f"({size_text(memory)}): the {self.model} model{sizes[1]} on "
                             f"batches of {self.batch_size} notes of {tuple(input_shape)} takes "
                             f"at least {size_text(model)} (weights, their gradients and "
                             f"optimiser state, a batch's activations) beside "
                             f"{size_text(held)} of batches")
        drawn = (self.steps_per_epoch or 0) * self.batch_size * DRAW_BYTES
        if drawn > room - held:
            raise InputError(f"steps_per_epoch and batch_size must keep an epoch's draws in "
                             f"memory beside its batches, within half of it ({size_text(room)}): "
                             f"{self.steps_per_epoch} batches of {self.batch_size} notes, drawn "
                             f"as the epoch starts, would take {size_text(drawn)}{again}")

    def model_bytes(self, input_shape) -> int:
        """A lower bound on the bytes training the model takes beyond its batches: its float32
        weights four times (with their gradients and the optimiser's two moments), and one
        batch's activations after each convolution, batch norm and ReLU of the default model
        (the tutorial's: its first two layers). Grows with ``width`` squared (weights) and
        with ``batch_size`` (activations)."""
        frames, bins = (int(n) for n in input_shape)
        if self.model == "tutorial":
            weights = 25 * (32 + 32 * 64) + -(-frames // 16) * -(-bins // 16) * 64 * 256
            activations = frames * bins * 32 * (1 + 1 / 16) * 2
        else:
            w, pixels = self.width, -(-frames // self.time_pool) * min(bins, self.bands)
            weights = 9 * (w + 106 * w * w) + 16 * w * 128
            # blocks of w, 2w, 4w, 8w and 8w channels, each on a quarter of the last's pixels
            activations = pixels * w * (1 + 2 / 4 + 4 / 16 + 8 / 64 + 8 / 256) * 3
        return int(16 * weights + 4 * self.batch_size * activations)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """The configuration ``to_dict`` gave (a saved run's ``config.json``): a field it lacks
        takes the value runs had before the field existed (:data:`BEFORE`), else its default,
        a field's older name is read as the field (:data:`RENAMED`), and a name it does not
        know (a field of an older version) is passed over. For
        settings of your own, ``TrainConfig(**values)`` refuses a name it does not know."""
        if not isinstance(data, dict):
            raise InputError(f"a TrainConfig is read from a dict of its fields, got "
                             f"{type(data).__name__}")
        values = {**BEFORE, **{RENAMED.get(k, k): v for k, v in data.items()
                               if RENAMED.get(k) not in data}}  # the newer name, where both
        kinds = {f.name: f.type for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in kinds}
        for name, value in values.items():  # as a config.json written by hand may hold them
            if kinds[name] in ("int", "Optional[int]") and isinstance(value, float) and \
                    value.is_integer():
                values[name] = int(value)
            elif kinds[name] == "bool" and value in (0, 1) and not isinstance(value, _BOOLS):
                values[name] = bool(value)
        return cls(**values)

    def other_than(self, run: "TrainConfig") -> List[str]:
        """The settings of this configuration other than the defaults (the model's own rate
        and augmentation for the tutorial's) that differ from those ``run`` started with, as
        ``'epochs 10 (the run's 3)'``: what ``train``'s ``resume`` refuses to change (all but
        :data:`RESUMABLE`, which :meth:`resumed` takes)."""
        return [f"{name} {getattr(self, name)!r} (the run's {getattr(run, name)!r})"
                for name in self._given() if name not in RESUMABLE
                and getattr(self, name) != getattr(run, name)]

    def resumed(self, run: "TrainConfig") -> "TrainConfig":
        """``run``, the configuration a run started with, going on with this configuration's
        :data:`RESUMABLE` settings where they are not the defaults (held to the bounds a
        run starts within)."""
        taken = {name: getattr(self, name) for name in self._given() if name in RESUMABLE}
        if taken.get("workers", 0) > MAX_WORKERS:
            raise InputError(f"workers must be at most {MAX_WORKERS}, got {self.workers}")
        return dataclasses.replace(run, **taken)

    def _given(self) -> List[str]:
        """The fields whose values are not the defaults (the model's own rate and augmentation
        for the tutorial's)."""
        default = TrainConfig(model=self.model)
        return [f.name for f in dataclasses.fields(self)
                if f.name == "model" and self.model != "default"
                or getattr(self, f.name) != getattr(default, f.name)]

    def replace(self, **changes) -> "TrainConfig":
        """This configuration with ``changes``; another ``model`` brings its own learning rate
        (:data:`LEARNING_RATES`) unless one is given, or this one's is not its model's, and
        the default model its augmentation, which the tutorial's turns off, unless given (an
        ``augment=False`` given before the tutorial's is not remembered)."""
        if "model" in changes and "learning_rate" not in changes and \
                self.learning_rate == LEARNING_RATES[self.model]:
            changes["learning_rate"] = None
        if changes.get("model") == "default" and self.model == "tutorial":
            changes.setdefault("augment", True)
        return dataclasses.replace(self, **changes)
