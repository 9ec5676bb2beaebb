"""The folder a render writes (``render``, ``render --synth``): its splits appear whole or not
at all, a folder holding a render is never written into, and a note that cannot be written is
one error naming it."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import Dict, Iterator

import numpy as np
import soundfile as sf

from .audiocheck import error_text
from .errors import InputError, counted
from .files import (check_folder_path, check_writable_in, exclusive_lock, made_folder,
                    removed_where_left_empty)
from .nsynth import RENDERING, SPLITS, Example, write_split

__all__ = ["refuse_rendered", "rendering", "write_note", "SILENT_PEAK"]

#: A rendered note whose peak is below this (-60 dBFS) did not sound and is left out: a key no
#: sample of a SoundFont covers, or one that quiet; a physical model that did not start to
#: oscillate, or a key outside a model's range (its peak before it is scaled).
SILENT_PEAK = 1e-3

log = logging.getLogger(__name__)


def refuse_rendered(out: Path):
    """Raise :class:`InputError` when ``out`` holds a split folder with anything in it already:
    rendered notes (their wavs would stay next to the new ones, as notes without a json
    entry), or other files, or cannot be a folder (a file on its path), or when ``out`` is a
    store (holds ``train.h5``, ``valid.h5`` or ``test.h5``)."""
    check_folder_path(out, why="render writes its notes into a folder")
    for split in SPLITS:
        folder = out / split
        if (folder / "examples.json").exists():
            raise InputError(f"{folder}: holds rendered notes already; render into a new folder "
                             f"(or delete this one)")
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{folder}: is a file, where the {split} split's folder goes; "
                             f"render into a new folder (or move this file)")
        if folder.exists() and next(folder.iterdir(), None) is not None:
            raise InputError(f"{folder}: is there already and holds other files; render into a "
                             f"new folder (or delete this one)")
    if stores := [f"{split}.h5" for split in SPLITS if (out / f"{split}.h5").exists()]:
        raise InputError(f"{out}: is a store (it holds {', '.join(stores)}); render the notes "
                         f"into a folder of their own, then build the store from it")


@contextlib.contextmanager
def rendering(out: Path, examples: Dict[str, Dict[str, Example]]) -> Iterator[Path]:
    """Where a render writes its notes: ``OUT/.rendering/SPLIT/audio/NAME.wav`` for each split
    of ``examples`` (``split -> name -> Example``, filled in the block; a split of
    :data:`~featurestore.nsynth.SPLITS`). When the block ends without an exception, and with a
    note, each split's ``examples.json`` is written (the notes numbered in train, valid, test
    order) and its folder moved into ``out``; otherwise ``.rendering`` is removed (or, killed,
    by the next render into ``out``), and ``out`` too where the render made it and it is
    empty, so ``out`` never holds an unfinished split.

    Raises
    ------
    InputError
        What :func:`refuse_rendered` raises, another render into ``out`` running (the folder
        is locked while one writes), a folder that cannot be written, or no note in
        ``examples``.
    """
    refuse_rendered(out)
    try:
        made = made_folder(out)
    except OSError as err:  # a file on its path, no permission
        raise InputError(f"{out}: cannot be made ({err.strerror or err}: {err.filename})"
                         ) from None
    with removed_where_left_empty(out, made):
        check_writable_in(out / RENDERING)  # a read-only folder, or file system
        with _writing(out, examples) as work:
            yield work


@contextlib.contextmanager
def _writing(out: Path, examples: Dict[str, Dict[str, Example]]) -> Iterator[Path]:
    """:func:`rendering` in ``out``, a folder that is there."""
    with exclusive_lock(out, lambda: InputError(f"{out}: another render is writing into this "
                                                f"folder; wait for it to finish")):
        refuse_rendered(out)  # the other render may have finished meanwhile
        work = out / RENDERING
        if work.is_symlink() or work.is_file():  # not what a render leaves: never followed
            work.unlink()
        elif work.exists():  # a killed render's
            shutil.rmtree(work)
        ordered = {split: examples[split] for split in SPLITS if split in examples}
        for split in ordered:  # notes are numbered in this order
            (work / split / "audio").mkdir(parents=True)
        try:
            yield work
            if not any(examples.values()):
                raise InputError(f"{out}: no note sounded (see the warnings above); nothing "
                                 f"written")
            written = 0
            for split, notes in ordered.items():
                if not notes:
                    log.warning("%s: no note of the %s split sounded; it is written empty",
                                out, split)
                try:
                    write_split(work / split, notes, first_note=written)
                except OSError as err:
                    raise _unwritable(work / split / "examples.json", err) from None
                written += len(notes)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        for split, notes in ordered.items():
            (work / split).replace(out / split)  # out/split: none, or an empty folder
            log.debug("%s: %s of %s", out / split, counted(len(notes), "note"),
                      counted(len({e.instrument for e in notes.values()}), "instrument"))
        work.rmdir()
        if "valid" not in ordered:
            log.warning("%s: no valid split rendered; 'timbremap train' needs one, from these "
                        "notes or from a folder built with them", out)


def write_note(path: Path, audio: np.ndarray, sample_rate: int):
    """Write a rendered note as 16-bit WAV; one that cannot be written (a full disk) is an
    :class:`InputError` naming it, and :func:`rendering` then removes the render."""
    try:
        sf.write(os.fsencode(path), audio, sample_rate, subtype="PCM_16")  # any name
    except (OSError, sf.LibsndfileError) as err:  # libsndfile: "System error." on a full disk
        raise _unwritable(path, err) from None


def _unwritable(path: Path, err: Exception) -> InputError:
    free = shutil.disk_usage(path.parent).free
    why = getattr(err, "strerror", None) or error_text(err)
    return InputError(f"{path}: cannot be written ({why}" + (
        f"; {free:,} bytes free on its disk" if free < 2**20 else "") + "); nothing of the "
        "render was kept")
