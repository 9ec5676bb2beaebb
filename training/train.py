"""``timbremap train``: fit a classifier on ``STORE/train.h5``, select on ``STORE/valid.h5``."""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from featurestore import __version__
from featurestore.errors import BuildError, InputError, counted
from featurestore.files import (atomic_write_text, exclusive_lock, made_folder,
                                real_path, removed_where_left_empty, replaced)
from featurestore.finished import warn_of_splits_that_mislead
from featurestore.jsonstream import read_json
from featurestore.nsynth import FAMILIES
from featurestore.remote import is_url, store_location
from featurestore.storefolder import check_writable
from featurestore.store import content_digests, split_path, store_id, store_name

from .backend import import_tensorflow_quietly, out_of_memory, precision, requested
from .config import TrainConfig
from .modeldir import (BACKUP_DIR, BEST_FILE, CONFIG_FILE, CURVES_FILE, HISTORY_FILE,
                       MODEL_FILE, ModelError, check_backup, check_model_dir, latest_backup,
                       resume_hint)
from .progress import epoch_progress, plot_curves
from .resumecheck import interrupted_config, resumed_config
from .trainsplits import learnt_nothing, open_for_training

__all__ = ["train", "TrainResult", "interrupted_config"]

log = logging.getLogger(__name__)
#: Keras's epoch count when the run ends by budget or plateau (RunFiles stops it), never shown.
UNTIL_STOPPED = 1_000_000


@dataclass
class TrainResult:
    """What a training run produced."""

    model_dir: Path
    epochs: int
    best_epoch: int
    best_val_accuracy: float
    minutes: float
    stopped: str  # why training stopped


def _reseed_layers(model, epoch: int):
    """Start each random layer (augmentation, dropout) on a stream of its own for ``epoch``:
    Keras does not save their generators' states, and a resumed run must draw what an
    uninterrupted one would."""
    import keras
    for layer in model.layers:
        generator = getattr(layer, "seed_generator", None)
        if isinstance(generator, keras.random.SeedGenerator):
            seed = int(keras.ops.convert_to_numpy(generator.state)[0])
            generator.state.assign(np.array([seed, (epoch * 1_000_003) % 2**31],
                                            dtype=generator.state.dtype))


@contextlib.contextmanager
def _global_random_kept():
    """Python's and NumPy's global random states given back after the block: a run seeds them
    (Keras's ``set_random_seed``), and a caller's own draws must not repeat after each run."""
    import random
    states = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])


def _start(model_dir: Path, config: TrainConfig, params, labels: tuple, *, resume: bool,
           overwrite: bool, store, digests: dict, n_train: int) -> TrainConfig:
    """The folder policy: the configuration to run (a resumed run's own:
    :func:`~training.resumecheck.resumed_config`, which the other arguments are for), after
    clearing what a fresh run replaces."""
    if model_dir.is_dir() or not resume:  # made if needed; a read-only one refused now
        try:
            check_writable(model_dir)
        except BuildError as err:
            raise ModelError(str(err)) from None
    if resume:
        return resumed_config(model_dir, config, params, labels, store=store, digests=digests,
                              n_train=n_train)
    if (model_dir / MODEL_FILE).exists() and not overwrite:
        raise ModelError(f"{model_dir}: holds a trained model already (use --overwrite)")
    if (model_dir / BACKUP_DIR).is_dir() and not overwrite:
        check_backup(model_dir)  # one this version cannot resume: said to start again
        raise ModelError(f"{model_dir}: holds an interrupted run (use --resume to continue "
                         f"it or --overwrite to start again)")
    _clear_run(model_dir)
    for old in model_dir.glob("confusion_*.png") if model_dir.is_dir() else ():
        old.unlink()  # evaluate's pictures of the model replaced
    model_dir.mkdir(parents=True, exist_ok=True)
    return config


def _clear_run(model_dir: Path, *names: str):
    """Remove a run's files (backup, history, models, curves) and ``names`` from ``model_dir``."""
    shutil.rmtree(model_dir / BACKUP_DIR, ignore_errors=True)
    for name in (MODEL_FILE, BEST_FILE, HISTORY_FILE, CURVES_FILE, *names):
        (model_dir / name).unlink(missing_ok=True)


def _compiled_model(config: TrainConfig, params, mean, std, steps_per_epoch: int, *,
                    n_classes: int = len(FAMILIES)):
    """``(fitted, classifier)``: the classifier, and the model that training fits, which is the
    classifier behind a :class:`~training.models.Mixup` layer when mixup is on (it shares the
    classifier's weights), else the classifier itself. It is compiled with its optimizer (AdamW;
    its rate constant, set each epoch by :class:`~training.runfiles.RunFiles`, or a cosine over
    the run) and loss; in mixed precision on a GPU (:func:`training.backend.precision`, with
    loss scaling). ``n_classes``: the store's labels (default: NSynth's families)."""
    import keras
    from .models import build_model, with_mixup
    with precision(config.precision):
        classifier = build_model(config, params, mean=mean, std=std, n_classes=n_classes)
        fitted = with_mixup(classifier) if config.mixup() else classifier
    rate = config.learning_rate
    if config.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.epochs * steps_per_epoch, alpha=0.05)
    fitted.compile(
        optimizer=keras.optimizers.AdamW(rate, weight_decay=config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        weighted_metrics=["accuracy"])  # weighted: notes that fill a batch (weight 0) don't count
    return fitted, classifier


def _fit(store: Path, model_dir: Path, config: TrainConfig, params, mean, std, n_train: int,
         *, resume: bool, verbose: int, callbacks: Sequence):
    """Train from the newest backup (or from scratch) until :func:`should_stop` says so."""
    from . import backend
    # after every refusal (those come without it); set_random_seed imports it on any backend
    backend.import_tensorflow_quietly(any_backend=True)
    import keras
    from .runfiles import RunFiles, read_history, should_stop, write_history
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        backend.make_deterministic()
    for folder in (model_dir, model_dir / BACKUP_DIR):  # files a killed run was writing
        for leftover in folder.glob(".*.partial*"):
            leftover.unlink()
    backup = latest_backup(model_dir / BACKUP_DIR) if resume else None
    initial_epoch = backup[0] if backup else 0
    history = read_history(model_dir / HISTORY_FILE)[:initial_epoch]  # later rows are redone
    write_history(model_dir / HISTORY_FILE, history)
    if initial_epoch and should_stop(history, config):
        return  # it had stopped; the interruption came before it was finished
    if initial_epoch:
        log.info("%s: resuming the run after its epoch %d", model_dir, initial_epoch)
    from .data import run_batches
    train_data, valid_data = run_batches(store, config, n_train)
    if train_data.order == "block":
        runs = -(-n_train // train_data.block)
        log.info("%s: read in the block order (runs of %s, shuffled %s at a time)",
                 split_path(store, "train"), counted(train_data.block, "note"),
                 counted(min(train_data.window, runs), "run"))

    class Draws(keras.callbacks.Callback):
        """Each epoch's batches and random layers start where an uninterrupted run's would."""

        def on_epoch_begin(self, epoch, logs=None):
            train_data.set_epoch(epoch)
            _reseed_layers(classifier, epoch)

    # shuffle=False: the batches are random draws already; Keras's shuffling of their order
    # would follow Python's global random state, which a resumed run does not share.
    # Keras's progress goes to stderr: stdout is for results.
    try:
        with backend.data_parallel(), contextlib.redirect_stdout(sys.stderr):
            model, classifier = _compiled_model(config, params, mean, std, len(train_data),
                                                n_classes=len(train_data.label_names))
            if backup:
                model.optimizer.build(model.trainable_variables)
                try:
                    model.load_weights(backup[1])
                except ValueError:  # Keras's message of the shapes that do not match
                    raise ModelError(f"{backup[1]}: does not fit the model this version builds "
                                     f"of the run's settings (a run of an older timbremap?): "
                                     f"start again with --overwrite") from None
            run_files = RunFiles(model_dir, config, history, classifier,
                                 history_file=HISTORY_FILE, best_file=BEST_FILE,
                                 backup_dir=BACKUP_DIR)
            own_bar = any(isinstance(c, keras.callbacks.ProgbarLogger) for c in callbacks)
            progress = [epoch_progress(config.epochs)] if verbose and not own_bar else []
            model.fit(train_data, validation_data=valid_data,
                      epochs=config.epochs or UNTIL_STOPPED,
                      initial_epoch=initial_epoch, verbose=verbose, shuffle=False,
                      callbacks=[keras.callbacks.TerminateOnNaN(), Draws(), run_files,
                                 *callbacks, *progress])
    except Exception:  # a read that failed comes out as the backend's error around it
        failure = train_data.failure or valid_data.failure
        if failure is None:
            raise
        raise failure from None
    finally:
        train_data.close()
        valid_data.close()


def _finish(store: Path, model_dir: Path, config: TrainConfig, info: dict) -> TrainResult:
    """Pick the best epoch: ``config.json`` with it, ``model.keras``, the curves, then the
    backup and the best-epoch copy go; each step can be redone after an interruption."""
    from .runfiles import finite, read_history, should_stop
    history = read_history(model_dir / HISTORY_FILE)
    if not history:
        raise ModelError(f"{model_dir}: no finished epoch to pick a model from")
    diverged = [int(row["epoch"]) + 1 for row in history if not finite(row)]
    if not (good := [row for row in history if finite(row)]):  # nothing to keep or resume
        _clear_run(model_dir, CONFIG_FILE)
        raise ModelError(f"{model_dir}: training diverged (the loss is not finite in epoch "
                         f"{diverged[0]}); try a lower --learning-rate, or --weight-decay where "
                         f"it was given (the run kept nothing)")
    best = max(good, key=lambda row: row["val_accuracy"])
    if diverged:
        log.warning("training diverged in epoch %d (the loss is not finite) and stopped; the "
                    "model is its best epoch before that", diverged[0])
    if why := learnt_nothing(store, history):
        log.warning("%s: %s", model_dir, why)
    info.update(best_epoch=int(best["epoch"]) + 1, best_val_accuracy=best["val_accuracy"],
                stopped=should_stop(history, config) or "the loss was not finite",
                epochs_run=len(history),
                minutes=round(sum(row.get("seconds", 0.0) for row in history) / 60, 2))
    atomic_write_text(model_dir / CONFIG_FILE, json.dumps(info, indent=2))
    best_model = model_dir / BEST_FILE
    if best_model.is_file():
        with replaced(model_dir / MODEL_FILE) as tmp:
            shutil.copyfile(best_model, tmp)
    elif not (model_dir / MODEL_FILE).is_file():
        raise ModelError(f"{best_model}: missing, cannot pick the best epoch")
    with replaced(model_dir / CURVES_FILE, ".png") as tmp:
        plot_curves(history, tmp, f"{config.model} model on {store_name(store)}: best validation "
                                  f"accuracy {best['val_accuracy']:.3f} (epoch "
                                  f"{info['best_epoch']})",
                    augmented=config.augments())
    shutil.rmtree(model_dir / BACKUP_DIR, ignore_errors=True)
    best_model.unlink(missing_ok=True)
    return TrainResult(model_dir, len(history), info["best_epoch"], best["val_accuracy"],
                       info["minutes"], info["stopped"])


def train(store, model_dir, config: TrainConfig = TrainConfig(), *, resume: bool = False,
          overwrite: bool = False, verbose: Optional[int] = None,
          callbacks: Sequence = ()) -> TrainResult:
    """Train ``config.model`` on a store; Python's and NumPy's global random states are as
    they were before the call (a run seeds them).

    Parameters
    ----------
    store : str or pathlib.Path
        A store folder with ``train.h5`` and ``valid.h5``.
    model_dir : str or pathlib.Path
        Where the model, its config, history and curves go (see :mod:`training.modeldir`).
    config : TrainConfig
    resume : bool
        Continue the interrupted run in ``model_dir`` after its last finished epoch, with its
        own settings (:mod:`training.runfiles`; ``config`` gives them or is left as the
        default: :meth:`TrainConfig.other_than`); a run that had finished is left as it is.
    overwrite : bool
        Replace a finished model in ``model_dir``.
    verbose : {0, 1, 2}, optional
        Keras progress, on stderr: 0 silent, 1 progress bar, 2 one line per epoch (default: 1
        where stderr is a terminal, else 2: a log or a notebook gets no bar redrawn); each
        epoch starts with :func:`training.progress.epoch_progress`'s line (``Epoch 3``, or
        ``Epoch 3 (at most N)``).
    callbacks : sequence of keras.callbacks.Callback
        Extra callbacks, run after timbremap's own.

    Raises
    ------
    StoreError
        Missing splits, splits built with different features or holding different label
        sets, fewer than two labels, or a label that is not in the label set.
    ModelError
        ``model_dir`` holds a finished model (without ``overwrite``) or an interrupted run
        (without ``resume``), or ``resume`` finds no run in it, or one of another label set,
        or ``config`` sets other settings than the run's; ``resume`` and ``overwrite`` both
        given.
    InputError
        ``config`` not a :class:`TrainConfig`, ``callbacks`` not Keras's, ``verbose`` not 0-2.
    """
    if resume and overwrite:
        raise ModelError("resume and overwrite must not be given together (one continues a "
                         "run, the other starts it again)")
    verbose = (1 if sys.stderr.isatty() else 2) if verbose is None else verbose
    if verbose not in (0, 1, 2):
        raise InputError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a TrainConfig (TrainConfig(**values) makes one), got "
                         f"{type(config).__name__}")
    try:
        callbacks = list(callbacks)
    except TypeError:
        callbacks = [callbacks]
    if not all(callable(getattr(c, "set_model", None)) for c in callbacks):
        raise InputError(f"callbacks must be a sequence of keras.callbacks.Callback, got "
                         f"{callbacks!r}"[:300])
    store, model_dir = store_location(store), Path(model_dir)
    if not is_url(store) and real_path(model_dir) == real_path(store):
        raise ModelError(f"{model_dir}: is the store; train into a folder of its own")
    check_model_dir(model_dir)
    params, mean, std, input_shape, n_train, labels = open_for_training(store)
    warn_of_splits_that_mislead(store)
    if not resume:  # before anything is made, or removed by overwrite
        config.check_fits(params, input_shape)
    elif not model_dir.is_dir():  # not made: an empty one is a run stopped before it started
        raise ModelError(f"{model_dir}: no such folder, so no interrupted run to resume")
    made = made_folder(model_dir)  # by this run (its parents stay)
    with exclusive_lock(model_dir, lambda: ModelError(
            f"{model_dir}: another 'timbremap train' is writing this model folder; wait for it "
            f"to finish")), removed_where_left_empty(model_dir, made):
        digests = content_digests(store)
        config = _start(model_dir, config, params, labels, resume=resume, overwrite=overwrite,
                        store=store, digests=digests, n_train=n_train)
        if resume:  # the run's own settings, on this machine
            config.check_fits(params, input_shape, resumed=True)
        if resume and (model_dir / MODEL_FILE).is_file():
            import_tensorflow_quietly()  # picking the epoch reads Keras's files
            log.info("%s: the run had finished; nothing to resume (a longer run starts again, "
                     "in another folder, or with --overwrite, which replaces this model)",
                     model_dir)
            info = read_json(model_dir / CONFIG_FILE)
            return _finish(store, model_dir, config, info)
        info = {"train": config.to_dict(), "features": json.loads(params.to_json()),
                "labels": list(labels), "input_shape": list(input_shape),
                "store": store_id(store), "store_content": digests,
                "timbremap_version": __version__, "keras_backend": requested(),
                "epoch_steps": config.steps(n_train)}
        try:
            # first, before the seconds TensorFlow takes to start: a run killed from now on resumes
            atomic_write_text(model_dir / CONFIG_FILE, json.dumps(info, indent=2))
            with _global_random_kept():
                _fit(store, model_dir, config, params, mean, std, n_train, resume=resume,
                     verbose=verbose, callbacks=callbacks)
            return _finish(store, model_dir, config, info)
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise ModelError(f"{err.filename or model_dir}: cannot be written ({err.strerror}); "
                             f"{resume_hint(store, model_dir)}, once there is room") from None
        except Exception as err:  # noqa: BLE001 - each backend names running out its own way
            if not out_of_memory(err):
                raise
            raise ModelError(f"out of memory while training ({type(err).__name__}): start "
                             f"again (--overwrite) with a smaller batch size, or width of the "
                             f"default model") from None
