"""What writing results into a copy of the split costs ``embed``: the whole command against the
copy alone, on one store, in one run.

    python benchmarks/writeback.py                  # 3,000 notes in train (about 740 MiB)
    python benchmarks/writeback.py --notes 8000 --work /tmp/writeback

``embed`` and ``tsne`` write their results into a copy of the split renamed over it
(``featurestore/writeback.py``), so that a kill or a full disk never leaves a split HDF5 cannot
open. The copy reads and writes the split's bytes once. This builds a store of synthetic tones
(``tests/helpers.py``, in two class folders), trains the default model for one step (its
inference costs what a trained one's does), times ``embed_store`` on train, then the copy alone
(``results_file`` entered and left with nothing written: the copy and rename ``embed`` makes),
each ``--repeats`` times, and prints the copy's share of the command and what it adds to a
write in place (the command's time without the copy). Both are linear in the notes, so the
shares hold for any size on the same machine and file system; on XFS and Btrfs the copy shares
extents and costs next to nothing. The page cache is warm for both (the split was just written
or read).
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    sys.path.insert(0, str(REPO))  # the checkout's packages, installed or not
    sys.path.insert(0, str(REPO / "tests"))
    from analysis.arguments import positive_int
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--notes", type=positive_int, default=3000, help="notes in train")
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--work", type=Path, default=REPO / "bench-out" / "writeback",
                        help="scratch folder (its contents are replaced)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import soundfile as sf
    from helpers import SR, tone

    from analysis.embed import embed_store
    from featurestore.writeback import results_file
    from featurestore.build import build_store
    from training.config import TrainConfig
    from training.train import train

    shutil.rmtree(args.work, ignore_errors=True)
    root = args.work / "notes"
    for split, n in (("train", args.notes), ("valid", 8), ("test", 8)):
        for i in range(n):
            label = ("bell", "drum")[i % 2]
            (root / split / label).mkdir(parents=True, exist_ok=True)
            sf.write(root / split / label / f"{i}.wav", tone(10 + i % 200), SR)
    store, model = args.work / "store", args.work / "model"
    build_store(root, store, jobs=2, progress=False)
    shutil.rmtree(root)
    train(store, model, TrainConfig(epochs=1, steps_per_epoch=1, budget_minutes=None, seed=0),
          verbose=0)
    size = (store / "train.h5").stat().st_size
    embed, copy = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        embed_store(store, model, ["train"], progress=False)
        embed.append(time.perf_counter() - start)
        start = time.perf_counter()
        with results_file(store, "train", 0):
            pass
        copy.append(time.perf_counter() - start)
    e, c = statistics.median(embed), statistics.median(copy)
    print(f"writeback cost, {args.notes} notes in train ({size / 2**20:.0f} MiB), "
          f"{os.cpu_count()} cores, median of {args.repeats}")
    print()
    print("| what | seconds (median) | runs | notes/s |")
    print("|---|---:|---|---:|")
    print(f"| embed of train, copy included | {e:.2f} | {', '.join(f'{t:.2f}' for t in embed)} "
          f"| {args.notes / e:,.0f} |")
    print(f"| the copy and rename alone | {c:.2f} | {', '.join(f'{t:.2f}' for t in copy)} "
          f"| {args.notes / c:,.0f} |")
    print()
    print(f"the copy is {c / e:.0%} of embed's time, and adds {c / (e - c):.0%} to a write in "
          f"place ({size / 2**20 / c:,.0f} MiB/s)")
    print(f"rerun: python benchmarks/writeback.py --notes {args.notes} --repeats {args.repeats} "
          f"--work {shlex.quote(str(args.work))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
