"""What a training run keeps on disk while it runs, so that a ``kill -9`` at any moment leaves a
run that ``--resume`` continues to the model an uninterrupted run gives.

At the end of each epoch :class:`RunFiles`, the last of the run's callbacks, writes in this
order, each file whole or not at all (:mod:`featurestore.files`):

1. ``history.csv`` with the epoch's row;
2. ``best.keras`` when the epoch's validation accuracy is the best so far;
3. ``backup/epoch-NNNN.weights.h5``, the weights and optimizer state after epoch ``NNNN``,
   then the older backup is removed.

The newest backup marks the last finished epoch: a resumed run starts after it, from its
weights, and keeps only the history rows before it (a row or best model written after the
backup is written again, the same, by the repeated epoch). Whether training should stop (epoch
count, early stopping, time budget) and the next epoch's learning rate (``plateau`` schedule)
are decided from the history alone, so a resumed run goes on as the uninterrupted one would.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import time
from pathlib import Path
from typing import List, Optional

import keras

from featurestore.files import atomic_write_text, replaced

from .config import TrainConfig

__all__ = ["RunFiles", "read_history", "write_history", "should_stop",
           "plateau_learning_rate", "epoch_past_budget"]

log = logging.getLogger(__name__)


def read_history(path: Path) -> List[dict]:
    """The rows of ``history.csv`` (numbers as floats), one per finished epoch, in order."""
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def write_history(path: Path, rows: List[dict]):
    """Write ``history.csv`` whole: ``epoch`` first, then the other columns sorted."""
    columns = ["epoch"] + sorted({k for row in rows for k in row} - {"epoch"})
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: int(v) if k == "epoch" else v for k, v in row.items()})
    atomic_write_text(path, text.getvalue())


def _since_best(history: List[dict]) -> int:
    """Epochs since the first epoch with the best validation accuracy."""
    best = 0
    for i, row in enumerate(history):
        if row["val_accuracy"] > history[best]["val_accuracy"]:
            best = i
    return len(history) - 1 - best


def finite(row: dict) -> bool:
    """Whether an epoch's training and validation losses (where the row has them) are finite
    numbers: a model whose loss turned NaN or infinite answers nothing (its probabilities
    NaN)."""
    return all(math.isfinite(row.get(name, 0.0)) for name in ("loss", "val_loss"))


def should_stop(history: List[dict], config: TrainConfig) -> Optional[str]:
    """Why training should stop after the epochs in ``history`` (``None``: go on).

    - an epoch whose loss, or validation loss, is not finite (:func:`finite`);
    - ``config.epochs`` done;
    - early stopping as Keras's ``EarlyStopping(monitor='val_accuracy', mode='max')``:
      ``patience`` epochs have passed since the first epoch with the best accuracy;
    - the budget: another epoch, as long as the mean epoch so far, would end after
      ``budget_minutes``.
    """
    broken = next((row for row in history if not finite(row)), None)
    if broken is not None:
        return f"the loss was not finite in epoch {int(broken['epoch']) + 1}"
    if config.epochs is not None and len(history) >= config.epochs:
        return f"{config.epochs} epoch{'s' * (config.epochs != 1)} done"
    if history and _since_best(history) >= config.patience:
        return (f"no better validation accuracy for {config.patience} "
                f"epoch{'s' * (config.patience != 1)}")
    seconds = [row.get("seconds", 0.0) for row in history]
    if config.budget_minutes is not None and seconds and \
            sum(seconds) + sum(seconds) / len(seconds) > 60 * config.budget_minutes:
        minutes = config.budget_minutes
        return f"time budget of {minutes:g} minute{'' if minutes == 1 else 's'} used"
    return None


def epoch_past_budget(history: List[dict], config: TrainConfig, *,
                      epoch_seconds: float) -> Optional[float]:
    """The minutes the run will have taken when the epoch under way ends, ``epoch_seconds``
    after it began, if that is past ``budget_minutes`` (``None`` otherwise, or without a
    budget). The budget is kept between epochs (:func:`should_stop`), so an epoch longer than
    the budget is said while it runs."""
    if config.budget_minutes is None:
        return None
    minutes = (sum(row.get("seconds", 0.0) for row in history) + epoch_seconds) / 60
    return minutes if minutes > config.budget_minutes else None


def plateau_learning_rate(history: List[dict], config: TrainConfig) -> float:
    """The ``plateau`` schedule's learning rate for the epoch after ``history``: halved each
    time ``lr_patience`` epochs pass without a better validation accuracy (as Keras's
    ``ReduceLROnPlateau(monitor='val_accuracy', factor=0.5, cooldown=0)``)."""
    rate, best, waited = config.learning_rate, -math.inf, 0
    for row in history:
        if row["val_accuracy"] > best:
            best, waited = row["val_accuracy"], 0
            continue
        waited += 1
        if waited >= config.lr_patience:
            rate, waited = rate / 2, 0
    return rate


class RunFiles(keras.callbacks.Callback):
    """Writes a run's history, best model and backup at each epoch's end (see the module), and
    stops training as :func:`should_stop` says.

    Parameters
    ----------
    model_dir : pathlib.Path
    config : TrainConfig
    history : list of dict
        The rows of the epochs finished before this run started (a resumed run's).
    classifier : keras.Model
        The model saved as the best epoch's (the fitted model, or the classifier inside it:
        see :func:`training.models.with_mixup`); the backup holds the fitted model's weights
        and optimizer.
    history_file, best_file, backup_dir : str
        Names in ``model_dir``.
    """

    def __init__(self, model_dir: Path, config: TrainConfig, history: List[dict],
                 classifier: keras.Model, *, history_file: str, best_file: str, backup_dir: str):
        super().__init__()
        self.config = config
        self.classifier = classifier
        self.history = list(history)
        self.history_path = model_dir / history_file
        self.best_path = model_dir / best_file
        self.backup_dir = model_dir / backup_dir
        self.epoch_start = time.monotonic()
        self.stopping = ""
        self.paced = None  # (seconds to the epoch's first batch's end, its end), once it ends
        self.rate = config.learning_rate  # the learning rate as the epoch started
        self.told = False  # of this epoch ending past the budget

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.monotonic()
        self.paced, self.told = None, False
        if self.config.schedule == "plateau":
            rate = plateau_learning_rate(self.history, self.config)
            if self.history and rate < plateau_learning_rate(self.history[:-1], self.config):
                log.info("epoch %d: learning rate %.3g (validation accuracy stalled)",
                         epoch + 1, rate)
            self.model.optimizer.learning_rate.assign(rate)
        if self.model is not None:  # driven without a model (the budget's tests): no rate
            self.rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        if self.paced is None:  # the first batch: it holds the graph's tracing
            self.paced = (now - self.epoch_start, now)
            return
        if self.told or now - self.paced[1] < 10:  # a pace of 10 s of batches at least
            return
        self.told = True
        later = (now - self.paced[1]) / batch * ((self.params.get("steps") or 1) - 1)
        minutes = epoch_past_budget(self.history, self.config,
                                    epoch_seconds=self.paced[0] + later)
        if minutes is not None:
            log.warning("at this pace the epoch will end after %s minutes of training, past "
                        "the time budget of %g: the budget is kept between epochs (fewer "
                        "batches an epoch: --steps-per-epoch)",
                        f"{minutes:.0f}" if minutes >= 10 else f"{minutes:.2g}",
                        self.config.budget_minutes)

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": float(epoch), **{k: float(v) for k, v in (logs or {}).items()},
               "learning_rate": self.rate,  # as the epoch started (a schedule goes on within it)
               "seconds": time.monotonic() - self.epoch_start}
        best = max((r["val_accuracy"] for r in self.history if finite(r)), default=None)
        self.history.append(row)
        write_history(self.history_path, self.history)
        if finite(row) and (best is None or row["val_accuracy"] > best):
            with replaced(self.best_path, ".keras") as tmp:
                self.classifier.save(tmp)
        self.backup_dir.mkdir(exist_ok=True)
        backup = self.backup_dir / f"epoch-{epoch + 1:04d}.weights.h5"
        with replaced(backup, ".weights.h5") as tmp:
            self.model.save_weights(tmp)
        for older in self.backup_dir.glob("epoch-*.weights.h5"):
            if older != backup:
                older.unlink()
        reason = should_stop(self.history, self.config)
        if reason and len(self.history) != self.config.epochs:
            self.stopping = f"stopping after epoch {epoch + 1}: {reason}"
        self.model.stop_training = self.model.stop_training or reason is not None

    def on_train_end(self, logs=None):
        if self.stopping:  # said here: at the epoch's end Keras's progress bar ends its line after
            log.info("%s", self.stopping)
