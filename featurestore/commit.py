"""The commit of ``build --add`` (:mod:`featurestore.grow`): every changed split's complete
partial file renamed over the finished one, all or none, even across a kill.

The commit file (:data:`COMMIT`) names the splits first; the renames follow. A commit file left
by a kill is finished by :func:`finish_commit`, which every command that opens a local store
calls first (:mod:`featurestore.store`), so nobody reads half of a grown store.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

import h5py

from .errors import BuildError, StoreError
from .files import atomic_write_text
from .jsonstream import read_json, reason
from .nsynth import SPLITS

__all__ = ["COMMIT", "commit", "finish_commit"]

log = logging.getLogger(__name__)

#: The commit file of ``build --add``, in the store folder: the splits whose partial files
#: replace the finished ones.
COMMIT = ".add-commit.json"


def finish_commit(out: Path):
    """Finish the renames of an ``--add`` that was stopped after it committed (none: nothing);
    every command that opens a local store calls it first."""
    marker = Path(out) / COMMIT
    if not marker.is_file():
        return
    try:
        splits = read_json(marker)["splits"]
        if not isinstance(splits, list) or not set(splits) <= set(SPLITS):
            raise ValueError(f"splits {splits!r}, not some of {', '.join(SPLITS)}")
    except FileNotFoundError:  # another process finished it
        return
    except (OSError, ValueError, KeyError, TypeError) as err:  # read_json names the file
        raise BuildError(f"{marker}: unreadable commit of an interrupted build --add "
                         f"({reason(err, marker)}); its partial files are SPLIT.h5.partial "
                         f"beside it") from None
    for split in splits:
        _check_grown(Path(out) / f"{split}.h5.partial", split, marker)
    try:
        for split in splits:  # another process may be finishing it too: what is gone is done
            path = Path(out) / f"{split}.h5"
            try:
                os.replace(path.with_name(path.name + ".partial"), path)
            except FileNotFoundError:
                pass
            path.with_name(path.name + ".journal").unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
    except OSError as err:  # a read-only copy of the store, or a reader without the right
        raise StoreError(f"{out}: a build --add was stopped after it committed "
                         f"{', '.join(splits)} ({marker.name}), and its renames cannot be "
                         f"finished here ({err.strerror or err}): run any timbremap command on "
                         f"the store where it can be written, which finishes them") from None
    log.info("%s: finished the build --add of %s", out, ", ".join(splits))


def _check_grown(partial: Path, split: str, marker: Path):
    """Refuse to rename ``partial`` over ``split``'s file unless it is that split's: the
    commit file and the partial files are whatever the store's folder holds."""
    try:
        with h5py.File(partial, "r") as f:
            ours = str(f.attrs.get("split", "")) == split
    except FileNotFoundError:  # renamed already (by a kill's rerun, or another process)
        return
    except OSError as err:  # held by another process, or not HDF5
        raise BuildError(f"{partial}: cannot be read ({err}), so the build --add that "
                         f"{marker.name} commits is not finished; run the command again") from None
    if not ours:
        raise BuildError(f"{partial}: not the {split} split grown, which {marker.name} says it "
                         f"is; nothing was renamed: move {marker.name} and it away")


def commit(out: Path, splits: Sequence[str]):
    """Replace each split's finished file by its complete partial one, all or none."""
    atomic_write_text(Path(out) / COMMIT, json.dumps({"splits": list(splits)}))
    finish_commit(out)
