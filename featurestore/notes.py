"""A split's notes as columns (:class:`Notes`): what a build reads from any layout and a store
records, a row per note, text shared between the notes that repeat it."""
from __future__ import annotations

import dataclasses
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Tuple

import numpy as np

from .nsynth import FAMILIES, QUALITIES, Example

__all__ = ["Notes"]


#: Notes' number columns: typecode, and the Example field each holds.
_NUMBERS = {"source": ("b", "instrument_source"),
            "pitch": ("h", "pitch"), "velocity": ("h", "velocity"),
            "instrument": ("i", "instrument"), "sample_rate": ("i", "sample_rate")}
#: Notes' text columns whose values repeat: each note holds a reference to a shared value.
_SHARED = ("instrument_str", "instrument_source_str", "qualities_str")
#: Notes' columns that are not arrays of numbers nor lists: what :meth:`Notes.take` and
#: :meth:`Notes.merge` treat on their own.
_OWN = ("audio_dirs", "meta")


@dataclass(frozen=True, eq=False)
class Notes(Sequence):
    """A split's usable notes as columns, one row per note: its name, numbers in arrays and
    text as references to shared strings: a fraction of what an :class:`Example` and a
    ``Path`` per note keep (docs/scale.md has the memory a split's notes take).

    The notes of other layouts (:mod:`featurestore.layouts`) fill NSynth's columns with "not
    known" (-1, empty text). ``notes[i]`` is ``(Example, pathlib.Path)``; the columns are what
    a store records.

    Attributes
    ----------
    audio_dirs : tuple of pathlib.Path
        The folders the notes' ``files`` are in (NSynth: ``audio/``; one, or one per NOTES
        folder of a build).
    folder : np.ndarray, int16, shape ``(n,)``
        Each note's index into ``audio_dirs``.
    names : list of str, length ``n``
        The notes' names, unique in a split (NSynth: the json keys).
    files : list of str, length ``n``
        Each note's audio file, relative to its ``audio_dirs`` folder.
    label : list of str, length ``n``
        Each note's class (NSynth: its instrument family).
    offset : np.ndarray, float64, shape ``(n,)``
        Where the note starts in its file, seconds (0 but for windows of a recording).
    group : list of str, length ``n``
        What the note belongs to that no two splits may share (NSynth: its instrument).
    source : np.ndarray, int8, shape ``(n,)``
    pitch, velocity : np.ndarray, int16, shape ``(n,)``
    instrument, sample_rate : np.ndarray, int32, shape ``(n,)``
    qualities : np.ndarray, uint8, shape ``(n, len(QUALITIES))``
    note_str, instrument_str, instrument_source_str, qualities_str : list, length ``n``
    meta : dict of str to list of str
        Columns a manifest gave besides its own (each a list of length ``n``).
    """

    audio_dirs: Tuple[Path, ...]
    folder: np.ndarray
    names: list
    files: list
    label: list
    offset: np.ndarray
    group: list
    source: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    instrument: np.ndarray
    sample_rate: np.ndarray
    qualities: np.ndarray
    note_str: list
    instrument_str: list
    instrument_source_str: list
    qualities_str: list
    meta: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def collect(cls, audio_dir, rows: Iterable[Tuple[str, str, "Example"]]) -> "Notes":
        """Notes from ``(name, wav suffix, Example)`` rows, in their order."""
        shared: dict = {}  # one object for equal values, e.g. an instrument's name
        numbers = {key: array(code) for key, (code, _) in _NUMBERS.items()}
        qualities = array("B")
        text = {key: [] for key in ("names", "files", "label", "note_str") + _SHARED}
        for name, suffix, example in rows:
            for key, (_, field_name) in _NUMBERS.items():
                numbers[key].append(getattr(example, field_name))
            qualities.extend(example.qualities)
            text["names"].append(name)
            text["files"].append(name + suffix)
            family = example.instrument_family_str
            text["label"].append(shared.setdefault(family, family))
            text["note_str"].append(name if example.note_str == name else example.note_str)
            for key in _SHARED:
                value = getattr(example, key)
                text[key].append(shared.setdefault(value, value))
        columns = {key: np.array(values, dtype=values.typecode)
                   for key, values in numbers.items()}
        columns["qualities"] = np.array(qualities, np.uint8).reshape(-1, len(QUALITIES))
        columns["folder"] = np.zeros(len(text["names"]), np.int16)
        columns["offset"] = np.zeros(len(text["names"]), np.float64)
        return cls((Path(audio_dir),), group=text["instrument_str"], **text, **columns)

    @classmethod
    def merge(cls, parts: Sequence["Notes"]) -> "Notes":
        """The notes of several folders as one, sorted by name: ``parts[k]``'s notes (each of
        one folder) get ``folder`` ``k``."""
        if not parts or any(len(part.audio_dirs) != 1 for part in parts):
            raise ValueError("merge takes one or more Notes of one folder each")
        if len(parts) == 1:
            return parts[0]
        dirs = tuple(part.audio_dirs[0] for part in parts)
        merged = cls.concat([dataclasses.replace(part, audio_dirs=dirs,
                                                 folder=np.full(len(part), k, np.int16))
                             for k, part in enumerate(parts)])
        return merged.by_name()

    @classmethod
    def concat(cls, parts: Sequence["Notes"]) -> "Notes":
        """Notes of the same ``audio_dirs`` one after another, in their order."""
        columns = {}
        for f in dataclasses.fields(cls):
            if f.name not in _OWN:
                values = [getattr(part, f.name) for part in parts]
                columns[f.name] = (np.concatenate(values) if isinstance(values[0], np.ndarray)
                                   else [item for value in values for item in value])
        keys = sorted({key for part in parts for key in part.meta})
        meta = {key: [item for part in _part_items(parts, key) for item in part]
                for key in keys}
        return cls(parts[0].audio_dirs, **columns, meta=meta)

    def with_columns(self, keys) -> "Notes":
        """These notes with a ``meta`` column of each of ``keys`` besides their own, empty text
        where they had none: every split of a store has the same columns."""
        return dataclasses.replace(self, meta={
            key: self.meta.get(key, [""] * len(self)) for key in sorted({*self.meta, *keys})})

    def by_name(self) -> "Notes":
        """These notes sorted by name (notes of one name in their order)."""
        return self.take(np.argsort(np.array(self.names, dtype=object), kind="stable"))

    def take(self, rows) -> "Notes":
        """These rows (a sequence of indices), in this order."""
        rows = np.asarray(rows, dtype=np.intp)
        return dataclasses.replace(self, **{
            f.name: (getattr(self, f.name)[rows] if isinstance(getattr(self, f.name), np.ndarray)
                     else [getattr(self, f.name)[i] for i in rows])
            for f in dataclasses.fields(self) if f.name not in _OWN},
            meta={key: [values[i] for i in rows] for key, values in self.meta.items()})

    def __len__(self) -> int:
        return len(self.names)

    def repeated_names(self) -> List[int]:
        """The rows whose name is the row before's (in notes sorted by name, as
        :meth:`merge` gives them: every name given twice)."""
        names = self.names
        return [i for i in range(1, len(names)) if names[i] == names[i - 1]]

    def path(self, i: int) -> Path:
        """Note ``i``'s audio file."""
        return self.audio_dirs[self.folder[i]] / self.files[i]

    def __getitem__(self, i: int) -> Tuple["Example", Path]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"note {i} of {len(self)}")
        label = self.label[i]
        return Example(
            note_str=self.note_str[i],
            instrument_family=FAMILIES.index(label) if label in FAMILIES else -1,
            instrument_family_str=label, instrument=int(self.instrument[i]),
            instrument_str=self.instrument_str[i], instrument_source=int(self.source[i]),
            instrument_source_str=self.instrument_source_str[i],
            pitch=int(self.pitch[i]), velocity=int(self.velocity[i]),
            sample_rate=int(self.sample_rate[i]),
            qualities=tuple(int(q) for q in self.qualities[i]),
            qualities_str=self.qualities_str[i]), self.path(i)


def _part_items(parts: Sequence[Notes], key: str):
    """Each part's ``meta[key]``, or empty text for a part without that column."""
    return [part.meta.get(key, [""] * len(part)) for part in parts]
