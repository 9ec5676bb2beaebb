"""Reading and checking one audio file.

:func:`load_audio` is the only way audio enters timbremap: ``build`` and ``predict`` both call
it, so a note is read, downmixed, resampled and padded the same way in training and serving.

What it does to a file, in order:

1. read with soundfile (WAV, FLAC, OGG, MP3 and everything libsndfile knows), falling back to
   librosa's audioread loader for other formats;
2. reject it (:class:`AudioError`) when it cannot be decoded, holds no samples, or holds NaN
   or infinite samples;
3. average the channels of a multichannel file to mono;
4. resample to ``params.sample_rate`` with soxr (high quality) when the rates differ;
5. zero-pad at the end, or trim the end, to exactly ``params.n_samples`` samples;
6. reject it when every sample of the result is 0 (digital silence: nothing to classify, and in
   a training set a label that is noise).

Steps 3 to 5 are *adjustments*, returned so the build can record them; they never reject a file.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import List, Tuple

import numpy as np
import soundfile as sf

from .params import FeatureParams

__all__ = ["AudioError", "load_audio"]


class AudioError(ValueError):
    """An audio file that cannot be used; ``str(err)`` names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


_PCM16_SCALE = np.float32(1 / 32768)


def _read(path: Path) -> Tuple[np.ndarray, int]:
    """``(frames, channels)`` float32 samples and the sample rate; finite (checked here, where
    the format says whether it could be otherwise)."""
    try:
        with sf.SoundFile(str(path)) as fh:
            if fh.subtype == "PCM_16":  # NSynth's format: int16 read, scaled as libsndfile does
                return fh.read(dtype="int16", always_2d=True) * _PCM16_SCALE, fh.samplerate
            data, sr = fh.read(dtype="float32", always_2d=True), fh.samplerate
    except sf.LibsndfileError as sf_error:
        data, sf_reason = None, str(sf_error)
    except (RuntimeError, ValueError, EOFError) as sf_error:  # truncated or odd headers
        data, sf_reason = None, str(sf_error) or type(sf_error).__name__
    if data is None:  # the path is checked only now: one stat less per good file
        if path.is_dir():
            raise AudioError(path, "is a folder, not an audio file")
        if path.is_symlink() and not path.exists():
            raise AudioError(path, f"broken symbolic link (to {os.readlink(path)})")
        if not path.is_file():
            raise AudioError(path, "no such file")
        if path.stat().st_size == 0:
            raise AudioError(path, "empty file (0 bytes)")
        try:  # formats libsndfile does not know (e.g. m4a through ffmpeg)
            import librosa  # imported lazily: only needed for rare formats
            with warnings.catch_warnings():  # its "PySoundFile failed" notes are ours to report
                warnings.simplefilter("ignore")
                data, sr = librosa.load(str(path), sr=None, mono=False, dtype=np.float32)
        except Exception:  # noqa: BLE001 - any decoder failure means "cannot decode"
            raise AudioError(path, f"cannot decode audio ({sf_reason})") from None
        data = np.atleast_2d(data).T
    if not np.isfinite(data).all():
        raise AudioError(path, "holds NaN or infinite samples")
    return data, int(sr)


def load_audio(path, params: FeatureParams) -> Tuple[np.ndarray, List[str]]:
    """Read one audio file as a mono float32 waveform of exactly ``params.n_samples`` samples.

    Parameters
    ----------
    path : str or pathlib.Path
        Any file soundfile or librosa can decode.
    params : FeatureParams
        Gives the target ``sample_rate`` and ``n_samples``.

    Returns
    -------
    y : np.ndarray, float32, shape ``(params.n_samples,)``
    adjustments : list of str
        What was done to fit the file to ``params`` (``'downmixed 2 channels'``,
        ``'resampled 44100 Hz -> 16000 Hz'``, ``'padded 3.2 s -> 4.0 s'``, ...); empty when the file
        already matched.

    Raises
    ------
    AudioError
        The file is missing, cannot be decoded, is empty, holds NaN/inf samples, or is silent.
    """
    path = Path(path)
    data, sr = _read(path)
    if data.size == 0:
        raise AudioError(path, "holds no samples")
    adjustments = []
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
    return np.ascontiguousarray(y, dtype=np.float32), adjustments


def _duration(samples: int, sample_rate: int) -> str:
    """``'3.200 s'``, or ``'5 samples'`` below a millisecond (which ``'0.000 s'`` would hide)."""
    if samples < sample_rate / 1000:
        return f"{samples} sample" + ("" if samples == 1 else "s")
    return f"{samples / sample_rate:.3f} s"
