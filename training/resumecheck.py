"""What a resumed run must share with the run it goes on with: its settings, features, labels
and notes, and as long epochs. A ``config.json`` written by an older timbremap lacks some of
what this version records; each gap is said where it matters."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Optional

from featurestore.errors import label_difference
from featurestore.jsonstream import read_json
from featurestore.store import store_id

from .backend import requested
from .config import EPOCH_MIN_STEPS, EPOCH_NOTES, TrainConfig
from .modeldir import (CONFIG_FILE, MODEL_FILE, ModelError, check_backup, config_labels,
                       label_set_text)

__all__ = ["interrupted_config", "resumed_config"]

log = logging.getLogger(__name__)


def interrupted_config(model_dir) -> Optional[TrainConfig]:
    """The settings the run in ``model_dir`` started with (what ``resume`` continues with);
    ``None`` where no run was started there or it cannot be read (``train`` says which)."""
    try:
        saved = read_json(Path(model_dir) / CONFIG_FILE)
        return TrainConfig.from_dict(saved["train"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resumed_config(model_dir: Path, given: TrainConfig, params, labels: tuple, *, store,
                   digests: dict, n_train: int) -> TrainConfig:
    """The configuration the run in ``model_dir`` goes on with: its own, with ``given``'s
    resumable settings (:meth:`TrainConfig.resumed`) and the epoch length it recorded. A run
    that had finished (it holds ``model.keras``) is not trained on, so its notes and epochs
    are not checked.

    Parameters
    ----------
    given : TrainConfig
        The caller's: it may set nothing the run did not start with.
    params, labels
        The store's features and label set, which must be the run's.
    store, digests : str, dict
        The store (:func:`~featurestore.store.store_id`) and its
        :func:`~featurestore.store.content_digests`, which must match the run's for train and
        valid (a run that recorded none: the store must be the one it named).
    n_train : int
        Notes in the store's train split.

    Raises
    ------
    ModelError
        No run to resume, its config unreadable, or anything above not the run's.
    """
    try:
        saved = read_json(model_dir / CONFIG_FILE)
    except FileNotFoundError:
        started = model_dir.is_dir() and not any(model_dir.iterdir())
        raise ModelError(f"{model_dir}: no interrupted run to resume (no {CONFIG_FILE}" + (
            "; it was stopped before it started: run it again without --resume)"
            if started else ")")) from None
    try:
        features, run = type(params).from_dict(saved["features"]), config_labels(saved)
        config = TrainConfig.from_dict(saved["train"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ModelError(f"{model_dir / CONFIG_FILE}: unreadable config of its run "
                         f"({err})") from None
    finished = (model_dir / MODEL_FILE).is_file()
    if (other := given.other_than(config)) and finished:
        raise ModelError(f"{model_dir}: its run had finished, so resume has nothing to go on "
                         f"with; a run that sets {'; '.join(other)} starts again, in another "
                         f"folder or with overwrite, which replaces this model")
    if other:
        raise ModelError(f"{model_dir}: resume continues the run with the settings it "
                         f"started with, and the config given sets {'; '.join(other)}: "
                         f"give the run's own, or TrainConfig()")
    if saved.get("keras_backend", backend := requested()) != backend:  # weights load alike
        log.info("%s: its run began under Keras's %s backend and continues under %s "
                 "(KERAS_BACKEND)", model_dir, saved["keras_backend"], backend)
    if params.differences(features):
        raise ModelError(f"{model_dir}: its run used a store with other features")
    if run != labels:
        raise ModelError(f"{model_dir}: its run was trained on labels "
                         f"{label_set_text(run)}; this store holds {label_set_text(labels)}"
                         + label_difference(run, labels, ("the run", "the store"))
                         + "; --resume goes on with the labels it started with: start "
                           "again with --overwrite")
    check_backup(model_dir)
    if finished:
        return given.resumed(config)
    _check_notes(model_dir, saved, store, digests)
    return _epochs_kept(model_dir, saved, given.resumed(config), n_train)


def _check_notes(model_dir: Path, saved: dict, store, digests: dict):
    """Refuse a store whose train or valid notes are not the run's."""
    if "store_content" not in saved:  # by a timbremap that kept none: the store it named
        if saved.get("store") != store_id(store):
            raise ModelError(f"{model_dir}: its run learnt from {saved.get('store')} and "
                             f"recorded none of its content (a run of an older timbremap), so "
                             f"no other store can be told to hold its notes: resume it on that "
                             f"store, or start again with --overwrite")
        log.warning("%s: its run recorded none of its store's content (a run of an older "
                    "timbremap): a rebuild of %s since it began cannot be told", model_dir, store)
        return
    was = saved["store_content"] or {}  # empty: a store of no digests, warned of as it opened
    changed = [split for split in ("train", "valid")
               if split in was and was[split] != digests.get(split)]
    if changed:
        holds = "splits now hold" if len(changed) > 1 else "split now holds"
        raise ModelError(f"{model_dir}: its run learnt from other notes than this store's "
                         f"{' and '.join(changed)} {holds} (a build --add, or another store); "
                         f"--resume goes on with the notes it started with: start again with "
                         f"--overwrite")


def _epochs_kept(model_dir: Path, saved: dict, config: TrainConfig,
                 n_train: int) -> TrainConfig:
    """``config`` with epochs of as many batches as the run's had (``epoch_steps`` of its
    ``config.json``): the stopping and learning-rate rules count epochs. A run that recorded
    none goes on with this version's, warned of where an older rule gave fewer."""
    steps = saved.get("epoch_steps")
    if isinstance(steps, int) and steps >= 1:
        return config if steps == config.steps(n_train) else \
            config.replace(steps_per_epoch=steps)
    older = math.ceil(min(n_train, EPOCH_NOTES) / config.batch_size)
    if config.steps_per_epoch is None and older < config.steps(n_train):
        log.warning("%s: its run recorded no epoch length (a run of an older timbremap): its "
                    "epochs go on with %d batches; one begun before epochs were at least %d "
                    "batches may have had %d, and its stopping rules would then count longer "
                    "epochs",
                    model_dir, config.steps(n_train), EPOCH_MIN_STEPS, older)
    return config
