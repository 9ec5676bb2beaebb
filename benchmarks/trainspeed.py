"""Training speed on this machine: notes per second of ``timbremap train`` steps, with and
without op determinism, with and without XLA, or against another revision of timbremap, in one
run.

    python benchmarks/trainspeed.py                       # 3 rounds, 6 epochs of 20 batches
    python benchmarks/trainspeed.py --rounds 5 --steps 40
    python benchmarks/trainspeed.py --against 5b28b2c     # this checkout against a revision
    python benchmarks/trainspeed.py --xla                 # TensorFlow with and without XLA
    python benchmarks/trainspeed.py --time-pool 2         # the model pooling 2 frames

Each contender is a training run of its own (a new process: TensorFlow's op determinism cannot
be switched off once on) on the same store of rendered notes (``benchmarks/extract.py``'s,
made here when missing); its rate is the median over its epochs after the first (which carries
graph tracing). Contenders alternate, round after round. The model is the default one, or
the one ``--time-pool``, ``--width`` and ``--weight-decay`` make (the ``TrainConfig`` fields
``timbremap train`` takes with those names), the same for every contender; a revision whose
``TrainConfig`` lacks one of them runs its own model there, and the output says so.

The table gives each contender's median rate over the rounds, its ratio to the first
contender's median, and the range of the ratios round by round (each round's runs side by
side): where that range spans 1, the contenders are not told apart ("no difference").
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from analysis.arguments import positive_int

RUN = """
import sys
from pathlib import Path
import dataclasses
import json
import keras
from training.config import TrainConfig
from training.train import train
if sys.argv[6] == "on":  # Keras's choice for TensorFlow: no XLA on a machine without a GPU
    compile_ = keras.Model.compile
    keras.Model.compile = lambda model, *a, **k: compile_(model, *a, **k, jit_compile=True)
model = json.loads(sys.argv[7])
known = {field.name for field in dataclasses.fields(TrainConfig)}
print("lacks: " + json.dumps(sorted(set(model) - known)), flush=True)
config = TrainConfig(epochs=int(sys.argv[4]), steps_per_epoch=int(sys.argv[5]),
                     budget_minutes=None, patience=1000, deterministic=sys.argv[3] == "on",
                     **{name: value for name, value in model.items() if name in known})
train(Path(sys.argv[1]), Path(sys.argv[2]), config, overwrite=True, verbose=0)
"""


REPO = Path(__file__).resolve().parents[1]
#: ``TrainConfig`` fields that shape the model and its optimiser, given as the options of
#: ``timbremap train`` with the same names (``benchmarks/gpu.py`` takes them too).
MODEL_OPTIONS = ("time_pool", "width", "weight_decay")


def add_model_options(parser: argparse.ArgumentParser):
    """``--time-pool``, ``--width``, ``--weight-decay``: :data:`MODEL_OPTIONS`, with today's
    defaults."""
    from training.config import TrainConfig
    defaults = TrainConfig()
    group = parser.add_argument_group("the model (as timbremap train takes it)")
    for name in MODEL_OPTIONS:
        value = getattr(defaults, name)
        group.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value,
                           help=f"TrainConfig.{name} (default {value:g})")


def model_options(args) -> dict:
    """The :data:`MODEL_OPTIONS` given on the command line, as ``TrainConfig`` fields."""
    return {name: getattr(args, name) for name in MODEL_OPTIONS}


def model_flags(model: dict) -> str:
    """``--time-pool 2 --width 16 --weight-decay 0.05`` for :func:`model_options`."""
    return " ".join(f"--{name.replace('_', '-')} {value:g}" for name, value in model.items())


def one_run(code: Path, store: Path, model_dir: Path, determinism: str, epochs: int,
            steps: int, xla: str = "auto", model: Optional[dict] = None) -> Tuple[float, list]:
    """Notes per second of one run of the timbremap in ``code`` (``xla='on'``: compiled with
    XLA; ``'auto'``: as Keras chooses) on the model of ``model`` (``TrainConfig`` fields): the
    median of its epochs after the first; and the fields of ``model`` that revision lacks."""
    done = subprocess.run([sys.executable, "-c", RUN, str(store.resolve()),
                           str(model_dir.resolve()), determinism, str(epochs), str(steps), xla,
                           json.dumps(model or {})], check=True, cwd=code, text=True,
                          stdout=subprocess.PIPE,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(code)})
    lacks = next(json.loads(line[len("lacks: "):]) for line in done.stdout.splitlines()
                 if line.startswith("lacks: "))
    with (model_dir / "history.csv").open(newline="") as fh:
        seconds = [float(row["seconds"]) for row in csv.DictReader(fh)][1:]
    return steps * 64 / float(np.median(seconds)), lacks


def compare(rates: dict) -> list:
    """For each contender (name -> its rate in each round), against the first: ``(name,
    median rate, ratio of the medians, lowest and highest ratio of one round's rates,
    verdict)``; the verdict is "no difference" where the rounds' ratios span 1."""
    first = np.asarray(next(iter(rates.values())), dtype=float)
    rows = []
    for name, values in rates.items():
        values = np.asarray(values, dtype=float)
        ratios = values / first
        low, high = float(ratios.min()), float(ratios.max())
        verdict = ("faster in every round" if low > 1 else "slower in every round" if high < 1
                   else "no difference (the rounds' ratios span 1)")
        rows.append((name, float(np.median(values)),
                     float(np.median(values) / np.median(first)), low, high, verdict))
    return rows


def timed(contenders: dict, args, store: Path, model: dict):
    """Each contender's rate in each round, its runs alternating with the others', and what
    each one's ``TrainConfig`` lacks of ``model``."""
    rates = {name: [] for name in contenders}
    lacking = {}
    for round_ in range(args.rounds):
        for name, (code, switch, xla) in contenders.items():
            rate, lacking[name] = one_run(code, store, args.workdir / "trainspeed-model", switch,
                                          args.epochs, args.steps, xla, model)
            rates[name].append(rate)
        print(f"round {round_ + 1}: " + ", ".join(f"{r[-1]:.1f}" for r in rates.values())
              + " notes/s", flush=True)
    return rates, lacking


@contextlib.contextmanager
def checkout(revision: str, workdir: Path):
    """A git worktree of ``revision`` in ``workdir``, removed (and unregistered) on leaving."""
    path = (workdir / f"trainspeed-{revision}").resolve()
    remove = ["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)]
    if path.exists():  # a run killed before it removed its worktree
        subprocess.run(remove, check=True)
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--force", "--detach", str(path),
                    revision], check=True)
    try:
        yield path
    finally:
        if subprocess.run(remove).returncode:  # said on stderr; the run's error goes on
            print(f"{path}: not removed; remove it with git {' '.join(remove[3:])}",
                  file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--workdir", type=Path, default=Path("bench-out/extract"))
    parser.add_argument("--n", type=positive_int, default=3000, help="notes in the store")
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps", type=positive_int, default=20, help="batches of 64 per epoch")
    parser.add_argument("--against", metavar="REV",
                        help="compare with this git revision (both without op determinism)")
    parser.add_argument("--xla", action="store_true",
                        help="compare Keras's choice (no XLA without a GPU) with XLA, without op "
                             "determinism")
    add_model_options(parser)
    args = parser.parse_args()
    model = model_options(args)
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
    with contextlib.ExitStack() as held:
        if args.against:
            other = held.enter_context(checkout(args.against, args.workdir))
            contenders = {f"revision {args.against}": (other, "off", "auto"),
                          "this checkout": (REPO, "off", "auto")}
        elif args.xla:
            contenders = {"Keras's choice (no XLA without a GPU)": (REPO, "off", "auto"),
                          "XLA (jit_compile=True)": (REPO, "off", "on")}
        else:
            contenders = {"op determinism on (--deterministic)": (REPO, "on", "auto"),
                          "op determinism off (the default)": (REPO, "off", "auto")}
        rates, lacking = timed(contenders, args, store, model)
    first = next(iter(rates))
    print(f"\ntraining steps of 64 notes, {args.n}-note store, {os.cpu_count()} cores, median "
          f"of {args.rounds} rounds; model: "
          + ", ".join(f"{name} {value:g}" for name, value in model.items()))
    for name, lacks in lacking.items():
        if lacks:
            print(f"({name} has no {', '.join(lacks)}: it runs its own model there)")
    print(f"\n| training | notes/s | x {first} (ratio of the medians) | x {first}, "
          f"round by round | |")
    print("|---|---:|---:|---|---|")
    for name, median, ratio, low, high, verdict in compare(rates):
        print(f"| {name} | {median:.1f} | {ratio:.2f} | {low:.2f}-{high:.2f} | "
              f"{verdict if name != first else ''} |")
    print(f"\nrerun: python benchmarks/trainspeed.py --n {args.n} --rounds {args.rounds} "
          f"--epochs {args.epochs} --steps {args.steps} --workdir {args.workdir}"
          + (f" --against {args.against}" if args.against else "")
          + (" --xla" if args.xla else "") + f" {model_flags(model)}")


if __name__ == "__main__":
    sys.exit(main())
