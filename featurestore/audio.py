"""Reading and checking one audio file.

:func:`load_audio` is the only way audio enters timbremap: ``build``, ``predict`` and ``place``
all call it, so a note is read, downmixed, resampled and padded the same way in training and
serving, and every input costs what the clip needs, whatever the file or its header says.

What it does to a file, in order:

1. refuse anything that is not a regular file, or a link to one, without opening it (a named
   pipe would block the read forever; a device never ends);
2. open it with soundfile (WAV, FLAC, OGG, MP3 and everything libsndfile knows; 16-bit files,
   NSynth's, through libsndfile's C calls as soundfile binds them, see
   :func:`featurestore.fastpaths.read_pcm16`), falling back to librosa's audioread loader for
   other formats, and refuse a sample rate outside :data:`MIN_SAMPLE_RATE` to
   :data:`MAX_SAMPLE_RATE` or more than :data:`MAX_CHANNELS` channels before reading a sample;
3. decode only the frames the clip needs (:func:`frames_needed`), in blocks, averaging the
   channels of each block to mono as it comes; of the rest of a long file only its last frame
   is read, so a file cut short is still caught. A read that takes longer than
   :data:`READ_SECONDS` is given up (the guard that keeps one pathological file from
   stopping a build);
4. reject it (:class:`AudioError`) when it cannot be decoded, holds fewer frames than its
   header declares (cut short: see :mod:`featurestore.headers`; an MP3: than its Xing tag
   counts), holds no samples, holds NaN or infinite samples, or float samples more than
   :data:`MAX_PEAK` times full scale (a float file between full scale and that is used as it
   is, and its peak listed as an adjustment);
5. resample to ``params.sample_rate`` with soxr (high quality) when the rates differ;
6. zero-pad at the end, or trim the end, to exactly ``params.n_samples`` samples;
7. reject it when every sample of the result is 0 (digital silence: nothing to classify, and in
   a training set a label that is noise).

The downmix, the resampling, the padding or trimming, and a peak above full scale are
*adjustments*, returned so the build can record them; they never reject a file.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple

import numpy as np

from .audiocheck import (DECODE_ERRORS, MAX_CHANNELS, MAX_PEAK, MIN_SAMPLE_RATE, AudioError,
                         check_complete, check_file, check_format, check_peak, error_text,
                         length_guessed, no_samples, open_sound)
from .offsets import frames_needed, lead_frames, left_out
from .params import MAX_SAMPLE_RATE, FeatureParams

__all__ = ["AudioError", "MAX_CHANNELS", "MAX_PEAK", "MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE",
           "READ_SECONDS", "check_complete", "check_file", "check_format", "check_reading_time",
           "frames_needed", "load_audio", "reading_deadline"]


#: Wall-clock seconds one file's reading may take before it is given up.
READ_SECONDS = 60.0

_PCM16_SCALE = np.float32(1 / 32768)
_BLOCK_SAMPLES = 2 ** 18  # samples (frames times channels) sf.SoundFile reads at a time
_SALVAGE_FRAMES = 2 ** 10  # ... and after a decoding error, to find where it stopped
#: The MPEG frames an MP3 is decoded from before a point within it (and dropped): a frame's
#: data may begin up to 511 bytes (MPEG-1; MPEG-2: 255) before it, a dozen frames at a low
#: bit rate, so its first frames come out wrong without those before (:func:`_read_blocks`).
_MPEG_PREROLL_FRAMES = 24
_UNKNOWN_LENGTH = 2 ** 62  # libsndfile counts a stream of unknown length as 2**63 - 1 frames


class _Decoded(NamedTuple):
    """What :func:`_read` got from a file."""

    data: np.ndarray  # float32 (frames, 1 or 2), at most frames_needed frames
    sample_rate: int
    channels: int
    frames: Optional[int]  # in the whole file; None where unknown
    peak: Optional[float]  # largest magnitude; None for 16-bit integers (within full scale)
    lead: int = 0  # frames of data before the clip's start (:func:`lead_frames`)
    #: where ``data`` was mixed to mono as it was read, the largest magnitude of any channel of
    #: each frame (``(frames,)``): mixed silence of channels that were not silent cancelled out
    level: Optional[np.ndarray] = None


def reading_deadline() -> float:
    """When a read begun now is given up: :data:`READ_SECONDS` on (``time.monotonic()``)."""
    return time.monotonic() + READ_SECONDS


def check_reading_time(path: Path, deadline: float, frames: int):
    """Raise :class:`AudioError` once ``deadline`` (:func:`reading_deadline`) has passed,
    saying how many ``frames`` were read by then."""
    if time.monotonic() > deadline:
        raise AudioError(path, f"reading took more than {READ_SECONDS:g} s for {frames} "
                               f"frames; given up")


def _scaled(pcm: np.ndarray, out: Optional[np.ndarray]) -> np.ndarray:
    """16-bit samples as float32, scaled as libsndfile scales them, into ``out`` if it fits."""
    if out is None or out.shape != pcm.shape:
        out = np.empty(pcm.shape, dtype=np.float32)
    return np.multiply(pcm, _PCM16_SCALE, out=out)


def _read(path: Path, params: FeatureParams, out: Optional[np.ndarray] = None,
          offset: float = 0.0) -> _Decoded:
    """The :func:`frames_needed` frames of ``path`` from ``offset`` seconds on, checked (see the
    module's steps 2 to 4). 16-bit samples go into ``out``, a float32 ``(frames, channels)``
    array, when its shape fits."""
    from .fastpaths import read_pcm16  # here: importing it imports numba
    lead = 0

    def needed(sample_rate: int, channels: int) -> Tuple[int, int]:
        nonlocal lead
        check_format(path, sample_rate, channels)
        start = round(offset * sample_rate)
        lead = lead_frames(start, sample_rate, params)
        return start - lead, frames_needed(sample_rate, params) + lead

    fast = read_pcm16(path, needed)
    if fast is not None:
        pcm, sr, frames = fast
        check_complete(path, frames)
        return _Decoded(_scaled(pcm, out), sr, pcm.shape[1], frames, None, lead)
    try:
        return _read_blocks(path, needed, reading_deadline())._replace(lead=lead)
    except AudioError:
        raise
    except DECODE_ERRORS as sf_error:  # libsndfile cannot open or decode it
        sf_reason = error_text(sf_error)
    try:  # another decoder may (a WAV with a chunk libsndfile refuses)
        decoded = _read_other(path, params, sf_reason, offset)
    except AudioError as err:
        if err.reason.startswith(_UNDECODABLE):  # frames a header declares, and none read
            check_complete(path, 0, sf_reason)
        raise
    if decoded.frames is not None:  # the other decoder read to the file's end
        check_complete(path, decoded.frames)
    return decoded


def _read_blocks(path: Path, needed, deadline: float) -> _Decoded:
    """:func:`_read` through ``sf.SoundFile``, a block at a time (an MP3's clip: one block),
    each block's channels averaged to mono as it comes (at most one block of all channels is
    held). Raises what opening or decoding the file's first block raises."""
    with open_sound(path) as fh:
        sr, channels, frames = fh.samplerate, fh.channels, fh.frames
        start, want = needed(sr, channels)
        known = 0 <= frames < _UNKNOWN_LENGTH and not length_guessed(path, fh)
        pcm16 = fh.subtype == "PCM_16"
        dtype = "int16" if pcm16 else "float32"
        # libsndfile's MPEG decoder (1.2) gives other samples where a read call starts than
        # one read through, and needs the frames before a point to decode it right: an MP3's
        # clip is one read, from a little before it (dropped)
        mpeg = fh.format == "MP3"
        ahead = 0
        if start and (not known or start < frames):
            frame = 1152 if sr >= 32000 else 576  # samples of an MPEG-1, MPEG-2/2.5 frame
            ahead = min(start, _MPEG_PREROLL_FRAMES * frame) if mpeg else 0
            fh.seek(start - ahead)
        mono = np.empty((max(0, min(want, frames - start)) if known else want, 1),
                        dtype=np.float32)
        level = np.empty(len(mono), np.float32) if channels > 1 else None
        step = max(1, len(mono) if mpeg else _BLOCK_SAMPLES // channels)
        filled, peak, error = 0, 0.0, None
        while filled < len(mono):
            try:
                block = fh.read(min(step, len(mono) - filled) + ahead, dtype=dtype,
                                always_2d=True)[ahead:]
            except DECODE_ERRORS as err:
                error = err
                break
            ahead = 0
            if not len(block):
                break
            if pcm16:
                block = _scaled(block, None)
            else:
                if not np.isfinite(block).all():
                    raise AudioError(path, "holds NaN or infinite samples")
                peak = max(peak, float(np.abs(block).max()))
                check_peak(path, peak)
            part = mono[filled:filled + len(block), 0]
            if channels > 1:
                block.mean(axis=1, dtype=np.float32, out=part)
                np.abs(block).max(axis=1, out=level[filled:filled + len(block)])
            else:
                part[:] = block[:, 0]
            filled += len(block)
            check_reading_time(path, deadline, filled)
        # stopped at the clip's end (a format libsndfile cannot seek in, GSM 6.10 or G.721,
        # cannot be checked so: only a read of every frame would tell)
        if error is None and known and start + filled < frames and fh.seekable():
            try:  # the last frame: a FLAC cut short fails here
                fh.seek(frames - 1)
                fh.read(1, dtype=dtype)
            except DECODE_ERRORS as err:
                raise AudioError(path, f"truncated or damaged: its header declares {frames} "
                                       f"frames, and the last of them cannot be read "
                                       f"({error_text(err)})") from None
    if error is not None:
        decoded = _decodable_frames(path, filled + step)
        if not decoded:  # explained like a file libsndfile cannot open
            raise error
        check_complete(path, decoded, error_text(error))
        raise AudioError(path, f"damaged: decoding stopped after {decoded} frames "
                               f"({error_text(error)})")
    if known and filled < len(mono):  # short of what libsndfile counted (an MP3's Xing tag)
        raise AudioError(path, f"truncated: its header declares {frames} frames, decoding "
                               f"ended after {start + filled}")
    if filled < len(mono):  # the file ended before the clip: that is all it holds
        frames, known = start + filled, True
    if known:
        check_complete(path, frames)
    return _Decoded(mono[:filled], sr, channels, frames if known else None,
                    None if pcm16 else peak, level=None if level is None else level[:filled])


def _decodable_frames(path: Path, limit: int) -> int:
    """How many of the first ``limit`` frames of ``path`` decode, read in small pieces
    (libsndfile fails a whole read that meets an error)."""
    frames = 0
    with open_sound(path) as fh:
        while frames < limit:
            try:
                got = len(fh.read(min(_SALVAGE_FRAMES, limit - frames), dtype="float32"))
            except DECODE_ERRORS:
                break
            if not got:
                break
            frames += got
    return frames


def _audioread_clip(path: Path, offset: float, params: FeatureParams, deadline: float
                    ) -> Tuple[np.ndarray, int, int]:
    """``(samples (frames, channels) float32, rate, lead)``: the :func:`frames_needed` frames
    from ``offset`` seconds on and one more (whether the file goes on), and the
    :func:`lead_frames` before them, as audioread's decoders give them (what ``librosa.load``
    does for a file libsndfile cannot open, without its warnings, which are not thread-safe to
    silence): the blocks before are decoded and dropped, and decoding stops after the clip."""
    import audioread
    from librosa.util import buf_to_float
    with audioread.audio_open(str(path)) as fh:
        sr, channels = int(fh.samplerate), int(fh.channels)
        check_format(path, sr, channels)
        start = round(offset * sr)
        lead = lead_frames(start, sr, params)
        first = (start - lead) * channels
        end = first + (lead + frames_needed(sr, params) + 1) * channels
        parts, at = [], 0
        for block in fh:
            block = buf_to_float(block, dtype=np.float32)
            if at + len(block) > first:
                parts.append(block[max(first - at, 0):max(end - at, 0)])
            at += len(block)
            if at >= end:
                break
            check_reading_time(path, deadline, at // channels)
    data = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return data[:len(data) // channels * channels].reshape(-1, channels), sr, lead


#: The reason given for a file no decoder can read.
_UNDECODABLE = "cannot decode audio"


def _read_other(path: Path, params: FeatureParams, sf_reason: str, offset: float) -> _Decoded:
    """:func:`_read` through audioread's decoders, for files libsndfile does not open (m4a
    through ffmpeg, a WAV with a chunk it refuses): only the clip's duration and its margin
    from ``offset`` are decoded."""
    deadline = reading_deadline()
    try:
        data, sr, lead = _audioread_clip(path, offset, params, deadline)
    except AudioError:
        raise
    except Exception:  # noqa: BLE001 - any decoder failure means "cannot decode"
        raise AudioError(path, f"{_UNDECODABLE} ({sf_reason})") from None
    if not np.isfinite(data).all():
        raise AudioError(path, "holds NaN or infinite samples")
    peak = float(np.abs(data).max()) if data.size else 0.0
    check_peak(path, peak)
    channels, level = data.shape[1], None
    if channels > 1:
        level = np.abs(data).max(axis=1)
        data = data.mean(axis=1, dtype=np.float32, keepdims=True)
    whole = len(data) - lead <= frames_needed(sr, params)  # it ended by the clip's end
    return _Decoded(data, sr, channels, round(offset * sr) + len(data) - lead if whole else None,
                    peak, lead, level)


def load_audio(path, params: FeatureParams, out: Optional[np.ndarray] = None, *,
               offset: float = 0.0, hop: Optional[float] = None
               ) -> Tuple[np.ndarray, List[str]]:
    """Read one audio file as a mono float32 waveform of exactly ``params.n_samples`` samples.

    Only the part of the file that makes the clip is decoded (see :func:`frames_needed`), so
    what a file costs in time and memory is bounded by the clip, however long the file is.

    Parameters
    ----------
    path : str or pathlib.Path
        Any file soundfile or librosa can decode.
    params : FeatureParams
        Gives the target ``sample_rate`` and ``n_samples``.
    out : np.ndarray, float32, shape ``(params.n_samples,)``, optional
        Where to put the waveform (returned as ``y``), e.g. a buffer reused from file to file.
    offset : float
        Where the clip starts in the file, in seconds (a window of a long recording); what
        comes before it is skipped, not decoded (all but the resampler's margin where the
        file is at another rate).
    hop : float, optional
        The clip is one of a recording's windows, which start ``hop`` seconds apart
        (:func:`featurestore.offsets.window_offsets`): the file going on after it is no
        trimming, and what the last window leaves of the recording is listed instead.

    Returns
    -------
    y : np.ndarray, float32, shape ``(params.n_samples,)``
        ``out`` when given.
    adjustments : list of str
        What was done to fit the file to ``params`` (``'downmixed 2 channels'``,
        ``'resampled 44100 Hz -> 16000 Hz'``, ``'padded 3.200 s -> 4.000 s'``, ...); empty
        when the file already matched.

    Raises
    ------
    AudioError
        The file is missing, not a regular file, cannot be decoded, is truncated, is empty,
        declares an implausible sample rate or channel count, holds NaN/inf samples or samples
        far above full scale, takes longer than :data:`READ_SECONDS` to read, is silent, or
        ends before ``offset``.
    """
    path = Path(path)
    if out is not None and (out.shape != (params.n_samples,) or out.dtype != np.float32):
        raise ValueError(f"out must be float32 of shape ({params.n_samples},), "
                         f"got {out.dtype} {out.shape}")
    if not (math.isfinite(offset) and offset >= 0):
        raise ValueError(f"offset must be a finite number of seconds >= 0, got {offset!r}")
    check_file(path)
    got = _read(path, params, None if out is None else out[:, np.newaxis], offset)
    if len(got.data) <= got.lead:
        if offset and got.frames is not None:
            raise AudioError(path, f"ends at {_duration(got.frames, got.sample_rate)}, before "
                                   f"the clip's offset {offset:.3f} s")
        raise AudioError(path, no_samples(path))
    adjustments = []
    if got.peak is not None and got.peak > 1:
        adjustments.append(f"peak {got.peak:.3g} above full scale, used as it is")
    if got.channels > 1:
        adjustments.append(f"downmixed {got.channels} channels")
    y = got.data[:, 0] if got.data.shape[1] == 1 else got.data.mean(axis=1, dtype=np.float32)
    sr, n = got.sample_rate, params.n_samples
    if sr != params.sample_rate:
        import soxr  # librosa's resampler; imported only when needed
        adjustments.append(f"resampled {sr} Hz -> {params.sample_rate} Hz")
        y = soxr.resample(y, sr, params.sample_rate, quality="HQ").astype(np.float32, copy=False)
        first = round(offset * sr) - got.lead  # where the read began: before the clip
        y = y[round(offset * params.sample_rate) - round(first * params.sample_rate / sr):]
        if not len(y):
            raise AudioError(path, f"too short: {_duration(len(got.data) - got.lead, sr)} at "
                                   f"{sr} Hz, less than a sample at {params.sample_rate} Hz")
    length = _duration(round(got.frames * params.sample_rate / sr), params.sample_rate) \
        if got.frames is not None else None
    start = round(offset * sr)
    trimmed = len(y) > n or (got.frames is not None
                             and got.frames > start + len(got.data) - got.lead)
    if hop is not None and got.frames is not None:  # the tail no window holds
        rest = left_out(got.frames / sr, n / params.sample_rate, hop, offset)
        if rest > 0:
            adjustments.append(f"the recording's last {rest:.3f} s left out (after its last "
                               f"window)")
    if trimmed and hop is not None:
        y = y[:n]
    elif trimmed:
        adjustments.append(f"trimmed {length} -> {_duration(n, params.sample_rate)}"
                           if length else f"trimmed to {_duration(n, params.sample_rate)} "
                                          f"(the rest not read)")
        y = y[:n]
    elif len(y) < n:
        adjustments.append(f"padded {_duration(len(y), params.sample_rate)} -> "
                           f"{_duration(n, params.sample_rate)}")
        y = np.pad(y, (0, n - len(y)))
    if not y.any():
        mixed = got.data if got.level is None else got.level[:, np.newaxis]
        cancel = got.channels > 1 and mixed[got.lead:].any()  # x and -x, say
        raise AudioError(path, (f"silent once its {got.channels} channels are mixed to one: "
                                f"they cancel out" if cancel else "silent: every sample is 0") + (
            f" in the {_duration(n, params.sample_rate)} used" if trimmed else "") + (
            f" from {offset:.3f} s" if offset else ""))
    if out is None:
        return np.ascontiguousarray(y, dtype=np.float32), adjustments
    if not np.may_share_memory(y, out):  # adjusted, or not 16-bit
        out[...] = y
    return out, adjustments


def _duration(samples: int, sample_rate: int) -> str:
    """``'3.200 s'``, or ``'5 samples'`` below a millisecond (which ``'0.000 s'`` would hide)."""
    if samples < sample_rate / 1000:
        return f"{samples} sample" + ("" if samples == 1 else "s")
    return f"{samples / sample_rate:.3f} s"
