"""``timbremap evaluate``: score a model on a split, each label's precision, recall and F1 and
a row-normalised confusion matrix, over the model's label set (the split's labels matched to
it by name)."""
from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from featurestore import schema
from featurestore.errors import InputError, label_counts_text
from featurestore.reader import SpectraReader
from featurestore.store import (StoreError, content_digests, open_split, read_params,
                                split_path, store_id, store_name)
from featurestore.files import real_path

from .confusion import LABEL_CHARS, plot_confusion
from .images import cut_labels, image_path
from .modeldir import TrainedModel, load_trained

__all__ = ["predict_split", "evaluate", "Evaluation", "write_confusion", "plot_confusion",
           "per_label_text"]

log = logging.getLogger(__name__)

#: A label with fewer notes than this in the split scored is warned of: one note more or less
#: right moves its recall by a quarter or more (and the balanced accuracy, their mean, with it).
FEW_NOTES = 5


def predict_split(trained: TrainedModel, store, split: str, *, batch_size: int = 128,
                  loader: str = "mmap"):
    """Class probabilities of every note of a split, read in batches (memory stays bounded).

    Returns
    -------
    probabilities : np.ndarray, float32, shape ``(N, C)``
        Over the model's ``C`` labels (``trained.labels``).
    labels : np.ndarray, int64, shape ``(N,)``
        Each note's label as the model's output index (:meth:`TrainedModel.label_outputs`:
        the store's labels matched by name).

    Raises
    ------
    ModelError
        The split was built with other features than the model, or holds notes of a label
        the model was not trained on.
    """
    where = split_path(store, split)
    with open_split(store, split) as f:
        trained.check_features(read_params(f), where)
    with SpectraReader(where, method=loader) as reader:
        outputs = trained.label_outputs(reader.label_names, reader.labels, where)
        labels = outputs[reader.labels]
        parts = [trained.model.predict_on_batch(x)
                 for x in reader.iter_batches(batch_size)]
    probabilities = (np.concatenate(parts) if parts
                     else np.zeros((0, len(trained.labels)), np.float32))
    return np.asarray(probabilities, np.float32), labels


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured on a split, over the model's label set.

    Attributes
    ----------
    split, store, model : str
        The split scored, the store's id and the model folder.
    n : int
        Notes scored.
    accuracy, balanced_accuracy : float
    per_label : dict
        Label -> ``precision``, ``recall``, ``f1``, ``support``, for every label of the set;
        ``None`` where a score is undefined: recall of a label no note has, precision of one
        never predicted, f1 of one neither. (``per_family``: its older name.)
    per_folder : dict
        For a store built from several NOTES folders: folder -> ``n``, ``accuracy``,
        ``balanced_accuracy`` of its notes; else empty.
    per_file : dict
        For a split with several clips of a file (``build --windows``): ``n`` files,
        ``accuracy`` and ``balanced_accuracy`` of each file's clip probabilities averaged; else
        empty.
    store_changed : list of str
        The splits of the model's own store that changed since it was trained (e.g. by
        ``build --add``; a warning is logged).
    confusion : np.ndarray, int64, shape ``(C, C)``
        Counts for the ``C`` labels, rows = true label.
    labels : tuple of str
        The label set, in the confusion matrix's order.
    default_png : pathlib.Path
        Where :func:`write_confusion` puts the matrix unless told: ``MODEL_DIR/confusion_SPLIT.png``
        for the store the model was trained on, ``MODEL_DIR/confusion_STORENAME_SPLIT.png`` for
        any other (so one does not overwrite the other).
    """

    split: str
    store: str
    model: str
    n: int
    accuracy: float
    balanced_accuracy: float
    per_label: dict
    per_folder: dict
    per_file: dict
    store_changed: list
    confusion: np.ndarray
    labels: Tuple[str, ...]
    default_png: Path

    @property
    def per_family(self) -> dict:
        """:attr:`per_label`, by its older name."""
        return self.per_label

    def to_dict(self) -> dict:
        """Plain json values (``evaluate --json``): every attribute but ``default_png``, and
        ``families`` and ``per_family``, the older names of ``labels`` and ``per_label``."""
        return {"split": self.split, "store": self.store, "model": self.model, "n": self.n,
                "accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy,
                "per_label": self.per_label, "per_family": self.per_label,
                "per_folder": self.per_folder,
                "per_file": self.per_file, "store_changed": self.store_changed,
                "confusion": self.confusion.tolist(), "labels": list(self.labels),
                "families": list(self.labels)}


def evaluate(store, model_dir, split: str = "test", *, batch_size: int = 128) -> Evaluation:
    """Accuracy, balanced accuracy, per-label precision/recall/F1 and the confusion matrix of a
    model on a split, over the model's label set (the store's labels are matched to it by
    name: in another order, some of them, or others that no note of the split carries); the
    picture of the matrix is :func:`write_confusion`'s. The split's labels of fewer than
    :data:`FEW_NOTES` notes are warned of.

    Parameters
    ----------
    store : str or pathlib.Path
        A store folder, or its URL.
    model_dir : str or pathlib.Path
        The folder ``train`` wrote the model into.
    split : str
    batch_size : int
        Notes predicted at a time.

    Returns
    -------
    Evaluation

    Raises
    ------
    ModelError
        The model cannot be loaded, or the split was built with other features than the
        model or holds notes of a label the model was not trained on.
    StoreError
        A missing split, or one without notes.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
    trained = load_trained(model_dir)
    probabilities, labels = predict_split(trained, store, split, batch_size=batch_size)
    if not len(labels):
        raise StoreError(f"{split_path(store, split)}: holds no notes to evaluate")
    predicted = probabilities.argmax(axis=1)
    names = tuple(trained.labels)
    everything = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=everything, zero_division=0)
    guessed = np.bincount(predicted, minlength=len(names))
    _warn_of_few_notes(split_path(store, split), names, support)

    def score(value, defined: bool):  # undefined: no note of the label, or none predicted
        return float(value) if defined else None
    return Evaluation(
        split=split, store=store_id(store), model=str(real_path(model_dir)),
        n=int(len(labels)), accuracy=float(accuracy_score(labels, predicted)),
        balanced_accuracy=_balanced_accuracy(labels, predicted),
        per_label={name: {"precision": score(p, g > 0), "recall": score(r, s > 0),
                          "f1": score(f, s > 0 or g > 0), "support": int(s)}
                   for name, p, r, f, s, g in zip(names, precision, recall, f1, support,
                                                  guessed)},
        per_folder=_per_folder(store, split, labels, predicted),
        per_file=_per_file(store, split, labels, probabilities),
        store_changed=_changed_since(trained, store, split),
        confusion=confusion_matrix(labels, predicted, labels=everything).astype(np.int64),
        labels=names, default_png=default_confusion_png(trained, store, split))


def _warn_of_few_notes(path, names, support: np.ndarray):
    """Warn of the labels of a split with fewer than :data:`FEW_NOTES` notes (``support``:
    notes of each of ``names``), the fewest first: one note more or less right moves their
    recall, and the balanced accuracy, by much."""
    few = [k for k in np.argsort(support, kind="stable") if 0 < support[k] < FEW_NOTES]
    if not few:
        return
    listed = label_counts_text([(names[k], int(support[k])) for k in few], among=names, most=8)
    log.warning("%s: %d of its %d labels have fewer than %d notes (%s): their recall, and the "
                "balanced accuracy that averages the recalls, rest on a note or a few",
                path, len(few), int((support > 0).sum()), FEW_NOTES, listed)


def write_confusion(result: Evaluation, path=None) -> Optional[Path]:
    """Plot ``result``'s confusion matrix (:func:`plot_confusion`) as a PNG.

    Parameters
    ----------
    result : Evaluation
    path : str or pathlib.Path, optional
        The file, in the format its ending names (:func:`training.images.image_path`: ``.png``
        added where it has none, its folders made where they are missing); a folder, or text
        ending in a separator (``out/``), puts ``result.default_png``'s name in it. Default
        (``None`` or ``''``): ``result.default_png``.

    Returns
    -------
    pathlib.Path or None
        Where it went; ``None`` where the default could not be written (a read-only model
        folder: the scores are still worth having), with a warning.

    Raises
    ------
    InputError
        An ending matplotlib cannot write, or a ``path`` given that cannot be written.
    """
    try:
        png = image_path(path or result.default_png, in_folder=result.default_png.name)
    except InputError as err:
        if path:
            raise
        log.warning("%s; give --confusion PATH", err)  # the model's folder: read-only
        return None
    try:
        plot_confusion(result.confusion, png, f"{result.split}: accuracy {result.accuracy:.3f}, "
                                              f"balanced {result.balanced_accuracy:.3f} "
                                              f"(n={result.n})", names=result.labels)
    except OSError as err:
        if path:
            raise InputError(f"{png}: cannot write the confusion matrix "
                             f"({err.strerror or err})") from None
        log.warning("%s: cannot write the confusion matrix (%s); give --confusion PATH",
                    png, err.strerror or err)
        return None
    return png


def _per_folder(store, split: str, labels: np.ndarray, predicted: np.ndarray) -> dict:
    """Accuracy of the notes of each NOTES folder a store was built from (``/source_folder``),
    when there are several; ``{}`` otherwise."""
    with open_split(store, split) as f:
        if schema.SOURCE_FOLDER not in f:
            return {}
        folders = f[schema.SOURCE_FOLDER]
        names, index = list(folders.attrs[schema.LIST_NAMES]), folders[:]
    if len(names) < 2:
        return {}
    result = {}
    for k, name in enumerate(names):
        mine = index == k
        if mine.any():
            result[str(name)] = {
                "n": int(mine.sum()),
                "accuracy": float(np.mean(labels[mine] == predicted[mine])),
                "balanced_accuracy": _balanced_accuracy(labels[mine], predicted[mine])}
    return result


def _per_file(store, split: str, labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """Accuracy per recording, each file's clip probabilities averaged, when a file gave the
    split several clips (``build --windows``); ``{}`` otherwise."""
    with open_split(store, split) as f:
        if schema.FILE not in f or not len(labels):
            return {}
        keys = list(zip(f[schema.SOURCE_FOLDER][:].tolist(), f[schema.FILE].asstr()[:]))
    first = {}  # each (source folder, file) -> its index, in order of first clip
    index = np.array([first.setdefault(key, len(first)) for key in keys])
    files = first
    if len(files) == len(keys):
        return {}
    sums = np.zeros((len(files), probabilities.shape[1]))
    np.add.at(sums, index, probabilities)
    truth = np.zeros(len(files), np.int64)
    truth[index] = labels  # a file's clips share its label
    guess = sums.argmax(axis=1)
    return {"n": int(len(files)), "accuracy": float(np.mean(truth == guess)),
            "balanced_accuracy": _balanced_accuracy(truth, guess)}


def _changed_since(trained: TrainedModel, store, scored: str) -> list:
    """The splits of the store a model was trained on whose content changed since (a rebuild,
    ``build --add``), each warned of, that store being at the path the model recorded or a
    copy of it (a split of the same content); ``[]`` for another store, or a model that
    recorded none (warned of, at its path: whether its store changed cannot be told). The
    split ``scored`` is warned of, in any store, where it holds the very notes the model was
    trained on (a copy of that train split, renamed, or the same notes built again)."""
    recorded = trained.info.get("store_content") or {}
    own = store_id(trained.info.get("store", "")) == store_id(store)
    if not recorded:
        if own:
            log.warning("%s: recorded no content of its store (trained before models did, or "
                        "on splits that recorded none), so whether %s changed since cannot be "
                        "told", trained.path, store)
        return []
    now = content_digests(store, warn=own)
    trained_on = recorded.get("train")
    if scored != "train" and trained_on is not None and now.get(scored) == trained_on:
        log.warning("%s: holds the very notes the model in %s/ was trained on (its train "
                    "split's content): these scores are not of unheard notes",
                    split_path(store, scored), trained.path)
    if not own and not any(now.get(split) == digest for split, digest in recorded.items()):
        return []  # another store
    changed = [split for split, digest in recorded.items() if now.get(split) != digest]
    for split in changed:
        log.warning("%s: changed since the model in %s/ was trained on it (built again or grown "
                    "by build --add)%s", split_path(store, split), trained.path,
                    "; the model has not learnt its new notes" if split == "train" else "")
    return changed


def default_confusion_png(trained: TrainedModel, store, split: str) -> Path:
    """:attr:`Evaluation.default_png` of ``trained`` on ``store``'s ``split``."""
    recorded = trained.info.get("store", "")
    own = recorded and store_id(recorded) == store_id(store)
    return trained.path / (f"confusion_{split}.png" if own
                           else f"confusion_{store_name(store)}_{split}.png")


def _balanced_accuracy(labels, predicted) -> float:
    """scikit-learn's balanced accuracy over the labels present, without its warnings that
    the model predicted a label the split has none of, or that the split and the predictions
    hold a single label (both normal on a small split)."""
    import warnings
    from sklearn.metrics import balanced_accuracy_score
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        return float(balanced_accuracy_score(labels, predicted))


def _columns(text: str) -> int:
    """The terminal columns ``text`` takes: a wide character (CJK, emoji) two, a mark none."""
    return sum(0 if unicodedata.category(c) in ("Mn", "Me", "Cf") else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def per_label_text(result: Evaluation) -> str:
    """Each label's precision, recall, F1 and notes in an :func:`evaluate` result, as a table
    over the model's whole label set: the scores ``--json`` gives (``per_label``), ``-``
    where one is undefined (``null`` there); a label longer than :data:`LABEL_CHARS` is cut
    in the middle, as the confusion matrix draws it."""
    shown = dict(zip(result.per_label, cut_labels(list(result.per_label), LABEL_CHARS)))
    width = max(_columns("label"), *map(_columns, shown.values()))
    rows = [f"label{' ' * (width - 5)}  precision  recall     f1  notes"]
    for name, scores in result.per_label.items():
        cells = ["-" if scores[k] is None else f"{scores[k]:.3f}"
                 for k in ("precision", "recall", "f1")]
        rows.append(f"{shown[name]}{' ' * (width - _columns(shown[name]))}  {cells[0]:>9}  "
                    f"{cells[1]:>6}  {cells[2]:>5}  {scores['support']:>5}")
    return "\n".join(rows) + "\n"
