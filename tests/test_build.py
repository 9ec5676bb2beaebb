import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import featurestore.build
from featurestore.build import BuildError, build_store, resolve_backend
from featurestore.features import features_from_file
from featurestore.nsynth import FAMILIES
from featurestore.splitfolder import read_split
from featurestore.params import FeatureParams
from featurestore import schema
from featurestore.reader import SpectraReader
from featurestore.store import StoreError, open_split, read_params
from helpers import (SR, everything_in, example, kill_at_journal, make_tone_root,
                     make_tone_split, tone, write_note)

REPO = Path(__file__).resolve().parents[1]


def test_schema_and_labels_match_the_json(tone_root, tone_store):
    for split in ("train", "valid", "test"):
        entries = json.loads((tone_root / split / "examples.json").read_text())
        with h5py.File(tone_store / f"{split}.h5", "r") as f:
            names = f["names"].asstr()[:]
            n = len(entries)
            assert f["spectra"].shape == (n, 251, 513)
            assert f["spectra"].dtype == np.float16
            assert f["spectra"].chunks == (1, 251, 513)
            assert f["spectra"].compression is None
            assert sorted(names) == sorted(entries)
            family_names = list(f["labels"].attrs["names"])
            assert family_names == list(FAMILIES)
            for i, name in enumerate(names):
                entry = entries[name]
                assert family_names[f["labels"][i]] == entry["instrument_family_str"]
                assert f["pitch"][i] == entry["pitch"]
                assert f["velocity"][i] == entry["velocity"]
                assert f["instrument"][i] == entry["instrument"]
                assert f["instrument_str"].asstr()[i] == entry["instrument_str"]
                assert f["source"].asstr()[i] == entry["instrument_source_str"]
                np.testing.assert_array_equal(f["qualities"][i], entry["qualities"])
            assert f["skipped"].shape == (0, 2)
            assert f.attrs["split"] == split and f.attrs["n_examples"] == n
            assert read_params(f) == FeatureParams()
            for key in ("timbremap_version", "source_root", "created"):
                assert key in f.attrs
            assert sorted(f) == sorted(schema.BUILT)  # what the schema module names


def test_the_schema_documents_every_dataset_and_attribute():
    names = [value for key, value in vars(schema).items()
             if key.isupper() and isinstance(value, str) and key != "STRING"]
    assert "spectra" in names and "tsne_pca_mean" in names and "stats_count" in names
    for name in names:
        assert f"``/{name}``" in schema.__doc__ or f"``{name}``" in schema.__doc__, name


def test_spectra_are_the_feature_function(tone_root, tone_store):
    with h5py.File(tone_store / "valid.h5", "r") as f:
        for i in (0, 5):
            name = f["names"].asstr()[i]
            expected, _ = features_from_file(tone_root / "valid" / "audio" / f"{name}.wav",
                                             FeatureParams())
            np.testing.assert_array_equal(f["spectra"][i], expected)


def test_statistics_against_numpy_on_the_stored_data(tone_store):
    with h5py.File(tone_store / "train.h5", "r") as f:
        x = f["spectra"][:].astype(np.float64).reshape(-1, 513)
        mean, std = f["spectra"].attrs["mean"], f["spectra"].attrs["std"]
        assert mean.dtype == np.float64 and mean.shape == (513,)
        np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(std, x.std(axis=0), rtol=1e-9, atol=1e-12)
        assert f["spectra"].attrs["stats_count"] == x.shape[0]
    for split in ("valid", "test"):  # carry the train split's values
        with h5py.File(tone_store / f"{split}.h5", "r") as f:
            np.testing.assert_array_equal(f["spectra"].attrs["mean"], mean)
            np.testing.assert_array_equal(f["spectra"].attrs["std"], std)
            assert f["spectra"].attrs["stats_split"] == "train"


@pytest.mark.parametrize("method", ["mmap", "h5py"])
def test_reader_batches_by_index(tone_store, method):
    with h5py.File(tone_store / "train.h5", "r") as f:
        everything, labels = f["spectra"][:], f["labels"][:]
    with SpectraReader(tone_store / "train.h5", method=method) as reader:
        assert reader.method == method and len(reader) == len(labels)
        idx = np.array([7, 3, 3, 21, 0])  # unsorted, with a repeat
        x, y = reader.batch(idx)
        np.testing.assert_array_equal(x, everything[idx])
        np.testing.assert_array_equal(y, labels[idx])
        assert np.concatenate(list(reader.iter_batches(5))).shape == everything.shape
        with pytest.raises(IndexError, match="indices must be in"):
            reader.batch([len(labels)])
        for bad in ([1.5], 3, [[1, 2]]):
            with pytest.raises(TypeError, match="indices must be a sequence of ints"):
                reader.batch(bad)
        assert reader.batch([])[0].shape == (0,) + everything.shape[1:]
        with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
            next(reader.iter_batches(0))
    with pytest.raises(ValueError, match="this reader is closed"):
        reader.batch([0])
    with pytest.raises(ValueError, match="this reader is closed"):
        reader.rows(0, 2)
    for call in (lambda: reader.has("names"), lambda: reader.field("names")):
        with pytest.raises(ValueError, match="this reader is closed"):  # not h5py's id error
            call()
    with pytest.raises(StoreError, match=r"is a folder; a reader reads one split file"):
        SpectraReader(tone_store)


def test_mel_features_and_parallel_build_equal_serial(tone_root, tmp_path):
    params = FeatureParams(kind="mel", n_mels=32)
    build_store(tone_root, tmp_path / "a", params, jobs=1, batch_size=3, progress=False,
                splits=["train"])
    build_store(tone_root, tmp_path / "b", params, jobs=2, batch_size=5, progress=False,
                splits=["train"])
    with h5py.File(tmp_path / "a" / "train.h5") as a, h5py.File(tmp_path / "b" / "train.h5") as b:
        assert a["spectra"].shape[1:] == (251, 32)
        np.testing.assert_array_equal(a["spectra"][:], b["spectra"][:])
        np.testing.assert_allclose(a["spectra"].attrs["mean"], b["spectra"].attrs["mean"],
                                   rtol=1e-12)
        assert read_params(a) == params


@pytest.fixture
def bad_root(tmp_path):
    """A train split with every kind of bad input next to good tones."""
    root = tmp_path / "bad"
    split = root / "train"
    examples = make_tone_split(split, 6, seed=3)
    y = tone(30)
    cases = {
        "corrupt": lambda d, n: (d / "audio" / f"{n}.wav").write_bytes(b"RIFF????WAVEfmt junk"),
        "empty": lambda d, n: write_note(d, n, np.zeros(0, np.float32)),
        "nan": lambda d, n: write_note(d, n, np.where(np.arange(len(y)) == 5, np.nan, y),
                                       subtype="FLOAT"),
        "stereo": lambda d, n: write_note(d, n, np.stack([y, y * 0.5], axis=1)),
        "rate44k": lambda d, n: write_note(d, n, tone(30, sr=44100), sr=44100),
        "short": lambda d, n: write_note(d, n, y[:SR]),
        "long": lambda d, n: write_note(d, n, np.concatenate([y, y])),
        "silent": lambda d, n: write_note(d, n, np.zeros_like(y)),
        "nowav": lambda d, n: None,
    }
    for name, make in cases.items():
        make(split, name)
        examples[name] = example(name, "guitar")
    write_note(split, "nojson", y)
    bad_family = {name: e.to_json() for name, e in examples.items()}
    write_note(split, "alien", y)
    bad_family["alien"] = dict(example("alien", "guitar").to_json(),
                               instrument_family_str="theremin")
    (split / "examples.json").write_text(json.dumps(bad_family))
    return root


def test_bad_inputs_are_recorded_and_the_build_goes_on(bad_root, tmp_path):
    report = build_store(bad_root, tmp_path / "out", jobs=2, backend="loky", batch_size=4,
                         progress=False)[0]
    with h5py.File(tmp_path / "out" / "train.h5", "r") as f:
        skipped = dict(f["skipped"].asstr()[:])
        adjusted = dict(f["adjusted"].asstr()[:])
        names = set(f["names"].asstr()[:])
    assert set(skipped) == {"corrupt", "empty", "nan", "silent", "nowav", "nojson", "alien"}
    assert "cannot decode" in skipped["corrupt"]
    assert "no samples" in skipped["empty"]
    assert "NaN" in skipped["nan"]
    assert skipped["silent"] == "silent: every sample is 0"
    assert "has no wav" in skipped["nowav"]
    assert "has no entry" in skipped["nojson"]
    assert "theremin" in skipped["alien"]
    assert adjusted == {"stereo": "downmixed 2 channels",
                        "rate44k": "resampled 44100 Hz -> 16000 Hz",
                        "short": "padded 1.000 s -> 4.000 s",
                        "long": "trimmed 8.000 s -> 4.000 s"}
    assert {"stereo", "rate44k", "short", "long"} <= names and len(names) == 10
    assert report.n_examples == 10 and report.n_skipped == 7 and report.n_adjusted == 4


def test_a_train_split_whose_features_are_all_the_same_is_not_finished(tone_root, tmp_path,
                                                                       monkeypatch):
    import featurestore.workers as workers
    from featurestore.errors import BuildError
    features = workers.note_features

    def constant(path, params, *, out, **kwargs):  # as a window of zeros gave: all one value
        result = features(path, params, out=out, **kwargs)
        out[:] = 1.0
        frames = params.n_frames
        return (out, np.full(params.n_bins, float(frames)), np.full(params.n_bins, float(frames)),
                result[3])
    monkeypatch.setattr(workers, "note_features", constant)
    with pytest.raises(BuildError, match=r"train.h5: every feature is the same in every "
                                         r"note of train \(a standard deviation of 0 in every "
                                         r"bin\)"):
        build_store(tone_root, tmp_path / "out", jobs=1, progress=False)
    assert not (tmp_path / "out" / "train.h5").exists()


def test_a_batch_larger_than_a_split_takes_the_split_s_room_and_memory_is_checked(
        tone_root, tmp_path, monkeypatch):
    import featurestore.workers as workers
    from featurestore.errors import BuildError
    build_store(tone_root, tmp_path / "big", jobs=2, backend="threading", batch_size=10 ** 8,
                progress=False)  # workers ahead of the writer by batches of a ring
    build_store(tone_root, tmp_path / "usual", jobs=1, progress=False)
    assert everything_in(tmp_path / "big" / "train.h5") == \
        everything_in(tmp_path / "usual" / "train.h5")
    monkeypatch.setattr(workers, "usable_memory", lambda: 40 << 20)  # 20 MiB for the batches
    with pytest.raises(BuildError, match=r"batch_size must keep the notes being built within "
                                         r"half the memory \(20.0 MiB\): 4 batches of 22 notes "
                                         r"\(a split's\) of 251 KiB \(1 jobs\) would take "
                                         r"21.6 MiB"):
        build_store(tone_root, tmp_path / "small", jobs=1, batch_size=10 ** 8, progress=False)
    assert not (tmp_path / "small").exists()  # before anything is made


def test_the_room_of_skipped_notes_is_given_back(bad_root, tmp_path, monkeypatch, caplog):
    import featurestore.splitfile as splitfile
    build_store(bad_root, tmp_path / "kept", jobs=1, progress=False)
    monkeypatch.setattr(splitfile, "SPARE_BYTES", 0)  # the room of 4 notes is too much
    build_store(bad_root, tmp_path / "given", jobs=1, progress=False)
    kept, given = tmp_path / "kept" / "train.h5", tmp_path / "given" / "train.h5"
    note = 2 * int(np.prod(FeatureParams().shape))
    # corrupt, empty, nan and silent had room (the notes without wav, entry or family did not)
    assert kept.stat().st_size - given.stat().st_size >= 4 * note
    assert everything_in(given) == everything_in(kept)
    with SpectraReader(given, method="mmap") as reader:  # its chunks in order, as built
        assert reader.in_order
        np.testing.assert_array_equal(reader.batch(np.arange(10))[0],
                                      h5py.File(kept)["spectra"][:])
    assert not list((tmp_path / "given").glob(".*partial*"))
    from featurestore.store import store_splits
    (tmp_path / "given" / ".train.h5.partial.partial.h5").write_bytes(b"")  # hidden: no split
    assert store_splits(tmp_path / "given") == ["train"]

    def full(path, kept):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(splitfile, "_copy_without_room", full)  # the copy fails: kept as it is
    build_store(bad_root, tmp_path / "full", jobs=1, progress=False)
    assert (tmp_path / "full" / "train.h5").stat().st_size == kept.stat().st_size
    assert "MiB of unused room (No space left on device); kept as it is" in caplog.text


def test_more_jobs_than_cores_are_cut_to_them(tone_root, tmp_path, caplog):
    from joblib import cpu_count
    cores = cpu_count()
    reports = build_store(tone_root, tmp_path / "store", jobs=cores + 1000, backend="threading",
                          splits=["test"], progress=False)
    assert reports[0].n_examples == 11
    assert f"jobs={cores + 1000} is more than the {cores} cores here; building with {cores}" \
        in caplog.text


def test_a_split_that_cannot_fit_on_the_disk_is_refused_before_it_starts(tone_root, tmp_path,
                                                                          monkeypatch):
    import collections
    import shutil
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 20, 9 << 20, 1 << 20))
    with pytest.raises(BuildError, match=r"train.h5: not enough free space for its notes "
                                         r"\(5.4 MiB needed, 1.0 MiB free\); nothing of it was "
                                         r"written: make room and run the same build again"):
        build_store(tone_root, tmp_path / "store", jobs=1, progress=False)
    assert not (tmp_path / "store").exists()  # nothing of it, nor the folder it made


def test_a_build_that_keeps_every_split_writes_nothing(tone_root, tmp_path, monkeypatch):
    import featurestore.build
    build_store(tone_root, tmp_path / "store", jobs=1, progress=False)

    def read_only(out):
        raise BuildError(f"{out}: cannot write there (Read-only file system)")
    monkeypatch.setattr(featurestore.build, "check_writable", read_only)
    reports = build_store(tone_root, tmp_path / "store", jobs=1, progress=False)
    assert [r.status for r in reports] == ["kept"] * 3
    (tmp_path / "store" / "test.h5").unlink()
    with pytest.raises(BuildError, match="cannot write there"):
        build_store(tone_root, tmp_path / "store", jobs=1, progress=False)


def test_existing_store_kept_unless_overwrite(tone_root, tmp_path):
    out = tmp_path / "s"
    build_store(tone_root, out, jobs=1, progress=False, splits=["valid"])
    before = (out / "valid.h5").stat().st_mtime_ns
    report = build_store(tone_root, out, jobs=1, progress=False, splits=["valid"])[0]
    assert report.status == "kept" and (out / "valid.h5").stat().st_mtime_ns == before
    with pytest.raises(BuildError, match="other feature parameters"):
        build_store(tone_root, out, FeatureParams(n_fft=512), progress=False, splits=["valid"])
    report = build_store(tone_root, out, FeatureParams(n_fft=512), jobs=1, progress=False,
                         splits=["valid"], overwrite=True)[0]
    assert report.status == "built"
    with h5py.File(out / "valid.h5") as f:
        assert f["spectra"].shape[2] == 257


def test_a_kept_split_that_does_not_fit_is_refused_before_any_split_is_built(tone_root,
                                                                             tmp_path):
    out = tmp_path / "s"
    build_store(tone_root, out, FeatureParams(n_fft=512), jobs=1, progress=False,
                splits=["valid"])
    with pytest.raises(BuildError, match="valid.h5: exists and was built with other feature"):
        build_store(tone_root, out, jobs=1, progress=False)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["valid.h5"]


def test_a_kept_split_is_given_the_train_split_s_statistics(tmp_path, caplog):
    root, out = make_tone_root(tmp_path / "notes", 12, 6, 6), tmp_path / "s"

    def stats(split):
        with h5py.File(out / f"{split}.h5") as f:
            a = f["spectra"].attrs
            return a["stats_split"], a["stats_count"], a["mean"].tolist(), a["std"].tolist()

    build_store(root, out, jobs=1, progress=False, splits=["valid"])  # no train: its own
    assert stats("valid")[0] == "valid"
    with h5py.File(out / "valid.h5") as f:
        before = f["spectra"][:], f.attrs["content_digest"]
    reports = build_store(root, out, jobs=1, progress=False)
    assert [(r.split, r.status, r.n_examples) for r in reports] == [
        ("train", "built", 12), ("valid", "updated", 6), ("test", "built", 6)]
    assert stats("valid") == stats("test") == stats("train")
    with h5py.File(out / "valid.h5") as f:  # only its statistics changed
        np.testing.assert_array_equal(f["spectra"][:], before[0])
        assert f.attrs["content_digest"] == before[1]
    assert not list(out.glob(".*partial*"))

    make_tone_split(root / "train", 14, seed=5)  # train built again alone: the others follow
    reports = build_store(root, out, jobs=1, progress=False, splits=["train"], overwrite=True)
    assert [(r.split, r.status) for r in reports] == [
        ("train", "built"), ("valid", "updated"), ("test", "updated")]
    assert stats("valid") == stats("test") == stats("train") and stats("train")[1] > 0

    make_tone_split(root / "train", 12, seed=0)
    with h5py.File(out / "test.h5", "r"):  # held by another program: warned of, tried again
        reports = build_store(root, out, jobs=1, progress=False, splits=["train"],
                              overwrite=True)
    assert [(r.split, r.status, r.n_examples) for r in reports] == [
        ("train", "built", 12), ("valid", "updated", 6)]
    assert "test.h5: carries the statistics of train, not those of the train split, and could " \
           "not be given them (" in caplog.text
    assert "it is as it was, and a later build gives them" in caplog.text
    assert stats("test") != stats("train")
    reports = build_store(root, out, jobs=1, progress=False)
    assert [r.status for r in reports] == ["kept", "kept", "updated"]
    assert stats("test") == stats("train")
    assert [r.status for r in build_store(root, out, jobs=1, progress=False)] == ["kept"] * 3

    other = tmp_path / "other"  # a split linked from another store keeps that store's
    build_store(root, other, jobs=1, progress=False, splits=["train"])
    (other / "valid.h5").symlink_to(out / "valid.h5")
    make_tone_split(root / "train", 10, seed=7)
    build_store(root, other, jobs=1, progress=False, splits=["train"], overwrite=True)
    assert stats("valid") == stats("train")  # out's: untouched through the link
    assert f"{other / 'valid.h5'}: carries the statistics of train, not those of the train " \
           f"split, and links to {out / 'valid.h5'}, whose statistics are its own store's: " \
           f"kept as it is" in caplog.text


def test_kept_split_reports_what_it_holds_and_warns_when_its_inputs_changed(bad_root, tmp_path,
                                                                          caplog):
    out = tmp_path / "s"
    built = build_store(bad_root, out, jobs=1, progress=False, splits=["train"])[0]
    kept = build_store(bad_root, out, jobs=1, progress=False, splits=["train"])[0]
    assert kept.status == "kept" and kept.n_skipped == built.n_skipped > 0
    assert kept.n_adjusted == built.n_adjusted > 0 and kept.skipped == built.skipped
    assert "changed since" not in caplog.text
    write_note(bad_root / "train", "stereo", np.zeros((SR, 2), np.float32))  # re-recorded
    assert build_store(bad_root, out, jobs=1, progress=False, splits=["train"])[0].status == \
        "kept"
    assert "changed since it was built; build --add adds the notes it does not hold, " \
           "--overwrite rebuilds it" in caplog.text


def test_train_split_without_a_usable_note_is_an_error(tmp_path):
    split = tmp_path / "root" / "train"
    make_tone_split(split, 2, seed=0)
    for wav in (split / "audio").iterdir():
        wav.write_bytes(b"RIFF not really")
    with pytest.raises(BuildError, match="none of its 2 notes could be used.*cannot decode"):
        build_store(tmp_path / "root", tmp_path / "s", jobs=1, progress=False)
    assert not (tmp_path / "s").exists()  # the folder the build made, left empty, is gone
    (tmp_path / "given").mkdir()
    with pytest.raises(BuildError, match="none of its 2 notes could be used"):
        build_store(tmp_path / "root", tmp_path / "given", jobs=1, progress=False)
    assert list((tmp_path / "given").iterdir()) == []  # a folder given stays


def test_names_are_the_json_keys_and_upper_case_wav_is_found(tmp_path):
    split = tmp_path / "root" / "train"
    examples = make_tone_split(split, 3, seed=0)
    first = sorted(examples)[0]
    (split / "audio" / f"{first}.wav").rename(split / "audio" / f"{first}.WAV")
    entries = json.loads((split / "examples.json").read_text())
    for entry in entries.values():
        entry["note_str"] = "not the file name"
    (split / "examples.json").write_text(json.dumps(entries))
    build_store(tmp_path / "root", tmp_path / "s", jobs=1, progress=False)
    with h5py.File(tmp_path / "s" / "train.h5") as f:
        assert sorted(f["names"].asstr()[:]) == sorted(examples) and not len(f["skipped"])


@pytest.mark.parametrize("setup, message", [
    (lambda t: t / "missing", "no such folder"),
    (lambda t: t, "no split folder"),
])
def test_bad_root(tmp_path, setup, message):
    with pytest.raises(BuildError, match=message):
        build_store(setup(tmp_path), tmp_path / "out", progress=False)


def test_nsynth_s_download_folders_are_its_splits_and_one_split_s_folder_is_refused(tmp_path,
                                                                                 caplog):
    root = tmp_path / "nsynth"
    made = {split: make_tone_split(root / f"nsynth-{split}", n, seed=k)
            for k, (split, n) in enumerate([("train", 4), ("valid", 2), ("test", 2)])}
    (root / "cello").mkdir()  # class folders beside a render's splits: not read, and said so
    shutil.copy(next((root / "nsynth-train" / "audio").iterdir()), root / "cello")
    build_store(root, tmp_path / "s", jobs=1, progress=False)
    assert f"{root}: read as NSynth's layout, its split folders (nsynth-train, nsynth-valid, " \
           f"nsynth-test); its other folders are not read (cello)" in caplog.text
    for split, examples in made.items():
        with h5py.File(tmp_path / "s" / f"{split}.h5") as f:
            assert sorted(f["names"].asstr()[:]) == sorted(examples)
            assert f["file"].asstr()[0].startswith(f"nsynth-{split}/audio/")
            assert tuple(f["labels"].attrs["names"]) == FAMILIES  # not the folders' names
    with pytest.raises(BuildError, match=r"nsynth-test: holds an examples.json, so it is one "
                                         r"split's folder; give the folder holding the splits: "
                                         + str(root)):
        build_store(root / "nsynth-test", tmp_path / "t", progress=False)
    shutil.copytree(root / "nsynth-test", tmp_path / "mine")
    with pytest.raises(BuildError, match="with this one in it named train/"):
        build_store(tmp_path / "mine", tmp_path / "t", progress=False)
    shutil.copytree(root / "nsynth-test", root / "test")
    with pytest.raises(BuildError, match="both test/ and nsynth-test/ hold an examples.json"):
        build_store(root, tmp_path / "t", progress=False)
    assert not (tmp_path / "t").exists()


def test_unwritable_out(tone_root, tmp_path, monkeypatch):
    with monkeypatch.context() as m:  # refused before the inputs are read, and warned of
        m.setattr(featurestore.build, "read_inputs", lambda *a, **k: pytest.fail("read"))
        for roots in (tone_root, [tmp_path, tone_root]):
            with pytest.raises(BuildError, match=f"{tone_root}: is a NOTES folder too; give the "
                                                 f"store a folder of its own"):
                build_store(roots, f"{tone_root}/", progress=False)
    assert not list(tone_root.glob("*.h5*"))
    model_dir = tmp_path / "model"  # a trained model's folder
    model_dir.mkdir()
    (model_dir / "model.keras").write_bytes(b"")
    with pytest.raises(BuildError, match=f"{model_dir}: holds a model \\(model.keras\\); split "
                                         f"files go into a folder of their own"):
        build_store(tone_root, model_dir, progress=False)
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.keras"]
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(BuildError, match="cannot write"):
        build_store(tone_root, blocker / "out", progress=False)


def test_a_full_disk_names_the_file_and_the_build_resumes(tone_root, tmp_path, monkeypatch):
    import errno
    from featurestore import build, splitfile
    calls = []

    def full_after_five(spectra):
        write = splitfile.note_writer(spectra)

        def write_note(i, row):
            calls.append(i)
            if len(calls) > 5:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            write(i, row)
        return write_note
    out = tmp_path / "full"
    with monkeypatch.context() as m:
        m.setattr(build, "note_writer", full_after_five)
        m.setattr(splitfile, "JOURNAL_SECONDS", 0.0)  # a journal after every batch
        with pytest.raises(BuildError, match=r"train\.h5: cannot be written \(No space left on "
                                             r"device\); .* kept in train\.h5\.partial: make "
                                             r"room and run the same build again to resume"):
            build_store(tone_root, out, jobs=1, batch_size=2, progress=False, splits=["train"])
    assert not (out / "train.h5").exists() and (out / "train.h5.partial").exists()
    report = build_store(tone_root, out, jobs=1, batch_size=2, progress=False,
                         splits=["train"])[0]
    assert report.status == "resumed" and report.resumed_at == 4  # the last full batch
    build_store(tone_root, tmp_path / "clean", jobs=1, progress=False, splits=["train"])
    with h5py.File(out / "train.h5") as a, h5py.File(tmp_path / "clean" / "train.h5") as b:
        np.testing.assert_array_equal(a["spectra"][:], b["spectra"][:])
        np.testing.assert_array_equal(a["spectra"].attrs["std"], b["spectra"].attrs["std"])



@pytest.mark.parametrize("text, what", [("{\"fingerprint\": ", "not valid json (Expecting "),
                                        ("[1, 2]", "not a json object"),
                                        ("\udcff", "not UTF-8 text (invalid start byte")])
def test_an_unreadable_journal_is_reported_before_the_split_starts_again(
        tone_root, tmp_path, caplog, text, what):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.h5.partial").write_bytes(b"left by an earlier build")
    journal = out / "train.h5.journal"
    journal.write_text(text, encoding="utf-8", errors="surrogateescape")
    with caplog.at_level("WARNING", logger="featurestore.build"):
        report = build_store(tone_root, out, jobs=1, progress=False, splits=["train"])[0]
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == "WARNING" and r.name == "featurestore.resume"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{journal}: unreadable build journal: {what}")
    assert warnings[0].endswith("starting train again")
    assert report.status == "built" and not journal.exists()



def test_a_journal_missing_a_field_or_with_a_wrong_one_says_which(tmp_path):
    from featurestore.splitfile import JournalError, Progress
    journal = tmp_path / "train.h5.journal"
    Progress("abc", position=4, n_written=3, skipped=[(1, "silent")]).save(journal)
    assert Progress.load(journal, "abc").skipped == [(1, "silent")]
    assert Progress.load(journal, "another") is None
    assert Progress.load(tmp_path / "none.journal", "abc") is None
    data = json.loads(journal.read_text())
    journal.write_text(json.dumps({k: v for k, v in data.items() if k != "n_written"}))
    with pytest.raises(JournalError, match="no 'n_written' in it"):
        Progress.load(journal, "abc")
    journal.write_text(json.dumps(dict(data, position=[4])))
    with pytest.raises(JournalError, match="a field of the wrong type"):
        Progress.load(journal, "abc")

def test_a_journal_of_other_inputs_starts_the_split_again_without_a_warning(
        tone_root, tmp_path, caplog):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.h5.partial").write_bytes(b"left by an earlier build")
    (out / "train.h5.journal").write_text(json.dumps({"fingerprint": "another build"}))
    with caplog.at_level("WARNING", logger="featurestore.build"):
        report = build_store(tone_root, out, jobs=1, progress=False, splits=["train"])[0]
    assert report.status == "built" and not [r for r in caplog.records
                                             if r.name != "featurestore.finished"]

SLOW_BUILD = """
import sys, time
import featurestore.workers as w
extract = w.extract
def slow(*args):  # 120 notes take ~6 s, so the kill lands between two journal saves (1 s)
    time.sleep(0.2)
    return extract(*args)
w.extract = slow
from featurestore.build import build_store
build_store(sys.argv[1], sys.argv[2], jobs=2, batch_size=2, progress=False)
"""


def test_a_kept_split_beside_a_stopped_rebuild_of_it_names_that_rebuild(tone_root, tmp_path,
                                                                          caplog):
    out = tmp_path / "store"
    build_store(tone_root, out, jobs=1, progress=False)
    shutil.copyfile(out / "test.h5", out / "test.h5.partial")  # as a killed --overwrite leaves
    reports = build_store(tone_root, out, jobs=1, progress=False)
    assert {r.status for r in reports} == {"kept"} and (out / "test.h5.partial").exists()
    assert f"{out / 'test.h5'}.partial: left by a build --overwrite or --add of it that has " \
           f"not finished, and kept as it is: run that build again to resume it" in caplog.text


def test_resume_after_kill_gives_the_same_store(tmp_path):
    root = make_tone_root(tmp_path / "root", n_train=120, n_valid=0, n_test=0)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, str(root), str(out)],
                            cwd=REPO, start_new_session=True)
    journal = out / "train.h5.journal"
    kill_at_journal(proc, journal, 20)
    assert not (out / "train.h5").exists()  # never visible half-written
    assert (out / "train.h5.partial").exists()
    position = json.loads(journal.read_text())["position"]
    assert 20 <= position < 120
    report = build_store(root, out, jobs=2, progress=False)[0]
    assert report.status == "resumed" and report.resumed_at == position
    assert not (out / "train.h5.partial").exists() and not journal.exists()
    assert not list(out.glob("train.h5.ring-*"))  # the killed build's ring is gone too
    build_store(root, tmp_path / "clean", jobs=1, progress=False)
    with h5py.File(out / "train.h5") as a, h5py.File(tmp_path / "clean" / "train.h5") as b:
        for key in ("spectra", "labels", "names", "pitch", "skipped"):
            np.testing.assert_array_equal(a[key][:], b[key][:])
        for key in ("mean", "std", "stats_count"):
            np.testing.assert_array_equal(a["spectra"].attrs[key], b["spectra"].attrs[key])


@pytest.mark.parametrize("moment", ["inside finalize", "after finalize",
                                    "after giving back room"])
def test_a_kill_once_every_note_is_done_finishes_the_file_without_redoing_a_note(
        tmp_path, monkeypatch, moment):
    """Interrupted once the file is finished (closed after finalize trimmed /spectra to the
    notes kept, or copied without the room of the skipped ones) but not renamed, a build's
    rerun finishes it from its journal: no note is extracted again, nor the file copied twice.
    Interrupted inside finalize, before the file is closed, the split starts again."""
    from featurestore import build, splitfile, workers
    root = make_tone_root(tmp_path / "root", n_train=12, n_valid=0, n_test=0)
    for wav in sorted((root / "train" / "audio").glob("*.wav"))[:5]:
        write_note(root / "train", wav.stem, np.zeros(SR, np.float32))  # skipped: silent
    monkeypatch.setattr(splitfile, "SPARE_BYTES", 0)  # the room of 5 skipped notes is given back
    finalize, give_back_room = build.finalize, build.give_back_room

    def interrupted_finalize(*args, **kwargs):
        finalize(*args, **kwargs)
        raise KeyboardInterrupt

    def interrupted_giving_back(path):
        if moment == "after giving back room":
            assert give_back_room(path)
        raise KeyboardInterrupt
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        if moment == "inside finalize":
            m.setattr(build, "finalize", interrupted_finalize)
        else:
            m.setattr(build, "give_back_room", interrupted_giving_back)
        with pytest.raises(KeyboardInterrupt):
            build_store(root, out, jobs=1, progress=False)
    assert not (out / "train.h5").exists() and (out / "train.h5.partial").exists()
    extracted, copies = [], []
    extract, copy = workers.extract, splitfile._copy_without_room
    monkeypatch.setattr(workers, "extract", lambda *args: extracted.append(args) or
                        extract(*args))
    monkeypatch.setattr(splitfile, "_copy_without_room", lambda *args: copies.append(args) or
                        copy(*args))
    report = build_store(root, out, jobs=1, progress=False)[0]
    assert (report.n_examples, report.n_skipped) == (7, 5)
    assert not (out / "train.h5.journal").exists()
    if moment == "inside finalize":
        assert report.status == "built" and extracted and len(copies) == 1
    else:
        assert (report.status, report.resumed_at, extracted) == ("resumed", 12, [])
        assert len(copies) == (moment == "after finalize")
    build_store(root, tmp_path / "clean", jobs=1, progress=False)
    assert everything_in(out / "train.h5") == everything_in(tmp_path / "clean" / "train.h5")


def test_workers_waiting_for_ring_slots_give_the_same_store(tone_root, tmp_path, monkeypatch):
    import featurestore.workers
    monkeypatch.setattr(featurestore.workers, "RING_SLOTS_PER_JOB", 1)  # workers often wait
    build_store(tone_root, tmp_path / "ring", jobs=2, backend="loky", batch_size=1,
                progress=False, splits=["train"])
    build_store(tone_root, tmp_path / "threads", jobs=2, backend="threading", batch_size=3,
                progress=False, splits=["train"])
    assert not list((tmp_path / "ring").glob("*.ring-*"))
    with h5py.File(tmp_path / "ring" / "train.h5") as a, \
            h5py.File(tmp_path / "threads" / "train.h5") as b:
        np.testing.assert_array_equal(a["spectra"][:], b["spectra"][:])
        np.testing.assert_array_equal(a["spectra"].attrs["std"], b["spectra"].attrs["std"])


def test_features_waiting_for_a_slow_disk_stay_within_the_ring(tone_root, tmp_path,
                                                              monkeypatch):
    """A writer slower than its threads (a disk that cannot keep up) holds at most the ring's
    batches of features: a worker waits for a free slot instead of piling up results."""
    import featurestore.build
    import featurestore.workers
    monkeypatch.setattr(featurestore.workers, "RING_SLOTS_PER_JOB", 1)  # a ring of 2 batches
    done, ahead = [], []
    extract, note_writer = featurestore.workers.extract, featurestore.build.note_writer

    def counted(*args):
        result = extract(*args)
        done.append(1)
        return result

    def slow_writer(spectra):
        write = note_writer(spectra)

        def write_note(i, row):
            time.sleep(0.02)
            ahead.append(len(done) - i)  # batches of one note extracted but not yet written
            write(i, row)
        return write_note
    monkeypatch.setattr(featurestore.workers, "extract", counted)
    monkeypatch.setattr(featurestore.build, "note_writer", slow_writer)
    build_store(tone_root, tmp_path / "slow", jobs=2, backend="threading", batch_size=1,
                progress=False, splits=["train"])
    assert len(ahead) == 22 and max(ahead) <= 2
    build_store(tone_root, tmp_path / "fast", jobs=1, progress=False, splits=["train"])
    with h5py.File(tmp_path / "slow" / "train.h5") as a, \
            h5py.File(tmp_path / "fast" / "train.h5") as b:
        np.testing.assert_array_equal(a["spectra"][:], b["spectra"][:])


def test_in_order_holds_at_most_its_calls_ahead_of_a_slow_consumer():
    """What dask workers return waits in order, and no more than ``ahead`` calls are
    submitted before their results are taken."""
    from concurrent.futures import ThreadPoolExecutor

    from joblib import delayed

    from featurestore.workers import in_order
    submitted, taken, ahead = [], [], []

    def submit(function, *args, **kwargs):
        submitted.append(args[0])
        return executor.submit(function, *args, **kwargs)
    with ThreadPoolExecutor(4) as executor:
        for result in in_order(submit, (delayed(pow)(k, 2) for k in range(40)), ahead=3):
            ahead.append(len(submitted) - len(taken))
            taken.append(result)
            time.sleep(0.002)  # a writer slower than its workers
    assert taken == [k * k for k in range(40)] and max(ahead) == 3


def test_auto_backend_is_threads_for_few_jobs_and_processes_beyond():
    assert resolve_backend("auto", 1) == resolve_backend("auto", 2) == "threading"
    assert resolve_backend("auto", 3) == "loky"
    assert resolve_backend("dask", 1) == "dask" and resolve_backend("loky", 2) == "loky"
    with pytest.raises(BuildError, match="backend must be one of auto, loky, dask, threading"):
        resolve_backend("mpi", 2)


@pytest.mark.full  # a dask cluster
def test_dask_backend_on_a_local_cluster(tone_root, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        build_store(tone_root, tmp_path / "dask", backend="dask", batch_size=4,
                    progress=False, splits=["train"])
    build_store(tone_root, tmp_path / "loky", jobs=2, backend="loky", progress=False,
                splits=["train"])
    with h5py.File(tmp_path / "dask" / "train.h5") as a, \
            h5py.File(tmp_path / "loky" / "train.h5") as b:
        np.testing.assert_array_equal(a["spectra"][:], b["spectra"][:])
        np.testing.assert_allclose(a["spectra"].attrs["std"], b["spectra"].attrs["std"],
                                   rtol=1e-12)


def test_read_split_reports_problems(tmp_path):
    split = tmp_path / "train"
    split.mkdir()
    (split / "examples.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a json object"):
        read_split(split)
    (split / "examples.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid json"):
        read_split(split)


def test_open_split_errors(tone_store, tmp_path):
    with pytest.raises(StoreError, match="no 'nosuch' split"):
        open_split(tone_store, "nosuch")
    (tmp_path / "train.h5").write_bytes(b"garbage")
    with pytest.raises(StoreError, match="not a readable HDF5 file"):
        open_split(tmp_path, "train")


def test_ring_slots_wait_for_the_writer(tmp_path):
    import dataclasses

    from featurestore.workers import Ring
    ring = Ring.create(tmp_path / "ring", slots=2, batch_size=1, shape=(2, 3))
    ring.slot_for(1)[0] = 7  # batches 0 and 1 have free slots
    consumed, slots = ring.open()
    assert (slots[1] == 7).all() and (slots[0] == 0).all() and consumed[0] == 0
    with pytest.raises(BuildError, match="batch 2 waited"):
        ring.slot_for(2, timeout=0.05)  # slot 0 is busy until the writer consumed batch 0
    consumed[0] = 1
    assert ring.slot_for(2).shape == (1, 2, 3)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    orphan = dataclasses.replace(ring, owner=int(gone.stdout))
    with pytest.raises(BuildError, match="writer .* is gone"):
        orphan.slot_for(3)
    with Ring.in_memory(slots=2, batch_size=1, shape=(2, 3)) as ring:  # the threads' ring
        ring.slot_for(1)[0] = 7
        assert (ring.open()[1][1] == 7).all()
    with pytest.raises(BuildError, match="writer stopped before batch 2"):
        ring.slot_for(2)  # at once, not after the timeout: the writer has left its ring


def test_broken_link_is_skipped_and_a_failed_finish_is_redone(tmp_path, monkeypatch):
    split = tmp_path / "root" / "train"
    examples = make_tone_split(split, 3, seed=0)
    os.symlink(tmp_path / "gone.wav", split / "audio" / "dangling.wav")
    examples["dangling"] = example("dangling", "guitar")
    (split / "examples.json").write_text(json.dumps({k: e.to_json() for k, e in examples.items()}))
    import featurestore.splitfile as splitfile
    digest = splitfile.inputs_digest

    def fails(items):  # late in finalize: its datasets are written, the attrs not yet
        raise OSError("disk full")
    monkeypatch.setattr(splitfile, "inputs_digest", fails)
    with pytest.raises(BuildError, match=r"train\.h5: cannot be written \(disk full\); .*resume"):
        build_store(tmp_path / "root", tmp_path / "s", jobs=1, progress=False)
    monkeypatch.setattr(splitfile, "inputs_digest", digest)
    with h5py.File(tmp_path / "s" / "train.h5.partial") as f:  # reused by the next run
        assert "labels" in f and len(f["spectra"]) == 4  # 4 rows until the finish succeeds
    report = build_store(tmp_path / "root", tmp_path / "s", jobs=1, progress=False)[0]
    assert report.n_examples == 3 and not (tmp_path / "s" / "train.h5.partial").exists()
    with h5py.File(tmp_path / "s" / "train.h5") as f:
        assert len(f["labels"]) == 3
        assert dict(f["skipped"].asstr()[:]) == {
            "dangling": f"broken symbolic link (to {tmp_path / 'gone.wav'})"}


def test_a_link_or_pipe_where_a_build_writes_is_removed_never_written_through(tmp_path, caplog):
    make_tone_split(tmp_path / "root" / "train", 3, seed=0)
    out = tmp_path / "s"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / "train.h5.partial").symlink_to(victim)  # no build leaves one
    (out / ".train.h5.journal.partial").symlink_to(victim)  # the journal's temporary name
    build_store(tmp_path / "root", out, jobs=1, progress=False)
    assert victim.read_text() == "precious"
    assert (out / "train.h5").is_file() and not (out / "train.h5").is_symlink()
    assert "train.h5.partial: a link or special file where the build writes train; " \
           "removed" in caplog.text
    os.mkfifo(out / "train.h5.partial")  # opened, it would wait for a writer for good
    build_store(tmp_path / "root", out, jobs=1, progress=False, overwrite=True)
    assert not (out / "train.h5.partial").exists() and victim.read_text() == "precious"
    (out / "train.h5.partial").mkdir()  # someone's folder: left, and said so
    caplog.clear()
    with pytest.raises(BuildError, match=r"train.h5.partial: a folder where the build writes "
                                         r"train; move it away"):
        build_store(tmp_path / "root", out, jobs=1, progress=False, overwrite=True)
    assert (out / "train.h5.partial").is_dir() and "removed" not in caplog.text


def test_a_second_build_of_the_same_store_is_refused_while_one_runs(tone_root, tmp_path):
    import fcntl
    out = tmp_path / "s"
    out.mkdir()
    held = os.open(out, os.O_RDONLY)  # the store folder, locked as a running build locks it
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BuildError, match="another build is writing this store"):
            build_store(tone_root, out, jobs=1, progress=False)
    finally:
        os.close(held)
    assert build_store(tone_root, out, jobs=1, progress=False, splits=["test"])[0].n_examples
    assert sorted(p.name for p in out.iterdir()) == ["test.h5"]  # no lock file left behind


def test_a_build_refused_while_another_runs_leaves_the_other_s_new_folder(tone_root, tmp_path,
                                                                          monkeypatch):
    import fcntl
    import featurestore.build
    out, held, real = tmp_path / "s", [], featurestore.build.check_writable

    def made_then_locked(path):  # another build takes the folder this one has just made
        made = real(path)
        held.append(os.open(path, os.O_RDONLY))
        fcntl.flock(held[0], fcntl.LOCK_EX | fcntl.LOCK_NB)
        return made
    monkeypatch.setattr(featurestore.build, "check_writable", made_then_locked)
    try:
        with pytest.raises(BuildError, match="another build is writing this store"):
            build_store(tone_root, out, jobs=1, progress=False)
        assert out.is_dir()  # the other build's, empty while it starts: not removed
    finally:
        os.close(held[0])


def test_a_file_that_is_not_a_split_is_not_kept_silently(tone_root, tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "test.h5").write_text("my notes")
    with pytest.raises(BuildError, match="test.h5: exists and is not a timbremap split file"):
        build_store(tone_root, tmp_path / "s", jobs=1, progress=False, splits=["test"])


def test_a_progress_bar_is_redrawn_where_watched_and_once_a_minute_into_a_log(monkeypatch):
    import io
    from featurestore.progressbar import LOGGED_EVERY, progress_bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    for stream, every in ((Terminal(), 0.1), (io.StringIO(), LOGGED_EVERY)):
        monkeypatch.setattr(sys, "stderr", stream)
        with progress_bar(total=3, enabled=True, desc="train", unit="note") as bar:
            bar.update(3)
        assert bar.mininterval == every and "train: 100%" in stream.getvalue()
        assert bar.maxinterval == (10 if every == 0.1 else every)  # tqdm's own redraws too
    monkeypatch.setitem(sys.modules, "ipykernel", sys)  # a notebook's stderr: no terminal
    with progress_bar(total=3, enabled=True, desc="train") as bar:
        assert bar.mininterval == 0.1
    shown = stream.getvalue()
    with progress_bar(range(2), enabled=False, desc="train") as bar:
        assert list(bar) == [0, 1]
    assert stream.getvalue() == shown
