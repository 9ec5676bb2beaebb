"""General MIDI programs as NSynth labels them: the family and source of each program that
belongs clearly to one family (:data:`GM_FAMILIES`; ambiguous ones such as accordion,
harmonica, harp, timpani, synth pads and effects, or orchestra hit are left out), and the
pitches each family plays (:data:`PITCH_RANGES`)."""
from __future__ import annotations

from typing import Dict, Tuple

__all__ = ["GM_FAMILIES", "PITCH_RANGES"]


def _programs(family: str, source: str, *numbers) -> Dict[int, Tuple[str, str]]:
    return {n: (family, source) for n in numbers}


#: GM program number (0-127) -> (NSynth family, NSynth source).
GM_FAMILIES: Dict[int, Tuple[str, str]] = {
    **_programs("keyboard", "acoustic", 0, 1, 3, 6),
    **_programs("keyboard", "electronic", 2, 4, 5, 7),
    **_programs("mallet", "acoustic", 9, 10, 11, 12, 13, 14),
    **_programs("organ", "electronic", 16, 17, 18),
    **_programs("organ", "acoustic", 19, 20),
    **_programs("guitar", "acoustic", 24, 25),
    **_programs("guitar", "electronic", 26, 27, 28, 29, 30, 31),
    **_programs("bass", "acoustic", 32),
    **_programs("bass", "electronic", 33, 34, 35, 36, 37),
    **_programs("bass", "synthetic", 38, 39),
    **_programs("string", "acoustic", 40, 41, 42, 43, 44, 45, 48, 49, 110),
    **_programs("vocal", "acoustic", 52, 53),
    **_programs("vocal", "synthetic", 54),
    **_programs("brass", "acoustic", 56, 57, 58, 59, 60, 61),
    **_programs("brass", "synthetic", 62, 63),
    **_programs("reed", "acoustic", 64, 65, 66, 67, 68, 69, 70, 71, 111),
    **_programs("flute", "acoustic", 72, 73, 74, 75, 76, 77, 78, 79),
    **_programs("synth_lead", "synthetic", 80, 81, 82, 83, 84, 85, 86, 87),
}


#: Plausible MIDI pitch range (inclusive) of each family.
PITCH_RANGES = {
    "bass": (28, 64), "brass": (40, 84), "flute": (60, 96), "guitar": (40, 84),
    "keyboard": (21, 108), "mallet": (53, 108), "organ": (36, 96), "reed": (40, 84),
    "string": (36, 96), "synth_lead": (36, 96), "vocal": (48, 84),
}
