"""The store a training run reads, checked before anything of the run is made: a train and a
valid split that fit each other, with notes of at least two labels."""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from featurestore import schema
from featurestore.errors import counted, label_difference, label_set_text
from featurestore.store import (StoreError, open_split, read_params, read_stats, split_path,
                                store_splits)

__all__ = ["open_for_training", "learnt_nothing"]


def open_for_training(store) -> tuple:
    """Check ``store`` (a folder or URL) for training: train and valid splits with the same
    features and the same label set, of at least two labels, that every note's label indexes.

    Returns
    -------
    tuple
        ``(params, mean, std, input_shape, n_train, labels)``: the train split's
        :class:`~featurestore.params.FeatureParams`, its statistics (float32 ``(bins,)``
        each), a note's ``(frames, bins)``, its notes and the store's label set.

    Raises
    ------
    StoreError
        A missing split, a train split without notes or of one label alone, a label set of
        fewer than two labels, or a valid split of other features or labels.
    """
    with open_split(store, "train") as f:
        params = read_params(f)
        mean, std = read_stats(f)
        shape = f[schema.SPECTRA].shape
        labels = schema.read_label_names(f)
        held = sorted({labels[k] for k in np.unique(f[schema.LABELS][:])})
    if shape[0] == 0:
        raise StoreError(f"{split_path(store, 'train')}: the train split holds no notes")
    if len(held) == 1 and len(labels) > 1:
        raise StoreError(f"{split_path(store, 'train')}: the train split holds notes of one "
                         f"label alone ({held[0]!r}); a classifier learns from two (give train "
                         f"notes of the others, or lower --valid-fraction and --test-fraction)")
    if len(labels) < 2:
        raise StoreError(f"{split_path(store, 'train')}: the store has "
                         f"{counted(len(labels), 'label')} {label_set_text(labels)}; a "
                         f"classifier needs at least two")
    if "valid" not in store_splits(store):
        raise StoreError(f"{split_path(store, 'valid')}: the store has no 'valid' split; "
                         f"training chooses its best epoch and when to stop on it: build the "
                         f"store with a valid/ folder, or with --valid-fraction above 0 where "
                         f"its splits are drawn")
    with open_split(store, "valid") as f:
        differences = read_params(f).differences(params)
        if differences:
            raise StoreError(f"{split_path(store, 'valid')}: built with other features than "
                             f"train.h5 ({'; '.join(differences)})")
        valid_labels = schema.read_label_names(f)
    if valid_labels != labels:
        raise StoreError(f"{split_path(store, 'valid')} holds labels "
                         f"{label_set_text(valid_labels)}, but {split_path(store, 'train')} "
                         f"holds {label_set_text(labels)}: a store's splits share one label set"
                         + label_difference(valid_labels, labels, ("valid", "train")))
    return params, mean, std, shape[1:], shape[0], labels


def learnt_nothing(store, history: List[dict]) -> Optional[str]:
    """Why a run's model answers the valid split no better than a guess: no epoch's validation
    accuracy beat one in as many as the split has labels (``None`` otherwise, and where the
    split holds one label or cannot be read now). A learning rate too high does this without
    making the loss infinite: the model answers one label, or at random."""
    from .runfiles import finite
    accuracies = [row["val_accuracy"] for row in history if finite(row)]
    try:
        with open_split(store, "valid") as f:
            labels = len(np.unique(f[schema.LABELS][:]))
    except (StoreError, OSError):  # a warning never fails a run that has finished
        return None
    if not accuracies or labels < 2 or max(accuracies) > 1 / labels + 1e-6:  # float32's
        return None
    return (f"no epoch's validation accuracy (at best {max(accuracies):.3f}) beat a guess among "
            f"the valid split's {labels} labels ({1 / labels:.3f}): the model learnt nothing "
            f"that the valid split shows in {counted(len(accuracies), 'epoch')} (too few epochs "
            f"or notes do this, and so does a learning rate too high: try a lower one)")
