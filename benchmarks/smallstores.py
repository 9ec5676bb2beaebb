"""``timbremap train``'s defaults on small stores of one's own sounds: epochs of one pass over
the training split (``--steps-per-epoch ceil(N / 64)``, an epoch as it was before
``training.config.EPOCH_MIN_STEPS``) against the default (at least 32 batches an epoch), two
seeds each, with a logistic regression on MFCC statistics beside them.

    python benchmarks/smallstores.py                    # every store, seeds 0 1, 4 minutes a run
    python benchmarks/smallstores.py --stores imbalanced --seeds 0 1 2

The stores are made here, in ``--workdir``, from sounds synthesised with fixed seeds, each a
folder per class built by ``timbremap build``:

- ``textures``: 8 classes of noises, clicks, hums and buzzes, 1-4 s, 20 recording sessions of
  2 clips a class, each session with its own background noise, filter and level (16 or 44.1
  kHz, some stereo), grouped by session (``--group-by``) so the test split is unheard sessions;
- ``imbalanced``: 6 such classes of 150, 75, 30, 15, 8 and 5 clips, each its own session;
- ``short``: 8 classes of 0.3-1 s clips by 24 "speakers" (sessions), ``--duration 1``.

A figure is the mean over the seeds of ``timbremap evaluate``'s test accuracy, with the range.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

from analysis.arguments import positive_int

REPO = Path(__file__).resolve().parents[1]
STORES = ("textures", "imbalanced", "short")
RECIPES = ("one-pass", "default")


def _band(rng, n, sr, lo, hi):
    from scipy import signal
    b, a = signal.butter(3, [lo / (sr / 2), min(hi / (sr / 2), 0.99)], "band")
    return signal.lfilter(b, a, rng.standard_normal(n))


def _clicks(rng, n, sr, density, decay, highpass):
    from scipy import signal
    x = np.zeros(n)
    at = rng.integers(0, n, max(1, int(n / sr * density)))
    x[at] = rng.uniform(0.1, 1, len(at)) * rng.choice([-1, 1], len(at))
    x = signal.lfilter([1], [1, -decay], x)
    return signal.lfilter(*signal.butter(2, highpass / (sr / 2), "high"), x)


def sound(kind: str, seconds: float, sr: int, rng) -> np.ndarray:
    """One clip of a class of textures: float64 ``(round(seconds * sr),)``, peak 1."""
    from scipy import signal
    n, u = int(seconds * sr), rng.uniform
    t = np.arange(n) / sr
    if kind == "rain":
        x = _clicks(rng, n, sr, u(120, 600), u(0.8, 0.95), u(400, 1500))
    elif kind == "crackle":
        x = _clicks(rng, n, sr, u(15, 160), u(0.2, 0.8), u(200, 1000))
    elif kind == "engine":
        x = _band(rng, n, sr, 40, u(300, 800)) * (1 + u(0.3, 0.9) * np.sin(6.283 * u(10, 40) * t))
    elif kind == "rumble":
        x = _band(rng, n, sr, 40, u(250, 700)) * (1 + 0.5 * np.sin(2 * np.pi * u(0.2, 2) * t))
    elif kind == "wind":
        x = _band(rng, n, sr, u(150, 400), u(1000, 2000)) * (1 + 0.7 * np.sin(6.283 * u(.2, 1) * t))
    elif kind == "hiss":
        x = _band(rng, n, sr, u(1500, 3000), u(5000, 7500))
    elif kind == "hum":
        f0 = rng.choice([50, 60])
        x = sum(u(0.2, 1) / h * np.sin(2 * np.pi * f0 * h * t + u(0, 6)) for h in range(1, 10))
    else:  # buzz
        x = signal.sawtooth(6.283 * u(90, 250) * t) * (1 + 0.3 * np.sin(6.283 * u(1, 5) * t))
    return x / (np.abs(x).max() + 1e-9)


def recorded(x: np.ndarray, sr: int, session: int, rng) -> np.ndarray:
    """``x`` as session ``session`` records it: its background noise (SNR -3 to 12 dB), maybe
    a low-pass filter, its level."""
    from scipy import signal
    own = np.random.default_rng(session)
    snr, lowpass = own.uniform(-3, 12), own.uniform(2500, 7000) if own.random() < 0.5 else None
    bg = signal.lfilter(*signal.butter(2, own.uniform(100, 3000) / (sr / 2), "low"),
                        rng.standard_normal(len(x)))
    x = x / (np.sqrt(np.mean(x ** 2)) + 1e-9) + 10 ** (-snr / 20) * bg / np.sqrt(np.mean(bg ** 2))
    if lowpass:
        x = signal.lfilter(*signal.butter(4, lowpass / (sr / 2), "low"), x)
    return x / np.abs(x).max() * 10 ** (own.uniform(-30, -2) / 20)


def make_notes(name: str, root: Path) -> list:
    """Write the store ``name``'s class folders into ``root``; the ``build`` options it needs."""
    import soundfile as sf
    rng = np.random.default_rng(STORES.index(name))
    kinds = ["rain", "crackle", "engine", "rumble", "wind", "hiss", "hum", "buzz"]
    clips = []  # (class, session, seconds, sr, stereo)
    if name == "textures":
        for session in range(20):
            sr, stereo = (44100 if session % 3 == 0 else 16000), session % 4 == 0
            clips += [(k, session, rng.uniform(1, 4), sr, stereo) for k in kinds for _ in range(2)]
    elif name == "imbalanced":
        counts = zip(["wind", "rain", "crackle", "hiss", "engine", "buzz"], [150, 75, 30, 15, 8, 5])
        clips = [(k, 1000 + 200 * i + j, rng.uniform(1, 4), 16000, False)
                 for i, (k, m) in enumerate(counts) for j in range(m)]
    else:
        clips = [(k, 2000 + s, rng.uniform(0.3, 1.0), 16000, False)
                 for s in range(24) for k in kinds for _ in range(4)]
    for i, (kind, session, seconds, sr, stereo) in enumerate(clips):
        x = recorded(sound(kind, seconds, sr, rng), sr, session, rng)
        if stereo:
            x = np.stack([x, 0.8 * x + 0.002 * rng.standard_normal(len(x))], axis=1)
        path = root / kind / f"s{session}_{kind}_{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, x.astype(np.float32), sr, subtype="PCM_16")
    return ["--group-by", r"^s(\d+)_"] + (["--duration", "1"] if name == "short" else [])


def timbremap(*args) -> str:
    """``timbremap ARGS`` in a process of its own; its stdout."""
    done = subprocess.run([sys.executable, "-m", "analysis.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"timbremap {' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def baseline(store: Path) -> float:
    """Test accuracy of a logistic regression on 20 MFCCs' means and spreads of each note's
    stored clip (``featurestore.features``' audio, as ``build`` read it), C = 1."""
    import h5py
    import librosa
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from featurestore.audio import load_audio
    from featurestore.schema import read_audio_paths, read_params
    data = {}
    for split in ("train", "test"):
        with h5py.File(store / f"{split}.h5", "r") as f:
            params, labels, paths = read_params(f), f["labels"][:], read_audio_paths(f)
        rows = []
        for path in paths:
            y, _ = load_audio(path, params)
            m = librosa.feature.mfcc(y=y, sr=params.sample_rate, n_mfcc=20)
            rows.append(np.r_[m.mean(axis=1), m.std(axis=1)])
        data[split] = np.array(rows), labels
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(*data["train"])
    return float(model.score(*data["test"]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--budget-minutes", type=positive_int, default=4)
    p.add_argument("--workdir", type=Path, default=REPO / "bench-out" / "smallstores")
    args = p.parse_args(argv)
    rows = []
    for name in args.stores:
        notes, store = args.workdir / name / "notes", args.workdir / name / "store"
        if not (store / "train.h5").is_file():
            options = make_notes(name, notes)
            timbremap("build", notes, store, "-q", "--overwrite", *options)
        import h5py
        with h5py.File(store / "train.h5", "r") as f:
            n_train = len(f["labels"])
        steps = math.ceil(n_train / 64)
        for recipe in RECIPES:
            scores = []
            for seed in args.seeds:
                model = args.workdir / name / f"model-{recipe}-{seed}"
                extra = ["--steps-per-epoch", steps] if recipe == "one-pass" else []
                timbremap("train", store, model, "--seed", seed, "--budget-minutes",
                          args.budget_minutes, "--overwrite", "-q", *extra)
                result = json.loads(timbremap("evaluate", store, model, "--split", "test",
                                              "--json"))
                config = json.loads((model / "config.json").read_text())
                scores.append((result["accuracy"], result["balanced_accuracy"],
                               config["epochs_run"], config["minutes"]))
            rows.append((name, n_train, recipe, np.array(scores)))
        rows.append((name, n_train, "MFCC baseline", baseline(store)))
    print(f"stores of one's own sounds; seeds {' '.join(map(str, args.seeds))}, "
          f"--budget-minutes {args.budget_minutes}; test accuracy, mean (range)\n")
    print("| store | train notes | recipe | accuracy | balanced accuracy | epochs | minutes |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name, n, recipe, s in rows:
        if recipe == "MFCC baseline":
            print(f"| {name} | {n:,} | {recipe} | {s:.3f} | - | - | - |")
            continue
        cells = [f"{s[:, k].mean():.3f} ({s[:, k].min():.3f}-{s[:, k].max():.3f})"
                 for k in (0, 1)]
        print(f"| {name} | {n:,} | {recipe} | {cells[0]} | {cells[1]} | "
              f"{s[:, 2].mean():.1f} | {s[:, 3].mean():.1f} |")
    print(f"\nrerun: python benchmarks/smallstores.py --stores {' '.join(args.stores)} "
          f"--seeds {' '.join(map(str, args.seeds))} --budget-minutes {args.budget_minutes}")


if __name__ == "__main__":
    main()
