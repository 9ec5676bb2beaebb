"""The picture of a confusion matrix: a row-normalised matrix of any number of labels, with
the labels' names on both axes."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .images import cut_labels, drawable, literal_text, save_figure

__all__ = ["plot_confusion", "LABEL_CHARS", "MAX_CELL_TEXT"]

#: Labels beyond which a confusion plot's cells carry no value (it would be too small to read).
MAX_CELL_TEXT = 40

#: The most characters of a label a confusion plot draws (a longer one is cut, with an ellipsis).
LABEL_CHARS = 32


@literal_text
def plot_confusion(confusion: np.ndarray, path: Path, title: str, *, names) -> Path:
    """Row-normalised confusion matrix with the label names on both axes.

    Parameters
    ----------
    confusion : array of int, shape ``(C, C)``
        Counts, rows = true label, columns = predicted label.
    path : pathlib.Path
        Where the PNG goes.
    title : str
    names : sequence of str, length ``C``
        The label set. The figure, its type and its cell values grow or shrink with ``C`` so
        a few labels or a few dozen stay readable; past :data:`MAX_CELL_TEXT` labels the cells
        carry colour only. Drawn as given (:func:`training.images.literal_text`), a name
        longer than :data:`LABEL_CHARS` cut.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = cut_labels(names, LABEL_CHARS)
    confusion = np.asarray(confusion, dtype=float)
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    size = _confusion_size(len(names))
    fig, ax = plt.subplots(figsize=(size["width"], size["width"] - 1), constrained_layout=True)
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, names, rotation=45, ha="right", fontsize=size["ticks"])
    ax.set_yticks(ticks, [f"{name} ({int(n)})" for name, n in zip(names, rows[:, 0])],
                  fontsize=size["ticks"])
    for i, j in zip(*np.nonzero(normalised >= 0.005)) if size["cells"] else ():
        ax.text(j, i, f"{normalised[i, j]:.2f}", ha="center", va="center",
                fontsize=size["cells"], color="white" if normalised[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label (notes)")
    ax.set_title(drawable(title))
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true label's notes")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=120, bbox_inches="tight", pad_inches=0.2)  # axis labels uncut
    plt.close(fig)
    return path


def _confusion_size(n: int) -> dict:
    """Figure width (inches) and font sizes (points) of a confusion plot of ``n`` labels: NSynth's
    11 families get the plot's original 8.5 x 7.5 inches and 8-point cells; fewer labels a
    smaller figure with larger type, more a larger one (up to 30 inches) with smaller type."""
    return {"width": float(np.clip(4.54 + 0.36 * n, 6.0, 30.0)),
            "ticks": float(np.clip(300 / max(n, 1), 6.0, 10.0)),
            "cells": float(np.clip(88 / max(n, 1), 5.0, 10.0)) if n <= MAX_CELL_TEXT else 0.0}
