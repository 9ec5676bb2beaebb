"""The build: labelled audio in one of :mod:`featurestore.layouts`' layouts (one or more NSynth
or class folders, or manifests) -> one HDF5 file per split.

:func:`build_store` reads the inputs, merges each split's notes from every input that has it
(a note name two inputs share is refused, naming both), locks the store (one build at a time),
and builds each split with the workers of :mod:`featurestore.workers` feeding the single writer
of :mod:`featurestore.splitfile` (written as ``SPLIT.h5.partial`` with a journal, resumable,
renamed when whole); a finished split is kept unless it is to be overwritten.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import h5py
from joblib import Parallel, delayed

from . import commit, finished, grow, schema, splitfile, workers
from .errors import BuildError, check_positive_int, check_split_names
from .finished import SplitReport
from .heldsplits import kept_with_held
from .layouts import InputOptions, Inputs, read_inputs
from .nsynth import SPLITS
from .notes import Notes
from .overlap import check_splits_apart
from .params import FeatureParams
from .progressbar import progress_bar
from .resume import start_or_resume
from .splitfile import Summary, finalize, give_back_room, inputs_digest, note_writer
from .stats import RunningStats
from .store import split_path
from .storefolder import check_folder_of_its_own, check_writable, locked
from .workers import Ring, parallel_backend, resolve_backend, ring_kind

__all__ = ["build_store", "BuildError", "SplitReport", "resolve_backend"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Split:
    """One split to build: from where (the build's NOTES folders, which ``notes.folder``
    indexes), to where, and train's statistics for the others (``None`` for train itself)."""

    name: str
    roots: Tuple[Path, ...]
    path: Path
    notes: Notes     # in the store's order
    problems: list   # [(name, reason)] found before reading audio
    train_stats: Optional[Summary]
    labels: Tuple[str, ...]  # the store's label set
    attrs: dict              # how the inputs were read (root attrs)
    added: bool = False      # build --add: renamed by the commit, after every split is done
    held: Optional[grow.Held] = None  # --add: what the finished file holds (its notes first)
    inputs_digest: Optional[str] = None  # --add: of every input note of the split

    @property
    def base(self) -> int:
        """Rows the file holds before these notes."""
        return 0 if self.held is None else len(self.held.notes)


@dataclass(frozen=True)
class _Workers:
    """How a split's notes are spread over workers."""

    jobs: int
    batch_size: int
    progress: bool
    ring: Optional[str]  # where local workers' Ring is: 'memory' (threads), 'file' (loky)
    dask: bool           # workers of a dask cluster (their results bounded by on_dask)
    hop: Optional[float]  # notes are windows of longer recordings, this many seconds apart


def _build_split(split: _Split, params: FeatureParams,
                 run: _Workers) -> Tuple[SplitReport, RunningStats]:
    path, notes = split.path, split.notes
    partial = path.with_name(path.name + ".partial")
    journal = path.with_name(path.name + ".journal")
    for stale in [*path.parent.glob(f"{path.name}.ring-*"),  # left by a killed build
                  partial.with_name(f".{partial.name}.partial")]:  # by a killed give_back_room
        stale.unlink(missing_ok=True)
    state = start_or_resume(split, params, partial, journal)
    resumed_at = state.position
    if resumed_at:
        log.info("%s: resuming at note %d of %d", split.name, resumed_at, len(notes))

    # (first, end) of each batch; its notes' paths are made when a worker is given it
    bounds = [(k, min(k + run.batch_size, len(notes)))
              for k in range(state.position, len(notes), run.batch_size)]
    start = time.perf_counter()
    steady_start, steady_done = None, 0
    bar = progress_bar(total=len(notes), initial=state.position, unit="note", desc=split.name,
                       enabled=run.progress)
    handoff = contextlib.nullcontext()
    if run.ring and bounds:
        size = workers.RING_SLOTS_PER_JOB * run.jobs, bounds[0][1] - bounds[0][0], params.shape
        handoff = Ring.in_memory(*size) if run.ring == "memory" else Ring.beside(path, *size)
    with handoff as ring, h5py.File(partial, "r+") as f, bar:
        write_note = note_writer(f[schema.SPECTRA])
        if ring is not None:
            consumed, slots = ring.open()
        calls = (delayed(workers.extract)([(i, str(notes.path(i)), float(notes.offset[i]))
                                           for i in range(first, end)],
                                          params, ring, number, run.hop)
                 for number, (first, end) in enumerate(bounds))
        if run.dask:
            results = workers.on_dask(calls)
        else:
            # batch_size=1: joblib must not group batches into one task, or a worker could
            # wait for a slot that only the results still held in its own task would free
            results = Parallel(return_as="generator", pre_dispatch="2*n_jobs",
                               batch_size=1)(calls)
        last_save = time.monotonic()
        for number, ((done, features, stats, skipped, adjusted), (first, end)) in enumerate(
                zip(results, bounds)):
            if ring is not None:  # the worker computed them into its slot
                features = slots[number % ring.slots][:len(done)]
            for row in features:
                write_note(split.base + state.n_written, row)
                state.n_written += 1
            if ring is not None:
                consumed[0] = number + 1  # the slot is free again
            state.position = end
            for note_stats in stats:
                state.stats.merge(note_stats)
            state.skipped += skipped
            state.adjusted += adjusted
            if time.monotonic() - last_save >= splitfile.JOURNAL_SECONDS:
                f.flush()
                state.save(journal)
                last_save = time.monotonic()
            bar.update(end - first)
            if steady_start is None:  # the first batch carries worker start-up
                steady_start = time.perf_counter()
            else:
                steady_done += end - first
        f.flush()
        state.save(journal)  # every note done: a kill from here on computes none again
        stats = state.stats
        if split.train_stats is None and split.held is not None and split.held.summary:
            stats = split.held.summary.running().merge(state.stats)  # --add: held and new
        if split.train_stats is None:
            summary, stats_split = Summary.of(stats), split.name
        else:
            summary, stats_split = split.train_stats, "train"
        if summary is not None and not summary.finite:
            raise BuildError(f"{path}: the statistics of {split.name} are not finite although "
                             f"every note's features were; nothing was finished (a bug: please "
                             f"report it)")
        if summary is not None and stats_split == split.name and not (summary.std > 0).any():
            raise BuildError(f"{path}: every feature is the same in every note of {split.name} "
                             f"(a standard deviation of 0 in every bin): a model could learn "
                             f"nothing from them; nothing was finished (other feature settings, "
                             f"or other notes?)")
        skipped, adjusted = finalize(
            f, split.name, split.roots, notes, state, split.problems, summary, stats_split,
            label_names=split.labels, attrs=split.attrs, digest=split.inputs_digest,
            held=split.held.notes if split.held else None,
            held_problems=split.held.problems if split.held else ((), ()),
            held_computed=split.held.computed if split.held else ())
        if split.held is not None:
            grow.settle_results(path, f, state.n_written)
    state.finished = True
    state.save(journal)
    give_back_room(partial)  # that of skipped notes or removed results, when it is much
    if not split.added:  # --add renames every split at its commit
        os.replace(partial, path)
        journal.unlink()
    seconds = time.perf_counter() - start
    steady = steady_done / (time.perf_counter() - steady_start) if steady_done else float("nan")
    status = ("added" if state.n_written else "updated") if split.added else \
        "resumed" if resumed_at else "built"
    report = SplitReport(split.name, path, status, state.n_written, len(skipped), len(adjusted),
                         seconds, steady, resumed_at, skipped, split.base)
    return report, stats


def build_store(roots, out, params: Optional[FeatureParams] = None, *,
                inputs: Optional[InputOptions] = None, jobs: int = 2, backend: str = "auto",
                batch_size: int = 32, overwrite: bool = False, add: bool = False,
                splits: Optional[Sequence[str]] = None, progress: bool = True
                ) -> List[SplitReport]:
    """Build ``OUT/SPLIT.h5`` for every split of labelled audio.

    Parameters
    ----------
    roots : str or pathlib.Path, or a sequence of them
        The inputs, of one layout (:mod:`featurestore.layouts`): NSynth-layout folders (NOTES:
        ``train/``, ``valid/`` and/or ``test/``, each holding ``examples.json`` and
        ``audio/*.wav``), class folders (``ROOT/[SPLIT/]LABEL/FILE``), or manifest CSV files.
        Each split of the store holds the notes of that split of every input, sorted by name;
        ``/source_folder`` records each note's folder.
    out : str or pathlib.Path
        The store folder (created if needed).
    params : FeatureParams, optional
        The features (recorded in every file's attrs); default the defaults, for ``add`` the
        store's (:func:`featurestore.grow.recorded_params`).
    inputs : InputOptions, optional
        How the inputs are read: layout, groups, drawn splits, windows (recorded in every
        file's attrs). Default: the defaults, and for ``add`` the store's
        (:func:`featurestore.grow.recorded_inputs`).
    jobs : int
        Worker threads or processes (at most the machine's cores: more are cut to them, with
        a warning) or, for dask, local-cluster workers when no client exists.
    backend : {'auto', 'loky', 'dask', 'threading'}
        joblib backend; ``'auto'``: see :func:`resolve_backend`. ``'dask'`` uses the current
        ``dask.distributed`` client, or starts a ``LocalCluster`` for the build.
    batch_size : int
        Notes per worker task (also the resume granularity).
    overwrite : bool
        Rebuild splits whose finished file exists; otherwise those are kept as they are.
    add : bool
        Grow the store: add the notes of the inputs it does not hold yet, leaving the ones it
        holds as they are (:mod:`featurestore.grow`); the inputs are read as the store's were.
    splits : sequence of str, optional
        Only these splits (default: every split the inputs have).
    progress : bool
        Show a progress bar per split (:func:`featurestore.progressbar.progress_bar`).

    Returns
    -------
    list of SplitReport
        One per split, and per split not asked for that took train's statistics; NSynth order.

    Raises
    ------
    BuildError
        A missing input, a folder without notes, an input given twice, a note name two inputs
        share, an ``out`` that is an input, holds a model or cannot be written, a kept split of
        other features, labels or input options (beside a split built now); with ``add``, a
        store that is missing or was built with other parameters or input options.
    InputError
        ``jobs`` or ``batch_size`` not a positive integer, ``splits`` one name or none.
    """
    out = Path(out)
    if add and overwrite:
        raise BuildError("--add grows a store and --overwrite rebuilds it: give one of them")
    inputs = inputs or (grow.recorded_inputs(out) if add else InputOptions())
    params = params or (grow.recorded_params(out) if add else FeatureParams())
    if not add:  # a store grows with the settings it was built with
        params.check_buildable()
        if params.hop_length > params.n_fft:
            log.warning("the hop between frames (hop_length %d) is longer than a frame (n_fft "
                        "%d): %.0f %% of each note's samples fall between its frames and are "
                        "never heard", params.hop_length, params.n_fft,
                        100 * (1 - params.n_fft / params.hop_length))
    jobs = workers.usable_jobs(jobs, backend)
    backend = resolve_backend(backend, jobs)
    check_positive_int("batch_size", batch_size)
    splits = check_split_names(splits)
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    check_folder_of_its_own(out, roots)
    read = read_inputs(roots, inputs, clip_seconds=params.n_samples / params.sample_rate)
    check_folder_of_its_own(out, read.roots)  # a manifest's folder too
    found = list(read.splits)
    if splits is not None:
        missing = [s for s in splits if s not in found]
        if missing:
            raise BuildError(f"{', '.join(map(str, read.roots))}: no split {', '.join(missing)} "
                             f"(found {', '.join(found)})")
        found = [s for s in found if s in splits]
    workers.check_ring_fits(max((len(read.splits[s][0]) for s in found), default=0), params,
                            jobs, batch_size, backend)
    writes = overwrite or add or not found or not all(split_path(out, s).is_file() for s in found)
    made = writes and check_writable(out)  # a build keeping every split writes nothing
    if not add:
        finished.warn_of_one_label(read)
    attrs = inputs.to_attrs(read.layout)
    if not overwrite and not add:  # finished splits kept: their label order is the store's
        finished.check_kept_inputs(out, found, read, attrs)  # and their draw
        held = finished.held_labels(out, found)
        if held is not None and set(held) == set(read.labels):
            read.labels = held
    run = _Workers(jobs, batch_size, progress, ring_kind(backend, jobs), backend == "dask",
                   inputs.windows)
    with locked(out, made=made), parallel_backend(backend, jobs):
        commit.finish_commit(out)
        if overwrite and splits is None:  # every split drawn again: none of before stays
            finished.remove_undrawn(out, found)
        reports = (_add(read, out, params, attrs, run, found) if add else finished.with_train_stats(
            out, params, _build(read, out, params, attrs, run, found, overwrite)))
        finished.warn_of_splits_that_mislead(out, every_split=splits is None)
    if splits is None and not add and not split_path(out, "valid").is_file():  # all built
        if read.drawn:
            hint = ("give more groups, or a larger --valid-fraction" if inputs.valid_fraction
                    else "draw one with --valid-fraction above 0")
        elif read.layout == "nsynth":
            hint = "give the inputs a valid/ folder with its examples.json"
        else:
            hint = ("the inputs give each note its split: give some notes the split valid, or "
                    "none, to be drawn with --valid-fraction")
        log.warning("%s: no valid split: 'timbremap train' needs one, to pick its best epoch "
                    "and when to stop (%s)", out, hint)
    return reports


def _build(read: Inputs, out: Path, params: FeatureParams, attrs: dict, run: _Workers,
           found: Sequence[str], overwrite: bool) -> List[SplitReport]:
    """A build without ``--add``: each split of ``found`` built, or kept if finished."""
    kept = {s: finished.kept(s, split_path(out, s), read, params, attrs) for s in found
            if not overwrite and split_path(out, s).is_file()}  # checked before any is built
    reports, train_stats = [], None
    for split in found:
        path = split_path(out, split)
        if split in kept:
            reports.append(kept[split])
            continue
        if split != "train" and train_stats is None:
            train_stats = finished.existing_train_stats(out, params)
        notes, problems = read.splits[split]
        where = read.where(split)
        if split == "train" and not notes:
            first = f"; first: {problems[0][0]}: {problems[0][1]}" if problems else ""
            raise BuildError(f"{where}: no usable notes in the train split "
                             f"({len(problems)} problems{first})")
        try:
            report, stats = _build_split(_Split(
                split, read.roots, path, notes, problems,
                train_stats if split != "train" else None, read.labels, attrs), params, run)
        except OSError as err:  # a full disk, most likely; the journal keeps what was done
            raise BuildError(f"{path}: cannot be written ({err.strerror or err}); what was "
                             f"done is kept in {path.name}.partial: make room and run the "
                             f"same build again to resume") from None
        if notes and not report.n_examples:
            first = report.skipped[0] if report.skipped else ("?", "?")
            if split == "train":  # no statistics, nothing to train on: not a store
                path.unlink()
                raise BuildError(f"{where}: none of its {len(notes)} notes could be "
                                 f"used (first: {first[0]}: {first[1]}); nothing written")
            log.warning("%s: none of its %d notes could be used (first: %s: %s)",
                        where, len(notes), *first)
        train_stats = Summary.of(stats) if split == "train" else train_stats
        reports.append(report)
    return reports


def _add(read: Inputs, out: Path, params: FeatureParams, attrs: dict, run: _Workers,
         found: Sequence[str]) -> List[SplitReport]:
    """``build --add``: each split grown by the notes it does not hold, all committed at once."""
    grow.check_addable(out, params, attrs, drawn=read.drawn)
    splits = [s for s in SPLITS if s in found or split_path(out, s).is_file()]
    held = {s: grow.read_held(split_path(out, s)) for s in splits if split_path(out, s).is_file()}
    labels = held["train"].labels
    growing = {split: read.splits[split] for split in found}  # --split: the others kept
    if read.layout != "nsynth":
        labels = grow.grown_labels(labels, {label for notes, _ in growing.values()
                                            for label in notes.label})
    roots, new, held = grow.on_all_roots(growing, read.roots, held)
    grow.refuse_held_elsewhere(new, held, roots)
    new = kept_with_held(new, {split: mine.notes for split, mine in held.items()},
                         read.drawn_names)  # a store's notes never move
    check_splits_apart([(split, mine.notes) for split, mine in held.items()]
                       + [(split, notes) for split, (notes, _) in new.items()],
                       layout=read.layout)
    columns = grow.columns(held, new)
    reports, train_stats, changed = [], None, []
    for split in splits:
        path = split_path(out, split)
        notes, problems = new.get(split, (None, []))
        mine = held.get(split)
        if mine is not None:
            notes, problems = grow.not_held(notes, problems, held, roots, split)
        elif not (notes or problems):  # a new split left nothing (held in the others)
            continue
        if not (notes or problems) and mine.labels == labels and "train" not in changed \
                and set(mine.notes.meta) >= columns:
            train_stats = mine.summary if split == "train" else train_stats
            reports.append(SplitReport.kept(split, path, len(mine.notes), mine.problems))
            continue
        notes = notes if mine is None else notes or mine.notes.take([])  # a new split's: its own
        try:
            report, stats = _build_split(_Split(
                split, tuple(roots), path, notes.with_columns(columns), problems,
                train_stats if split != "train" else None, labels, attrs, added=True,
                held=mine, inputs_digest=(inputs_digest(growing[split][0])
                                          if split in growing else None)), params, run)
        except OSError as err:  # a full disk, most likely; the store is as it was
            raise BuildError(f"{path}.partial: cannot be written ({err.strerror or err}); the "
                             f"store is as it was: make room and run the same build --add "
                             f"again") from None
        train_stats = Summary.of(stats) if split == "train" else train_stats
        reports.append(report)
        changed.append(split)
    if changed:
        commit.commit(out, changed)
    return reports
