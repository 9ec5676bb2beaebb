"""What a training run shows of itself: the epoch line of Keras's progress bar
(:func:`epoch_progress`) and the learning curves (:func:`plot_curves`)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from .images import drawable

__all__ = ["epoch_progress", "plot_curves"]


def epoch_progress(at_most: Optional[int] = None):
    """Keras's progress bar whose epoch line says what is known of the run's length.

    ``model.fit`` is given :data:`training.train.UNTIL_STOPPED` epochs when the stopping rules
    (patience, budget) end the run, so Keras's own line would say ``Epoch 3/1000000``; this one
    says ``Epoch 3``, or ``Epoch 3 (at most 40)`` where the configuration bounds the epochs
    (the rules may still stop it earlier).

    Parameters
    ----------
    at_most : int, optional
        The most epochs the run can take (``TrainConfig.epochs``); ``None``: no bound.

    Returns
    -------
    keras.callbacks.ProgbarLogger
        To pass in ``model.fit``'s callbacks, which then adds no progress bar of its own.
    """
    import keras

    class EpochProgress(keras.callbacks.ProgbarLogger):
        def set_params(self, params):
            # Keras's bar prints no epoch line of its own for a single epoch
            super().set_params({**params, "epochs": 1})

        def on_epoch_begin(self, epoch, logs=None):
            super().on_epoch_begin(epoch, logs)
            if self.verbose:
                bound = f" (at most {at_most})" if at_most else ""
                sys.stdout.write(f"Epoch {epoch + 1}{bound}\n")
                sys.stdout.flush()
    return EpochProgress()


def plot_curves(history: list, path: Path, title: str, *, augmented: bool = False):
    """Loss and accuracy per epoch, train (on its ``augmented`` batches, where the model
    augments them: lower than on the notes themselves) and validation, side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    epochs = [int(row["epoch"]) + 1 for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    on = " (augmented batches)" if augmented else ""
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, [row[key] for row in history], "o-", label=f"train {label}{on}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, not fractions of one
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
    rates = [(epoch, row["learning_rate"]) for epoch, row in zip(epochs, history)
             if "learning_rate" in row]  # a run's history of before the column: none
    lowered = [epoch for (_, was), (epoch, rate) in zip(rates, rates[1:]) if rate < was]
    for epoch in lowered:  # where the plateau rule lowered the rate
        for ax in axes:
            ax.axvline(epoch - 0.5, color="tab:red", alpha=0.35, lw=1)
    if lowered:
        axes[0].plot([], [], color="tab:red", alpha=0.35, lw=1, label="learning rate lowered")
        axes[0].legend()
    fig.suptitle(drawable(title))
    fig.savefig(path, dpi=120)
    plt.close(fig)
