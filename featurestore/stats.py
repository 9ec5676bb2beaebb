"""Streaming per-bin statistics, merged from partial results (Chan et al.).

Workers each summarise a batch of notes as (count, mean, M2) per frequency bin in float64;
the writer merges the summaries in a fixed order with :meth:`RunningStats.merge`, so the mean
and standard deviation of a whole split are exact without ever holding the split in memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["RunningStats"]


@dataclass
class RunningStats:
    """Count, mean and sum of squared deviations (M2) per bin, mergeable.

    Attributes
    ----------
    count : int
        Rows (frames) seen.
    mean : np.ndarray, float64, shape ``(bins,)``
    m2 : np.ndarray, float64, shape ``(bins,)``
        Sum of squared deviations from the mean.
    """

    count: int = 0
    mean: Optional[np.ndarray] = None
    m2: Optional[np.ndarray] = None

    @classmethod
    def from_sums(cls, count: int, total: np.ndarray, squares: np.ndarray) -> "RunningStats":
        """Statistics of ``count`` rows from their per-bin float64 sum and sum of squares.

        The build's feature kernel produces the sums of each note (see
        :func:`featurestore.features._features_and_sums`). A note's frames are few, so
        ``M2 = sum(x**2) - sum(x)**2 / n`` loses nothing that matters in float64; the
        cancellation-free merge of many such partials is :meth:`merge`.
        """
        if count == 0:
            return cls()
        total = np.asarray(total, dtype=np.float64)
        mean = total / count
        m2 = np.asarray(squares, dtype=np.float64) - total * mean
        return cls(count, mean, np.maximum(m2, 0.0))

    def merge(self, other: "RunningStats") -> "RunningStats":
        """Combine with ``other`` in place (Chan, Golub & LeVeque's pairwise update)."""
        if other.count == 0:
            return self
        if self.count == 0:
            self.count, self.mean, self.m2 = other.count, other.mean.copy(), other.m2.copy()
            return self
        if other.mean.shape != self.mean.shape:
            raise ValueError(f"cannot merge statistics of {other.mean.shape[0]} bins into "
                             f"{self.mean.shape[0]} bins")
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.count / total)
        self.m2 = self.m2 + other.m2 + delta ** 2 * (self.count * other.count / total)
        self.count = total
        return self

    @property
    def variance(self) -> np.ndarray:
        """Population variance per bin (``M2 / count``)."""
        if self.count == 0:
            raise ValueError("no data: variance is undefined")
        return self.m2 / self.count

    @property
    def std(self) -> np.ndarray:
        """Standard deviation per bin: the square root of :attr:`variance`."""
        return np.sqrt(self.variance)
