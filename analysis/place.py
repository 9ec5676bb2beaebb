"""``timbremap place``: new sounds on an existing t-SNE map.

Each file goes through the same feature function as the store, the model's embedding layer,
and openTSNE's ``transform`` of the split's map, rebuilt from the split file's arrays
(:class:`analysis.storedmap.StoredMap`: nothing is unpickled). The placed points are kept next
to the store in ``placed.json`` so ``plot`` and ``map`` can show them.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import numpy as np

from featurestore import schema
from featurestore.errors import check_paths, check_positive_int
from featurestore.features import features_of_files
from featurestore.store import StoreError, open_split, read_params, require_store, split_path
from featurestore.files import real_path
from training.modeldir import load_trained

from .embed import embedding_model
from .placements import (PLACED_FILE, PLACED_WAIT_SECONDS, Placed, read_placed, updating_placed,
                         write_placed)
from .storedmap import StoredMap
from .tsne import map_model, map_split, no_map

__all__ = ["place_files", "placements"]

log = logging.getLogger(__name__)


def place_files(store, model_dir, files: Sequence, *, split: Optional[str] = None, k: int = 5,
                batch_size: int = 64) -> List[Placed]:
    """Position audio files on the t-SNE map of ``split`` (default: the test split's, or the
    only split's with a map) and list their nearest stored notes: :func:`placements`, all at
    once."""
    return list(placements(store, model_dir, files, split=split, k=k, batch_size=batch_size))


def placements(store, model_dir, files: Sequence, *, split: Optional[str] = None, k: int = 5,
               batch_size: int = 64) -> Iterator[Placed]:
    """Position audio files on the t-SNE map of ``split`` (default: the test split's, or the
    only split's with a map) and list their nearest stored notes, yielding each file's
    :class:`Placed` as its batch is done.

    Each placed file's ``family`` is the model's most likely label, and each nearest note's
    ``family`` its label in the store (the two label sets may differ). The
    files are read ``batch_size`` at a time; a file that cannot be used gets its ``error``
    and the others go on. What was placed is recorded in ``placed.json`` when the files are
    done, or when the caller stops early or is interrupted.

    Raises
    ------
    StoreError
        The split has no openTSNE map (run ``timbremap tsne`` with ``--method opentsne``), or
        its map was made from another model's embeddings.
    ModelError
        The split was built with other features than the model.
    """
    check_paths("files", files)
    check_positive_int("k", k)
    check_positive_int("batch_size", batch_size)
    require_store(store, local_for="place")
    store = Path(store)
    split = map_split(store) if split is None else split
    trained = load_trained(model_dir)
    with open_split(store, split) as f:
        trained.check_features(read_params(f), f.filename)
        label_names = schema.read_label_names(f)
        if schema.TSNE not in f:
            raise no_map(store, split)
        made_from = map_model(f)
        if made_from and made_from != trained.weights_hash:
            other = f[schema.EMBEDDINGS].attrs.get("model", "") if schema.EMBEDDINGS in f else ""
            raise StoreError(f"{split_path(store, split)}: its map was made from the "
                             f"embeddings of {trained.other_model(other)}, not of "
                             f"{trained.path}'s; embed and map again with this one")
        stored = StoredMap().fit(f)
        mapped, labels = f[schema.TSNE][:], f[schema.LABELS][:]
        names = f[schema.NAMES].asstr()[:]
    both, results = embedding_model(trained), []
    try:
        for batch in features_of_files(files, trained.features, batch_size):
            # an absolute path: map pages link it from anywhere
            done = [Placed(str(r.path), split, error=r.error) if r.error else
                    Placed(str(real_path(r.path)), split, adjustments=r.adjustments)
                    for r in batch]
            usable = [r.features for r in batch if r.error is None]
            if usable:
                x = np.stack(usable).astype(np.float32)
                embeddings, probabilities = both.predict_on_batch(x)
                coords = stored.transform(x, np.asarray(embeddings, np.float32))
                ok = [r for r in done if not r.error]
                for r, xy, p in zip(ok, coords, np.asarray(probabilities)):
                    r.x, r.y = float(xy[0]), float(xy[1])
                    r.family, r.probability = trained.labels[int(p.argmax())], float(p.max())
                    distance = np.linalg.norm(mapped - xy, axis=1)
                    r.nearest = [{"name": str(names[i]), "family": label_names[int(labels[i])],
                                  "distance": float(distance[i])}
                                 for i in np.argsort(distance)[:k]]
            results += done
            yield from done
    finally:
        with updating_placed(store):
            _record(store, split, results, mapped)


def _record(store: Path, split: str, results: List[Placed], mapped: np.ndarray):
    """Keep ``results``' placed sounds in ``placed.json`` beside the earlier ones (a file that
    was placed before and cannot be read now is removed, with a warning), unless the split's
    map (``mapped`` when they were placed) was replaced or removed meanwhile (``tsne``,
    ``embed``): then they are on a map that is no longer there, and nothing is kept."""
    deadline = time.monotonic() + PLACED_WAIT_SECONDS
    while True:  # a split that embed or tsne is writing now is read once they are done
        try:
            with open_split(store, split) as f:
                same = schema.TSNE in f and np.array_equal(f[schema.TSNE][:], mapped)
            break
        except (OSError, StoreError) as err:
            if time.monotonic() > deadline:
                log.warning("%s: the sounds placed are not recorded for plot and map, as the "
                            "map cannot be read now to check it is the one they were placed "
                            "on (%s): run 'timbremap place' again", split_path(store, split), err)
                return
            time.sleep(0.5)
    if not same:
        log.warning("%s: its map was replaced or removed while the sounds were placed (by tsne "
                    "or embed), so they are not recorded for plot and map: run 'timbremap "
                    "place' again", split_path(store, split))
        return
    ok = [r for r in results if not r.error]
    failed = {(str(real_path(r.path)), r.split) for r in results if r.error}
    kept = {(p.path, p.split): p for p in read_placed(store)}
    removed = failed & set(kept)
    for path, _ in removed:  # placed before, unreadable now: not shown as it was
        log.warning("%s: removed from the %s map, where it had been placed before (it cannot "
                    "be read now)", path, split)
    if not ok and not removed:
        return  # nothing placed, nothing removed: placed.json is as it was
    kept = {key: p for key, p in kept.items() if key not in failed}
    kept.update({(r.path, r.split): r for r in ok})
    try:
        write_placed(store, list(kept.values()))
    except OSError as err:  # e.g. a read-only store: the answer is still worth having
        log.warning("%s: cannot record the placed sounds for plot and map (%s)",
                    store / PLACED_FILE, err.strerror or err)
