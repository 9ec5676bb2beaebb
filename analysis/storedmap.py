"""A split's openTSNE map rebuilt from the plain arrays of its file (:class:`StoredMap`), for
``place`` to put new notes on it. Nothing is unpickled: a store from someone else can be placed
into without trusting it."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from featurestore import schema
from featurestore.reader import SpectraReader
from featurestore.store import StoreError

from .tsne import GRADIENTS, INTS_IN_INTERVAL

__all__ = ["StoredMap"]


class StoredMap:
    """A split's openTSNE map, rebuilt from ``/tsne``, its attrs, and the points it maps
    (``/embeddings``, or for a map of ``spectra`` the PCA kept as ``/tsne_pca_components`` and
    ``/tsne_pca_mean``), to place new notes on it.

    The affinities are computed again from the points the map was made of, with the
    parameters in ``/tsne``'s attrs (the same exact or seeded Annoy neighbours, and gradient
    method: ``fft`` for a map made before it was recorded), and the map's
    coordinates are ``/tsne``: what :meth:`transform` does equals what the fitted openTSNE
    object would do, within float32 rounding. New points are placed with a sixth of the map's
    perplexity (at least 1, at most openTSNE's 5): openTSNE's default for them is a sixth of
    its fits', and on a small map a larger one spreads a note's affinities over notes far from
    it and places it between them.

    Parameters
    ----------
    n_jobs : int
        Threads openTSNE computes the affinities and places the notes with.

    Attributes
    ----------
    source_ : str
        What the map is made of: ``'embeddings'`` or ``'spectra'``.
    perplexity_ : float
        The map's perplexity.
    pca_mean_ : np.ndarray, float32, shape ``(frames * bins,)``, or None
    pca_components_ : np.ndarray, float32, shape ``(k, frames * bins)``, or None
        For a map of spectra, the PCA that projects notes into its space (as scikit-learn's
        ``PCA.transform``: centred, projected, not whitened); ``None`` for embeddings.
    centre_ : np.ndarray, float64, shape ``(2,)``
        The middle of the map's extent (openTSNE's ``transform`` answers about it).
    embedding_ : openTSNE.TSNEEmbedding
        The rebuilt map.

    Examples
    --------
    >>> with h5py.File("store/test.h5", "r") as f:    # doctest: +SKIP
    ...     stored = StoredMap().fit(f)
    >>> xy = stored.transform(spectra, embeddings)     # doctest: +SKIP
    """

    def __init__(self, *, n_jobs: int = 2):
        self.n_jobs = n_jobs

    def fit(self, f: h5py.File) -> "StoredMap":
        """Rebuild the map of the open split file ``f``.

        Raises
        ------
        StoreError
            No map, a map openTSNE did not make (scikit-learn's cannot place new points), or
            one whose source arrays are missing.
        """
        import openTSNE
        path = Path(f.filename)
        if schema.TSNE not in f:
            raise StoreError(f"{path}: no /tsne map")
        attrs = f[schema.TSNE].attrs
        if attrs.get("method") != "opentsne":
            raise StoreError(f"{path}: its map was made with --method {attrs.get('method')}, "
                             f"which cannot place new points; make it with --method opentsne")
        self.source_ = attrs.get("source")
        needed = [schema.EMBEDDINGS] if self.source_ == schema.EMBEDDINGS else [
            schema.TSNE_PCA_COMPONENTS, schema.TSNE_PCA_MEAN]
        missing = [name for name in needed if name not in f]
        if missing:
            raise StoreError(f"{path}: its map lacks /{', /'.join(missing)}; run 'timbremap "
                             f"tsne' again")
        self.pca_mean_ = self.pca_components_ = None
        if self.source_ == schema.EMBEDDINGS:
            points = f[schema.EMBEDDINGS][:].astype(np.float32)
        else:
            self.pca_mean_ = f[schema.TSNE_PCA_MEAN][:]
            self.pca_components_ = f[schema.TSNE_PCA_COMPONENTS][:]
            with SpectraReader(path) as reader:
                points = np.concatenate([self._project(x) for x in reader.iter_batches(256)])
        seed, self.perplexity_, neighbors, gradient = _settings(attrs, path)
        coords = f[schema.TSNE][:].astype(np.float64)
        if not (np.isfinite(points).all() and np.isfinite(coords).all()):
            raise StoreError(f"{path}: its map or the points it maps hold NaN or infinite "
                             f"values (openTSNE would crash on them); run 'timbremap tsne' "
                             f"again")
        affinities = openTSNE.affinity.MultiscaleMixture(
            points, self.perplexity_, method=neighbors, n_jobs=self.n_jobs, random_state=seed)
        self.embedding_ = openTSNE.TSNEEmbedding(
            coords, affinities, random_state=seed, negative_gradient_method=gradient,
            ints_in_interval=INTS_IN_INTERVAL, n_jobs=self.n_jobs)
        self.centre_ = (coords.max(axis=0) + coords.min(axis=0)) / 2  # transform centres first
        return self

    def _project(self, spectra: np.ndarray) -> np.ndarray:
        """``(n, frames, bins)`` spectra in the PCA space of a map of spectra."""
        flat = spectra.reshape(len(spectra), -1).astype(np.float32)
        return ((flat - self.pca_mean_) @ self.pca_components_.T).astype(np.float32)

    def transform(self, spectra, embeddings) -> np.ndarray:
        """Positions of new notes on the map.

        Parameters
        ----------
        spectra : np.ndarray, shape ``(n, frames, bins)``, or None
            Their features (used by a map of spectra; ``None`` will do for one of embeddings).
        embeddings : np.ndarray, shape ``(n, D)``, or None
            Their embeddings (used by a map of embeddings).

        Returns
        -------
        np.ndarray, float64, shape ``(n, 2)``
            In ``/tsne``'s coordinates.
        """
        new = embeddings if self.source_ == schema.EMBEDDINGS else self._project(spectra)
        # openTSNE places new points with a sixth of its fits' perplexity (5 against 30): a
        # sixth of this map's, at most 5, at least 1
        new_perplexity = min(5.0, max(1.0, self.perplexity_ / 6))
        return np.asarray(self.embedding_.transform(np.asarray(new, np.float32),
                                                    perplexity=new_perplexity)) + self.centre_


def _settings(attrs, path: Path):
    """``(seed, perplexity, neighbors, gradient)`` of a map's ``/tsne`` attrs, as
    :func:`tsne_split` writes them (a map made before ``gradient`` was recorded: ``fft``);
    :class:`StoreError` for any that is missing or not what it writes."""
    try:
        seed, perplexity, neighbors = attrs["seed"], float(attrs["perplexity"]), \
            str(attrs["neighbors"])
        gradient = str(attrs.get("gradient", "fft"))
        if not (np.ndim(seed) == 0 and float(seed) == int(seed) and 0 <= int(seed) < 2**32
                and 0 < perplexity < np.inf and neighbors in ("exact", "annoy")
                and gradient in GRADIENTS):
            raise ValueError(f"seed {seed}, perplexity {perplexity}, neighbors {neighbors!r}, "
                             f"gradient {gradient!r}")
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise StoreError(f"{path}: its map's settings (/tsne's attrs) are damaged ({err}); "
                         f"run 'timbremap tsne' again") from None
    return int(seed), perplexity, neighbors, gradient
