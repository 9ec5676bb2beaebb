"""``timbremap tsne``: a 2-D t-SNE map of a split, written back as ``/tsne`` float32 ``(N, 2)``,
with attrs that say how faithful the picture is.

attrs of ``/tsne``: ``method`` (opentsne | sklearn), ``perplexity``, ``seed``, ``source``
(embeddings | spectra), ``kl_divergence``, ``trustworthiness`` (scikit-learn's, with
``trustworthiness_k`` neighbours: 10, fewer on a split under 24 notes), ``knn_accuracy_source``
and ``knn_accuracy_map`` (leave-one-out label accuracy of a vote of the ``knn_k`` nearest
neighbours, in the source space and in the map: 10, or fewer where the rarest label has fewer
notes, :func:`knn_neighbours`), ``metrics_sample`` (points the
metrics used),
for ``spectra`` ``pca_components`` and ``pca_explained_variance``, and for openTSNE
``neighbors`` (exact | annoy), ``gradient`` (bh | fft) and ``iterations`` (after early
exaggeration; see :func:`fit_opentsne`).

``place`` positions new sounds on an openTSNE map with openTSNE's ``transform``, on the map
rebuilt from plain arrays of the split file (:class:`analysis.storedmap.StoredMap`): ``/tsne``,
its attrs, and the points it maps (``/embeddings``, or for ``spectra`` the PCA kept as
``/tsne_pca_components`` float32 ``(k, frames * bins)`` and ``/tsne_pca_mean`` float32
``(frames * bins,)``). Nothing is pickled: a store from someone else can be mapped and placed
into without trusting it.
"""
from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import h5py
import numpy as np

from featurestore import schema
from featurestore.errors import InputError, check_positive_int, check_seed, counted, shell_path
from featurestore.reader import SpectraReader
from featurestore.store import StoreError, open_split, require_store, split_path, store_splits
from featurestore.writeback import check_writable, results_file, split_version, write_result

from .placements import forget_placed, read_placed

__all__ = ["tsne_split", "knn_accuracy", "knn_neighbours", "map_metrics", "TsneResult",
           "METHODS", "SOURCES", "fit_opentsne", "MAP_DATASETS", "INTS_IN_INTERVAL",
           "GRADIENTS", "BH_MAX", "DEFAULT_PERPLEXITY", "map_coords"]

log = logging.getLogger(__name__)
METHODS = ("opentsne", "sklearn")
SOURCES = (schema.EMBEDDINGS, schema.SPECTRA)
K = 10
METRICS_SAMPLE = 5000  # trustworthiness needs all pairwise distances: O(n^2) memory
MAX_ITER = 500  # openTSNE's default iterations after early exaggeration
KL_TOL = 0.02  # converged: 50 iterations lower the KL divergence by less than 2 %
EXACT_NEIGHBORS_MAX = 30_000  # exact nearest neighbours up to here, Annoy's beyond
INTS_IN_INTERVAL = 4  # width of openTSNE's FFT interpolation intervals (its default: 1)
#: openTSNE's gradient methods: Barnes-Hut (``bh``) and FFT interpolation (``fft``).
GRADIENTS = ("bh", "fft")
#: Barnes-Hut up to this many points, FFT beyond: FFT's grid has at least 50 intervals a side
#: however few the points, so on a small map it costs more than the rest of the fit
#: (``docs/tsne.md``).
BH_MAX = 3_000
#: What a map is made of in a split file (``/tsne`` last: written last, it marks a whole map).
#: attr of ``/tsne`` made of embeddings: the ``model_sha1`` of the model they come from
EMBEDDINGS_MODEL = "embeddings_model_sha1"
MAP_DATASETS = (schema.TSNE_PCA_COMPONENTS, schema.TSNE_PCA_MEAN, schema.TSNE)


@dataclass
class TsneResult:
    """The attrs written on ``/tsne``."""

    split: str
    n: int
    attrs: dict


#: The split ``tsne`` maps unless told, and the one the ``map`` page opens on.
DEFAULT_SPLIT = "test"
#: t-SNE's perplexity where none is given, for a split of more than 3 x this many points.
DEFAULT_PERPLEXITY = 30.0


def mapped_splits(store, splits: Optional[Sequence[str]] = None) -> List[str]:
    """The splits of ``store`` (or of its ``splits``) that have a ``/tsne`` map."""
    mapped = []
    for split in store_splits(store) if splits is None else splits:
        with open_split(store, split) as f:
            if schema.TSNE in f:
                mapped.append(split)
    return mapped


def map_split(store) -> str:
    """The split whose map is meant when none is named: the test split, unless another split
    alone has a map."""
    mapped = mapped_splits(store)
    return mapped[0] if len(mapped) == 1 else "test"


def map_coords(f) -> np.ndarray:
    """The ``(notes, 2)`` coordinates of the open split file ``f``'s ``/tsne`` map;
    :class:`StoreError` where they are not finite numbers, one row a note."""
    xy = f[schema.TSNE][:]
    if xy.shape != (f[schema.SPECTRA].shape[0], 2) or xy.dtype.kind != "f" or \
            not np.isfinite(xy).all():
        raise StoreError(f"{f.filename}: its /tsne map is damaged (not finite coordinates, two "
                         f"a note); run 'timbremap tsne' again")
    return xy


def no_map(store, split: str) -> StoreError:
    """The error for a split that has no ``/tsne`` map where one is needed, naming those that
    have one."""
    mapped = mapped_splits(store)
    others = f", or give --split with a split that has one: {', '.join(mapped)}" if mapped \
        else ""
    return StoreError(f"{split_path(store, split)}: no /tsne map (run 'timbremap tsne "
                      f"{shell_path(store)} --split {shell_path(split)}' first{others})")


def map_model(f: h5py.File) -> str:
    """The ``model_sha1`` of the model whose embeddings ``/tsne`` maps ('' when it maps spectra
    or there is no map). Maps made before the attr existed are taken to map the current
    ``/embeddings``."""
    if schema.TSNE not in f or f[schema.TSNE].attrs.get("source") != schema.EMBEDDINGS:
        return ""
    embeddings = f[schema.EMBEDDINGS] if schema.EMBEDDINGS in f else None
    return str(f[schema.TSNE].attrs.get(EMBEDDINGS_MODEL, "") or (
        embeddings.attrs.get(schema.MODEL_SHA1, "") if embeddings is not None else ""))


def drop_map(f: h5py.File):
    """Remove a split's map (``f`` open for writing: ``/tsne`` and its PCA); the sounds placed
    on it are the caller's to forget (:func:`analysis.placements.forget_placed`), once the split
    is written without it."""
    for name in MAP_DATASETS[::-1]:
        if name in f:
            del f[name]


def _same_map(store, split: str, datasets: dict) -> bool:
    """Whether ``split``'s map is ``datasets`` (name -> array) already: the map and, for a
    map of spectra, its PCA, value for value."""
    with open_split(store, split) as f:
        return all(name in f and f[name].shape == np.shape(value)
                   and np.array_equal(f[name][:], np.asarray(value, np.float32))
                   for name, value in datasets.items()) and all(
            name in datasets for name in MAP_DATASETS if name in f)


def knn_neighbours(labels: np.ndarray, k: int = K) -> int:
    """The neighbours a vote among ``labels`` can use: ``k``, at most the notes but one, and at
    most the notes of the rarest label but one (at least 1), so that every label can win a
    note's vote; 0 for fewer than two notes."""
    if len(labels) < 2:
        return 0
    rarest = int(np.unique(labels, return_counts=True)[1].min())
    return max(1, min(k, len(labels) - 1, rarest - 1))


def knn_accuracy(points: np.ndarray, labels: np.ndarray, k: int = K) -> float:
    """Leave-one-out accuracy of a vote of the :func:`knn_neighbours` nearest neighbours'
    labels (``labels``: non-negative ints); NaN for fewer than two points."""
    from sklearn.neighbors import NearestNeighbors
    k = knn_neighbours(labels, k)
    if k < 1:
        return float("nan")
    _, index = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    votes = labels[index[:, 1:]]
    predicted = np.array([np.bincount(v).argmax() for v in votes])
    return float((predicted == labels).mean())


def map_metrics(source: np.ndarray, mapped: np.ndarray, labels: np.ndarray, *, seed: int = 0,
                k: int = K) -> dict:
    """Trustworthiness and kNN label accuracy (source space and map) on up to
    ``METRICS_SAMPLE`` points."""
    from sklearn.manifold import trustworthiness
    n = len(source)
    pick = np.arange(n)
    if n > METRICS_SAMPLE:
        pick = np.sort(np.random.default_rng(seed).choice(n, METRICS_SAMPLE, replace=False))
    s, m, y = source[pick], mapped[pick], labels[pick]
    k_trust = min(k, len(s) // 2 - 1)  # what scikit-learn allows on so few points
    return {"trustworthiness": float(trustworthiness(s, m, n_neighbors=k_trust)),
            "trustworthiness_k": int(k_trust),
            "knn_accuracy_source": knn_accuracy(s, y, k),
            "knn_accuracy_map": knn_accuracy(m, y, k), "knn_k": knn_neighbours(y, k),
            "metrics_sample": int(len(pick))}


def _spectra_pca(path: Path, components: int, seed: int, batch_size: int = 256):
    """Spectra flattened and reduced by incremental PCA, read in batches (bounded memory)."""
    from sklearn.decomposition import IncrementalPCA
    with SpectraReader(path) as reader:
        components = min(components, len(reader), int(np.prod(reader.shape)))
        pca = IncrementalPCA(n_components=components)
        size = max(batch_size, components)
        batches = lambda: reader.iter_batches(size)  # noqa: E731
        for x in batches():
            if len(x) >= components:
                pca.partial_fit(x.reshape(len(x), -1).astype(np.float32))
        reduced = np.concatenate([pca.transform(x.reshape(len(x), -1).astype(np.float32))
                                  for x in batches()])
    return reduced.astype(np.float32), pca


class _Converged:
    """openTSNE callback: stop once ``every`` iterations lower the KL divergence by less than
    the fraction ``tol`` (like scikit-learn's stop on no progress, but relative)."""

    def __init__(self, tol: float):
        self.tol = tol
        self.last = None
        self.stopped_at = None

    def __call__(self, iteration: int, error: float, embedding) -> bool:
        converged = self.last is not None and self.last - error < self.tol * self.last
        self.last = error
        if converged:
            self.stopped_at = iteration
        return converged


def fit_opentsne(data: np.ndarray, perplexity: float = DEFAULT_PERPLEXITY, *, seed: int = 0,
                 n_jobs: int = 2, max_iter: int = MAX_ITER, tol: float = KL_TOL, every: int = 50,
                 gradient: Optional[str] = None):
    """openTSNE's standard t-SNE, with exact neighbours and Barnes-Hut gradients for small
    data, and a converged stop.

    The schedule is openTSNE's (PCA initialisation, 250 iterations of early exaggeration 12 at
    learning rate N/12, then exaggeration 1), except that

    * the perplexity's ``3 * perplexity`` nearest neighbours are exact (scikit-learn) for up to
      :data:`EXACT_NEIGHBORS_MAX` points, where that is faster than Annoy's approximate search,
      and Annoy beyond;
    * the gradient is Barnes-Hut's for up to :data:`BH_MAX` points, FFT-interpolated beyond
      (openTSNE's rule has 10,000: between the two, FFT is the faster here);
    * the FFT interpolation intervals are :data:`INTS_IN_INTERVAL` units wide, not 1: the
      gradient's cost grows with the number of intervals squared, and maps of real embeddings
      spread wide, while wider intervals leave their trustworthiness as it was (the times and
      scores of 1, 2 and 4 units: ``docs/tsne.md``);
    * the main phase stops when ``every`` iterations lower the KL divergence by less than the
      fraction ``tol``, at the latest after ``max_iter`` (openTSNE's default: 500).

    Parameters
    ----------
    data : np.ndarray, shape ``(n, d)``
    perplexity : float
    seed : int
    n_jobs : int
    max_iter : int
        Most iterations after early exaggeration.
    tol : float
        Relative KL-divergence decrease per ``every`` iterations below which the map counts
        as converged.
    every : int
        Iterations between convergence checks.
    gradient : {'bh', 'fft'}, optional
        openTSNE's gradient method (:data:`GRADIENTS`); default: by the number of points.

    Returns
    -------
    embedding : openTSNE.TSNEEmbedding
        The map (``np.asarray`` gives its ``(n, 2)`` coordinates); its ``transform`` places
        new points.
    attrs : dict
        ``neighbors`` (exact | annoy), ``gradient`` (bh | fft), ``iterations`` (after early
        exaggeration).
    """
    import openTSNE
    if gradient is None:
        gradient = "bh" if len(data) <= BH_MAX else "fft"
    elif gradient not in GRADIENTS:
        raise InputError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
    neighbors = "exact" if len(data) <= EXACT_NEIGHBORS_MAX else "annoy"
    tsne = openTSNE.TSNE(perplexity=perplexity, neighbors=neighbors, random_state=seed,
                         n_jobs=n_jobs, negative_gradient_method=gradient,
                         ints_in_interval=INTS_IN_INTERVAL)
    embedding = tsne.prepare_initial(data)
    embedding.optimize(n_iter=tsne.early_exaggeration_iter, exaggeration=tsne.early_exaggeration,
                       momentum=tsne.initial_momentum, inplace=True)
    converged = _Converged(tol)
    embedding = embedding.optimize(n_iter=max_iter, momentum=tsne.final_momentum, inplace=True,
                                   callbacks=[converged], callbacks_every_iters=every)
    iterations = converged.stopped_at or max_iter
    return embedding, {"neighbors": neighbors, "gradient": gradient,
                       "iterations": int(iterations)}


def tsne_split(store, split: str = DEFAULT_SPLIT, *, source: str = "embeddings",
               method: str = "opentsne", perplexity: Optional[float] = None, seed: int = 0,
               pca_components: int = 50, n_jobs: int = 2) -> TsneResult:
    """Fit a t-SNE map of one split and write it to ``/tsne``; ``perplexity`` defaults to
    :data:`DEFAULT_PERPLEXITY`, or, for a split of ``N`` points too few for it, to the most
    they allow, ``(N - 1) // 3`` (said in a log line). The one used is in the map's attrs.

    Raises
    ------
    StoreError
        Missing split, no ``/embeddings`` for ``source='embeddings'`` (run ``embed``), or too
        few points for the perplexity given.
    ValueError
        Unknown method or source, a perplexity that is no number or below 1, fewer than one
        PCA component, no threads, or a seed outside 0..2**32-1.
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}")
    if source not in SOURCES:
        raise InputError(f"source must be one of {SOURCES}, got {source!r}")
    given = perplexity is not None
    perplexity = perplexity if given else DEFAULT_PERPLEXITY
    if isinstance(perplexity, bool) or not isinstance(perplexity, numbers.Real):
        raise InputError(f"perplexity must be a number, got {perplexity!r}")
    check_positive_int("pca_components", pca_components)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise InputError(f"n_jobs must be a whole number of threads other than 0 (-1: every "
                         f"core, as joblib counts), got {n_jobs!r}")
    if not 1 <= perplexity < math.inf:  # below 1, openTSNE looks at no neighbour
        raise InputError(f"perplexity must be at least 1 and finite (a point's neighbourhood "
                         f"is about 3 x perplexity points), got {perplexity}")
    check_seed(seed)
    require_store(store, local_for="tsne")
    path = split_path(store, split)
    check_writable(store, split)  # before the fit, which can take minutes
    version = split_version(store, split)  # the file read: its results go into no other
    with open_split(store, split) as f:
        n = f[schema.SPECTRA].shape[0]
        labels = f[schema.LABELS][:].astype(np.int64)
        if source == schema.EMBEDDINGS:
            if schema.EMBEDDINGS not in f:
                raise StoreError(f"{path}: no /embeddings to map (run 'timbremap embed "
                                 f"{shell_path(store)} MODEL_DIR' first, or use --source "
                                 f"spectra)")
            data = f[schema.EMBEDDINGS][:].astype(np.float32)
            embeddings_model = str(f[schema.EMBEDDINGS].attrs.get(schema.MODEL_SHA1, ""))
    if n < 5:
        raise StoreError(f"{path}: {counted(n, 'note')}, too few for a map (at least 5)")
    if n <= 3 * perplexity and not given:
        perplexity = float((n - 1) // 3)
        log.info("%s: %d points, too few for perplexity %g: perplexity %g, the most they "
                 "allow", path, n, DEFAULT_PERPLEXITY, perplexity)
    if n <= 3 * perplexity:
        raise StoreError(f"{path}: {n} points are too few for perplexity {perplexity:g} "
                         f"(needs more than {3 * perplexity:g}; give --perplexity "
                         f"{(n - 1) // 3} or lower)")
    attrs = {"method": method, "perplexity": float(perplexity), "seed": int(seed),
             "source": source}
    if source == schema.EMBEDDINGS:  # which model's embeddings (place checks it)
        attrs[EMBEDDINGS_MODEL] = embeddings_model
    if source == schema.SPECTRA:
        data, pca = _spectra_pca(path, pca_components, seed)
        attrs.update(pca_components=int(pca.n_components_),
                     pca_explained_variance=min(1.0, float(  # its sum's rounding passes 1
                         pca.explained_variance_ratio_.sum())))
    if method == "opentsne":
        embedding, fit_attrs = fit_opentsne(data, perplexity, seed=seed, n_jobs=n_jobs)
        attrs.update(fit_attrs)
        mapped = np.asarray(embedding, dtype=np.float32)
        attrs["kl_divergence"] = float(embedding.kl_divergence)
    else:
        from sklearn.manifold import TSNE
        model = TSNE(perplexity=perplexity, random_state=seed, init="pca", n_jobs=n_jobs)
        mapped = model.fit_transform(data).astype(np.float32)
        attrs["kl_divergence"] = float(model.kl_divergence_)
    if attrs["kl_divergence"] < 0:  # an estimate: a divergence is never below 0
        log.warning("%s: the map's KL divergence is estimated at %.3f, below 0, which a "
                    "divergence cannot be: the estimate is off here (many identical notes do "
                    "this); trustworthiness and kNN accuracy say how well the map keeps "
                    "neighbours", path, attrs["kl_divergence"])
    attrs.update(map_metrics(data, mapped, labels, seed=seed))
    keep_pca = source == schema.SPECTRA and method == "opentsne"  # place needs it
    kept = {schema.TSNE: mapped, **({schema.TSNE_PCA_COMPONENTS: pca.components_,
                                     schema.TSNE_PCA_MEAN: pca.mean_} if keep_pca else {})}
    placed = any(p.split == split for p in read_placed(store))
    same = placed and _same_map(store, split, kept)  # the same fit: its placed sounds stay
    nbytes = mapped.nbytes + (4 * (pca.components_.size + pca.mean_.size) if keep_pca else 0)
    with results_file(store, split, nbytes, version=version) as f:
        drop_map(f)  # the old map first: its room is used again
        if keep_pca:
            write_result(f, schema.TSNE_PCA_COMPONENTS, shape=pca.components_.shape,
                         blocks=[pca.components_], attrs={})
            write_result(f, schema.TSNE_PCA_MEAN, shape=pca.mean_.shape, blocks=[pca.mean_],
                         attrs={})
        write_result(f, schema.TSNE, shape=mapped.shape, blocks=[mapped], attrs=attrs)
    if not same:  # the sounds placed on the old map, once the split has the new
        forget_placed(store, split)
    log.info("%s: /tsne written (trustworthiness %.3f; kNN accuracy %.3f in the source space, "
             "%.3f on the map)", path, attrs["trustworthiness"], attrs["knn_accuracy_source"],
             attrs["knn_accuracy_map"])
    return TsneResult(split, n, attrs)
