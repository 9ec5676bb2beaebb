"""A SoundFont's structure is checked before TinySoundFont (C, which trusts it) loads it: an
index past its table, a sample outside the sample data, a truncated file, zones that expand to
millions of regions, or SF3 samples that share their data over and over, are refused naming the
file (they crashed the process, or took gigabytes)."""
import io
import struct

import numpy as np
import pytest
import soundfile as sf

from featurestore.errors import InputError
from featurestore.render import RenderOptions, render_soundfont
from featurestore import sf2check
from featurestore.sf2check import MAX_PRESETS, MIN_REGIONS, check_soundfont, preset_samples


def chunk(name: bytes, data: bytes) -> bytes:
    return name + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)


def soundfont(*, presets=1, preset_zones=1, instrument_zones=1, gens_per_zone=1, sample_id=0,
              start=0, end=1000, headers=1, sample_type=1, samples=2000, rate=16000,
              pgen_tail=b"", pmod=bytes(10), smpl=None) -> bytes:
    """A SoundFont of ``presets`` presets, the last of ``preset_zones`` zones, each playing the
    one instrument of ``instrument_zones`` zones, each playing sample ``sample_id``
    ``gens_per_zone`` times; ``headers`` sample headers spanning ``start`` to ``end`` (SF3's
    compressed bytes for a ``sample_type`` of 0x10 or 0x20); ``pgen_tail`` after the preset
    generators; ``smpl``, the sample data, instead of ``samples`` of a sine."""
    def records(fmt, rows):
        return b"".join(struct.pack(fmt, *row) for row in rows)
    if smpl is None:
        smpl = (0.3 * 32767 * np.sin(np.arange(samples) * 0.1)).astype("<i2").tobytes()
    pdta = b"pdta" + b"".join([
        chunk(b"phdr", records("<20sHHHIII", [(b"Preset", k, 0, 0, 0, 0, 0)
                                               for k in range(presets)]
                                              + [(b"EOP", 0, 0, preset_zones, 0, 0, 0)])),
        chunk(b"pbag", records("<HH", [(k, 0) for k in range(preset_zones + 1)])),
        chunk(b"pmod", pmod),
        chunk(b"pgen", records("<HH", [(41, 0)] * preset_zones + [(0, 0)]) + pgen_tail),
        chunk(b"inst", records("<20sH", [(b"Instrument", 0), (b"EOI", instrument_zones)])),
        chunk(b"ibag", records("<HH", [(k * gens_per_zone, 0)
                                       for k in range(instrument_zones + 1)])),
        chunk(b"imod", bytes(10)),
        chunk(b"igen", records("<HH", [(53, sample_id)] * instrument_zones * gens_per_zone
                               + [(0, 0)])),
        chunk(b"shdr", records("<20sIIIIIBbHH", [(b"S", start, end, start, end, rate, 60, 0,
                                                   0, sample_type)] * headers
                               + [(b"EOS",) + (0,) * 9])),
    ])
    body = b"sfbk" + chunk(b"LIST", b"INFO" + chunk(b"ifil", struct.pack("<HH", 2, 1))) \
        + chunk(b"LIST", b"sdta" + chunk(b"smpl", smpl)) + chunk(b"LIST", pdta)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_a_well_formed_soundfont_passes(tmp_path):
    path = tmp_path / "ok.sf2"
    path.write_bytes(soundfont(preset_zones=2, instrument_zones=3))
    check_soundfont(path)
    path.write_bytes(soundfont(pmod=b""))  # no modulators: none is read
    check_soundfont(path)
    path.write_bytes(soundfont(presets=3, start=100, end=900))  # the last has the zone
    assert preset_samples(check_soundfont(path)) == {0: frozenset(), 1: frozenset(),
                                                     2: frozenset({100})}


@pytest.mark.parametrize("options, message", [
    (dict(sample_id=65535), "an instrument zone's sample 65535 is past the end of its table"),
    (dict(end=5000), r"sample 0 \('S'\) spans 0 to 5,000, outside its 2,000 samples"),
    (dict(start=900, end=100), r"sample 0 \('S'\) runs backwards, from 900 to 100"),
    (dict(rate=0), r"sample 0 \('S'\) has a sample rate of 0"),
    (dict(sample_type=0x11, start=2**31 - 16, end=2**31 + 4984),
     "sample 0 .* spans 2,147,483,632 to 2,147,488,632, outside its 4,000 bytes"),
    (dict(sample_type=0x11, sample_id=1, headers=2, start=10**6, end=10**6 + 5),  # unplayed:
     "sample 0 .* spans 1,000,000 to"),  # TinySoundFont decodes every compressed sample
    (dict(sample_type=0x11, headers=1000, end=4000), "its compressed samples read 4,000,000 "
                                                     "bytes of its 4,000 bytes"),
    (dict(sample_type=0x21, headers=1000, end=4000), "its compressed samples read 4,000,000"),
    (dict(sample_type=0x8001), r"sample 0 \('S'\) is in a synthesizer's ROM"),
    (dict(preset_zones=400, instrument_zones=400), f"its presets expand to 160,000 regions, "
                                                   f"more than {MIN_REGIONS:,}"),
    (dict(preset_zones=400, gens_per_zone=400),  # one zone, each of its 400 samples a region
     "its presets expand to 160,000 regions"),
    (dict(presets=MAX_PRESETS + 1), f"{MAX_PRESETS + 1:,} presets, more than {MAX_PRESETS:,}"),
])
def test_a_soundfont_that_points_outside_itself_is_refused(tmp_path, options, message):
    path = tmp_path / "bad.sf2"
    path.write_bytes(soundfont(**options))
    with pytest.raises(InputError, match=f"{path}: {message}"):
        check_soundfont(path)


def vorbis(y: np.ndarray, sr: int = 44100) -> bytes:
    out = io.BytesIO()
    sf.write(out, y, sr, format="OGG", subtype="VORBIS")
    return out.getvalue()


def test_compressed_samples_that_decode_to_far_more_than_their_bytes_are_refused(
        tmp_path, monkeypatch):
    tone = vorbis(0.3 * np.sin(np.arange(2 * 44100) * 0.05))  # 2 s of a tone, 20 of silence
    silence = vorbis(np.zeros(20 * 44100))
    ok, bomb = tmp_path / "ok.sf3", tmp_path / "bomb.sf3"
    ok.write_bytes(soundfont(sample_type=0x11, smpl=tone, end=len(tone)))
    bomb.write_bytes(soundfont(sample_type=0x11, smpl=silence, end=len(silence)))
    monkeypatch.setattr(sf2check, "MIN_DECODED", 1000)  # as if these were many megabytes
    check_soundfont(ok)  # a few samples a byte
    assert 64 * len(silence) < 20 * 44100  # silence: hundreds
    with pytest.raises(InputError, match=rf"{bomb}: its compressed samples decode to as many as "
                                         rf"88\d,\d\d\d samples, more than "
                                         rf"{64 * len(silence):,} \(64 a byte of its "
                                         rf"{len(silence):,} bytes"):
        check_soundfont(bomb)


@pytest.mark.parametrize("cut", [12, 40, 200, -100, -1])
def test_a_truncated_soundfont_is_refused(tmp_path, cut):
    path = tmp_path / "cut.sf2"
    path.write_bytes(soundfont()[:cut])
    with pytest.raises(InputError, match=f"{path}: (truncated|not a SoundFont)"):
        check_soundfont(path)


def test_damaged_tables_are_refused(tmp_path):
    data = bytearray(soundfont(instrument_zones=2))
    at = data.index(b"ibag") + 8  # the second zone's generators past the table's end
    struct.pack_into("<H", data, at + 4, 7)
    path = tmp_path / "bad.sf2"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="ibag's generator index 7 is past the end"):
        check_soundfont(path)
    struct.pack_into("<HHH", data, at + 4, 2, 0, 1)  # zones of generators 0, 2, then 1
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="ibag's generator index goes backwards from one "
                                         "record to the next"):
        check_soundfont(path)
    path.write_bytes(soundfont(pgen_tail=b"\0\0"))
    with pytest.raises(InputError, match="its 'pgen' chunk is 10 bytes, not whole records of 4"):
        check_soundfont(path)


def test_render_refuses_it_before_tinysoundfont_loads_it(tmp_path):
    path = tmp_path / "bad.sf2"
    path.write_bytes(soundfont(sample_id=65535))  # crashed the process (SIGSEGV)
    with pytest.raises(InputError, match="past the end of its table"):
        render_soundfont(tmp_path / "out", path, options=RenderOptions(velocities=(100,)),
                         programs=[0], progress=False)
    assert not (tmp_path / "out").exists()


def test_an_sf3_whose_compressed_data_is_damaged_is_named_so(tmp_path):
    tone = bytearray(vorbis(0.3 * np.sin(np.arange(2 * 44100) * 0.05)))
    tone[len(tone) // 2:len(tone) // 2 + 8] = b"\xff" * 8  # its structure whole, its audio not
    path = tmp_path / "bad.sf3"
    path.write_bytes(soundfont(sample_type=0x11, smpl=bytes(tone), end=len(tone)))
    check_soundfont(path)
    with pytest.raises(InputError, match=r"bad.sf3: not a readable SoundFont \(.*\): its "
                                         r"structure is whole, so its samples' data, such as an "
                                         r"SF3's compressed \(Ogg Vorbis\) samples, may be "):
        render_soundfont(tmp_path / "out", path, options=RenderOptions(velocities=(100,)),
                         programs=[0], progress=False)
    assert not (tmp_path / "out").exists()
