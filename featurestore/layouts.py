"""The labelled audio a build can read, in three layouts, each read as the notes of every split
(:class:`Inputs`):

``nsynth``
    ``ROOT/{train,valid,test}/examples.json`` and ``audio/NAME.wav``, the split folders also
    named ``nsynth-train/``, ... as NSynth's downloads unpack (:mod:`featurestore.nsynth`); the
    label set is NSynth's 11 families.
``folders``
    One folder per class: ``ROOT/{train,valid,test}/LABEL/**/FILE`` (the split folders also
    spelt as :data:`featurestore.rows.SPLIT_NAMES` says, valid drawn from train's files where
    it has no folder), or ``ROOT/LABEL/**/FILE`` with the splits drawn by the build
    (:func:`drawn_split`). A note's name is its file's path below the split folder
    (``LABEL/FILE``).
``manifest``
    A CSV file with the columns ``path`` (relative to the CSV's folder, or absolute) and
    ``label``, and optionally ``split`` (``train``, ``valid`` or ``test``, or another spelling
    of them; empty: drawn) and ``group``, or the columns ``InputOptions.columns`` names for
    them; any other column is kept as metadata text. A note's name is its ``path`` as written.

Outside NSynth's layout the label set is every label the inputs hold, sorted, and a note's
group is what no two drawn splits share: the ``group`` column, else the part of the file's name
that ``group_by`` (a regular expression: its first group, or its whole match) picks out, else
the file itself (files of one path but for their endings share a group). A row or file that
cannot be used is a problem ``(name, reason)``, recorded in ``/skipped`` as a bad note is.

With ``windows`` (a hop in seconds) each file becomes one note per window
(:func:`featurestore.windows.window_offsets`: one for a file no longer than a clip), named
``NAME@OFFSET``; all of a file's windows are in one split. Undrawn rows of a manifest whose
group has rows with a split go to that split.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import BuildError, counted
from .nsynth import (FAMILIES, QUALITIES, RENDERING, SPLITS, find_splits,
                     refuse_a_split_folder, split_folder, unfinished_render)
from .rows import AUDIO_SUFFIXES, Row, folder_rows, manifest_rows
from .notes import Notes
from .overlap import check_splits_apart, warn_of_files_in_several_splits
from .splitfolder import check_roots, found_splits, read_splits
from .offsets import warn_of_gaps
from .inputoptions import LAYOUTS, InputOptions
from .windows import windowed_notes
from .files import real_path

__all__ = ["LAYOUTS", "AUDIO_SUFFIXES", "InputOptions", "Inputs", "read_inputs", "detect_layout",
           "drawn_split"]

log = logging.getLogger(__name__)

@dataclass
class Inputs:
    """Every split's notes, read from one layout.

    Attributes
    ----------
    layout : str
        The layout read (never ``'auto'``).
    roots : tuple of pathlib.Path
        The folders the notes' files are in (``/source_folder``): the NOTES folders, or each
        manifest's folder.
    labels : tuple of str
        The label set: NSynth's families, or every label found, sorted.
    splits : dict
        ``split -> (Notes, problems)``, in :data:`SPLITS` order; ``notes.folder`` indexes
        ``roots``.
    drawn : bool
        Whether the build put some file in a split (by its group, or drawn): the input
        options then decide which notes a split holds.
    drawn_names : dict
        ``split -> set`` of the names of the notes the build put in it (before ``windows``
        cut them: ``NAME``, not ``NAME@OFFSET``).
    """

    layout: str
    roots: Tuple[Path, ...]
    labels: Tuple[str, ...]
    splits: Dict[str, Tuple[Notes, List[Tuple[str, str]]]] = field(default_factory=dict)
    drawn: bool = False
    drawn_names: Dict[str, set] = field(default_factory=dict)

    def where(self, split: str) -> str:
        """The inputs of a split, for messages."""
        if self.layout == "nsynth":
            return " and ".join(str(folder) for folder in (split_folder(r, split)
                                                           for r in self.roots) if folder)
        return " and ".join(map(str, self.roots)) + f" ({split})"


def detect_layout(path: Path) -> str:
    """``'manifest'`` for a CSV file, ``'nsynth'`` for a folder with ``SPLIT/examples.json``,
    ``'folders'`` for any other folder."""
    if not path.is_dir():
        if path.suffix.lower() == ".csv":
            return "manifest"
        raise BuildError(f"{path}: not a folder (a manifest is a .csv file, given with "
                         f"--manifest)")
    if find_splits(path):
        return "nsynth"
    refuse_a_split_folder(path)
    return "folders"


def _kind(path: Path, layout: str) -> str:
    """What a folder of ``layout`` holds, for a message."""
    if layout != "folders":
        return {"nsynth": "NSynth's layout", "manifest": "a manifest"}[layout]
    if any(path.glob("*.h5")):
        return "a store, not notes"
    return "class folders" if next(path.iterdir(), None) is not None else "an empty folder"


def drawn_split(group: str, valid_fraction: float, test_fraction: float) -> str:
    """The split a group's files go to when the inputs give none: decided by a hash of the
    group's name alone, so it is the same on every machine and for every build, and a group
    added later never moves the others.

    Examples
    --------
    >>> drawn_split("violin_take1", 0.1, 0.1) in ("train", "valid", "test")
    True
    """
    h = int.from_bytes(hashlib.sha1(group.encode("utf-8", "surrogatepass")).digest()[:8],
                       "big") / 2 ** 64
    return "test" if h < test_fraction else "valid" if h < test_fraction + valid_fraction \
        else "train"


def read_inputs(paths: Sequence, options: InputOptions = InputOptions(), *,
                clip_seconds: float = 4.0) -> Inputs:
    """Read every split of one or more inputs of one layout.

    Parameters
    ----------
    paths : sequence of str or pathlib.Path
        NOTES folders, or manifest CSV files.
    options : InputOptions
    clip_seconds : float
        A clip's length (the features' duration), for ``options.windows``.

    Returns
    -------
    Inputs

    Raises
    ------
    BuildError
        A missing input, inputs of different layouts, a layout that does not fit, a manifest
        without its columns, or a note name two inputs share (in one split or in two).
    """
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not paths:
        raise BuildError("no NOTES folder or manifest given")
    for p in paths:
        if not p.exists():
            raise BuildError(f"{p}: " + ("no such file" if p.suffix.lower() == ".csv"
                                         else "no such folder"))
        if p.is_dir():
            try:
                os.scandir(p).close()
            except OSError as err:
                raise BuildError(f"{p}: the folder cannot be read ({err.strerror})") from None
            if unfinished_render(p):
                raise BuildError(f"{p}: a render into this folder has not finished (its "
                                 f"{RENDERING} folder holds the splits not moved in yet); wait "
                                 f"for it to end, or, if it was stopped, render again " + (
                                     "into a new folder (it had moved a split in)"
                                     if find_splits(p) else "into it (the render starts over)"))
    layout = options.layout
    if layout == "auto":
        layouts = {p: detect_layout(p) for p in paths}
        kinds = sorted(set(layouts.values()))
        if len(kinds) > 1:
            raise BuildError("the inputs are of different layouts (" + "; ".join(
                f"{p}: {_kind(p, k)}" for p, k in layouts.items()) + "); a store holds notes "
                "of one layout: build them one layout at a time")
        layout = kinds[0]
    wrong = [p for p in paths if (layout == "manifest") != p.is_file()]
    if wrong:
        what = "a folder" if wrong[0].is_dir() else "not a regular file"
        raise BuildError(f"{wrong[0]}: " + (f"a manifest is a CSV file; this is {what}"
                                            if layout == "manifest" else "not a folder"))
    if options.columns and layout != "manifest":
        raise BuildError(f"--columns {options.columns}: names a manifest's columns; these "
                         f"inputs are {_kind(paths[0], layout)}")
    if layout == "nsynth":
        if options.group_by is not None:
            raise BuildError("--group-by: NSynth's layout gives each note's split; group_by "
                             "applies to the folder and manifest layouts")
        roots = check_roots(paths)
        inputs = Inputs(layout, roots, FAMILIES,
                        {split: read_splits(roots, split) for split in found_splits(roots)})
    elif layout == "folders":
        roots = check_roots(paths)
        inputs = _read_rows(layout, roots, [folder_rows(root, told=options.layout == layout)
                                             for root in roots], options)
    else:
        roots = tuple(sorted({real_path(p).parent for p in paths}))
        rows, listed = [[] for _ in roots], [{} for _ in roots]  # a folder's paths: manifest
        for p in paths:
            k = roots.index(real_path(p).parent)
            for row in manifest_rows(p, options.column_names):
                other = listed[k].setdefault(row.file, p) if row.file else p
                if other != p:
                    raise BuildError(f"{row.name!r} is listed by {other} and by {p}; a file is "
                                     f"one note: list it in one manifest")
                rows[k].append(row)
        inputs = _read_rows(layout, roots, rows, options)
    check_splits_apart([(split, notes) for split, (notes, _) in inputs.splits.items()],
                       layout=layout)
    warn_of_files_in_several_splits(inputs.splits)
    if options.windows is not None:
        warn_of_gaps(options.windows, clip_seconds)
        for split, (notes, problems) in inputs.splits.items():
            inputs.splits[split] = windowed_notes(notes, problems, clip_seconds, options.windows)
    return inputs


def _group(row: Row, group_by: Optional[re.Pattern], twins: set) -> Tuple[str, bool]:
    """A row's group, and whether the row or ``group_by`` gave it: its own (a manifest's
    ``group``), else what ``group_by`` matches in its file's name, or in its path where the
    pattern holds a ``/`` (below the split folder, its class folder first, or as a manifest
    writes it), else the file itself, but for the ending where another file shares the rest of
    its path (``twins``)."""
    if row.group:
        return row.group, True
    if group_by is not None:
        found = group_by.search(row.name if "/" in group_by.pattern else Path(row.file).name)
        group = found and (found.group(1) if found.re.groups else found.group(0))
        if group:  # no match, an optional group left out or an empty match: the file alone
            return group, True
    stem = os.path.splitext(row.file)[0]
    return (stem if stem in twins else row.file), False


def _twins(rows: Sequence[Row]) -> set:
    """The paths (without their endings) of files that share one with another file, in
    another format or its ending's case (``a.wav``, ``a.flac``, ``a.WAV``), warned of: the
    same recording twice, which is kept in one split."""
    stems: Dict[str, List[str]] = defaultdict(list)
    for row in rows:
        if not row.problem:
            stems[os.path.splitext(row.file)[0]].append(row.file)
    twins = {stem for stem, files in stems.items() if len(files) > 1}
    if twins:
        first = stems[min(twins)]
        log.warning("%s share their name but for the ending with another (first: %s): the "
                    "same recording in two formats? Each is a note, the files of a name kept "
                    "in one split; keep one of them", counted(sum(len(stems[s]) for s in twins),
                                                               "file"), ", ".join(first))
    return twins


def _read_rows(layout: str, roots: Tuple[Path, ...], rows_of: List[List[Row]],
               options: InputOptions) -> Inputs:
    """The notes of every split from each root's rows (drawing splits where none is given)."""
    group_by = re.compile(options.group_by) if options.group_by else None
    grouped, unmatched = [], 0
    for k, rows in enumerate(rows_of):
        twins = _twins(rows)
        for row in rows:
            group, matched = _group(row, group_by, twins)
            grouped.append((k, row, group))
            unmatched += group_by is not None and not row.group and not matched
    if unmatched:
        log.warning("--group-by %s found no group (no match, or an empty one) in %d of the %d "
                    "file names: each of those files is a group of its own",
                    shlex.quote(options.group_by), unmatched, len(grouped))
    given: Dict[str, set] = defaultdict(set)  # the splits the inputs give each group's files
    for _, row, group in grouped:
        if row.split and not row.problem:
            given[group].add(row.split)
    split_between = sorted(group for group, splits in given.items() if len(splits) > 1)
    if split_between:
        log.warning("%d groups have files in several of the splits the inputs give (first: "
                    "%r in %s)", len(split_between), split_between[0],
                    ", ".join(sorted(given[split_between[0]])))
    by_split: Dict[str, List[Tuple[int, Row, str]]] = defaultdict(list)
    problems: Dict[str, List[Tuple[str, str]]] = defaultdict(list)
    drawn: Dict[str, set] = defaultdict(set)  # split -> the names of the files drawn into it
    into = set()  # the splits a draw could give
    for k, row, group in grouped:
        split = row.split
        if row.draws_valid:  # a file of train's folder, where valid's is missing
            split, reach = drawn_split(group, options.valid_fraction, 0), ("valid",)
        elif not split and len(given[group]) == 1:  # with the rest of its group
            split, reach = next(iter(given[group])), ()
        elif not split:
            split = drawn_split(group, options.valid_fraction, options.test_fraction)
            reach = ("valid", "test")
        else:
            reach = None  # the inputs give its split
        if row.problem:
            problems[split].append((row.name, row.problem))
            continue
        by_split[split].append((k, row, group))
        if reach is not None:
            drawn[split].add(row.name)
            into.update(reach)
    if into:
        _check_drawn(roots, by_split, options, into)
    labels = tuple(sorted({row.label for rows in by_split.values() for _, row, _ in rows}))
    _warn_of_labels_alike(labels)
    inputs = Inputs(layout, roots, labels, drawn=bool(drawn), drawn_names=dict(drawn))
    columns = sorted({key for _, row, _ in grouped for key in row.meta})  # in every split
    for split in SPLITS:
        if split not in by_split and split not in problems:
            continue
        parts = []
        for k in range(len(roots)):
            mine = [(row, group) for j, row, group in by_split.get(split, []) if j == k]
            parts.append(_notes(roots[k], mine, columns))
        notes = Notes.merge(parts)
        _refuse_shared_names(notes, roots, split)
        inputs.splits[split] = notes, sorted(problems.get(split, []))
    return inputs


def _warn_of_labels_alike(labels: Sequence[str]):
    """Warn of labels that differ only in their case or the spaces around them (``Violin``,
    ``violin``, ``violin ``): most likely one class spelt two ways, which the store keeps
    apart."""
    alike: Dict[str, List[str]] = defaultdict(list)
    for label in labels:
        alike[label.strip().casefold()].append(label)
    spelt = [names for names in alike.values() if len(names) > 1]
    if spelt:
        log.warning("%s differ only in their case or spaces (first: %s): each is a class of "
                    "its own; give them one spelling if they are one", counted(
                        sum(map(len, spelt)), "label"), ", ".join(map(repr, spelt[0])))


def _check_drawn(roots, by_split: dict, options: InputOptions, into: set):
    """Refuse drawn splits that leave train nothing, and warn of an empty valid or test that a
    draw could give (``into``)."""
    groups = {group for rows in by_split.values() for _, _, group in rows}
    files = sum(map(len, by_split.values()))
    where = ", ".join(map(str, roots))
    none = f"none of the {len(groups)} groups was" if len(groups) > 1 else "the one group was not"
    one = f"all {files} files are in one group, {min(groups)!r}" if files > len(groups) == 1 else ""
    if not by_split.get("train"):
        raise BuildError(f"{where}: {none} drawn into train ({one and one + '; '}valid "
                         f"{options.valid_fraction:g}, test {options.test_fraction:g} of the "
                         f"groups); give more groups, smaller fractions, or the splits")
    held = {split: {group for _, _, group in rows} for split, rows in by_split.items()}
    log.info("%s: splits drawn by group: %s", where, ", ".join(
        f"{split} {counted(len(held[split]), 'group')} ({counted(len(by_split[split]), 'file')})"
        for split in SPLITS if split in by_split))
    for split in sorted(into, reverse=True):  # valid, test
        if getattr(options, f"{split}_fraction") == 0:  # none asked for
            continue
        if not by_split.get(split):
            log.warning("%s: %s drawn into %s%s", where, none, split, one and f" ({one})")
        elif len(held[split]) < 3 < len(groups):
            log.warning("%s: %s holds %s of the %d (asked: %g of them): its score is of those "
                        "alone, and swings with them; give more groups, or the splits", where,
                        split, counted(len(held[split]), "group"), len(groups),
                        getattr(options, f"{split}_fraction"))


def _notes(root: Path, rows: List[Tuple[Row, str]], columns: Sequence[str]) -> Notes:
    """One root's rows as :class:`Notes`, sorted by name, NSynth's columns "not known", and
    each of a manifest's ``columns`` (empty text where a row has none)."""
    rows = sorted(rows, key=lambda item: item[0].name)
    n, shared = len(rows), {}

    def text(values):
        return [shared.setdefault(v, v) for v in values]
    return Notes(
        (root,), folder=np.zeros(n, np.int16), names=[row.name for row, _ in rows],
        files=[row.file for row, _ in rows], label=text(row.label for row, _ in rows),
        offset=np.zeros(n), group=text(group for _, group in rows),
        source=np.full(n, -1, np.int8), pitch=np.full(n, -1, np.int16),
        velocity=np.full(n, -1, np.int16), instrument=np.full(n, -1, np.int32),
        sample_rate=np.zeros(n, np.int32), qualities=np.zeros((n, len(QUALITIES)), np.uint8),
        note_str=[row.name for row, _ in rows], instrument_str=text(group for _, group in rows),
        instrument_source_str=text("" for _ in rows), qualities_str=text(() for _ in rows),
        meta={key: [row.meta.get(key, "") for row, _ in rows] for key in columns})


def _refuse_shared_names(notes: Notes, roots: Sequence[Path], split: str):
    shared = notes.repeated_names()
    if shared:
        i = shared[0]
        a, b = (roots[notes.folder[j]] / notes.files[j] for j in (i - 1, i))
        twice = "it is the one name" if len(shared) == 1 else f"{len(shared)} names are"
        raise BuildError(f"note {notes.names[i]!r} of {split} is both {a} and {b} ({twice} "
                         f"given twice); a note's name must be unique across the inputs: rename "
                         f"or leave out one of them")
