"""Recordings longer than a clip, cut into windows: where each window starts
(:func:`window_offsets`), how long a file is from its header (:func:`audio_seconds`), a
build's notes as one note a window (:func:`windowed_notes`), and the features of each window of
a file (:func:`file_windows`), read one window at a time, so what a recording costs in memory is
a clip, however long it is.

``build --windows HOP`` makes each window an example of the store; ``predict --windows HOP``
gives the classes of a recording clip by clip. Both go through
:func:`featurestore.features.note_features` with the window's offset: one code path.
"""
from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Iterator, List, NamedTuple, Optional, Tuple

import numpy as np
import soundfile as sf

from .audiocheck import (DECODE_ERRORS, AudioError, check_complete, check_file, check_format,
                         error_text, length_guessed, open_sound)
from .audio import check_reading_time, reading_deadline
from .features import Workspace, note_features
from .notes import Notes
from .offsets import MIN_HOP, check_hop, window_offsets
from .params import FeatureParams

__all__ = ["Window", "window_offsets", "audio_seconds", "file_windows", "check_hop", "MIN_HOP",
           "windowed_notes"]

def audio_seconds(path, clip: Optional[float] = None) -> float:
    """A recording's length in seconds, from its header, checked: its last frame is read (so a
    header that claims more than the file holds is refused, not cut into windows); an MP3 whose
    header gives no count of its frames is decoded to count them. A file
    longer than ``clip`` seconds (any, without it) in an encoding that cannot be read from an
    offset (GSM 6.10, G.721) is refused: its windows could not be read.

    Raises
    ------
    AudioError
        The file is missing, not a regular file, empty, truncated, or no decoder can tell its
        length.
    """
    path = Path(path)
    check_file(path)
    try:
        fh = open_sound(path)
    except DECODE_ERRORS as err:  # not libsndfile's
        fh, sf_reason = None, error_text(err)
    frames = None
    if fh is not None:
        with fh:
            frames, rate = fh.frames, fh.samplerate
            check_format(path, rate, fh.channels)
            if not fh.seekable() and (clip is None or frames > clip * rate):
                raise AudioError(path, f"its encoding ({fh.subtype_info}) cannot be read from "
                                       f"an offset, so it cannot be cut into windows (convert "
                                       f"it, to FLAC for one)")
            if length_guessed(path, fh):  # from its size: far over, with cover art
                frames = _frames_read_through(path, fh)
            elif 0 < frames < 2 ** 62 and fh.seekable():
                _check_last_frame(path, fh, frames)
                check_complete(path, frames)  # a WAV's data chunk shorter than it says
    seconds = (frames / rate if frames is not None and frames < 2 ** 62
               else _audioread_seconds(path, None if fh is not None else sf_reason))
    if not math.isfinite(seconds) or seconds < 0:
        raise AudioError(path, f"its header gives no usable length ({seconds})")
    return seconds


def _frames_read_through(path: Path, fh: sf.SoundFile) -> int:
    """The frames of ``fh`` counted by decoding them (an MP3 without a tag that counts them:
    cut into windows, all of it is read anyway), as far as libsndfile reads, within
    :data:`~featurestore.audio.READ_SECONDS`."""
    frames, deadline = 0, reading_deadline()
    while True:
        try:
            got = len(fh.read(2 ** 16, dtype="float32"))  # blocks() pads to the count
        except DECODE_ERRORS as err:
            raise AudioError(path, f"damaged: decoding stopped after {frames} frames "
                                   f"({error_text(err)})") from None
        if not got:
            return frames
        frames += got
        check_reading_time(path, deadline, frames)


def _check_last_frame(path: Path, fh: sf.SoundFile, frames: int):
    """Raise :class:`AudioError` unless the last frame the header declares can be read."""
    try:
        fh.seek(frames - 1)
        read = len(fh.read(1))
    except DECODE_ERRORS as err:
        read, why = 0, f" ({error_text(err)})"
    else:
        why = ""
    if read != 1:
        raise AudioError(path, f"truncated: its header declares {frames} frames, and the last "
                               f"of them cannot be read{why}")


def _audioread_seconds(path: Path, sf_reason: Optional[str]) -> float:
    """The length audioread's decoders (ffmpeg: m4a, ...) give a file libsndfile cannot open
    (``sf_reason``: why libsndfile could not), or one whose length libsndfile cannot tell."""
    try:
        import audioread  # what librosa decodes other formats with
        with audioread.audio_open(str(path)) as fh:
            check_format(path, fh.samplerate, fh.channels)
            return float(fh.duration)
    except AudioError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure means "cannot decode"
        if sf_reason is not None:  # as load_audio says it
            raise AudioError(path, f"cannot decode audio ({sf_reason})") from None
        raise AudioError(path, f"cannot tell its length ({error_text(err)})"
                         ) from None


#: The ``@OFFSET`` a window's note name ends in (:func:`windowed_notes`: ``NAME@4.000``).
WINDOW_NAME = re.compile(r"@\d+\.\d{3}$")


class Window(NamedTuple):
    """One window of a recording: its features, or why it cannot be used."""

    offset: float                    # seconds from the recording's start
    end: float                       # where its audio ends: a clip later, or the recording's end
    features: Optional[np.ndarray]   # float16 ``params.shape``; None when ``error``
    adjustments: List[str]           # what reading did to fit it (resample, downmix, pad...)
    error: Optional[str] = None      # why it cannot be used (silent, damaged...)


def file_windows(path, params: FeatureParams, hop: float) -> Iterator[Window]:
    """The features of each window of a recording, one window read at a time.

    Parameters
    ----------
    path : str or pathlib.Path
    params : FeatureParams
        The features (and the clip length) of a model or store.
    hop : float
        Seconds between windows' starts (:func:`window_offsets`).

    Yields
    ------
    Window
        One per offset; a window that cannot be used (silent, damaged) has ``error`` set, and
        the others go on.

    Raises
    ------
    AudioError
        The file cannot be used at all (missing, not audio, no length).
    """
    path = Path(path)
    clip = params.n_samples / params.sample_rate
    workspace = Workspace(params)
    duration = audio_seconds(path, clip)
    for offset in window_offsets(duration, clip, hop):
        end = min(float(offset) + clip, duration)
        try:
            features, _, _, adjustments = note_features(path, params, workspace=workspace,
                                                        offset=float(offset), hop=hop)
        except AudioError as err:
            yield Window(float(offset), end, None, [], err.reason)
            continue
        yield Window(float(offset), end, features.copy(), adjustments)


def windowed_notes(notes: Notes, problems: List[Tuple[str, str]], clip: float, hop: float
                   ) -> Tuple[Notes, List[Tuple[str, str]]]:
    """A build's notes with each note of a file longer than a clip as one note per window.

    Parameters
    ----------
    notes : featurestore.notes.Notes
        One split's notes.
    problems : list of (name, reason)
        The split's problems so far.
    clip, hop : float
        Seconds of a clip, and between the starts of two windows.

    Returns
    -------
    (Notes, list of (name, reason))
        One note a window, named ``NAME@OFFSET`` with its ``offset`` in seconds, and the
        problems, sorted, with each file whose length cannot be read added.
    """
    rows, offsets, problems = [], [], list(problems)
    for i in range(len(notes)):
        try:
            duration = audio_seconds(notes.path(i), clip)
        except AudioError as err:
            problems.append((notes.names[i], err.reason))
            continue
        for offset in window_offsets(duration, clip, hop):
            rows.append(i)
            offsets.append(offset)
    windows = notes.take(rows)
    names = [f"{name}@{offset:.3f}" for name, offset in zip(windows.names, offsets)]
    return dataclasses.replace(windows, offset=np.array(offsets, np.float64), names=names,
                               note_str=names), sorted(problems)
