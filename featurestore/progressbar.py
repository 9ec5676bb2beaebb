"""Progress bars on stderr: redrawn as work goes on where someone watches (a terminal, a
notebook), and at most once a minute where stderr goes to a file or a pipe, so that a log of a
long build holds a bounded trace rather than a redraw every tenth of a second."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm
from tqdm.autonotebook import tqdm as chosen_tqdm  # imported by tqdm.auto, without its warning
from tqdm.std import tqdm as console_tqdm

__all__ = ["progress_bar", "LOGGED_EVERY"]

#: Seconds between a bar's updates where stderr is neither a terminal nor a notebook's.
LOGGED_EVERY = 60.0


def progress_bar(iterable=None, *, enabled: bool, **options) -> tqdm:
    """``tqdm.auto.tqdm(iterable, **options)``, shown only where ``enabled``, redrawn at
    tqdm's pace where stderr is a terminal or in a notebook, else every
    :data:`LOGGED_EVERY` seconds (and when it ends)."""
    watched = (chosen_tqdm is not console_tqdm or "ipykernel" in sys.modules
               or _is_terminal(sys.stderr))  # a notebook without ipywidgets: a console bar
    pace = {} if watched else {"mininterval": LOGGED_EVERY, "maxinterval": LOGGED_EVERY}
    return tqdm(iterable, disable=not enabled, dynamic_ncols=True, **pace, **options)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a stream without it, or closed
        return False
