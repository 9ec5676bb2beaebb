"""A store larger than RAM: build rate and peak memory at 100,000 notes against 3,000, and
training read cold from disk.

    python benchmarks/scale.py                          # 100,000 notes, ~25 GiB in --workdir
    python benchmarks/scale.py --n 20000 --workdir /tmp/scale

The notes are rendered ones (TimGM6mb, ``benchmarks/extract.py``'s), linked under new names
until the train split holds ``--n``: the build reads and transforms every one. Each build is
``timbremap build ROOT STORE --jobs 2`` in a process of its own; its peak memory is that
process's (and its threads') largest resident set, and its resident memory is sampled while it
runs (flat while the notes are transformed: the features waiting for the disk stay within the
build's ring, ``featurestore.workers.Ring``). Then, with the store's pages dropped from
the page cache (``posix_fadvise(DONTNEED)``: no root needed), it measures the disk's sequential
read rate on the store file, the rate of model-ready training batches (``StoreBatches``,
balanced, mixup on) read cold, notes drawn one by one (``--loader mmap``) and in the block
order (``--loader block``, what ``auto`` picks for a split larger than half the memory), and
one training epoch of ``timbremap train`` (20,000 notes, its default loader) from the cold
store. Ends with the table, the paper figures for NSynth's 289,205 training
notes, and the command to rerun it. Not part of the test suite.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from analysis.arguments import positive_int


NSYNTH_TRAIN = 289_205


def linked_root(rendered: Path, root: Path, n: int) -> Path:
    """A train split of ``n`` notes: the rendered ones, again and again under new names (each
    copy numbered ``-rK``), taken a family at a time in turn so that any ``n`` hold every
    family, and a valid split of 512 of them (notes train holds too: what is timed is reading,
    and a build warns of them)."""
    from featurestore.nsynth import write_split
    from featurestore.splitfolder import read_split
    usable, _ = read_split(rendered / "train")
    seen, ranked = Counter(), []  # each note's place among its family's
    for example, wav in usable:
        ranked.append((seen[example.instrument_family], example.instrument_family, example, wav))
        seen[example.instrument_family] += 1
    usable = [(example, wav) for *_, example, wav in sorted(ranked, key=lambda r: r[:2])]
    shutil.rmtree(root, ignore_errors=True)
    for split, count in (("train", n), ("valid", 512)):
        (root / split / "audio").mkdir(parents=True)
        examples = {}
        for i in range(count):
            example, wav = usable[i % len(usable)]
            name = f"{example.note_str}-r{i // len(usable)}"
            os.symlink(wav.resolve(), root / split / "audio" / f"{name}.wav")
            examples[name] = dataclasses.replace(example, note_str=name)
        write_split(root / split, examples)
    return root


def resident_mib(pid: int) -> float:
    """A process's resident memory now (Linux's ``/proc``; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmRSS"))
    except (OSError, StopIteration):
        return float("nan")


def timed_build(root: Path, store: Path) -> dict:
    """``timbremap build`` in a process of its own: seconds, notes/s (train and valid),
    peak resident memory, the resident memory at a quarter, half and three quarters of the
    build's time (sampled every 0.1 s), the train split's bytes."""
    shutil.rmtree(store, ignore_errors=True)
    getattr(os, "sync", lambda: None)()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "analysis.cli", "build", str(root),
                             str(store), "--jobs", "2", "-q"], stdout=subprocess.DEVNULL)
    samples = []
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        samples.append((time.perf_counter() - start, resident_mib(proc.pid)))
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    during = [next((mib for t, mib in samples if t >= part * seconds), float("nan"))
              for part in (0.25, 0.5, 0.75)]
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"build of {root} failed")
    n = sum(json.loads(subprocess.run([sys.executable, "-c", (
        "import h5py, json, sys; f = h5py.File(sys.argv[1]); "
        "print(json.dumps(int(f['spectra'].shape[0])))"), str(store / f"{split}.h5")],
        capture_output=True, text=True, check=True).stdout) for split in ("train", "valid"))
    return {"notes": n, "seconds": seconds, "rate": n / seconds,
            "peak_mib": usage.ru_maxrss / 1024, "during_mib": during,
            "bytes": (store / "train.h5").stat().st_size}


def drop_cached(path: Path):
    """Drop a file's pages from the page cache (they are clean: nothing is lost)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def sequential_read(path: Path, seconds: float = 10.0) -> float:
    """MB/s reading ``path`` from its start, cold, for at most ``seconds``."""
    drop_cached(path)
    done, start = 0, time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        while time.perf_counter() - start < seconds:
            block = fh.read(1 << 24)
            if not block:
                break
            done += len(block)
    return done / 1e6 / (time.perf_counter() - start)


def cold_batches(path: Path, batches: int, loader: str, block_mib: float = None,
                 threads: int = 2) -> tuple:
    """Notes/s of balanced model-ready training batches of 64 (``StoreBatches``, mixup on)
    read cold by ``threads`` threads, as ``timbremap train``'s two workers read them, in a
    first epoch and in a second one (the block order's buffers then reuse the first's memory)
    of ``batches`` batches each, the file's pages dropped before each; the block order's runs
    of ``block_mib`` (default: ``TrainConfig``'s)."""
    from concurrent.futures import ThreadPoolExecutor

    from training.config import TrainConfig
    from training.data import StoreBatches
    data = StoreBatches(path, 64, shuffle=True, steps=batches, seed=0, mixup_alpha=0.2,
                        loader=loader, block_mib=block_mib or TrainConfig().block_mib)
    rates = []
    for epoch in (0, 1):
        data.set_epoch(epoch)
        drop_cached(path)
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(data.__getitem__, range(batches)):
                pass
        rates.append(batches * 64 / (time.perf_counter() - start))
    data.close()
    return tuple(rates)


def cold_epoch(store: Path, model_dir: Path, n: int) -> float:
    """Training notes/s of one ``timbremap train`` epoch (``n`` notes, 20,000 at most) from
    the cold store."""
    drop_cached(store / "train.h5")
    subprocess.run([sys.executable, "-m", "analysis.cli", "train", str(store), str(model_dir),
                    "--epochs", "1", "--overwrite", "-q"], check=True,
                   stdout=subprocess.DEVNULL)
    with (model_dir / "history.csv").open(newline="") as fh:
        seconds = float(next(csv.DictReader(fh))["seconds"])
    from training.config import EPOCH_NOTES
    return min(n, EPOCH_NOTES) / seconds


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--n", type=positive_int, default=100_000)
    parser.add_argument("--small", type=positive_int, default=3000)
    parser.add_argument("--workdir", type=Path, default=Path("bench-out/scale"))
    parser.add_argument("--batches", type=positive_int, default=313,
                        help="cold batches of 64 an epoch, two epochs timed for each loader "
                             "(default: a training epoch, 20,000 notes)")
    parser.add_argument("--block-mib", type=float, nargs="*", default=[2.0, 8.0],
                        help="other runs of the block order timed besides the default's")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from extract import make_root
    args.workdir.mkdir(parents=True, exist_ok=True)
    rendered = make_root(args.workdir, args.small).parent / "rendered"
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    builds = {}
    for n in (args.small, args.n):
        root = linked_root(rendered, args.workdir / f"root{n}", n)
        builds[n] = timed_build(root, args.workdir / f"store{n}")
        shutil.rmtree(root)
        print(json.dumps({"n": n, **builds[n]}), flush=True)
    big = args.workdir / f"store{args.n}"
    disk = sequential_read(big / "train.h5")
    from training.config import TrainConfig
    default_mib = TrainConfig().block_mib
    batches = {"mmap": cold_batches(big / "train.h5", args.batches, "mmap")}
    batches.update({mib: cold_batches(big / "train.h5", args.batches, "block", mib)
                    for mib in sorted({default_mib, *args.block_mib})})
    epoch = cold_epoch(big, args.workdir / "model", args.n)
    small, large = builds[args.small], builds[args.n]
    per_note = large["bytes"] / large["notes"]
    print(f"\n{os.cpu_count()} cores, {ram / 2**30:.1f} GiB of RAM\n")
    print("| train split | build notes/s (whole command, valid's 512 too) | resident at 1/4, "
          "1/2, 3/4 of the build | peak memory | store | store / RAM |")
    print("|---|---:|---:|---:|---:|---:|")
    for n, b in builds.items():
        during = ", ".join(f"{mib:,.0f}" for mib in b["during_mib"])
        print(f"| {n:,} notes | {b['rate']:,.0f} | {during} MiB | {b['peak_mib']:,.0f} MiB | "
              f"{b['bytes'] / 2**30:.1f} GiB | {b['bytes'] / ram:.2f} |")
    print(f"\npeak memory {large['peak_mib'] / small['peak_mib']:.2f}x at "
          f"{args.n / args.small:.0f}x the notes; build rate {large['rate'] / small['rate']:.2f}x")
    print(f"\nread cold from the {large['bytes'] / 2**30:.1f} GiB store:\n")
    print("| what | rate |")
    print("|---|---:|")
    print(f"| the disk, sequential read of the store file | {disk:,.0f} MB/s "
          f"({disk * 1e6 / per_note:,.0f} notes/s) |")
    print(f"| model-ready training batches of 64, balanced, notes one by one (`--loader mmap`), "
          f"2 threads, first epoch; second | {batches['mmap'][0]:,.0f}; "
          f"{batches['mmap'][1]:,.0f} notes/s |")
    for mib in sorted(m for m in batches if m != "mmap"):
        print(f"| model-ready training batches of 64, balanced, block order (`--loader block "
              f"--block-mib {mib:g}`{', the default' if mib == default_mib else ''}), 2 threads, "
              f"first epoch; second | {batches[mib][0]:,.0f}; {batches[mib][1]:,.0f} notes/s |")
    print(f"| one training epoch ({min(args.n, 20000):,} notes, with its validation), "
          f"`timbremap train` (`--loader auto`) | {epoch:,.0f} notes/s |")
    disk_notes = disk * 1e6 / per_note
    steady, first = batches[default_mib][1], batches[default_mib][0]
    print(f"\ncold model-ready batches: {steady:,.0f} notes/s, "
          f"{100 * steady / disk_notes:.0f} % of the disk's sequential rate (the second "
          f"epoch; the first, its buffers' memory new: {first:,.0f} notes/s, "
          f"{100 * first / disk_notes:.0f} %; one by one: {batches['mmap'][1]:,.0f} notes/s, "
          f"{100 * batches['mmap'][1] / disk_notes:.0f} %)")
    mel = 251 * 128 * 2
    print(f"\nNSynth's {NSYNTH_TRAIN:,} training notes at these rates: STFT store "
          f"{NSYNTH_TRAIN * per_note / 1e9:.1f} GB ({NSYNTH_TRAIN * mel / 1e9:.1f} GB as 128 "
          f"mel bands), built in {NSYNTH_TRAIN / large['rate'] / 60:.0f} minutes with --jobs 2")
    print(f"\nrerun: python benchmarks/scale.py --n {args.n} --small {args.small} "
          f"--workdir {args.workdir} --batches {args.batches} --block-mib "
          f"{' '.join(f'{m:g}' for m in args.block_mib)}")


if __name__ == "__main__":
    sys.exit(main())
