"""What an input costs is bounded by the clip it gives, whatever the file or its header says:
things in ``audio/`` that are not regular files, headers that lie about the sample rate or the
channels, long recordings, and reads that take too long."""
import math
import os
import struct
import tracemalloc

import h5py
import numpy as np
import pytest
import soundfile as sf
import soxr

from featurestore import audio
from featurestore.audio import AudioError, frames_needed, load_audio
from featurestore.build import build_store
from featurestore.features import features_from_file
from featurestore.params import FeatureParams
from featurestore.nsynth import write_split
from helpers import SR, example, make_tone_split

PARAMS = FeatureParams()


def noise(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = (0.1 * rng.standard_normal((int(seconds * sr), channels))).astype(np.float32)
    return y[:, 0] if channels == 1 else y


def with_fmt(path, **fields):
    """Rewrite fields of a WAV's ``fmt `` chunk (a header that lies)."""
    data = bytearray(path.read_bytes())
    at = data.index(b"fmt ") + 8
    names = ("tag", "channels", "rate", "byte_rate", "block_align", "bits")
    values = dict(zip(names, struct.unpack("<HHIIHH", data[at:at + 16])))
    values.update(fields)
    data[at:at + 16] = struct.pack("<HHIIHH", *(values[n] for n in names))
    path.write_bytes(bytes(data))


@pytest.mark.timeout(30)  # fails, where it would hang the suite
def test_a_named_pipe_is_skipped_without_being_opened(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    with pytest.raises(AudioError, match=r"pipe\.wav: is a named pipe \(FIFO\), not a "
                                         r"regular file: not read"):
        load_audio(fifo, PARAMS)
    with pytest.raises(AudioError, match="named pipe"):  # predict's and place's path
        features_from_file(fifo, PARAMS)


@pytest.mark.timeout(120)
def test_a_build_with_a_named_pipe_among_its_notes_finishes(tmp_path):
    root = tmp_path / "notes"
    examples = {split: make_tone_split(root / split, 11, seed=1)
                for split in ("train", "valid", "test")}
    os.mkfifo(root / "train" / "audio" / "pipe.wav")
    write_split(root / "train", {**examples["train"], "pipe": example("pipe", "organ")})
    build_store(root, tmp_path / "store", jobs=1, progress=False)
    with h5py.File(tmp_path / "store" / "train.h5", "r") as f:
        skipped = {name.decode(): why.decode() for name, why in f["skipped"][()]}
        assert f.attrs["n_examples"] == 11
    assert "named pipe" in skipped["pipe"], skipped


@pytest.mark.parametrize("field, value, message", [
    ("rate", 1, "implausible sample rate 1 Hz"),
    ("rate", 2_000_000_000, "implausible sample rate 2000000000 Hz"),
    ("channels", 200, "implausible channel count 200"),
])
@pytest.mark.timeout(30)
def test_a_lying_header_is_refused_with_its_value(tmp_path, field, value, message):
    path = tmp_path / "liar.wav"
    sf.write(path, noise(1.0, SR), SR, subtype="PCM_16")
    fields = {field: value}
    if field == "rate":
        fields["byte_rate"] = min(value * 2, 2 ** 32 - 1)
    else:
        fields.update(block_align=2 * value, byte_rate=SR * 2 * value)
    with_fmt(path, **fields)
    tracemalloc.start()
    try:
        with pytest.raises(AudioError, match=message) as err:
            load_audio(path, PARAMS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "liar.wav" in str(err.value)
    assert peak < 4 * PARAMS.n_samples * 4, peak  # refused before anything of size is made


@pytest.mark.parametrize("subtype, channels, sr", [
    ("PCM_16", 1, SR),        # NSynth's format: libsndfile's C calls
    ("PCM_16", 2, 44100),     # the same, resampled and downmixed
    ("FLOAT", 3, 48000),      # read by sf.SoundFile, block by block
])
def test_a_long_recording_costs_what_its_clip_costs(tmp_path, subtype, channels, sr):
    seconds = 40
    y = noise(seconds, sr, channels)
    path = tmp_path / "long.wav"
    sf.write(path, y, sr, subtype=subtype)
    whole = os.path.getsize(path)
    tracemalloc.start()
    try:
        got, adjustments = load_audio(path, PARAMS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    clip_bytes = frames_needed(sr, PARAMS) * channels * 4  # the clip, as float32
    assert peak < 3 * clip_bytes < whole, (peak, clip_bytes, whole)
    assert f"trimmed {seconds:.3f} s -> 4.000 s" in adjustments
    # what it gives is what reading and resampling the whole file gives, cut to the clip
    expected = sf.read(path, dtype="float32", always_2d=True)[0].mean(axis=1, dtype=np.float32)
    if sr != SR:
        expected = soxr.resample(expected, sr, SR, quality="HQ")
    np.testing.assert_allclose(got, expected[:PARAMS.n_samples], atol=1e-6, rtol=0)


@pytest.mark.parametrize("ext, subtype", [("flac", "PCM_16"), ("flac", "PCM_24"),
                                          ("wav", "PCM_16"), ("wav", "FLOAT")])
def test_a_long_file_cut_short_after_the_clip_is_still_refused(tmp_path, ext, subtype):
    whole = tmp_path / f"whole.{ext}"
    sf.write(whole, noise(30, SR), SR, subtype=subtype)
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[:len(data) // 2])  # 15 s are there, far more than the clip
    assert load_audio(whole, PARAMS)[1] == ["trimmed 30.000 s -> 4.000 s"]
    with pytest.raises(AudioError, match=r"cut\.\w+: truncated"):
        load_audio(cut, PARAMS)


def test_a_read_that_takes_too_long_is_given_up(tmp_path, monkeypatch):
    path = tmp_path / "slow.wav"
    sf.write(path, noise(4, SR), SR, subtype="FLOAT")  # read block by block
    monkeypatch.setattr(audio, "READ_SECONDS", 0.0)
    with pytest.raises(AudioError, match=r"slow\.wav: reading took more than 0 s"):
        load_audio(path, PARAMS)


def test_frames_needed_covers_the_clip_and_the_filter():
    assert frames_needed(SR, PARAMS) == PARAMS.n_samples
    for sr in (8000, 22050, 44100, 96000):
        clip = math.ceil(PARAMS.n_samples * sr / SR)
        assert clip < frames_needed(sr, PARAMS) <= clip + math.ceil(0.1 * sr)
