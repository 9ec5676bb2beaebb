"""The fast paths of the feature hot path: every use of a dependency's private API, and every
hand-written replacement of a library function, is here and nowhere else.

=====================  ============================================  ======================
fast path              leans on                                      without it
=====================  ============================================  ======================
:func:`read_pcm16`     soundfile's private cffi binding of           ``sf.SoundFile``
                       libsndfile (``soundfile._snd``, ``_ffi``)
:func:`rfft_into`      scipy's private pocketfft binding             ``scipy.fft.rfft``,
                       (``scipy.fft._pocketfft.pypocketfft``)        copied
:func:`kernels`        numba kernels, with a hand port of musl's     the same arithmetic
                       ``logf`` and LLVM's float16 cast              in numpy
=====================  ============================================  ======================

What each gains: the steady-state build with each one switched off in turn
(``benchmarks/fastpaths.py``, table in ``docs/extraction.md``); a fast path stays only while it
gives at least 10 %.

Each is checked once per process against the public function it replaces (same bits). Where one
cannot be taken on the installed versions, a warning names it and why, and the public
function stands in: the build is right, only slower. The unit tests fail in that case
(``tests/test_features.py``), so a dependency upgrade that breaks a fast path is an error, not
an unexplained slowdown.

Importing this module imports numba, which takes a while: :mod:`featurestore.audio` and
:mod:`featurestore.features` import it where they first read or transform a note, so a process
that only writes (the build's writer) does not pay for it.

The numba kernels
-----------------
- :func:`active_frames`: how many frames start before a note's silent end.
- :func:`log_half`: one fused pass from a real FFT to stored features: the magnitude,
  ``log1p(compression * S)``, the cast to float16 and the float64 per-bin sums of the stored
  values.

The float32 -> float16 cast is LLVM's ``fptrunc`` to ``half``, which compiles to the CPU's F16C
instruction (``vcvtps2ph``, round half to even, bit-identical to numpy's cast, eight values at a
time); the logarithm is musl's ``logf``, written branch-free so LLVM vectorises it.
"""
from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Optional, Tuple

import numba
import numpy as np
import soundfile as sf
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["read_pcm16", "rfft_into", "kernels", "active_frames", "log_half"]

log = logging.getLogger(__name__)


def _not_taken(name: str, why: str):
    log.warning("fast path '%s' not taken (%s): the build runs slower (docs/extraction.md has "
                "what each fast path gains); please report it with your package versions",
                name, why)


# ---- libsndfile's C calls ------------------------------------------------------------------

_SUBTYPE_MASK, _PCM_16 = 0x0000FFFF, 0x0002  # libsndfile's SF_FORMAT_SUBMASK, SF_FORMAT_PCM_16
_UNKNOWN_LENGTH = 2 ** 62  # a streamed FLAC's frame count says 2**63 - 1


@lru_cache(maxsize=None)
def _libsndfile():
    """``(lib, ffi)``: libsndfile's C functions as soundfile binds them (cffi), or ``None``
    (warned once) where this soundfile does not expose them."""
    if os.name == "nt":  # soundfile opens paths with sf_wchar_open there: not a fast path
        return None
    lib, ffi = getattr(sf, "_snd", None), getattr(sf, "_ffi", None)
    names = ("sf_open", "sf_readf_short", "sf_seek", "sf_error", "sf_close", "SFM_READ")
    if lib is None or ffi is None or not all(hasattr(lib, n) for n in names):
        _not_taken("libsndfile C calls",
                   f"soundfile {sf.__version__} has no _snd/_ffi binding with {', '.join(names)}")
        return None
    return lib, ffi


def read_pcm16(path: Path, frames_for: Callable[[int, int], Tuple[int, int]]
               ) -> Optional[Tuple[np.ndarray, int, int]]:
    """The start of a 16-bit PCM file (NSynth's format) of one or two channels through
    libsndfile's C API: ``sf_open``, ``sf_readf_short``, ``sf_seek``, ``sf_close``, the calls
    ``sf.SoundFile(...).read(dtype='int16')`` makes, without the Python around them (which
    holds the GIL, so two reading threads did not scale).

    Parameters
    ----------
    path : pathlib.Path
    frames_for : callable
        ``frames_for(sample_rate, channels)``: ``(start, count)``, the first frame to read and
        how many frames to read at most; it may raise to refuse the file.

    Returns
    -------
    (pcm, sample_rate, frames) or None
        int16 ``(min(frames - start, count), channels)`` (none when ``start`` is at or past the
        end) and the frames the whole file holds; of the rest of the file only its last frame is
        read besides (a FLAC cut short fails there).
        ``None`` for anything else, which ``sf.SoundFile`` then reads, or explains: another
        subtype, more than two channels, a file libsndfile cannot open, a header whose frame
        count is unknown, a read or seek error.
    """
    binding = _libsndfile()
    if binding is None:
        return None
    lib, ffi = binding
    info = ffi.new("SF_INFO*")
    handle = lib.sf_open(os.fsencode(path), lib.SFM_READ, info)
    if handle == ffi.NULL:
        return None
    try:
        frames, channels = info.frames, info.channels
        if info.format & _SUBTYPE_MASK != _PCM_16 or not 1 <= channels <= 2 \
                or not 0 <= frames < _UNKNOWN_LENGTH:
            return None
        start, count = frames_for(int(info.samplerate), channels)
        want = max(0, min(frames - start, count))
        pcm = np.empty((want, channels), dtype=np.int16)
        if want and start and lib.sf_seek(handle, start, os.SEEK_SET) != start:
            return None
        if lib.sf_readf_short(handle, ffi.cast("short *", ffi.from_buffer(pcm)), want) != want \
                or lib.sf_error(handle):
            return None
        if start + want < frames:
            last = np.empty((1, channels), dtype=np.int16)
            if lib.sf_seek(handle, frames - 1, os.SEEK_SET) != frames - 1 or lib.sf_readf_short(
                    handle, ffi.cast("short *", ffi.from_buffer(last)), 1) != 1:
                return None
    finally:
        lib.sf_close(handle)
    return pcm, int(info.samplerate), int(frames)


# ---- pocketfft into a given array ----------------------------------------------------------

@lru_cache(maxsize=None)
def rfft_into():
    """``rfft_into(x, out)``: ``out[...] = scipy.fft.rfft(x, axis=-1)`` without a new array,
    through ``out`` of scipy's own pocketfft binding (the function ``scipy.fft.rfft`` calls);
    ``None`` (warned once) where that binding is missing or gives other bits.

    A new spectrum per block of frames cost about as much as the FFT itself (fresh pages
    from the kernel, and two threads contending for them).
    """
    import scipy
    import scipy.fft
    try:
        from scipy.fft._pocketfft import pypocketfft

        def direct(x, out):
            pypocketfft.r2c(x, (x.ndim - 1,), True, 0, out, 1)
        probe = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
        out = np.empty((3, 33), dtype=np.complex64)
        direct(probe, out)
        if np.array_equal(out, scipy.fft.rfft(probe, axis=-1)):
            return direct
        why = "its result differs from scipy.fft.rfft"
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        why = f"{type(err).__name__}: {err}"
    _not_taken("pocketfft into the workspace",
               f"scipy {scipy.__version__}'s private pocketfft binding: {why}")
    return None


# ---- numba kernels -------------------------------------------------------------------------

@lru_cache(maxsize=None)
def kernels() -> Optional[SimpleNamespace]:
    """``active_frames`` and ``log_half``, compiled (once per process: ``cache=True`` keeps the
    machine code in ``__pycache__``) and checked against numpy's float16 cast; ``None`` (warned
    once) on a CPU whose compiled cast disagrees."""
    probe = np.array([[0.0, 1e-9, 3e-6, 0.5, 7.25, 1e4]], dtype=np.complex64)
    out = np.empty(probe.shape, dtype=np.uint16)
    sums, squares = np.zeros(probe.shape[1]), np.zeros(probe.shape[1])
    try:
        log_half(probe, 3, 1.0, 1.0, out, sums, squares)
    except numba.core.errors.NumbaError as err:
        _not_taken("numba kernel", f"numba {numba.__version__} cannot compile it: {err}")
        return None
    expected = np.log1p(probe.real.astype(np.float64)).astype(np.float16)
    if not np.array_equal(out, expected.view(np.uint16)):
        _not_taken("numba kernel", "its float16 cast differs from numpy's on this CPU")
        return None
    return SimpleNamespace(active_frames=active_frames, log_half=log_half)

_U32 = np.uint32
# logf from musl (FreeBSD's e_logf.c): |error| < 1 ulp.
_SQRT_HALF_BITS = _U32(0x3F3504F3)
_LOG_SHIFT = _U32(0x3F800000 - 0x3F3504F3)
_MANTISSA = _U32(0x007FFFFF)
_LN2_HI, _LN2_LO = np.float32(6.9313812256e-01), np.float32(9.0580006145e-06)
_LG1, _LG2 = np.float32(0.66666662693), np.float32(0.40000972152)
_LG3, _LG4 = np.float32(0.28498786688), np.float32(0.24279078841)
_ONE, _TWO, _HALF = np.float32(1.0), np.float32(2.0), np.float32(0.5)
_INF = np.float32(np.inf)


def _jit(function):
    """``numba.njit``, its machine code cached where numba finds a folder it may write (beside
    this module, ``NUMBA_CACHE_DIR``, the user's cache); compiled anew in each process where it
    finds none (a read-only install run with a read-only home), as numba refuses to cache."""
    options = dict(nogil=True, error_model="numpy", boundscheck=False)
    try:
        return numba.njit(cache=True, **options)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available for file ..."
        return numba.njit(**options)(function)


@intrinsic
def _float16_bits(typingctx, x):
    """float32 -> float16 (round half to even), returned as its uint16 bit pattern."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))
    return types.uint16(types.float32), codegen


@intrinsic
def _float16_value(typingctx, bits):
    """The float16 value of a uint16 bit pattern, as float64 (exact)."""
    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.DoubleType())
    return types.float64(types.uint16), codegen


@_jit
def active_frames(y, hop, n_frames):
    """How many of ``n_frames`` frames (one every ``hop`` samples) start at or before ``y``'s
    last non-zero sample; the others are all zeros (notes often end in digital silence)."""
    last = len(y) - 1
    while last >= 0 and y[last] == 0:
        last -= 1
    return min(n_frames, last // hop + 1) if last >= 0 else 0


@_jit
def _logf(v):
    """``log(v)`` for float32 ``v >= 1`` (musl's logf without its branches)."""
    ix = np.uint32(np.float32(v).view(np.uint32) + _LOG_SHIFT)
    dk = np.float32(np.int32(ix >> _U32(23))) - np.float32(127)
    f = np.uint32((ix & _MANTISSA) + _SQRT_HALF_BITS).view(np.float32) - _ONE
    q = f / (_TWO + f)
    z2 = q * q
    w = z2 * z2
    r = z2 * (_LG1 + w * _LG3) + w * (_LG2 + w * _LG4)
    hfsq = _HALF * f * f
    return q * (hfsq + r) + dk * _LN2_LO - hfsq + f + dk * _LN2_HI


@_jit
def log_half(spectrum, mode, power, compression, out, sums, squares):
    """Stored features of one note from its real FFT, with per-bin sums of the stored values.

    Parameters
    ----------
    spectrum : complex64 array, shape ``(frames, bins)``
        ``rfft`` of each windowed frame (or, in mode 3, a real non-negative spectrum).
    mode : int
        ``S`` is ``|spectrum|`` (0), ``|spectrum|**2`` (1), ``|spectrum|**power`` (2), or
        ``spectrum.real`` itself (3: e.g. mel bands).
    power, compression : float
    out : uint16 array, shape ``(frames, bins)``
        Receives the float16 bit patterns of ``log1p(compression * S)``.
    sums, squares : float64 arrays, shape ``(bins,)``
        The float16 values, and their squares, are added to them frame by frame (so a note
        transformed in blocks of frames gets the same sums as all at once).
    """
    n_frames, n_bins = spectrum.shape
    half_power = np.float32(power / 2)
    c = np.float32(compression)
    row = np.empty(n_bins, dtype=np.float32)
    for t in range(n_frames):
        frame = spectrum[t]
        if mode == 0:  # one loop per mode: LLVM vectorises loops without branches
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
            v = _ONE + u
            err = min(u, _ONE) - (v - max(u, _ONE))
            x = _logf(v) + err / v
            row[k] = x if v < _INF else v  # log(inf) = inf, NaN stays NaN
        for k in range(n_bins):
            bits = _float16_bits(row[k])
            out[t, k] = bits
            stored = _float16_value(bits)
            sums[k] += stored
            squares[k] += stored * stored
