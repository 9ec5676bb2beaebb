"""Test-time averaging over frequency shifts, on the quality protocol's trained models: each
note's probabilities averaged over its mel bands shifted by -1..+1 (and -2..+2) bands, the
shifts training augments with, against the note as it is.

    python benchmarks/quality.py --recipes default --seeds 0 1   # trains the models first
    python benchmarks/shift_average.py --workdir bench-out/quality
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def shifted_probabilities(model, spectra, shifts):
    """``{shift: (B, 11)}``: the model's probabilities with its bands shifted by each of
    ``shifts`` (bands shifted in repeat the edge, as :class:`FrequencyShift` does)."""
    import keras
    front = keras.Model(model.inputs, model.get_layer("bands").output)
    back = keras.Model(model.get_layer("shift").output, model.output)
    bands = np.asarray(front.predict_on_batch(spectra))
    n = bands.shape[-1]
    return {s: np.asarray(back.predict_on_batch(bands[..., np.clip(np.arange(n) - s, 0, n - 1)]))
            for s in shifts}


def main():
    from featurestore.store import SpectraReader
    from training.modeldir import load_trained
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("bench-out/quality"))
    parser.add_argument("--recipe", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    splits = {"selection (valid)": args.workdir / "store/valid.h5",
              "OPL-3": args.workdir / "store/test.h5",
              "Merlin (unheard)": args.workdir / "store-test-merlin/test.h5"}
    shifts = (-2, -1, 0, 1, 2)
    print("| seed | split | as it is | shifts -1..1 | shifts -2..2 |\n|---|---|---:|---:|---:|")
    for seed in args.seeds:
        model = load_trained(args.workdir / f"model-{args.recipe}-seed{seed}").model
        for name, path in splits.items():
            with SpectraReader(path) as reader:
                parts = [shifted_probabilities(model, x, shifts)
                         for x in reader.iter_batches(256)]
                labels = reader.labels
            p = {s: np.concatenate([part[s] for part in parts]) for s in shifts}
            accuracy = lambda q: float((q.argmax(axis=1) == labels).mean())  # noqa: E731
            print(f"| {seed} | {name} | {accuracy(p[0]):.3f} | "
                  f"{accuracy(p[-1] + p[0] + p[1]):.3f} | {accuracy(sum(p.values())):.3f} |")
    print(f"\nrerun: python benchmarks/shift_average.py --workdir {args.workdir} --recipe "
          f"{args.recipe} --seeds {' '.join(map(str, args.seeds))}")


if __name__ == "__main__":
    main()
