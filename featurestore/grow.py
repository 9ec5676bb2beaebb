"""A store that grows: what ``build --add`` needs besides the build itself.

``build --add`` computes the features of the notes a store does not hold yet and appends them,
leaving the rows it holds as they are (never recomputed). Each split that changes is written as
``SPLIT.h5.partial``, a copy of the finished file (``copy_file_range``: on file systems that
share extents, XFS and Btrfs, no data is copied) grown by the new rows, with a journal, so a
killed ``--add`` resumes like a killed build. When every changed split is complete, a commit
file (:data:`COMMIT`) names them, and only then are the partial files renamed over the finished
ones; a commit file left by a kill is finished (:func:`finish_commit`) before anything else
reads or writes the store. So the store is always as it was or as it will be, never half.

The train split's statistics are merged with the new notes' (Chan et al.), equal to those of a
full rebuild within float64 rounding; the other splits carry them too. Labels the store does
not know yet are appended to its label set, the old indices kept; analysis results
(``/embeddings``, ``/tsne``, ...) describe the old notes only and are removed from a split that
gains notes (a split that gains none keeps them).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import h5py
import numpy as np

from .schema import (COMPUTED, CONTENT_DIGEST, FILE, GROUP, INSTRUMENT, INSTRUMENT_STR, LABELS,
                     LIST_NAMES, METADATA, NAMES, OFFSET, PITCH, QUALITIES, SOURCE, SOURCE_FOLDER,
                     SPECTRA, VELOCITY, analysis_results, read_label_names, read_params,
                     read_problems)
from .errors import BuildError, counted
from .files import copy_file, real_path
from .finished import input_differences
from .layouts import InputOptions
from .nsynth import QUALITIES as QUALITY_FLAGS, SOURCES
from .params import FeatureParams
from .splitcheck import check_split
from .splitfile import Summary
from .windows import WINDOW_NAME
from .notes import Notes
from .store import open_split, split_path

__all__ = ["Held", "start_added", "settle_results", "read_notes", "read_held", "columns",
           "all_roots", "rooted", "recorded_inputs", "recorded_params", "grown_labels",
           "check_addable", "refuse_held_elsewhere", "not_held"]

log = logging.getLogger(__name__)


def start_added(path: Path, partial: Path, rows: int):
    """``partial``: a copy of the finished split ``path`` with room for ``rows`` notes; a split
    that may gain notes leaves its analysis results out before the new rows take their room
    (:func:`settle_results` puts them back if it gains none)."""
    copy_file(path, partial)
    with h5py.File(partial, "r+") as f:
        if rows > f[SPECTRA].shape[0]:
            for name in analysis_results(f):
                del f[name]
        f[SPECTRA].resize(rows, axis=0)


def settle_results(path: Path, f: h5py.File, added: int):
    """The analysis results of ``f``, the finished partial file of the split ``path``, after
    ``build --add`` gave it ``added`` notes. Gaining notes, it has lost them (they describe the
    old notes only), which is said. Gaining none (it carries the grown train split's
    statistics, or its new notes were all skipped), it has them back as ``path`` holds them,
    and with its label set unchanged, its content digest too: a model trained before finds
    its notes unchanged."""
    with h5py.File(path, "r") as held:
        results = analysis_results(held)
        if added:
            if results:
                log.warning("%s: grows by build --add; removed %s (run embed and tsne again)",
                            path, ", ".join("/" + name for name in results))
            return
        for name in results:
            if name not in f:
                held.copy(held[name], f, name)
        if CONTENT_DIGEST in held.attrs and read_label_names(held) == read_label_names(f):
            f.attrs[CONTENT_DIGEST] = held.attrs[CONTENT_DIGEST]


def read_notes(f: h5py.File) -> Notes:
    """A split file's notes as :class:`Notes`, their files relative to the source folders
    (``audio_dirs``); columns the store does not keep (sample rate, quality names) are empty.

    Raises
    ------
    BuildError
        A store built before it recorded ``/file`` (it cannot be grown: rebuild it).
    """
    if FILE not in f:
        raise BuildError(f"{f.filename}: built before stores recorded each note's /file; it "
                         f"cannot grow: rebuild it with --overwrite")
    n = int(f[SPECTRA].shape[0])
    names = f[NAMES].asstr()[:].tolist()
    label_names = read_label_names(f)
    shared: dict = {}

    def text(name):
        return [shared.setdefault(v, v) for v in f[name].asstr()[:].tolist()]
    source_str = text(SOURCE)
    meta = {}
    if isinstance(f.get(METADATA), h5py.Group):
        meta = {key: f[METADATA][key].asstr()[:].tolist() for key in f[METADATA]}
    return Notes(
        tuple(Path(r) for r in f[SOURCE_FOLDER].attrs[LIST_NAMES]),
        folder=f[SOURCE_FOLDER][:].astype(np.int16), names=names,
        files=f[FILE].asstr()[:].tolist(),
        label=[label_names[k] for k in f[LABELS][:]],
        offset=f[OFFSET][:].astype(np.float64), group=text(GROUP),
        source=np.array([SOURCES.index(s) if s in SOURCES else -1 for s in source_str],
                        np.int8),
        pitch=f[PITCH][:].astype(np.int16), velocity=f[VELOCITY][:].astype(np.int16),
        instrument=f[INSTRUMENT][:].astype(np.int32), sample_rate=np.zeros(n, np.int32),
        qualities=f[QUALITIES][:].astype(np.uint8).reshape(n, len(QUALITY_FLAGS)),
        note_str=names, instrument_str=text(INSTRUMENT_STR),
        instrument_source_str=source_str, qualities_str=[()] * n, meta=meta)


def columns(held: Dict[str, Held], new: Dict[str, Tuple[Notes, list]]) -> set:
    """A manifest's columns (``/metadata``) of the grown store: those of every split, held or
    new; each split gets them all."""
    parts = [*(mine.notes for mine in held.values()), *(notes for notes, _ in new.values())]
    return {key for notes in parts for key in notes.meta}


def all_roots(held: Iterable[Held], inputs: Sequence[Path]) -> List[Path]:
    """Every folder the grown store's notes come from, resolved, once each: the finished
    splits' source folders, then the inputs'."""
    roots: List[Path] = []
    for folder in map(real_path, [d for h in held for d in h.notes.audio_dirs] + list(inputs)):
        if folder not in roots:
            roots.append(folder)
    return roots


def on_all_roots(splits: Dict[str, Tuple[Notes, list]], inputs: Sequence[Path],
                 held: Dict[str, Held]) -> Tuple[List[Path], dict, Dict[str, Held]]:
    """``(roots, splits, held)``: :func:`all_roots`, and the inputs' ``split -> (notes,
    problems)`` (their notes' folders index ``inputs``) and the ``held`` splits with their
    notes on those roots (:func:`rooted`)."""
    roots = all_roots(held.values(), inputs)

    def index(dirs):
        return [roots.index(real_path(d)) for d in dirs]
    splits = {split: (rooted(notes, roots, index(inputs)), problems)
              for split, (notes, problems) in splits.items()}
    held = {split: mine._replace(notes=rooted(mine.notes, roots, index(mine.notes.audio_dirs)))
            for split, mine in held.items()}
    return roots, splits, held


def rooted(notes: Notes, roots: Sequence[Path], index: Sequence[int]) -> Notes:
    """``notes`` with ``audio_dirs`` = ``roots`` (all of the store's source folders) and their
    files relative to them: ``notes.audio_dirs[k]`` lies in ``roots[index[k]]``."""
    prefixes = [Path(os.path.relpath(real_path(d), real_path(roots[index[k]])))
                for k, d in enumerate(notes.audio_dirs)]
    return dataclasses.replace(
        notes, audio_dirs=tuple(Path(r) for r in roots),
        folder=np.array([index[k] for k in notes.folder], np.int16),
        files=[(prefixes[k] / name).as_posix() for k, name in zip(notes.folder, notes.files)])


def recorded_inputs(out: Path) -> InputOptions:
    """How the store's inputs were read, as its train split records it (``input_*`` attrs;
    a store built before they were recorded: NSynth's layout, the defaults).

    Raises
    ------
    BuildError
        The store has no train split to add to.
    StoreError
        Its train.h5 is not a split of a store (:func:`featurestore.store.open_split`).
    """
    return _recorded(out, lambda f: InputOptions.from_attrs(f.attrs))


def recorded_params(out: Path) -> FeatureParams:
    """The features of the store, as its train split records them (``feature_*`` attrs);
    raises as :func:`recorded_inputs`."""
    return _recorded(out, read_params)


def _recorded(out: Path, read):
    train = Path(out) / "train.h5"
    if not train.is_file():
        raise BuildError(f"{out}: no train split (train.h5) to add to; build the store without "
                         f"--add (a build keeps the splits it holds)")
    with open_split(out, "train") as f:  # a store's split (not embed --into's results)
        return read(f)


class Held(NamedTuple):
    """What a finished split holds, as ``--add`` grows it."""

    notes: Notes           # its files relative to its own source folders
    problems: tuple        # its (/skipped, /adjusted) rows
    summary: Optional[Summary]  # its statistics as stored (None: it holds none)
    labels: Tuple[str, ...]
    computed: np.ndarray = np.array([[0, math.inf]])  # schema.COMPUTED (inf: unknown)

    def computed_at(self) -> np.ndarray:
        """When each note was computed (POSIX time, float64 ``(N,)``; inf: unknown)."""
        first, times = self.computed[:, 0], self.computed[:, 1]
        return times[np.searchsorted(first, np.arange(len(self.notes)), side="right") - 1]


def read_held(path: Path) -> Held:
    """The notes, problems, statistics and label set of the finished split file ``path``, and
    when its notes were computed (a file written before that was kept: when it was built or
    last grown, for every note)."""
    with h5py.File(path, "r") as f:
        check_split(f)
        computed = np.asarray(f.attrs.get(COMPUTED, np.zeros((0, 2))), np.float64)
        if computed.ndim != 2 or computed.shape[1:] != (2,) or not len(computed) \
                or computed[0, 0] != 0:
            try:
                created = datetime.fromisoformat(str(f.attrs["created"])).timestamp()
            except (KeyError, ValueError):
                created = math.inf
            computed = np.array([[0, created]])
        return Held(read_notes(f), read_problems(f), Summary.read(f), read_label_names(f),
                    computed)


def grown_labels(held: Tuple[str, ...], found: Sequence[str]) -> Tuple[str, ...]:
    """The store's label set after an ``--add``: the labels it holds, in their order, then the
    new ones, sorted."""
    return tuple(held) + tuple(sorted(set(found) - set(held)))


def check_addable(out: Path, params: FeatureParams, attrs: dict, *, drawn: bool):
    """Refuse an ``--add`` whose features or input options are not the store's (the fractions
    only where the build puts files in splits: ``drawn``)."""
    recorded = recorded_inputs(out)
    train = split_path(out, "train")
    with h5py.File(train, "r") as f:
        differences = read_params(f).differences(params)
    if differences:
        raise BuildError(f"{train}: built with other feature parameters "
                         f"({'; '.join(differences)}); --add computes the new notes' features "
                         f"as the store's: give the same feature options")
    was, now = input_differences(recorded.to_attrs(recorded.layout), attrs, drawn=drawn)
    if was:
        raise BuildError(f"{train}: its inputs were read with {was}; --add reads the new ones "
                         f"the same way (now {now}): leave out the input options, or give the "
                         f"store's")


def not_held(notes: Optional[Notes], problems: list, held: Dict[str, Held], roots,
             split: str):
    """The inputs' notes and problems of ``split`` that it does not hold yet (``held``: what
    each finished split holds): not its notes (a name it holds from another folder was
    refused before, by :func:`refuse_held_elsewhere`), nor what it skipped before (a note
    skipped for its audio stays skipped until the split is rebuilt); a problem of a name a
    split holds (a manifest's row given again, or with an unknown split) is warned of, as
    ``/skipped`` lists what the store does not hold."""
    mine = held[split]
    names = dict(zip(mine.notes.names, mine.notes.folder))
    skipped = dict(mine.problems[0])
    gone = _warn_of_gone_files(mine.notes, split)
    if notes is not None:
        _warn_of_new_labels(notes, mine.notes, split)
        _warn_of_changed_files(notes, dict(zip(mine.notes.names, mine.computed_at())), split)
        def skipped_as(name):  # a window's file skipped whole (its length unreadable)
            return name if name in skipped else WINDOW_NAME.sub("", name)
        again = [i for i, name in enumerate(notes.names) if skipped_as(name) in skipped]
        if again:
            first = skipped_as(notes.names[again[0]])
            log.warning("%s: not tried again, %s the store skipped (first: %s: %s); build with "
                        "--overwrite to try them", split, counted(len(again), "input"), first,
                        skipped[first])
        left_out = set(again) | {i for i, name in enumerate(notes.names) if name in names}
        notes = notes.take([i for i in range(len(notes)) if i not in left_out])
    before = set(mine.problems[0])
    anywhere = {name for theirs in held.values() for name in theirs.notes.names}
    problems = [(name, why) for name, why in problems if (name, why) not in before]
    refused = [(name, why) for name, why in problems if name in anywhere and name not in gone]
    if refused:
        log.warning("%s: %s naming notes the store holds cannot be used (first: %s: %s); the "
                    "store keeps those notes as they are", split,
                    counted(len(refused), "input"), *refused[0])
    return notes, [(name, why) for name, why in problems if name not in anywhere]


def _warn_of_new_labels(notes: Notes, held: Notes, split: str):
    """Warn of notes the split holds that the inputs now give another label: the store keeps
    the label it holds."""
    label = dict(zip(held.names, held.label))
    changed = [(name, label[name], now) for name, now in zip(notes.names, notes.label)
               if name in label and label[name] != now]
    if changed:
        name, was, now = changed[0]
        log.warning("%d notes of %s that the store holds have another label in the inputs now "
                    "(first: %s, held as %r, now %r); the store keeps the labels it holds: "
                    "build with --overwrite to relabel", len(changed), split, name, was, now)


def _warn_of_changed_files(notes: Notes, computed: dict, split: str):
    """Warn of the files of notes the split holds (``computed``: each held note's name and
    when it was computed) that were modified after their notes were computed (each file
    once, however many windows): the store keeps the features it computed from them."""
    changed, seen = [], set()
    for i, name in enumerate(notes.names):
        path = notes.path(i)
        if name not in computed or path in seen:
            continue
        seen.add(path)
        try:
            if path.stat().st_mtime > computed[name]:
                changed.append(path)
        except OSError:
            continue  # gone: the note is kept as it was
    if changed:
        log.warning("%s: modified after their notes were computed, %s (first: %s; "
                    "re-recorded, or copied without their times); the store keeps the features "
                    "it computed from them: build with --overwrite to compute them again", split,
                    counted(len(changed), "file"), changed[0])


def _warn_of_gone_files(held: Notes, split: str) -> set:
    """Warn of the files of notes the split holds that are no longer there (deleted, or moved:
    into another class folder, a new note): the store keeps their features. Returns the names
    of those notes."""
    paths = [held.path(i) for i in range(len(held))]
    gone = [path for path in dict.fromkeys(paths) if not os.path.lexists(path)]
    if gone:
        log.warning("%s: holds the notes of %s that %s no longer there (first: %s; deleted or "
                    "moved); the store keeps %s features: build with --overwrite to leave them "
                    "out", split, counted(len(gone), "file"), "is" if len(gone) == 1 else "are",
                    gone[0], "its" if len(gone) == 1 else "their")
    gone = set(gone)
    return {name for name, path in zip(held.names, paths) if path in gone}


def refuse_held_elsewhere(new: Dict[str, Tuple[Notes, list]], held: Dict[str, Held], roots):
    """Refuse a new note whose name its split holds from another folder, before anything else
    is said of the notes (:func:`_refuse_held_elsewhere`); ``new``, ``held`` and ``roots`` as
    :func:`on_all_roots` gives them."""
    for split, (notes, _) in new.items():
        if split in held:
            mine = held[split].notes
            _refuse_held_elsewhere(notes, dict(zip(mine.names, mine.folder)), roots, split)


def _refuse_held_elsewhere(notes: Notes, held: dict, roots: Sequence[Path], split: str):
    """Refuse a note whose name the split holds from another folder (which note the store
    would mean by it is unclear), naming both, and how many such names there are; where the
    store's folder is no longer there (moved), say so."""
    clashes = [i for i, name in enumerate(notes.names)
               if held.get(name, notes.folder[i]) != notes.folder[i]]
    if not clashes:
        return
    i = clashes[0]
    name, k = notes.names[i], held[notes.names[i]]
    many = f" ({len(clashes)} such names)" if len(clashes) > 1 else ""
    if not os.path.lexists(roots[k]):
        raise BuildError(f"note {name!r} of {split} is held by the store from {roots[k]}, which "
                         f"is no longer there, and is in {roots[notes.folder[i]]}{many}; the "
                         f"store records each note's folder: if that folder moved, build the "
                         f"store anew from where it is now (--overwrite)")
    raise BuildError(f"note {name!r} of {split} is in {roots[k]} (held by the store) and in "
                     f"{roots[notes.folder[i]]}{many}; a note's name must be unique across the "
                     f"inputs: rename or leave out one of them (where one is a copy of the "
                     f"other, give {roots[k]} itself, or the new files' folders alone)")
