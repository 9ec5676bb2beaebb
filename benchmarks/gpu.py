"""Training on a GPU: notes/s of the default model for a range of batch sizes, on the device
alone and end to end from a store, with the GPU's utilisation, on a synthetic store made here.

Made for a machine with PyTorch or JAX, h5py and numpy, but no TensorFlow and no network:

    python benchmarks/gpu.py --bundle .whl                  # here: Keras, librosa, their deps
    # there, with the repository and .whl copied over:
    pip install --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site:. KERAS_BACKEND=jax python benchmarks/gpu.py

The store holds ``--notes`` notes of the default features (251 frames x 513 STFT bins,
float16; ``--kind mel``: 128 mel bands), drawn from a pool of random ones (that many distinct
random notes would take minutes to write). The model is the default one, or the one
``--time-pool``, ``--width`` and ``--weight-decay`` make (the ``TrainConfig`` fields
``timbremap train`` takes with those names; the output names them). For each batch size it is
compiled as ``timbremap train`` compiles it (mixup layer, AdamW, ``--precision``) and timed
three ways:

- *steps one at a time*: ``train_on_batch`` on one batch already made, each step waiting for
  the one before (the host-to-device copy included);
- *pipeline*: :class:`training.data.StoreBatches` making batches in one thread;
- *end to end*: ``fit`` on those batches with ``--workers`` threads reading ahead, while
  ``nvidia-smi`` samples how much of the time the GPU computes.
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
from typing import Optional

import numpy as np

#: What the GPU machine lacks: Keras and librosa (the model's band matrix), and their deps.
WHEELS = ["keras", "namex", "optree", "librosa", "soundfile", "soxr", "audioread", "pooch",
          "decorator", "platformdirs", "cffi", "pycparser", "standard-aifc", "standard-sunau",
          "standard-chunk"]


def synthetic_store(store: Path, n: int, kind: str = "stft") -> Path:
    """``store/{train,valid}.h5``: ``n`` and ``n // 20`` notes of the default features of
    ``kind`` (``'stft'``: 513 bins; ``'mel'``: 128 bands)."""
    import h5py

    from featurestore import schema
    from featurestore.nsynth import FAMILIES, Example
    from featurestore.notes import Notes
    from featurestore.params import FeatureParams
    params = FeatureParams(kind=kind)
    rng = np.random.default_rng(0)
    pool = rng.gamma(2.0, 0.5, (256,) + params.shape).astype(np.float16)
    store.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n), ("valid", max(256, n // 20))):
        labels = rng.integers(0, len(FAMILIES), count)
        with h5py.File(store / f"{split}.h5", "w") as f:
            schema.create_spectra(f, count, params)
            for start in range(0, count, len(pool)):
                f[schema.SPECTRA][start:start + len(pool)] = pool[:count - start]
            schema.write_stats(f, np.full(params.n_bins, 1.0), np.full(params.n_bins, 0.7),
                               count * params.n_frames, "train")
            examples = [Example(f"n{i}", int(k), FAMILIES[k], int(k) * 100 + i % 7,
                                f"{FAMILIES[k]}_synthetic_{i % 7}", 2, "synthetic", 60, 100,
                                16000) for i, k in enumerate(labels)]
            schema.write_notes(f, Notes.collect(store, ((e.note_str, ".wav", e)
                                                        for e in examples)), [str(store)],
                               FAMILIES)
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


def measure(store: Path, batch: int, notes: int, precision: str, workers: int,
            model: Optional[dict] = None) -> dict:
    """One batch size: notes/s of steps one at a time, of the pipeline alone, and end to
    end, for the model of ``model`` (``TrainConfig`` fields; default: the default model)."""
    import keras

    from featurestore.store import open_split, read_params, read_stats, split_path
    from training.config import TrainConfig
    from training.data import StoreBatches
    from training.train import _compiled_model
    config = TrainConfig(batch_size=batch, precision=precision, workers=workers,
                         **(model or {}))
    steps = max(8, notes // batch)
    with open_split(store, "train") as f:
        params, (mean, std) = read_params(f), read_stats(f)
    fitted, _ = _compiled_model(config, params, mean, std, steps)
    data = StoreBatches(split_path(store, "train"), batch, shuffle=True, steps=steps,
                        mixup_alpha=config.mixup(), workers=workers, max_queue_size=2 * workers)
    x, y = data[0]
    for _ in range(3):  # compile and warm up
        fitted.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        loss = fitted.train_on_batch(x, y)
    float(np.asarray(loss).ravel()[0])  # wait for the device
    device = steps * batch / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(steps):
        data[i]
    pipeline = steps * batch / (time.perf_counter() - start)
    marks, meter = [], Utilisation()
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda *_: marks.append(time.perf_counter()),
        on_epoch_end=lambda *_: marks.append(time.perf_counter()))
    meter.start()
    fitted.fit(data, epochs=2, verbose=0, shuffle=False, callbacks=[timer])  # the 2nd is timed
    busy = meter.stop()
    data.close()
    return {"batch": batch, "precision": precision,
            **{name: getattr(config, name) for name in model or {}}, "device": device,
            "pipeline": pipeline, "end_to_end": steps * batch / (marks[-1] - marks[-2]),
            "gpu_busy": busy}


def main():
    from analysis.arguments import positive_int
    from trainspeed import add_model_options, model_flags, model_options  # benchmarks/
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--bundle", type=Path,
                        help="download the wheels the GPU machine lacks here, and stop")
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's (--bundle)")
    parser.add_argument("--workdir", type=Path, default=Path("bench-out/gpu"))
    parser.add_argument("--notes", type=positive_int, default=8000, help="notes in the store")
    parser.add_argument("--kind", choices=["stft", "mel"], default="stft",
                        help="the store's features: 513 STFT bins or 128 mel bands")
    parser.add_argument("--per-run", type=positive_int, default=16384,
                        help="notes each timing trains")
    parser.add_argument("--batches", type=positive_int, nargs="+", default=[64, 512, 4096])
    parser.add_argument("--precision", nargs="+", default=["mixed"], choices=["mixed", "float32"],
                        help="mixed and/or float32, each at every batch size")
    parser.add_argument("--workers", type=positive_int, default=4)
    add_model_options(parser)
    args = parser.parse_args()
    model = model_options(args)
    if args.bundle:  # the versions installed here, where they are
        from importlib.metadata import PackageNotFoundError, version

        def pinned(name):
            try:
                return f"{name}=={version(name)}"
            except PackageNotFoundError:
                return name
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary=:all:", "--python-version", args.python_version,
                        "--implementation", "cp", "--platform", "manylinux2014_x86_64",
                        "--platform", "manylinux_2_28_x86_64", "--platform",
                        "manylinux_2_17_x86_64", "-d", str(args.bundle), *map(pinned, WHEELS)],
                       check=True)
        print(f"{args.bundle}: {len(list(args.bundle.glob('*.whl')))} wheels")
        return
    from training.backend import gpus, name
    store = synthetic_store(args.workdir / f"store-{args.kind}", args.notes, args.kind)
    print(f"backend {name()}, GPUs {gpus() or 'none'}, {os.cpu_count()} cores; model: "
          + ", ".join(f"{key} {value:g}" for key, value in model.items()), flush=True)
    rows = []
    for precision in args.precision:
        for batch in args.batches:
            try:
                rows.append(measure(store, batch, args.per_run, precision, args.workers,
                                    model))
            except Exception as err:  # noqa: BLE001 - out of memory: the largest was before
                print(f"batch {batch}, {precision}: {type(err).__name__}: {str(err)[:300]}")
                break
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n| backend | precision | batch | steps one at a time, notes/s | pipeline notes/s "
          f"(1 thread) | end to end notes/s ({args.workers} workers) | GPU busy |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {name()} | {r['precision']} | {r['batch']} | {r['device']:,.0f} | "
              f"{r['pipeline']:,.0f} | {r['end_to_end']:,.0f} | {r['gpu_busy']:.0f} % |")
    print(f"\nrerun: KERAS_BACKEND={name()} python benchmarks/gpu.py --notes {args.notes} "
          f"--kind {args.kind} --per-run {args.per_run} --batches "
          f"{' '.join(map(str, args.batches))} --precision {' '.join(args.precision)} "
          f"--workers {args.workers} {model_flags(model)}")


if __name__ == "__main__":
    sys.exit(main())
