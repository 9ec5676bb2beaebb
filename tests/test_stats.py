import numpy as np
import pytest

from featurestore.stats import RunningStats


def _stats(rows):
    return RunningStats.from_sums(len(rows), rows.sum(axis=0), (rows * rows).sum(axis=0))


def test_merged_partials_equal_numpy_on_the_whole():
    rows = np.random.default_rng(0).normal(1000.0, 0.5, (300, 7))  # large mean, small spread
    merged = RunningStats()
    for part in np.split(rows, [1, 10, 11, 150]):
        merged.merge(_stats(part))
    assert merged.count == 300
    np.testing.assert_allclose(merged.mean, rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(merged.variance, rows.var(axis=0), rtol=1e-6)
    np.testing.assert_allclose(merged.std, rows.std(axis=0), rtol=1e-6)


def test_empty_and_mismatched_statistics():
    stats = RunningStats().merge(RunningStats.from_sums(0, np.zeros(3), np.zeros(3)))
    assert stats.count == 0
    with pytest.raises(ValueError, match="undefined"):
        stats.variance
    stats.merge(_stats(np.ones((2, 3))))
    with pytest.raises(ValueError, match="4 bins into 3 bins"):
        stats.merge(_stats(np.ones((2, 4))))
