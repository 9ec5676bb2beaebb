"""Waveform -> features: the one code path.

:func:`compute_features` is what fills ``/spectra`` in a store and what ``predict`` runs on a
new file (through :func:`features_from_file`), so training and serving cannot drift apart.

For ``kind='stft'`` the result equals, within float16 rounding::

    S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length, window=window,
                            center=center, pad_mode=pad_mode)) ** power
    np.log1p(compression * S).T.astype(np.float16)

It is computed leanly (strided frames, one float32 real FFT, in-place log), because the build
runs it on every note.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import List, Tuple

import numpy as np
import scipy.fft
import scipy.signal

from .audio import load_audio
from .half import to_float16
from .params import FeatureParams

__all__ = ["compute_features", "features_from_file"]


@lru_cache(maxsize=8)
def _window(name: str, n_fft: int) -> np.ndarray:
    window = scipy.signal.get_window(name, n_fft, fftbins=True).astype(np.float32)
    window.flags.writeable = False
    return window


@lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax) -> np.ndarray:
    import librosa  # only the mel features need it; keeps `build` start-up lean
    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                                fmax=fmax, dtype=np.float32)
    basis = np.ascontiguousarray(basis.T)
    basis.flags.writeable = False
    return basis


def compute_features(y: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Features of one note.

    Parameters
    ----------
    y : np.ndarray, shape ``(params.n_samples,)``
        Mono waveform at ``params.sample_rate`` (what :func:`featurestore.audio.load_audio`
        returns).
    params : FeatureParams

    Returns
    -------
    np.ndarray, float16, shape ``params.shape`` = ``(n_frames, n_bins)``
        ``log(1 + compression * S)`` with ``S`` the magnitude (``power``) STFT, or its mel bands.

    Raises
    ------
    ValueError
        When ``y`` is not 1-D with ``params.n_samples`` finite samples.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or len(y) != params.n_samples:
        raise ValueError(f"expected a mono waveform of {params.n_samples} samples, "
                         f"got shape {y.shape}")
    if params.center and params.pad_mode == "constant":  # zeros, without np.pad's overhead
        padded = np.zeros(len(y) + 2 * (params.n_fft // 2), dtype=np.float32)
        padded[params.n_fft // 2:params.n_fft // 2 + len(y)] = y
        y = padded
    elif params.center:
        y = np.pad(y, params.n_fft // 2, mode=params.pad_mode)
    frames = np.lib.stride_tricks.sliding_window_view(y, params.n_fft)[::params.hop_length]
    frames = frames * _window(params.window, params.n_fft)
    spectrum = np.abs(scipy.fft.rfft(frames, axis=-1, overwrite_x=True))
    if params.power != 1:
        spectrum **= np.float32(params.power)
    if params.kind == "mel":
        spectrum = spectrum @ _mel_basis(params.sample_rate, params.n_fft, params.n_mels,
                                         params.fmin, params.fmax)
    spectrum *= np.float32(params.compression)
    spectrum += np.float32(1.0)
    np.log(spectrum, out=spectrum)
    return to_float16(spectrum)


def features_from_file(path, params: FeatureParams) -> Tuple[np.ndarray, List[str]]:
    """Read an audio file with :func:`~featurestore.audio.load_audio` and compute its features.

    Returns
    -------
    features : np.ndarray, float16, shape ``params.shape``
    adjustments : list of str
        What reading did to fit the file to ``params`` (downmix, resample, pad, trim).
    """
    y, adjustments = load_audio(Path(path), params)
    return compute_features(y, params), adjustments
