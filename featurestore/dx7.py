"""DX7 single voices in the 155-byte VCED layout: operators, keyboard level scaling, voices."""
from __future__ import annotations

from typing import Sequence, Tuple

from .errors import InputError

__all__ = ["PAIRS", "ADDITIVE", "STACK", "FLAT", "op", "fade_above", "voice"]

#: DX7 algorithms by index (the manual's number minus 1): three carrier/modulator pairs
#: (1<-2, 3<-4, 5<-6, feedback on 6), and six carriers (feedback on 6).
PAIRS, ADDITIVE = 4, 31

#: DX7 algorithm 1 (index 0): carrier 1 <- 2, and carrier 3 <- 4 <- 5 <- 6 (feedback on 6).
STACK = 0

#: An envelope: rates R1-R4, then levels L1-L4, each 0..99.
Env = Tuple[float, float, float, float, float, float, float, float]

#: The keyboard level scaling curve that falls linearly (VCED's left and right curve bytes).
NEG_LIN = 0

#: No keyboard level scaling: (break point, left depth, right depth, left curve, right curve).
FLAT = (39, 0, 0, NEG_LIN, NEG_LIN)

Scaling = Tuple[float, float, float, int, int]


def _clamped(values: Sequence[float], limits: Sequence[int]) -> list:
    """Each value rounded into its byte's range, 0..limit."""
    return [int(min(max(round(v), 0), top)) for v, top in zip(values, limits)]


def op(ratio: float, level: float, env: Env, *, vel: float = 0, detune: float = 7,
       rate_scaling: float = 0, ams: float = 0, scaling: Scaling = FLAT) -> list:
    """One operator's 21 VCED bytes: ratio (0.5..31), output level (0..99), envelope (R1-R4,
    L1-L4), velocity sensitivity (0..7), detune (7 is none), rate scaling, amp-mod sensitivity,
    keyboard level scaling (break point 0..99, where 39 is MIDI 60; depths 0..99; curves).
    """
    coarse = 0 if ratio < 1 else int(ratio)
    fine = (ratio / (coarse or 0.5) - 1) * 100
    return _clamped([*env, *scaling, rate_scaling, ams, vel, level, 0, coarse, fine, detune],
                    [99] * 11 + [3, 3, 7, 3, 7, 99, 1, 31, 99, 14])


def fade_above(break_point: float, depth: float) -> Scaling:
    """Keyboard level scaling that lowers an operator linearly, by ``depth``, over the keys
    above ``break_point`` (39 is MIDI 60)."""
    return (break_point, 0, depth, NEG_LIN, NEG_LIN)


def voice(algorithm: int, feedback: float, ops: Sequence[list], *,
          lfo: Tuple[float, float, float, float] = (35, 0, 0, 0), pms: float = 0,
          pitch_env: Env = (99, 99, 99, 99, 50, 50, 50, 50), name: str = "TIMBREMAP") -> bytes:
    """A DX7 single voice in the 155-byte VCED layout.

    Parameters
    ----------
    algorithm : int
        0..31.
    feedback : float
        0..7.
    ops : sequence of 6 lists
        Operators 1..6, each from :func:`op`.
    lfo : (speed, delay, pitch depth, amp depth), each 0..99
        A sine LFO.
    pms : float
        Pitch-mod sensitivity 0..7.
    pitch_env : (R1-R4, L1-L4)
        The pitch envelope (50 is no shift; the note starts at L4).
    name : str
        Up to 10 ASCII characters.

    Returns
    -------
    bytes, length 155

    Raises
    ------
    InputError
        Unless there are 6 operators.
    """
    if len(ops) != 6:
        raise InputError(f"a DX7 voice has 6 operators, got {len(ops)}")
    head = _clamped([*pitch_env, algorithm, feedback, 1, *lfo, 0, 4, pms, 24],
                    [99] * 8 + [31, 7, 1, 99, 99, 99, 99, 1, 5, 7, 48])
    data = [b for one in reversed(list(ops)) for b in one] + head  # VCED stores op 6 first
    return bytes(data) + name[:10].ljust(10).encode("ascii")
