"""One store from several NOTES folders (e.g. SoundFont renders and synth renders): their
splits merged, each note's folder recorded, a name two folders share refused."""
import json

import h5py
import numpy as np
import pytest

from analysis.cli import main
from featurestore import schema
from featurestore.build import BuildError, build_store
from featurestore.describe import describe_store
from featurestore.nsynth import write_split
from helpers import example, make_tone_root, make_tone_split, tone, write_note


@pytest.fixture(scope="module")
def two_roots(tmp_path_factory):
    """``a``: train, valid, test; ``b``: train and test only, other instruments and names."""
    base = tmp_path_factory.mktemp("roots")
    a = make_tone_root(base / "a", n_train=6, n_valid=3, n_test=3)
    make_tone_split(base / "b" / "train", 5, seed=7, first_instrument=500)
    make_tone_split(base / "b" / "test", 2, seed=8, first_instrument=700)
    return a, base / "b"


def notes_of(path):
    with h5py.File(path, "r") as f:
        return {name: (int(folder), spectrum) for name, folder, spectrum in zip(
            f[schema.NAMES].asstr()[:], f[schema.SOURCE_FOLDER][:], f[schema.SPECTRA][:])}


def test_splits_are_merged_and_each_note_knows_its_folder(two_roots, tmp_path):
    a, b = two_roots
    build_store([a, b], tmp_path / "both", jobs=1, progress=False)
    build_store(b, tmp_path / "b", jobs=1, progress=False)
    for split, sizes in (("train", (6, 5)), ("valid", (3, 0)), ("test", (3, 2))):
        with h5py.File(tmp_path / "both" / f"{split}.h5", "r") as f:
            folders = f[schema.SOURCE_FOLDER]
            assert list(folders.attrs["names"]) == [str(a.resolve()), str(b.resolve())]
            assert tuple(np.bincount(folders[:], minlength=2)) == sizes
            names = list(f[schema.NAMES].asstr()[:])
            assert names == sorted(names) and f.attrs["n_examples"] == sum(sizes)
            for path in schema.read_audio_paths(f):  # each note's own folder
                assert path.is_file(), path
    merged = notes_of(tmp_path / "both" / "test.h5")
    for name, (folder, spectrum) in notes_of(tmp_path / "b" / "test.h5").items():
        assert merged[name][0] == 1 and np.array_equal(merged[name][1], spectrum)
    with h5py.File(tmp_path / "both" / "train.h5", "r") as f:  # statistics over both folders
        assert f[schema.SPECTRA].attrs["stats_count"] == 11 * f[schema.SPECTRA].shape[1]
    described = "\n".join(describe_store(tmp_path / "both"))
    assert f"{a.resolve()} (6 notes), {b.resolve()} (5 notes)" in described


def test_a_name_two_folders_share_is_refused_with_both_paths(two_roots, tmp_path):
    a, _ = two_roots
    c = tmp_path / "c"
    name = sorted(json.loads((a / "train" / "examples.json").read_text()))[2]
    write_note(c / "train", name, tone(30))
    write_split(c / "train", {name: example(name, "organ")})
    with pytest.raises(BuildError, match=rf"note '{name}' is in {a}/train/examples.json and in "
                                         rf"{c}/train/examples.json \(1 names of train"):
        build_store([a, c], tmp_path / "store", jobs=1, progress=False)
    assert not list((tmp_path / "store").glob("*.h5*"))  # nothing written
    d = tmp_path / "d"  # a name shared in the test split only: train is not written either
    name = sorted(json.loads((a / "test" / "examples.json").read_text()))[0]
    write_note(d / "test", name, tone(30))
    write_split(d / "test", {name: example(name, "organ")})
    with pytest.raises(BuildError, match=rf"note '{name}' is in {a}/test/examples.json"):
        build_store([a, d], tmp_path / "store", jobs=1, progress=False)
    assert not list((tmp_path / "store").glob("*.h5*"))


def test_a_name_two_folders_give_in_two_splits_is_refused_by_build_and_add(two_roots,
                                                                            tmp_path):
    a, b = two_roots
    c = tmp_path / "c"  # notes of a's train again, in c's valid: they would be scored as unheard
    names = sorted(json.loads((a / "train" / "examples.json").read_text()))[1:4]
    for name in names:
        write_note(c / "valid", name, tone(30))
    write_split(c / "valid", {name: example(name, "organ") for name in names})
    name = names[0]  # the first of them, and how many
    both = rf"note '{name}' is in train \({a}/train/audio/{name}.wav\) and in valid " \
           rf"\({c}/valid/audio/{name}.wav\) \(3 such names\)"
    with pytest.raises(BuildError, match=both):
        build_store([a, c], tmp_path / "store", jobs=1, progress=False)
    assert not list((tmp_path / "store").glob("*.h5*"))  # nothing written
    build_store(a, tmp_path / "store", jobs=1, progress=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "store").glob("*.h5")}
    with pytest.raises(BuildError, match=both):  # the store's train holds it from a
        build_store(c, tmp_path / "store", jobs=1, progress=False, add=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "store").glob("*")} == before


def test_names_in_two_splits_come_in_the_order_of_their_rows_whatever_the_hash(monkeypatch):
    import featurestore.overlap as overlap

    class Part(list):
        names = property(list)
    monkeypatch.setattr(overlap, "hash", lambda name: -int(name[1:]), raising=False)  # n9 first
    parts = [Part(["n1", "n2", "n3", "n9"]), Part(["n3", "n4", "n9", "n1"])]
    assert list(overlap._same_names(parts)) == [[(0, 0), (1, 3)], [(0, 2), (1, 0)],
                                                [(0, 3), (1, 2)]]


def test_a_name_one_nsynth_folder_gives_in_two_splits_is_warned_of(tmp_path, caplog):
    root = make_tone_root(tmp_path / "a", n_train=4, n_valid=2, n_test=2)
    train = json.loads((root / "train" / "examples.json").read_text())
    name = sorted(train)[0]
    write_note(root / "test", name, tone(30))
    examples = json.loads((root / "test" / "examples.json").read_text())
    (root / "test" / "examples.json").write_text(json.dumps({**examples, name: train[name]}))
    build_store(root, tmp_path / "store", jobs=1, progress=False)
    assert f"1 note names are in two splits of one NOTES folder (first: '{name}', in train " \
           f"and test)" in caplog.text


def test_an_instrument_in_train_and_in_a_scored_split_is_warned_of_by_build_and_add(
        two_roots, tmp_path, caplog):
    a, b = two_roots
    c = tmp_path / "c"  # a's train instruments again under other note names (another render)
    train = json.loads((a / "train" / "examples.json").read_text())
    first = sorted(train)[0]
    again = {f"{name}-again": {**entry, "note_str": f"{name}-again"}
             for name, entry in train.items() if name == first}
    write_note(c / "test", f"{first}-again", tone(30))
    (c / "test").mkdir(exist_ok=True)
    (c / "test" / "examples.json").write_text(json.dumps(again))
    instrument = train[first]["instrument_str"]
    warning = (f"1 instrument with notes in train and in valid or test (first: "
               f"'{instrument}', in train at {a}/train/audio/{first}.wav and in test at "
               f"{c}/test/audio/{first}-again.wav)")
    build_store([a, b], tmp_path / "store", jobs=1, progress=False)
    assert "with notes in train and in valid" not in caplog.text  # a's and b's are apart
    build_store([a, c], tmp_path / "both", jobs=1, progress=False)
    assert warning in caplog.text
    caplog.clear()
    build_store(c, tmp_path / "store", jobs=1, progress=False, add=True)
    assert warning in caplog.text


def test_a_split_kept_by_a_build_of_other_folders_says_which(two_roots, tmp_path, caplog,
                                                              monkeypatch):
    a, b = two_roots
    build_store([a, b], tmp_path / "store", jobs=1, progress=False)
    build_store([a, b], tmp_path / "store", jobs=1, progress=False)
    assert "kept, but" not in caplog.text
    build_store(a, tmp_path / "store", jobs=1, progress=False)
    assert (f"train.h5: kept, but it was built from {a.resolve()}, {b.resolve()} and is now "
            f"given {a.resolve()}; use --overwrite to rebuild") in caplog.text
    assert f"{a}/train changed" not in caplog.text  # a did not change
    caplog.clear()
    monkeypatch.chdir(a.parent)  # the same folders, relative and in another order
    build_store([b.name, a.name], tmp_path / "store", jobs=1, progress=False)
    build_store([b.name, a.name], tmp_path / "store", jobs=1, progress=False)
    assert "kept, but" not in caplog.text
    # a split built before /source_folder: its source_root attr names its one folder
    build_store(a, tmp_path / "old", jobs=1, progress=False)
    with h5py.File(tmp_path / "old" / "train.h5", "r+") as f:
        del f[schema.FILE], f[schema.SOURCE_FOLDER], f.attrs[schema.INPUTS_DIGEST]
    build_store(a, tmp_path / "old", jobs=1, progress=False)
    assert "kept, but" not in caplog.text
    build_store(b, tmp_path / "old", jobs=1, progress=False, splits=["train"])
    assert (f"train.h5: kept, but it was built from {a.resolve()} and is now given "
            f"{b.resolve()}; use --overwrite to rebuild") in caplog.text


def test_a_folder_given_twice_is_refused(two_roots, tmp_path):
    a, _ = two_roots
    with pytest.raises(BuildError, match="given twice"):
        build_store([a, a / ".." / a.name], tmp_path / "store", jobs=1, progress=False)


def test_the_command_takes_several_folders(two_roots, tmp_path, capsys):
    a, b = two_roots
    main(["build", str(a), str(b), str(tmp_path / "store"), "--jobs", "1", "-q"])
    with h5py.File(tmp_path / "store" / "train.h5", "r") as f:
        assert f.attrs["n_examples"] == 11


def test_audio_paths_of_a_store_built_before_source_folder(two_roots, tmp_path):
    a, _ = two_roots
    build_store(a, tmp_path / "store", jobs=1, progress=False)
    with h5py.File(tmp_path / "store" / "valid.h5", "r+") as f:
        paths = schema.read_audio_paths(f)
        assert paths == [a.resolve() / "valid" / "audio" / f"{name}.wav"
                         for name in f[schema.NAMES].asstr()[:]]
        del f[schema.FILE]  # as an older version wrote it: no /file
        assert schema.read_audio_paths(f) == paths
        del f[schema.SOURCE_FOLDER]  # older still: source_root alone
        assert schema.read_audio_paths(f) == paths


def test_inspect_counts_instruments_by_name_not_by_id(tmp_path):
    # two renders' ids may coincide (a tag's CRC modulo render.BANKS); their names never do
    root = tmp_path / "notes"
    for split in ("train", "test"):
        examples = {}
        for k, family in enumerate(("bass", "organ", "reed")):
            name = f"{family}_{split}-060-100"
            write_note(root / split, name, tone(10 + 12 * k))
            examples[name] = example(name, family, instrument=5)  # one id, three names
        write_split(root / split, examples)
    build_store(root, tmp_path / "store", jobs=1, progress=False)
    lines = describe_store(tmp_path / "store")
    assert lines.count("  notes     3 from 3 instruments") == 2, lines
