"""Fault injection: ``build``, ``embed``, ``tsne`` and ``train`` killed with SIGKILL at random
moments, a disk that fills up, and a store on a read-only file system.

    python benchmarks/faults.py                                  # 20 trials of each command
    python benchmarks/faults.py --trials 2 --commands build tsne --work /tmp/faults

Data: synthetic tones in NSynth's layout (``tests/helpers.py``; 68 train, 40 valid, 40 test
notes of 4 s, ``--notes``). First every command runs once uninterrupted, timed: the reference
results and the durations. Then each trial starts the command (``timbremap ...`` in its own session),
sends SIGKILL to its whole process group at a moment drawn uniformly between 0 and the
uninterrupted run's duration (numpy generator seeded with ``--seed``), waits until no process
of the group is left, and checks:

files open
    every split file under its final name (``STORE/SPLIT.h5``) opens with h5py and every
    dataset in it reads; in a model folder ``model.keras`` and ``best.keras`` are complete zip
    archives, ``config.json`` parses, every row of ``history.csv`` has every column,
    ``curves.png`` ends with its IEND chunk, and the HDF5 and JSON files in ``backup/`` open
    (files under a temporary name, ``.NAME.partial...``, are left out: they are not results).
no half-written
    every split file under its final name is the file the command started from or the
    uninterrupted run's, never half of each: it holds exactly the datasets of one of them (the
    uninterrupted run's, for ``build``, which starts from none), each equal, bit for bit with its
    attributes, to the dataset of the same name in the uninterrupted run's file (the build's
    root attribute ``created`` excluded: the time of the build); a ``model.keras`` that exists
    has the uninterrupted run's weights.
rerun ok
    the same command run again exits 0 (``train``: ``timbremap train STORE MODEL --resume``,
    the documented way to continue a killed run). A trial whose command had finished before
    its kill moment counts as not killed; its train rerun is not applicable.
equal to uninterrupted
    after the rerun, every split file has exactly the reference's datasets, bit for bit with
    their attributes (except ``created``); ``tsne`` ran with the same ``--seed``; ``train``: the
    weights of ``model.keras`` and the history's epoch, loss and val_loss equal the
    uninterrupted run's (the largest weight difference is reported when they do not), and no
    ``backup/`` is left.

Two more faults, on file systems mounted for the purpose (root only; reported as not run
where mounting is refused):

disk full
    a 128 MiB tmpfs holds the command's output, filled with a filler file up to ``room`` bytes
    free (build: half the store; train: one model file; embed, tsne: none). The command must
    exit 1 with one error line that names a file on that disk and no traceback; the files then
    present pass the two checks above; after the filler is deleted the same command (train:
    ``--resume``) exits 0 and gives the uninterrupted result.
read-only store
    a finished store (embeddings, map) bind-mounted read-only. ``embed`` and ``tsne`` must exit
    1 with one error line naming the file; ``inspect``, ``evaluate`` and ``place`` must exit 0;
    no byte of the store changes.

Exit status 1 when any check of any trial failed. Failures are listed after the tables with
the command line, the kill moment and what was found.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import h5py
import numpy as np

from analysis.arguments import positive_int

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("build", "embed", "tsne", "train")
SPLITS = ("train", "valid", "test")
#: A short training run: three epochs, so kills land before, between and after epochs.
TRAIN_ARGS = ("--epochs", "3", "--steps-per-epoch", "2", "--batch-size", "4", "--seed", "1",
              "--deterministic")
#: 24 test notes are too few for the default perplexity of 30.
TSNE_PERPLEXITY = 5
TSNE_ARGS = ("--split", "test", "--seed", "0", "--perplexity", str(TSNE_PERPLEXITY))
#: Root attributes that legitimately differ between two builds of the same notes.
VOLATILE_ROOT_ATTRS = frozenset({"created", "computed"})
#: Dataset attributes that differ in their last bits between two uninterrupted runs with the
#: same seed (openTSNE sums the KL divergence over threads in no fixed order), compared to
#: this relative tolerance instead of bit for bit.
ROUNDED_ATTRS = {("tsne", "kl_divergence"): 1e-9}
#: Lines TensorFlow's C++ logging writes before it reads TF_CPP_MIN_LOG_LEVEL.
NOISE = ("I0000 ", "W0000 ", "WARNING: All log messages before absl",
         "To enable the following instructions")
DISK_BYTES = 128 * 2**20
#: Notes per split (train, valid, test); 68 is the most ``tests/helpers.py`` makes.
NOTES = (68, 40, 40)


# ------------------------------------------------------------------ running a command
@dataclass
class Run:
    """One run of a command."""

    argv: List[str]
    returncode: Optional[int]  # None: killed by us
    seconds: float
    stderr: str
    killed: bool = False

    @property
    def error_lines(self) -> List[str]:
        """The ``timbremap: error: ...`` lines of stderr."""
        return [line for line in self.stderr.splitlines()
                if line.startswith("timbremap: error")]

    def tail(self, lines: int = 3) -> str:
        """The last ``lines`` lines of stderr (TensorFlow's start-up lines left out)."""
        kept = [line for line in self.stderr.strip().splitlines()
                if line.strip() and not line.startswith(NOISE)]
        return " | ".join(kept[-lines:])

    @property
    def messages(self) -> List[str]:
        """The ``timbremap: ...`` lines of stderr."""
        return [line for line in self.stderr.splitlines() if line.startswith("timbremap:")]


def timbremap(*args) -> List[str]:
    """The argv of ``timbremap ARGS`` with this interpreter's installation."""
    script = Path(sys.executable).with_name("timbremap")
    if script.is_file():
        return [str(script), *map(str, args)]
    return [sys.executable, "-c", "import sys; from analysis.cli import main; sys.exit(main())",
            *map(str, args)]


def command_line(argv: Sequence[str]) -> str:
    """``argv`` as a shell line, with ``timbremap`` for the console script."""
    words = list(argv)
    if words and Path(words[0]).name == "timbremap":
        words[0] = "timbremap"
    return shlex.join(words)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` other than a zombie is left (Linux ``/proc``)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def run(argv: Sequence[str], kill_at: Optional[float] = None, timeout: float = 600.0,
        cwd: Optional[Path] = None) -> Run:
    """Run ``argv`` in a new session; with ``kill_at``, SIGKILL its process group then.

    Returns once no process of the group is left (a killed build's worker processes too), so
    every file the command had open is closed.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.monotonic()
    proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env, cwd=cwd)
    killed = False
    try:
        _, stderr = proc.communicate(timeout=timeout if kill_at is None else kill_at)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        killed = True
        _, stderr = proc.communicate()
        if kill_at is None:
            stderr = f"{stderr or ''}\nfaults.py: killed after running {timeout:.0f} s"
    seconds = time.monotonic() - start
    deadline = time.monotonic() + 30
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.05)
    if killed and proc.returncode != -signal.SIGKILL:  # it had ended just before the kill
        killed = False
    return Run(list(argv), None if killed else proc.returncode, seconds, stderr or "", killed)


def must_run(argv: Sequence[str]) -> Run:
    """Run ``argv`` to the end; raise ``RuntimeError`` when it fails."""
    result = run(argv)
    if result.returncode != 0:
        raise RuntimeError(f"{command_line(argv)} exited {result.returncode}: {result.tail()}")
    return result


# ------------------------------------------------------------------ the uninterrupted runs
@dataclass
class References:
    """The uninterrupted runs every trial is compared with.

    Attributes
    ----------
    root : Path
        The notes (NSynth layout).
    store : Path
        ``build`` of ``root``.
    model : Path
        ``train`` on ``store``.
    embedded : Path
        ``store`` after ``embed`` with ``model``.
    mapped : Path
        ``embedded`` after ``tsne``.
    seconds : dict
        Command -> seconds of its uninterrupted run (the range of kill moments).
    """

    root: Path
    store: Path
    model: Path
    embedded: Path
    mapped: Path
    seconds: Dict[str, float] = field(default_factory=dict)


def make_notes(root: Path, n_train: int = 22, n_valid: int = 11, n_test: int = 24) -> Path:
    """Synthetic tones in NSynth's layout (``tests/helpers.py``), made afresh."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from helpers import make_tone_root
    finally:
        sys.path.remove(str(REPO / "tests"))
    shutil.rmtree(root, ignore_errors=True)
    return make_tone_root(root, n_train, n_valid, n_test)


def build_argv(root: Path, store: Path) -> List[str]:
    return timbremap("build", root, store, "--jobs", "2", "-q")


def embed_argv(store: Path, model: Path) -> List[str]:
    return timbremap("embed", store, model, "-q")


def tsne_argv(store: Path) -> List[str]:
    return timbremap("tsne", store, *TSNE_ARGS, "-q")


def train_argv(store: Path, model: Path, resume: bool = False) -> List[str]:
    return timbremap("train", store, model, *(("--resume",) if resume else TRAIN_ARGS), "-q")


def make_references(work: Path, notes: Sequence[int] = NOTES) -> References:
    """Notes (``notes``: per split), then every command once, uninterrupted and timed, under
    ``work/reference``."""
    ref = work / "reference"
    shutil.rmtree(ref, ignore_errors=True)
    ref.mkdir(parents=True)
    refs = References(make_notes(work / "notes", *notes), ref / "store", ref / "model",
                      ref / "embedded", ref / "mapped")
    refs.seconds["build"] = must_run(build_argv(refs.root, refs.store)).seconds
    refs.seconds["train"] = must_run(train_argv(refs.store, refs.model)).seconds
    shutil.copytree(refs.store, refs.embedded)
    refs.seconds["embed"] = must_run(embed_argv(refs.embedded, refs.model)).seconds
    shutil.copytree(refs.embedded, refs.mapped)
    refs.seconds["tsne"] = must_run(tsne_argv(refs.mapped)).seconds
    return refs


# ------------------------------------------------------------------ checks of a store
@dataclass
class Check:
    """The outcome of one check; ``problems`` says what failed."""

    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, problem: str):
        self.problems.append(problem)


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "O" or b.dtype.kind == "O":
        return a.shape == b.shape and all(x == y for x, y in zip(a.ravel(), b.ravel()))
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def _attr_differences(a, b, skip=frozenset(), rtol: Optional[Dict[str, float]] = None
                      ) -> List[str]:
    """Names of the attributes that differ (``rtol``: name -> relative tolerance)."""
    rtol = rtol or {}

    def equal(name):
        if name in rtol:
            return np.allclose(a[name], b[name], rtol=rtol[name], atol=0.0)
        return _same(a[name], b[name])
    names = (set(a) | set(b)) - set(skip)
    return sorted(name for name in names if name not in a or name not in b or not equal(name))


def _dataset_difference(ds: h5py.Dataset, expected: h5py.Dataset) -> Optional[str]:
    """What differs between two datasets (None: the same values, dtype, shape and attrs)."""
    if ds.shape != expected.shape or ds.dtype != expected.dtype:
        return f"shape/dtype {ds.shape} {ds.dtype} != {expected.shape} {expected.dtype}"
    values, wanted = ds[()], expected[()]
    if not _same(values, wanted):
        if values.dtype.kind == "f":
            diff = np.nanmax(np.abs(values.astype(np.float64) - wanted.astype(np.float64)))
            return f"values differ (largest difference {diff:.3g})"
        return "values differ"
    dataset = ds.name.lstrip("/")
    differing = _attr_differences(ds.attrs, expected.attrs, rtol={
        attr: tol for (name, attr), tol in ROUNDED_ATTRS.items() if name == dataset})
    return f"attrs {', '.join(differing)} differ" if differing else None


def _read_everything(f: h5py.File):
    """Read every dataset of ``f`` in full (raises where one cannot be read)."""
    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            obj[()]
    f.visititems(visit)


def check_split_file(path: Path, expected: Path, opened: Check, whole: Check,
                     complete: Optional[Check] = None, start: Optional[Path] = None):
    """Check one split file under its final name against the uninterrupted run's file.

    Parameters
    ----------
    path, expected : Path
        The file to check and the reference file.
    opened : Check
        Fails when the file does not open or a dataset cannot be read.
    whole : Check
        Fails when a dataset differs from the reference's, or the file holds neither the
        reference's datasets nor those of ``start``.
    complete : Check, optional
        Given after a rerun: fails when the file's datasets are not exactly the reference's.
    start : Path, optional
        The file the command started from, when there was one.
    """
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        opened.fail(f"{path.name} does not open: {err}")
        return
    with f, h5py.File(expected, "r") as ref:
        try:
            _read_everything(f)
        except (OSError, RuntimeError, ValueError) as err:
            opened.fail(f"{path.name}: a dataset cannot be read: {err}")
            return
        names = set(f)
        for name in sorted(names):
            if name not in ref:
                whole.fail(f"{path.name}: /{name} is not in the uninterrupted run's file")
                continue
            difference = _dataset_difference(f[name], ref[name])
            if difference:
                whole.fail(f"{path.name}: /{name}: {difference}")
        differing = _attr_differences(f.attrs, ref.attrs, VOLATILE_ROOT_ATTRS)
        if differing:
            whole.fail(f"{path.name}: root attrs {', '.join(differing)} differ")
        if start is not None:
            with h5py.File(start, "r") as old:
                started = set(old)
        else:
            started = set(ref)
        if names not in (set(ref), started):
            whole.fail(f"{path.name}: half of a change: /{', /'.join(sorted(names))} are "
                       f"neither the datasets it started with nor the uninterrupted run's")
        if complete is not None and names != set(ref):
            missing, extra = sorted(set(ref) - names), sorted(names - set(ref))
            if missing:
                complete.fail(f"{path.name}: {', '.join('/' + n for n in missing)} missing")
            if extra:
                complete.fail(f"{path.name}: leftover {', '.join('/' + n for n in extra)}")


def check_store(store: Path, expected: Path, final: bool = False,
                start: Optional[Path] = None):
    """Check every split file of ``store`` that exists under its final name (against the
    store the command started from, ``start``, too: see :func:`check_split_file`).

    Returns
    -------
    opened, whole, complete : Check
        ``complete`` (only meaningful with ``final``) fails when a split file of the
        reference is missing or differs, or a leftover ``*.partial``/``*.journal`` file is
        there.
    """
    opened, whole, complete = Check(), Check(), Check()
    for split in SPLITS:
        path, ref = store / f"{split}.h5", expected / f"{split}.h5"
        if not ref.is_file():
            continue
        if path.is_file():
            check_split_file(path, ref, opened, whole, complete if final else None,
                             start / f"{split}.h5" if start is not None else None)
        elif final:
            complete.fail(f"{path.name} missing")
    if final:
        for leftover in sorted(store.glob("*.h5.*")):
            complete.fail(f"leftover {leftover.name}")
    return opened, whole, complete


# ------------------------------------------------------------------ checks of a model folder
def _png_complete(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(b"\x89PNG\r\n\x1a\n") and data[-12:-4] == b"\x00\x00\x00\x00IEND"


def _model_files_open(model_dir: Path, opened: Check):
    for name in ("model.keras", "best.keras"):
        path = model_dir / name
        if path.exists():
            try:
                with zipfile.ZipFile(path) as z:
                    bad = z.testzip()
                if bad:
                    opened.fail(f"{name}: member {bad} is damaged")
            except (zipfile.BadZipFile, OSError) as err:
                opened.fail(f"{name} does not open: {err}")
    if (model_dir / "config.json").exists():
        try:
            json.loads((model_dir / "config.json").read_text())
        except ValueError as err:
            opened.fail(f"config.json does not parse: {err}")
    if (model_dir / "history.csv").exists():
        with (model_dir / "history.csv").open(newline="") as fh:
            rows = list(csv.reader(fh))
        if rows and any(len(row) != len(rows[0]) for row in rows[1:]):
            opened.fail("history.csv has an incomplete row")
    if (model_dir / "curves.png").exists() and not _png_complete(model_dir / "curves.png"):
        opened.fail("curves.png is incomplete")
    backup = model_dir / "backup"
    for path in sorted(backup.rglob("*")) if backup.is_dir() else []:
        if path.name.startswith("."):  # being written under a temporary name: not a result
            continue
        try:
            if path.suffix == ".h5":
                with h5py.File(path, "r") as f:
                    _read_everything(f)
            elif path.suffix == ".json":
                json.loads(path.read_text())
        except (OSError, ValueError, RuntimeError) as err:
            opened.fail(f"{path.relative_to(model_dir)} does not open: {err}")


def model_weights(model_dir: Path) -> List[np.ndarray]:
    """The weights of ``MODEL_DIR/model.keras``, loaded as ``timbremap`` loads them."""
    from training.modeldir import load_trained
    return load_trained(model_dir).model.get_weights()


def _history(model_dir: Path) -> List[tuple]:
    with (model_dir / "history.csv").open(newline="") as fh:
        return [(r["epoch"], r["loss"], r["val_loss"]) for r in csv.DictReader(fh)]


def weights_difference(weights: Sequence[np.ndarray], expected: Sequence[np.ndarray]
                       ) -> Optional[float]:
    """0.0 when equal; the largest absolute difference otherwise (inf: other shapes)."""
    if len(weights) != len(expected) or any(u.shape != v.shape
                                            for u, v in zip(weights, expected)):
        return float("inf")
    return max((float(np.max(np.abs(u.astype(np.float64) - v.astype(np.float64))))
                for u, v in zip(weights, expected) if u.size), default=0.0)


def check_model(model_dir: Path, expected: Path, expected_weights, final: bool = False):
    """Check a model folder against the uninterrupted run's (see :func:`check_store`)."""
    opened, whole, complete = Check(), Check(), Check()
    if not model_dir.is_dir():
        if final:
            complete.fail("no model folder")
        return opened, whole, complete
    _model_files_open(model_dir, opened)
    model = model_dir / "model.keras"
    if model.is_file() and opened.ok:
        try:
            difference = weights_difference(model_weights(model_dir), expected_weights)
        except (ValueError, OSError) as err:
            opened.fail(f"model.keras does not load: {err}")
        else:
            target = complete if final else whole
            if difference:
                target.fail(f"model.keras weights differ from the uninterrupted run's (largest "
                            f"difference {difference:.3g})")
            if final and _history(model_dir) != _history(expected):
                complete.fail("history.csv (epoch, loss, val_loss) differs")
    if final:
        for name in ("model.keras", "config.json", "history.csv", "curves.png"):
            if not (model_dir / name).is_file():
                complete.fail(f"{name} missing")
        if (model_dir / "config.json").is_file() and opened.ok:
            if "best_epoch" not in json.loads((model_dir / "config.json").read_text()):
                complete.fail("config.json lacks the finished run's best_epoch")
        if (model_dir / "backup").exists():
            complete.fail("backup/ left")
    return opened, whole, complete


# ------------------------------------------------------------------ kill trials
@dataclass
class Trial:
    """One killed run and what the checks found."""

    command: str
    number: int
    kill_at: float
    argv: List[str]
    rerun_argv: List[str]
    killed: bool = False
    first_rc: Optional[int] = None
    files_open: bool = True
    no_half_written: bool = True
    rerun_ok: Optional[bool] = None  # None: not applicable
    equal: bool = True
    problems: List[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (self.files_open and self.no_half_written and self.rerun_ok is not False
                and self.equal)


def _copy_store(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


def trial_setup(command: str, number: int, refs: References, folder: Path):
    """The command of a trial, its rerun, the folder it writes, the reference for it and the
    store it starts from (None for build and train).

    ``embed`` and ``tsne`` alternate between a store without their result (even trials) and
    one holding the result already, which they replace (odd trials).
    """
    again = number % 2 == 1
    if command == "build":
        store = folder / "store"
        argv = build_argv(refs.root, store)
        return argv, argv, store, refs.store, None
    if command == "embed":
        start = refs.mapped if again else refs.store
        argv = embed_argv(_copy_store(start, folder / "store"), refs.model)
        return argv, argv, folder / "store", refs.mapped if again else refs.embedded, start
    if command == "tsne":
        start = refs.mapped if again else refs.embedded
        argv = tsne_argv(_copy_store(start, folder / "store"))
        return argv, argv, folder / "store", refs.mapped, start
    if command == "train":
        model = folder / "model"
        return (train_argv(refs.store, model), train_argv(refs.store, model, resume=True),
                model, refs.model, None)
    raise ValueError(f"command must be one of {COMMANDS}, got {command!r}")


def _check(command: str, target: Path, expected: Path, ref_weights, final: bool,
           start: Optional[Path] = None):
    if command == "train":
        return check_model(target, expected, ref_weights, final)
    return check_store(target, expected, final, start)


def run_trial(command: str, number: int, kill_at: float, refs: References, folder: Path,
              ref_weights=None) -> Trial:
    """Start ``command``, SIGKILL it at ``kill_at`` seconds, check, rerun, check again."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    argv, rerun_argv, target, expected, start = trial_setup(command, number, refs, folder)
    trial = Trial(command, number, kill_at, argv, rerun_argv)
    limit = max(300.0, 20 * refs.seconds[command])
    first = run(argv, kill_at=kill_at, timeout=limit)
    trial.killed, trial.first_rc = first.killed, first.returncode
    if not first.killed and first.returncode != 0:
        trial.problems.append(f"ended by itself with exit {first.returncode} before the kill: "
                              f"{first.tail()}")
        trial.rerun_ok = False
    opened, whole, _ = _check(command, target, expected, ref_weights, final=False, start=start)
    trial.files_open, trial.no_half_written = opened.ok, whole.ok
    trial.problems += [f"after the kill: {p}" for p in opened.problems + whole.problems]
    if first.killed or command != "train":
        second = run(rerun_argv, timeout=limit)
        if second.returncode != 0:
            trial.rerun_ok = False
            trial.problems.append(f"rerun exited {second.returncode}: {second.tail(2)}")
        elif trial.rerun_ok is None:
            trial.rerun_ok = True
    opened, whole, complete = _check(command, target, expected, ref_weights, final=True,
                                     start=start)
    trial.equal = opened.ok and whole.ok and complete.ok
    trial.problems += [f"after the rerun: {p}" for p in
                       opened.problems + whole.problems + complete.problems]
    return trial


def run_trials(command: str, refs: References, trials: int, seed: int, work: Path,
               progress=None) -> List[Trial]:
    """``trials`` kill trials of ``command``; kill moments from ``default_rng([seed, k])``.

    Each trial works in ``work/trials/COMMAND-NN``, which is removed when the trial passed.

    Parameters
    ----------
    progress : callable, optional
        Called with each finished :class:`Trial`.
    """
    rng = np.random.default_rng([seed, COMMANDS.index(command)])
    moments = rng.uniform(0.0, refs.seconds[command], size=trials)
    weights = model_weights(refs.model) if command == "train" else None
    results = []
    for number, kill_at in enumerate(moments):
        folder = work / "trials" / f"{command}-{number:02d}"
        trial = run_trial(command, number, float(kill_at), refs, folder, weights)
        if trial.passed:  # a failed trial's files stay for inspection
            shutil.rmtree(folder, ignore_errors=True)
        results.append(trial)
        if progress is not None:
            progress(trial)
    return results


# ------------------------------------------------------------------ file systems for faults
def _mount(*args) -> Optional[str]:
    """Run ``mount ARGS``; the error text when it fails, None when it worked."""
    try:
        done = subprocess.run(["mount", *map(str, args)], capture_output=True, text=True)
    except OSError as err:
        return str(err)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


def _umount(where: Path):
    subprocess.run(["umount", str(where)], capture_output=True)


@contextlib.contextmanager
def small_disk(where: Path, size: int = DISK_BYTES):
    """A tmpfs of ``size`` bytes mounted at ``where`` (an OSError when it cannot be)."""
    where.mkdir(parents=True, exist_ok=True)
    failure = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", where)
    if failure:
        raise OSError(errno.EPERM, f"cannot mount a tmpfs at {where}: {failure}")
    try:
        yield where
    finally:
        _umount(where)


@contextlib.contextmanager
def read_only_view(source: Path, where: Path):
    """``source`` bind-mounted read-only at ``where`` (an OSError when it cannot be, or when
    a write there still succeeds)."""
    where.mkdir(parents=True, exist_ok=True)
    failure = _mount("--bind", source, where)
    if failure:
        raise OSError(errno.EPERM, f"cannot bind-mount {source} at {where}: {failure}")
    try:
        failure = _mount("-o", "remount,bind,ro", where)
        if failure:
            raise OSError(errno.EPERM, f"cannot remount {where} read-only: {failure}")
        probe = where / ".write-probe"
        try:
            probe.write_bytes(b"")
        except OSError as err:
            if err.errno != errno.EROFS:
                raise
        else:
            probe.unlink()
            raise OSError(errno.EPERM, f"{where} is still writable after remounting read-only")
        yield where
    finally:
        _umount(where)


def fill(disk: Path, room: int):
    """Fill ``disk`` with ``disk/filler`` up to ``room`` free bytes."""
    filler, block = disk / "filler", b"\0" * 2**20
    with filler.open("wb", buffering=0) as fh:  # unbuffered: closing writes nothing more
        with contextlib.suppress(OSError):
            while True:
                fh.write(block)
    free = shutil.disk_usage(disk).free
    os.truncate(filler, max(0, filler.stat().st_size - max(0, room - free)))


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def tree_digest(folder: Path) -> Dict[str, str]:
    """SHA-1 of every file under ``folder`` by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass
class Fault:
    """One row of the disk-full and read-only tables."""

    fault: str
    command: str
    expected: str
    returncode: Optional[int] = None
    message: str = ""
    checks: Dict[str, Optional[bool]] = field(default_factory=dict)
    problems: List[str] = field(default_factory=list)
    not_run: str = ""

    @property
    def passed(self) -> bool:
        return not self.not_run and not self.problems and all(
            v is not False for v in self.checks.values())


def _one_line_error(result: Run, where: str) -> Optional[str]:
    """What is wrong with a failure's message (None: one error line naming a file under
    ``where`` and no traceback)."""
    lines = result.error_lines
    if "Traceback" in result.stderr:
        return f"a traceback: {result.tail()}"
    if len(lines) != 1:
        return f"{len(lines)} error lines: {result.tail()}"
    if where not in lines[0]:
        return f"the error line does not name a file under {where}: {lines[0]}"
    return None


def disk_full(command: str, refs: References, work: Path) -> Fault:
    """``command`` on a disk filled up to a little room; then room is made and it is rerun."""
    row = Fault("disk full", command, "exit 1, one line naming the file; rerun completes")
    disk = work / "full" / command
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(small_disk(disk))
        except OSError as err:
            row.not_run = err.strerror or str(err)
            return row
        if command == "train":
            target, expected, start = disk / "model", refs.model, None
            argv, again = train_argv(refs.store, target), train_argv(refs.store, target, True)
            room = (refs.model / "model.keras").stat().st_size
        else:
            target, expected, room = disk / "store", {"build": refs.store, "embed": refs.embedded,
                                                      "tsne": refs.mapped}[command], 0
            start = {"build": None, "embed": refs.store, "tsne": refs.embedded}[command]
            if command == "build":
                argv, room = build_argv(refs.root, target), folder_bytes(refs.store) // 2
            elif command == "embed":
                argv = embed_argv(_copy_store(start, target), refs.model)
            else:
                argv = tsne_argv(_copy_store(start, target))
        weights = model_weights(refs.model) if command == "train" else None
        fill(disk, room)
        row.expected = f"{row.expected} ({room / 2**20:.1f} MiB free)"
        first = run(argv, timeout=max(300.0, 20 * refs.seconds[command]))
        row.returncode = first.returncode
        row.message = (first.error_lines or [first.tail(1)])[-1]
        if first.returncode != 1:
            row.problems.append(f"exit {first.returncode} (expected 1): {first.tail()}")
        wrong = _one_line_error(first, str(disk)) if first.returncode else None
        row.checks["one-line error naming the file"] = wrong is None
        if wrong:
            row.problems.append(wrong)
        opened, whole, _ = _check(command, target, expected, weights, final=False,
                                  start=start)
        row.checks["files open"], row.checks["no half-written"] = opened.ok, whole.ok
        row.problems += opened.problems + whole.problems
        (disk / "filler").unlink()
        second = run(again if command == "train" else argv,
                     timeout=max(300.0, 20 * refs.seconds[command]))
        row.checks["rerun ok"] = second.returncode == 0
        if second.returncode != 0:
            row.problems.append(f"rerun after making room exited {second.returncode}: "
                                f"{second.tail(2)}")
        opened, whole, complete = _check(command, target, expected, weights, final=True,
                                         start=start)
        row.checks["equal to uninterrupted"] = opened.ok and whole.ok and complete.ok
        row.problems += opened.problems + whole.problems + complete.problems
    return row


def read_only(refs: References, work: Path,
              commands: Sequence[str] = ("embed", "tsne", "inspect", "evaluate", "place")
              ) -> List[Fault]:
    """Commands on a finished store mounted read-only: writers refuse in one line, readers
    work, and no byte of the store changes."""
    folder = work / "read-only"
    shutil.rmtree(folder, ignore_errors=True)
    source = _copy_store(refs.mapped, folder / "source")
    wav = next(iter(sorted((refs.root / "test" / "audio").glob("*.wav"))))
    argvs = {
        "embed": (embed_argv(folder / "store", refs.model), 1),
        "tsne": (tsne_argv(folder / "store"), 1),
        "inspect": (timbremap("inspect", folder / "store"), 0),
        "evaluate": (timbremap("evaluate", folder / "store", refs.model, "--split", "test",
                               "--confusion", folder / "confusion.png", "-q"), 0),
        "place": (timbremap("place", folder / "store", refs.model, wav, "--split", "test",
                            "-q"), 0),
    }
    rows = []
    before = tree_digest(source)
    with contextlib.ExitStack() as stack:
        try:
            store = stack.enter_context(read_only_view(source, folder / "store"))
        except OSError as err:
            return [Fault("read-only store", c, "", not_run=err.strerror or str(err))
                    for c in commands]
        for command in commands:
            argv, wanted = argvs[command]
            row = Fault("read-only store", command, "exit 1, one line naming the file"
                        if wanted else "exit 0 (reads only)")
            result = run(argv, timeout=600)
            row.returncode = result.returncode
            row.message = (result.error_lines or result.messages or [""])[-1]
            if result.returncode != wanted:
                row.problems.append(f"exit {result.returncode} (expected {wanted}): "
                                    f"{result.tail()}")
            if wanted:
                wrong = _one_line_error(result, str(store))
                row.checks["one-line error naming the file"] = wrong is None
                if wrong:
                    row.problems.append(wrong)
            changed = sorted(set(before.items()) ^ set(tree_digest(source).items()))
            row.checks["store unchanged"] = not changed
            if changed:
                row.problems.append(f"changed: {', '.join(sorted({n for n, _ in changed}))}")
            rows.append(row)
    return rows


# ------------------------------------------------------------------ the report
def _count(trials: Sequence[Trial], name: str) -> str:
    values = [getattr(t, name) for t in trials if getattr(t, name) is not None]
    return f"{sum(values)}/{len(values)}" if values else "n/a"


def trial_table(trials: Dict[str, List[Trial]], refs: References) -> List[str]:
    lines = ["| command | trials | kill moments (s) | uninterrupted run (s) | killed | files open "
             "| no half-written | rerun ok | equal to uninterrupted | passed |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for command, rows in trials.items():
        moments = [t.kill_at for t in rows]
        lines.append(
            f"| {command} | {len(rows)} | {min(moments):.1f} – {max(moments):.1f} "
            f"| {refs.seconds[command]:.1f} | {sum(t.killed for t in rows)}/{len(rows)} "
            f"| {_count(rows, 'files_open')} | {_count(rows, 'no_half_written')} "
            f"| {_count(rows, 'rerun_ok')} | {_count(rows, 'equal')} "
            f"| {sum(t.passed for t in rows)}/{len(rows)} |")
    return lines


def _mark(value: Optional[bool]) -> str:
    return "–" if value is None else ("yes" if value else "**no**")


def fault_table(rows: Sequence[Fault]) -> List[str]:
    names = ["one-line error naming the file", "files open", "no half-written", "rerun ok",
             "equal to uninterrupted", "store unchanged"]
    names = [n for n in names if any(n in r.checks for r in rows)]
    lines = ["| fault | command | expected | exit | " + " | ".join(names)
             + " | passed | message |",
             "|---|---|---|---:|" + "---:|" * len(names) + "---:|---|"]
    for r in rows:
        if r.not_run:
            lines.append(f"| {r.fault} | {r.command} | not run: {r.not_run} |" + " |" * (
                len(names) + 3))
            continue
        message = r.message.replace("|", "\\|")
        lines.append(f"| {r.fault} | {r.command} | {r.expected} | {r.returncode} | "
                     + " | ".join(_mark(r.checks.get(n)) for n in names)
                     + f" | {'yes' if r.passed else '**no**'} | `{message}` |")
    return lines


def failures(trials: Dict[str, List[Trial]], faults: Sequence[Fault]) -> List[str]:
    lines = []
    for rows in trials.values():
        for t in rows:
            if not t.passed:
                lines.append(f"- {t.command} trial {t.number}: `{command_line(t.argv)}` killed "
                             f"at {t.kill_at:.2f} s"
                             f"{'' if t.killed else ' (had ended before)'}; rerun "
                             f"`{command_line(t.rerun_argv)}`: " + "; ".join(t.problems))
    for r in faults:
        if r.not_run:
            continue
        if not r.passed:
            lines.append(f"- {r.fault}, {r.command}: " + "; ".join(r.problems))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--trials", type=positive_int, default=20, help="kill trials per command")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS))
    parser.add_argument("--work", type=Path, default=Path("bench-out/faults"),
                        help="scratch folder (its contents are replaced)")
    parser.add_argument("--notes", type=positive_int, nargs=3, default=list(NOTES),
                        metavar=("TRAIN", "VALID", "TEST"),
                        help=f"synthetic notes per split (default {' '.join(map(str, NOTES))}; "
                             f"TEST above {3 * TSNE_PERPLEXITY}, for tsne's perplexity "
                             f"{TSNE_PERPLEXITY})")
    parser.add_argument("--no-mounts", action="store_true",
                        help="leave out the disk-full and read-only rows (they mount file "
                             "systems, which needs root)")
    args = parser.parse_args(argv)
    if args.notes[2] <= 3 * TSNE_PERPLEXITY:
        parser.error(f"--notes: a test split of {args.notes[2]} notes is too few for tsne's "
                     f"perplexity {TSNE_PERPLEXITY} (more than {3 * TSNE_PERPLEXITY})")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    refs = make_references(work, args.notes)
    print("uninterrupted runs: " + ", ".join(f"{c} {s:.1f} s" for c, s in refs.seconds.items()),
          flush=True)

    def report(trial: Trial):
        print(f"{trial.command} {trial.number:2d}: kill at {trial.kill_at:5.1f} s "
              f"{'killed' if trial.killed else 'ended before'}: "
              f"{'ok' if trial.passed else 'FAILED: ' + '; '.join(trial.problems)}", flush=True)

    trials = {c: run_trials(c, refs, args.trials, args.seed, work, report)
              for c in COMMANDS if c in args.commands}
    faults = []
    if not args.no_mounts:
        faults = [disk_full(c, refs, work) for c in COMMANDS if c in args.commands]
        faults += read_only(refs, work)
    minutes = (time.monotonic() - started) / 60
    print(f"\nfault injection, {args.trials} trials per command, seed {args.seed}, notes "
          f"{'/'.join(map(str, args.notes))}, {os.cpu_count()} cores, {minutes:.1f} minutes\n")
    print("\n".join(trial_table(trials, refs)))
    if faults:
        print()
        print("\n".join(fault_table(faults)))
    failed = failures(trials, faults)
    print("\nfailures:" if failed else "\nno failures")
    for line in failed:
        print(line)
    for r in faults:
        if r.not_run:
            print(f"not run: {r.fault}, {r.command}: {r.not_run}")
    rerun = ["python", "benchmarks/faults.py", "--trials", str(args.trials), "--seed",
             str(args.seed), "--commands", *args.commands, "--notes", *map(str, args.notes),
             "--work", str(args.work)]
    print(f"\nrerun: {shlex.join(rerun + (['--no-mounts'] if args.no_mounts else []))}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
