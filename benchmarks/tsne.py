"""t-SNE speed at equal quality: openTSNE (FFT-accelerated gradients) vs scikit-learn's TSNE
(Barnes-Hut), on the same >= 20k points, in one run.

    python benchmarks/tsne.py                                   # 20,000 synthetic points
    python benchmarks/tsne.py --store bench-out/quality/store   # a store's /embeddings
    python benchmarks/tsne.py --sizes 100 300 1000 3000         # openTSNE's two gradients

Points: by default a mixture of 11 Gaussian clusters of uneven size and spread in 64-D (like
embeddings of 11 families); with --store, the /embeddings of every split of that store
(run `timbremap embed` first), topped up to --n with jittered copies of them (each dimension
moved by 5 % of its spread) if the store is smaller; the output says how many.
Quality: scikit-learn's trustworthiness (k = 10) and leave-one-out 10-NN family accuracy, on a
fixed sample of 5,000 points for both maps. Target: openTSNE <= 1/5 of scikit-learn's time at
equal trustworthiness (+-0.01). With --sizes: openTSNE's Barnes-Hut and FFT gradients, as
`timbremap tsne` fits (analysis.tsne.fit_opentsne), on synthetic clusters of each size, seeds
0-3: the times and trustworthiness that set analysis.tsne.BH_MAX.
"""
from __future__ import annotations

import argparse
import os
import shlex
import time
from pathlib import Path

import numpy as np

from analysis.arguments import positive_int


def synthetic(n: int, seed: int = 0, dim: int = 64, k: int = 11):
    rng = np.random.default_rng(seed)
    sizes = rng.dirichlet(np.full(k, 3.0)) * n
    labels = np.repeat(np.arange(k), np.diff(np.round(np.concatenate([[0], np.cumsum(sizes)]))
                                                     .astype(int)))[:n]
    centres = rng.normal(0, 6, (k, dim))
    spread = rng.uniform(1, 3, k)
    points = centres[labels] + rng.normal(0, 1, (len(labels), dim)) * spread[labels, None]
    return points.astype(np.float32), labels


def from_store(store: Path, n: int, seed: int = 0):
    """``(points, labels, copies)``: the store's embeddings, and ``copies`` jittered copies of
    them after them where the store holds fewer than ``n``."""
    import h5py
    from featurestore.store import store_splits, split_path
    parts, labels = [], []
    for split in store_splits(store):
        with h5py.File(split_path(store, split), "r") as f:
            if "embeddings" in f:
                parts.append(f["embeddings"][:])
                labels.append(f["labels"][:])
    if not parts:
        raise SystemExit(f"{store}: no /embeddings (run timbremap embed)")
    x, y = np.concatenate(parts), np.concatenate(labels)
    copies = max(0, n - len(x))
    if copies:
        rng = np.random.default_rng(seed)
        extra = rng.choice(len(x), n - len(x))
        noise = rng.normal(0, 0.05, (len(extra), x.shape[1])) * x.std(axis=0)
        x, y = np.concatenate([x, x[extra] + noise]), np.concatenate([y, y[extra]])
    return x.astype(np.float32), y, copies


SEEDS = (0, 1, 2, 3)  # of --sizes: a small map's trustworthiness varies with the seed


def compare_gradients(sizes, perplexity: float, jobs: int):
    """Print, for each size, each gradient's seconds and trustworthiness over :data:`SEEDS`."""
    from analysis.tsne import BH_MAX, GRADIENTS, fit_opentsne, map_metrics
    print(f"\nopenTSNE's gradients on synthetic clusters (64-D), perplexity {perplexity:g} (or "
          f"the most a size allows), {jobs} jobs, {os.cpu_count()} cores; seeds "
          f"{', '.join(map(str, SEEDS))}: mean (range)\n")
    print("| points | gradient | seconds | trustworthiness (k=10) |")
    print("|---:|---|---:|---:|")
    for n in sizes:
        x, y = synthetic(n)
        for gradient in GRADIENTS:
            seconds, trust = [], []
            for seed in SEEDS:
                start = time.perf_counter()
                embedding, _ = fit_opentsne(x, min(perplexity, (n - 1) // 3), seed=seed,
                                            n_jobs=jobs, gradient=gradient)
                seconds.append(time.perf_counter() - start)
                trust.append(map_metrics(x, np.asarray(embedding), y, seed=0)["trustworthiness"])
            default = gradient == ("bh" if n <= BH_MAX else "fft")
            print(f"| {n:,} | {gradient}{' (default)' if default else ''} | "
                  f"{np.mean(seconds):.1f} ({min(seconds):.1f}-{max(seconds):.1f}) | "
                  f"{np.mean(trust):.3f} ({min(trust):.3f}-{max(trust):.3f}) |", flush=True)
    print(f"\nrerun: python benchmarks/tsne.py --sizes {' '.join(map(str, sizes))} --perplexity "
          f"{perplexity:g} --jobs {jobs}")


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--n", type=positive_int, default=20000)
    parser.add_argument("--store", type=Path,
                        help="a store whose splits hold /embeddings (timbremap embed; "
                             "default: synthetic clusters)")
    parser.add_argument("--perplexity", type=float, default=30.0)
    parser.add_argument("--jobs", type=positive_int, default=2)
    parser.add_argument("--sizes", type=positive_int, nargs="+", metavar="N",
                        help="compare openTSNE's gradients at these sizes instead")
    args = parser.parse_args()
    if args.sizes:
        if args.store:
            parser.error("--sizes compares the gradients on synthetic clusters: not with --store")
        if min(args.sizes) < 16:
            parser.error(f"--sizes must be at least 16 points, got {min(args.sizes)}")
        if args.perplexity < 1:
            parser.error(f"--perplexity must be at least 1, got {args.perplexity:g}")
        return compare_gradients(args.sizes, args.perplexity, args.jobs)
    if not args.perplexity >= 1 or args.n <= 3 * args.perplexity:
        parser.error(f"--perplexity must be at least 1 and --n above 3 times it, got "
                     f"{args.perplexity:g} and {args.n}")
    if args.store and not args.store.is_dir():
        parser.error(f"--store {args.store}: no such store folder")
    from analysis.tsne import INTS_IN_INTERVAL, fit_opentsne, map_metrics
    if args.store:
        x, y, copies = from_store(args.store, args.n)
        points = (f"embeddings of {args.store}: {len(x) - copies} notes"
                  + (f" and {copies} jittered copies of them" if copies else ""))
    else:
        (x, y), points = synthetic(args.n), "synthetic clusters"
    rows = []
    start = time.perf_counter()
    embedding, info = fit_opentsne(x, perplexity=args.perplexity, seed=0, n_jobs=args.jobs)
    rows.append((f"openTSNE (FFT), as `timbremap tsne` runs it ({info['neighbors']} "
                 f"neighbours, intervals of {INTS_IN_INTERVAL}, 250 + {info['iterations']} "
                 "iterations)", time.perf_counter() - start, np.asarray(embedding)))
    from sklearn.manifold import TSNE
    start = time.perf_counter()
    model = TSNE(perplexity=args.perplexity, n_jobs=args.jobs, random_state=0, init="pca")
    mapped = model.fit_transform(x)
    rows.append((f"scikit-learn TSNE (Barnes-Hut, {model.n_iter_} iterations)",
                 time.perf_counter() - start, mapped))
    print(f"\nt-SNE of {len(x)} points ({x.shape[1]}-D, {points}), perplexity "
          f"{args.perplexity:g}, {args.jobs} jobs, {os.cpu_count()} cores\n")
    print("| method | seconds | × scikit-learn time | trustworthiness (k=10) | "
          "10-NN accuracy, map | 10-NN accuracy, source |")
    print("|---|---:|---:|---:|---:|---:|")
    metrics = [map_metrics(x, m, y, seed=0) for _, _, m in rows]
    for (name, seconds, _), m in zip(rows, metrics):
        print(f"| {name} | {seconds:.1f} | {seconds / rows[1][1]:.2f} | "
              f"{m['trustworthiness']:.3f} | {m['knn_accuracy_map']:.3f} | "
              f"{m['knn_accuracy_source']:.3f} |")
    print(f"\n(metrics on {metrics[0]['metrics_sample']} points) target: openTSNE <= 0.20x "
          f"the time, trustworthiness within 0.01: difference "
          f"{metrics[0]['trustworthiness'] - metrics[1]['trustworthiness']:+.3f}")
    print(f"\nrerun: python benchmarks/tsne.py --n {args.n}"
          + (f" --store {shlex.quote(str(args.store))}" if args.store else "")
          + f" --perplexity {args.perplexity:g} --jobs {args.jobs}")


if __name__ == "__main__":
    main()
