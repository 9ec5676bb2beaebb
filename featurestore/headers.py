"""What an audio file's header declares: how many frames a WAV, AIFF or FLAC file promises.

A file that holds fewer frames than its header declares was cut short (a copy or download that
stopped); libsndfile reads such a WAV or AIFF as a shorter file without a word, so
:func:`featurestore.audio.load_audio` compares what it decoded with :func:`declared_frames` to
tell a truncated file from a genuinely short one.

Only the header is read (a few hundred bytes): the ``data`` chunk's size over the ``fmt ``
chunk's block size (uncompressed PCM, float, A-law and mu-law) of a RIFF/RIFX WAV, of an RF64
one (whose ``ds64`` chunk holds the size) and of a Sony Wave64 file, the AIFF/AIFC ``COMM``
chunk's frame count, FLAC's STREAMINFO total samples. Sizes that mean "unknown" (a WAV
streamed with ``0xFFFFFFFF``, a FLAC with 0 total samples) and every other format give
``None``: nothing declared, nothing to check. An MP3 declares its length in a Xing or Info
tag in its first frame, where it has one (:func:`mpeg_length_tagged`); without it,
libsndfile's count of its frames is a guess from the file's size.
"""
from __future__ import annotations

import os
import struct
from typing import Optional

__all__ = ["declared_frames", "mpeg_length_tagged"]

#: WAVE format tags whose frames are ``block_align`` bytes each: PCM, IEEE float, A-law,
#: mu-law, and WAVE_FORMAT_EXTENSIBLE (PCM or float in practice).
_UNCOMPRESSED_WAV = {0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE}
_UNKNOWN_SIZE = 0xFFFFFFFF  # a WAV written by a stream that never went back to its header
#: Sony Wave64's ids are GUIDs: its ``riff`` one, and the last 12 bytes of its ``wave``,
#: ``fmt `` and ``data`` ones (each begins with its name)
_W64_RIFF = b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00"
_W64_TAIL = b"\xf3\xac\xd3\x11\x8c\xd1\x00\xc0\x4f\x8e\xdb\x8a"
_MAX_CHUNKS = 64  # chunks looked at before the data chunk; a header has a handful
_UNKNOWN_LONG_SIZE = 2 ** 64 - 1  # an RF64 ds64 size that was never written


def declared_frames(path) -> Optional[int]:
    """Frames the header of a WAV, AIFF or FLAC file declares.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    int or None
        The declared number of frames (samples per channel), or ``None`` when the format is
        another one, the header declares no length, or cannot be read.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        head = _Head(fd)
        magic = head.read(0, 40)
        if magic[:4] == b"fLaC":
            return _flac(head)
        if magic[:4] in (b"RIFF", b"RIFX", b"RF64") and magic[8:12] == b"WAVE":
            order = ">" if magic[:4] == b"RIFX" else "<"
            return _wav(head, _chunks(head, order), order)
        if magic[:16] == _W64_RIFF and magic[24:40] == b"wave" + _W64_TAIL:
            return _wav(head, _w64_chunks(head), "<")
        if magic[:4] == b"FORM" and magic[8:12] in (b"AIFF", b"AIFC"):
            return _aiff(head)
    except (OSError, OverflowError, ValueError, struct.error):  # sizes past any file
        return None
    finally:
        os.close(fd)
    return None


def mpeg_length_tagged(path) -> bool:
    """Whether the first MPEG frame of ``path`` (after an ID3v2 tag) holds a Xing or Info tag
    with its count of frames, where libsndfile's decoder (mpg123) reads it: after the frame's
    header and side information. Without one, libsndfile's count of an MP3's frames is a
    guess from the file's size, and it reads no further. ``False`` where it cannot be read."""
    try:
        with open(path, "rb") as fh:
            start = fh.read(10)
            if start[:3] == b"ID3" and len(start) == 10:  # its size: 4 bytes of 7 bits each
                size = sum((b & 0x7F) << 7 * (3 - k) for k, b in enumerate(start[6:10]))
                fh.seek(10 + size + (10 if start[5] & 0x10 else 0))  # a footer, if it has one
                start = b""
            head = start + fh.read(4096)
    except OSError:
        return False
    k = next((k for k in range(len(head) - 3)
              if head[k] == 0xFF and head[k + 1] & 0xE0 == 0xE0), None)
    if k is None:
        return False
    mpeg1, mono = (head[k + 1] >> 3) & 3 == 3, head[k + 3] >> 6 == 3
    tag = k + 4 + ((17 if mono else 32) if mpeg1 else (9 if mono else 17))  # the side info's
    flags = head[tag + 4:tag + 8]
    return head[tag:tag + 4] in (b"Xing", b"Info") and len(flags) == 4 and bool(flags[3] & 1)


class _Head:
    """The start of a file, read once (one system call for the usual header), and bytes beyond
    it on demand."""

    SIZE = 4096

    def __init__(self, fd: int):
        self.fd = fd
        self.start = os.pread(fd, self.SIZE, 0)

    def read(self, position: int, size: int) -> bytes:
        if position + size <= len(self.start):
            return self.start[position:position + size]
        return os.pread(self.fd, size, position)


def _chunks(head: _Head, order: str):
    """``(id, size, position of its data)`` of the chunks after a 12-byte RIFF/FORM header."""
    position = 12
    for _ in range(_MAX_CHUNKS):
        header = head.read(position, 8)
        if len(header) < 8:
            return
        chunk_id, size = header[:4], struct.unpack(order + "I", header[4:])[0]
        yield chunk_id, size, position + 8
        position += 8 + size + (size & 1)  # chunks are padded to an even size


def _w64_chunks(head: _Head):
    """``(id, size, position of its data)`` of a Wave64 file's chunks, each named by the first
    4 bytes of its GUID (the rest checked), its 8-byte size counting its 24-byte header."""
    position, end = 40, os.fstat(head.fd).st_size
    for _ in range(_MAX_CHUNKS):
        header = head.read(position, 24)
        if len(header) < 24:
            return
        size = struct.unpack("<Q", header[16:])[0]
        if size < 24:
            return
        if header[4:16] == _W64_TAIL:  # one of Wave64's own; others are passed over
            yield header[:4], size - 24, position + 24
        position += (size + 7) & ~7  # chunks are aligned to 8 bytes
        if position >= end:
            return


def _wav(head: _Head, chunks, order: str) -> Optional[int]:
    """The frames of the ``data`` chunk among ``chunks``: its size, or an RF64 file's
    ``ds64`` size for it, over the ``fmt `` chunk's block size."""
    block_align = long_size = None
    for chunk_id, size, start in chunks:
        if chunk_id == b"ds64" and size >= 16:
            ds64 = head.read(start, 16)
            long_size = struct.unpack("<Q", ds64[8:])[0] if len(ds64) == 16 else None
        elif chunk_id == b"fmt ":
            fmt = head.read(start, 16)
            if len(fmt) < 16:
                return None
            tag, channels, rate, _, block_align, bits = struct.unpack(order + "HHIIHH", fmt)
            if not block_align:  # as libsndfile does: a frame is a sample of each channel
                block_align = channels * ((bits + 7) // 8)
            if tag not in _UNCOMPRESSED_WAV or block_align == 0 or rate == 0:
                return None  # a rate of 0 declares nothing: the file is refused for it
        elif chunk_id == b"data":
            if size == _UNKNOWN_SIZE and long_size not in (None, _UNKNOWN_LONG_SIZE):
                size = long_size  # RF64: the ds64 chunk's
            if block_align is None or size == _UNKNOWN_SIZE:
                return None
            return size // block_align
    return None


def _aiff(head: _Head) -> Optional[int]:
    for chunk_id, size, start in _chunks(head, ">"):
        if chunk_id == b"COMM" and size >= 6:
            comm = head.read(start, 6)
            return struct.unpack(">hI", comm)[1] if len(comm) == 6 else None
    return None


def _flac(head: _Head) -> Optional[int]:
    """STREAMINFO is the first metadata block: 4 bytes of block header after ``fLaC``, then
    34 bytes whose bytes 10 to 17 hold sample rate (20 bits), channels (3), bits per sample (5)
    and total samples (36)."""
    block = head.read(4, 4 + 34)
    if len(block) < 38 or block[0] & 0x7F != 0:  # not a STREAMINFO block
        return None
    total = int.from_bytes(block[4 + 10:4 + 18], "big") & (2 ** 36 - 1)
    return total or None
