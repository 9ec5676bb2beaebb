"""``timbremap evaluate``: score a model on a split, with scikit-learn's report and a
row-normalised confusion matrix."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from featurestore import schema
from featurestore.nsynth import FAMILIES
from featurestore.store import (SpectraReader, StoreError, open_split, read_params, split_path,
                                store_id, store_name)

from .modeldir import TrainedModel, load_trained

__all__ = ["predict_split", "evaluate", "plot_confusion", "classification_report_text"]


def predict_split(trained: TrainedModel, store, split: str, *, batch_size: int = 128,
                  loader: str = "mmap"):
    """Class probabilities of every note of a split, read in batches (memory stays bounded).

    Returns
    -------
    probabilities : np.ndarray, float32, shape ``(N, 11)``
    labels : np.ndarray, int32, shape ``(N,)``
    """
    with open_split(store, split) as f:
        trained.check_features(read_params(f), split_path(store, split))
    with SpectraReader(split_path(store, split), method=loader) as reader:
        parts = [trained.model.predict_on_batch(x)
                 for x in reader.iter_batches(batch_size)]
        labels = reader.labels
    probabilities = (np.concatenate(parts) if parts
                     else np.zeros((0, len(FAMILIES)), np.float32))
    return np.asarray(probabilities, np.float32), labels


def evaluate(store, model_dir, split: str = "test", *, batch_size: int = 128,
             confusion_png: Optional[Path] = None) -> dict:
    """Accuracy, balanced accuracy, per-family precision/recall/F1 and the confusion matrix.

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy``, ``n``, ``per_family`` (family -> precision,
        recall, f1, support), ``per_folder`` (for a store built from several NOTES folders:
        folder -> ``n``, ``accuracy``, ``balanced_accuracy`` of its notes; else empty),
        ``confusion`` (11 x 11 counts, rows = true family), ``families``, ``split``,
        ``store``, ``model`` and ``confusion_png`` (where the plot went).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
    trained = load_trained(model_dir)
    probabilities, labels = predict_split(trained, store, split, batch_size=batch_size)
    if not len(labels):
        raise StoreError(f"{split_path(store, split)}: holds no notes to evaluate")
    predicted = probabilities.argmax(axis=1)
    everything = list(range(len(FAMILIES)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=everything, zero_division=0)
    confusion = confusion_matrix(labels, predicted, labels=everything)
    result = {
        "split": split, "store": store_id(store),
        "model": str(Path(model_dir).resolve()), "n": int(len(labels)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "balanced_accuracy": _balanced_accuracy(labels, predicted),
        "per_family": {name: {"precision": float(p), "recall": float(r), "f1": float(f),
                              "support": int(s)}
                       for name, p, r, f, s in zip(FAMILIES, precision, recall, f1, support)},
        "per_folder": _per_folder(store, split, labels, predicted),
        "confusion": confusion.tolist(), "families": list(FAMILIES),
    }
    default = default_confusion_png(trained, store, split)
    png = Path(confusion_png) if confusion_png else default
    if png.is_dir():
        png = png / default.name
    elif png.suffix.lower() != ".png":
        png = png.with_name(png.name + ".png")
    plot_confusion(confusion, png, f"{split}: accuracy {result['accuracy']:.3f}, balanced "
                                   f"{result['balanced_accuracy']:.3f} (n={result['n']})")
    result["confusion_png"] = str(png)
    result["_labels"], result["_predicted"] = labels, predicted
    return result


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


def default_confusion_png(trained: TrainedModel, store, split: str) -> Path:
    """``MODEL_DIR/confusion_SPLIT.png`` for the store the model was trained on, and
    ``MODEL_DIR/confusion_STORENAME_SPLIT.png`` for any other (so one does not overwrite the
    other)."""
    recorded = trained.info.get("store", "")
    own = recorded and store_id(recorded) == store_id(store)
    return trained.path / (f"confusion_{split}.png" if own
                           else f"confusion_{store_name(store)}_{split}.png")


def _balanced_accuracy(labels, predicted) -> float:
    """scikit-learn's balanced accuracy over the families present, without its warning that
    the model predicted a family the split has none of (normal on a small split)."""
    import warnings
    from sklearn.metrics import balanced_accuracy_score
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(labels, predicted))


def classification_report_text(result: dict) -> str:
    """scikit-learn's per-family report for an :func:`evaluate` result."""
    from sklearn.metrics import classification_report
    present = sorted(set(result["_labels"].tolist()) | set(result["_predicted"].tolist()))
    return classification_report(result["_labels"], result["_predicted"], labels=present,
                                 target_names=[FAMILIES[i] for i in present], digits=3,
                                 zero_division=0)


def plot_confusion(confusion: np.ndarray, path: Path, title: str):
    """Row-normalised confusion matrix with the family names on both axes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    confusion = np.asarray(confusion, dtype=float)
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    fig, ax = plt.subplots(figsize=(8.5, 7.5), constrained_layout=True)
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(FAMILIES))
    ax.set_xticks(ticks, FAMILIES, rotation=45, ha="right")
    ax.set_yticks(ticks, [f"{name} ({int(n)})" for name, n in zip(FAMILIES, rows[:, 0])])
    for i in ticks:
        for j in ticks:
            if normalised[i, j] >= 0.005:
                ax.text(j, i, f"{normalised[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if normalised[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted family")
    ax.set_ylabel("true family (notes)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true family's notes")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight", pad_inches=0.2)  # axis labels uncut
    plt.close(fig)
