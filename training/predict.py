"""``timbremap predict``: labels of new audio files, through the same feature function as
the store (:func:`featurestore.features.features_from_file`), so there is no train/serve skew;
with ``windows``, the labels of a long recording clip by clip
(:func:`featurestore.windows.file_windows`, as ``build --windows`` cuts it). One batch of
files, or of a recording's clips, is in memory at a time."""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from featurestore.audio import AudioError
from featurestore.errors import InputError, check_paths, check_positive_int
from featurestore.features import features_of_files
from featurestore.offsets import warn_of_gaps
from featurestore.windows import check_hop, file_windows

from .modeldir import TrainedModel, load_trained

__all__ = ["Clip", "FilePrediction", "iter_predictions", "predict_files", "predict_features"]


@dataclass
class Clip:
    """One window of a recording and the model's answer for it, or why there is none."""

    offset: float  # seconds
    end: float     # seconds: a clip after ``offset``, or the recording's end if that is sooner
    probabilities: Optional[np.ndarray] = None
    error: Optional[str] = None


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
    clips : list of Clip
        With ``windows``: each clip's answer, in order; ``probabilities`` is their mean.
    """

    path: Path
    probabilities: Optional[np.ndarray] = None
    adjustments: Sequence[str] = ()
    error: Optional[str] = None
    labels: Tuple[str, ...] = ()
    clips: List[Clip] = field(default_factory=list)

    def top(self, k: int = 3) -> List[Tuple[str, float]]:
        """``[(label, probability), ...]``, the ``k`` most likely first.

        Raises
        ------
        ValueError
            When the file could not be used (the message is its :attr:`error`), there are not
            as many label names as probabilities, or ``k`` is below 1.
        """
        if self.probabilities is None:
            raise ValueError(self.error or f"{self.path}: no probabilities")
        return _top(self.labels, self.probabilities, k, self.path)

    def clip_top(self, clip: "Clip", k: int = 3) -> List[Tuple[str, float]]:
        """:meth:`top` of one of :attr:`clips`."""
        return _top(self.labels, clip.probabilities, k, self.path)

    def to_json(self, k: int = 3) -> dict:
        """What ``predict --json`` prints for this file."""
        if self.error:
            return {"path": str(self.path), "error": self.error}
        entry = {"path": str(self.path), "top": [[name, round(p, 6)] for name, p in
                                                  self.top(k)],
                 "adjustments": list(self.adjustments)}
        if self.clips:
            entry["clips"] = [
                {"offset": c.offset, "end": c.end, "error": c.error} if c.error else
                {"offset": c.offset, "end": c.end,
                 "top": [[n, round(p, 6)] for n, p in self.clip_top(c, k)]}
                for c in self.clips]
        return entry


def _top(labels, probabilities, k: int, path) -> List[Tuple[str, float]]:
    check_positive_int("k", k)
    if len(labels) != len(probabilities):
        raise ValueError(f"{path}: {len(probabilities)} probabilities but {len(labels)} "
                         f"label names")
    order = np.argsort(probabilities)[::-1][:k]
    return [(labels[i], float(probabilities[i])) for i in order]


def predict_features(model, features: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """Probabilities ``(N, C)`` over the model's ``C`` labels (``trained.labels``) for
    stored-format features ``(N, frames, bins)``.

    Parameters
    ----------
    model : TrainedModel or str or pathlib.Path
        A loaded model or its folder.
    features : np.ndarray, shape ``(N,) + trained.features.shape``
        What a store holds (``/spectra`` rows): real numbers, finite in float16.
    batch_size : int

    Raises
    ------
    InputError
        ``features`` not of the model's shape, not real, or not all finite in float16, or
        ``batch_size`` below 1.
    """
    check_positive_int("batch_size", batch_size)
    trained = model if isinstance(model, TrainedModel) else load_trained(model)
    shape = tuple(trained.features.shape)
    if np.ndim(features) != 1 + len(shape) or tuple(np.shape(features)[1:]) != shape:
        raise InputError(f"features must be of shape (N, {', '.join(map(str, shape))}) for "
                         f"the model in {trained.path}/, got {tuple(np.shape(features))}")
    kind = np.asarray(features[:0]).dtype.kind
    if kind not in "fiu":
        raise InputError(f"features must be real numbers (float16, as a store holds them), got "
                         f"dtype {np.asarray(features[:0]).dtype}")
    top = float(np.finfo(np.float16).max)  # the model takes float16, as stored
    bad = next((i for i in range(len(features))
                if not (np.abs(np.asarray(features[i], np.float64)) <= top).all()), None)
    if bad is not None:  # the model would answer it as if it were a sound
        raise InputError(f"features[{bad}] is not all finite in float16, as the model takes "
                         f"them (NaN, infinite, or beyond +-{top:g})")
    parts = [trained.model.predict_on_batch(np.asarray(features[i:i + batch_size]))
             for i in range(0, len(features), batch_size)]
    return (np.concatenate([np.asarray(p) for p in parts]) if parts
            else np.zeros((0, len(trained.labels)), np.float32))


def predict_files(model, files: Sequence, *, batch_size: int = 64,
                  windows: Optional[float] = None) -> List[FilePrediction]:
    """Predict every file; unreadable ones get ``error`` set and the others go on.

    Parameters
    ----------
    model : TrainedModel or str or pathlib.Path
        A loaded model or its folder.
    files : sequence of paths
        Any audio librosa/soundfile can read (wav, flac, mp3, ...; any rate, stereo).
    batch_size : int
        Files (with ``windows``: clips) the model sees at a time; the features of one batch
        are in memory at once.
    windows : float, optional
        Cut each file into clips starting this many seconds apart
        (:func:`featurestore.windows.window_offsets`) and answer for each
        (``FilePrediction.clips``); a file's ``probabilities`` are its clips' mean. Default:
        each file's first clip, as ``build`` stores it.
    """
    return list(iter_predictions(model, files, batch_size=batch_size, windows=windows))


def iter_predictions(model, files: Iterable, *, batch_size: int = 64,
                     windows: Optional[float] = None) -> Iterator[FilePrediction]:
    """:func:`predict_files`, one file's answer at a time in the order of ``files``: a batch
    is answered before the next is read. Its arguments are checked, and the model loaded,
    when it is called."""
    check_paths("files", files)
    check_positive_int("batch_size", batch_size)
    hop = None if windows is None else check_hop(windows)
    trained = model if isinstance(model, TrainedModel) else load_trained(model)
    if hop is not None:
        warn_of_gaps(hop, trained.features.n_samples / trained.features.sample_rate)
        return (_predict_windows(trained, Path(path), hop, batch_size) for path in files)
    return _predict_batches(trained, files, batch_size)


def _predict_batches(trained: TrainedModel, files: Iterable, batch_size: int
                     ) -> Iterator[FilePrediction]:
    labels = trained.labels
    for batch in features_of_files(files, trained.features, batch_size):
        usable = [r for r in batch if r.error is None]
        answers = iter(predict_features(trained, np.stack([r.features for r in usable]),
                                        batch_size=batch_size) if usable else ())
        for r in batch:
            yield (FilePrediction(r.path, error=r.error, labels=labels) if r.error else
                   FilePrediction(r.path, next(answers), r.adjustments, labels=labels))


def _predict_windows(trained: TrainedModel, path: Path, hop: float, batch_size: int
                     ) -> FilePrediction:
    """One recording's clips, read and answered a batch at a time."""
    params = trained.features
    result = FilePrediction(path, labels=trained.labels)
    adjustments: dict = {}
    try:
        windows = file_windows(path, params, hop)
        while True:
            batch = list(islice(windows, batch_size))
            if not batch:
                break
            usable = [w for w in batch if w.error is None]
            answers = iter(predict_features(trained, np.stack([w.features for w in usable]),
                                            batch_size=batch_size) if usable else ())
            for w in batch:
                adjustments.update(dict.fromkeys(w.adjustments))
                result.clips.append(Clip(w.offset, w.end, None if w.error else next(answers),
                                         w.error))
    except AudioError as err:
        return FilePrediction(path, error=str(err), labels=trained.labels)
    answered = [c.probabilities for c in result.clips if c.error is None]
    if not answered:
        first = result.clips[0]
        n = len(result.clips)
        what = ("its clip could not be used (at" if n == 1 else
                f"none of its {n} clips could be used (first, at")
        return FilePrediction(path, error=f"{path}: {what} {first.offset:g} s: {first.error})",
                              labels=trained.labels)
    result.probabilities = np.mean(answered, axis=0)
    result.adjustments = list(adjustments)
    return result
