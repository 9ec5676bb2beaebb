"""Where the build of a split starts: from its journal, where the partial file a stopped build
left can be resumed, else from a new partial file (:func:`start_or_resume`)."""
from __future__ import annotations

import logging
from pathlib import Path

import h5py

from . import grow, schema
from .errors import BuildError
from .params import FeatureParams
from .splitfile import JournalError, Progress, create_partial, fingerprint
from .storefolder import check_room

__all__ = ["start_or_resume"]

log = logging.getLogger(__name__)


def start_or_resume(split, params: FeatureParams, partial: Path, journal: Path) -> Progress:
    """The journal's progress when ``partial`` can be resumed, else a new partial file (for
    ``--add``, a copy of the finished one with room for the new notes).

    ``split`` is the build's description of the split (``featurestore.build._Split``): its
    ``name``, ``path``, ``notes``, and for ``--add`` the ``held`` notes and their number
    ``base``."""
    digest = fingerprint(params, split.notes)
    if split.held is not None:  # and of the file it grows
        info = split.path.stat()
        digest = f"{digest}:{info.st_size}:{info.st_mtime_ns}"
    rows = split.base + len(split.notes)
    state = None
    if partial.is_dir() and not partial.is_symlink():
        raise BuildError(f"{partial}: a folder where the build writes {split.name}; move it "
                         f"away")
    if partial.is_symlink() or (partial.exists() and not partial.is_file()):
        partial.unlink()  # no build leaves one: a link's target is never written, nor a pipe
        log.warning("%s: a link or special file where the build writes %s; removed", partial,
                    split.name)
    if partial.is_file():
        try:
            state = Progress.load(journal, digest)
        except JournalError as err:
            log.warning("%s: unreadable build journal: %s; starting %s again", journal, err,
                        split.name)
    if state is not None:
        kept = split.base + state.n_written if state.finished else rows  # finalize trims it
        try:
            with h5py.File(partial, "r") as f:
                if f[schema.SPECTRA].shape not in {(n,) + params.shape for n in (rows, kept)}:
                    state = None
        except (OSError, KeyError):
            state = None
        if state is None:
            log.warning("%s: unreadable partial file, starting %s again", partial, split.name)
    if state is None:
        check_room(partial, len(split.notes) * params.note_bytes)
        if split.held is not None:
            grow.start_added(split.path, partial, rows)
        else:
            create_partial(partial, rows, params)
        state = Progress(digest)
        state.save(journal)
    return state
