"""What makes an audio file unusable, each told in one :class:`AudioError` naming the file:
what its metadata, its header and its decoded samples must satisfy. :func:`featurestore.audio.
load_audio` and the windowed reader (:mod:`featurestore.windows`) both check a file so."""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Optional

from .errors import TimbremapError
from .headers import declared_frames, mpeg_length_tagged
from .params import MAX_SAMPLE_RATE

__all__ = ["AudioError", "DECODE_ERRORS", "MAX_CHANNELS", "MAX_PEAK", "MIN_SAMPLE_RATE",
           "check_complete", "check_file", "check_format", "check_peak", "error_text",
           "length_guessed", "no_samples", "open_sound"]


class AudioError(TimbremapError, ValueError):
    """An audio file that cannot be used; ``str(err)`` names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


#: Float samples above this many times full scale are refused (60 dB over: not audio scaled to
#: +-1, e.g. integers written as floats); between 1 and this they are used as they are.
MAX_PEAK = 1000.0
#: Sample rates audio files plausibly hold, in Hz (telephone speech to 768 kHz studio files,
#: :data:`MAX_SAMPLE_RATE`); a header outside them is refused with its value before anything is
#: read.
MIN_SAMPLE_RATE = 1_000
#: The most channels a file may have (third-order ambisonics has 16, a 7.1.4 mix 12).
MAX_CHANNELS = 64


#: More bytes than an audio file's header takes: those of a file that holds samples too.
_HEADER_BYTES = 4096
#: What libsndfile says of a file its MPEG decoder finds no frame in (text or noise named
#: ``.mp3``); said of a file :func:`check_file` has seen is regular, it misleads.
_SF_NOT_REGULAR = "File does not exist or is not a regular file (possibly a pipe?)."


#: What soundfile raises where libsndfile cannot open or decode a file (``LibsndfileError`` is
#: a ``RuntimeError``), and :func:`open_sound`.
DECODE_ERRORS = (RuntimeError, ValueError, EOFError, MemoryError)


def open_sound(path):
    """``soundfile.SoundFile`` of ``path``, any name the file system holds. A name ending in
    ``.raw``, which soundfile opens as samples without a header only with their rate, channels
    and encoding given (a ``TypeError`` without them), raises a ``RuntimeError`` saying so."""
    import soundfile as sf
    try:
        return sf.SoundFile(os.fsencode(path))
    except TypeError:  # soundfile's check of its arguments: ours are fixed but for the name
        raise RuntimeError("a .raw name, read as samples without a header: nothing gives "
                           "their rate, channels or encoding; convert it to WAV or FLAC, or "
                           "rename it if it has a header") from None


def length_guessed(path, fh) -> bool:
    """Whether libsndfile's count of the frames of ``fh``, open on ``path``, is a guess from
    the file's size: an MP3 without a Xing or Info tag (:func:`~featurestore.headers.
    mpeg_length_tagged`), which libsndfile reads only that far, whatever it holds."""
    return fh.format == "MP3" and not mpeg_length_tagged(path)


def error_text(err: Exception) -> str:
    """An exception's message, or its type's name where it has none; libsndfile's
    :data:`_SF_NOT_REGULAR` is told as what it means for a regular file, and its errors
    without soundfile's ``Error opening PATH:`` (the file is named beside it, as text)."""
    text = getattr(err, "error_string", None) or str(err) or type(err).__name__
    return text.replace(_SF_NOT_REGULAR, "no audio found in it: damaged, or not the format its "
                                         "name says")


def check_file(path: Path):
    """Raise :class:`AudioError` unless ``path`` is a regular file, or a link to one, that is
    not empty; only its metadata is read."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if path.is_symlink():
            raise AudioError(path, f"broken symbolic link (to {os.readlink(path)})") from None
        raise AudioError(path, "no such file") from None
    except OSError as err:
        raise AudioError(path, f"cannot be read ({err.strerror or error_text(err)})") from None
    if stat.S_ISDIR(info.st_mode):
        raise AudioError(path, "is a folder, not an audio file")
    if not stat.S_ISREG(info.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(info.st_mode) else
                "a socket" if stat.S_ISSOCK(info.st_mode) else
                "a character device" if stat.S_ISCHR(info.st_mode) else
                "a block device" if stat.S_ISBLK(info.st_mode) else "not a file")
        raise AudioError(path, f"is {kind}, not a regular file: not read")
    if info.st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):  # libsndfile would say only "System error"
        raise AudioError(path, "cannot be read (Permission denied)")


def check_format(path: Path, sample_rate: int, channels: int):
    """Raise :class:`AudioError` for a sample rate or a channel count no audio file holds."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(path, f"implausible sample rate {sample_rate} Hz (expected "
                               f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(path, f"implausible channel count {channels} (expected 1 to "
                               f"{MAX_CHANNELS})")


def check_peak(path: Path, peak: float):
    """Raise :class:`AudioError` for float samples more than :data:`MAX_PEAK` times full
    scale."""
    if peak > MAX_PEAK:
        raise AudioError(path, f"samples far above full scale (peak {peak:.3g}, more than "
                               f"{MAX_PEAK:g} times full scale): audio samples lie within "
                               f"+-1; rescale the file")


def check_complete(path: Path, frames: int, error: Optional[str] = None):
    """Raise :class:`AudioError` when ``path``'s header declares more than the ``frames``
    the file holds (see :mod:`featurestore.headers`); ``error`` is why decoding stopped, if
    it did."""
    declared = declared_frames(path)
    if declared is None or frames >= declared:
        return
    if error and not frames:  # cut before its first frame, or a header no decoder takes
        raise AudioError(path, f"truncated or damaged: its header declares {declared} frames, "
                               f"and none of them could be decoded ({error})")
    if error:  # a decoder stops so at a file's end, and where damage in it loses its sync
        raise AudioError(path, f"truncated or damaged: its header declares {declared} frames, "
                               f"decoding stopped after {frames} ({error})")
    raise AudioError(path, f"truncated: its header declares {declared} frames, the file holds "
                           f"{frames}")


def no_samples(path: Path) -> str:
    """The reason for a file that decodes to no sample: where a WAV or AIFF header declares
    none in a file larger than a header, what a recorder that stopped before it wrote its
    data's size leaves."""
    try:
        size = path.stat().st_size
    except OSError:  # gone since it was read: nothing more to say of it
        size = 0
    if declared_frames(path) == 0 and size > _HEADER_BYTES:
        return (f"holds no samples by its header, in a file of {size} bytes: a recording whose "
                f"header was never finished? (a tool that repairs WAV headers can recover its "
                f"samples)")
    return "holds no samples"
