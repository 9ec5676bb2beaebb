"""Where the windows of a recording start (:func:`window_offsets`), what of it they leave out
(:func:`left_out`), and which of a file's frames a clip is read from (:func:`frames_needed`,
:func:`lead_frames`): arithmetic on seconds and frames, shared by the build's notes,
``predict`` and the reading of each clip."""
from __future__ import annotations

import logging
import math

import numpy as np

from .errors import InputError
from .params import FeatureParams

__all__ = ["MIN_HOP", "check_hop", "warn_of_gaps", "window_offsets", "left_out",
           "frames_needed", "lead_frames"]

log = logging.getLogger(__name__)

#: The shortest hop between windows, in seconds (names give offsets to the millisecond).
MIN_HOP = 0.01


def check_hop(hop: float) -> float:
    """``hop`` as a float, or :class:`~featurestore.errors.InputError` saying what a hop is."""
    if isinstance(hop, bool) or not isinstance(hop, (int, float)) \
            or not math.isfinite(hop) or hop < MIN_HOP:
        raise InputError(f"the windows' hop must be a number of seconds, at least {MIN_HOP:g}, "
                         f"got {hop!r}")
    return float(hop)


def warn_of_gaps(hop: float, clip: float):
    """Warn when windows ``hop`` seconds apart leave gaps between clips of ``clip`` seconds:
    what falls between them is never heard (and no note says so)."""
    if hop > clip:
        log.warning("windows every %g s of %g s clips leave %g s between them unheard (%.0f %% "
                    "of a recording); a hop of at most %g s hears all of it", hop, clip,
                    hop - clip, 100 * ((hop - clip) / hop), clip)


def window_offsets(duration: float, clip: float, hop: float) -> np.ndarray:
    """Where the windows of a recording start, in seconds.

    Windows of ``clip`` seconds start every ``hop`` seconds from 0 while they fit; when the last
    one ends at least half a hop before the recording does, one more starts ``hop`` later
    (padded like a short file), so with ``hop <= clip`` no more than half a hop at the end is
    left out. A recording no longer than a clip is one window.

    Parameters
    ----------
    duration : float
        The recording's length, seconds.
    clip : float
        A window's length, seconds (``params.n_samples / params.sample_rate``).
    hop : float
        Seconds from one window's start to the next's.

    Returns
    -------
    np.ndarray, float64, shape ``(n,)``
        ``n >= 1`` offsets, increasing, each before ``duration``.

    Examples
    --------
    >>> window_offsets(10.0, 4.0, 4.0).tolist()
    [0.0, 4.0, 8.0]
    >>> window_offsets(3.0, 4.0, 1.0).tolist()
    [0.0]
    """
    return np.round(np.arange(_count(duration, clip, hop), dtype=np.float64) * hop, 6)


def left_out(duration: float, clip: float, hop: float, offset: float) -> float:
    """Seconds at the end of a recording that no window holds (less than half a hop, with
    ``hop <= clip``), where ``offset`` starts its last window; 0 for any other window.

    Examples
    --------
    >>> left_out(10.5, 4.0, 2.0, 6.0)  # windows at 0, 2, 4, 6: the last ends at 10
    0.5
    >>> left_out(10.5, 4.0, 2.0, 4.0)
    0.0
    """
    last = round((_count(duration, clip, hop) - 1) * hop, 6)
    return max(0.0, duration - (last + clip)) if abs(offset - last) < 1e-6 else 0.0


def _count(duration: float, clip: float, hop: float) -> int:
    """How many windows :func:`window_offsets` gives."""
    hop = check_hop(hop)
    if not (math.isfinite(duration) and duration >= 0):
        raise ValueError(f"duration must be a finite number of seconds >= 0, got {duration!r}")
    count = int(math.floor(max(duration - clip, 0.0) / hop + 1e-9)) + 1
    last = (count - 1) * hop
    return count + (duration - (last + clip) >= hop / 2 and last + hop < duration)


#: Input read beyond the clip when resampling, and before a clip that starts within a file, for
#: the resampler's filter: with it the clip is what resampling the whole file would give
#: (``tests/test_damaged_input.py``, ``tests/test_layouts.py``).
MARGIN_SECONDS = 0.064


def frames_needed(sample_rate: int, params: FeatureParams) -> int:
    """How many frames of a file at ``sample_rate`` make the clip.

    Parameters
    ----------
    sample_rate : int
        The file's rate, in Hz.
    params : FeatureParams
        Gives the clip's ``sample_rate`` and ``n_samples``.

    Returns
    -------
    int
        ``params.n_samples`` at the clip's rate; at another rate, the clip's duration plus
        :data:`MARGIN_SECONDS` for the resampler's filter to see what follows the clip.
    """
    if sample_rate == params.sample_rate:
        return params.n_samples
    return (math.ceil(params.n_samples * sample_rate / params.sample_rate)
            + math.ceil(MARGIN_SECONDS * sample_rate))


def lead_frames(start: int, sample_rate: int, params: FeatureParams) -> int:
    """Frames read before a clip that starts ``start`` frames into a file at ``sample_rate``:
    where it is resampled, :data:`MARGIN_SECONDS` or a little more, for the resampler's filter
    to see what precedes the clip as it does in the whole file; none at the clip's own rate.
    The read starts where a sample of the resampled rate falls on a frame (every ``step``
    frames, where that is under a second), so that the clip's samples are the whole file's."""
    if sample_rate == params.sample_rate:
        return 0
    step = sample_rate // math.gcd(sample_rate, params.sample_rate)  # frames a whole sample
    margin = math.ceil(MARGIN_SECONDS * sample_rate)
    if step > sample_rate:  # no grid worth keeping: the margin alone
        return min(start, margin)
    return start - max(0, (start - margin) // step * step)
