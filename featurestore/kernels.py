"""The compiled (numba) kernels of :mod:`featurestore.features`.

Imported only by the processes that compute features (importing numba costs ~0.5 s, which
``import featurestore.build`` should not pay); :func:`featurestore.features._compiled` loads this
module and checks the kernels once per process.

- :func:`active_frames`: how many frames start before a note's silent end.
- :func:`log_half`: one fused pass from a real FFT to stored features: the magnitude,
  ``log1p(compression * S)``, the cast to float16 and the float64 per-bin sums of the stored
  values.

The float32 -> float16 cast is LLVM's ``fptrunc`` to ``half``, which compiles to the CPU's F16C
instruction (``vcvtps2ph``, round half to even, bit-identical to numpy's cast, eight values at a
time); the logarithm is musl's ``logf``, written branch-free so LLVM vectorises it.
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["active_frames", "log_half"]

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

_jit = numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)


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
