"""Waveform -> features: the one code path.

:func:`compute_features` is what fills ``/spectra`` in a store and what ``predict`` runs on a
new file (through :func:`features_from_file`), so training and serving cannot drift apart.

For ``kind='stft'`` the result equals, within float16 rounding::

    S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length, window=window,
                            center=center, pad_mode=pad_mode)) ** power
    np.log1p(compression * S).T.astype(np.float16)

It is computed leanly, because the build runs it on every note: buffers are reused from note to
note (:class:`Workspace`), the frames are a strided view of the (padded) waveform, those after
the note's last non-zero sample are skipped (all zeros), the rest are windowed and transformed
by a float32 real FFT :data:`BLOCK_FRAMES` at a time (a block's frames and spectrum stay in the
CPU's cache), and for each block a single fused pass (compiled with numba,
:mod:`featurestore.fastpaths`) turns each bin into ``log1p(compression * S)``, casts it to
float16 (the CPU's F16C instruction: round half to even, as numpy) and adds the stored value to
float64 per-bin sums and sums of squares, which the build turns into its statistics. Where
that kernel cannot be used, the same features come from plain numpy operations (slower, equal
within float16 rounding).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple

import numpy as np

from .audio import AudioError, load_audio
from .errors import check_paths, check_positive_int
from .half import to_float16, to_float32
from .params import FeatureParams

__all__ = ["compute_features", "features_from_file", "features_of_files", "FileFeatures",
           "note_features", "Workspace"]

#: Frames transformed at a time: a block's frames and spectrum stay in the CPU's cache, which
#: made a note faster than all its frames at once.
BLOCK_FRAMES = 128

# Cosine-sum coefficients of the windows FeatureParams allows (scipy.signal.windows' values).
_COSINE_WINDOWS = {"hann": (0.5, 0.5), "hamming": (0.54, 0.46), "blackman": (0.42, 0.50, 0.08)}


@lru_cache(maxsize=8)
def _window(name: str, n_fft: int) -> np.ndarray:
    """``scipy.signal.get_window(name, n_fft, fftbins=True)`` as float32.

    Computed like scipy's ``general_cosine`` (float64, then cast), because importing
    ``scipy.signal`` is slow in every worker; other names go to scipy.
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


def _rfft_copied(x, out):
    """``scipy.fft.rfft`` into ``out``, copied (where :func:`fastpaths.rfft_into` is not taken)."""
    import scipy.fft  # here, not at the top: the build's writer process never needs it
    out[...] = scipy.fft.rfft(x, axis=-1)


class Workspace:
    """The buffers computing features reuses from note to note: the padded waveform, a block
    of windowed frames and its spectrum.

    One per thread: the build makes one per batch of notes, :func:`compute_features` one per
    call. Reusing them matters: allocating a block's frames and spectrum anew took as long as
    transforming them, and two threads allocating at once scaled worse still.

    Attributes
    ----------
    waveform : np.ndarray, float32, shape ``(params.n_samples,)``
        The note inside the padded waveform: read a file straight into it
        (``load_audio(path, params, out=workspace.waveform)``) and it is not copied.
    """

    def __init__(self, params: FeatureParams):
        self.params = params
        self.pad = params.n_fft // 2 if params.center else 0
        self.padded = np.zeros(params.n_samples + 2 * self.pad, dtype=np.float32)
        self.waveform = self.padded[self.pad:self.pad + params.n_samples]
        self.frames = np.lib.stride_tricks.as_strided(  # a read-only view: frame t at t * hop
            self.padded, shape=params.shape[:1] + (params.n_fft,),
            strides=(self.padded.strides[0] * params.hop_length, self.padded.strides[0]),
            writeable=False)
        self.windowed = np.empty((BLOCK_FRAMES, params.n_fft), dtype=np.float32)
        self.spectrum = np.empty((BLOCK_FRAMES, params.n_fft // 2 + 1), dtype=np.complex64)

    def load(self, y: np.ndarray):
        """Put ``y`` into :attr:`waveform` and pad it (``params.pad_mode``; zeros stay)."""
        if y is not self.waveform:
            self.waveform[...] = y
        if self.pad and self.params.pad_mode != "constant":
            self.padded[...] = np.pad(self.waveform, self.pad, mode=self.params.pad_mode)


def _mel_bands(spectrum: np.ndarray, params: FeatureParams) -> np.ndarray:
    """``(frames, n_mels)`` float32 mel bands of ``|spectrum|**power``."""
    magnitude = np.abs(spectrum)
    if params.power != 1:
        magnitude **= np.float32(params.power)
    basis = _mel_basis(params.sample_rate, params.n_fft, params.n_mels, params.fmin, params.fmax)
    return np.ascontiguousarray((basis @ magnitude.T).T, dtype=np.float32)


def _log_half_numpy(spectrum, mode, power, compression, out, sums, squares):
    """:func:`featurestore.fastpaths.log_half` in numpy (used without numba; equal within float16
    rounding, sums equal up to their order)."""
    magnitude = spectrum.real if mode == 3 else np.abs(spectrum)
    if mode != 3 and power != 1:
        magnitude = magnitude ** np.float32(power)
    magnitude = magnitude * np.float32(compression)
    np.log1p(magnitude, out=magnitude)
    out[...] = to_float16(magnitude).view(np.uint16)
    stored = to_float32(out.view(np.float16)).astype(np.float64)
    sums += stored.sum(axis=0)
    squares += np.einsum("ij,ij->j", stored, stored)


def _features_and_sums(y: np.ndarray, params: FeatureParams, out: Optional[np.ndarray] = None,
                       workspace: Optional[Workspace] = None
                       ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`compute_features` plus the per-bin float64 sum and sum of squares of its values.

    Parameters
    ----------
    y : np.ndarray, shape ``(params.n_samples,)``
    params : FeatureParams
    out : np.ndarray, float16, shape ``params.shape``, optional
        Where to write the features (e.g. a row of the build's batch buffer).
    workspace : Workspace, optional
        Buffers to reuse (one per thread; a new one when not given or made for other params).

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
    if workspace is None or workspace.params != params:
        workspace = Workspace(params)
    from . import fastpaths  # here: importing it imports numba
    kernels, rfft_into = fastpaths.kernels(), fastpaths.rfft_into() or _rfft_copied
    workspace.load(y)
    frames = workspace.frames
    n_active = len(frames) if kernels is None else kernels.active_frames(
        workspace.padded, params.hop_length, params.n_frames)  # the rest are zeros: zero features
    window = _window(params.window, params.n_fft)
    mode = 3 if params.kind == "mel" else 0 if params.power == 1 else 1 if params.power == 2 else 2
    log_half = _log_half_numpy if kernels is None else kernels.log_half
    sums, squares = np.zeros(out.shape[1]), np.zeros(out.shape[1])
    block = len(workspace.windowed)
    for start in range(0, n_active, block):
        stop = min(start + block, n_active)
        windowed = np.multiply(frames[start:stop], window,
                               out=workspace.windowed[:stop - start])
        spectrum = workspace.spectrum[:stop - start]
        rfft_into(windowed, spectrum)
        if mode == 3:
            spectrum = _mel_bands(spectrum, params)
        log_half(spectrum, mode, float(params.power), float(params.compression),
                 out[start:stop].view(np.uint16), sums, squares)
    out[n_active:] = 0  # silent frames add nothing to the sums either
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
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 1 and not np.isfinite(y).all():  # load_audio refuses such files
        raise ValueError(f"expected finite samples, got {np.count_nonzero(~np.isfinite(y))} "
                         f"NaN or infinite of {len(y)}")
    return _features_and_sums(y, params)[0]


def note_features(path, params: FeatureParams, *, out: Optional[np.ndarray] = None,
                  workspace: Optional[Workspace] = None, offset: float = 0.0,
                  hop: Optional[float] = None
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[str]]:
    """Read one audio file and compute its features: what ``build`` stores and ``predict`` and
    ``place`` feed the model.

    Parameters
    ----------
    path : str or pathlib.Path
    params : FeatureParams
    out : np.ndarray, float16, shape ``params.shape``, optional
        Where to write the features.
    workspace : Workspace, optional
        Buffers to reuse (one per thread); the file is read straight into its waveform.
    offset : float
        Where the clip starts in the file, in seconds.
    hop : float, optional
        The clip is one of a recording's windows, ``hop`` seconds apart (see
        :func:`featurestore.audio.load_audio`).

    Returns
    -------
    features : np.ndarray, float16, shape ``params.shape``
    sums, squares : np.ndarray, float64, shape ``(n_bins,)``
        See :func:`_features_and_sums`.
    adjustments : list of str
        What reading did to fit the file to ``params`` (downmix, resample, pad, trim, peak).

    Raises
    ------
    AudioError
        The file cannot be used (see :func:`featurestore.audio.load_audio`), or its features
        are not all finite (one such note would make a split's statistics NaN).
    """
    if workspace is None or workspace.params != params:
        workspace = Workspace(params)
    y, adjustments = load_audio(path, params, out=workspace.waveform, offset=offset, hop=hop)
    features, sums, squares = _features_and_sums(y, params, out=out, workspace=workspace)
    # the sums are float64 over float16 values: finite exactly when every value is
    if not (np.isfinite(sums).all() and np.isfinite(squares).all()):
        bad = np.count_nonzero(~np.isfinite(features))
        raise AudioError(path, f"its features are not finite ({bad} of {features.size} values "
                               f"are infinite or NaN)")
    return features, sums, squares, adjustments


def features_from_file(path, params: FeatureParams) -> Tuple[np.ndarray, List[str]]:
    """The features of one audio file (:func:`note_features` without the sums).

    Returns
    -------
    features : np.ndarray, float16, shape ``params.shape``
    adjustments : list of str
        What reading did to fit the file to ``params`` (downmix, resample, pad, trim, peak).
    """
    features, _, _, adjustments = note_features(Path(path), params)
    return features, adjustments


@dataclass
class FileFeatures:
    """:func:`features_from_file` of one file, or why it could not be used."""

    path: Path
    features: Optional[np.ndarray] = None  # float16 ``params.shape``; None with ``error``
    adjustments: List[str] = field(default_factory=list)
    error: Optional[str] = None


def features_of_files(paths: Iterable, params: FeatureParams, batch_size: int
                      ) -> Iterator[List[FileFeatures]]:
    """:class:`FileFeatures` of ``paths`` in order, ``batch_size`` files at a time: one batch
    of features is in memory at once, however many files there are.

    A file that cannot be read gets its ``error`` (:class:`~featurestore.audio.AudioError`'s
    message, naming it) and the others go on.

    Raises
    ------
    InputError
        At the call: ``paths`` is one path, or ``batch_size`` is not a positive integer.
    """
    check_paths("paths", paths)
    check_positive_int("batch_size", batch_size)
    return _batches_of_features(iter(paths), params, batch_size)


def _batches_of_features(paths: Iterator, params: FeatureParams, batch_size: int
                         ) -> Iterator[List[FileFeatures]]:
    """:func:`features_of_files`, once its arguments are checked."""
    while True:
        batch = list(islice(paths, batch_size))
        if not batch:
            return
        read = []
        for path in map(Path, batch):
            try:
                features, adjustments = features_from_file(path, params)
            except AudioError as err:
                read.append(FileFeatures(path, error=str(err)))
                continue
            read.append(FileFeatures(path, features, adjustments))
        yield read
