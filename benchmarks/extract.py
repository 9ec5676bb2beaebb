"""Feature extraction speed: the tutorial's serial extractor vs. the same loop under joblib vs.
``timbremap build``, on the same files, in one run.

    python benchmarks/extract.py                 # 3,000 notes rendered from TimGM6mb
    python benchmarks/extract.py --n 500 --workdir /tmp/bench

(a) serial:  librosa.load + librosa.stft + log(1 + 1000|X|), float64 sum and sum of squares,
             one float32 .npy per file (the tutorial's extractor);
(b) joblib:  the same per-file function under joblib with 2 jobs (what a user writes first);
(c) build:   ``timbremap build ROOT OUT --jobs 2`` as a subprocess (start-up included), and its
             steady state (notes/s after the first batch) from an in-process build.

The machine's speed drifts within minutes, so each contender runs once per round, in turn
(``--rounds``, default 3); the table gives each one's median, and each ratio as the ratio of
the medians, with the range of the rounds' own ratios. Every contender starts from an empty
output folder with the earlier contenders' files flushed to disk (``os.sync``, untimed), so
none pays for another's writes (rewriting the same .npy names in a later round slowed the
serial extractor: docs/extraction.md).
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from analysis.arguments import positive_int


def tutorial_extract(wav: str, out_dir: str):
    import librosa
    y, _ = librosa.load(wav, sr=16000)
    spectrum = np.log1p(1000 * np.abs(librosa.stft(y, n_fft=1024, hop_length=256))).T
    x = spectrum.astype(np.float64)
    np.save(Path(out_dir) / (Path(wav).stem + ".npy"), spectrum.astype(np.float32))
    return x.sum(axis=0), (x * x).sum(axis=0), x.shape[0]


def make_root(workdir: Path, n: int) -> Path:
    """An NSynth root with one train split of ``n`` notes rendered from TimGM6mb."""
    from featurestore.nsynth import write_split
    from featurestore.splitfolder import read_split
    from featurestore.render import RenderOptions, render_soundfont
    rendered = workdir / "rendered"
    if not (rendered / "train" / "examples.json").is_file():
        render_soundfont(rendered, options=RenderOptions(fractions=(1, 0, 0)), progress=False)
    usable, _ = read_split(rendered / "train")
    if len(usable) < n:
        sys.exit(f"only {len(usable)} notes rendered, fewer than --n {n}")
    pick = [usable[i] for i in np.random.default_rng(0).choice(len(usable), n, replace=False)]
    root = workdir / f"root{n}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "train" / "audio").mkdir(parents=True)
    for example, wav in pick:
        os.symlink(wav.resolve(), root / "train" / "audio" / wav.name)
    write_split(root / "train", {e.note_str: e for e, _ in pick})
    return root


def _fresh(folder: Path) -> Path:
    """An empty folder, and nothing of earlier contenders left to write back to disk (so no
    contender pays for another's files)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    getattr(os, "sync", lambda: None)()  # POSIX
    return folder


def _serial(wavs, npy: Path) -> float:
    _fresh(npy)
    start = time.perf_counter()
    for wav in wavs:
        tutorial_extract(wav, str(npy))
    return len(wavs) / (time.perf_counter() - start)


def _joblib_loop(wavs, npy: Path, jobs: int) -> float:
    _fresh(npy)
    start = time.perf_counter()
    Parallel(n_jobs=jobs)(delayed(tutorial_extract)(w, str(npy)) for w in wavs)
    rate = len(wavs) / (time.perf_counter() - start)
    from joblib.externals.loky import get_reusable_executor
    get_reusable_executor().shutdown(wait=True)  # each round's loop starts its workers, as a user's does
    return rate


def _whole_command(root: Path, out: Path, jobs: int, n: int) -> float:
    _fresh(out)
    cmd = [sys.executable, "-m", "analysis.cli", "build", str(root), str(out), "--jobs",
           str(jobs), "-q"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return n / (time.perf_counter() - start)


def _steady_state(root: Path, out: Path, jobs: int) -> float:
    from featurestore.build import build_store
    return build_store(root, _fresh(out), jobs=jobs, progress=False)[0].steady_rate


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--n", type=positive_int, default=3000)
    parser.add_argument("--workdir", type=Path, default=Path("bench-out/extract"))
    parser.add_argument("--jobs", type=positive_int, default=2)
    parser.add_argument("--rounds", type=positive_int, default=3,
                        help="each contender runs once per round, in turn; the table shows "
                             "medians over rounds")
    args = parser.parse_args()
    from featurestore.build import build_store
    batch = inspect.signature(build_store).parameters["batch_size"].default
    if args.n < 4 * batch:  # the steady state is timed after each worker's first batch
        parser.error(f"--n: at least {4 * batch} notes, four of the build's batches of {batch} "
                     f"(the steady state is timed after the first)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    root = make_root(args.workdir, args.n)
    wavs = sorted(str(p) for p in (root / "train" / "audio").glob("*.wav"))
    for wav in wavs:  # page cache warm for every contender
        Path(wav).read_bytes()
    npy, out = args.workdir / "npy", args.workdir / "store"
    tutorial_extract(wavs[0], str(_fresh(npy)))  # imports librosa before timing
    names = ["(a) tutorial serial extractor", f"(b) same loop, joblib {args.jobs} jobs",
             f"(c) timbremap build --jobs {args.jobs} (whole command)",
             f"(c) timbremap build --jobs {args.jobs} (steady state)"]
    rates = {name: [] for name in names}
    for round_ in range(args.rounds):
        for name, run in zip(names, [
                lambda: _serial(wavs, npy), lambda: _joblib_loop(wavs, npy, args.jobs),
                lambda: _whole_command(root, out, args.jobs, len(wavs)),
                lambda: _steady_state(root, out, args.jobs)]):
            rates[name].append(run())
        print(f"round {round_ + 1}: " + ", ".join(f"{r[-1]:.0f}" for r in rates.values())
              + " files/s", flush=True)
    npy_bytes = sum(p.stat().st_size for p in npy.glob("*.npy")) / len(wavs)
    store_bytes = (out / "train.h5").stat().st_size / len(wavs)
    shutil.rmtree(npy)

    from trainspeed import compare  # the ratio of the medians, with the rounds' own ratios
    against = [{name: f"{ratio:.2f} ({low:.2f}-{high:.2f})"
                for name, _, ratio, low, high, _ in compare({"base": rates[base], **rates})[1:]}
               for base in names[:2]]
    print(f"\nfeature extraction, {len(wavs)} notes, {os.cpu_count()} cores "
          f"(python {sys.version.split()[0]}), median of {args.rounds} rounds; a ratio is the "
          f"ratio of the medians (each round's own ratio, min-max, in brackets)\n")
    print("| pipeline | files/s | × serial | × joblib loop | bytes/example | × serial bytes |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = []
    for name in names:
        rate = np.array(rates[name])
        size = npy_bytes if name.startswith(("(a)", "(b)")) else store_bytes
        print(f"| {name} | {np.median(rate):.0f} | {against[0][name]} | {against[1][name]} "
              f"| {size:,.0f} | {size / npy_bytes:.1%} |")
        rows.append({"pipeline": name, "files_per_s": rates[name], "bytes_per_example": size})
    print("\ntargets: steady state >= 6x serial and >= 3x joblib loop; whole command >= 3x "
          "serial; <= 52% of the serial extractor's bytes per example")
    print(f"\nrerun: python benchmarks/extract.py --n {args.n} --jobs {args.jobs} --rounds "
          f"{args.rounds} --workdir {args.workdir}")
    (args.workdir / "result.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
