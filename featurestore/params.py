"""The feature parameters: one dataclass, written to and read back from store attributes.

Every parameter that shapes the stored features lives in :class:`FeatureParams`.  The build
records it in the root attributes of each split file (prefixed ``feature_``) and ``predict``
reads it back from there, so a model always sees features computed exactly like its store's.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
import sys
from dataclasses import dataclass
from typing import Mapping, Optional

from .errors import InputError, check_positive_int

__all__ = ["FeatureParams", "ATTR_PREFIX", "KEYWORD_ONLY"]

ATTR_PREFIX = "feature_"
#: ``dataclass`` options of the configuration classes: their fields are given by name
#: (``TrainConfig(epochs=3)``), where Python has keyword-only fields (3.10+).
KEYWORD_ONLY = {"kw_only": True} if sys.version_info >= (3, 10) else {}
KINDS = ("stft", "mel")
#: Fields that shape only mel features (an STFT store ignores them).
MEL_ONLY = ("n_mels", "fmin", "fmax")
WINDOWS = ("hann", "hamming", "blackman")
#: Most frequency bins a store can hold: ``/spectra``'s ``mean`` and ``std`` attributes (float64
#: per bin) must each fit HDF5's 64 KiB attribute message.
MAX_BINS = 8000
PAD_MODES = ("constant", "reflect")
#: The most features one note may have, in bytes, where it is built (the default note's are
#: 251 KiB): a build holds a few batches of notes in memory. A longer recording is cut into
#: notes (``build --windows``) instead. Settings read from a store or a model are held only
#: to what HDF5 can store, one note a chunk (:data:`MAX_CHUNK_BYTES`).
MAX_NOTE_BYTES = 16 << 20
MAX_CHUNK_BYTES = (4 << 30) - 1
#: The highest sample rate features may be built at, in Hz (that of 768 kHz studio files).
MAX_SAMPLE_RATE = 768_000
#: The shortest STFT frame, in samples (a frame of one sample is all zero under a periodic
#: Hann window).
MIN_N_FFT = 16


@dataclass(frozen=True, **KEYWORD_ONLY)
class FeatureParams:
    """How a waveform becomes a spectrum.

    Parameters
    ----------
    kind : {'stft', 'mel'}
        ``'stft'``: the linear-frequency magnitude STFT (``n_fft // 2 + 1`` bins).
        ``'mel'``: the same STFT folded onto ``n_mels`` mel bands (librosa's filters).
    sample_rate : int
        Audio is resampled to this rate (Hz) before analysis.
    duration : float
        Seconds per note; shorter audio is zero-padded at the end, longer audio trimmed.
    n_fft, hop_length : int
        STFT frame length and hop, in samples.
    window : str
        Periodic analysis window (``scipy.signal.get_window`` name).
    center : bool
        Pad ``n_fft // 2`` samples on both sides so frame ``t`` is centred on ``t * hop``.
    pad_mode : {'constant', 'reflect'}
        How ``center`` pads (librosa's default is ``'constant'``: zeros).
    power : float
        Exponent of the magnitude: 1 for magnitude, 2 for power.
    compression : float
        The stored value is ``log(1 + compression * S)`` where ``S`` is the (mel) spectrum.
    n_mels, fmin, fmax : int, float, float or None
        Mel bands and their frequency range (``kind='mel'`` only; ``fmax=None`` is Nyquist).
    """

    kind: str = "stft"
    sample_rate: int = 16000
    duration: float = 4.0
    n_fft: int = 1024
    hop_length: int = 256
    window: str = "hann"
    center: bool = True
    pad_mode: str = "constant"
    power: float = 1.0
    compression: float = 1000.0
    n_mels: int = 128
    fmin: float = 0.0
    fmax: Optional[float] = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.window not in WINDOWS:
            raise InputError(f"window must be one of {WINDOWS}, got {self.window!r}")
        if self.pad_mode not in PAD_MODES:
            raise InputError(f"pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}")
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels"):
            check_positive_int(name, getattr(self, name))  # numpy's too: held as int
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("duration", "power", "compression", "fmin", "fmax"):
            value = getattr(self, name)
            if value is None and name == "fmax":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise InputError(f"{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("duration", "power", "compression"):
            if not 0 < getattr(self, name) < math.inf:
                raise InputError(f"{name} must be positive and finite, got "
                                 f"{getattr(self, name)!r}")
        if self.n_samples < self.n_fft:
            raise InputError(
                f"duration {self.duration} s at {self.sample_rate} Hz gives {self.n_samples} "
                f"samples, fewer than one frame of n_fft={self.n_fft}")
        if self.n_bins > MAX_BINS:
            raise InputError(
                f"{self.n_bins} frequency bins is more than {MAX_BINS:,} (n_fft up to "
                f"{2 * MAX_BINS - 2:,}, n_mels up to {MAX_BINS:,}): the per-bin mean and std are "
                f"HDF5 attributes, limited to 64 KiB each")
        self._check_note_bytes(MAX_CHUNK_BYTES, f"no store holds more: HDF5's chunks are under "
                                                f"4 GiB; a build takes at most "
                                                f"{MAX_NOTE_BYTES >> 20} MiB")
        nyquist = self.sample_rate / 2
        if self.kind == "mel":
            top = nyquist if self.fmax is None else self.fmax
            if not 0 <= self.fmin < top <= nyquist:
                raise InputError(
                    f"need 0 <= fmin < fmax <= {nyquist} Hz, got fmin={self.fmin}, fmax={self.fmax}")

    def _check_note_bytes(self, most: int, why: str):
        if self.note_bytes > most:
            bins = f"n_mels={self.n_mels}" if self.kind == "mel" else f"n_fft={self.n_fft}"
            raise InputError(
                f"a note's features must be at most {most / 2**20:.0f} MiB: duration="
                f"{self.duration:g} s, hop_length={self.hop_length} and {bins} give "
                f"{self.shape}, {self.note_bytes / 2**20:.0f} MiB ({why})")

    def check_buildable(self):
        """Raise :class:`InputError` unless a build may use these settings: a sample rate of
        at most :data:`MAX_SAMPLE_RATE`, frames of :data:`MIN_N_FFT` samples at least and a
        hop no longer than a note, a note of at most :data:`MAX_NOTE_BYTES` of features (and
        of STFT, for mel bands), no mel band that no STFT bin falls in. (A store or model
        read back is held only to what it can hold: those built before these bounds read.)"""
        if self.sample_rate > MAX_SAMPLE_RATE:
            raise InputError(f"sample_rate must be at most {MAX_SAMPLE_RATE}, got "
                             f"{self.sample_rate}")
        if self.n_fft < MIN_N_FFT:
            raise InputError(f"n_fft must be at least {MIN_N_FFT} samples, got {self.n_fft}")
        if self.hop_length > self.n_samples:
            raise InputError(f"hop_length must be at most a note's {self.n_samples} samples, "
                             f"got {self.hop_length}")
        self._check_note_bytes(MAX_NOTE_BYTES, "cut long recordings into windows instead")
        if self.kind == "mel":
            stft = self.n_frames * (self.n_fft // 2 + 1) * 2
            if stft > MAX_NOTE_BYTES:
                raise InputError(
                    f"the STFT a note's mel bands are made from must be at most "
                    f"{MAX_NOTE_BYTES >> 20} MiB as float16: n_fft={self.n_fft}, hop_length="
                    f"{self.hop_length} and duration={self.duration:g} s give "
                    f"({self.n_frames}, {self.n_fft // 2 + 1}), {stft / 2**20:.0f} MiB")
            self._check_mel_bands()

    def _check_mel_bands(self):
        """Refuse mel bands that no STFT bin falls in: they would be 0 in every note."""
        import warnings
        import librosa
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa's own warning of empty filters
            weights = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft,
                                          n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax)
        empty = int((weights.max(axis=1) == 0).sum())
        if empty:
            raise InputError(
                f"n_mels must leave no band empty: {empty} of {self.n_mels} bands hold no STFT "
                f"bin at n_fft={self.n_fft} and {self.sample_rate} Hz (they would be 0 in every "
                f"note); use fewer bands, a larger n_fft, or (from Python) a higher fmin")

    @property
    def n_samples(self) -> int:
        """Samples per note after padding or trimming."""
        return int(round(self.duration * self.sample_rate))

    @property
    def n_frames(self) -> int:
        """Time frames per note."""
        padded = self.n_samples + (2 * (self.n_fft // 2) if self.center else 0)
        return 1 + (padded - self.n_fft) // self.hop_length

    @property
    def note_bytes(self) -> int:
        """Bytes of one note's features as a store holds them (float16 :attr:`shape`)."""
        return 2 * self.n_frames * self.n_bins

    @property
    def n_bins(self) -> int:
        """Frequency bins per frame."""
        return self.n_mels if self.kind == "mel" else self.n_fft // 2 + 1

    @property
    def shape(self) -> tuple:
        """``(n_frames, n_bins)`` of one note's features."""
        return (self.n_frames, self.n_bins)

    def to_attrs(self) -> dict:
        """The parameters as HDF5-storable attributes (``None`` is stored as ``'none'``)."""
        return {ATTR_PREFIX + k: ("none" if v is None else v)
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_attrs(cls, attrs: Mapping) -> "FeatureParams":
        """Read parameters back from attributes written by :meth:`to_attrs`.

        Raises
        ------
        KeyError
            When an attribute is missing (the file was not written by timbremap).
        """
        values = {}
        for field in dataclasses.fields(cls):
            raw = attrs[ATTR_PREFIX + field.name]
            if hasattr(raw, "item"):
                raw = raw.item()
            if isinstance(raw, bytes):
                raw = raw.decode()
            number = isinstance(raw, (int, float)) and not isinstance(raw, bool)
            if raw == "none":
                raw = None
            elif field.name in ("sample_rate", "n_fft", "hop_length", "n_mels"):
                if not number or not float(raw).is_integer():  # nor a number stored as text
                    raise ValueError(f"{ATTR_PREFIX}{field.name} is {raw!r}, not an integer")
                raw = int(raw)
            elif field.name == "center":
                if not isinstance(raw, (bool, int)) or raw not in (0, 1):
                    raise ValueError(f"{ATTR_PREFIX}{field.name} is {raw!r}, not true or false")
                raw = bool(raw)
            elif field.name in ("duration", "power", "compression", "fmin", "fmax"):
                if not number:
                    raise ValueError(f"{ATTR_PREFIX}{field.name} is {raw!r}, not a number")
                raw = float(raw)
            values[field.name] = raw
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping) -> "FeatureParams":
        return cls(**dict(data))

    def shaping(self) -> list:
        """Names of the fields that shape these features (the mel bands' fields only for
        ``kind='mel'``: they do not shape an STFT)."""
        return [f.name for f in dataclasses.fields(self)
                if self.kind == "mel" or f.name not in MEL_ONLY]

    def differences(self, other: "FeatureParams") -> list:
        """Human-readable ``name: a != b`` for every field that shapes either's features and
        differs from ``other``."""
        shaping = set(self.shaping()) | set(other.shaping())
        return [f"{f.name}: {getattr(self, f.name)!r} != {getattr(other, f.name)!r}"
                for f in dataclasses.fields(self) if f.name in shaping
                and getattr(self, f.name) != getattr(other, f.name)]
