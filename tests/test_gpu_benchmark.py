"""The prepared GPU benchmark (``benchmarks/gpu.py``) runs on a CPU too: its store trains, on
the model its options ask for, and its three timings come out, so that it still works when a
GPU machine is at hand."""
import math

import h5py
import pytest
from helpers import load_benchmark

from featurestore import schema
from featurestore.params import FeatureParams
from featurestore.store import open_split, read_params

gpu = load_benchmark("gpu")
pytestmark = pytest.mark.full


@pytest.mark.parametrize("kind", ["stft", "mel"])
def test_the_gpu_benchmark_times_the_training_on_a_cpu(kind, tmp_path):
    store = gpu.synthetic_store(tmp_path / "store", 24, kind)
    with open_split(store, "train") as f:
        assert read_params(f) == FeatureParams(kind=kind)
        assert f[schema.SPECTRA].shape[0] == len(f[schema.LABELS]) == 24
    with h5py.File(store / "valid.h5", "r") as f:
        assert f[schema.SPECTRA].shape[0] == 256
    model = {"time_pool": 2, "width": 8, "weight_decay": 1e-4}  # as --time-pool 2 ... give
    row = gpu.measure(store, batch=8, notes=16, precision="float32", workers=2, model=model)
    assert row["batch"] == 8 and row["precision"] == "float32"
    assert {name: row[name] for name in model} == model  # the model it timed, in its row
    for key in ("device", "pipeline", "end_to_end"):
        assert 0 < row[key] < math.inf, key
