"""What each fast path of the build's hot path gives: the steady-state build with all of them,
and with each one switched off in turn, in one run.

    python benchmarks/fastpaths.py               # 3,000 notes rendered from TimGM6mb
    python benchmarks/fastpaths.py --n 500 --rounds 2 --workdir /tmp/bench

The fast paths, and what stands in for each when it is off:

libsndfile C calls
    16-bit files read through ``sf_open``/``sf_readf_short`` as soundfile binds them
    (``soundfile._snd``, a private binding; ``featurestore.fastpaths.read_pcm16``); off: every
    file through ``sf.SoundFile``.
pocketfft into the workspace
    the FFT written into a reused buffer through scipy's private ``scipy.fft._pocketfft``
    binding (``featurestore.fastpaths.rfft_into``); off: ``scipy.fft.rfft``, copied.
numba kernel
    the fused log / float16 / statistics pass with its hand port of ``logf``
    (``featurestore.fastpaths.kernels``); off: the same arithmetic in numpy.
loky ring (``--backend loky`` only)
    loky worker processes compute features into a shared memory-mapped ring
    (``featurestore.workers.Ring``); off: they return them as arrays, pickled through pipes.

A fast path is kept when it gives at least 10 % (``docs/extraction.md`` has the table, and the
rejected ones).

Each contender is an in-process ``build_store`` (2 threads) into an empty folder; the figure is
its steady state (notes/s after the first batch). Contenders run once per round, in turn; the
table gives medians, and each one's ratio to all fast paths as the median of the rounds' own
ratios, with their range.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

import numpy as np

from analysis.arguments import positive_int
from extract import _fresh, make_root


def _switches(backend: str):
    """``{name: context manager that switches that fast path off}``."""
    from featurestore import fastpaths, workers

    @contextlib.contextmanager
    def patched(module, name, value):
        old = getattr(module, name)
        setattr(module, name, value)
        try:
            yield
        finally:
            setattr(module, name, old)
    @contextlib.contextmanager
    def no_ring(*args):
        yield None
    ring = {"without the loky ring": lambda: patched(workers.Ring, "beside", no_ring)}
    return {
        "all fast paths": contextlib.nullcontext,
        "without libsndfile C calls": lambda: patched(fastpaths, "_libsndfile", lambda: None),
        "without pocketfft into the workspace": lambda: patched(fastpaths, "rfft_into",
                                                                lambda: None),
        "without the numba kernel": lambda: patched(fastpaths, "kernels", lambda: None),
        **(ring if backend == "loky" else {}),
    }


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--n", type=positive_int, default=3000)
    parser.add_argument("--workdir", type=Path, default=Path("bench-out/extract"))
    parser.add_argument("--jobs", type=positive_int, default=2)
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--backend", choices=("threading", "loky"), default="threading")
    args = parser.parse_args()
    from featurestore.build import build_store
    args.workdir.mkdir(parents=True, exist_ok=True)
    root = make_root(args.workdir, args.n)
    for wav in (root / "train" / "audio").glob("*.wav"):  # page cache warm for every contender
        wav.read_bytes()
    out = args.workdir / "fastpaths-store"
    switches = _switches(args.backend)
    rates = {name: [] for name in switches}
    build_store(root, _fresh(out), jobs=args.jobs, backend=args.backend,
                progress=False)  # compiles numba's kernel
    for round_ in range(args.rounds):
        for name, off in switches.items():
            with off():
                rates[name].append(build_store(root, _fresh(out), jobs=args.jobs,
                                               backend=args.backend,
                                               progress=False)[0].steady_rate)
        print(f"round {round_ + 1}: " + ", ".join(f"{r[-1]:.0f}" for r in rates.values())
              + " notes/s", flush=True)
    base = np.array(rates["all fast paths"])
    print(f"\nsteady-state build, {args.n} notes, {args.jobs} jobs ({args.backend}), "
          f"{os.cpu_count()} cores, "
          f"median of {args.rounds} rounds\n")
    print("| build | notes/s | x all fast paths | the fast path's gain |")
    print("|---|---:|---:|---:|")
    for name, values in rates.items():
        ratio = np.array(values) / base
        gain = "" if name == "all fast paths" else f"{1 / np.median(ratio) - 1:+.0%}"
        print(f"| {name} | {np.median(values):.0f} | {np.median(ratio):.2f} "
              f"({ratio.min():.2f}-{ratio.max():.2f}) | {gain} |")
    print(f"\nrerun: python benchmarks/fastpaths.py --n {args.n} --rounds {args.rounds} "
          f"--jobs {args.jobs} --backend {args.backend} --workdir {args.workdir}")


if __name__ == "__main__":
    sys.exit(main())
