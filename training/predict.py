"""``timbremap predict``: labels of new audio files, through the same feature function as
the store (:func:`featurestore.features.features_from_file`), so there is no train/serve skew."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from featurestore.audio import AudioError
from featurestore.features import features_from_file

from .modeldir import TrainedModel, load_trained

__all__ = ["FilePrediction", "predict_files", "predict_features"]


@dataclass
class FilePrediction:
    """The model's answer for one file, or why there is none.

    Attributes
    ----------
    path : pathlib.Path
    probabilities : np.ndarray, float32, shape ``(C,)``, or None
        One for each of ``labels``; ``None`` when the file could not be used.
    adjustments : sequence of str
        What reading did to the file (downmixed, resampled, ...).
    error : str or None
        Why the file could not be used.
    labels : tuple of str
        The model's label set: ``probabilities[i]`` is that of ``labels[i]``.
    """

    path: Path
    probabilities: Optional[np.ndarray] = None
    adjustments: Sequence[str] = ()
    error: Optional[str] = None
    labels: Tuple[str, ...] = ()

    def top(self, k: int = 3) -> List[Tuple[str, float]]:
        """``[(label, probability), ...]``, the ``k`` most likely first.

        Raises
        ------
        ValueError
            When there are not as many label names as probabilities.
        """
        if len(self.labels) != len(self.probabilities):
            raise ValueError(f"{self.path}: {len(self.probabilities)} probabilities but "
                             f"{len(self.labels)} label names")
        order = np.argsort(self.probabilities)[::-1][:k]
        return [(self.labels[i], float(self.probabilities[i])) for i in order]


def predict_features(trained: TrainedModel, features: np.ndarray, batch_size: int = 64
                     ) -> np.ndarray:
    """Probabilities ``(N, C)`` over the model's ``C`` labels (``trained.labels``) for
    stored-format features ``(N, frames, bins)``."""
    parts = [trained.model.predict_on_batch(np.asarray(features[i:i + batch_size]))
             for i in range(0, len(features), batch_size)]
    return (np.concatenate([np.asarray(p) for p in parts]) if parts
            else np.zeros((0, len(trained.labels)), np.float32))


def predict_files(model, files: Sequence, batch_size: int = 64) -> List[FilePrediction]:
    """Predict every file; unreadable ones get ``error`` set and the others go on.

    Parameters
    ----------
    model : TrainedModel or str or pathlib.Path
        A loaded model or its folder.
    files : sequence of paths
        Any audio librosa/soundfile can read (wav, flac, mp3, ...; any rate, stereo).
    """
    trained = model if isinstance(model, TrainedModel) else load_trained(model)
    labels = trained.labels
    results, features = [], []
    for path in map(Path, files):
        try:
            spectrum, adjustments = features_from_file(path, trained.features)
        except AudioError as err:
            results.append(FilePrediction(path, error=str(err), labels=labels))
            continue
        results.append(FilePrediction(path, adjustments=adjustments, labels=labels))
        features.append(spectrum)
    if features:
        probabilities = predict_features(trained, np.stack(features), batch_size)
        for result, p in zip((r for r in results if r.error is None), probabilities):
            result.probabilities = p
    return results
