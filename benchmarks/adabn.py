"""Adaptive batch normalisation (AdaBN, Li et al. 2016) on the cross-bank protocol's models: the
batch-norm layers' statistics (every layer's, or the first K's with ``--layers K``) recomputed
on the notes being scored (no labels), one bank at a time, against the statistics of training.

    python benchmarks/adabn.py                         # the first form's default, seeds 0 1
    python benchmarks/adabn.py --form select-fm --seeds 0 1 --workdir bench-out/quality

Reads the models and stores that ``benchmarks/quality.py`` left in --workdir (run it first, with
the same form); trains nothing. A split's notes are grouped by bank (a SoundFont's programs, or
one engine's instruments: ``instrument // 1000``), and each group is scored as it is and after
adapting to it, layer by layer in the network's order: a layer's mean and variance become those
of its inputs over the group's notes, the layers before it already adapted. A choice is made
on the selection split's groups alone; the reported banks are printed beside them.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Optional

import numpy as np

from analysis.arguments import positive_int

#: The splits scored: the form's selection split, OPL-3 (the form's test split) and Merlin's
#: unheard programs (a store of their own): (store name, split, what it is).
SCORED = (("store", "valid", "selection"), ("store", "test", "OPL-3"),
          ("store-test-merlin", "test", "Merlin (unheard)"))


def batches(reader, rows: np.ndarray, batch_size: int = 128):
    """The spectra of ``rows`` (sorted indices), ``batch_size`` notes at a time."""
    for start in range(0, len(rows), batch_size):
        x, _ = reader.batch(rows[start:start + batch_size])
        yield x


def adapt(model, reader, rows: np.ndarray, layers: Optional[int] = None):
    """Set the first ``layers`` batch-norm layers' moving mean and variance (default: every
    layer's) to those of their inputs over ``rows``, in the network's order (each layer sees
    the adapted layers before it)."""
    import keras
    norms = [k for k in model.layers if isinstance(k, keras.layers.BatchNormalization)]
    for layer in norms[:layers]:
        upto = keras.Model(model.input, layer.input)
        total = squares = 0.0
        count = 0
        for x in batches(reader, rows):
            y = np.asarray(upto(x, training=False), np.float64)
            y = y.reshape(-1, y.shape[-1])
            total, squares, count = total + y.sum(0), squares + (y * y).sum(0), count + len(y)
        mean = total / count
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(np.maximum(squares / count - mean ** 2, 0).astype(np.float32))


def accuracy(model, reader, rows: np.ndarray, truth: np.ndarray) -> float:
    """Accuracy on the notes ``rows`` of ``reader``, whose labels as the model's outputs are
    ``truth`` (:meth:`training.modeldir.TrainedModel.label_outputs`)."""
    predicted = np.concatenate([np.argmax(model.predict_on_batch(x), axis=1)
                                for x in batches(reader, rows)])
    return float(np.mean(predicted == truth[rows]))


def score(model_dir: Path, store: Path, split: str, layers: Optional[int] = None) -> dict:
    """Bank -> {n, as trained, adapted}: accuracy on each bank's notes of a split."""
    import h5py

    from featurestore.reader import SpectraReader
    from featurestore.store import read_params, split_path
    from featurestore.synth import ENGINES, synth_instruments
    from training.modeldir import load_trained
    engines = {synth_instruments(e, per_family=1)[0].id // 1000: e for e in ENGINES}
    where = split_path(store, split)
    with h5py.File(where, "r") as f:
        banks, params = f["instrument"][:] // 1000, read_params(f)
    rows_of = {int(b): np.flatnonzero(banks == b) for b in np.unique(banks)}
    result = {}
    trained = load_trained(model_dir)
    trained.check_features(params, where)
    with SpectraReader(where) as reader:
        truth = trained.label_outputs(reader.label_names, reader.labels, where)[reader.labels]
        for bank, rows in rows_of.items():
            model = load_trained(model_dir).model  # each bank from the trained statistics
            before = accuracy(model, reader, rows, truth)
            adapt(model, reader, rows, layers)
            name = f"the {engines[bank]} engine's" if bank in engines else f"SoundFont bank {bank}"
            result[name] = {"n": len(rows), "as trained": before,
                            "adapted": accuracy(model, reader, rows, truth)}
    return result


def form(text: str, quality) -> str:
    """A form of the protocol (``quality.form_of``'s names) as given on the command line.

    Raises
    ------
    argparse.ArgumentTypeError
        For text that names none.
    """
    variant, count = re.fullmatch(r"(.*?)(?:-(\d+)each)?", text).groups()
    if variant in quality.VARIANTS and (
            count is None or int(count) > 0 and quality.form_of(variant, int(count)) == text):
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} names no form of the protocol (forms: {', '.join(quality.VARIANTS)}, or "
        f"one with engines and N instruments a family: synth-4each)")


def main():
    import quality  # benchmarks/quality.py, beside this script
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--workdir", type=Path, default=Path("bench-out/quality"))
    parser.add_argument("--form", default="synth", type=lambda text: form(text, quality),
                        help="the form of the protocol whose models are read (quality.py's "
                             "form: synth, select-fm, train-both, soundfonts, or one of the "
                             "first three with N instruments a family: synth-4each)")
    parser.add_argument("--recipe", default="default", choices=list(quality.RECIPES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--layers", type=positive_int, metavar="K",
                        help="adapt the first K batch-norm layers only (default: all)")
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        model_dir = quality.model_dir_of(args.workdir, args.recipe, seed, args.form)
        if not (model_dir / "model.keras").is_file():
            parser.error(f"{model_dir}: no model; run benchmarks/quality.py with this form, "
                         f"recipe and seed first")
        for store_name, split, what in SCORED:
            store = args.workdir / (quality.named(store_name, args.form)
                                    if store_name == "store" else store_name)
            for bank, row in score(model_dir, store, split, args.layers).items():
                rows.append({"seed": seed, "split": what, "bank": bank, **row})
                print(json.dumps(rows[-1]), flush=True)
    print("\n| split | bank | notes | seed | as trained | adapted | change |\n"
          "|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['split']} | {r['bank']} | {r['n']} | {r['seed']} | {r['as trained']:.3f} | "
              f"{r['adapted']:.3f} | {r['adapted'] - r['as trained']:+.3f} |")
    print(f"\nrerun: python benchmarks/adabn.py --form {args.form} --recipe {args.recipe} "
          f"--seeds {' '.join(map(str, args.seeds))} --workdir {args.workdir}"
          + (f" --layers {args.layers}" if args.layers else ""))


if __name__ == "__main__":
    main()
