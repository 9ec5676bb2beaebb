"""``build --add``: a store grows by the notes it does not hold, the held rows untouched, the
statistics merged as a full rebuild computes them, the label set appended to, and a kill at
any moment leaves the store as it was or as it will be."""
from __future__ import annotations

import dataclasses
import errno
import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

from featurestore import SplitDataset, commit, schema
from featurestore.build import build_store
from featurestore.errors import BuildError, StoreError
from featurestore.commit import COMMIT
from featurestore.layouts import InputOptions
from featurestore.store import content_digests, open_split
from tests.helpers import SR, kill_at_journal, make_tone_root, tone

REPO = Path(__file__).resolve().parents[1]


def _wav(path, k, seconds=1.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(10 + 15 * k, seconds=seconds), SR, subtype="PCM_16")


def _classes(root, labels, per_label, first=0):
    for k, label in enumerate(labels):
        for i in range(first, first + per_label):
            split = "valid" if i % 4 == 3 else "train"
            _wav(root / split / label / f"{label}{i:03d}.wav", k + len(label), 0.5 + (i % 5))


def _rows(path):
    with h5py.File(path, "r") as f:
        names = f[schema.NAMES].asstr()[:].tolist()
        labels = schema.read_label_names(f)
        return {name: (f[schema.SPECTRA][i], labels[f[schema.LABELS][i]])
                for i, name in enumerate(names)}


def _renamed(root: Path, prefix: str) -> Path:
    """NSynth notes of ``root`` under names no other test folder has."""
    for split in ("train", "valid", "test"):
        if (root / split).is_dir():
            for wav in (root / split / "audio").iterdir():
                wav.rename(wav.with_name(prefix + wav.name))
            data = json.loads((root / split / "examples.json").read_text())
            (root / split / "examples.json").write_text(json.dumps(
                {prefix + k: dict(v, note_str=prefix + k) for k, v in data.items()}))
    return root


def _results(path):
    with h5py.File(path, "r") as f:
        return {name: (f[name][()], dict(f[name].attrs)) for name in schema.analysis_results(f)}


def test_add_appends_new_notes_merges_statistics_and_grows_the_label_set(tmp_path):
    root = tmp_path / "set"
    _classes(root, ("bell", "drum"), 6)
    store = tmp_path / "store"
    build_store(root, store, jobs=1, progress=False)
    with h5py.File(store / "train.h5", "r") as f:
        before = {name: f[name][:] for name in (schema.SPECTRA, schema.LABELS)}
        n_before = len(before[schema.SPECTRA])
    _classes(root, ("bell", "drum"), 3, first=6)   # more of the known labels
    _classes(root, ("cymbal",), 4)                  # and a new one
    reports = build_store(root, store, jobs=1, progress=False, add=True)
    assert {r.split: r.status for r in reports} == {"train": "added", "valid": "added"}
    assert reports[0].n_examples == 2 + 2 + 3  # the train rows of the new files (i % 4 != 3)
    with h5py.File(store / "train.h5", "r") as f:
        assert schema.read_label_names(f) == ("bell", "drum", "cymbal")  # appended, old kept
        np.testing.assert_array_equal(f[schema.SPECTRA][:n_before], before[schema.SPECTRA])
        np.testing.assert_array_equal(f[schema.LABELS][:n_before], before[schema.LABELS])
        grown = f[schema.SPECTRA].attrs["mean"], f[schema.SPECTRA].attrs["std"]
        count = f[schema.SPECTRA].attrs["stats_count"]
    with h5py.File(store / "valid.h5", "r") as f:
        assert schema.read_label_names(f) == ("bell", "drum", "cymbal")
        np.testing.assert_array_equal(f[schema.SPECTRA].attrs["mean"], grown[0])
    # a full rebuild of the same notes: the same rows and, within float64 rounding, statistics
    build_store(root, tmp_path / "full", jobs=1, progress=False)
    with h5py.File(tmp_path / "full" / "train.h5", "r") as f:
        assert f[schema.SPECTRA].attrs["stats_count"] == count
        np.testing.assert_allclose(grown[0], f[schema.SPECTRA].attrs["mean"], rtol=1e-12,
                                   atol=1e-12)
        np.testing.assert_allclose(grown[1], f[schema.SPECTRA].attrs["std"], rtol=1e-12,
                                   atol=1e-12)
    full, added = _rows(tmp_path / "full" / "train.h5"), _rows(store / "train.h5")
    assert sorted(full) == sorted(added)
    for name, (row, label) in full.items():
        np.testing.assert_array_equal(row, added[name][0])
        assert label == added[name][1]
    # nothing new: nothing is rewritten
    mtime = (store / "train.h5").stat().st_mtime_ns
    reports = build_store(root, store, jobs=1, progress=False, add=True)
    assert {r.status for r in reports} == {"kept"}
    assert (store / "train.h5").stat().st_mtime_ns == mtime


def test_add_to_an_nsynth_store_from_another_folder(tmp_path):
    first = make_tone_root(tmp_path / "a", 11, 0, 0)
    build_store(first, tmp_path / "store", jobs=1, progress=False)
    second = _renamed(make_tone_root(tmp_path / "b", 11, 0, 6), "b_")  # other names than a's
    reports = build_store([first, second], tmp_path / "store", jobs=1, progress=False, add=True)
    assert [(r.split, r.status) for r in reports] == [("train", "added"), ("test", "added")]
    with h5py.File(tmp_path / "store" / "train.h5", "r") as f:
        assert f[schema.SPECTRA].shape[0] == 22
        assert schema.read_label_names(f)[0] == "bass"
        roots = f[schema.SOURCE_FOLDER].attrs[schema.LIST_NAMES].tolist()
        assert [Path(r.decode() if isinstance(r, bytes) else r) for r in roots] == \
            [first.resolve(), second.resolve()]
        paths = schema.read_audio_paths(f)
        assert all(p.is_file() for p in paths)


def test_a_split_that_gains_no_notes_keeps_its_analysis_results_and_content_digest(tmp_path):
    first = make_tone_root(tmp_path / "a", 11, 4, 4)
    store = tmp_path / "store"
    build_store(first, store, jobs=1, progress=False)
    for split in ("train", "valid", "test"):  # what embed and tsne write
        with h5py.File(store / f"{split}.h5", "r+") as f:
            n = len(f[schema.NAMES])
            f[schema.EMBEDDINGS] = np.arange(n * 3, dtype=np.float32).reshape(-1, 3)
            f[schema.PROBABILITIES] = np.full((n, 11), 1 / 11, np.float32)
            f[schema.TSNE] = np.ones((n, 2), np.float32)
            f[schema.TSNE].attrs["perplexity"] = 2.0
            f[schema.TSNE_PCA_COMPONENTS] = np.ones((16, 2 ** 16), np.float32)  # 4 MiB
    with h5py.File(store / "valid.h5", "r+") as f:  # as an earlier version computed it
        f.attrs[schema.CONTENT_DIGEST] = "an earlier version's digest"
    digests, results = content_digests(store), {s: _results(store / f"{s}.h5")
                                                for s in ("valid", "test")}
    second = _renamed(make_tone_root(tmp_path / "b", 6, 0, 0), "b_")  # more train notes only
    reports = build_store([first, second], store, jobs=1, progress=False, add=True)
    assert [r.status for r in reports] == ["added", "updated", "updated"]  # train's new stats
    grown = content_digests(store)
    assert grown["train"] != digests["train"]
    assert {s: grown[s] for s in ("valid", "test")} == {s: digests[s] for s in ("valid", "test")}
    with h5py.File(store / "train.h5", "r") as f:
        assert schema.analysis_results(f) == []  # they describe the old notes only
        mean = f[schema.SPECTRA].attrs["mean"]
    build_store([first, second], tmp_path / "full", jobs=1, progress=False)
    full = (tmp_path / "full" / "train.h5").stat().st_size
    assert (store / "train.h5").stat().st_size < full + 2 ** 16  # no room left by what went
    for split in ("valid", "test"):  # their notes did not change
        kept = _results(store / f"{split}.h5")
        assert kept.keys() == results[split].keys()
        for name, (data, attrs) in kept.items():
            np.testing.assert_array_equal(data, results[split][name][0])
            assert attrs == results[split][name][1]
    with h5py.File(store / "valid.h5", "r") as f:
        np.testing.assert_array_equal(f[schema.SPECTRA].attrs["mean"], mean)  # train's, grown

    # a new valid note that cannot be used: valid gains none, and keeps what it had
    third = _renamed(make_tone_root(tmp_path / "c", 0, 1, 0), "c_")
    next((third / "valid" / "audio").iterdir()).write_bytes(b"RIFF, but no wav")
    reports = build_store([first, second, third], store, jobs=1, progress=False, add=True)
    assert [(r.split, r.status, r.n_examples, r.n_skipped) for r in reports
            if r.split == "valid"] == [("valid", "updated", 0, 1)]
    assert content_digests(store)["valid"] == digests["valid"]
    assert _results(store / "valid.h5").keys() == results["valid"].keys()


def test_the_room_of_results_a_growing_split_loses_is_given_back(tmp_path, monkeypatch):
    import featurestore.splitfile as splitfile
    first = make_tone_root(tmp_path / "a", 6, 0, 6)
    store = tmp_path / "store"
    build_store(first, store, jobs=1, progress=False)
    from analysis.tsne import tsne_split
    tsne_split(store, "test", source="spectra", perplexity=1.5)  # keeps the spectra's PCA
    with h5py.File(store / "test.h5", "r") as f:
        assert f[schema.TSNE_PCA_COMPONENTS].nbytes > (store / "test.h5").stat().st_size / 4
    monkeypatch.setattr(splitfile, "SPARE_BYTES", 0)
    second = _renamed(make_tone_root(tmp_path / "b", 0, 0, 2), "b_")
    build_store([first, second], store, jobs=1, progress=False, add=True)
    build_store([first, second], tmp_path / "full", jobs=1, progress=False)
    full = (tmp_path / "full" / "test.h5").stat().st_size
    assert (store / "test.h5").stat().st_size < full + 2 ** 16  # not the PCA's room
    grown, rebuilt = _rows(store / "test.h5"), _rows(tmp_path / "full" / "test.h5")
    assert sorted(grown) == sorted(rebuilt)
    for name, (row, label) in rebuilt.items():
        np.testing.assert_array_equal(grown[name][0], row)


def test_a_split_that_gains_no_notes_but_new_labels_has_a_new_content_digest(tmp_path):
    root = tmp_path / "set"
    _classes(root, ("bell", "drum"), 4)
    store = tmp_path / "store"
    build_store(root, store, jobs=1, progress=False)
    with h5py.File(store / "valid.h5", "r+") as f:
        f[schema.EMBEDDINGS] = np.ones((len(f[schema.NAMES]), 3), np.float32)
    before = content_digests(store)["valid"]
    _classes(root, ("cymbal",), 3)  # train notes of a new label, none in valid
    build_store(root, store, jobs=1, progress=False, add=True)
    with h5py.File(store / "valid.h5", "r") as f:
        assert schema.read_label_names(f) == ("bell", "drum", "cymbal")
        assert f[schema.EMBEDDINGS].shape == (2, 3)  # its notes, as they were
    assert content_digests(store)["valid"] != before  # its label set grew: evaluate says so


def test_a_split_built_before_splits_recorded_their_content_is_warned_of(tmp_path, caplog):
    root = tmp_path / "set"
    _classes(root, ("bell", "drum"), 4)
    store = tmp_path / "store"
    build_store(root, store, jobs=1, progress=False)
    caplog.clear()  # the build's warnings (train holds few notes of each label)
    assert set(content_digests(store)) == {"train", "valid"} and not caplog.records
    for split in ("train", "valid"):
        with h5py.File(store / f"{split}.h5", "r+") as f:  # as an older version built it
            del f.attrs[schema.CONTENT_DIGEST]
    assert content_digests(store) == {}
    assert caplog.messages == [
        f"{store}: its train and valid splits were built before splits recorded their content, "
        f"so a model cannot tell when its notes change (evaluate's warning, train --resume's "
        f"refusal): build it again with --overwrite to record it"]


def test_add_refuses_what_does_not_fit(tmp_path):
    root = tmp_path / "set"
    _classes(root, ("bell", "drum"), 4)
    with pytest.raises(BuildError, match=r"no train split \(train.h5\) to add to; build the store "
                       r"without --add \(a build keeps the splits it holds\)"):
        build_store(root, tmp_path / "none", jobs=1, progress=False, add=True)
    build_store(root, tmp_path / "store", jobs=1, progress=False)
    with pytest.raises(BuildError, match="read with no --windows; .*now --windows 2\\)"):
        build_store(root, tmp_path / "store", inputs=InputOptions(windows=2.0), jobs=1,
                    progress=False, add=True)
    from featurestore.params import FeatureParams
    with pytest.raises(BuildError, match="other feature parameters"):
        build_store(root, tmp_path / "store", FeatureParams(n_fft=512), jobs=1,
                    progress=False, add=True)
    with pytest.raises(BuildError, match="give one of them"):
        build_store(root, tmp_path / "store", jobs=1, progress=False, add=True,
                    overwrite=True)


def test_add_takes_the_store_s_features_unless_given(tmp_path, caplog):
    from analysis.cli import main
    from featurestore.params import FeatureParams
    root = tmp_path / "set"
    _classes(root, ("bell", "drum"), 4)
    store = tmp_path / "store"
    assert main(["build", str(root), str(store), "--features", "mel", "--n-mels", "40",
                 "--duration", "1", "-q"]) == 0
    _classes(root, ("bell",), 2, first=4)
    assert main(["build", str(root), str(store), "--add", "-q"]) == 0  # not refused as "other"
    with open_split(store, "train") as f:
        assert schema.read_params(f) == FeatureParams(kind="mel", n_mels=40, duration=1.0)
        assert len(f[schema.NAMES]) > 6
    assert main(["build", str(root), str(store), "--add", "--n-fft", "512", "-q"]) == 1
    assert "built with other feature parameters" in caplog.text  # one given: still checked


SLOW_ADD = """
import sys, time
import featurestore.workers as w
import featurestore.commit as c
extract = w.extract
def slow(*args):  # slow enough for a journal (saved each second) to show notes done
    time.sleep(0.4)
    return extract(*args)
w.extract = slow
if sys.argv[3] == "at-commit":  # stop between writing the commit file and its renames
    import json, os
    from pathlib import Path
    def commit(out, splits):
        c.atomic_write_text(Path(out) / c.COMMIT, json.dumps({"splits": list(splits)}))
        os.kill(os.getpid(), 9)
    c.commit = commit
from featurestore.build import build_store
build_store(sys.argv[1], sys.argv[2], jobs=2, batch_size=2, progress=False, add=True)
"""


def _datasets(store):
    found = {}
    for path in sorted(Path(store).glob("*.h5")):
        with h5py.File(path, "r") as f:
            for name, ds in schema.datasets(f):
                found[(path.name, name)] = ds[()]
            found[(path.name, "stats")] = tuple(f[schema.SPECTRA].attrs[k].tobytes()
                                                for k in ("mean", "std"))
    return found


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("moment", ["extracting", "at-commit"])
def test_a_killed_add_leaves_the_store_as_it_was_or_as_it_will_be(tmp_path, moment):
    root = tmp_path / "set"
    _classes(root, ("bell", "drum"), 4)
    store = tmp_path / "store"
    build_store(root, store, jobs=1, progress=False)
    before = _datasets(store)
    _classes(root, ("bell", "drum", "gong"), 12, first=4)
    expected = tmp_path / "expected"
    shutil.copytree(store, expected)
    build_store(root, expected, jobs=1, progress=False, add=True)
    after = _datasets(expected)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_ADD, str(root), str(store), moment],
                            cwd=REPO, start_new_session=True)
    if moment == "extracting":
        kill_at_journal(proc, store / "train.h5.journal", 4)
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    if moment == "extracting":
        assert _same(_datasets(store), before)  # as it was
        assert not (store / COMMIT).exists()
        build_store(root, store, jobs=1, progress=False, add=True)  # resumes
    else:
        assert (store / COMMIT).exists()  # committed: the next command finishes it
        read_only = OSError(errno.EROFS, "Read-only file system")
        with pytest.MonkeyPatch.context() as m:  # a copy of the store on a read-only disk
            m.setattr(commit.os, "replace", lambda *a: (_ for _ in ()).throw(read_only))
            with pytest.raises(StoreError, match=r"store: a build --add was stopped after it "
                                                 r"committed .+ \(\.add-commit\.json\), and its "
                                                 r"renames cannot be finished here \(Read-only "
                                                 r"file system\): run any timbremap command "):
                SplitDataset(store, "valid")  # a reader, of a split the add did not grow too
        assert (store / COMMIT).exists()
        with open_split(store, "train"):
            pass
        assert not (store / COMMIT).exists()
    assert _same(_datasets(store), after)  # as it will be
    assert not list(store.glob("*.partial")) and not list(store.glob("*.journal"))


def test_a_commit_file_renames_only_the_split_it_names_grown(tmp_path):
    store = tmp_path / "store"
    build_store(make_tone_root(tmp_path / "tones"), store, jobs=1, progress=False)
    test = (store / "test.h5").read_bytes()
    shutil.copyfile(store / "train.h5", store / "test.h5.partial")  # not test's, whatever named
    (store / COMMIT).write_text(json.dumps({"splits": ["test"]}))
    with pytest.raises(BuildError, match=r"test.h5.partial: not the test split grown, which "
                                         r"\.add-commit.json says it is; nothing was renamed"):
        open_split(store, "test")  # a command that only reads had swapped train's notes in
    assert (store / "test.h5").read_bytes() == test


def test_a_plain_build_after_add_keeps_the_grown_label_order(tmp_path):
    root = tmp_path / "set"
    _classes(root, ("drum",), 4)
    _classes(root, ("gong",), 4)
    build_store(root, tmp_path / "store", jobs=1, progress=False)
    _classes(root, ("bell",), 4)  # sorts first, appended last
    build_store(root, tmp_path / "store", jobs=1, progress=False, add=True)
    reports = build_store(root, tmp_path / "store", jobs=1, progress=False)
    assert {r.status for r in reports} == {"kept"}
    with h5py.File(tmp_path / "store" / "valid.h5", "r") as f:
        assert schema.read_label_names(f) == ("drum", "gong", "bell")


def test_add_reads_the_inputs_as_the_store_did_and_refuses_a_name_held_elsewhere(tmp_path):
    root = tmp_path / "set"
    for player in range(8):
        _wav(root / "bell" / f"p{player}_a.wav", 0)
        _wav(root / "drum" / f"p{player}_a.wav", 1)
    options = InputOptions(group_by=r"^(p\d)_", windows=1.5, valid_fraction=0.3)
    build_store(root, tmp_path / "store", inputs=options, jobs=1, progress=False)
    _wav(root / "bell" / "p9_a.wav", 0, seconds=6.0)
    reports = build_store(root, tmp_path / "store", jobs=1, progress=False, add=True)  # its own
    from featurestore.grow import recorded_inputs
    assert recorded_inputs(tmp_path / "store") == dataclasses.replace(options, layout="folders")
    names = {n for p in (tmp_path / "store").glob("*.h5")
             for n in h5py.File(p, "r")[schema.NAMES].asstr()[:]}
    assert {"bell/p9_a.wav@0.000", "bell/p9_a.wav@1.500"} <= names  # cut into windows too
    assert "bell/p9_a.wav@3.000" not in names  # it would add 0.5 s: less than half a hop
    adjusted = {}
    for r in reports:  # the summary counts the rows of every note the split holds, as inspect
        with h5py.File(r.path, "r") as f:
            rows = schema.read_problems(f)[1]
        assert (r.n_adjusted, r.n_skipped) == (len(rows), 0) and rows, r
        adjusted.update(rows)
    assert adjusted["bell/p9_a.wav@1.500"] == "the recording's last 0.500 s left out (after its " \
                                              "last window)"  # ... and listed
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    with pytest.raises(BuildError, match="bell/p0_a.wav@0.000' of .* is in .*set \\(held by "
                                         "the store\\) and in .*copy"):
        build_store(copy, tmp_path / "store", jobs=1, progress=False, add=True)


def test_adds_from_several_folders_keep_each_split_s_folders(tmp_path):
    a, b, c = (tmp_path / name for name in "abc")
    for k, label in enumerate(("bell", "drum")):
        for i in range(3):
            _wav(a / "train" / label / f"a{i}.wav", k)
            _wav(a / "valid" / label / f"a{i}.wav", k)
        _wav(b / "valid" / label / "b.wav", k)  # b adds to valid only
        _wav(c / "train" / label / "c.wav", k)  # c to train only
    store = tmp_path / "store"
    build_store(a, store, jobs=1, progress=False)
    build_store(b, store, jobs=1, progress=False, add=True)
    build_store(c, store, jobs=1, progress=False, add=True)
    for split in ("train", "valid"):
        with h5py.File(store / f"{split}.h5", "r") as f:
            paths = schema.read_audio_paths(f)
            names = f[schema.NAMES].asstr()[:]
        assert all(p.is_file() for p in paths), paths
        assert [p.relative_to(p.parents[2]).as_posix() for p in paths] == \
            [f"{split}/{n}" for n in names]


def test_a_note_skipped_for_its_audio_is_not_tried_again_by_add(tmp_path, caplog):
    root = tmp_path / "set"
    _classes(root, ("bell", "drum"), 4)
    (root / "train" / "bell" / "broken.wav").write_bytes(b"RIFF not audio")
    store = tmp_path / "store"
    build_store(root, store, jobs=1, progress=False)
    mtimes = {p.name: p.stat().st_mtime_ns for p in store.glob("*.h5")}
    reports = build_store(root, store, jobs=1, progress=False, add=True)
    assert {r.status for r in reports} == {"kept"}
    assert (reports[0].n_skipped, reports[0].skipped[0][0]) == (1, "bell/broken.wav")  # as held
    assert {p.name: p.stat().st_mtime_ns for p in store.glob("*.h5")} == mtimes
    assert "train: not tried again, 1 input the store skipped (first: bell/broken.wav: " \
           "cannot decode audio" in caplog.text  # said, not silent
    _classes(root, ("bell",), 1, first=4)  # one new note: a plain build then sees no change
    build_store(root, store, jobs=1, progress=False, add=True)
    with caplog.at_level("WARNING", logger="featurestore.build"):
        reports = build_store(root, store, jobs=1, progress=False)
    assert {r.status for r in reports} == {"kept"}
    assert not [r for r in caplog.records if "changed since it was built" in r.getMessage()]


def test_an_add_whose_new_notes_were_skipped_gives_their_room_back(tmp_path, monkeypatch):
    import featurestore.splitfile as splitfile
    from tests.helpers import everything_in
    root = tmp_path / "set"
    _classes(root, ("bell", "drum"), 6)
    build_store(root, tmp_path / "kept", jobs=1, progress=False)
    shutil.copytree(tmp_path / "kept", tmp_path / "given")
    _classes(root, ("bell",), 2, first=6)
    for i in range(6):  # train rows that will be skipped
        (root / "train" / "drum" / f"empty{i}.wav").write_bytes(b"")
    build_store(root, tmp_path / "kept", jobs=1, progress=False, add=True)
    monkeypatch.setattr(splitfile, "SPARE_BYTES", 0)
    build_store(root, tmp_path / "given", jobs=1, progress=False, add=True)
    kept, given = tmp_path / "kept" / "train.h5", tmp_path / "given" / "train.h5"
    assert kept.stat().st_size > given.stat().st_size
    assert everything_in(given) == everything_in(kept)


def test_add_warns_of_held_notes_the_inputs_now_label_otherwise(tmp_path, caplog):
    for i in range(4):
        _wav(tmp_path / "clips" / f"c{i}.wav", i % 2)
    manifest = tmp_path / "set.csv"
    manifest.write_text("path,label,split\n" + "".join(
        f"clips/c{i}.wav,{'ab'[i % 2]},{('train', 'valid')[i // 3]}\n" for i in range(4)))
    build_store(manifest, tmp_path / "store", jobs=1, progress=False)
    manifest.write_text(manifest.read_text().replace("clips/c1.wav,b", "clips/c1.wav,a"))
    build_store(manifest, tmp_path / "store", jobs=1, progress=False, add=True)
    assert "1 notes of train that the store holds have another label in the inputs now (first: " \
           "clips/c1.wav, held as 'b', now 'a'); the store keeps the labels it holds" in caplog.text
    assert _rows(tmp_path / "store" / "train.h5")["clips/c1.wav"][1] == "b"  # kept


def test_add_warns_of_held_notes_whose_files_changed_since_the_build(tmp_path, caplog):
    import os
    root = tmp_path / "set"
    _classes(root, ("bell", "drum"), 6)
    build_store(root, tmp_path / "store", jobs=1, progress=False)
    before = _rows(tmp_path / "store" / "train.h5")
    _classes(root, ("bell",), 2, first=6)  # new notes, made after the build
    build_store(root, tmp_path / "store", jobs=1, progress=False, add=True)
    assert "modified after" not in caplog.text  # new files are no held ones
    again = root / "train" / "drum" / "drum000.wav"
    _wav(again, 5, seconds=3.0)  # re-recorded
    os.utime(again, (again.stat().st_atime, again.stat().st_mtime + 2))  # past the second
    _classes(root, ("bell",), 1, first=8)
    build_store(root, tmp_path / "store", jobs=1, progress=False, add=True)
    assert f"train: modified after their notes were computed, 1 file (first: {again}; " \
           f"re-recorded, or copied without their times); the store keeps the features it " \
           f"computed from them" in caplog.text
    kept = _rows(tmp_path / "store" / "train.h5")["drum/drum000.wav"][0]
    assert np.array_equal(kept, before["drum/drum000.wav"][0])
    with h5py.File(tmp_path / "store" / "train.h5", "r") as f:  # a run of rows per build
        runs = f.attrs[schema.COMPUTED]
    assert runs.shape == (3, 2) and list(runs[:, 0]) == [0, len(before), len(before) + 1]
    assert list(runs[:, 1]) == sorted(runs[:, 1])
    caplog.clear()  # still warned of at the next --add: its features are still the old ones
    _classes(root, ("bell",), 1, first=9)
    build_store(root, tmp_path / "store", jobs=1, progress=False, add=True)
    assert f"train: modified after their notes were computed, 1 file (first: {again}; " \
        in caplog.text  # and only it: the notes added since were computed after their files


def test_add_of_some_splits_grows_those_alone(tmp_path):
    root, store = tmp_path / "set", tmp_path / "store"
    _classes(root, ("bell", "drum"), 8)
    build_store(root, store, jobs=1, progress=False)
    before = (store / "train.h5").read_bytes()
    _classes(root, ("bell",), 4, first=8)  # new notes in train and valid
    _classes(root, ("gong",), 3, first=8)  # a new label, in train alone
    reports = build_store(root, store, jobs=1, progress=False, add=True, splits=["valid"])
    assert {r.split: r.status for r in reports} == {"train": "kept", "valid": "added"}
    assert (store / "train.h5").read_bytes() == before
    with h5py.File(store / "valid.h5", "r") as f:
        assert "bell/bell011.wav" in f[schema.NAMES].asstr()[:]
        assert schema.read_label_names(f) == ("bell", "drum")  # gong: train's, not added
    reports = build_store(root, store, jobs=1, progress=False, add=True)  # the rest
    assert {r.split: r.status for r in reports} == {"train": "added", "valid": "updated"}


def test_add_warns_of_held_notes_whose_files_are_gone(tmp_path, caplog):
    root, store = tmp_path / "set", tmp_path / "store"
    _classes(root, ("bell", "drum"), 6)
    build_store(root, store, jobs=1, progress=False)
    other = tmp_path / "other"  # a folder the store holds notes of, not given to the --add
    _classes(other, ("bell",), 2, first=20)
    build_store(other, store, jobs=1, progress=False, add=True)
    assert "no longer there" not in caplog.text
    moved = root / "train" / "drum" / "drum000.wav"
    moved.rename(root / "train" / "bell" / "was_drum000.wav")  # relabelled by moving it
    (root / "train" / "bell" / "bell001.wav").unlink()
    build_store(root, store, jobs=1, progress=False, add=True)
    assert f"train: holds the notes of 2 files that are no longer there (first: " \
           f"{root / 'train' / 'bell' / 'bell001.wav'}; deleted or moved); the store keeps " \
           f"their features: build with --overwrite to leave them out" in caplog.text
    assert {"drum/drum000.wav", "bell/was_drum000.wav", "bell/bell020.wav"} <= set(
        _rows(store / "train.h5"))


def test_add_warns_of_manifest_rows_that_name_held_notes_and_cannot_be_used(tmp_path, caplog):
    root, store = tmp_path / "set", tmp_path / "store"
    _classes(root, ("bell", "drum"), 4)
    manifest = root / "m.csv"
    rows = [f"{p.relative_to(root).as_posix()},{p.parent.name},{p.parts[-3]}"
            for p in sorted(root.rglob("*.wav"))]  # split given: train/... and valid/...
    manifest.write_text("path,label,split\n" + "\n".join(rows) + "\n")
    build_store(manifest, store, jobs=1, progress=False)
    assert "cannot be used" not in caplog.text
    first, in_valid = rows[0].split(",")[0], next(r for r in rows if r.endswith(",valid"))
    mistyped = in_valid.replace(",valid", ",vaild")  # a held valid note; the row goes to train
    manifest.write_text(manifest.read_text().replace(in_valid, mistyped)
                        + f"{first},drum,train\n")
    reports = build_store(manifest, store, jobs=1, progress=False, add=True)
    assert [r.status for r in reports] == ["kept", "kept"]
    assert f"train: 2 inputs naming notes the store holds cannot be used (first: {first}: " \
           f"line 10: path given again (first on line 2 with the label 'bell')); the store " \
           f"keeps those notes as they are" in caplog.text
    with h5py.File(store / "train.h5") as f:
        assert schema.SKIPPED not in f or not len(f[schema.SKIPPED])
    caplog.clear()
    (root / first).unlink()  # gone: said once, as gone
    build_store(manifest, store, jobs=1, progress=False, add=True)
    assert caplog.text.count(first) == 1 and "1 file that is no longer there" in caplog.text


def test_add_of_windows_keeps_a_file_skipped_whole_and_counts_a_changed_file_once(tmp_path,
                                                                                   caplog):
    import os
    from featurestore.layouts import InputOptions
    root = tmp_path / "set"
    _classes(root, ("bell", "drum"), 4)
    long = root / "train" / "bell" / "long.wav"
    _wav(long, 0, seconds=9.0)
    (root / "train" / "drum" / "broken.wav").write_bytes(b"RIFF not audio")
    windows = InputOptions(windows=4.0)
    build_store(root, tmp_path / "store", inputs=windows, jobs=1, progress=False)
    before = _rows(tmp_path / "store" / "train.h5")
    _wav(root / "train" / "drum" / "broken.wav", 1, seconds=2.0)  # mended
    _wav(long, 1, seconds=9.0)  # re-recorded: three windows of one file
    os.utime(long, (long.stat().st_atime, long.stat().st_mtime + 2))
    _classes(root, ("bell",), 1, first=4)
    build_store(root, tmp_path / "store", jobs=1, progress=False, add=True)
    after = _rows(tmp_path / "store" / "train.h5")
    assert not [name for name in after if name.startswith("drum/broken.wav")]
    assert len(after) == len(before) + 1  # the new file's one window alone
    assert "train: not tried again, 1 input the store skipped (first: drum/broken.wav: " \
           in caplog.text
    assert f"modified after their notes were computed, 1 file (first: {long};" \
           in caplog.text


def test_add_refuses_a_manifest_s_file_moved_to_another_split(tmp_path):
    for i in range(4):
        _wav(tmp_path / "clips" / f"c{i}.wav", i % 2)
    manifest = tmp_path / "set.csv"
    rows = "".join(f"clips/c{i}.wav,{'ab'[i % 2]},{('train', 'valid')[i // 3]}\n" for i in range(4))
    manifest.write_text("path,label,split\n" + rows)
    build_store(manifest, tmp_path / "store", jobs=1, progress=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "store").glob("*.h5")}
    moved = manifest.read_text().replace("clips/c0.wav,a,train", "clips/c0.wav,a,valid")
    manifest.write_text(moved)
    with pytest.raises(BuildError, match=r"clips/c0.wav is in train and in valid .*: a file is "
                                         r"one note of one split"):
        build_store(manifest, tmp_path / "store", jobs=1, progress=False, add=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "store").glob("*.h5")} == before


def test_add_brings_a_split_whose_every_input_is_a_problem(tmp_path):
    for i in range(6):
        sf.write(tmp_path / f"n{i}.wav", tone(10 + 20 * (i % 2), seconds=1.0, sr=SR), SR)
    rows = "".join(f"n{i}.wav,{'xy'[i % 2]},{'train' if i < 4 else 'valid'}\n" for i in range(6))
    (tmp_path / "set.csv").write_text("path,label,split\n" + rows)
    build_store([tmp_path / "set.csv"], tmp_path / "store", jobs=1, progress=False)
    (tmp_path / "set.csv").write_text("path,label,split\n" + rows + "gone.wav,x,test\n")
    build_store([tmp_path / "set.csv"], tmp_path / "store", jobs=1, progress=False, add=True)
    with h5py.File(tmp_path / "store" / "test.h5", "r") as f:  # had been an AttributeError
        assert f["spectra"].shape[0] == 0
        assert "no such file" in dict(f["skipped"].asstr()[:].tolist())["gone.wav"]
    assert not list((tmp_path / "store").glob("*.partial"))


def test_add_from_a_copy_of_the_notes_names_both_folders_and_what_to_give(tmp_path):
    root = make_tone_root(tmp_path / "notes", n_train=3, n_valid=2, n_test=2)
    build_store(root, tmp_path / "store", jobs=1, progress=False)
    shutil.copytree(root, tmp_path / "copy")  # the notes copied, to add some beside them
    before = {p.name: p.read_bytes() for p in (tmp_path / "store").iterdir()}
    with pytest.raises(BuildError, match=rf"note '[^']+' of train is in {re.escape(str(root))} "
                                         rf"\(held by the store\) and in "
                                         rf"{re.escape(str(tmp_path))}/copy \(\d+ such names\); "
                                         rf".*rename or leave out one of them \(where one is a "
                                         rf"copy of the other, give {re.escape(str(root))} "
                                         rf"itself, or the new files' folders alone\)$"):
        build_store(tmp_path / "copy", tmp_path / "store", jobs=1, progress=False, add=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "store").iterdir()} == before


def test_add_after_the_notes_and_the_store_moved_says_the_folder_moved(tmp_path, caplog):
    root = make_tone_root(tmp_path / "proj" / "notes", n_train=3, n_valid=2, n_test=2)
    build_store(root, tmp_path / "proj" / "store", jobs=1, progress=False)
    (tmp_path / "proj").rename(tmp_path / "moved")
    caplog.clear()
    before = {p.name: p.read_bytes() for p in (tmp_path / "moved" / "store").iterdir()}
    with pytest.raises(BuildError, match=rf"note '[^']+' of train is held by the store from "
                                         rf"{tmp_path}/proj/notes, which is no longer there, "
                                         rf"and is in {tmp_path}/moved/notes \(\d such names\); "
                                         rf".*if that folder moved, build the store anew from "
                                         rf"where it is now \(--overwrite\)"):
        build_store(tmp_path / "moved" / "notes", tmp_path / "moved" / "store", jobs=1,
                    progress=False, add=True)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # the refusal alone
    assert {p.name: p.read_bytes() for p in (tmp_path / "moved" / "store").iterdir()} == before
