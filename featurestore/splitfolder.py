"""A split folder read as the notes a build can use: ``examples.json`` paired with
``audio/*.wav``, every entry that cannot be used reported instead of raised (so a build can
record it and go on), and the usable notes kept as columns
(:class:`featurestore.notes.Notes`); a build's several NOTES folders read as one
(:func:`read_splits`).
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .jsonstream import object_members
from .errors import BuildError
from .notes import Notes
from .nsynth import (SPLITS, Example, check_text, find_splits, refuse_a_split_folder,
                     split_folder)
from .files import real_path

__all__ = ["read_split", "read_splits", "check_roots", "found_splits"]

log = logging.getLogger(__name__)


class _JsonObject(dict):
    """A json object that remembers which of its keys were given more than once with different
    values (``json`` alone keeps the last silently)."""

    def __init__(self, pairs):
        super().__init__()
        self.duplicates = set()
        for key, value in pairs:
            if key in self and self[key] != value:
                self.duplicates.add(key)
            self[key] = value


def read_split(split_dir) -> Tuple[Notes, List[Tuple[str, str]]]:
    """Pair the json entries of one split folder with their wav files.

    ``examples.json`` is read one entry at a time and each usable entry kept as a row of
    :class:`Notes`: what reading them holds grows with the notes (the listing of ``audio/``
    and each name's hash), not with the size of the file (docs/scale.md).

    Parameters
    ----------
    split_dir : str or pathlib.Path
        A folder with ``examples.json`` and ``audio/``.

    Returns
    -------
    usable : Notes
        Valid entries that have a wav, sorted by note name (a build's fixed order);
        ``usable[i]`` is ``(Example, pathlib.Path)``.
    problems : list of (str, str)
        ``(name, reason)`` for every json entry without a wav, wav without a json entry and
        invalid entry (also a name or field given twice with different values), sorted by name.

    Raises
    ------
    FileNotFoundError, InputError
        When ``examples.json`` is missing, or is not UTF-8 json holding an object.
    """
    split_dir = Path(split_dir)
    json_path = split_dir / "examples.json"
    audio_dir = split_dir / "audio"
    wavs: Dict[str, str] = {}             # NAME -> .wav (or another case of it)
    more_wavs: Dict[str, List[str]] = {}  # NAME -> [NAME.wav, NAME.WAV, ...] when several fit
    others: Dict[str, str] = {}           # NAME -> NAME.flac, ...
    listed = audio_dir.is_dir()
    if listed:
        with os.scandir(audio_dir) as listing:
            for entry in listing:
                stem, suffix = os.path.splitext(entry.name)
                if suffix.lower() != ".wav":
                    others[stem] = max(others.get(stem, entry.name), entry.name)
                elif stem in wavs:
                    more_wavs.setdefault(stem, [stem + wavs[stem]]).append(entry.name)
                else:
                    wavs[stem] = sys.intern(suffix)
    problems: List[Tuple[str, str]] = []
    seen: Dict[str, int] = {}  # name -> hash of its entry (equal entries, equal hashes)
    named = set()              # names refused whatever their entry says
    clashes = set()            # names given twice with different entries

    def rows():
        for name, entry in object_members(json_path, object_pairs_hook=_JsonObject):
            try:
                digest = hash(_frozen(entry))
            except RecursionError:  # json reads deeper nesting than Python recurses
                named.add(name)
                problems.append((name, "entry nested too deeply"))
                continue
            if name in seen:
                if seen[name] != digest:
                    clashes.add(name)
                continue
            seen[name] = digest
            reason = _name_problem(name, audio_dir, listed, wavs, more_wavs, others)
            if reason:
                named.add(name)
                problems.append((name, reason))
                continue
            twice = sorted(getattr(entry, "duplicates", ()))
            if twice:
                problems.append((name, f"json entry gives {', '.join(twice)} more than once, "
                                       f"with different values"))
                continue
            try:
                example = Example.from_json(name, entry)
            except ValueError as err:
                problems.append((name, str(err)))
                continue
            yield name, wavs[name], example

    notes = Notes.collect(audio_dir, rows())
    problems += [(name, f"wav has no entry in {json_path.name}")
                 for name in wavs if name not in seen]
    wavs.clear()  # freed before the notes are sorted (a copy of their columns)
    seen.clear()
    clashes -= named
    if clashes:
        problems = [(name, why) for name, why in problems if name not in clashes]
        problems += [(name, f"{json_path.name} has several different entries for this name; "
                            f"which one is meant is unclear") for name in clashes]
    names = np.array(notes.names, dtype=object)
    order = np.argsort(names, kind="stable")
    if clashes:
        order = order[[names[i] not in clashes for i in order]]
    del names
    if not np.array_equal(order, np.arange(len(notes))):  # not already in order
        notes = notes.take(order)
    return notes, sorted(problems)


def _name_problem(name: str, audio_dir: Path, listed: bool, wavs: Dict[str, str],
                  more_wavs: Dict[str, List[str]], others: Dict[str, str]) -> Optional[str]:
    """Why the entry called ``name`` cannot be used whatever it says (``None``: it can)."""
    if not name:
        return "json key is empty, not a note name"
    if _is_path(name):
        return ("json key is a path, not a note name (a name has no /, \\ or NUL and is not . "
                "or ..)")
    try:
        check_text({"json key": name}, "json key")
    except ValueError as err:
        return str(err)
    if name in more_wavs:
        return _ambiguous(audio_dir, sorted(more_wavs[name]))
    if name not in wavs:
        why = ("no folder " + str(audio_dir) if not listed else
               f"{others[name]} is there; only .wav files are read" if name in others
               else str(audio_dir / (name + ".wav")))
        return f"json entry has no wav ({why})"
    return None


def _frozen(value):
    """``value`` as something hashable that is equal where json values are equal under
    ``==`` (``60`` and ``60.0``, objects whatever the order of their keys)."""
    if isinstance(value, dict):
        return frozenset((key, _frozen(item)) for key, item in value.items())
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    return value


def _is_path(name: str) -> bool:
    """Whether a json key names anything but a file in ``audio/`` (``../x``, ``a/b``)."""
    return name in ("", ".", "..") or any(c in name for c in "/\\\0")


def _ambiguous(audio_dir: Path, files: List[str]) -> str:
    """The reason for an entry that several files fit (``NAME.wav`` and ``NAME.WAV``)."""
    names = " and ".join(files)
    links = [f"{name} is a link to {os.readlink(audio_dir / name)}" for name in files
             if (audio_dir / name).is_symlink()]
    return (f"ambiguous: {names} both fit this entry" + (f" ({'; '.join(links)})" if links
                                                         else "") + "; keep one")


# ---- several NOTES folders (a build's) --------------------------------------------------

def check_roots(roots) -> Tuple[Path, ...]:
    """The NOTES folders of a build, checked: each one exists, none is given twice."""
    roots = (Path(roots),) if isinstance(roots, (str, os.PathLike)) else tuple(map(Path, roots))
    if not roots:
        raise BuildError("no NOTES folder given")
    seen = {}
    for root in roots:
        if not root.is_dir():
            raise BuildError(f"{root}: " + ("not a folder" if root.exists() else "no such folder"))
        real = real_path(root)
        if real in seen:
            raise BuildError(f"{root}: given twice (also as {seen[real]})")
        seen[real] = root
    return roots


def found_splits(roots: Sequence[Path]) -> List[str]:
    """The splits any of ``roots`` has, in NSynth order; every root must have one. A root's
    other folders, which are not read, are warned of."""
    found = set()
    for root in roots:
        splits = find_splits(root)
        if not splits:
            refuse_a_split_folder(root)
            raise BuildError(f"{root}: no split folder with an examples.json (expected "
                             f"{', '.join(s + '/' for s in SPLITS)}, or nsynth-train/, ... as "
                             f"NSynth's downloads unpack)")
        found.update(splits)
        _warn_of_other_folders(root, [split_folder(root, s) for s in splits])
    return [s for s in SPLITS if s in found]


def _warn_of_other_folders(root: Path, split_dirs: Sequence[Path]):
    """Say which folders beside ``root``'s split folders are not read (class folders given
    with a render's splits)."""
    others = sorted(p.name for p in root.iterdir() if p.is_dir() and p not in split_dirs
                    and not p.name.startswith("."))
    if others:
        log.warning("%s: read as NSynth's layout, its split folders (%s); its other folders "
                    "are not read (%s%s): class folders go in a folder of their own", root,
                    ", ".join(p.name for p in split_dirs), ", ".join(others[:5]),
                    ", ..." if len(others) > 5 else "")


def read_splits(roots: Sequence[Path], split: str) -> Tuple[Notes, List[Tuple[str, str]]]:
    """:func:`read_split` of ``split`` in every one of ``roots`` that has it, merged (a root
    without it gives no notes); ``notes.folder`` indexes ``roots``.

    Raises
    ------
    BuildError
        When a note name is usable in two of the folders (which note the store means by it
        would be unclear), naming both files.
    """
    parts, problems = [], []
    for root in roots:
        folder = split_folder(root, split)
        notes, found = (read_split(folder) if folder is not None
                        else (Notes.collect(root / split / "audio", ()), []))
        parts.append(notes)
        problems += found
    notes = Notes.merge(parts)
    shared = notes.repeated_names()
    if shared:
        i = shared[0]
        a, b = (split_folder(roots[notes.folder[j]], split) / "examples.json" for j in (i - 1, i))
        raise BuildError(f"note {notes.names[i]!r} is in {a} and in {b} ({len(shared)} names of "
                         f"{split} are in two folders); a note's name must be unique across "
                         f"the NOTES folders: rename or leave out one of them")
    return notes, sorted(problems)
