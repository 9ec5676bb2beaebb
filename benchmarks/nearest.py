"""Were a test bank's notes heard in training? Nearest training note of the same pitch and
velocity, by cosine similarity of the stored features, for every note of each test store.

    python benchmarks/nearest.py bench-out/quality/store/train.h5 \
        bench-out/quality/store-test-merlin/test.h5 bench-out/quality/store/test.h5

A recording that is also in training (the same sample, perhaps re-levelled) scores near 1; a
note of an instrument never heard does not. ~15 minutes for 16,000 test notes on 2 cores.
"""
from __future__ import annotations

import argparse
import shlex
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np


def by_pitch_and_velocity(f: h5py.File) -> dict:
    groups = defaultdict(list)
    for i, key in enumerate(zip(f["pitch"][:].tolist(), f["velocity"][:].tolist())):
        groups[key].append(i)
    return groups


def unit_rows(spectra: np.ndarray) -> np.ndarray:
    rows = spectra.reshape(len(spectra), -1).astype(np.float32)
    return rows / (np.linalg.norm(rows, axis=1, keepdims=True) + 1e-9)


def nearest_similarity(train: h5py.File, test: h5py.File) -> np.ndarray:
    """For each test note whose pitch and velocity occur in training, the largest cosine
    similarity to a training note of the same pitch and velocity (read group by group)."""
    heard = by_pitch_and_velocity(train)
    best = []
    for key, rows in by_pitch_and_velocity(test).items():
        if key in heard:
            reference = unit_rows(train["spectra"][sorted(heard[key])])
            best.append((unit_rows(test["spectra"][sorted(rows)]) @ reference.T).max(axis=1))
    return np.concatenate(best) if best else np.zeros(0)


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("train", help="the training split's .h5")
    parser.add_argument("tests", nargs="+", help="split files to check")
    args = parser.parse_args()
    missing = [path for path in (args.train, *args.tests) if not Path(path).is_file()]
    if missing:
        parser.error(f"{missing[0]}: no such split file")
    print(f"each test note's largest cosine similarity of stored features to a note of "
          f"{args.train} of its pitch and velocity (notes: those whose pitch and velocity "
          f"training has)\n")
    print("| split | notes | median | 90th percentile | share > 0.99 |")
    print("|---|---:|---:|---:|---:|")
    with h5py.File(args.train, "r") as train:
        for path in args.tests:
            with h5py.File(path, "r") as test:
                best = nearest_similarity(train, test)
            if not len(best):
                print(f"| {path} | 0 | - | - | - |", flush=True)
                continue
            print(f"| {path} | {len(best)} | {np.median(best):.3f} | "
                  f"{np.quantile(best, 0.9):.3f} | {np.mean(best > 0.99):.3f} |", flush=True)
    print(f"\nrerun: python benchmarks/nearest.py {shlex.join([args.train, *args.tests])}")


if __name__ == "__main__":
    main()
