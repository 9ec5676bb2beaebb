"""The sounds ``place`` put on a split's map, kept beside the store in ``placed.json`` (plain
json, read by ``plot`` and ``map``, dropped with the map they were placed on)."""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Sequence

from featurestore.files import atomic_write_text

__all__ = ["Placed", "read_placed", "write_placed", "forget_placed", "PLACED_FILE"]

PLACED_FILE = "placed.json"
log = logging.getLogger(__name__)


@dataclass
class Placed:
    """A new sound on the map (or why it could not be placed)."""

    path: str
    split: str
    x: float = float("nan")
    y: float = float("nan")
    family: str = ""
    probability: float = float("nan")
    nearest: List[dict] = field(default_factory=list)  # name, family, distance (on the map)
    error: str = ""
    adjustments: List[str] = field(default_factory=list)  # what reading did (resample, pad...)


def write_placed(store, placed: Sequence[Placed]):
    """Replace ``placed.json`` (whole or not at all)."""
    atomic_write_text(Path(store) / PLACED_FILE,
                      json.dumps([asdict(p) for p in placed], indent=1))


def read_placed(store) -> List[Placed]:
    """The placed sounds recorded next to a store (empty when none). A file that is not what
    ``place`` writes (someone else's, damaged) is ignored with a warning."""
    path = Path(store) / PLACED_FILE
    if not path.is_file():
        return []
    names = {f.name for f in dataclasses.fields(Placed)}
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [Placed(**{k: v for k, v in row.items() if k in names}) for row in rows]
    except (ValueError, TypeError, AttributeError) as err:
        log.warning("%s: not a list of placed sounds (%s); ignored", path, err)
        return []


def forget_placed(store, split: str):
    """Drop the sounds placed on ``split``'s map (when the map is replaced or removed)."""
    placed = read_placed(store)
    kept = [p for p in placed if p.split != split]
    if len(kept) != len(placed):
        write_placed(store, kept)
