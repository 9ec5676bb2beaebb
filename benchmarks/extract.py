"""Feature extraction speed: the tutorial's serial extractor vs. the same loop under joblib vs.
``timbremap build``, on the same files, in one run.

    python benchmarks/extract.py                 # 3,000 notes rendered from TimGM6mb
    python benchmarks/extract.py --n 500 --workdir /tmp/bench

(a) serial:  librosa.load + librosa.stft + log(1 + 1000|X|), float64 sum and sum of squares,
             one float32 .npy per file (the tutorial's extractor);
(b) joblib:  the same per-file function under joblib with 2 jobs (what a user writes first);
(c) build:   ``timbremap build ROOT OUT --jobs 2`` as a subprocess (start-up included), and its
             steady state (notes/s after the first batch) from an in-process build.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed


def tutorial_extract(wav: str, out_dir: str):
    import librosa
    y, _ = librosa.load(wav, sr=16000)
    spectrum = np.log1p(1000 * np.abs(librosa.stft(y, n_fft=1024, hop_length=256))).T
    x = spectrum.astype(np.float64)
    np.save(Path(out_dir) / (Path(wav).stem + ".npy"), spectrum.astype(np.float32))
    return x.sum(axis=0), (x * x).sum(axis=0), x.shape[0]


def make_root(workdir: Path, n: int) -> Path:
    """An NSynth root with one train split of ``n`` notes rendered from TimGM6mb."""
    from featurestore.nsynth import read_split, write_split
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--workdir", type=Path, default=Path("bench-out/extract"))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    root = make_root(args.workdir, args.n)
    wavs = sorted(str(p) for p in (root / "train" / "audio").glob("*.wav"))
    for wav in wavs:  # page cache warm for every contender
        Path(wav).read_bytes()
    rows = []

    npy = args.workdir / "npy"
    shutil.rmtree(npy, ignore_errors=True)
    npy.mkdir()
    tutorial_extract(wavs[0], str(npy))  # imports librosa before timing
    start = time.perf_counter()
    for wav in wavs:
        tutorial_extract(wav, str(npy))
    serial = len(wavs) / (time.perf_counter() - start)
    npy_bytes = sum(p.stat().st_size for p in npy.glob("*.npy")) / len(wavs)
    rows.append(("(a) tutorial serial extractor", serial, npy_bytes))

    shutil.rmtree(npy)
    npy.mkdir()
    start = time.perf_counter()
    Parallel(n_jobs=args.jobs)(delayed(tutorial_extract)(w, str(npy)) for w in wavs)
    rows.append(("(b) same loop, joblib %d jobs" % args.jobs,
                 len(wavs) / (time.perf_counter() - start), npy_bytes))
    shutil.rmtree(npy)

    out = args.workdir / "store"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "analysis.cli", "build", str(root), str(out), "--jobs",
           str(args.jobs), "-q"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    whole = len(wavs) / (time.perf_counter() - start)
    store_bytes = (out / "train.h5").stat().st_size / len(wavs)
    rows.append((f"(c) timbremap build --jobs {args.jobs} (whole command)", whole, store_bytes))

    from featurestore.build import build_store
    report = build_store(root, out, jobs=args.jobs, overwrite=True, progress=False)[0]
    rows.append((f"(c) timbremap build --jobs {args.jobs} (steady state)", report.steady_rate,
                 store_bytes))

    print(f"\nfeature extraction, {len(wavs)} notes, {os.cpu_count()} cores "
          f"(python {sys.version.split()[0]})\n")
    print("| pipeline | files/s | × serial | × joblib loop | bytes/example | × serial bytes |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rate, size in rows:
        print(f"| {name} | {rate:.0f} | {rate / rows[0][1]:.2f} | {rate / rows[1][1]:.2f} "
              f"| {size:,.0f} | {size / rows[0][2]:.1%} |")
    print("\ntargets: steady state >= 6x serial and >= 3x joblib loop; whole command >= 3x "
          "serial; <= 52% of the serial extractor's bytes per example")
    (args.workdir / "result.json").write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
