"""What would put one note in two splits, so that a model is tested on what it heard: a note
name two inputs give in different splits (refused), and one audio file in two splits, a name
one NSynth folder gives in two of its splits, copies under one name in two splits of a folder
of class folders, or an NSynth instrument in train and in valid or test (warned of)."""
from __future__ import annotations

import filecmp
import itertools
import logging
import os
from collections import defaultdict
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np

from .errors import BuildError, counted
from .notes import Notes

__all__ = ["check_splits_apart", "refuse_names_in_two_splits", "warn_of_files_in_several_splits",
           "warn_of_instruments_heard_in_training"]

log = logging.getLogger(__name__)


def check_splits_apart(splits: Sequence[Tuple[str, Notes]], *, layout: str):
    """:func:`refuse_names_in_two_splits`, then, in NSynth's layout,
    :func:`warn_of_instruments_heard_in_training`."""
    refuse_names_in_two_splits(splits, layout=layout)
    if layout == "nsynth":
        warn_of_instruments_heard_in_training(splits)


def refuse_names_in_two_splits(splits: Sequence[Tuple[str, Notes]], *, layout: str):
    """Refuse a note name that two folders give in two different splits, naming both files.

    A name is one note across a build's inputs (two folders may not share one in a split
    either), and the same name in train and in valid or test most likely is one note heard in
    training and scored again. The same name from one folder in two splits is two files that
    folder lays out (``train/cello/1.wav`` and ``test/cello/1.wav``), but for a manifest's,
    which names the file itself (refused: a store's note, and a row that now gives it another
    split); in NSynth's layout, whose names are unique across a dataset, it is warned of.

    Parameters
    ----------
    splits : sequence of (str, Notes)
        Each split's notes, ``notes.folder`` indexing the same folders in every one; a split
        may come more than once (a store's notes and the notes added to them).
    layout : str
        The inputs' layout (``'nsynth'``, ``'folders'`` or ``'manifest'``).

    Raises
    ------
    BuildError
        A name given in two splits by two folders, or a manifest's file in two splits.
    """
    same_folder, clashes = [], []  # ((a, one, i), (b, two, j)): a name in splits a and b
    for rows in _same_names([notes for _, notes in splits]):
        for (k, i), (m, j) in itertools.combinations(rows, 2):
            (a, one), (b, two) = splits[k], splits[m]
            if a != b:
                (clashes if one.folder[i] != two.folder[j] or layout == "manifest"
                 else same_folder).append(((a, one, i), (b, two, j)))
    if clashes:
        (a, one, i), (b, two, j) = clashes[0]
        if one.folder[i] == two.folder[j]:  # a manifest's name is its file: one note, one split
            raise BuildError(f"{one.path(i)} is in {a} and in {b} (a store's note, and a "
                             f"manifest row that gives it another split?): a file is one "
                             f"note of one split; rebuild with --overwrite to move it")
        count = len({one.names[i] for (_, one, i), _ in clashes})
        many = f" ({count} such names)" if count > 1 else ""
        raise BuildError(f"note {one.names[i]!r} is in {a} ({one.path(i)}) and in {b} "
                         f"({two.path(j)}){many}; a note's name must be unique across the "
                         f"inputs, and a note in two splits would be scored after it was "
                         f"heard: rename or leave out one of them")
    if same_folder and layout == "nsynth":
        (a, one, i), (b, _, _) = same_folder[0]
        log.warning("%d note names are in two splits of one NOTES folder (first: %r, in %s and "
                    "%s): if they are one note, a model tested on it has heard it",
                    len(same_folder), one.names[i], a, b)
    elif same_folder:  # train/cello/1.wav and test/cello/1.wav: two recordings, or a copy
        pairs = dict.fromkeys((one.path(i), two.path(j)) for (_, one, i), (_, two, j)
                              in same_folder)  # a file's windows: one pair
        copies = [pair for pair in pairs if _same_content(*pair)]
        if copies:
            log.warning("%d files in two splits of one NOTES folder are copies of one "
                        "another (first: %s and %s): a model tested on them has heard them",
                        len({path for pair in copies for path in pair}), *copies[0])


def _same_content(one, two) -> bool:
    """Whether two files hold the same bytes (read until they differ; unreadable: no)."""
    try:
        return filecmp.cmp(one, two, shallow=False)
    except OSError:
        return False


def _same_names(parts: Sequence[Notes]) -> Iterator[List[Tuple[int, int]]]:
    """Each name that more than one row of ``parts`` gives, as its ``(part, row)`` s, in the
    order of their first rows (whatever Python's hash seed); found by sorting the names'
    hashes (a few bytes a note, whatever the names' lengths)."""
    if not parts:
        return
    hashes = np.concatenate([np.fromiter(map(hash, notes.names), np.int64, len(notes))
                             for notes in parts])
    part = np.repeat(np.arange(len(parts)), [len(notes) for notes in parts])
    row = np.concatenate([np.arange(len(notes)) for notes in parts])
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, len(ordered)])
    starts, sizes = starts[sizes > 1], sizes[sizes > 1]
    for g in np.argsort(order[starts], kind="stable"):  # by each group's first row (stable)
        by_name = defaultdict(list)  # equal hashes, most likely one name
        for k in order[starts[g]:starts[g] + sizes[g]]:
            by_name[parts[part[k]].names[row[k]]].append((int(part[k]), int(row[k])))
        yield from (rows for rows in by_name.values() if len(rows) > 1)


def warn_of_files_in_several_splits(splits: Dict[str, Tuple[Notes, list]]):
    """Warn when one audio file (the same file under two names: a link, or a path given twice)
    is in two splits, where a model tested on its notes has heard them, or has two labels (a
    link from one class folder to another's files, a manifest's two paths of one file).

    Parameters
    ----------
    splits : dict
        ``split -> (Notes, problems)``, as :class:`featurestore.layouts.Inputs` holds them.
    """
    first: Dict[Tuple[int, int], Tuple[str, os.PathLike, str]] = {}
    shared, relabelled = [], []
    for split, (notes, _) in splits.items():
        for i in range(len(notes)):
            path = notes.path(i)
            try:
                info = os.stat(path)
            except OSError:  # the build reports it with the note
                continue
            seen = first.setdefault((info.st_dev, info.st_ino), (split, path, notes.label[i]))
            if seen[0] != split:
                shared.append((seen, (split, path)))
            elif seen[2] != notes.label[i]:
                relabelled.append((seen, (path, notes.label[i])))
    if shared:
        (split, path, _), (other, again) = shared[0]
        log.warning("the same audio file is in two splits (notes: %d; first: %s, in %s, is %s, "
                    "in %s): a model tested on it has heard it", len(shared), path, split, again,
                    other)
    if relabelled:
        (_, path, label), (again, other) = relabelled[0]
        log.warning("the same audio file has two labels (notes: %d; first: %s, labelled %r, is "
                    "%s, labelled %r; a link, or one file written two ways): which label is it?",
                    len(relabelled), path, label, again, other)


def warn_of_instruments_heard_in_training(splits: Sequence[Tuple[str, Notes]]):
    """Warn when an instrument (NSynth's ``instrument_str``, each note's ``group``) has notes in
    train and in valid or test: a model scored on them has heard that instrument. NSynth keeps
    train's instruments out of valid and test (which may share theirs); two renders of one
    SoundFont with other seeds or pitches give one instrument other note names, in any split.

    Parameters
    ----------
    splits : sequence of (str, Notes)
        Each split's notes; a split may come more than once (a store's and those added).
    """
    heard: Dict[str, str] = {}  # instrument -> a train note's file
    for split, notes in splits:
        if split == "train":
            for i, group in enumerate(notes.group):
                if group not in heard:
                    heard[group] = str(notes.path(i))
    shared: Dict[str, Tuple[str, str]] = {}
    for split, notes in splits:
        if split != "train":
            for i, group in enumerate(notes.group):
                if group in heard and group not in shared:
                    shared[group] = (split, str(notes.path(i)))
    if shared:
        group, (split, path) = next(iter(shared.items()))
        log.warning("%s with notes in train and in valid or test (first: %r, in train at %s "
                    "and in %s at %s): a model scored on them has heard the instrument",
                    counted(len(shared), "instrument"), group, heard[group], split, path)
