"""A store's notes never move between splits: what ``build --add`` does with the notes its
inputs now draw into another split than the one holding them (other fractions, or split folders
an older version did not read as such), and with a new file whose twin (the same path but for
its ending: ``take1.wav``, ``take1.flac``) the store holds."""
from __future__ import annotations

import logging
import os
from typing import Dict, Tuple

from .errors import counted
from .notes import Notes
from .windows import WINDOW_NAME

__all__ = ["kept_with_held"]

log = logging.getLogger(__name__)


def kept_with_held(new: Dict[str, Tuple[Notes, list]], held: Dict[str, Notes],
                   drawn: Dict[str, set]) -> Dict[str, Tuple[Notes, list]]:
    """``new`` with each note the build drew into a split other than the one holding its file,
    or else its file's twin, moved to that split (where ``build --add``'s check of held notes
    then leaves it out, or adds it beside its twin), warned of.

    Parameters
    ----------
    new : dict
        ``split -> (Notes, problems)``, the inputs' notes on the store's roots
        (:func:`featurestore.grow.on_all_roots`).
    held : dict
        ``split -> Notes`` the store holds, on the same roots.
    drawn : dict
        ``split -> names`` of the notes the build drew (:attr:`Inputs.drawn_names`): only
        those move; a split the inputs give a note stays theirs.

    Returns
    -------
    dict
        ``new`` with the notes moved; one whose split is not grown (``build --add --split``)
        is left out, and said.
    """
    by_file = {(k, file): split for split, notes in held.items()
               for k, file in zip(notes.folder, notes.files)}
    by_stem = {(k, os.path.splitext(file)[0]): split for (k, file), split in by_file.items()}
    kept, moved = dict(new), []
    for split, (notes, problems) in new.items():
        there = {}
        for i, (k, file, name) in enumerate(zip(notes.folder, notes.files, notes.names)):
            home = by_file.get((k, file), by_stem.get((k, os.path.splitext(file)[0]), split))
            if home != split and WINDOW_NAME.sub("", name) in drawn.get(split, ()):
                there[i] = home
        if not there:
            continue
        first = min(there)
        log.warning("%s: %s drawn into it now go%s where the store holds them or their twin "
                    "(first: %s, in %s); --overwrite puts every note where the inputs say",
                    split, counted(len(there), "note"), "es" * (len(there) == 1),
                    notes.names[first], there[first])
        kept[split] = notes.take([i for i in range(len(notes)) if i not in there]), problems
        for home in set(there.values()):
            moved.append((home, notes.take([i for i in there if there[i] == home])))
    for home, notes in moved:  # once each split has left out its own
        if home in kept:
            kept[home] = Notes.concat([kept[home][0], notes]).by_name(), kept[home][1]
            continue
        fresh = [name for k, file, name in zip(notes.folder, notes.files, notes.names)
                 if (k, file) not in by_file]
        if fresh:  # the store's own notes are where they go already
            log.warning("%s: %s left out: the store holds their twins in %s, which this build "
                        "does not grow (first: %s); add them with --split %s", home,
                        counted(len(fresh), "new note"), home, fresh[0], home)
    return kept
