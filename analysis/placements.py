"""The sounds ``place`` put on a split's map, kept in the store's ``placed.json`` (plain
json, read by ``plot`` and ``map``, dropped with the map they were placed on)."""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

from featurestore.errors import StoreError
from featurestore.files import atomic_write_text, exclusive_lock
from featurestore.jsonstream import read_json, reason

__all__ = ["Placed", "read_placed", "placed_on_maps", "write_placed", "forget_placed",
           "describe_placed", "updating_placed", "PLACED_FILE"]

PLACED_FILE = "placed.json"
#: The lock file of ``placed.json``: its readers that change it hold it, in turn.
PLACED_LOCK = ".placed.json.lock"
#: How long a change of ``placed.json`` waits for another one to end.
PLACED_WAIT_SECONDS = 60.0
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

    def __post_init__(self):  # what a placed.json holds is checked as it is read
        for name in ("path", "split", "family", "error"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be text, got {getattr(self, name)!r:.40}")
        for name in ("x", "y", "probability"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {value!r:.40}")
        if not (isinstance(self.nearest, list) and all(isinstance(n, dict) for n in self.nearest)
                and isinstance(self.adjustments, list)
                and all(isinstance(a, str) for a in self.adjustments)):
            raise TypeError("nearest must be a list of objects and adjustments a list of text")


def write_placed(store, placed: Sequence[Placed]):
    """Replace ``placed.json`` (whole or not at all).

    A ``placed.json`` that is not what this function writes (someone else's, damaged) is not
    replaced but renamed first, to ``placed.json.damaged-<UTC time>``, with a warning naming it.

    Parameters
    ----------
    store : str or pathlib.Path
        The store folder.
    placed : sequence of Placed
        Every placed sound to keep.
    """
    path = Path(store) / PLACED_FILE
    try:
        _load(path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, TypeError, AttributeError) as err:
        aside = _keep_aside(path)
        log.warning("%s: not a list of placed sounds (%s); kept as %s", path, reason(err, path),
                    aside.name)
    atomic_write_text(path, json.dumps([asdict(p) for p in placed], indent=1))


def read_placed(store) -> List[Placed]:
    """The placed sounds recorded next to a store (empty when none). A file that is not what
    ``place`` writes (someone else's, damaged) is ignored with a warning (and kept aside when a
    new one is written: :func:`write_placed`)."""
    path = Path(store) / PLACED_FILE
    if not path.is_file():
        return []
    try:
        return _load(path)
    except (OSError, ValueError, TypeError, AttributeError) as err:
        log.warning("%s: not a list of placed sounds (%s); ignored", path, reason(err, path))
        return []


def placed_on_maps(store) -> List[Placed]:
    """The placed sounds :func:`read_placed` gives that a map can draw: those of a finite place
    (x, y); any other (an edited or damaged file's) is left out with a warning."""
    placed = read_placed(store)
    fits = [not p.error and math.isfinite(p.x) and math.isfinite(p.y) for p in placed]
    if not all(fits):
        log.warning("%s: %d of the placed sounds have no finite place on a map (x, y), e.g. %s; "
                    "left out", Path(store) / PLACED_FILE, fits.count(False),
                    next(p.path for p, fit in zip(placed, fits) if not fit))
    return [p for p, fit in zip(placed, fits) if fit]


def describe_placed(store, *, mapped: Optional[Sequence[str]] = None,
                    most: int = 10) -> List[str]:
    """``timbremap inspect``'s lines on the sounds ``place`` put on the store's maps: how many
    on each split's map (one not among the ``mapped`` splits, which ``build --add`` removed, is
    said to be gone), and the first ``most`` of them (none when it put none)."""
    placed = read_placed(store)
    if not placed:
        return []
    on_map = Counter(p.split for p in placed)
    mapped = on_map if mapped is None else mapped
    lines = [f"== placed: {Path(store) / PLACED_FILE}  " + ", ".join(
        f"{n} on {split}'s map" + ("" if split in mapped else " (gone: run tsne, then place)")
        for split, n in sorted(on_map.items()))]
    lines += [f"    {p.path}: {p.split}, {p.family} ({p.probability:.2f})"
              for p in placed[:most]]
    if len(placed) > most:
        lines.append(f"    ... and {len(placed) - most} more ({PLACED_FILE} lists them)")
    return lines


def _load(path: Path) -> List[Placed]:
    names = {f.name for f in dataclasses.fields(Placed)}
    rows = read_json(path, max_bytes=None)  # it grows with the sounds placed
    for row in rows:
        if not isinstance(row, dict) or not {"path", "split"} <= row.keys():
            raise ValueError(f"an entry is not an object with a path and a split: {row!r:.60}")
    return [Placed(**{k: v for k, v in row.items() if k in names}) for row in rows]


def _keep_aside(path: Path) -> Path:
    """Rename ``path`` to a name of its own beside it (never over an earlier one)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for n in itertools.count():
        aside = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{n}" if n else ""))
        try:  # a link fails where the name exists: nothing is overwritten
            os.link(path, aside)
        except FileExistsError:
            continue
        except OSError:  # no hard links here (or a folder): rename to a name still free
            if aside.exists() or aside.is_symlink():
                continue
            os.rename(path, aside)
            return aside
        path.unlink()
        return aside


@contextlib.contextmanager
def updating_placed(store) -> Iterator[None]:
    """Hold ``placed.json``'s lock for the block, which reads, changes and writes it: two
    commands that change it at once (two ``place``, a ``place`` and a ``tsne``) take turns, so
    neither loses the other's change. A store where the lock file cannot be made (read-only)
    is changed without it (nor can its ``placed.json`` be written)."""
    lock = Path(store) / PLACED_LOCK
    try:
        lock.touch(exist_ok=True)
    except OSError:
        yield
        return
    with exclusive_lock(lock, lambda: StoreError(
            f"{Path(store) / PLACED_FILE}: another command has been changing it for "
            f"{PLACED_WAIT_SECONDS:.0f} s; try again once it is done"), wait=PLACED_WAIT_SECONDS):
        yield


def forget_placed(store, split: str, *, replaced: bool = True):
    """Drop the sounds placed on ``split``'s map (when the map is ``replaced`` by another, or
    removed), with a warning that says how many and what to run."""
    if not any((Path(store) / name).exists() for name in (PLACED_FILE, PLACED_LOCK)):
        return  # no place has run here: a first one takes the lock before it checks its map
    with updating_placed(store):
        placed = read_placed(store)
        kept = [p for p in placed if p.split != split]
        if len(kept) != len(placed):
            write_placed(store, kept)
            log.warning("%s: %d sound%s placed on the old %s map removed (run %s again to put "
                        "them on the new one)", store, len(placed) - len(kept),
                        "s" * (len(placed) - len(kept) != 1), split,
                        "'timbremap place'" if replaced else "'timbremap tsne', then 'place'")
