"""``timbremap embed``: the model's penultimate layer and its probabilities, per note, written
into each split file as ``/embeddings`` float32 ``(N, D)`` and ``/probabilities`` float32
``(N, C)`` over the model's ``C`` labels (attr ``names``, whatever labels the store holds), or
into files of their own (a store on object storage is never written)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional, Sequence

import h5py
import numpy as np

from featurestore import schema
from featurestore.errors import InputError, check_positive_int, check_split_names
from featurestore.files import check_folder_path, exclusive_lock, real_path, replaced
from featurestore.progressbar import progress_bar
from featurestore.remote import is_url, store_location
from featurestore.reader import SpectraReader
from featurestore.store import (StoreError, no_splits, open_split, read_params, require_store,
                                split_path, store_id, store_splits)
from featurestore.storefolder import check_folder_of_its_own
from featurestore.writeback import check_writable, results_file, split_version, write_result
from training.config import EMBEDDING_LAYER
from training.modeldir import TrainedModel, load_trained

from .tsne import drop_map, map_model
from .placements import forget_placed

__all__ = ["embed_store", "embedding_model"]

log = logging.getLogger(__name__)

#: What ``embed --into`` copies beside the results, to name each note.
APART_NOTES = (schema.NAMES, schema.LABELS, schema.INSTRUMENT)


def embedding_model(trained: TrainedModel):
    """A Keras model mapping spectra to ``(embedding, probabilities)``."""
    import keras
    model = trained.model
    return keras.Model(model.inputs, [model.get_layer(EMBEDDING_LAYER).output, model.outputs[0]])


def _check_finite(rows: np.ndarray, store, split: str, start: int, problem: str):
    """Raise :class:`StoreError` naming the first note (``start`` + row) of ``rows`` that is
    not all finite, and the ``problem``: nothing infinite or NaN is written into a store."""
    bad = ~np.isfinite(rows.reshape(len(rows), -1)).all(axis=1)
    if bad.any():
        index = start + int(np.argmax(bad))
        with open_split(store, split) as f:
            name = f[schema.NAMES].asstr()[index] if schema.NAMES in f else f"#{index}"
        raise StoreError(f"{split_path(store, split)}: note {name} (row {index}): {problem}; "
                         f"nothing was written")


def _attrs(trained: TrainedModel) -> dict:
    return {"model": schema.stored_text(str(real_path(trained.path))),
            schema.MODEL_SHA1: trained.weights_hash,
            "layer": EMBEDDING_LAYER}


def _probability_attrs(trained: TrainedModel, attrs: dict) -> dict:
    """``/probabilities``'s attrs: the model's, its softmax layer, and the label of each
    column (``names``, as ``/labels`` names its values)."""
    return {**attrs, "layer": "family",
            schema.LIST_NAMES: np.array(trained.labels, dtype=schema.STRING)}


def embed_store(store, model_dir, splits: Optional[Sequence[str]] = None, *,
                into=None, batch_size: int = 128, progress: bool = True) -> Dict[str, tuple]:
    """Write ``/embeddings`` and ``/probabilities`` into every (or the named) split file.

    Reads spectra in batches by index, so memory stays bounded whatever the split's size.

    Parameters
    ----------
    store : str or pathlib.Path
        A store folder, or its URL (:mod:`featurestore.remote`).
    model_dir : str or pathlib.Path
    splits : sequence of str, optional
        Default: every split of the store.
    into : str or pathlib.Path, optional
        A local folder: each split's results go to ``INTO/SPLIT.h5`` (``/embeddings``,
        ``/probabilities`` and the notes' ``/names``, ``/labels``, ``/instrument``, the store
        in its ``store`` attribute), written whole or not at all, and the store is not
        touched. Needed for a store named by a URL.

    Returns
    -------
    dict
        split -> shape of its embeddings.

    Raises
    ------
    StoreError, ModelError
        A missing store or split, a model that cannot be loaded, or a split built with other
        features than the model (every split is checked before anything is written).
    InputError
        ``into`` is a file, or has one on its path, or another ``embed`` is writing into it.
    """
    splits = check_split_names(splits)
    check_positive_int("batch_size", batch_size)
    if is_url(store) and into is None:
        raise StoreError(f"{store}: a store on object storage is read, never written; give "
                         f"--into FOLDER for the embeddings")
    store = store_location(str(store))
    require_store(store)
    if into is not None:
        check_folder_path(into, why="--into names a folder for the split files")
    trained = load_trained(model_dir)
    splits = splits or store_splits(store)
    if not splits:
        raise no_splits(store)
    for split in splits:  # check all before writing anything
        with open_split(store, split) as f:
            trained.check_features(read_params(f), split_path(store, split))
    if into is None:
        for split in splits:  # and that they can be written, before work
            check_writable(store, split)
        return _embed(store, trained, splits, None, batch_size, progress)
    into = Path(into)
    check_folder_of_its_own(into)
    into.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(into, lambda: InputError(
            f"{into}: another embed is writing its results into this folder; wait for it to "
            f"finish (or give another --into)")):
        _check_one_run(into, splits, store, trained)  # under the lock: another run's is seen
        return _embed(store, trained, splits, into, batch_size, progress)


def _embed(store, trained: TrainedModel, splits: Sequence[str], into: Optional[Path],
           batch_size: int, progress: bool) -> Dict[str, tuple]:
    """:func:`embed_store` once its arguments are checked (and ``into`` locked)."""
    both = embedding_model(trained)
    attrs = _attrs(trained)
    shapes = {}
    for split in splits:
        path = split_path(store, split)
        version = split_version(store, split) if into is None else None
        with SpectraReader(path) as reader:
            n = len(reader)
            dim = int(both.outputs[0].shape[-1])
            # one pass over the spectra; what it keeps is small (D + C floats a note); the bar
            # ends its line also when stopped, before the message of why
            embeddings, probabilities = [], []
            with progress_bar(total=n, unit="note", desc=f"embed {split}",
                              enabled=progress) as bar:
                for start, x in zip(range(0, n, batch_size), reader.iter_batches(batch_size)):
                    _check_finite(x, store, split, start, "its stored features are not "
                                  "finite (rebuild the store with --overwrite: a build skips "
                                  "such notes)")
                    e, p = both.predict_on_batch(x)
                    embeddings.append(np.asarray(e, np.float32))
                    probabilities.append(np.asarray(p, np.float32))
                    _check_finite(embeddings[-1], store, split, start, f"the model in "
                                  f"{trained.path}/ gives embeddings that are not finite")
                    bar.update(len(x))
            notes = ({name: reader.field(name) for name in APART_NOTES}
                     if into is not None else None)
            label_names = reader.label_names
        shapes[split] = (n, dim)
        if into is not None:
            _write_apart(into, store, split, (n, dim), embeddings, probabilities, trained, notes,
                         label_names)
            continue
        nbytes = sum(block.nbytes for block in embeddings + probabilities)
        with results_file(store, split, nbytes, version=version) as f:
            made_from = map_model(f)
            stale = bool(made_from) and made_from != trained.weights_hash
            write_result(f, schema.EMBEDDINGS, shape=(n, dim), blocks=embeddings, attrs=attrs)
            write_result(f, schema.PROBABILITIES, shape=(n, len(trained.labels)),
                         blocks=probabilities, attrs=_probability_attrs(trained, attrs))
            if stale:  # a map of other embeddings: it would no longer match them
                drop_map(f)
        if stale:  # and the sounds placed on it, once the split is without it
            forget_placed(store, split, replaced=False)
            log.warning("%s: its t-SNE map was made from another model's embeddings and was "
                        "removed; run 'timbremap tsne' again", path)
        log.info("%s: embeddings %s written", path, (n, dim))
    return shapes


def _check_one_run(into: Path, splits, store, trained: TrainedModel):
    """Refuse an ``--into`` folder that holds a file other than results this command wrote (a
    store's split, the store itself given as ``--into`` or another: never replaced, nor mixed
    with results), or results of other splits than ``splits`` that are another store's or
    model's: it would hold a mix that reads as one store's embeddings."""
    for path in sorted(into.glob("*.h5")) if into.is_dir() else ():
        try:
            with h5py.File(path, "r") as f:
                ours = schema.is_apart_results(f)
                made = dict(f[schema.EMBEDDINGS].attrs) if schema.EMBEDDINGS in f else {}
                store_of = str(f.attrs.get("store", ""))
        except OSError:
            ours = False
        if not ours:
            raise InputError(f"{path}: is not results that 'embed --into' wrote (a store's "
                             f"split?); --into names a new folder, or one of earlier results")
        if path.stem in splits:
            continue  # replaced by this run
        if store_of != store_id(store):
            what = f"another store's results ({store_of})"
        elif str(made.get(schema.MODEL_SHA1, "")) != trained.weights_hash:
            what = f"results of {trained.other_model(str(made.get('model', '')))}"
        else:
            continue
        raise InputError(f"{path}: {what}; --into names a folder for one store's results by "
                         f"one model: give a new folder (or delete that file)")


def _write_apart(into: Path, store, split: str, shape: tuple, embeddings, probabilities,
                 trained: TrainedModel, notes: dict, label_names: Sequence[str]):
    """``INTO/SPLIT.h5``: a split's results, ``shape`` ``(N, D)``, with ``notes``, the
    datasets that name its notes (:data:`APART_NOTES`), ``/labels`` with the store's label set
    ``label_names``."""
    attrs = _attrs(trained)
    into.mkdir(parents=True, exist_ok=True)
    path = into / f"{split}.h5"
    with replaced(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({"store": store_id(store), "split": split})
        write_result(f, schema.EMBEDDINGS, shape=shape, blocks=embeddings, attrs=attrs)
        write_result(f, schema.PROBABILITIES, shape=(shape[0], len(trained.labels)),
                     blocks=probabilities, attrs=_probability_attrs(trained, attrs))
        for name, values in notes.items():
            f.create_dataset(name, data=values)
        f[schema.LABELS].attrs[schema.LIST_NAMES] = np.array(label_names, dtype=schema.STRING)
    log.info("%s: embeddings %s written", path, shape)
