"""Reading and checking one audio file.

:func:`load_audio` is the only way audio enters timbremap: ``build`` and ``predict`` both call
it, so a note is read, downmixed, resampled and padded the same way in training and serving.

What it does to a file, in order:

1. read with soundfile (WAV, FLAC, OGG, MP3 and everything libsndfile knows; 16-bit files,
   NSynth's, through libsndfile's C calls as soundfile binds them, see
   :func:`featurestore.fastpaths.read_pcm16`),
   falling back to librosa's audioread loader for other formats;
2. reject it (:class:`AudioError`) when it cannot be decoded, holds fewer frames than its
   header declares (cut short: see :mod:`featurestore.headers`), holds no samples, holds NaN
   or infinite samples, or float samples more than :data:`MAX_PEAK` times full scale (a float
   file between full scale and that is used as it is, and its peak listed as an adjustment);
3. average the channels of a multichannel file to mono;
4. resample to ``params.sample_rate`` with soxr (high quality) when the rates differ;
5. zero-pad at the end, or trim the end, to exactly ``params.n_samples`` samples;
6. reject it when every sample of the result is 0 (digital silence: nothing to classify, and in
   a training set a label that is noise).

Steps 3 to 5, and a peak above full scale, are *adjustments*, returned so the build can record
them; they never reject a file.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import soundfile as sf

from .errors import TimbremapError
from .headers import declared_frames
from .params import FeatureParams

__all__ = ["AudioError", "load_audio"]


class AudioError(TimbremapError, ValueError):
    """An audio file that cannot be used; ``str(err)`` names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


_PCM16_SCALE = np.float32(1 / 32768)
_BLOCK_FRAMES = 2 ** 16  # frames sf.SoundFile reads at a time
_SALVAGE_FRAMES = 2 ** 10  # ... and after a decoding error, to find where it stopped
#: Float samples above this many times full scale are refused (60 dB over: not audio scaled to
#: +-1, e.g. integers written as floats); between 1 and this they are used as they are.
MAX_PEAK = 1000.0


def _scaled(pcm: np.ndarray, out: Optional[np.ndarray]) -> np.ndarray:
    """16-bit samples as float32, scaled as libsndfile scales them, into ``out`` if it fits."""
    if out is None or out.shape != pcm.shape:
        out = np.empty(pcm.shape, dtype=np.float32)
    return np.multiply(pcm, _PCM16_SCALE, out=out)


def _read_soundfile(path: Path) -> Tuple[np.ndarray, int, bool, Optional[Exception]]:
    """``(samples, sample rate, pcm16, error)`` through ``sf.SoundFile``, read in blocks of
    :data:`_BLOCK_FRAMES` (a header that inflates its frame count asks for no impossible
    array). A file cut short gives what it holds before the decoder's ``error``: libsndfile
    fails a whole read that meets it, so the file is then read again in small pieces. 16-bit
    files come as int16, others as float32. Raises what opening the file raises."""
    data, sr, pcm16, error = _read_blocks(path, _BLOCK_FRAMES)
    if error is not None:
        data = _read_blocks(path, _SALVAGE_FRAMES)[0]
    return data, sr, pcm16, error


def _read_blocks(path: Path, frames: int):
    with sf.SoundFile(str(path)) as fh:
        pcm16 = fh.subtype == "PCM_16"
        dtype = "int16" if pcm16 else "float32"
        blocks, error = [], None
        while True:
            try:
                block = fh.read(frames, dtype=dtype, always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError, MemoryError) as err:
                error = err
                break
            if not len(block):
                break
            blocks.append(block)
        data = np.concatenate(blocks) if blocks else np.empty((0, fh.channels), dtype)
        return data, fh.samplerate, pcm16, error


def _reason(err: Exception) -> str:
    return str(err) or type(err).__name__


def _read(path: Path, out: Optional[np.ndarray] = None
          ) -> Tuple[np.ndarray, int, Optional[float]]:
    """``(frames, channels)`` float32 samples, the sample rate and the peak magnitude (``None``
    for 16-bit integers, which lie within full scale). The samples are finite and as many as
    the header declares (both checked here, where the format says whether they could be
    otherwise). 16-bit samples go into ``out``, a float32 ``(frames, channels)`` array, when
    its shape fits."""
    from .fastpaths import read_pcm16  # here: importing it imports numba
    fast = read_pcm16(path)
    if fast is not None:
        pcm, sr = fast
        _check_complete(path, len(pcm))
        return _scaled(pcm, out), sr, None  # 16-bit integers: finite, within full scale
    try:
        data, sr, pcm16, error = _read_soundfile(path)
    except sf.LibsndfileError as sf_error:
        data, sf_reason = None, str(sf_error)
    except (RuntimeError, ValueError, EOFError, MemoryError) as sf_error:  # odd headers
        data, sf_reason = None, _reason(sf_error)
    else:
        if error is not None and len(data):
            _check_complete(path, len(data), _reason(error))
            raise AudioError(path, f"damaged: decoding stopped after {len(data)} frames "
                                   f"({_reason(error)})")
        if error is not None:  # nothing decoded: explained below, like a file that won't open
            data, sf_reason = None, _reason(error)
    if data is None:  # the path is checked only now: one stat less per good file
        if path.is_dir():
            raise AudioError(path, "is a folder, not an audio file")
        if path.is_symlink() and not path.exists():
            raise AudioError(path, f"broken symbolic link (to {os.readlink(path)})")
        if not path.is_file():
            raise AudioError(path, "no such file")
        if path.stat().st_size == 0:
            raise AudioError(path, "empty file (0 bytes)")
        _check_complete(path, 0, sf_reason)
        try:  # formats libsndfile does not know (e.g. m4a through ffmpeg)
            import librosa  # imported lazily: only needed for rare formats
            with warnings.catch_warnings():  # its "PySoundFile failed" notes are ours to report
                warnings.simplefilter("ignore")
                data, sr = librosa.load(str(path), sr=None, mono=False, dtype=np.float32)
        except Exception:  # noqa: BLE001 - any decoder failure means "cannot decode"
            raise AudioError(path, f"cannot decode audio ({sf_reason})") from None
        data, pcm16 = np.atleast_2d(data).T, False
    else:
        _check_complete(path, len(data))
    if pcm16:
        return _scaled(data, out), int(sr), None
    if not np.isfinite(data).all():
        raise AudioError(path, "holds NaN or infinite samples")
    peak = float(np.abs(data).max()) if data.size else 0.0
    if peak > MAX_PEAK:
        raise AudioError(path, f"samples far above full scale (peak {peak:.3g}, more than "
                               f"{MAX_PEAK:g} times full scale): audio samples lie within "
                               f"+-1; rescale the file")
    return data, int(sr), peak


def _check_complete(path: Path, frames: int, error: Optional[str] = None):
    """Raise :class:`AudioError` when ``path``'s header declares more than the ``frames``
    decoded (see :mod:`featurestore.headers`); ``error`` is why decoding stopped, if it did."""
    declared = declared_frames(path)
    if declared is None or frames >= declared:
        return
    found = f"decoding stopped after {frames} ({error})" if error else f"the file holds {frames}"
    raise AudioError(path, f"truncated: its header declares {declared} frames, {found}")


def load_audio(path, params: FeatureParams, out: Optional[np.ndarray] = None
               ) -> Tuple[np.ndarray, List[str]]:
    """Read one audio file as a mono float32 waveform of exactly ``params.n_samples`` samples.

    Parameters
    ----------
    path : str or pathlib.Path
        Any file soundfile or librosa can decode.
    params : FeatureParams
        Gives the target ``sample_rate`` and ``n_samples``.
    out : np.ndarray, float32, shape ``(params.n_samples,)``, optional
        Where to put the waveform (returned as ``y``), e.g. a buffer reused from file to file.

    Returns
    -------
    y : np.ndarray, float32, shape ``(params.n_samples,)``
        ``out`` when given.
    adjustments : list of str
        What was done to fit the file to ``params`` (``'downmixed 2 channels'``,
        ``'resampled 44100 Hz -> 16000 Hz'``, ``'padded 3.2 s -> 4.0 s'``, ...); empty when the file
        already matched.

    Raises
    ------
    AudioError
        The file is missing, cannot be decoded, is truncated, is empty, holds NaN/inf samples
        or samples far above full scale, or is silent.
    """
    path = Path(path)
    if out is not None and (out.shape != (params.n_samples,) or out.dtype != np.float32):
        raise ValueError(f"out must be float32 of shape ({params.n_samples},), "
                         f"got {out.dtype} {out.shape}")
    data, sr, peak = _read(path, None if out is None else out[:, np.newaxis])
    if data.size == 0:
        raise AudioError(path, "holds no samples")
    adjustments = []
    if peak is not None and peak > 1:
        adjustments.append(f"peak {peak:.3g} above full scale, used as it is")
    if data.shape[1] > 1:
        adjustments.append(f"downmixed {data.shape[1]} channels")
        y = data.mean(axis=1, dtype=np.float32)
    else:
        y = data[:, 0]
    if sr != params.sample_rate:
        import soxr  # librosa's resampler; imported only when needed
        adjustments.append(f"resampled {sr} Hz -> {params.sample_rate} Hz")
        y = soxr.resample(y, sr, params.sample_rate, quality="HQ").astype(np.float32, copy=False)
    n = params.n_samples
    trimmed = len(y) > n
    if len(y) != n:
        verb = "padded" if len(y) < n else "trimmed"
        adjustments.append(f"{verb} {_duration(len(y), params.sample_rate)} -> "
                           f"{_duration(n, params.sample_rate)}")
        y = y[:n] if len(y) > n else np.pad(y, (0, n - len(y)))
    if not y.any():
        raise AudioError(path, "silent: every sample is 0" + (
            f" in the {_duration(n, params.sample_rate)} used" if trimmed else ""))
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
