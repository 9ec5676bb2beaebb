"""Training on a GPU: notes/s of the default model for batch 64 and the largest batch that fits,
the GPU's utilisation, and whether the input pipeline keeps up, on a synthetic store made here.

Made for a machine with PyTorch or JAX, h5py and numpy, but no TensorFlow and no network:

    python benchmarks/gpu.py --bundle bench-out/wheels      # here: Keras and its small deps
    # there, with the repository and bench-out/wheels copied over:
    pip install --no-index --find-links bench-out/wheels keras
    KERAS_BACKEND=jax python benchmarks/gpu.py --notes 20000

The store holds ``--notes`` random notes of 128 log-mel bands (the model uses them as they are;
an STFT store of that size would take minutes to write), with the schema a build writes. For
each batch size the model trains ``--steps`` steps on a batch already made (its rate on the
device alone) while ``nvidia-smi`` is sampled; then the input pipeline
(``training.data.StoreBatches``, mixup included) is timed making ``--steps`` batches: where it
makes fewer notes/s than the model consumes, the GPU would wait for it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

WHEELS = ["keras", "absl-py", "namex", "optree", "ml-dtypes", "rich", "markdown-it-py",
          "mdurl", "pygments", "packaging"]


def synthetic_store(store: Path, n: int, bins: int = 128, frames: int = 251) -> Path:
    """``store/{train,valid}.h5`` of random features with the build's schema."""
    import h5py

    from featurestore import schema
    from featurestore.nsynth import FAMILIES, Example
    from featurestore.params import FeatureParams
    params = FeatureParams(kind="mel", n_mels=bins)
    assert params.shape == (frames, bins)
    rng = np.random.default_rng(0)
    store.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n), ("valid", max(256, n // 20))):
        labels = rng.integers(0, len(FAMILIES), count)
        with h5py.File(store / f"{split}.h5", "w") as f:
            schema.create_spectra(f, count, params)
            for start in range(0, count, 1024):
                block = rng.gamma(2.0, 1.0, (min(1024, count - start),) + params.shape)
                f[schema.SPECTRA][start:start + len(block)] = block.astype(np.float16)
            schema.write_stats(f, np.full(bins, 2.0), np.full(bins, 1.4), count * frames,
                               "train")
            examples = [Example(f"n{i}", int(k), FAMILIES[k], int(k) * 100 + i % 7,
                                f"{FAMILIES[k]}_synthetic_{i % 7}", 2, "synthetic", 60, 100,
                                16000) for i, k in enumerate(labels)]
            schema.write_notes(f, examples, [e.note_str for e in examples])
    return store


class Utilisation(threading.Thread):
    """``nvidia-smi``'s GPU utilisation (%), sampled every half second while running."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples, self.running = [], True

    def run(self):
        while self.running:
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu",
                                      "--format=csv,noheader,nounits"], capture_output=True,
                                     text=True, timeout=5).stdout
                self.samples.append(float(out.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.5)

    def stop(self) -> float:
        self.running = False
        self.join()
        return float(np.mean(self.samples)) if self.samples else float("nan")


def train_rate(store: Path, batch: int, steps: int) -> tuple:
    """``(training notes/s, mean GPU utilisation %, pipeline notes/s)`` for one batch size:
    the model's steps on batches already made, and the input pipeline making them, apart."""
    import keras

    from featurestore.store import open_split, read_params, read_stats, split_path
    from training.backend import precision
    from training.config import TrainConfig
    from training.data import StoreBatches
    from training.models import build_model
    config = TrainConfig(batch_size=batch)
    with open_split(store, "train") as f:
        params, (mean, std) = read_params(f), read_stats(f)
    data = StoreBatches(split_path(store, "train"), batch, shuffle=True, steps=steps + 5,
                        mixup_alpha=config.mixup_alpha, seed=0)
    with precision():
        model = build_model(config, params, mean=mean, std=std)
    model.compile(optimizer=keras.optimizers.AdamW(config.learning_rate),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1))
    x, y = data[0]
    for _ in range(3):  # compile and warm up
        model.train_on_batch(x, y)
    meter = Utilisation()
    meter.start()
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    keras.ops.convert_to_numpy(model.trainable_variables[0])  # wait for the device
    rate = steps * batch / (time.perf_counter() - start)
    busy = meter.stop()
    start = time.perf_counter()
    for i in range(steps):
        data[1 + i]
    pipeline = steps * batch / (time.perf_counter() - start)
    data.close()
    return rate, busy, pipeline


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, help="download Keras's wheels here and stop")
    parser.add_argument("--workdir", type=Path, default=Path("bench-out/gpu"))
    parser.add_argument("--notes", type=int, default=20000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024, 4096])
    args = parser.parse_args()
    if args.bundle:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(args.bundle),
                        "--only-binary=:all:", *WHEELS], check=True)
        print(f"{args.bundle}: {len(list(args.bundle.glob('*.whl')))} wheels")
        return
    from training.backend import gpus, name
    store = synthetic_store(args.workdir / "store", args.notes)
    print(f"backend {name()}, GPUs {gpus() or 'none'}, {os.cpu_count()} cores", flush=True)
    rows = []
    for batch in args.batches:
        try:
            rate, busy, pipeline = train_rate(store, batch, args.steps)
        except Exception as err:  # noqa: BLE001 - out of device memory: the largest was before
            print(f"batch {batch}: {type(err).__name__}: {str(err)[:200]}")
            break
        rows.append({"batch": batch, "train": rate, "gpu_busy": busy, "pipeline": pipeline})
        print(json.dumps(rows[-1]), flush=True)
    print("\n| batch | training notes/s | GPU busy | input pipeline notes/s | keeps up |")
    print("|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['train']:,.0f} | {r['gpu_busy']:.0f} % | "
              f"{r['pipeline']:,.0f} | {'yes' if r['pipeline'] >= r['train'] else 'no'} |")
    print(f"\nrerun: KERAS_BACKEND={name()} python benchmarks/gpu.py --notes {args.notes} "
          f"--steps {args.steps} --batches {' '.join(map(str, args.batches))}")


if __name__ == "__main__":
    sys.exit(main())
