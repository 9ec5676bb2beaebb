"""float32 <-> float16 casts in numpy, for the features' numpy path.

numpy's own casts between float16 and float32 run element by element (the compiled feature
kernels use the CPU's F16C instruction instead, see :mod:`featurestore.fastpaths`). These do
the same conversion with a few vectorised integer operations, bit-identical to numpy's
round-half-to-even, for the values features hold (finite, non-negative, below float16's
maximum); any other array takes numpy's cast.
"""
from __future__ import annotations

import numpy as np

__all__ = ["to_float16", "to_float32"]

_F16_MAX = 65504.0
_SMALLEST_NORMAL = 2.0 ** -14
_BIAS = np.uint32((127 - 15) << 10)


def to_float16(x: np.ndarray) -> np.ndarray:
    """``x.astype(np.float16)``, bit for bit, faster for finite values in ``[0, 65504)``."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.size == 0 or not (x.min() >= 0 and x.max() < _F16_MAX):
        return x.astype(np.float16)
    u = x.view(np.uint32)
    odd = (u >> 13) & 1          # round half to even on the 13 dropped mantissa bits
    odd += 0x0FFF
    odd += u
    odd >>= 13
    odd -= _BIAS                 # rebias the exponent: 127 -> 15
    half = odd.astype(np.uint16)
    small = x < _SMALLEST_NORMAL  # float16 subnormals: multiples of 2**-24
    if small.any():
        subnormal = np.minimum(x, np.float32(_SMALLEST_NORMAL))
        subnormal *= np.float32(2.0 ** 24)
        subnormal = np.rint(subnormal, out=subnormal).astype(np.uint16)
        np.copyto(half, subnormal, where=small)
    return half.view(np.float16)


def to_float32(h: np.ndarray) -> np.ndarray:
    """``h.astype(np.float32)``, bit for bit, faster for finite non-negative float16 values."""
    h = np.ascontiguousarray(h, dtype=np.float16)
    bits = h.view(np.uint16)
    if h.size == 0 or bits.max() >= 0x7C00:  # negative, inf or NaN
        return h.astype(np.float32)
    u = bits.astype(np.uint32)
    u <<= 13
    u += np.uint32((127 - 15) << 23)
    out = u.view(np.float32)
    small = bits < 0x0400
    if small.any():
        subnormal = bits.astype(np.float32)
        subnormal *= np.float32(2.0 ** -24)
        np.copyto(out, subnormal, where=small)
    return out
