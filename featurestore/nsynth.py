"""NSynth's json/wav layout <-> examples and labels.

A split folder holds ``examples.json`` (a mapping of note name to its fields) and
``audio/NAME.wav``.  :func:`read_split` pairs the two and reports, instead of raising, every
entry that cannot be used, so a build can record it and go on.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

from .errors import InputError

__all__ = ["FAMILIES", "SPLITS", "QUALITIES", "Example", "read_split", "write_split",
           "find_splits"]

#: The 11 instrument families in NSynth's order: ``FAMILIES[label]`` is the family name.
FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed",
            "string", "synth_lead", "vocal")
#: NSynth's split names, in the order a build processes them (train first: it gives the stats).
SPLITS = ("train", "valid", "test")
#: NSynth's note qualities, in the order of the ``qualities`` vector.
QUALITIES = ("bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic",
             "nonlinear_env", "percussive", "reverb", "tempo-synced")
SOURCES = ("acoustic", "electronic", "synthetic")


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
        source_str = str(entry.get("instrument_source_str", ""))
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
        for key in ("note_str", "instrument_str", "instrument_source_str"):
            _check_text(entry, key)
        return cls(
            note_str=str(entry.get("note_str", name)),
            instrument_family=FAMILIES.index(family_str),
            instrument_family_str=family_str,
            instrument=_integer(entry, "instrument", -1, -1, 2**31 - 1),
            instrument_str=str(entry.get("instrument_str", "")),
            instrument_source=source,
            instrument_source_str=source_str,
            pitch=_integer(entry, "pitch", -1, -1, 127),
            velocity=_integer(entry, "velocity", -1, -1, 127),
            sample_rate=_integer(entry, "sample_rate", 16000, 1, 2**31 - 1),
            qualities=tuple(int(q) for q in qualities),
            qualities_str=tuple(str(q) for q in entry.get("qualities_str", ())),
        )

    def to_json(self) -> dict:
        entry = asdict(self)
        entry["qualities"] = list(self.qualities)
        entry["qualities_str"] = list(self.qualities_str)
        return entry


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


def _check_text(entry: dict, key: str):
    """A text field HDF5 can store as UTF-8: no NUL character, no lone surrogate."""
    value = entry.get(key)
    if not isinstance(value, str):
        return
    if "\0" in value:
        raise ValueError(f"{key} holds a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{key} is not valid Unicode (a lone surrogate)") from None


def find_splits(root) -> List[str]:
    """The NSynth split names present under ``root`` (folders with an ``examples.json``)."""
    root = Path(root)
    return [s for s in SPLITS if (root / s / "examples.json").is_file()]


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


def read_split(split_dir) -> Tuple[List[Tuple[Example, Path]], List[Tuple[str, str]]]:
    """Pair the json entries of one split folder with their wav files.

    Parameters
    ----------
    split_dir : str or pathlib.Path
        A folder with ``examples.json`` and ``audio/``.

    Returns
    -------
    usable : list of (Example, pathlib.Path)
        Valid entries that have a wav, sorted by note name (a build's fixed order).
    problems : list of (str, str)
        ``(name, reason)`` for every json entry without a wav, wav without a json entry and
        invalid entry (also a name or field given twice with different values), sorted by name.

    Raises
    ------
    FileNotFoundError, ValueError
        When ``examples.json`` is missing or is not a json object.
    """
    split_dir = Path(split_dir)
    json_path = split_dir / "examples.json"
    try:
        with json_path.open(encoding="utf-8-sig") as fh:  # a byte-order mark is allowed
            entries: Dict[str, dict] = json.load(fh, object_pairs_hook=_JsonObject)
    except FileNotFoundError:
        raise FileNotFoundError(f"{json_path}: no such file") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{json_path}: not UTF-8 text ({err.reason} at byte {err.start})") \
            from None
    except json.JSONDecodeError as err:
        raise InputError(f"{json_path}: not valid json ({err})") from None
    if not isinstance(entries, dict):
        raise InputError(f"{json_path}: expected a json object mapping note names to fields")
    audio_dir = split_dir / "audio"
    files = sorted(audio_dir.iterdir()) if audio_dir.is_dir() else []
    candidates: Dict[str, List[Path]] = {}  # NAME.wav, also NAME.WAV
    for p in files:
        if p.suffix.lower() == ".wav":
            candidates.setdefault(p.stem, []).append(p)
    others = {p.stem: p.name for p in files if p.suffix.lower() != ".wav"}
    usable, problems = [], []
    unmatched = sorted(set(candidates) - set(entries))
    for name in sorted(entries):
        entry = entries.pop(name)  # freed as it goes: the notes' objects reuse its memory
        if _is_path(name):
            problems.append((name, "json key is a path, not a note name (a name has no /, \\ "
                                   "or NUL and is not . or ..)"))
            continue
        try:
            _check_text({"json key": name}, "json key")
        except ValueError as err:
            problems.append((name, str(err)))
            continue
        if len(candidates.get(name, ())) > 1:
            problems.append((name, _ambiguous(candidates[name])))
            continue
        wav = candidates.get(name, [None])[0]
        if wav is None:
            expected = audio_dir / (name + ".wav")
            why = ("no folder " + str(audio_dir) if not audio_dir.is_dir() else
                   f"{others[name]} is there; only .wav files are read" if name in others
                   else str(expected))
            problems.append((name, f"json entry has no wav ({why})"))
            continue
        if name in entries.duplicates:
            problems.append((name, f"{json_path.name} has several different entries for this "
                                   f"name; which one is meant is unclear"))
            continue
        twice = sorted(getattr(entry, "duplicates", ()))
        if twice:
            problems.append((name, f"json entry gives {', '.join(twice)} more than once, with "
                                   f"different values"))
            continue
        try:
            usable.append((Example.from_json(name, entry), wav))
        except ValueError as err:
            problems.append((name, str(err)))
    problems += [(name, f"wav has no entry in {json_path.name}") for name in unmatched]
    return usable, sorted(problems)


def _is_path(name: str) -> bool:
    """Whether a json key names anything but a file in ``audio/`` (``../x``, ``a/b``)."""
    return name in ("", ".", "..") or any(c in name for c in "/\\\0")


def _ambiguous(paths: List[Path]) -> str:
    """The reason for an entry that several files fit (``NAME.wav`` and ``NAME.WAV``)."""
    names = " and ".join(p.name for p in paths)
    links = [f"{p.name} is a link to {os.readlink(p)}" for p in paths if p.is_symlink()]
    return (f"ambiguous: {names} both fit this entry" + (f" ({'; '.join(links)})" if links
                                                         else "") + "; keep one")


def write_split(split_dir, examples: Dict[str, Example]) -> Path:
    """Write ``examples.json`` for a split folder (sorted keys, so it is byte-stable)."""
    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    path = split_dir / "examples.json"
    with path.open("w", encoding="utf-8") as fh:
        json.dump({name: ex.to_json() for name, ex in examples.items()}, fh, indent=1,
                  sort_keys=True)
    return path
