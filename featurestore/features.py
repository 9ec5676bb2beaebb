"""Waveform -> features: the one code path.

:func:`compute_features` is what fills ``/spectra`` in a store and what ``predict`` runs on a
new file (through :func:`features_from_file`), so training and serving cannot drift apart.

For ``kind='stft'`` the result equals, within float16 rounding::

    S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length, window=window,
                            center=center, pad_mode=pad_mode)) ** power
    np.log1p(compression * S).T.astype(np.float16)

It is computed leanly, because the build runs it on every note: windowed frames are written
straight into one float32 buffer (frames after the note's last non-zero sample are all zeros and
are skipped), transformed by one float32 real FFT, and a single fused pass
(compiled with numba, see :func:`_kernels`) turns each complex bin into ``log1p(compression *
S)``, rounds it to float16 (round half to even, as numpy) and adds the stored value to float64
per-bin sums and sums of squares, which the build turns into its statistics. Without numba the
same features come from plain numpy operations (slower, equal within float16 rounding).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from .audio import load_audio
from .half import to_float16, to_float32
from .params import FeatureParams

__all__ = ["compute_features", "features_from_file"]

# Cosine-sum coefficients of the windows FeatureParams allows (scipy.signal.windows' values).
_COSINE_WINDOWS = {"hann": (0.5, 0.5), "hamming": (0.54, 0.46), "blackman": (0.42, 0.50, 0.08)}


@lru_cache(maxsize=8)
def _window(name: str, n_fft: int) -> np.ndarray:
    """``scipy.signal.get_window(name, n_fft, fftbins=True)`` as float32.

    Computed like scipy's ``general_cosine`` (float64, then cast), because importing
    ``scipy.signal`` costs about a second in every worker; other names go to scipy.
    """
    if name not in _COSINE_WINDOWS:
        import scipy.signal
        window = scipy.signal.get_window(name, n_fft, fftbins=True)
    else:
        fac = np.linspace(-np.pi, np.pi, n_fft + 1)  # periodic: symmetric of n_fft + 1, truncated
        window = np.zeros(n_fft + 1)
        for k, a in enumerate(_COSINE_WINDOWS[name]):
            window += a * np.cos(k * fac)
        window = window[:n_fft]
    window = window.astype(np.float32)
    window.flags.writeable = False
    return window


@lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax):
    """librosa's mel filters as a sparse ``(n_mels, bins)`` matrix: each band sums its few bins
    in a fixed order, so the result does not depend on BLAS threads or on the frame count."""
    import librosa  # only the mel features need it; keeps `build` start-up lean
    import scipy.sparse
    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                                fmax=fmax, dtype=np.float32)
    return scipy.sparse.csr_matrix(basis)


# --- the compiled kernels ------------------------------------------------------------------
# Plain Python functions, compiled on first use by _kernels(): importing numba costs ~0.5 s,
# which only the processes that compute features should pay (not `import featurestore.build`).

_U32 = np.uint32
_F16_NAN, _F16_INF = _U32(0x7E00), _U32(0x7C00)
_F32_INF_BITS = _U32(0x7F800000)
_F16_OVERFLOW_BITS = _U32(0x477FF000)  # 65520.0: from here float32 rounds to float16 inf
_F32_MIN_NORMAL_F16 = _U32(0x38800000)   # 2**-14 as float32 bits: below it, float16 subnormals
_F16_REBIAS = _U32((127 - 15) << 10)      # exponent bias 127 -> 15, in float16 bit position
_F16_REBIAS_F32 = _U32((127 - 15) << 23)  # ... and back, in float32 bit position
_MAGIC_23 = np.float32(2.0 ** 23)          # adding it rounds [0, 2**23) to integers (half even)
_MAGIC_23_BITS = _U32(0x4B000000)
_TWO_24 = np.float32(2.0 ** 24)
_TWO_M24 = np.float32(2.0 ** -24)
# logf from musl (FreeBSD's e_logf.c): |error| < 1 ulp, branch-free so LLVM vectorises it.
_SQRT_HALF_BITS = _U32(0x3F3504F3)
_LOG_SHIFT = _U32(0x3F800000 - 0x3F3504F3)
_MANTISSA = _U32(0x007FFFFF)
_LN2_HI, _LN2_LO = np.float32(6.9313812256e-01), np.float32(9.0580006145e-06)
_LG1, _LG2 = np.float32(0.66666662693), np.float32(0.40000972152)
_LG3, _LG4 = np.float32(0.28498786688), np.float32(0.24279078841)
_F32_ONE, _F32_TWO, _F32_HALF = np.float32(1.0), np.float32(2.0), np.float32(0.5)
_F32_INF = np.float32(np.inf)


def _frames_py(y, window, hop, out):
    """``out[t] = y[t * hop: t * hop + n_fft] * window`` for the frames before a silent end.

    Returns the number of frames filled: frames that start after ``y``'s last non-zero sample
    are all zeros (notes often end in digital silence), so their spectrum is zero and they are
    neither filled nor transformed.
    """
    n_frames, n_fft = out.shape
    last = len(y) - 1
    while last >= 0 and y[last] == 0:
        last -= 1
    n_active = min(n_frames, last // hop + 1) if last >= 0 else 0
    for t in range(n_active):
        start = t * hop
        for j in range(n_fft):
            out[t, j] = y[start + j] * window[j]
    return n_active


def _log_half_py(spectrum, mode, power, compression, out, sums, squares):
    """Fused ``log1p(compression * S)`` -> float16 bits, plus per-bin sums of the stored values.

    ``S`` is ``|spectrum|`` (mode 0), ``|spectrum|**2`` (mode 1), ``|spectrum|**power``
    (mode 2) or ``spectrum`` itself (mode 3, a real, non-negative spectrum). ``out`` (uint16)
    receives the float16 bit patterns, rounded half to even like numpy's cast; ``sums`` and
    ``squares`` (float64) the per-bin sum and sum of squares of the float16 values. Each frame
    goes through three simple loops over its bins, which LLVM vectorises.
    """
    n_frames, n_bins = spectrum.shape
    half_power = np.float32(power / 2)
    c = np.float32(compression)
    row = np.empty(n_bins, dtype=np.float32)
    for k in range(n_bins):
        sums[k] = 0.0
        squares[k] = 0.0
    for t in range(n_frames):
        frame = spectrum[t]
        if mode == 0:
            for k in range(n_bins):
                re, im = np.float32(frame[k].real), np.float32(frame[k].imag)
                row[k] = np.sqrt(re * re + im * im)
        elif mode == 1:
            for k in range(n_bins):
                re, im = np.float32(frame[k].real), np.float32(frame[k].imag)
                row[k] = re * re + im * im
        elif mode == 2:
            for k in range(n_bins):
                re, im = np.float32(frame[k].real), np.float32(frame[k].imag)
                row[k] = (re * re + im * im) ** half_power
        else:
            for k in range(n_bins):
                row[k] = np.float32(frame[k].real)
        for k in range(n_bins):
            # log1p(u) = log(v) + err / v, v = 1 + u rounded, err its exact rounding error
            u = c * row[k]
            v = _F32_ONE + u
            err = min(u, _F32_ONE) - (v - max(u, _F32_ONE))
            ix = np.uint32(np.float32(v).view(np.uint32) + _LOG_SHIFT)
            dk = np.float32(np.int32(ix >> _U32(23))) - np.float32(127)
            f = np.uint32((ix & _MANTISSA) + _SQRT_HALF_BITS).view(np.float32) - _F32_ONE
            q = f / (_F32_TWO + f)
            z2 = q * q
            w = z2 * z2
            r = z2 * (_LG1 + w * _LG3) + w * (_LG2 + w * _LG4)
            hfsq = _F32_HALF * f * f
            x = q * (hfsq + r) + dk * _LN2_LO - hfsq + f + dk * _LN2_HI + err / v
            row[k] = x if v < _F32_INF else v  # log(inf) = inf, NaN stays NaN
        outrow = out[t]
        for k in range(n_bins):
            # float32 -> float16 bits, round half to even, and the float16 value back
            x = row[k]
            b = np.float32(x).view(np.uint32)
            normal = np.uint32(((b + _U32(0x0FFF) + ((b >> _U32(13)) & _U32(1))) >> _U32(13))
                               - _F16_REBIAS)
            normal_back = np.uint32(normal << _U32(13)) + _F16_REBIAS_F32
            magic = np.float32(x * _TWO_24 + _MAGIC_23)
            subnormal = np.uint32(np.float32(magic).view(np.uint32) - _MAGIC_23_BITS)
            if b < _F32_MIN_NORMAL_F16:
                h = subnormal
                back = (magic - _MAGIC_23) * _TWO_M24
            elif b < _F16_OVERFLOW_BITS:
                h = normal
                back = np.uint32(normal_back).view(np.float32)
            elif b <= _F32_INF_BITS:
                h = _F16_INF
                back = _F32_INF
            else:
                h = _F16_NAN
                back = x
            outrow[k] = np.uint16(h)
            stored = np.float64(back)
            sums[k] += stored
            squares[k] += stored * stored


@lru_cache(maxsize=None)
def _kernels():
    """The numba-compiled ``(frames, log_half)`` kernels, or ``None`` without numba.

    Compiled once per process (``cache=True`` keeps the machine code in ``__pycache__``, so
    later processes only load it).
    """
    try:
        import numba
    except ImportError:  # pragma: no cover - numba comes with librosa
        return None
    jit = numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)
    return jit(_frames_py), jit(_log_half_py)


def _padded(y: np.ndarray, params: FeatureParams) -> np.ndarray:
    if not params.center:
        return y
    if params.pad_mode == "constant":  # zeros, without np.pad's overhead
        padded = np.zeros(len(y) + 2 * (params.n_fft // 2), dtype=np.float32)
        padded[params.n_fft // 2:params.n_fft // 2 + len(y)] = y
        return padded
    return np.pad(y, params.n_fft // 2, mode=params.pad_mode)


def _features_and_sums(y: np.ndarray, params: FeatureParams, out: Optional[np.ndarray] = None
                       ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`compute_features` plus the per-bin float64 sum and sum of squares of its values.

    Parameters
    ----------
    y : np.ndarray, shape ``(params.n_samples,)``
    params : FeatureParams
    out : np.ndarray, float16, shape ``params.shape``, optional
        Where to write the features (e.g. a row of the build's batch buffer).

    Returns
    -------
    features : np.ndarray, float16, shape ``params.shape``
        ``out`` when given.
    sums, squares : np.ndarray, float64, shape ``(n_bins,)``
        Sums over frames of the float16 values, and of their squares, exactly as
        ``features.astype(np.float64)`` gives them (up to summation order).
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or len(y) != params.n_samples:
        raise ValueError(f"expected a mono waveform of {params.n_samples} samples, "
                         f"got shape {y.shape}")
    if out is None:
        out = np.empty(params.shape, dtype=np.float16)
    kernels = _kernels()
    window = _window(params.window, params.n_fft)
    padded = _padded(y, params)
    if kernels is None:
        frames = np.lib.stride_tricks.sliding_window_view(padded, params.n_fft)
        frames = frames[::params.hop_length] * window
    else:
        frames = np.empty((params.n_frames, params.n_fft), dtype=np.float32)
        n_active = kernels[0](padded, window, params.hop_length, frames)
        frames = frames[:n_active]  # the rest are silent: zero spectrum, zero features
    import scipy.fft  # here, not at the top: the build's writer process never needs it
    spectrum = scipy.fft.rfft(frames, axis=-1, overwrite_x=True)
    mode = 0 if params.power == 1 else 1 if params.power == 2 else 2
    if params.kind == "mel":
        spectrum = np.abs(spectrum)
        if params.power != 1:
            spectrum **= np.float32(params.power)
        basis = _mel_basis(params.sample_rate, params.n_fft, params.n_mels, params.fmin,
                           params.fmax)
        spectrum = np.ascontiguousarray((basis @ spectrum.T).T, dtype=np.float32)
        mode = 3
    if kernels is None:
        if mode != 3:
            spectrum = np.abs(spectrum)
            if params.power != 1:
                spectrum **= np.float32(params.power)
        spectrum *= np.float32(params.compression)
        np.log1p(spectrum, out=spectrum)
        out[...] = to_float16(spectrum)
        stored = to_float32(out).astype(np.float64)
        return out, stored.sum(axis=0), np.einsum("ij,ij->j", stored, stored)
    sums = np.empty(out.shape[1])
    squares = np.empty(out.shape[1])
    kernels[1](spectrum, mode, float(params.power), float(params.compression),
               out[:len(spectrum)].view(np.uint16), sums, squares)
    out[len(spectrum):] = 0  # silent frames add nothing to the sums either
    return out, sums, squares


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
    return _features_and_sums(y, params)[0]


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
