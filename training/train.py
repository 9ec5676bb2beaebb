"""``timbremap train``: fit a classifier on ``STORE/train.h5``, select on ``STORE/valid.h5``."""
from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from featurestore import __version__
from featurestore.nsynth import FAMILIES
from featurestore.store import StoreError, open_split, read_params, read_stats, split_path

from .config import MAX_DEFAULT_STEPS, TrainConfig
from .modeldir import (BACKUP_DIR, BEST_FILE, CONFIG_FILE, CURVES_FILE, HISTORY_FILE,
                       MODEL_FILE, ModelError)

__all__ = ["train", "TrainResult", "distribution_strategy"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run produced."""

    model_dir: Path
    epochs: int
    best_epoch: int
    best_val_accuracy: float
    minutes: float
    stopped_early: bool


def distribution_strategy():
    """``MirroredStrategy`` over all GPUs when there are several, else the default strategy
    (one GPU or the CPU): the same code runs unchanged on either."""
    import tensorflow as tf
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _read_history(path: Path) -> list:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def plot_curves(history: list, path: Path, title: str):
    """Loss and accuracy per epoch, train and validation, side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [int(row["epoch"]) + 1 for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, [row[key] for row in history], "o-", label=f"train {label}")
        ax.plot(epochs, [row["val_" + key] for row in history], "s-",
                label=f"validation {label}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if history:
        best = max(history, key=lambda row: row["val_accuracy"])
        axes[1].axvline(int(best["epoch"]) + 1, color="grey", ls=":", label="best")
        axes[1].set_ylim(0, 1)
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _reseed_layers(model, epoch: int):
    """Start each random layer (augmentation, dropout) on a stream of its own for ``epoch``:
    Keras does not save their generators' states, and a resumed run must draw what an
    uninterrupted one would."""
    import keras
    for layer in model.layers:
        generator = getattr(layer, "seed_generator", None)
        if isinstance(generator, keras.random.SeedGenerator):
            seed = int(generator.state.numpy()[0])
            generator.state.assign(np.array([seed, (epoch * 1_000_003) % 2**31],
                                            dtype=generator.state.dtype))


def _open_store(store: Path):
    """Check the store for training: train and valid splits with the same features."""
    with open_split(store, "train") as f:
        params = read_params(f)
        mean, std = read_stats(f)
        shape = f["spectra"].shape
    if shape[0] == 0:
        raise StoreError(f"{split_path(store, 'train')}: the train split holds no notes")
    with open_split(store, "valid") as f:
        differences = read_params(f).differences(params)
        if differences:
            raise StoreError(f"{split_path(store, 'valid')}: built with other features than "
                             f"train.h5 ({'; '.join(differences)})")
    return params, mean, std, shape[1:], shape[0]


def _check_model_dir(model_dir: Path):
    """A model folder is new, empty or timbremap's own (its ``config.json`` says so): training
    never writes over a user's files, or into a store folder. Files a user adds to a model
    folder (notes, reports) are left alone."""
    if model_dir.exists() and not model_dir.is_dir():
        raise ModelError(f"{model_dir}: exists and is not a folder")
    if not model_dir.is_dir():
        return
    try:
        json.loads((model_dir / CONFIG_FILE).read_text())["timbremap_version"]
        return  # a model folder of ours
    except FileNotFoundError:
        foreign = sorted(p.name for p in model_dir.iterdir() if not p.name.startswith("."))
    except (OSError, ValueError, KeyError, TypeError):
        foreign = [CONFIG_FILE]
    if foreign:
        raise ModelError(f"{model_dir}: holds files that are not a timbremap model's "
                         f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
                         f"train into a new or empty folder")


def train(store, model_dir, config: TrainConfig = TrainConfig(), *, resume: bool = False,
          overwrite: bool = False, verbose: int = 1, callbacks: Sequence = ()) -> TrainResult:
    """Train ``config.model`` on a store.

    Parameters
    ----------
    store : str or pathlib.Path
        A store folder with ``train.h5`` and ``valid.h5``.
    model_dir : str or pathlib.Path
        Where the model, its config, history and curves go (see :mod:`training.modeldir`).
    config : TrainConfig
    resume : bool
        Continue the interrupted run in ``model_dir`` (from its last finished epoch).
    overwrite : bool
        Replace a finished model in ``model_dir``.
    verbose : int
        Keras progress: 0 silent, 1 progress bar, 2 one line per epoch.
    callbacks : sequence of keras.callbacks.Callback
        Extra callbacks, run after timbremap's own.

    Raises
    ------
    StoreError
        Missing splits, or splits built with different features.
    ModelError
        ``model_dir`` holds a finished model (without ``overwrite``) or an interrupted run
        (without ``resume``), or ``resume`` finds nothing to resume.
    """
    store, model_dir = Path(store), Path(model_dir)
    _check_model_dir(model_dir)
    params, mean, std, input_shape, n_train = _open_store(store)
    backup = model_dir / BACKUP_DIR
    if resume:
        if not backup.is_dir():
            raise ModelError(f"{model_dir}: no interrupted run to resume (no {BACKUP_DIR}/)")
        saved = json.loads((model_dir / CONFIG_FILE).read_text())
        config = TrainConfig.from_dict(saved["train"])
        if params.differences(type(params).from_dict(saved["features"])):
            raise ModelError(f"{model_dir}: the interrupted run used a store with other features")
    else:
        if (model_dir / MODEL_FILE).exists() and not overwrite:
            raise ModelError(f"{model_dir}: holds a trained model already (use --overwrite)")
        if backup.is_dir() and not overwrite:
            raise ModelError(f"{model_dir}: holds an interrupted run (use --resume to continue "
                             f"it or --overwrite to start again)")
        shutil.rmtree(backup, ignore_errors=True)
        for name in (MODEL_FILE, BEST_FILE, HISTORY_FILE, CURVES_FILE):
            (model_dir / name).unlink(missing_ok=True)
    model_dir.mkdir(parents=True, exist_ok=True)

    import keras
    import tensorflow as tf
    from .data import StoreBatches
    from .models import build_model

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    info = {"train": config.to_dict(), "features": json.loads(params.to_json()),
            "families": list(FAMILIES), "input_shape": list(input_shape),
            "store": str(store.resolve()), "timbremap_version": __version__}
    (model_dir / CONFIG_FILE).write_text(json.dumps(info, indent=2))

    train_data = StoreBatches(split_path(store, "train"), config.batch_size, shuffle=True,
                              balance=config.balance,
                              steps=config.steps_per_epoch or min(
                                  MAX_DEFAULT_STEPS, math.ceil(n_train / config.batch_size)),
                              mixup_alpha=config.mixup_alpha if config.augment
                              and config.model == "default" else 0.0,
                              seed=config.seed, loader=config.loader)
    valid_data = StoreBatches(split_path(store, "valid"), 2 * config.batch_size,
                              loader=config.loader)
    history_path = model_dir / HISTORY_FILE
    previous = _read_history(history_path) if resume else []
    best_so_far = max((row["val_accuracy"] for row in previous), default=None)

    strategy = distribution_strategy()
    with strategy.scope():
        model = build_model(config, params, mean, std)
        schedule = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.epochs * len(train_data), alpha=0.05,
            warmup_target=None)
        model.compile(
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
            metrics=["accuracy"])

    started = time.monotonic()
    spent_before = sum(row.get("seconds", 0.0) for row in previous) / 60

    class Bookkeeping(keras.callbacks.Callback):
        """Keeps the sampler and the random layers in step with the epoch (so a resumed run
        draws what an uninterrupted one would), logs each epoch's seconds and enforces
        max_minutes (over the whole run, resumed parts included)."""

        def on_epoch_begin(self, epoch, logs=None):
            train_data.set_epoch(epoch)
            _reseed_layers(self.model, epoch)
            self.epoch_start = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["seconds"] = time.monotonic() - self.epoch_start
            minutes = spent_before + (time.monotonic() - started) / 60
            if config.max_minutes is not None and minutes >= config.max_minutes:
                log.info("time budget of %.1f minutes reached after epoch %d",
                         config.max_minutes, epoch + 1)
                self.model.stop_training = True

    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.BackupAndRestore(str(backup)),
        Bookkeeping(),
        keras.callbacks.ModelCheckpoint(model_dir / BEST_FILE, monitor="val_accuracy",
                                        mode="max", save_best_only=True,
                                        initial_value_threshold=best_so_far),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                      patience=config.patience),
        keras.callbacks.CSVLogger(str(history_path), append=resume),
        *callbacks,
    ]
    try:
        # shuffle=False: the batches are random draws already; Keras's shuffling of their
        # order would follow Python's global random state, which a resumed run does not share.
        with contextlib.redirect_stdout(sys.stderr):  # Keras's progress: stdout is for results
            model.fit(train_data, validation_data=valid_data, epochs=config.epochs,
                      callbacks=callbacks, verbose=verbose, shuffle=False)
    finally:
        train_data.close()
        valid_data.close()
    history = _read_history(history_path)
    diverged = [int(row["epoch"]) + 1 for row in history if not math.isfinite(row["loss"])]
    best = max(history, key=lambda row: row["val_accuracy"])
    if diverged and not math.isfinite(best["loss"]):
        raise ModelError(f"{model_dir}: training diverged (the loss is not finite in epoch "
                         f"{diverged[0]}); try a lower --learning-rate")
    if diverged:
        log.warning("training diverged in epoch %d (the loss is not finite) and stopped; the "
                    "model is its best epoch before that", diverged[0])
    best_model = model_dir / BEST_FILE
    if not best_model.is_file():  # resumed after the best epoch had been checkpointed
        raise ModelError(f"{best_model}: missing, cannot pick the best epoch")
    best_model.replace(model_dir / MODEL_FILE)
    info.update(best_epoch=int(best["epoch"]) + 1, best_val_accuracy=best["val_accuracy"],
                epochs_run=len(history),
                minutes=round(sum(row.get("seconds", 0.0) for row in history) / 60, 2))
    (model_dir / CONFIG_FILE).write_text(json.dumps(info, indent=2))
    plot_curves(history, model_dir / CURVES_FILE,
                f"{config.model} model on {store.name}: best validation accuracy "
                f"{best['val_accuracy']:.3f} (epoch {info['best_epoch']})")
    stopped_early = len(history) < config.epochs
    return TrainResult(model_dir, len(history), info["best_epoch"], best["val_accuracy"],
                       info["minutes"], stopped_early)
