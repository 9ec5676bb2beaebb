"""A trained model's folder: what it holds, and loading it back with a clear error.

``MODEL_DIR/``
    ``model.keras``   the best model (by validation accuracy); it normalises its own input
    ``config.json``   ``train`` (TrainConfig), ``features`` (FeatureParams of the store, so
                      ``predict`` computes identical features), ``labels`` (the store's label
                      set, in the order of the model's outputs), ``input_shape``,
                      ``store`` and ``store_content`` (its splits' content digests),
                      ``keras_backend``, ``epoch_steps`` (the batches of an epoch), the best
                      epoch and its validation accuracy, epochs run, minutes trained, and why
                      training stopped (``stopped``)
    ``history.csv``   one row per epoch (epoch, loss, accuracy, val_loss, val_accuracy,
                      learning_rate, seconds)
    ``curves.png``    learning curves
    ``backup/``       only while training: what ``--resume`` continues from
"""
from __future__ import annotations

import hashlib
import os
import re
import reprlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from featurestore.schema import composed_labels
from featurestore.errors import TimbremapError, counted, label_set_text, shell_path
from featurestore.files import locked_by_another
from featurestore.jsonstream import read_json, reason
from featurestore.nsynth import FAMILIES
from featurestore.params import FeatureParams

from .backend import import_tensorflow_quietly
from .config import TrainConfig

__all__ = ["ModelError", "TrainedModel", "load_trained", "read_model_labels", "config_labels",
           "resume_hint",
           "label_set_text", "check_model_dir", "check_backup", "latest_backup", "MODEL_FILE",
           "CONFIG_FILE"]

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
BACKUP_DIR = "backup"
#: An epoch's backup in ``BACKUP_DIR``: its weights and optimizer state (``training.runfiles``).
BACKUP_NAME = re.compile(r"epoch-(\d{4,})\.weights\.h5")
BEST_FILE = "best.keras"


class ModelError(TimbremapError, ValueError):
    """A model folder that is missing, incomplete or unreadable, or does not fit a store."""


@dataclass
class TrainedModel:
    """A loaded model and what it was trained with."""

    path: Path
    model: object  # keras.Model
    config: TrainConfig
    features: FeatureParams
    info: dict

    @property
    def labels(self) -> Tuple[str, ...]:
        """The label set the model was trained on: ``labels[i]`` is the class of output ``i``."""
        return config_labels(self.info)

    @property
    def weights_hash(self) -> str:
        """SHA-1 of the saved model file (identifies the weights in analysis attrs)."""
        return hashlib.sha1((self.path / MODEL_FILE).read_bytes()).hexdigest()

    def other_model(self, recorded) -> str:
        """Which model made results whose weights are not this one's, ``recorded`` the folder
        they name: another folder's, or this folder's before it was trained again."""
        if recorded and os.path.realpath(recorded) == os.path.realpath(self.path):
            return f"the model {self.path} held before it was trained again"
        return f"another model ({recorded or 'a model no longer named there'})"

    def check_features(self, params: FeatureParams, where: str):
        """Raise :class:`ModelError` when ``params`` differ from the model's features."""
        differences = params.differences(self.features)  # the store's value first
        if differences:
            raise ModelError(f"{where} was built with other features than the model "
                             f"{self.path} ({'; '.join(differences)}, store != model)")

    def label_outputs(self, names: Sequence[str], labels: np.ndarray, where: str) -> np.ndarray:
        """The model's output of each label of a store's label set ``names`` (what
        :func:`featurestore.schema.read_label_names` gives for ``where``), for scoring notes
        of the labels ``labels``: labels are matched by name, so a store may hold the model's
        labels in another order (``build --add`` appends new ones, a rebuild sorts them), only
        some of them (a test set of a few), or others that no note of ``labels`` carries.

        Returns
        -------
        np.ndarray, int64, shape ``(len(names),)``
            ``outputs[label]`` is the model's output index of the store's label ``label``;
            ``-1`` for a label the model lacks.

        Raises
        ------
        ModelError
            A note of ``labels`` is of a label the model was not trained on.
        """
        known = {name: k for k, name in enumerate(self.labels)}
        outputs = np.array([known.get(name, -1) for name in names], dtype=np.int64)
        unknown = [names[k] for k in np.unique(labels) if outputs[k] < 0]
        if unknown:
            both = [*unknown, *self.labels]  # quoted alike
            raise ModelError(f"{where} holds notes of {label_set_text(unknown, among=both)}, "
                             f"which the model in {self.path} was not trained on: it knows "
                             f"{label_set_text(self.labels, among=both)}; a model scores only "
                             f"its labels")
        return outputs


def check_backup(model_dir: Path):
    """Raise :class:`ModelError` where ``model_dir``'s ``backup/`` holds files but no epoch's
    backup of this version (``BACKUP_NAME``): an interrupted run of an older timbremap (its
    ``latest.weights.h5``), which ``--resume`` would start again over its history."""
    folder = Path(model_dir) / BACKUP_DIR
    try:
        names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    except FileNotFoundError:
        return
    except OSError as err:
        raise ModelError(f"{folder}: cannot be read ({err.strerror or err})") from None
    if names and not any(BACKUP_NAME.fullmatch(name) for name in names):
        raise ModelError(f"{folder}: holds {', '.join(names[:3])}{' ...' * (len(names) > 3)},"
                         f" not the epoch-NNNN.weights.h5 of a run this version can resume (a "
                         f"run of an older timbremap?): start again with --overwrite")


def check_model_dir(model_dir: Path):
    """A model folder is new, empty or timbremap's own (its ``config.json`` says so): training
    never writes over a user's files, or into a store folder. Files a user adds to a model
    folder (notes, reports) are left alone."""
    if model_dir.exists() and not model_dir.is_dir():
        raise ModelError(f"{model_dir}: exists and is not a folder")
    if not model_dir.is_dir():
        return
    try:
        read_json(model_dir / CONFIG_FILE)["timbremap_version"]
        return  # a model folder of ours
    except FileNotFoundError:
        foreign = sorted(p.name for p in model_dir.iterdir() if not p.name.startswith("."))
    except (OSError, ValueError, KeyError, TypeError):
        foreign = [CONFIG_FILE]
    if foreign:
        raise ModelError(f"{model_dir}: holds files that are not a timbremap model's "
                         f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
                         f"train into a new or empty folder")


def config_labels(info: dict) -> Tuple[str, ...]:
    """The label set of a model's ``config.json`` (parsed): its ``labels``, in Unicode's
    composed form (:func:`featurestore.schema.read_label_names`); a model trained before
    stores owned their label set has ``families`` or nothing (NSynth's families, both)."""
    key = next((k for k in ("labels", "families") if k in info), None)
    if key is None:
        return tuple(FAMILIES)
    names = info[key]
    if not isinstance(names, list) or not names or not all(
            isinstance(name, str) and name for name in names):
        raise ValueError(f"its {key} are {reprlib.repr(names)}, not a list of label names")
    return composed_labels(names)  # as stores' are read


def _unreadable(path: Path, err: Exception) -> "ModelError":
    """The error for a model's ``config.json`` that cannot be read or used."""
    why = f"it has no {err} entry" if isinstance(err, KeyError) else reason(err, path)
    return ModelError(f"{path}: unreadable model config ({why})")


def _read_config(path: Path) -> dict:
    """A model's ``config.json``: a ``ValueError`` where it is not a JSON object."""
    info = read_json(path)
    if not isinstance(info, dict):
        raise ValueError(f"a JSON {type(info).__name__}, not an object of settings")
    return info


def read_model_labels(model_dir) -> Tuple[str, ...]:
    """The label set a model folder's ``config.json`` records, without loading the model.

    Raises
    ------
    ModelError
        When ``config.json`` is missing or unreadable.
    """
    path = Path(model_dir) / CONFIG_FILE
    try:
        return config_labels(_read_config(path))
    except FileNotFoundError:
        raise ModelError(f"{Path(model_dir)}: not a trained model folder (no {CONFIG_FILE})"
                         ) from None
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise _unreadable(path, err) from None


#: A model file's members may unpack to this many times the file's size, and this many bytes
#: more: weights do not compress much (a model's zip holds them stored or deflated), so a file
#: that unpacks to far more is damaged or made to exhaust memory.
UNPACK_RATIO, UNPACK_SPARE = 16, 64 * 2**20


def _check_unpacked_size(path: Path):
    """Raise :class:`ModelError` unless ``path`` is a zip whose members, as its directory
    declares them (what reading them can yield), unpack to at most :data:`UNPACK_RATIO` times
    the file's size and :data:`UNPACK_SPARE` bytes more."""
    if not zipfile.is_zipfile(path):  # keras would say "File not found"
        raise ModelError(f"{path}: not a Keras model file (not a .keras zip)")
    try:
        with zipfile.ZipFile(path) as zf:
            unpacked = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError) as err:
        raise ModelError(f"{path}: not a readable Keras model file ({err})") from None
    limit = UNPACK_RATIO * path.stat().st_size + UNPACK_SPARE
    if unpacked > limit:
        raise ModelError(f"{path}: its members unpack to {unpacked:,} bytes, more than "
                         f"{limit:,} for a file of {path.stat().st_size:,} (weights do not "
                         f"compress so far): a damaged file, not loaded")


def load_trained(model_dir) -> TrainedModel:
    """Load ``MODEL_DIR/model.keras`` and ``config.json``.

    Raises
    ------
    ModelError
        When the folder or a file is missing, the model cannot be loaded, or its outputs are
        not as many as the labels ``config.json`` lists.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: " + (
            "is a file; a model is the folder that holds model.keras and config.json"
            if model_dir.is_file() else "not a folder but a pipe, socket or device"
            if model_dir.exists() else "no such model folder"))
    for name in (MODEL_FILE, CONFIG_FILE):
        path = model_dir / name
        if not path.is_file():
            if path.exists() or path.is_symlink():
                raise ModelError(f"{path}: " + (
                    "not a file but a folder, pipe, socket or device" if path.exists() else
                    "is a link to nothing (its target is missing, or it is a loop)"))
            if (model_dir / CONFIG_FILE).is_file() and locked_by_another(model_dir):
                raise ModelError(f"{model_dir}: not a trained model yet (no {name}): a "
                                 f"'timbremap train' is writing it; wait for it to finish")
            splits = sorted(p.name for p in model_dir.glob("*.h5"))
            stopped = (model_dir / BACKUP_DIR).is_dir() or (model_dir / BEST_FILE).is_file()
            raise ModelError(f"{model_dir}: not a trained model folder (no {name}; " + (
                f"it holds split files, {', '.join(splits)}: a store? Give the folder "
                f"'timbremap train' wrote the model into)" if splits else
                f"it holds a run that was stopped before it finished: go on with 'timbremap "
                f"train STORE {shell_path(model_dir)} --resume')" if stopped else
                f"train one with 'timbremap train STORE {shell_path(model_dir)}')"))
    try:
        info = _read_config(model_dir / CONFIG_FILE)
        config = TrainConfig.from_dict(info["train"])
        features = FeatureParams.from_dict(info["features"])
        labels = config_labels(info)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise _unreadable(model_dir / CONFIG_FILE, err) from None
    _check_unpacked_size(model_dir / MODEL_FILE)
    import_tensorflow_quietly()  # after every refusal: those come without it
    import keras
    from . import models  # noqa: F401  registers the custom layers
    try:
        # safe mode: a model file never runs code (no lambda layers are deserialised)
        model = keras.models.load_model(model_dir / MODEL_FILE, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - keras raises many kinds for a bad file
        raise ModelError(f"{model_dir / MODEL_FILE}: cannot load the model "
                         f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    takes = tuple(model.inputs[0].shape[1:])
    if takes != tuple(features.shape):  # a note of other features could be any size
        raise ModelError(f"{model_dir}: {CONFIG_FILE}'s features make notes of shape "
                         f"{tuple(features.shape)}, but {MODEL_FILE} takes {takes}: they are "
                         f"not one model's")
    outputs = int(model.outputs[0].shape[-1])
    if outputs != len(labels):
        raise ModelError(f"{model_dir}: {MODEL_FILE} has {outputs} outputs, but {CONFIG_FILE} "
                         f"lists {len(labels)} labels {label_set_text(labels)}")
    return TrainedModel(model_dir, model, config, features, info)


def latest_backup(folder: Path) -> Optional[Tuple[int, Path]]:
    """``(epochs finished, path)`` of the newest backup in ``folder``, or ``None`` (read
    without Keras: what a stopped ``train`` says, while Keras may be half imported)."""
    found = [(int(m.group(1)), p) for p in folder.glob("epoch-*.weights.h5")
             if (m := BACKUP_NAME.fullmatch(p.name))] if folder.is_dir() else []
    return max(found) if found else None


def resume_hint(store, model_dir) -> str:
    """What a run stopped before it finished left in ``model_dir``, and the command that goes
    on with it: ``2 finished epochs kept: 'timbremap train STORE MODEL --resume' continues the
    run``, ``no epoch had finished: ... starts it again``, that it had not started, or that
    the model a finished run left is as it was (read without Keras, which may be half
    imported)."""
    model_dir = Path(model_dir)
    if not (model_dir / CONFIG_FILE).is_file():
        return "the run had not started: run the same command again"
    done = latest_backup(model_dir / BACKUP_DIR)
    if done is None and (model_dir / MODEL_FILE).is_file():  # --overwrite, stopped before it
        return f"the model in {model_dir} is as it was"
    command = f"'timbremap train {shell_path(store)} {shell_path(model_dir)} --resume'"
    return (f"{counted(done[0], 'finished epoch')} kept: {command} continues the run" if done
            else f"no epoch had finished: {command} starts it again")
