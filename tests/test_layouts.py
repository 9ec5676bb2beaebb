"""Inputs other than NSynth's layout: class folders (with and without split folders), CSV
manifests, drawn splits by group, the store's own label set, and recordings cut into windows."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import soundfile as sf

from featurestore import schema
from featurestore.build import build_store
from featurestore.errors import BuildError
from featurestore.layouts import InputOptions, drawn_split, read_inputs
from featurestore.windows import window_offsets
from tests.helpers import SR, tone

CLASSES = ("cello", "dog_bark", "kettle")


def _wav(path, seconds=1.0, k=0, sr=SR, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(10 + 20 * k, seconds=seconds, sr=sr), sr, subtype=subtype)
    return path


def _class_folders(root, per_class=6, split_folders=True):
    for k, label in enumerate(CLASSES):
        for i in range(per_class):
            split = ("train", "train", "train", "train", "valid", "test")[i % 6]
            folder = root / split / label if split_folders else root / label
            _wav(folder / f"take{i}_{label}.wav", seconds=0.5 + i, k=k)
    return root


def test_class_folders_with_splits(tmp_path):
    root = _class_folders(tmp_path / "set")
    (root / "train" / "cello" / "notes.txt").write_text("not audio: left alone")
    reports = build_store(root, tmp_path / "store", jobs=1, progress=False)
    assert [r.split for r in reports] == ["train", "valid", "test"]
    with h5py.File(tmp_path / "store" / "train.h5", "r") as f:
        assert schema.read_label_names(f) == CLASSES
        names = f[schema.NAMES].asstr()[:].tolist()
        assert names[0] == "cello/take0_cello.wav" and len(names) == 12
        labels = f[schema.LABELS][:]
        assert [CLASSES[k] for k in labels] == [n.split("/")[0] for n in names]
        assert f[schema.FILE].asstr()[0] == "train/cello/take0_cello.wav"
        assert (f[schema.OFFSET][:] == 0).all()
        assert f.attrs["input_layout"] == "folders"
        assert schema.read_audio_paths(f)[0] == (root / "train/cello/take0_cello.wav").resolve()
        adjusted = dict(f[schema.ADJUSTED].asstr()[:].tolist())
        assert adjusted["cello/take0_cello.wav"].startswith("padded")
    with h5py.File(tmp_path / "store" / "test.h5", "r") as f:  # the same set in every split
        assert schema.read_label_names(f) == CLASSES


def test_long_files_are_trimmed_by_default_and_recorded(tmp_path):
    root = tmp_path / "set"
    for k, label in enumerate(("a", "b")):
        _wav(root / "train" / label / "long.wav", seconds=9.0, k=k)
        _wav(root / "valid" / label / "long.wav", seconds=9.0, k=k)
    build_store(root, tmp_path / "store", jobs=1, progress=False)
    with h5py.File(tmp_path / "store" / "train.h5", "r") as f:
        assert f[schema.SPECTRA].shape[0] == 2
        assert dict(f[schema.ADJUSTED].asstr()[:].tolist())["a/long.wav"] == \
            "trimmed 9.000 s -> 4.000 s"


def test_drawn_splits_keep_groups_apart_and_are_deterministic(tmp_path):
    root = tmp_path / "set"
    for k, label in enumerate(CLASSES):
        for player in range(12):
            for take in range(2):
                _wav(root / label / f"p{player:02d}_{take}.wav", seconds=0.3, k=k)
    options = InputOptions(group_by=r"^(p\d+)_", valid_fraction=0.25, test_fraction=0.25)
    read = read_inputs(root, options)
    assert read.layout == "folders" and set(read.splits) == {"train", "valid", "test"}
    seen = {}
    for split, (notes, problems) in read.splits.items():
        assert not problems
        for group in notes.group:
            assert seen.setdefault(group, split) == split  # no group in two splits
            assert drawn_split(group, 0.25, 0.25) == split
    assert len(seen) == 12
    again = read_inputs(root, options)
    assert {s: n.names for s, (n, _) in again.splits.items()} == \
        {s: n.names for s, (n, _) in read.splits.items()}
    # without --group-by each file is its own group
    alone = read_inputs(root, InputOptions(valid_fraction=0.25, test_fraction=0.25))
    assert sum(len(n) for n, _ in alone.splits.values()) == 72
    assert len({g for n, _ in alone.splits.values() for g in n.group}) == 72


def test_manifest_rows_metadata_and_bad_rows(tmp_path):
    data = tmp_path / "data"
    for i in range(8):
        _wav(data / "clips" / f"c{i}.flac", seconds=0.5 + i * 0.5, k=i % 2)
    rows = ["path,label,split,group,mic,take"]
    rows += [f"clips/c{i}.flac,{'violin' if i % 2 else 'voice'},{('train', 'valid')[i // 6]},"
             f"g{i},mic{i % 3},{i}" for i in range(8)]
    rows += ["clips/missing.wav,violin,train,,,",       # no such file
             "clips/c0.flac,voice,train,,,",            # given again
             "clips/c1.flac,,train,,,",                 # empty label... and given again
             "clips/c2.flac,voice,tset,,,"]             # unknown split
    manifest = data / "set.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    build_store([manifest], tmp_path / "store", jobs=1, progress=False)
    with h5py.File(tmp_path / "store" / "train.h5", "r") as f:
        assert schema.read_label_names(f) == ("violin", "voice")
        assert f[schema.NAMES].asstr()[:].tolist() == [f"clips/c{i}.flac" for i in range(6)]
        assert f["metadata/mic"].asstr()[:].tolist() == [f"mic{i % 3}" for i in range(6)]
        assert f["metadata/take"].asstr()[:].tolist() == [str(i) for i in range(6)]
        assert f[schema.GROUP].asstr()[:].tolist() == [f"g{i}" for i in range(6)]
        skipped = dict(f[schema.SKIPPED].asstr()[:].tolist())
        assert "no such file" in skipped["clips/missing.wav"]
        assert "unknown split 'tset'" in skipped["clips/c2.flac"]
        assert f.attrs["input_layout"] == "manifest"
        assert schema.read_audio_paths(f)[0] == (data / "clips" / "c0.flac").resolve()
    with h5py.File(tmp_path / "store" / "valid.h5", "r") as f:
        assert f[schema.NAMES].asstr()[:].tolist() == ["clips/c6.flac", "clips/c7.flac"]
    read = read_inputs([manifest])
    problems = dict(read.splits["train"][1])
    assert "empty label" in problems["clips/c1.flac"] or "given again" in problems["clips/c1.flac"]
    assert "given again (first on line 2)" in dict(read.splits["train"][1])["clips/c0.flac"]


@pytest.mark.parametrize("text, message", [
    ("file,label\na.wav,x\n", "no path column"),
    ("path,class\na.wav,x\n", "no label column"),
    ("path,label\n", "no rows below its header"),
])
def test_manifest_without_what_it_needs(tmp_path, text, message):
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(BuildError, match=f"m.csv: {message}"):
        read_inputs([manifest])


def test_manifest_that_is_not_text(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"path,label\n\xff\xfe\x00bad,x\n")
    with pytest.raises(BuildError, match="m.csv: not a readable CSV file"):
        read_inputs([manifest])


def test_inputs_of_two_layouts_and_bad_options(tmp_path):
    folders = _class_folders(tmp_path / "set")
    from tests.helpers import make_tone_root
    nsynth = make_tone_root(tmp_path / "nsynth", 4, 2, 0)
    with pytest.raises(BuildError, match="different layouts"):
        read_inputs([folders, nsynth])
    with pytest.raises(BuildError, match="--group-by applies|group_by applies"):
        read_inputs(nsynth, InputOptions(group_by="x"))
    with pytest.raises(BuildError, match="not a regular expression"):
        InputOptions(group_by="(")
    with pytest.raises(BuildError, match="--windows"):
        InputOptions(windows=0)
    with pytest.raises(BuildError, match="leave groups for train"):
        InputOptions(valid_fraction=0.5, test_fraction=0.5)


def test_a_kept_split_of_another_label_set_is_refused(tmp_path):
    root = _class_folders(tmp_path / "set")
    build_store(root, tmp_path / "store", jobs=1, progress=False)
    _wav(root / "train" / "zither" / "z.wav", k=2)
    with pytest.raises(BuildError, match=r"label set \(cello, dog_bark, kettle\).*zither"):
        build_store(root, tmp_path / "store", jobs=1, progress=False)
    build_store(root, tmp_path / "store", jobs=1, progress=False, overwrite=True)


def test_window_offsets():
    assert window_offsets(10.0, 4.0, 4.0).tolist() == [0.0, 4.0, 8.0]
    assert window_offsets(9.0, 4.0, 2.0).tolist() == [0.0, 2.0, 4.0, 6.0]
    assert window_offsets(4.0, 4.0, 1.0).tolist() == [0.0]
    assert window_offsets(2.5, 4.0, 1.0).tolist() == [0.0]
    assert window_offsets(5.0, 4.0, 10.0).tolist() == [0.0]  # a hop past the end adds none
    with pytest.raises(ValueError, match="positive number of seconds"):
        window_offsets(5.0, 4.0, -1.0)


def test_windows_cut_long_recordings_into_notes(tmp_path):
    root = tmp_path / "set"
    _wav(root / "train" / "a" / "long.wav", seconds=10.0, k=0)
    _wav(root / "train" / "b" / "short.wav", seconds=2.0, k=1)
    _wav(root / "train" / "b" / "long.flac", seconds=6.0, k=1, sr=22050)
    _wav(root / "valid" / "a" / "v.wav", seconds=5.0, k=0)
    build_store(root, tmp_path / "store", inputs=InputOptions(windows=3.0), jobs=1,
                progress=False)
    with h5py.File(tmp_path / "store" / "train.h5", "r") as f:
        names = f[schema.NAMES].asstr()[:].tolist()
        assert names == ["a/long.wav@0.000", "a/long.wav@3.000", "a/long.wav@6.000",
                         "b/long.flac@0.000", "b/long.flac@3.000", "b/short.wav@0.000"]
        assert f[schema.OFFSET][:].tolist() == [0, 3, 6, 0, 3, 0]
        assert f[schema.FILE].asstr()[:].tolist()[:2] == ["train/a/long.wav"] * 2
        assert f.attrs["input_windows"] == 3.0
        adjusted = dict(f[schema.ADJUSTED].asstr()[:].tolist())
        assert "a/long.wav@0.000" not in adjusted  # a window is not a trimmed file
        assert "a/long.wav@6.000" not in adjusted  # seconds 6 to 10: the file's end
        assert adjusted["b/long.flac@3.000"] == ("resampled 22050 Hz -> 16000 Hz; padded "
                                                 "3.000 s -> 4.000 s")
        # the second window holds the file's seconds 3 to 7: the same features as that part
        from featurestore.features import compute_features
        from featurestore.params import FeatureParams
        y, _ = sf.read(root / "train" / "a" / "long.wav", dtype="float32")
        expected = compute_features(y[3 * SR:7 * SR], FeatureParams())
        np.testing.assert_allclose(f[schema.SPECTRA][1].astype(np.float32),
                                   expected.astype(np.float32), atol=2e-2)


def _hour_long_wav(path, tone_at: float):
    """A 16 kHz 16-bit mono WAV of one hour, sparse (zeros) but for 4 s of tone at
    ``tone_at`` seconds."""
    import struct
    frames = 3600 * SR
    header = (b"RIFF" + struct.pack("<I", 36 + 2 * frames) + b"WAVEfmt "
              + struct.pack("<IHHIIHH", 16, 1, 1, SR, 2 * SR, 2, 16)
              + b"data" + struct.pack("<I", 2 * frames))
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + 2 * frames)
        f.seek(len(header) + 2 * int(tone_at * SR))
        f.write((tone(40, seconds=4.0) * 32767).astype("<i2").tobytes())
    return path


def test_a_window_of_an_hour_long_recording_costs_a_clip(tmp_path):
    import tracemalloc
    from featurestore.audio import load_audio
    from featurestore.params import FeatureParams
    from featurestore.windows import audio_seconds
    path = _hour_long_wav(tmp_path / "hour.wav", tone_at=3000.0)
    assert audio_seconds(path) == 3600.0
    params = FeatureParams()
    load_audio(_wav(tmp_path / "warm.wav"), params)  # imports, first calls: not the file's cost
    tracemalloc.start()
    y, adjustments = load_audio(path, params, offset=3000.0, window=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * params.n_samples * 4  # a few clips' worth, not the file's 115 MB
    np.testing.assert_allclose(y, tone(40, seconds=4.0), atol=1e-4)
    assert adjustments == []
