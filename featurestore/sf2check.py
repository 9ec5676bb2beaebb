"""A SoundFont's structure checked before it is loaded (:func:`check_soundfont`). TinySoundFont,
which ``render`` plays it with, is C that trusts every size, index and offset in the file: a
damaged or hostile one could crash the process, or make it expand a few kilobytes of zones into
gigabytes of regions."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, Optional, Tuple

import numpy as np

from .errors import InputError

__all__ = ["check_soundfont", "preset_samples", "REGIONS_PER_BYTE", "MIN_REGIONS", "MAX_PRESETS",
           "DECODED_PER_BYTE", "MIN_DECODED"]

#: The regions (a preset zone's instrument's zones, over every preset) a SoundFont may expand
#: to: one a kilobyte of the file, at least MIN_REGIONS. TinySoundFont keeps every one in
#: memory (about 165 bytes each) and scans them all for each note; a General MIDI bank holds
#: a few thousand to a few tens of thousands, in megabytes of samples.
REGIONS_PER_BYTE, MIN_REGIONS = 1 / 1000, 100_000
#: The most presets: TinySoundFont sorts them by comparing each with every other.
MAX_PRESETS = 16_384
#: The samples (floats, in memory) an SF3's compressed samples may decode to: this many a byte
#: of its sample data, at least MIN_DECODED. Vorbis at a General MIDI bank's quality gives a few
#: samples a byte; a minute of silence gives hundreds.
DECODED_PER_BYTE, MIN_DECODED = 64, 2**24

#: The record of each chunk of the ``pdta`` list (SoundFont 2.04, section 7).
_RECORDS = {
    "phdr": [("name", "S20"), ("preset", "<u2"), ("bank", "<u2"), ("bag", "<u2"),
             ("library", "<u4"), ("genre", "<u4"), ("morphology", "<u4")],
    "pbag": [("gen", "<u2"), ("mod", "<u2")],
    "pmod": [("src", "<u2"), ("dest", "<u2"), ("amount", "<i2"), ("amt_src", "<u2"),
             ("trans", "<u2")],
    "pgen": [("oper", "<u2"), ("amount", "<u2")],
    "inst": [("name", "S20"), ("bag", "<u2")],
    "ibag": [("gen", "<u2"), ("mod", "<u2")],
    "imod": [("src", "<u2"), ("dest", "<u2"), ("amount", "<i2"), ("amt_src", "<u2"),
             ("trans", "<u2")],
    "igen": [("oper", "<u2"), ("amount", "<u2")],
    "shdr": [("name", "S20"), ("start", "<u4"), ("end", "<u4"), ("loop_start", "<u4"),
             ("loop_end", "<u4"), ("rate", "<u4"), ("pitch", "u1"), ("correction", "i1"),
             ("link", "<u2"), ("type", "<u2")],
}
_INSTRUMENT, _SAMPLE_ID = 41, 53   # generators: a preset zone's instrument, a zone's sample
_COMPRESSED = 0x30                 # sample type bits TinySoundFont reads as Ogg Vorbis bytes
_ROM = 0x8000                      # sample type bit of a sample in a synthesizer's ROM


def check_soundfont(path) -> Dict[str, np.ndarray]:
    """Its ``pdta`` tables (name -> records, :data:`_RECORDS`) once checked: raise
    :class:`InputError` naming ``path`` and what is wrong, unless its RIFF chunks lie
    within the file, its ``pdta`` chunks are whole records, every bag, generator, instrument
    and sample index points inside its table, every sample a zone plays lies inside the sample
    data and has a sample rate, its compressed samples (SF3) are not read over and over and
    decode to at most :data:`DECODED_PER_BYTE` samples a byte of sample data (at least
    :data:`MIN_DECODED`), and its zones expand to at most one region a kilobyte of the file
    (:data:`REGIONS_PER_BYTE`, at least :data:`MIN_REGIONS`). Only the headers are read (the
    ``pdta`` list: kilobytes to a few megabytes, and the Ogg pages' headers of an SF3), not
    the samples.
    """
    path = Path(path)
    with path.open("rb") as fh:
        size = path.stat().st_size
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"sfbk":
            raise InputError(f"{path}: not a SoundFont (no RIFF 'sfbk' header)")
        declared = 8 + struct.unpack("<I", head[4:8])[0]
        if declared > size:
            raise InputError(f"{path}: truncated: its RIFF header declares {declared:,} bytes, "
                             f"the file holds {size:,}")
        lists = {kind: (start, start + length) for kind, start, length in
                 _lists(fh, path, declared)}
        missing = [kind for kind in ("sdta", "pdta") if kind not in lists]
        if missing:
            raise InputError(f"{path}: not a SoundFont (no {missing[0]!r} list)")
        data, sample_bytes = next(((start, length) for name, start, length
                                   in _chunks(fh, path, *lists["sdta"]) if name == "smpl"),
                                  (0, 0))
        tables = {}
        for name, start, length in list(_chunks(fh, path, *lists["pdta"])):
            if name in _RECORDS:
                fh.seek(start)
                tables[name] = fh.read(length)
        tables = {name: _table(path, name, tables.get(name)) for name in _RECORDS}
        _check_tables(path, tables, sample_bytes, max(MIN_REGIONS, int(size * REGIONS_PER_BYTE)))
        shdr = tables["shdr"]
        compressed = shdr[(shdr["type"] & _COMPRESSED) != 0]
        decoded = sum(_vorbis_samples(fh, data + int(header["start"]), data + int(header["end"]))
                      for header in compressed)
    most = max(MIN_DECODED, DECODED_PER_BYTE * sample_bytes)
    if decoded > most:
        raise InputError(f"{path}: its compressed samples decode to as many as {decoded:,} "
                         f"samples, more than {most:,} ({DECODED_PER_BYTE} a byte of its "
                         f"{sample_bytes:,} bytes of sample data, at least {MIN_DECODED:,}): "
                         f"each is decoded on loading, so a SoundFont made to exhaust memory "
                         f"is refused")
    return tables


def preset_samples(tables: Dict[str, np.ndarray], *, bank: int = 0) -> Dict[int, frozenset]:
    """The samples each preset of ``bank`` plays, whatever keys and velocities they cover.

    Parameters
    ----------
    tables : dict
        What :func:`check_soundfont` returns (its indices checked).
    bank : int
        The MIDI bank (0: General MIDI's).

    Returns
    -------
    dict
        program -> the offsets in the sample data where its samples start: two presets that
        play one sample hold the same offset, whichever instruments and sample headers lead
        to it. Of two presets of one program, the samples of both.
    """
    phdr, pbag, pgen = tables["phdr"], tables["pbag"], tables["pgen"]
    inst, ibag, igen = tables["inst"], tables["ibag"], tables["igen"]
    starts = tables["shdr"]["start"]

    def generators(bags, gens, zones: range, oper: int) -> list:
        """The amounts of generator ``oper`` in ``zones`` (indices into ``bags``)."""
        found = []
        for zone in zones:
            rows = gens[int(bags["gen"][zone]):int(bags["gen"][zone + 1])]
            found += rows["amount"][rows["oper"] == oper].tolist()
        return found

    played: Dict[int, frozenset] = {}
    for k in range(len(phdr) - 1):  # the last record ends the table
        if int(phdr["bank"][k]) != bank:
            continue
        offsets = set()
        for j in generators(pbag, pgen, range(phdr["bag"][k], phdr["bag"][k + 1]), _INSTRUMENT):
            zones = range(inst["bag"][j], inst["bag"][j + 1])
            offsets.update(int(starts[i]) for i in generators(ibag, igen, zones, _SAMPLE_ID))
        program = int(phdr["preset"][k])
        played[program] = played.get(program, frozenset()) | offsets
    return played


#: An Ogg page's header: capture pattern, version, type, granule position, serial number,
#: page number, checksum, then the count of its lacing values.
_OGG_PAGE = struct.Struct("<4sBBqIIIB")


def _vorbis_samples(fh: BinaryIO, start: int, end: int) -> int:
    """At most the samples the Ogg Vorbis stream in the file's bytes ``start`` to ``end``
    decodes to, from its pages' headers alone: each audio packet gives at most half its longer
    block, in each channel. 0 where the bytes are not a Vorbis stream's (it cannot load)."""
    fh.seek(start)
    first = fh.read(_OGG_PAGE.size + 1 + 30)  # a page of one lacing value: the id header
    if (len(first) < _OGG_PAGE.size + 31 or first[:4] != b"OggS"
            or first[_OGG_PAGE.size + 1:_OGG_PAGE.size + 8] != b"\x01vorbis"):
        return 0
    ident = first[_OGG_PAGE.size + 1:]
    channels, longer = ident[11], ident[28] >> 4  # longer block: 2**longer samples
    if not 6 <= longer <= 13:  # Vorbis I allows blocks of 64 to 8192
        return 0
    packets, pos = 0, start
    while pos + _OGG_PAGE.size <= end:
        fh.seek(pos)
        head = fh.read(_OGG_PAGE.size)
        if len(head) < _OGG_PAGE.size or head[:4] != b"OggS":
            break
        lacing = fh.read(head[-1])
        packets += sum(value < 255 for value in lacing)  # a packet ends at a value below 255
        pos += _OGG_PAGE.size + len(lacing) + sum(lacing)
    return max(packets - 3, 0) * (1 << (longer - 1)) * channels  # 3 header packets


def _lists(fh: BinaryIO, path: Path, end: int) -> Iterator[Tuple[str, int, int]]:
    """``(kind, start, length)`` of each ``LIST`` chunk of the RIFF body."""
    for name, start, length in _chunks(fh, path, 12, end):
        if name == "LIST" and length >= 4:
            fh.seek(start)
            yield fh.read(4).decode("latin-1"), start + 4, length - 4


def _chunks(fh: BinaryIO, path: Path, start: int, end: int) -> Iterator[Tuple[str, int, int]]:
    """``(name, data start, length)`` of the chunks between ``start`` and ``end``, each checked
    to lie within them."""
    pos = start
    while pos + 8 <= end:
        fh.seek(pos)
        head = fh.read(8)
        name, length = head[:4].decode("latin-1"), struct.unpack("<I", head[4:])[0]
        if pos + 8 + length > end:
            raise InputError(f"{path}: its {name!r} chunk declares {length:,} bytes, past the "
                             f"end of what holds it (a damaged or truncated SoundFont)")
        yield name, pos + 8, length
        pos += 8 + length + (length & 1)


def _table(path: Path, name: str, raw: Optional[bytes]) -> np.ndarray:
    dtype = np.dtype(_RECORDS[name])
    if raw is None and name in ("pmod", "imod"):  # modulators: none is none read
        raw = b""
    if raw is None:
        raise InputError(f"{path}: no {name!r} chunk (a damaged SoundFont)")
    if (not raw and name not in ("pmod", "imod")) or len(raw) % dtype.itemsize:
        raise InputError(f"{path}: its {name!r} chunk is {len(raw):,} bytes, not whole records "
                         f"of {dtype.itemsize} (a damaged SoundFont)")
    return np.frombuffer(raw, dtype)


def _check_tables(path: Path, t: Dict[str, np.ndarray], sample_bytes: int, max_regions: int):
    def indices(what: str, values: np.ndarray, limit: int, *, ordered: bool = True):
        """Refuse ``values`` above ``limit``, or going backwards where ``ordered``."""
        values = values.astype(np.int64)
        if values.size and values.max() > limit:
            raise InputError(f"{path}: {what} {int(values.max())} is past the end of its table "
                             f"(at most {limit}: a damaged SoundFont)")
        if ordered and (np.diff(values) < 0).any():
            raise InputError(f"{path}: {what} goes backwards from one record to the next "
                             f"(a damaged SoundFont)")
    for top, bag, gen, mod in (("phdr", "pbag", "pgen", "pmod"), ("inst", "ibag", "igen", "imod")):
        indices(f"{top}'s zone index", t[top]["bag"], len(t[bag]) - 1)
        indices(f"{bag}'s generator index", t[bag]["gen"], len(t[gen]))
        indices(f"{bag}'s modulator index", t[bag]["mod"], len(t[mod]))
    pgen = t["pgen"][:int(t["pbag"]["gen"][-1])]  # the generators of the zones
    igen = t["igen"][:int(t["ibag"]["gen"][-1])]
    instruments = pgen["amount"][pgen["oper"] == _INSTRUMENT].astype(np.int64)
    samples = igen["amount"][igen["oper"] == _SAMPLE_ID].astype(np.int64)
    indices("a preset zone's instrument", instruments, len(t["inst"]) - 2, ordered=False)
    indices("an instrument zone's sample", samples, len(t["shdr"]) - 2, ordered=False)
    if len(t["phdr"]) - 1 > MAX_PRESETS:
        raise InputError(f"{path}: {len(t['phdr']) - 1:,} presets, more than {MAX_PRESETS:,}: a "
                         f"damaged SoundFont, or one made to take hours to load")
    # a region per sample generator of an instrument's zones, for each preset zone naming it
    sample_gens = np.r_[0, np.cumsum(t["igen"]["oper"] == _SAMPLE_ID)]
    bags = t["ibag"]["gen"].astype(np.int64)[t["inst"]["bag"].astype(np.int64)]
    per_instrument = np.diff(sample_gens[bags])
    regions = int(per_instrument[instruments].sum()) if instruments.size else 0
    if regions > max_regions:
        raise InputError(f"{path}: its presets expand to {regions:,} regions, more than "
                         f"{max_regions:,} (one a kilobyte of the file, at least {MIN_REGIONS:,})"
                         f": a damaged SoundFont, or one made to exhaust memory")
    _check_samples(path, t["shdr"], np.unique(samples), sample_bytes)


def _check_samples(path: Path, shdr: np.ndarray, played: np.ndarray, sample_bytes: int):
    """Refuse a played sample outside the sample data, in ROM or of rate 0, and compressed
    samples (every one of which TinySoundFont decodes on loading) outside the data or reading
    it over and over."""
    compressed = (shdr["type"] & _COMPRESSED) != 0
    start, end = shdr["start"].astype(np.int64), shdr["end"].astype(np.int64)
    limit = np.where(compressed, sample_bytes, sample_bytes // 2)  # bytes of Ogg, or samples
    used = np.zeros(len(shdr), bool)
    used[played] = True
    problems = [
        ((compressed | used) & (start > end),
         lambda k: f"runs backwards, from {start[k]:,} to {end[k]:,}"),
        ((compressed | used) & (end > limit),
         lambda k: f"spans {start[k]:,} to {end[k]:,}, outside its {int(limit[k]):,} "
                   f"{'bytes' if compressed[k] else 'samples'} of sample data"),
        (used & ((shdr["type"] & _ROM) != 0),
         lambda k: "is in a synthesizer's ROM, which a SoundFont file does not hold"),
        (used & (shdr["rate"] == 0), lambda k: "has a sample rate of 0")]
    for bad, why in problems:
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            name = shdr["name"][k].split(b"\0")[0].decode("latin-1").rstrip()
            raise InputError(f"{path}: sample {k} ({name!r}) {why(k)} (a damaged SoundFont)")
    read = int((end - start)[compressed].sum())
    if read > 2 * sample_bytes + 2**20:
        raise InputError(f"{path}: its compressed samples read {read:,} bytes of its "
                         f"{sample_bytes:,} bytes of sample data: each is decoded on loading, "
                         f"so samples that share their data over and over are refused")
