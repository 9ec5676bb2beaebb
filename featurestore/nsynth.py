"""NSynth's json/wav layout: its labels, one note's fields (:class:`Example`), and the split
folders that hold them.

A split folder holds ``examples.json`` (a mapping of note name to its fields) and
``audio/NAME.wav``; :func:`featurestore.splitfolder.read_split` pairs the two.
"""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .errors import BuildError

__all__ = ["FAMILIES", "SPLITS", "QUALITIES", "SOURCES", "MAX_TEXT", "Example", "check_text",
           "write_split", "split_folder", "find_splits", "refuse_a_split_folder", "RENDERING",
           "unfinished_render"]

#: The 11 instrument families in NSynth's order: ``FAMILIES[label]`` is the family name.
FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed",
            "string", "synth_lead", "vocal")
#: NSynth's split names, in the order a build processes them (train first: it gives the stats).
SPLITS = ("train", "valid", "test")
#: NSynth's note qualities, in the order of the ``qualities`` vector.
QUALITIES = ("bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic",
             "nonlinear_env", "percussive", "reverb", "tempo-synced")
SOURCES = ("acoustic", "electronic", "synthetic")
#: The hidden folder of a render's output that holds its splits until every one is written
#: (:func:`featurestore.renderfolder.rendering`).
RENDERING = ".rendering"


@dataclass(frozen=True)
class Example:
    """One labelled note, as NSynth's ``examples.json`` describes it."""

    note_str: str
    instrument_family: int
    instrument_family_str: str
    instrument: int
    instrument_str: str
    instrument_source: int
    instrument_source_str: str
    pitch: int
    velocity: int
    sample_rate: int
    qualities: Tuple[int, ...] = (0,) * len(QUALITIES)
    qualities_str: Tuple[str, ...] = field(default=())

    @classmethod
    def from_json(cls, name: str, entry: dict) -> "Example":
        """Validate one json entry; raises ``ValueError`` naming the field and what is wrong."""
        if not isinstance(entry, dict):
            raise ValueError("entry is not a json object")
        family = _integer(entry, "instrument_family", None, 0, len(FAMILIES) - 1)
        family_str = entry.get("instrument_family_str")
        if family_str is None and family is not None:
            family_str = FAMILIES[family]
        if family_str is None:
            raise ValueError("missing instrument_family_str (and instrument_family)")
        if family_str not in FAMILIES:
            raise ValueError(f"unknown instrument family {family_str!r} "
                             f"(expected one of {', '.join(FAMILIES)})")
        if family is not None and family != FAMILIES.index(family_str):
            raise ValueError(f"instrument_family {family} does not match "
                             f"instrument_family_str {family_str!r}")
        for key in ("note_str", "instrument_str", "instrument_source_str"):
            _check_is_text(entry, key)
            check_text(entry, key)
        source_str = entry.get("instrument_source_str", "")
        known = SOURCES.index(source_str) if source_str in SOURCES else -1
        source = _integer(entry, "instrument_source", known, -1, len(SOURCES) - 1)
        if known >= 0 and source != known:
            raise ValueError(f"instrument_source {source} does not match "
                             f"instrument_source_str {source_str!r}")
        if not source_str and source >= 0:
            source_str = SOURCES[source]
        qualities = entry.get("qualities", [0] * len(QUALITIES))
        if not isinstance(qualities, list) or len(qualities) != len(QUALITIES) \
                or any(q not in (0, 1) or isinstance(q, bool) for q in qualities):
            raise ValueError(f"qualities must be a list of {len(QUALITIES)} values 0 or 1, "
                             f"got {qualities!r}")
        qualities_str = entry.get("qualities_str", [])
        if not isinstance(qualities_str, list) or len(set(map(str, qualities_str))) != len(
                qualities_str) or not all(q in QUALITIES for q in qualities_str):
            raise ValueError(f"qualities_str must be a list of distinct quality names (of "
                             f"{', '.join(QUALITIES)}), got {_shown(qualities_str)}")
        qualities_str = tuple(QUALITIES[QUALITIES.index(q)] for q in qualities_str)  # shared
        return cls(
            note_str=entry.get("note_str", name),
            instrument_family=FAMILIES.index(family_str),
            instrument_family_str=family_str,
            instrument=_integer(entry, "instrument", -1, -1, 2**31 - 1),
            instrument_str=entry.get("instrument_str", ""),
            instrument_source=source,
            instrument_source_str=source_str,
            pitch=_integer(entry, "pitch", -1, -1, 127),
            velocity=_integer(entry, "velocity", -1, -1, 127),
            sample_rate=_integer(entry, "sample_rate", 16000, 1, 2**31 - 1),
            qualities=tuple(int(q) for q in qualities),
            qualities_str=qualities_str,
        )

    def to_json(self) -> dict:
        entry = asdict(self)
        entry["qualities"] = list(self.qualities)
        entry["qualities_str"] = list(self.qualities_str)
        return entry


def _shown(value, limit: int = 40) -> str:
    """``value``'s repr, at most ``limit`` characters of it, for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_is_text(entry: dict, key: str):
    """Raise ``ValueError`` when ``entry[key]`` is there and is not text."""
    value = entry.get(key, "")
    if not isinstance(value, str):
        raise ValueError(f"{key} must be text, got {type(value).__name__} {_shown(value)}")


def _integer(entry: dict, key: str, default, low: int, high: int):
    """``entry[key]`` as an int within ``[low, high]`` (``default`` when absent); whole-number
    floats and strings are taken, anything else is a ``ValueError`` naming the field."""
    if key not in entry:
        return default
    value = number = entry[key]
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    whole = isinstance(number, str) and re.fullmatch(r"\s*[+-]?(\d+)(\.0*)?\s*", number)
    if whole and len(whole.group(1).lstrip("0")) > 18:  # beyond any field's range
        raise ValueError(f"{key} {shown} is out of range ({low}..{high})")
    if whole:
        number = int(whole.group(1)) * (-1 if number.strip().startswith("-") else 1)
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int):
        raise ValueError(f"{key} {shown} is not an integer")
    if not low <= number <= high:
        raise ValueError(f"{key} {number} is out of range ({low}..{high})")
    return number


#: The most characters a note's text (a name, a path, a field) may have: a path's most on
#: Linux; what a store keeps of an input is bounded by what it keeps of its notes.
MAX_TEXT = 4096


def check_text(entry: dict, key: str, *, longest: Optional[int] = MAX_TEXT):
    """Raise ``ValueError`` unless ``entry[key]``, when it is text, is what HDF5 can store as
    UTF-8 (no NUL character, no lone surrogate) and at most ``longest`` characters (``None``:
    any length, for free text such as a manifest's other columns)."""
    value = entry.get(key)
    if not isinstance(value, str):
        return
    if longest is not None and len(value) > longest:
        raise ValueError(f"{key} is {len(value)} characters long (at most {longest})")
    if "\0" in value:
        raise ValueError(f"{key} holds a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{key} is not valid Unicode (a lone surrogate)"
                         + _locale_hint(value)) from None


def _locale_hint(name: str) -> str:
    """Why a name that is UTF-8 on disk was read with lone surrogates: Python reads names in
    its locale's encoding (``LC_ALL=C`` with ``PYTHONUTF8=0``: ASCII), and the fix."""
    encoding = sys.getfilesystemencoding()
    try:
        os.fsencode(name).decode("utf-8")
    except (UnicodeError, ValueError):
        return ""
    return (f"; its bytes are UTF-8, but this Python reads names as {encoding} (its locale): "
            f"run it with PYTHONUTF8=1 or LC_ALL=C.UTF-8" if encoding.lower() != "utf-8" else "")


def split_folder(root, split: str) -> Optional[Path]:
    """The folder of ``split`` under ``root``: ``SPLIT/``, or ``nsynth-SPLIT/`` as NSynth's
    downloads unpack (``nsynth-train.jsonwav.tar.gz``), whichever holds an ``examples.json``;
    ``None`` where neither does.

    Raises
    ------
    BuildError
        When both do: which one is the split would be a guess.
    """
    root = Path(root)
    found = [root / name for name in (split, f"nsynth-{split}")
             if (root / name / "examples.json").is_file()]
    if len(found) > 1:
        raise BuildError(f"{root}: both {split}/ and nsynth-{split}/ hold an examples.json; "
                         f"which one is the {split} split? Move the other one out")
    return found[0] if found else None


def refuse_a_split_folder(path) -> None:
    """Raise :class:`BuildError` when ``path`` is one split's folder (``examples.json`` and
    ``audio/`` at its top) given where the folder holding the splits is expected, saying which
    to give."""
    path = Path(path)
    if not ((path / "examples.json").is_file() and (path / "audio").is_dir()):
        return
    named = path.name in SPLITS or path.name in [f"nsynth-{s}" for s in SPLITS]
    raise BuildError(f"{path}: holds an examples.json, so it is one split's folder; give the "
                     f"folder holding the splits" + (
                         f": {path.parent}" if named else
                         ", with this one in it named train/, valid/ or test/ (or "
                         "nsynth-train/, ... as NSynth's downloads unpack); or, for class "
                         "folders, --layout folders"))


def find_splits(root) -> List[str]:
    """The NSynth split names present under ``root`` (:func:`split_folder`)."""
    return [s for s in SPLITS if split_folder(root, s) is not None]


def unfinished_render(root) -> bool:
    """Whether ``root`` holds the work of a render that has not finished: one still writing,
    or one stopped before (or while) its splits were moved in. Its splits are then not all
    there yet."""
    work = Path(root) / RENDERING
    return work.is_dir() and next(work.iterdir(), None) is not None


def write_split(split_dir, examples: Dict[str, Example], *, first_note: int = 0) -> Path:
    """Write ``examples.json`` for a split folder (sorted keys, so it is byte-stable).

    Each entry gets NSynth's ``note``, a whole number unique in the dataset: ``first_note``
    plus the entry's place in name order (a caller writing several splits passes the number
    of notes written before)."""
    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    path = split_dir / "examples.json"
    entries = {name: dict(examples[name].to_json(), note=first_note + i)
               for i, name in enumerate(sorted(examples))}
    with path.open("w", encoding="utf-8") as fh:
        json.dump(entries, fh, indent=1, sort_keys=True)
    return path
