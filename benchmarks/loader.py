"""Training input pipeline speed: random batches of 64 by index, in examples/s, against
numpy fancy indexing in RAM (1x) and naive one-note-at-a-time h5py reads, in one run.

    python benchmarks/loader.py                          # store from benchmarks/extract.py
    python benchmarks/loader.py --store bench-out/quality/store/train.h5 --notes 3000
    python benchmarks/loader.py --cold bench-out/scale/store100000/train.h5

The file is read once first, so every reader works from the page cache. The trainer's rows are
model-ready batches, as ``timbremap train`` gives them to the model: float16 as stored, one-hot
labels mixed with the mixup weights (the model casts, normalises, augments and mixes). With
``--cold`` (a store larger than RAM), the same batches are also read with the file's pages
dropped from the page cache, beside the disk's sequential read rate on that file.
"""
from __future__ import annotations

import argparse
import os
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

from analysis.arguments import positive_int


def rate(fn, batches, batch_size) -> float:
    fn(batches[0])  # warm-up
    start = time.perf_counter()
    for idx in batches:
        fn(idx)
    return len(batches) * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--store", type=Path, default=Path("bench-out/extract/store/train.h5"))
    parser.add_argument("--notes", type=positive_int, default=3000,
                        help="notes used (from the start)")
    parser.add_argument("--batches", type=positive_int, default=60)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--threads", type=positive_int, default=2,
                        help="threads for the threaded rows (timbremap train's --workers)")
    parser.add_argument("--cold", type=Path, help="a train.h5 larger than RAM, read cold too")
    args = parser.parse_args()
    if not args.store.is_file():
        raise SystemExit(f"{args.store}: no such store file (run benchmarks/extract.py first)")
    from featurestore.reader import SpectraReader
    from training.data import StoreBatches

    with h5py.File(args.store, "r") as f:
        n = min(args.notes, f["spectra"].shape[0])
    if n < args.batch_size:  # a batch draws distinct notes
        parser.error(f"--batch-size {args.batch_size}: more than the {n} notes read of "
                     f"{args.store}; give at most {n}")
    with open(args.store, "rb") as fh:  # page cache warm for everyone
        while fh.read(1 << 24):
            pass
    with h5py.File(args.store, "r") as f:
        in_ram = f["spectra"][:n]
    rng = np.random.default_rng(0)
    batches = [rng.choice(n, args.batch_size, replace=False) for _ in range(args.batches)]
    rows = [("numpy fancy indexing, in RAM", rate(lambda i: in_ram[i], batches,
                                                  args.batch_size))]
    with h5py.File(args.store, "r") as f:
        ds = f["spectra"]
        rows.append(("h5py, one note at a time (naive)",
                     rate(lambda i: np.stack([ds[j] for j in i]), batches, args.batch_size)))
        rows.append(("h5py fancy indexing, sorted unique",
                     rate(lambda i: ds[np.sort(i)], batches, args.batch_size)))
    for method in ("h5py", "mmap"):
        with SpectraReader(args.store, method=method) as reader:
            rows.append((f"SpectraReader(method='{method}')",
                         rate(lambda i: reader.batch(i), batches, args.batch_size)))
    for loader, threads in (("h5py", 1), ("mmap", 1), ("mmap", args.threads)):
        data = StoreBatches(args.store, args.batch_size, shuffle=True, steps=args.batches,
                            mixup_alpha=0.2, loader=loader)
        data.weights = np.where(np.arange(len(data.weights)) < n, 1.0 / n, 0.0)
        data.set_epoch(0)
        with ThreadPoolExecutor(threads) as pool:
            rows.append((f"model-ready batches (StoreBatches, loader='{loader}'), "
                         f"{threads} thread{'s' if threads > 1 else ''}",
                         rate(lambda ks: list(pool.map(data.__getitem__, ks)),
                              [range(args.batches)], args.batches * args.batch_size)))
        data.close()
    base, naive = rows[0][1], rows[1][1]
    print(f"\nrandom batches of {args.batch_size} from {n} notes of {args.store} "
          f"({in_ram.shape[1:]} float16), page cache warm\n")
    print("| reader | examples/s | × in-RAM | × naive h5py |")
    print("|---|---:|---:|---:|")
    for name, value in rows:
        print(f"| {name} | {value:,.0f} | {value / base:.2f} | {value / naive:.1f} |")
    print("\ntargets: model-ready batches >= 10,000 notes/s, >= 0.5x in-RAM and >= 10x naive "
          "reads")
    if args.cold:
        from scale import cold_batches, sequential_read
        print(f"\n{args.cold}: {args.cold.stat().st_size / 2**30:.1f} GiB, "
              f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB of "
              f"RAM, its pages dropped from the page cache before each row\n")
        print("| cold read | rate |")
        print("|---|---:|")
        print(f"| sequential, 16 MiB blocks | {sequential_read(args.cold):,.0f} MB/s |")
        for threads in (1, args.threads, 4 * args.threads):
            first_epoch, _ = cold_batches(args.cold, 2 * args.batches, "mmap", threads=threads)
            print(f"| model-ready batches, {threads} thread{'s' if threads > 1 else ''} | "
                  f"{first_epoch:,.0f} notes/s |")
    print(f"\nrerun: python benchmarks/loader.py --store {shlex.quote(str(args.store))} --notes "
          f"{args.notes} --batches {args.batches} --batch-size {args.batch_size} --threads "
          f"{args.threads}" + (f" --cold {shlex.quote(str(args.cold))}" if args.cold else ""))


if __name__ == "__main__":
    main()
