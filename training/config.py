"""Training configuration: one typed place for every knob, saved next to the model."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from featurestore.errors import InputError

__all__ = ["TrainConfig", "MODELS", "LOADERS", "MAX_DEFAULT_STEPS"]

MODELS = ("default", "tutorial")
LOADERS = ("mmap", "h5py")
#: Batches per epoch when ``steps_per_epoch`` is not given and the split is larger.
MAX_DEFAULT_STEPS = 150


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained.

    Parameters
    ----------
    model : {'default', 'tutorial'}
        ``'default'``: our CNN (early downsampling, batch norm, global pooling, augmentation).
        ``'tutorial'``: the tutorial's network rebuilt in Keras 3 (no augmentation).
    epochs : int
        Epochs; the learning rate follows a cosine from its peak to 5% over all of them, and
        early stopping may end sooner.
    steps_per_epoch : int, optional
        Batches per epoch (default: one pass worth of notes, ``ceil(N / batch_size)``, at most
        :data:`MAX_DEFAULT_STEPS`, so an epoch takes minutes whatever the store's size).
    batch_size : int
    learning_rate : float
        Peak learning rate of AdamW (cosine decay over ``epochs``).
    weight_decay : float
    label_smoothing : float
    patience : int
        Epochs without a better validation accuracy before stopping.
    max_minutes : float, optional
        Stop after the epoch that crosses this wall-clock budget.
    seed : int
        Seeds weights, sampling and augmentation: the same seed gives the same model.
    loader : {'mmap', 'h5py'}
        How batches are read from the store (see ``benchmarks/loader.py``).
    balance : bool
        Sample every family equally often, and every instrument of a family equally often.
    augment : bool
        Gain, frequency shift, SpecAugment masks and mixup (default model only).
    gain_db, tilt_db, shift_bins : float, float, int
        Random gain within +-``gain_db``, spectral tilt within +-``tilt_db`` (low to high
        bins), frequency shift within +-``shift_bins`` bins (mel bands for the default model).
    freq_masks, freq_mask_bins, time_masks, time_mask_frames : int
        SpecAugment masks: how many, and how wide at most.
    mixup_alpha : float
        Mixup with Beta(alpha, alpha) weights (0 disables it).
    bands : int
        Mel bands the default model averages STFT bins into before its convolutions (stores
        of ``bands`` bins or fewer, e.g. mel features, are used as they are).
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
    epochs: int = 7
    steps_per_epoch: Optional[int] = None
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    patience: int = 8
    max_minutes: Optional[float] = 28.0
    seed: int = 0
    loader: str = "mmap"
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
    width: int = 16
    dropout: float = 0.3
    bn_momentum: float = 0.9

    def __post_init__(self):
        if self.model not in MODELS:
            raise InputError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.loader not in LOADERS:
            raise InputError(f"loader must be one of {LOADERS}, got {self.loader!r}")
        for name in ("epochs", "batch_size", "patience", "bands", "width"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise InputError(f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}")
        if not 0 < self.learning_rate < math.inf:
            raise InputError(f"learning_rate must be positive and finite, got "
                             f"{self.learning_rate}")
        if self.max_minutes is not None and not 0 < self.max_minutes < math.inf:
            raise InputError(f"max_minutes must be positive and finite (or None), got "
                             f"{self.max_minutes}")
        if not 0 <= self.seed < 2**32:
            raise InputError(f"seed must be in 0..2**32-1, got {self.seed}")
        for name in ("weight_decay", "gain_db", "tilt_db", "mixup_alpha"):
            if not 0 <= getattr(self, name) < math.inf:
                raise InputError(f"{name} must be >= 0 and finite, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1 or not 0 <= self.label_smoothing < 1:
            raise InputError("dropout and label_smoothing must be in [0, 1)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def save(self, path: Path):
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))
