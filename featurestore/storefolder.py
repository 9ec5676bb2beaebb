"""The store folder a build writes: checked to be a folder of its own, made and checked to be
writable, and each split's room on its disk checked, before any work; locked so that two builds
never write the same store."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from .errors import BuildError
from .files import (exclusive_lock, free_room, made_folder, real_path,
                    removed_where_left_empty, size_text)

__all__ = ["check_folder_of_its_own", "check_room", "check_writable", "locked"]


def check_writable(out: Path) -> bool:
    """Make the store folder ``out`` if needed and check that files can be written there;
    whether this call made it."""
    if out.exists() and not out.is_dir():
        raise BuildError(f"{out}: exists and is not a folder")
    try:
        made = made_folder(out)
        probe = out / ".timbremap-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise BuildError(f"{out}: cannot write there ({err.strerror or err})") from None
    return made


def check_folder_of_its_own(out, inputs=()):
    """Refuse to write split files into ``out`` when it is one of the build's ``inputs`` (its
    NOTES folders) or holds a Keras model (``*.keras``: a trained model's folder), where they
    would mix with other files."""
    out = Path(out)
    if any(real_path(out) == real_path(folder) for folder in inputs):
        raise BuildError(f"{out}: is a NOTES folder too; give the store a folder of its own")
    models = sorted(p.name for p in out.glob("*.keras")) if out.is_dir() else []
    if models:
        raise BuildError(f"{out}: holds a model ({models[0]}); split files go into a folder "
                         f"of their own")


@contextlib.contextmanager
def locked(out: Path, *, made: bool = False) -> Iterator[None]:
    """An exclusive lock on the store folder itself for the build
    (:func:`featurestore.files.exclusive_lock`), so two builds never write the same store; where
    folders cannot be locked the build runs unlocked. A folder the build ``made``
    (:func:`check_writable`) is removed, while it is locked, when the build fails and leaves it
    empty."""
    with exclusive_lock(out, lambda: BuildError(f"{out}: another build is writing this store; "
                                                f"wait for it to finish")), \
            removed_where_left_empty(out, made):
        yield


def check_room(partial: Path, needed: int):
    """Refuse a split whose new notes (``needed`` bytes) would not fit on the disk before any
    is computed; a partial file about to be replaced counts as free."""
    free = free_room(partial)
    if needed > free:
        raise BuildError(f"{partial.with_suffix('')}: not enough free space for its notes "
                         f"({size_text(needed)} needed, {size_text(free)} free); nothing of it "
                         f"was written: make room and run the same build again")
