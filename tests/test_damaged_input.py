"""Damaged and ambiguous inputs never enter a store: truncated files, overflowing samples,
features that are not finite, two files for one entry, note names that are paths."""
import json
import os
import re
import struct

import h5py
import numpy as np
import pytest
import soundfile as sf

from featurestore import SplitDataset, features
from featurestore.audio import MAX_PEAK, AudioError, load_audio
from featurestore.windows import audio_seconds
from featurestore.build import BuildError, build_store
from featurestore.headers import declared_frames, mpeg_length_tagged
from featurestore.nsynth import write_split
from featurestore.splitfolder import read_split
from featurestore.params import FeatureParams
from featurestore.reader import SpectraReader
from featurestore.render import RenderOptions, render_soundfont
from featurestore.stats import RunningStats
from featurestore.schema import read_params
from featurestore.store import StoreError, open_split, read_stats
from helpers import SR, example, make_tone_split, tone, write_note

PARAMS = FeatureParams()
FORMATS = [("WAV", "PCM_16", "wav"), ("WAV", "FLOAT", "wav"), ("WAV", "PCM_24", "wav"),
           ("AIFF", "PCM_16", "aiff"), ("FLAC", "PCM_16", "flac"), ("RF64", "PCM_24", "wav"),
           ("W64", "FLOAT", "w64")]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A real note, rendered from the bundled SoundFont (a piano, 4 s at 16 kHz)."""
    root = tmp_path_factory.mktemp("rendered")
    render_soundfont(root, options=RenderOptions(pitch_step=48, velocities=(100,)),
                     programs=[0], progress=False)
    wav = sorted(root.rglob("*.wav"))[0]
    y, sr = sf.read(wav, dtype="float32")
    assert sr == SR and len(y) == PARAMS.n_samples
    return y


def audio_start(data: bytes, fmt: str) -> int:
    """Byte offset of the first sample (after the header) of a file libsndfile wrote."""
    if fmt == "FLAC":
        position = 4
        while True:  # metadata blocks: 1 byte flags/type, 3 bytes length
            last, length = data[position] & 0x80, int.from_bytes(data[position + 1:position + 4],
                                                                   "big")
            position += 4 + length
            if last:
                return position
    if fmt in ("WAV", "RF64"):
        return data.index(b"data") + 8
    if fmt == "W64":
        return data.index(b"data\xf3\xac") + 24  # a GUID and an 8-byte size
    return data.index(b"SSND") + 16  # AIFF: id, size, offset, block size


@pytest.mark.parametrize("fmt, subtype, ext", FORMATS)
def test_truncated_files_are_refused_and_short_ones_padded(rendered, tmp_path, fmt, subtype, ext):
    whole = tmp_path / f"whole.{ext}"
    sf.write(whole, rendered, SR, format=fmt, subtype=subtype)
    data = whole.read_bytes()
    start, frame = audio_start(data, fmt), sf.info(whole).channels * {
        "PCM_16": 2, "PCM_24": 3, "FLOAT": 4}[subtype]
    assert declared_frames(whole) == len(rendered)
    assert load_audio(whole, PARAMS)[1] == []
    cuts = {"header only": start, "a few samples in": start + 5 * frame,
            "half way": len(data) // 2, "one frame short": len(data) - frame}
    for what, cut in cuts.items():
        path = tmp_path / f"{what.replace(' ', '_')}.{ext}"
        path.write_bytes(data[:cut])
        found = ("the file holds \\d+" if fmt != "FLAC" else  # FLAC: what its decoder reached
                 "and none of them could be decoded" if cut < len(data) // 2 else
                 "decoding stopped after \\d+")
        damaged = fmt == "FLAC"  # its decoder stops with an error, as where damage is
        with pytest.raises(AudioError, match=rf"truncated{' or damaged' if damaged else ''}"
                                             rf": its header declares {len(rendered)} frames, "
                                             rf"{found}") as err:
            load_audio(path, PARAMS)
        assert path.name in str(err.value), what
    short = tmp_path / f"short.{ext}"  # a short note with a header that says so
    sf.write(short, rendered[:SR], SR, format=fmt, subtype=subtype)
    assert load_audio(short, PARAMS)[1] == ["padded 1.000 s -> 4.000 s"]


def test_a_header_that_declares_more_than_the_file_holds_is_truncated_in_every_format(
        tmp_path):
    y = tone(10, seconds=3.0)
    sf.write(tmp_path / "x.mp3", y, SR)  # its Xing tag counts the frames
    data = (tmp_path / "x.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[:len(data) // 2])
    sf.write(tmp_path / "x.wav", y, SR, format="RF64")
    data = bytearray((tmp_path / "x.wav").read_bytes())
    data[28:36] = struct.pack("<Q", 2 ** 40)  # the ds64 chunk's data size
    (tmp_path / "huge.wav").write_bytes(bytes(data))
    assert declared_frames(tmp_path / "huge.wav") == 2 ** 39
    for name, found in [("cut.mp3", rf"declares {3 * SR} frames, decoding ended after \d+"),
                        ("huge.wav", rf"declares {2 ** 39} frames, the file holds {3 * SR}")]:
        for offset, hop in [(0.0, None), (1.0, 1.0)]:  # a clip, and a window (--windows)
            with pytest.raises(AudioError, match=rf"{name}: truncated: its header {found}"):
                load_audio(tmp_path / name, PARAMS, offset=offset, hop=hop)
        with pytest.raises(AudioError, match=rf"{name}: truncated: its header declares"):
            audio_seconds(tmp_path / name)


def test_a_header_of_any_sizes_declares_a_count_or_nothing_never_raises(tmp_path):
    y = tone(10, seconds=0.5)
    for fmt, ext in (("WAV", "wav"), ("RF64", "wav"), ("W64", "w64"), ("AIFF", "aiff")):
        sf.write(tmp_path / f"x.{ext}", y, SR, format=fmt)
        data = (tmp_path / f"x.{ext}").read_bytes()
        rng = np.random.default_rng(0)
        for k in range(200):  # sizes anywhere in the header, up to 2**64 - 1
            damaged = bytearray(data)
            at = int(rng.integers(4, 120))
            width = 8 if fmt == "W64" or rng.random() < 0.5 else 4
            damaged[at:at + width] = (2 ** (8 * width) - 1 - int(rng.integers(0, 64))).to_bytes(
                width, "little")
            (tmp_path / f"d.{ext}").write_bytes(bytes(damaged))
            found = declared_frames(tmp_path / f"d.{ext}")
            assert found is None or isinstance(found, int), (fmt, at)
    data = bytearray((tmp_path / "x.wav").read_bytes())  # the RF64 one: its ds64 size unset
    data[28:36] = bytes([0xFF] * 8)
    (tmp_path / "unwritten.wav").write_bytes(bytes(data))
    assert declared_frames(tmp_path / "unwritten.wav") is None


def test_an_mp3_without_a_tag_of_its_length_is_as_long_as_it_decodes(tmp_path, monkeypatch):
    from featurestore import audio
    sf.write(tmp_path / "x.mp3", tone(10, seconds=3.0), SR)
    data = bytearray((tmp_path / "x.mp3").read_bytes())
    for tag in (b"Xing", b"Info"):  # the first frame's count of frames, blanked
        at = data.find(tag, 0, 400)
        if at >= 0:
            data[at:at + 4] = bytes(4)
    art = 100_000  # an ID3v2 tag of cover art: libsndfile's guess from the size goes far over
    (tmp_path / "art.mp3").write_bytes(b"ID3\x03\x00\x00" + bytes(
        (art >> shift) & 0x7F for shift in (21, 14, 7, 0)) + bytes(art) + bytes(data))
    with sf.SoundFile(tmp_path / "art.mp3") as fh:
        guessed, decoded = fh.frames, len(fh.read())
    assert guessed > 2 * decoded  # what the file's header does not declare
    assert not mpeg_length_tagged(tmp_path / "art.mp3") and mpeg_length_tagged(tmp_path / "x.mp3")
    seconds = decoded / SR
    assert load_audio(tmp_path / "art.mp3", PARAMS)[1] == [f"padded {seconds:.3f} s -> 4.000 s"]
    assert audio_seconds(tmp_path / "art.mp3") == seconds  # --windows: counted by reading it
    assert load_audio(tmp_path / "art.mp3", PARAMS, offset=1.0, hop=1.0)[1] == [
        f"padded {seconds - 1:.3f} s -> 4.000 s"]
    tagged = bytearray((tmp_path / "x.mp3").read_bytes())
    at = next(tagged.find(tag, 0, 400) for tag in (b"Xing", b"Info") if tag in tagged[:400])
    tagged[at + 7] &= 0xFE  # a tag without its count of frames: libsndfile guesses, as mpg123
    (tmp_path / "uncounted.mp3").write_bytes(bytes(tagged))
    assert not mpeg_length_tagged(tmp_path / "uncounted.mp3")
    monkeypatch.setattr(audio, "READ_SECONDS", -1.0)  # a count by decoding that takes long
    with pytest.raises(AudioError, match=r"art.mp3: reading took more than -1 s for \d+ frames; "
                                         r"given up$"):
        audio_seconds(tmp_path / "art.mp3")


def test_files_that_hold_sound_are_never_said_to_be_silent_or_empty(tmp_path):
    y = tone(10, seconds=3.0)
    pcm = (20000 * y).astype(np.int32) << 16
    sf.write(tmp_path / "antiphase24.wav", np.stack([pcm, -pcm], axis=1), SR, subtype="PCM_24")
    sf.write(tmp_path / "antiphase.flac", np.stack([y, -y], axis=1), SR)
    sf.write(tmp_path / "one.flac", np.array([0.5]), 44100)  # less than a sample at 16 kHz
    sf.write(tmp_path / "x.wav", y, SR)
    data = bytearray((tmp_path / "x.wav").read_bytes())
    data[data.index(b"data") + 4:data.index(b"data") + 8] = bytes(4)  # a recorder stopped
    (tmp_path / "unfinished.wav").write_bytes(bytes(data))
    sf.write(tmp_path / "x.raw", y, SR, format="RAW", subtype="PCM_16")  # samples, no header
    for name, reason in [("antiphase24.wav", "silent once its 2 channels are mixed to one: they "
                                             "cancel out$"),
                         ("antiphase.flac", "silent once its 2 channels .* cancel out$"),
                         ("one.flac", "too short: 1 sample at 44100 Hz, less than a sample at "
                                      "16000 Hz$"),
                         ("unfinished.wav", "holds no samples by its header, in a file of "
                                            rf"{len(data)} bytes: a recording whose header"),
                         ("x.raw", r"cannot decode audio \(a .raw name, read as samples "
                                   r"without a header: nothing gives their rate")]:
        with pytest.raises(AudioError, match=rf"{re.escape(name)}: {reason}"):
            load_audio(tmp_path / name, PARAMS)
    with pytest.raises(AudioError, match=r"x.raw: cannot decode audio \(a .raw name"):
        audio_seconds(tmp_path / "x.raw")  # --windows


def test_a_file_damaged_in_its_middle_is_not_called_truncated(tmp_path):
    y = tone(10, seconds=6.0)
    for ext in ("flac", "mp3"):
        sf.write(tmp_path / f"whole.{ext}", y, SR)
        data = bytearray((tmp_path / f"whole.{ext}").read_bytes())
        third = len(data) // 3
        data[third:third + 2000] = bytes(2000)  # zeros inside the clip: the decoder loses sync
        (tmp_path / f"mid.{ext}").write_bytes(bytes(data))
        with pytest.raises(AudioError, match=r"mid\.(flac: truncated or damaged: its header "
                                             r"declares 96000 frames,|mp3: damaged:) decoding "
                                             r"stopped after \d+"):
            load_audio(tmp_path / f"mid.{ext}", PARAMS)


def test_a_cut_wav_whose_header_gives_no_block_align_is_still_refused(tmp_path):
    sf.write(tmp_path / "x.wav", tone(10, seconds=1.0), SR, subtype="PCM_16")
    data = bytearray((tmp_path / "x.wav").read_bytes())
    align = data.index(b"fmt ") + 20  # fmt: tag, channels, rate, bytes/s, then block_align
    data[align:align + 2] = struct.pack("<H", 0)  # libsndfile reads it as channels * 2 bytes
    (tmp_path / "cut.wav").write_bytes(bytes(data[:len(data) // 2]))
    assert declared_frames(tmp_path / "cut.wav") == SR
    with pytest.raises(AudioError, match=rf"cut.wav: truncated: its header declares {SR} frames"):
        load_audio(tmp_path / "cut.wav", PARAMS)


def test_headers_that_declare_no_length_are_not_truncated(tmp_path):
    y = tone(10)
    sf.write(tmp_path / "x.wav", y, SR)
    data = bytearray((tmp_path / "x.wav").read_bytes())
    data[data.index(b"data") + 4:data.index(b"data") + 8] = struct.pack("<I", 0xFFFFFFFF)
    (tmp_path / "streamed.wav").write_bytes(bytes(data))  # a stream never went back to it
    assert declared_frames(tmp_path / "streamed.wav") is None
    assert np.array_equal(load_audio(tmp_path / "streamed.wav", PARAMS)[0],
                          load_audio(tmp_path / "x.wav", PARAMS)[0])
    sf.write(tmp_path / "x.ogg", y, SR)
    (tmp_path / "x.mp4").write_bytes(b"\0" * 64)
    for name in ("x.ogg", "x.mp4", "missing.wav"):
        assert declared_frames(tmp_path / name) is None
    rate = data.index(b"fmt ") + 12
    data[rate:rate + 4] = struct.pack("<I", 0)
    (tmp_path / "rate0.wav").write_bytes(bytes(data))  # not a truncated file: a bad rate
    assert declared_frames(tmp_path / "rate0.wav") is None
    for read in (lambda path: load_audio(path, PARAMS), audio_seconds):  # --windows too
        with pytest.raises(AudioError, match=r"rate0.wav: implausible sample rate 0 Hz"):
            read(tmp_path / "rate0.wav")


def test_float_files_above_full_scale(tmp_path):
    y = tone(10)
    y /= np.abs(y).max()
    sf.write(tmp_path / "hot.wav", 3 * y, SR, subtype="FLOAT")
    sf.write(tmp_path / "huge.wav", 1e37 * y, SR, subtype="FLOAT")
    sf.write(tmp_path / "limit.wav", MAX_PEAK * y, SR, subtype="FLOAT")
    assert load_audio(tmp_path / "hot.wav", PARAMS)[1] == ["peak 3 above full scale, used as "
                                                          "it is"]
    assert load_audio(tmp_path / "limit.wav", PARAMS)[1] == ["peak 1e+03 above full scale, "
                                                            "used as it is"]
    with pytest.raises(AudioError, match=r"huge.wav: samples far above full scale \(peak "
                                         r"1e\+37, more than 1000 times full scale\)"):
        load_audio(tmp_path / "huge.wav", PARAMS)


def poisoned_root(tmp_path):
    """Train notes of which one overflows (samples around 1e37) and one is fine but loud."""
    root = tmp_path / "root"
    make_tone_split(root / "train", 6, seed=0)
    examples = json.loads((root / "train" / "examples.json").read_text())
    names = sorted(examples)
    y, _ = sf.read(root / "train" / "audio" / f"{names[0]}.wav", dtype="float32")
    sf.write(root / "train" / "audio" / f"{names[0]}.wav", 1e37 * y, SR, subtype="FLOAT")
    sf.write(root / "train" / "audio" / f"{names[1]}.wav", 2 * y / np.abs(y).max(), SR,
             subtype="FLOAT")
    return root, names


def test_an_overflowing_note_is_skipped_and_the_statistics_stay_finite(tmp_path):
    root, names = poisoned_root(tmp_path)
    report = build_store(root, tmp_path / "store", jobs=1, progress=False)[0]
    assert report.n_examples == 5
    with open_split(tmp_path / "store", "train") as f:
        mean, std = read_stats(f)
        skipped = dict(f["skipped"].asstr()[:].tolist())
        adjusted = dict(f["adjusted"].asstr()[:].tolist())
        assert np.isfinite(f["spectra"][:].astype(np.float32)).all()
    assert np.isfinite(mean).all() and np.isfinite(std).all()
    assert skipped[names[0]].startswith("samples far above full scale")
    assert adjusted[names[1]] == "peak 2 above full scale, used as it is"


def test_a_note_whose_features_are_not_finite_is_skipped_whatever_the_cause(tmp_path,
                                                                            monkeypatch):
    root = tmp_path / "root"
    examples = make_tone_split(root / "train", 6, seed=0)
    first = sorted(examples)[0]
    compute = features._features_and_sums
    marker = load_audio(root / "train" / "audio" / f"{first}.wav", PARAMS)[0][:8].copy()

    def overflowing(y, params, out=None, workspace=None):  # e.g. extreme feature parameters
        result, sums, squares = compute(y, params, out=out, workspace=workspace)
        if np.array_equal(y[:8], marker):
            result[3, 5], sums[5] = np.inf, np.inf
        return result, sums, squares
    monkeypatch.setattr(features, "_features_and_sums", overflowing)
    build_store(root, tmp_path / "store", jobs=2, progress=False)
    with open_split(tmp_path / "store", "train") as f:
        assert f["names"].asstr()[:].tolist() == sorted(examples)[1:]
        assert np.isfinite(read_stats(f)[0]).all()
        assert dict(f["skipped"].asstr()[:].tolist())[first] == \
            "its features are not finite (1 of 128763 values are infinite or NaN)"
    with pytest.raises(AudioError, match="its features are not finite"):
        features.features_from_file(root / "train" / "audio" / f"{first}.wav", PARAMS)


def test_statistics_that_are_not_finite_never_finish_a_split(tmp_path, monkeypatch):
    make_tone_split(tmp_path / "root" / "train", 4, seed=0)
    sums = RunningStats.from_sums

    def nan_sums(count, total, squares):  # a guard above it gone: the last one holds
        return sums(count, total * np.nan, squares)
    monkeypatch.setattr(RunningStats, "from_sums", nan_sums)
    with pytest.raises(BuildError, match="statistics of train are not finite"):
        build_store(tmp_path / "root", tmp_path / "store", jobs=1, progress=False)
    assert not (tmp_path / "store" / "train.h5").exists()


def test_a_store_whose_statistics_are_not_finite_is_refused(tone_root, tone_store, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    for name in ("train.h5", "valid.h5"):
        (store / name).write_bytes((tone_store / name).read_bytes())
    with h5py.File(store / "train.h5", "r+") as f:
        f["spectra"].attrs["std"] = np.full(f["spectra"].shape[2], np.nan)
    with pytest.raises(StoreError, match="not finite; rebuild"):
        open_split(store, "train")  # refused as it is opened
    with pytest.raises(BuildError, match=r"train.h5: its statistics .* are not finite"):
        build_store(tone_root, store, jobs=1, progress=False, splits=["test"])


@pytest.mark.parametrize("attr, value, message", [
    ("mean", "abc", r"its statistics \(/spectra attrs mean, std\) are not 513 numbers each"),
    ("std", np.ones(7), r"its statistics \(/spectra attrs mean, std\) are not 513 numbers each"),
    ("stats_count", "many", "/spectra attr stats_count is not a count"),
    ("feature_n_fft", "abc", r"its feature parameters \(feature_\* attrs\) are not valid"),
    ("feature_n_fft", "1024", r".* are not valid: feature_n_fft is '1024', not an integer"),
    ("feature_center", "False", r".* are not valid: feature_center is 'False', not true or false"),
    ("feature_power", "2", r".* are not valid: feature_power is '2', not a number"),
    ("feature_hop_length", np.inf, r".* are not valid: feature_hop_length is inf, not an integer"),
    ("feature_sample_rate", "16000", r".* are not valid: feature_sample_rate is '16000', not an "
                                     r"integer"),
    ("std", np.full(513, np.nan), r"its statistics \(/spectra attrs mean, std\) are not finite"),
])
def test_a_damaged_attr_is_one_error_naming_the_file(tone_store, tmp_path, attr, value,
                                                     message, caplog):
    from analysis.cli import main
    store = tmp_path / "store"
    store.mkdir()
    (store / "train.h5").write_bytes((tone_store / "train.h5").read_bytes())
    with h5py.File(store / "train.h5", "r+") as f:
        (f if attr.startswith("feature_") else f["spectra"]).attrs[attr] = value
    assert main(["inspect", str(store)]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and re.search(f"train.h5: {message}", errors[0]), errors
    with pytest.raises(StoreError, match=f"train.h5: {message}"):  # refused as it is read too
        SplitDataset(store, "train")
    with pytest.raises(StoreError, match=f"train.h5: {message}"):
        SpectraReader(store / "train.h5")


def test_a_feature_setting_of_another_version_is_said_where_it_is_used(tone_store, tmp_path):
    """Not damage: a store a later version built with a window this one does not know still
    opens, and reads, where its parameters are not needed."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "train.h5").write_bytes((tone_store / "train.h5").read_bytes())
    with h5py.File(store / "train.h5", "r+") as f:
        f.attrs["feature_window"] = "a-later-window"
    assert len(SplitDataset(store, "train")) == 22
    with open_split(store, "train") as f, pytest.raises(StoreError, match="window must be one "
                                                                          "of"):
        read_params(f)  # where the parameters are needed: refused


def test_two_files_for_one_entry_are_ambiguous_and_path_keys_refused(tmp_path):
    split = tmp_path / "train"
    examples = {name: example(name, "guitar") for name in ("a", "b", "c", "../up", "x/y", "..")}
    write_split(split, examples)
    for name in ("a", "b", "c"):
        write_note(split, name, tone(10))
    (split / "audio" / "a.wav").rename(split / "audio" / "a.WAV")
    write_note(split, "a", tone(12))  # a.wav and a.WAV
    os.symlink("b.wav", split / "audio" / "b.Wav")  # a link and its target
    (tmp_path / "up.wav").write_bytes((split / "audio" / "c.wav").read_bytes())
    usable, problems = read_split(split)
    assert [e.note_str for e, _ in usable] == ["c"]
    problems = dict(problems)
    assert problems["a"] == "ambiguous: a.WAV and a.wav both fit this entry; keep one"
    assert problems["b"] == ("ambiguous: b.Wav and b.wav both fit this entry (b.Wav is a link "
                             "to b.wav); keep one")
    for name in ("../up", "x/y", ".."):
        assert problems[name].startswith("json key is a path, not a note name"), name
    build_store(tmp_path, tmp_path / "store", jobs=1, progress=False)
    with open_split(tmp_path / "store", "train") as f:
        assert f["names"].asstr()[:].tolist() == ["c"]
        assert set(f["skipped"].asstr()[:, 0]) == {"a", "b", "../up", "x/y", ".."}


def test_text_hdf5_cannot_store_is_refused_or_escaped(tmp_path):
    split = tmp_path / "train"
    examples = make_tone_split(split, 3, seed=0)
    entries = json.loads((split / "examples.json").read_text())
    first, second = sorted(entries)[:2]
    entries[second]["instrument_str"] = "piano\u0000"
    entries["lone\ud800"] = entries[first]  # json allows it; UTF-8 does not
    (split / "examples.json").write_text(json.dumps(entries))
    build_store(tmp_path, tmp_path / "store", jobs=1, progress=False)
    with open_split(tmp_path / "store", "train") as f:
        assert f["names"].asstr()[:].tolist() == sorted(set(examples) - {second})
        assert f["skipped"].asstr()[:].tolist() == [
            [second, "instrument_str holds a NUL character"],
            ["lone\\ud800", "json key is not valid Unicode (a lone surrogate)"]]


def test_text_too_long_for_a_note_is_refused_and_kept_short(tmp_path, capsys):
    from analysis.cli import main
    split = tmp_path / "train"
    examples = make_tone_split(split, 4, seed=0)
    entries = json.loads((split / "examples.json").read_text())
    first, second = sorted(entries)[:2]
    entries[second]["instrument_str"] = "x" * 5000
    entries["k" * 9000] = entries[first]  # a key longer than any note name
    entries[""] = entries[first]
    (split / "examples.json").write_text(json.dumps(entries))
    assert main(["build", str(tmp_path), str(tmp_path / "store"), "--jobs", "1", "-q"]) == 0
    out = capsys.readouterr().out
    with open_split(tmp_path / "store", "train") as f:
        assert f["names"].asstr()[:].tolist() == sorted(set(examples) - {second})
        skipped = f["skipped"].asstr()[:].tolist()
    assert skipped == [["", "json key is empty, not a note name"],
                       [second, "instrument_str is 5000 characters long (at most 4096)"],
                       ["k" * 4064 + "... (9000 characters)",
                        "json key is 9000 characters long (at most 4096)"]]
    assert main(["build", str(tmp_path), str(tmp_path / "store"), "--add", "-q"]) == 0
    with open_split(tmp_path / "store", "train") as f:  # each row once, kept as it was
        assert f["skipped"].asstr()[:].tolist() == skipped
    line = next(line for line in out.splitlines() if line.startswith("  skipped in train: kkk"))
    assert line == f"  skipped in train: {'k' * 200}... (9000 characters): json key is 9000 " \
                   f"characters long (at most 4096)"


def test_an_entry_nested_too_deeply_for_python_is_skipped(tmp_path):
    split = tmp_path / "train"
    examples = make_tone_split(split, 3, seed=0)
    text = (split / "examples.json").read_text()
    deep = "[" * 900 + "]" * 900  # json's scanner reads it; hashing it would recurse too far
    (split / "examples.json").write_text(text.rstrip()[:-1] + f', "deep": {{"q": {deep}}}}}')
    usable, problems = read_split(split)
    assert sorted(e.note_str for e, _ in usable) == sorted(examples)
    assert problems == [("deep", "entry nested too deeply")]


def test_a_wav_with_a_chunk_libsndfile_refuses_is_read_by_another_decoder(tmp_path):
    y = tone(10)[:SR]
    pcm = (y * 32767).astype("<i2").tobytes()
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, SR, 2 * SR, 2, 16)
    odd = b"LIST" + struct.pack("<I", 9) + b"INFOabcde\0"  # an odd size, padded: valid RIFF
    data = b"data" + struct.pack("<I", len(pcm)) + pcm
    body = b"WAVE" + fmt + odd + data
    (tmp_path / "odd.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    decoded, *_ = load_audio(tmp_path / "odd.wav", PARAMS)
    np.testing.assert_allclose(decoded[:SR], y, atol=1e-4)  # 16-bit rounding
    cut = b"WAVE" + fmt + odd + data[:8 + SR]  # the same, cut half way: still truncated
    (tmp_path / "cut.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + cut)
    with pytest.raises(AudioError, match=r"cut.wav: truncated: its header declares 16000 "
                                         r"frames"):
        load_audio(tmp_path / "cut.wav", PARAMS)
