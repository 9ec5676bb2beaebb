"""A trained model's folder: what it holds, and loading it back with a clear error.

``MODEL_DIR/``
    ``model.keras``   the best model (by validation accuracy); it normalises its own input
    ``config.json``   ``train`` (TrainConfig), ``features`` (FeatureParams of the store, so
                      ``predict`` computes identical features), ``families``, ``input_shape``,
                      ``store``, the best epoch and its validation accuracy, epochs run,
                      minutes trained, and why training stopped (``stopped``)
    ``history.csv``   one row per epoch (epoch, loss, accuracy, val_loss, val_accuracy,
                      learning_rate, seconds)
    ``curves.png``    learning curves
    ``backup/``       only while training: what ``--resume`` continues from
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from featurestore.errors import TimbremapError
from featurestore.params import FeatureParams

from .config import TrainConfig

__all__ = ["ModelError", "TrainedModel", "load_trained", "MODEL_FILE", "CONFIG_FILE"]

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
BACKUP_DIR = "backup"
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
    def weights_hash(self) -> str:
        """SHA-1 of the saved model file (identifies the weights in analysis attrs)."""
        return hashlib.sha1((self.path / MODEL_FILE).read_bytes()).hexdigest()

    def check_features(self, params: FeatureParams, where: str):
        """Raise :class:`ModelError` when ``params`` differ from the model's features."""
        differences = params.differences(self.features)  # the store's value first
        if differences:
            raise ModelError(f"{where} was built with other features than the model "
                             f"{self.path} ({'; '.join(differences)}, store != model)")


def load_trained(model_dir) -> TrainedModel:
    """Load ``MODEL_DIR/model.keras`` and ``config.json``.

    Raises
    ------
    ModelError
        When the folder or a file is missing, or the model cannot be loaded.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: no such model folder")
    for name in (MODEL_FILE, CONFIG_FILE):
        if not (model_dir / name).is_file():
            raise ModelError(f"{model_dir}: not a trained model folder (no {name}; "
                             f"train one with 'timbremap train STORE {model_dir}')")
    try:
        info = json.loads((model_dir / CONFIG_FILE).read_text())
        config = TrainConfig.from_dict(info["train"])
        features = FeatureParams.from_dict(info["features"])
    except (ValueError, KeyError, TypeError) as err:
        raise ModelError(f"{model_dir / CONFIG_FILE}: unreadable model config ({err})") from None
    if not zipfile.is_zipfile(model_dir / MODEL_FILE):  # keras would say "File not found"
        raise ModelError(f"{model_dir / MODEL_FILE}: not a Keras model file (not a .keras zip)")
    import keras
    from . import models  # noqa: F401  registers the custom layers
    try:
        # safe mode: a model file never runs code (no lambda layers are deserialised)
        model = keras.models.load_model(model_dir / MODEL_FILE, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - keras raises many kinds for a bad file
        raise ModelError(f"{model_dir / MODEL_FILE}: cannot load the model "
                         f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    return TrainedModel(model_dir, model, config, features, info)
