"""Training speed on this machine: notes per second of ``timbremap train`` steps, with and
without op determinism, with and without XLA, or against another revision of timbremap, in one
run.

    python benchmarks/trainspeed.py                       # 3 rounds, 6 epochs of 20 batches
    python benchmarks/trainspeed.py --rounds 5 --steps 40
    python benchmarks/trainspeed.py --against 5b28b2c     # this checkout against a revision
    python benchmarks/trainspeed.py --xla                 # TensorFlow with and without XLA

Each contender is a training run of its own (a new process: TensorFlow's op determinism cannot
be switched off once on) on the same store of rendered notes (``benchmarks/extract.py``'s,
made here when missing); its rate is the median over its epochs after the first (which carries
graph tracing). Contenders alternate, round after round.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

RUN = """
import sys
from pathlib import Path
import keras
from training.config import TrainConfig
from training.train import train
if sys.argv[6] == "on":  # Keras's choice for TensorFlow: no XLA on a machine without a GPU
    compile_ = keras.Model.compile
    keras.Model.compile = lambda model, *a, **k: compile_(model, *a, **k, jit_compile=True)
config = TrainConfig(epochs=int(sys.argv[4]), steps_per_epoch=int(sys.argv[5]),
                     budget_minutes=None, patience=1000, deterministic=sys.argv[3] == "on")
train(Path(sys.argv[1]), Path(sys.argv[2]), config, overwrite=True, verbose=0)
"""


REPO = Path(__file__).resolve().parents[1]


def one_run(code: Path, store: Path, model_dir: Path, determinism: str, epochs: int,
            steps: int, xla: str = "auto") -> float:
    """Notes per second of one run of the timbremap in ``code`` (``xla='on'``: compiled with
    XLA; ``'auto'``: as Keras chooses): the median of its epochs after the first."""
    subprocess.run([sys.executable, "-c", RUN, str(store.resolve()), str(model_dir.resolve()),
                    determinism, str(epochs), str(steps), xla], check=True, cwd=code,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(code)})
    with (model_dir / "history.csv").open(newline="") as fh:
        seconds = [float(row["seconds"]) for row in csv.DictReader(fh)][1:]
    return steps * 64 / float(np.median(seconds))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("bench-out/extract"))
    parser.add_argument("--n", type=int, default=3000, help="notes in the store")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20, help="batches of 64 per epoch")
    parser.add_argument("--against", metavar="REV",
                        help="compare with this git revision (both without op determinism)")
    parser.add_argument("--xla", action="store_true",
                        help="compare Keras's choice (no XLA without a GPU) with XLA, without op "
                             "determinism")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs: at least 2 (the first is not timed)")
    from extract import _fresh, make_root
    from featurestore.build import build_store
    args.workdir.mkdir(parents=True, exist_ok=True)
    store = args.workdir / f"trainspeed-store{args.n}"
    if not (store / "valid.h5").is_file():
        root = make_root(args.workdir, args.n)
        (root / "valid").mkdir(exist_ok=True)
        if not (root / "valid" / "examples.json").is_file():  # a small valid split: train's
            entries = json.loads((root / "train" / "examples.json").read_text())
            keep = dict(list(entries.items())[:256])
            (root / "valid" / "audio").mkdir(exist_ok=True)
            for name in keep:
                link = root / "valid" / "audio" / f"{name}.wav"
                if not link.exists():
                    os.symlink((root / "train" / "audio" / f"{name}.wav").resolve(), link)
            (root / "valid" / "examples.json").write_text(json.dumps(keep))
        build_store(root, _fresh(store), jobs=2, progress=False)
    if args.against:
        other = args.workdir / f"trainspeed-{args.against}"
        if not other.is_dir():
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach",
                            str(other.resolve()), args.against], check=True)
        contenders = {f"revision {args.against}": (other, "off", "auto"),
                      "this checkout": (REPO, "off", "auto")}
    elif args.xla:
        contenders = {"Keras's choice (no XLA without a GPU)": (REPO, "off", "auto"),
                      "XLA (jit_compile=True)": (REPO, "off", "on")}
    else:
        contenders = {"op determinism on (--deterministic)": (REPO, "on", "auto"),
                      "op determinism off (the default)": (REPO, "off", "auto")}
    rates = {name: [] for name in contenders}
    for round_ in range(args.rounds):
        for name, (code, switch, xla) in contenders.items():
            rates[name].append(one_run(code, store, args.workdir / "trainspeed-model", switch,
                                       args.epochs, args.steps, xla))
        print(f"round {round_ + 1}: " + ", ".join(f"{r[-1]:.1f}" for r in rates.values())
              + " notes/s", flush=True)
    first = next(iter(rates))
    base = np.array(rates[first])
    print(f"\ntraining steps of 64 notes, {args.n}-note store, {os.cpu_count()} cores, median "
          f"of {args.rounds} rounds\n")
    print(f"| training | notes/s | x {first} |")
    print("|---|---:|---:|")
    for name, values in rates.items():
        ratio = np.array(values) / base
        print(f"| {name} | {np.median(values):.1f} | {np.median(ratio):.2f} "
              f"({ratio.min():.2f}-{ratio.max():.2f}) |")
    print(f"\nrerun: python benchmarks/trainspeed.py --n {args.n} --rounds {args.rounds} "
          f"--epochs {args.epochs} --steps {args.steps} --workdir {args.workdir}"
          + (f" --against {args.against}" if args.against else "")
          + (" --xla" if args.xla else ""))


if __name__ == "__main__":
    sys.exit(main())
