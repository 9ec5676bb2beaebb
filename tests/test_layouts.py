"""Inputs other than NSynth's layout: class folders (with and without split folders), CSV
manifests, drawn splits by group, the store's own label set, and recordings cut into windows."""
from __future__ import annotations

import dataclasses
import logging
import re
import shutil

import h5py
import numpy as np
import pytest
import soundfile as sf

from featurestore import schema
from featurestore.build import build_store
from featurestore.errors import BuildError, StoreError
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


def test_split_folders_go_by_datasets_names_and_valid_is_drawn_from_train_without_one(
        tmp_path, caplog):
    root = _class_folders(tmp_path / "set", per_class=20)
    for was, now in (("train", "Training"), ("valid", "val"), ("test", "TEST")):
        (root / was).rename(root / now)
    read = read_inputs([root])
    assert read.labels == CLASSES and not read.drawn  # the folders are splits, not classes
    assert [len(read.splits[s][0]) for s in ("train", "valid", "test")] == [42, 9, 9]
    (root / "validation").mkdir()
    with pytest.raises(BuildError, match=r"set: val/ and validation/ are both read as the valid "
                                         r"split; which one is it\? Move the other out"):
        read_inputs([root])
    (root / "validation").rmdir()
    shutil.rmtree(root / "val")  # train/ and test/, as many datasets come: valid drawn
    caplog.set_level(logging.INFO)
    read = read_inputs([root], InputOptions(valid_fraction=0.3))
    assert "no valid folder: valid is drawn from the groups of Training's files" in caplog.text
    train, valid, test = (read.splits[s][0] for s in ("train", "valid", "test"))
    assert read.drawn and len(train) + len(valid) == 42 and len(valid) > 5
    assert all(f.startswith("Training/") for f in valid.files) and len(test) == 9
    assert valid.files == [f for f in valid.files if drawn_split(f, 0.3, 0) == "valid"]
    assert "drawn into test" not in caplog.text  # test is the folder's, never drawn here
    for other in ("__MACOSX/Training", "docs"):  # a zip's, and one of no audio: passed over
        (root / other).mkdir(parents=True)
        (root / other / "notes.txt").write_text("not audio")
    assert len(read_inputs([root]).splits["test"][0]) == 9
    shutil.rmtree(root / "TEST")
    assert len(read_inputs([root]).splits["valid"][0]) > 0  # train/ alone: the default 10 %
    classes = _class_folders(tmp_path / "classes", per_class=3, split_folders=False)
    (classes / "cello").rename(classes / "dev")  # a class that is named like a split
    (classes / "dog_bark").rename(classes / "Val")
    assert read_inputs([classes]).labels == ("Val", "dev", "kettle")
    assert "classes: Val/, dev/ read as class folders (named as a split's, but kettle/ is no " \
           "split folder); name split folders train/, valid/, test/" in caplog.text


def test_a_drawn_split_of_few_groups_is_warned_of_and_the_draw_said(tmp_path, caplog):
    root = _class_folders(tmp_path / "set", per_class=20, split_folders=False)
    caplog.set_level(logging.INFO)
    read = read_inputs([root], InputOptions(group_by=r"^take(\d+)_"))
    groups = {split: {re.search(r"take(\d+)_", name).group(1) for name in notes.names}
              for split, (notes, _) in read.splits.items()}
    assert {split: len(held) for split, held in groups.items()} == {"train": 15, "valid": 1,
                                                                     "test": 4}
    assert "splits drawn by group: train 15 groups (45 files), valid 1 group (3 files), test " \
           "4 groups (12 files)" in caplog.text
    assert "valid holds 1 group of the 20 (asked: 0.1 of them): its score is of those alone" \
        in caplog.text and "test holds" not in caplog.text


def test_one_recording_in_two_formats_is_warned_of_and_kept_in_one_split(tmp_path, caplog):
    for i in range(40):
        for ending in (".wav", ".flac") if i % 2 else (".wav",):
            _wav(tmp_path / "set" / "cello" / f"take{i}{ending}")
    read = read_inputs([tmp_path / "set"], InputOptions(valid_fraction=0.3,
                                                        test_fraction=0.3))
    assert "40 files share their name but for the ending with another (first: " \
           "cello/take1.flac, cello/take1.wav): the same recording in two formats?" in caplog.text
    where = {name: split for split, (notes, _) in read.splits.items() for name in notes.names}
    assert len(where) == 60 and len(set(where.values())) == 3
    assert all(where[f"cello/take{i}.flac"] == where[f"cello/take{i}.wav"]
               for i in range(1, 40, 2))


def test_add_leaves_held_notes_and_their_twins_where_the_store_holds_them(tmp_path, caplog):
    root = _class_folders(tmp_path / "set", per_class=20)
    shutil.rmtree(root / "valid")
    store = tmp_path / "store"
    build_store(root, store, jobs=1, progress=False, inputs=InputOptions(valid_fraction=0))
    for split in ("train", "test"):  # as a version that drew no valid from train/ left it
        with h5py.File(store / f"{split}.h5", "r+") as f:
            f.attrs["input_valid_fraction"] = 0.1
    caplog.clear()
    reports = build_store(root, store, jobs=1, progress=False, add=True)
    assert {r.split: r.status for r in reports} == {"train": "kept", "test": "kept"}
    assert "valid: 4 notes drawn into it now go where the store holds them or their twin " \
           "(first: cello/take" in caplog.text
    assert not (store / "valid.h5").exists()
    drawn = _class_folders(tmp_path / "drawn", per_class=20, split_folders=False)
    build_store(drawn, tmp_path / "d", jobs=1, progress=False)
    for wav in sorted(drawn.glob("*/*.wav"))[::2]:  # the same recordings in another format
        shutil.copyfile(wav, wav.with_suffix(".flac"))
    build_store(drawn, tmp_path / "d", jobs=1, progress=False, add=True)
    where = {}
    for split in ("train", "valid", "test"):
        with h5py.File(tmp_path / "d" / f"{split}.h5") as f:
            where.update(dict.fromkeys(f[schema.NAMES].asstr()[:], split))
    flacs = [name for name in where if name.endswith(".flac")]
    assert len(flacs) == 30 and {where[name] for name in flacs} == {"train", "valid", "test"}
    assert all(where[name] == where[name[:-5] + ".wav"] for name in flacs)
    for wav in sorted(drawn.glob("*/*.wav"))[1::2]:  # the others, grown in train alone
        shutil.copyfile(wav, wav.with_suffix(".flac"))
    caplog.clear()
    build_store(drawn, tmp_path / "d", jobs=1, progress=False, add=True, splits=["train"])
    with h5py.File(tmp_path / "d" / "train.h5") as f:
        grown = set(f[schema.NAMES].asstr()[:]) - set(where)
    assert grown and all(where[name[:-5] + ".wav"] == "train" for name in grown)
    assert re.search(r"(valid|test): \d+ new notes left out: the store holds their twins in "
                     r"\1, which this build does not grow \(first: .*\); add them with --split "
                     r"\1", caplog.text)


def test_add_keeps_held_twins_in_the_splits_the_manifest_gave_them(tmp_path):
    for name in ("c0.wav", "c0.flac", "c1.wav", "c2.wav", "c3.wav"):
        _wav(tmp_path / name, k=int(name[1]) % 2)
    manifest = tmp_path / "set.csv"
    manifest.write_text("path,label,split\nc0.wav,a,train\nc0.flac,a,test\nc1.wav,b,train\n"
                        "c2.wav,a,valid\nc3.wav,b,valid\n")
    build_store(manifest, tmp_path / "store", jobs=1, progress=False)
    _wav(tmp_path / "c4.wav", k=1)  # then the splits left to be drawn, and a new file
    manifest.write_text("path,label,split\nc0.wav,a,\nc0.flac,a,\nc1.wav,b,train\n"
                        "c2.wav,a,valid\nc3.wav,b,valid\nc4.wav,b,\n")
    build_store(manifest, tmp_path / "store", jobs=1, progress=False, add=True)
    for split, names in (("train", {"c0.wav", "c1.wav"}), ("test", {"c0.flac"})):
        with h5py.File(tmp_path / "store" / f"{split}.h5") as f:
            assert names <= set(f[schema.NAMES].asstr()[:]), split


def test_add_refuses_a_manifest_s_file_given_another_split_beside_drawn_rows(tmp_path):
    for i in range(5):
        _wav(tmp_path / f"c{i}.wav", k=i % 2)
    manifest = tmp_path / "set.csv"
    manifest.write_text("path,label,split\nc0.wav,a,train\nc1.wav,b,train\nc2.wav,a,valid\n"
                        "c3.wav,b,valid\nc4.wav,a,\n")  # the last one drawn
    build_store(manifest, tmp_path / "store", jobs=1, progress=False)
    manifest.write_text(manifest.read_text().replace("c0.wav,a,train", "c0.wav,a,test"))
    with pytest.raises(BuildError, match=r"c0.wav is in train and in test .*: a file is one note "
                                         r"of one split"):
        build_store(manifest, tmp_path / "store", jobs=1, progress=False, add=True)


def test_a_file_in_two_splits_is_named_in_a_warning(tmp_path, caplog):
    root = _class_folders(tmp_path / "set")
    read_inputs([root])
    assert "two splits" not in caplog.text
    target = root / "train" / "cello" / "take0_cello.wav"
    (root / "test" / "cello" / "again.wav").symlink_to(target)  # a link across splits
    (root / "train" / "cello" / "same.wav").symlink_to(target)  # and one within train: allowed
    read_inputs([root])
    assert (f"the same audio file is in two splits (notes: 1; first: "
            f"{root / 'train/cello/same.wav'}, in train, is {root / 'test/cello/again.wav'}, in "
            f"test): a model tested on it has heard it") in caplog.text
    assert "two labels" not in caplog.text  # a link within its own class is no other label
    (root / "train" / "kettle" / "cellos").symlink_to(root / "train" / "cello")  # a folder
    read_inputs([root])
    assert (f"the same audio file has two labels (notes: 5; first: "
            f"{root / 'train/cello/same.wav'}, labelled 'cello', is "
            f"{root / 'train/kettle/cellos/same.wav'}, labelled 'kettle'; a link, or one file "
            f"written two ways): which label is it?") in caplog.text


def test_copies_of_a_file_under_its_name_in_two_splits_are_warned_of(tmp_path, caplog):
    import shutil
    root = _class_folders(tmp_path / "set")
    _wav(root / "test" / "cello" / "take0_cello.wav", k=1)  # another recording, the same name
    read_inputs([root])
    assert "copies" not in caplog.text
    for split in ("valid", "test"):  # a copy, in two other splits
        shutil.copyfile(root / "train" / "kettle" / "take1_kettle.wav",
                        root / split / "kettle" / "take1_kettle.wav")
    read_inputs([root])
    assert (f"3 files in two splits of one NOTES folder are copies of one another (first: "
            f"{root / 'train/kettle/take1_kettle.wav'} and "
            f"{root / 'valid/kettle/take1_kettle.wav'}): a model tested on them has heard them"
            ) in caplog.text


def test_a_manifest_path_finds_its_file_however_its_letters_are_composed(tmp_path):
    import unicodedata
    nfc, nfd = (unicodedata.normalize(form, "Flöte") for form in ("NFC", "NFD"))
    _wav(tmp_path / "clips" / f"{nfd}.wav", k=0)  # named on macOS
    _wav(tmp_path / "clips" / f"{nfc}-2.wav", k=1)
    _wav(tmp_path / f"{nfd}n" / f"{nfc}.wav", k=2)  # a folder of one form, its file the other
    (tmp_path / f"{nfc}x").mkdir()  # two folders that differ in form alone: the file is in one
    _wav(tmp_path / f"{nfd}x" / "a.wav", k=3)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,label\nclips/{nfc}.wav,a\nclips/{nfd}-2.wav,b\n"
                        f"clips/{nfc}-3.wav,b\n{nfc}n/{nfd}.wav,b\n{nfc}x/a.wav,a\n",
                        encoding="utf-8")
    read = read_inputs(manifest, InputOptions(valid_fraction=0.0, test_fraction=0.0))
    notes, problems = read.splits["train"]
    assert set(notes.names) == {f"clips/{nfc}.wav", f"clips/{nfd}-2.wav",
                                f"{nfc}n/{nfd}.wav", f"{nfc}x/a.wav"}  # as written
    assert [notes.path(i).exists() for i in range(4)] == [True] * 4
    assert problems == [(f"clips/{nfc}-3.wav", f"line 4: no such file "
                                               f"({tmp_path / 'clips' / nfc}-3.wav)")]


def test_a_label_with_a_control_character_is_a_problem_of_its_rows(tmp_path):
    for k, label in enumerate(("cello", "vio\tla")):
        _wav(tmp_path / "set" / label / "a.wav", k=k)
    read = read_inputs(tmp_path / "set", InputOptions(valid_fraction=0.0, test_fraction=0.0))
    assert read.labels == ("cello",)
    assert read.splits["train"][1] == [("vio\tla/a.wav", "the class folder's name 'vio\\tla' "
                                        "holds a control character (\\t); a label is printed "
                                        "in lines and columns")]
    from featurestore.describe import describe_store
    build_store(tmp_path / "set", tmp_path / "store", jobs=1, progress=False,
                inputs=InputOptions(valid_fraction=0.0, test_fraction=0.0))
    assert "    vio\\tla/a.wav: the class folder's name 'vio\\tla' holds a control character " \
           "(\\t); a label is printed in lines and columns" in describe_store(tmp_path / "store")
    manifest = tmp_path / "set" / "m.csv"
    manifest.write_text('path,label\ncello/a.wav,cello\ncello/a.wav,"two\nlines"\n'
                        'vio\tla/a.wav,x\u2028y\n', encoding="utf-8")
    read = read_inputs(manifest, InputOptions(valid_fraction=0.0, test_fraction=0.0))
    assert read.labels == ("cello",) and sorted(why for _, why in read.splits["train"][1]) == [
        # a quoted field over two lines: its row is named by its first, line 3
        "line 3: the label 'two\\nlines' holds a control character (\\n); a label is "
        "printed in lines and columns",
        "line 5: the label 'x\\u2028y' holds a control character (\\u2028); a label is "
        "printed in lines and columns"]


def test_a_label_is_one_label_however_its_letters_are_composed(tmp_path):
    import unicodedata
    root = tmp_path / "set"
    for form, k in (("NFC", 0), ("NFD", 1)):  # a folder made on Linux, and one from macOS
        _wav(root / unicodedata.normalize(form, "Flöte") / f"{form}.wav", k=k)
    _wav(root / "cello" / "c.wav", k=2)
    read = read_inputs(root, InputOptions(valid_fraction=0.0, test_fraction=0.0))
    assert list(read.labels) == ["Flöte", "cello"] and len(read.splits["train"][0]) == 3
    assert unicodedata.is_normalized("NFC", read.labels[0])
    assert sorted(read.splits["train"][0].label) == ["Flöte", "Flöte", "cello"]
    store = tmp_path / "store"  # as a version before wrote a macOS folder's name
    build_store(root, store, inputs=InputOptions(valid_fraction=0.0, test_fraction=0.0),
                jobs=1, progress=False)
    with h5py.File(store / "train.h5", "r+") as f:
        f[schema.LABELS].attrs[schema.LIST_NAMES] = [unicodedata.normalize("NFD", "Flöte"),
                                                     "cello"]
        assert schema.read_label_names(f) == ("Flöte", "cello")  # composed, as builds read
    build_store(root, store, inputs=InputOptions(valid_fraction=0.0, test_fraction=0.0),
                jobs=1, progress=False)  # kept: the same label set
    from featurestore.errors import StoreError
    from training.modeldir import config_labels
    assert config_labels({"labels": [unicodedata.normalize("NFD", "Flöte"), "cello"]}) == (
        "Flöte", "cello")  # a model's, as a store's
    both = [unicodedata.normalize("NFD", "Flöte"), "Flöte", "cello"]  # two labels, then
    with pytest.raises(ValueError, match=r"its labels \['Flöte'\] are each two labels"):
        config_labels({"labels": both})
    with h5py.File(store / "train.h5", "r+") as f:
        f[schema.LABELS].attrs[schema.LIST_NAMES] = both
        with pytest.raises(StoreError, match=r"train.h5: its labels \['Flöte'\] are each two "
                                             r"labels written with their letters composed"):
            schema.read_label_names(f)


def test_a_class_named_like_a_split_is_named_in_a_warning(tmp_path, caplog):
    for label in ("train", "cello", "viola"):
        for i in range(3):
            _wav(tmp_path / "set" / label / f"{label}{i}.wav", k=i)
    with pytest.raises(BuildError, match=r"set: no split folder with an examples.json \(NSynth"
                                         r"'s layout: train/, valid/, test/ or nsynth-train/, "
                                         r"...\) and no audio files in class folders "
                                         r"\(ROOT/LABEL/"):
        read_inputs([tmp_path / "set"])
    with pytest.raises(BuildError, match=r"set: no audio files in class folders \(ROOT/LABEL"):
        read_inputs([tmp_path / "set"], InputOptions(layout="folders"))  # said: not NSynth's
    assert (f"{tmp_path / 'set' / 'train'}: 3 audio files directly in a split folder are not "
            f"read (a split folder holds class folders; a class folder cannot have a split "
            f"folder's name, such as train, val or test: rename it, or list the files in a "
            f"manifest)") in caplog.text


def test_a_label_of_no_note_a_class_folder_of_no_audio_and_no_valid_split_are_warned_of(
        tmp_path, caplog):
    root = _class_folders(tmp_path / "set")
    build_store(root, tmp_path / "store", jobs=1, progress=False)
    assert "no split holds" not in caplog.text and "class folder" not in caplog.text
    assert "no valid split" not in caplog.text
    silent = root / "train" / "hum" / "take0_hum.wav"  # a label whose one file is skipped
    silent.parent.mkdir()
    sf.write(silent, np.zeros(SR), SR)
    (root / "test" / "empty").mkdir()  # a class folder of no audio
    (root / "test" / "empty" / "notes.txt").write_text("not audio")
    build_store(root, tmp_path / "other", jobs=1, progress=False)
    assert f"{root}: no audio file in 1 class folder, which gives the store no label (first: " \
           f"empty; endings read: .wav" in caplog.text
    assert f"{tmp_path / 'other'}: no split holds a note of (hum) (every file of the label was " \
           f"skipped, which inspect lists, or its split is not built yet); a model trained on " \
           f"the store has an output for it that it never learns" in caplog.text
    caplog.clear()
    build_store(root, tmp_path / "part", jobs=1, progress=False, splits=["valid"])
    assert "no split holds" not in caplog.text  # the others are still to be built
    shutil.rmtree(root / "valid")
    build_store(root, tmp_path / "third", jobs=1, progress=False,
                inputs=InputOptions(valid_fraction=0))  # none drawn from train's folder
    assert f"{tmp_path / 'third'}: no valid split: 'timbremap train' needs one, to pick its " \
           f"best epoch and when to stop (draw one with --valid-fraction above 0)" in caplog.text


def test_a_split_that_is_a_copy_of_train_is_warned_of_and_a_renamed_one_shown(
        tone_store, tmp_path, caplog):
    from featurestore.describe import describe_store
    from featurestore.finished import warn_of_splits_that_mislead
    store = shutil.copytree(tone_store, tmp_path / "store")
    warn_of_splits_that_mislead(store)
    assert "the very notes" not in caplog.text
    assert not any(line.startswith("  renamed") for line in describe_store(store))
    shutil.copyfile(store / "train.h5", store / "test.h5")  # a copy, renamed
    warn_of_splits_that_mislead(store)
    assert f"{store}: test holds the very notes train holds (a copy of train.h5?): its scores " \
           f"are not of unheard notes" in caplog.text
    lines = describe_store(store)
    assert lines[lines.index(next(line for line in lines if line.startswith("== test:"))) + 2] \
        == "  renamed   built as the 'train' split, read as 'test' by its name"


def test_a_store_of_one_label_is_built_with_a_warning_that_names_the_layout(tmp_path, caplog):
    root = _class_folders(tmp_path / "set", per_class=2, split_folders=False)
    build_store(root, tmp_path / "two", jobs=1, progress=False)
    assert "a classifier needs at least two" not in caplog.text
    one = tmp_path / "one"  # NSynth's layout read as class folders: every label is 'audio'
    for i in range(3):
        _wav(one / "train" / "audio" / f"note{i}.wav", seconds=0.5)
    build_store(one, tmp_path / "store", inputs=InputOptions(layout="folders"), jobs=1,
                progress=False)
    assert (f"{one}: every note has the label 'audio'; a classifier needs at least two (is "
            f"--layout folders how") in caplog.text
    manifest = tmp_path / "one.csv"
    manifest.write_text("path,label\n" + "".join(f"{one}/train/audio/note{i}.wav,x\n"
                                                  for i in range(3)))
    build_store(manifest, tmp_path / "listed", jobs=1, progress=False)
    assert ("every note has the label 'x'; a classifier needs at least two (does the manifest's "
            "label column hold the labels?)") in caplog.text


def test_a_label_that_train_lacks_is_named_at_build(tmp_path, caplog):
    root = _class_folders(tmp_path / "set")
    build_store(root, tmp_path / "store", jobs=1, progress=False)
    assert "a model cannot learn it" not in caplog.text
    _wav(root / "test" / "harp" / "take0_harp.wav", k=3)  # in test alone
    build_store(root, tmp_path / "other", jobs=1, progress=False)
    assert f"{tmp_path / 'other'}: test holds notes of 'harp', and train none: a model cannot " \
           f"learn it" in caplog.text
    assert f"{tmp_path / 'other'}: train holds fewer than 5 notes of 3 labels (cello 4, " \
           f"dog_bark 4, kettle 4): " in caplog.text  # not harp, of which it holds none
    # a split file of another label set left by an earlier build is passed over
    caplog.clear()
    shutil.rmtree(root / "test" / "harp")
    shutil.copy(tmp_path / "other" / "test.h5", tmp_path / "store" / "test.h5")
    build_store(root, tmp_path / "store", jobs=1, progress=False, splits=["train", "valid"])
    assert "a model cannot learn it" not in caplog.text
    assert "valid holds no notes of" not in caplog.text  # it holds every label train does
    (root / "valid" / "kettle" / "take4_kettle.wav").unlink()  # valid's one kettle note
    build_store(root, tmp_path / "third", jobs=1, progress=False)
    assert f"{tmp_path / 'third'}: valid holds no notes of (kettle), which train holds: the " \
           f"validation accuracy, which picks the best epoch and stops training, says nothing " \
           f"of how they are told apart" in caplog.text
    for take in (1, 2, 3):
        (root / "train" / "kettle" / f"take{take}_kettle.wav").unlink()  # 1 of 4 left
    (root / "train" / "cello" / "take3_cello.wav").unlink()  # 3 left
    build_store(root, tmp_path / "fourth", jobs=1, progress=False)
    assert f"{tmp_path / 'fourth'}: train holds fewer than 5 notes of 3 labels (kettle 1, " \
           f"cello 3, dog_bark 4): a model learns little" in caplog.text


@pytest.mark.full
def test_a_label_that_train_lacks_is_named_again_by_train(tmp_path, caplog):
    from training.config import TrainConfig
    from training.train import train
    root = _class_folders(tmp_path / "set")
    _wav(root / "test" / "harp" / "take0_harp.wav", k=3)  # in test alone
    build_store(root, tmp_path / "store", jobs=1, progress=False)
    caplog.clear()
    train(tmp_path / "store", tmp_path / "model", TrainConfig(epochs=1, batch_size=4, width=4,
                                                              budget_minutes=None), verbose=0)
    assert f"{tmp_path / 'store'}: test holds notes of 'harp', and train none: a model cannot " \
           f"learn it" in caplog.text


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
    # a pattern with a / matches the path below the split folder: a session's folder
    sessions = tmp_path / "sessions"
    for k, label in enumerate(CLASSES):
        for session in range(6):
            for take in range(3):
                _wav(sessions / label / f"s{session}" / f"take{take}.wav", seconds=0.3, k=k)
    read = read_inputs(sessions, InputOptions(group_by=r"^[^/]+/([^/]+)/",
                                              valid_fraction=0.25, test_fraction=0.25))
    assert {g for n, _ in read.splits.values() for g in n.group} == {f"s{i}" for i in range(6)}
    for split, (notes, _) in read.splits.items():
        assert {drawn_split(g, 0.25, 0.25) for g in notes.group} == {split}
    # without --group-by each file is its own group
    alone = read_inputs(root, InputOptions(valid_fraction=0.25, test_fraction=0.25))
    assert sum(len(n) for n, _ in alone.splits.values()) == 72
    assert len({g for n, _ in alone.splits.values() for g in n.group}) == 72


def test_manifest_rows_metadata_and_bad_rows(tmp_path):
    data = tmp_path / "data"
    for i in range(8):
        _wav(data / "clips" / f"c{i}.flac", seconds=0.5 + i * 0.5, k=i % 2)
    rows = ["path,label,split,group,mic,take"]
    spelt = ("train", "Train", "training", "TRAIN", "train", "train", "validation", "Val")
    rows += [f"clips/c{i}.flac,{'violin' if i % 2 else 'voice'},{spelt[i]},"
             f"g{i},mic{i % 3},{i}" for i in range(8)]  # splits as datasets spell them
    rows += ["clips/missing.wav,violin,train,,,",       # no such file
             "clips/c0.flac,voice,train,,,",            # given again
             "clips/c1.flac,,train,,,",                 # empty label... and given again
             "clips/c2.flac,voice,tset,,,",             # unknown split
             "clips/c3.flac,voice,train,,,",            # given again, with another label
             "clips/c4.flac,square, hard,train,,,",     # a comma in a field, unquoted
             ",voice,train,,,"]                         # no path
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
        assert "unknown split 'tset' (expected train, valid, test, or training, validation, " \
               "val, dev, testing; empty: drawn)" in skipped["clips/c2.flac"]
        assert f.attrs["input_layout"] == "manifest"
        assert schema.read_audio_paths(f)[0] == (data / "clips" / "c0.flac").resolve()
    with h5py.File(tmp_path / "store" / "valid.h5", "r") as f:
        assert f[schema.NAMES].asstr()[:].tolist() == ["clips/c6.flac", "clips/c7.flac"]
    read = read_inputs([manifest])
    problems = dict(read.splits["train"][1])
    assert "empty label" in problems["clips/c1.flac"] or "given again" in problems["clips/c1.flac"]
    assert "given again (first on line 2)" in dict(read.splits["train"][1])["clips/c0.flac"]
    assert problems["clips/c3.flac"] == "line 14: path given again (first on line 5 with the " \
                                        "label 'violin')"
    assert problems["clips/c4.flac"] == "line 15: 7 fields, but the header names 6 (a comma in " \
                                        "a field needs quotes)"
    assert problems["(line 16)"] == "empty path"  # not "(line 16): line 16: empty path"


def test_every_split_has_every_column_of_the_manifests(tmp_path):
    from featurestore import SplitDataset
    for i in range(6):
        _wav(tmp_path / "a" / f"a{i}.wav", k=i % 2)
        _wav(tmp_path / "b" / f"b{i}.wav", k=i % 2)
    (tmp_path / "a" / "a.csv").write_text("path,label,split,mic\n" + "".join(
        f"a{i}.wav,{'xy'[i % 2]},{('train', 'train', 'valid')[i % 3]},m{i}\n" for i in range(6)))
    (tmp_path / "b" / "b.csv").write_text("path,label,split,take\n" + "".join(
        f"b{i}.wav,{'xy'[i % 2]},train,t{i}\n" for i in range(6)) + "gone.wav,x,test,t9\n")
    build_store([tmp_path / "a" / "a.csv", tmp_path / "b" / "b.csv"], tmp_path / "store",
                jobs=1, progress=False)
    valid = SplitDataset(tmp_path / "store", "valid", fields=("names", "metadata/mic",
                                                               "metadata/take"))
    assert [list(column) for column in valid[:]] == [["a2.wav", "a5.wav"], ["m2", "m5"],
                                                     ["", ""]]  # no note of it has a take
    with h5py.File(tmp_path / "store" / "test.h5", "r") as f:  # its one file is missing
        assert f[schema.SPECTRA].shape[0] == 0 and sorted(f["metadata"]) == ["mic", "take"]
    with h5py.File(tmp_path / "store" / "train.h5", "r") as f:
        assert f["metadata/take"].asstr()[:].tolist() == [""] * 4 + [f"t{i}" for i in range(6)]
    _wav(tmp_path / "c" / "c0.wav")
    (tmp_path / "c" / "c.csv").write_text("path,label,split,room\nc0.wav,x,train,r0\n")
    build_store([tmp_path / d / f"{d}.csv" for d in "abc"], tmp_path / "store", jobs=1,
                progress=False, add=True)  # a column train's new note brings: every split's
    for split, room in (("train", [""] * 10 + ["r0"]), ("valid", ["", ""]), ("test", [])):
        with h5py.File(tmp_path / "store" / f"{split}.h5", "r") as f:
            assert sorted(f["metadata"]) == ["mic", "room", "take"]
            assert f["metadata/room"].asstr()[:].tolist() == room


@pytest.mark.parametrize("text, message", [
    ("file,label\na.wav,x\n", "no path column"),
    ("path,class\na.wav,x\n", "no label column"),
    ("path,label\n", "no rows below its header"),
    ('path,label\na.wav,x\n"b.wav,y\nc.wav,z\n', "line 3: a quote that opens a field there "
                                               "is never closed"),  # it had said 'after line 2'
    ('path,label\na.wav,"x"y\n', "line 2: not readable CSV \\(',' expected after '\"': a field "
                                 "with quotes in it is quoted whole, its quotes doubled\\)"),
])
def test_manifest_without_what_it_needs(tmp_path, text, message):
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(BuildError, match=f"m.csv: {message}"):
        read_inputs([manifest])


def test_columns_named_otherwise_are_given_by_columns_and_labels_spelt_two_ways_warned_of(
        tmp_path, caplog):
    for i in range(6):
        _wav(tmp_path / f"{i}-a.wav", k=i % 2)
    manifest = tmp_path / "esc.csv"  # as ESC-50's meta/esc50.csv names its columns
    manifest.write_text("filename,fold,category,src_file\n" + "".join(
        f"{i}-a.wav,{i % 3},{'dog rain'.split()[i % 2]},{i // 2}\n" for i in range(6)))
    options = InputOptions(columns=" group=src_file, path=filename,label=category")
    assert options.columns == "path=filename,label=category,group=src_file"  # in role order
    assert InputOptions.from_attrs(options.to_attrs("manifest")) == \
        dataclasses.replace(options, layout="manifest")
    read = read_inputs([manifest], dataclasses.replace(options, valid_fraction=0.4))
    notes = [n for notes, _ in read.splits.values() for n in [notes]]
    assert read.labels == ("dog", "rain")
    assert sorted(name for n in notes for name in n.names) == [f"{i}-a.wav" for i in range(6)]
    assert all(set(n.group) <= {"0", "1", "2"} and sorted(n.meta) == ["fold"] for n in notes)
    with pytest.raises(BuildError, match=r"esc.csv: no path, label column .*give them with "
                                         r"--columns path=COLUMN,label=COLUMN; found: filename"):
        read_inputs([manifest])
    with pytest.raises(BuildError, match=r"no file column \(--columns path=file,label=category"):
        read_inputs([manifest], InputOptions(columns="path=file,label=category"))
    with pytest.raises(BuildError, match=r"--columns path=filename,label=category,group="
                                         r"src_file: names a manifest's columns; these inputs "
                                         r"are class folders"):
        read_inputs([tmp_path], options)
    for columns, message in (("lable=category", "'lable=category' is not ROLE=COLUMN"),
                             ("path=a,path=b", "path is given twice"),
                             ("path=a,label=a", "the column 'a' gives two roles")):
        with pytest.raises(BuildError, match=f"--columns '{columns}': {message}"):
            InputOptions(columns=columns)
    manifest.write_text(manifest.read_text().replace(",rain,", ",Dog ,"))
    read_inputs([manifest], options)
    assert "2 labels differ only in their case or spaces (first: 'Dog', 'dog'): each is a " \
           "class of its own; give them one spelling if they are one" in caplog.text
    manifest.write_text(manifest.read_text().replace("fold", "label"))
    with pytest.raises(BuildError, match=r"esc.csv: has a column named 'label', and \(--columns "
                                         r".*\) takes the label from 'category': rename that"):
        read_inputs([manifest], options)


def test_a_manifests_free_text_may_be_long_and_its_names_may_not(tmp_path):
    for i in range(3):
        _wav(tmp_path / f"c{i}.wav", k=i % 2)
    note = "a long transcript. " * 300  # 5,700 characters
    (tmp_path / "set.csv").write_text(f"path,label,split,notes\nc0.wav,a,train,{note}\n"
                                      f"c1.wav,b,train,short\nc2.wav,{'b' * 5000},train,\n")
    notes, problems = read_inputs([tmp_path / "set.csv"]).splits["train"]
    assert notes.names == ["c0.wav", "c1.wav"] and notes.meta["notes"][0] == note.strip()
    assert problems == [("c2.wav", "line 4: label is 5000 characters long (at most 4096)")]


def _refuse_to_list(folder, monkeypatch):
    """``os.scandir(folder)`` raises as for a folder without read permission (root, who runs
    the tests here, reads any)."""
    import os
    scandir = os.scandir

    def refusing(path="."):
        if os.fspath(path) == os.fspath(folder):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)
    monkeypatch.setattr(os, "scandir", refusing)


def test_a_notes_folder_that_cannot_be_read_and_a_manifest_that_is_no_file(tmp_path,
                                                                            monkeypatch):
    from pathlib import Path
    with pytest.raises(BuildError, match="/dev/zero: a manifest is a CSV file; this is not a "
                                         "regular file"):
        read_inputs([Path("/dev/zero")], InputOptions(layout="manifest"))
    with pytest.raises(BuildError, match=f"{tmp_path}: a manifest is a CSV file; this is a "
                                         f"folder"):
        read_inputs([tmp_path], InputOptions(layout="manifest"))
    _refuse_to_list(tmp_path, monkeypatch)
    with pytest.raises(BuildError, match=rf"{tmp_path}: the folder cannot be read \(Permission "
                                         r"denied\)"):
        read_inputs([tmp_path])


def test_manifest_that_is_not_text(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"path,label\n\xff\xfe\x00bad,x\n")
    with pytest.raises(BuildError, match=r"m.csv: not a readable CSV file: not UTF-8 text "
                                         r"\(line 2, byte 11: invalid start byte; save it as "
                                         r"UTF-8\)"):
        read_inputs([manifest])
    from featurestore.rows import _not_utf8
    manifest.write_bytes(b"path,label\n" + b"a.wav,x\n" * 3 + "caf\u00e9\n".encode("latin-1"))
    for block in (1, 2, 5, 1 << 20):  # the same, whatever blocks it is read in
        assert _not_utf8(manifest, block) == "not UTF-8 text (line 5, byte 38: invalid " \
                                             "continuation byte; save it as UTF-8)"
    manifest.write_bytes(manifest.read_bytes()[:-1])  # cut short in its last character
    assert {_not_utf8(manifest, block) for block in (1, 2, 1 << 20)} == {
        "not UTF-8 text (line 5, byte 38: unexpected end of data; save it as UTF-8)"}


def test_inputs_of_two_layouts_and_bad_options(tmp_path):
    folders = _class_folders(tmp_path / "set")
    from tests.helpers import make_tone_root
    nsynth = make_tone_root(tmp_path / "nsynth", 4, 2, 0)
    with pytest.raises(BuildError, match=rf"different layouts \({folders}: class folders; "
                                         rf"{nsynth}: NSynth's layout\); a store holds notes of "
                                         rf"one layout: build them one layout at a time$"):
        read_inputs([folders, nsynth])  # --layout folders would label NSynth's notes 'audio'
    (tmp_path / "empty").mkdir()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "train.h5").write_bytes(b"")
    with pytest.raises(BuildError, match=rf"{tmp_path / 'empty'}: an empty folder; "
                                         rf"{tmp_path / 'store'}: a store, not notes\)"):
        read_inputs([nsynth, tmp_path / "empty", tmp_path / "store"])
    with pytest.raises(BuildError, match="--group-by applies|group_by applies"):
        read_inputs(nsynth, InputOptions(group_by="x"))
    with pytest.raises(BuildError, match="not a regular expression"):
        InputOptions(group_by="(")
    with pytest.raises(BuildError, match="--group-by '': an empty expression groups nothing"):
        InputOptions(group_by="")  # ignored, and not recorded, before
    with pytest.raises(BuildError, match="--windows"):
        InputOptions(windows=0)
    with pytest.raises(BuildError, match="leave groups for train"):
        InputOptions(valid_fraction=0.5, test_fraction=0.5)


def test_a_kept_split_of_another_label_set_is_refused(tmp_path):
    root = _class_folders(tmp_path / "set")
    build_store(root, tmp_path / "store", jobs=1, progress=False)
    _wav(root / "train" / "zither" / "z.wav", k=2)
    with pytest.raises(BuildError, match=r"label set \(cello, dog_bark, kettle\).*zither\) "
                                         r"\(only in the inputs: \(zither\)\); use --overwrite"):
        build_store(root, tmp_path / "store", jobs=1, progress=False)
    build_store(root, tmp_path / "store", jobs=1, progress=False, overwrite=True)


def test_a_split_drawn_beside_kept_ones_with_other_options_is_refused(tmp_path, caplog):
    root = tmp_path / "set"
    for k, label in enumerate(CLASSES):
        for player in range(8):
            _wav(root / label / f"p{player}_{k}.wav", seconds=0.3, k=k)
    store = tmp_path / "store"

    def options(test):
        return InputOptions(group_by=r"^(p\d)_", valid_fraction=0.3, test_fraction=test)
    build_store(root, store, inputs=options(0.0), jobs=1, progress=False)
    before = {p.name: p.read_bytes() for p in store.iterdir()}
    with pytest.raises(BuildError, match=r"train.h5: its notes were read with --test-fraction "
                                         r"0, and this build reads them with --test-fraction "
                                         r"0.3: a split drawn now beside it could hold its "
                                         r"notes; give the store's options, or --overwrite"):
        build_store(root, store, inputs=options(0.3), jobs=1, progress=False)  # train's groups
    assert {p.name: p.read_bytes() for p in store.iterdir()} == before
    with pytest.raises(BuildError, match=r"its notes were read with --test-fraction 0, and"):
        build_store(root, store, inputs=options(0.3), jobs=1, progress=False, splits=["test"])
    build_store(root, store, inputs=options(0.3), jobs=1, progress=False, splits=["train"])
    assert "train.h5: kept, but its notes were read with --test-fraction 0 (now " \
           "--test-fraction 0.3); use --overwrite to rebuild" in caplog.text  # nothing built
    assert "changed since it was built" not in caplog.text  # said once, as what it is
    assert {p.name: p.read_bytes() for p in store.iterdir()} == before
    no_valid = InputOptions(group_by=r"^(p\d)_", valid_fraction=0.0, test_fraction=0.0)
    build_store(root, store, inputs=no_valid, jobs=1, progress=False, overwrite=True)
    assert sorted(p.name for p in store.glob("*.h5")) == ["train.h5"]  # every note is train's
    assert "valid.h5: removed: this build, drawing every split again, makes no valid split" \
        in caplog.text  # it had stayed, its notes all in train, and train validated on them
    given = _class_folders(tmp_path / "given")  # train/ valid/ test/ folders: nothing drawn
    build_store(given, tmp_path / "given-store", jobs=1, progress=False, splits=["train"])
    by_take = InputOptions(group_by=r"^(take\d)_")  # groups balance training: compared
    with pytest.raises(BuildError, match=r"read with no --group-by, and this build reads them "
                                         r"with --group-by '\^\(take\\d\)_': a store's splits "
                                         r"are read one way"):
        build_store(given, tmp_path / "given-store", inputs=by_take, jobs=1, progress=False)
    build_store(given, tmp_path / "given-store", jobs=1, progress=False,
                inputs=InputOptions(valid_fraction=0.3, test_fraction=0.3))  # they draw nothing
    with pytest.raises(BuildError, match=r"its inputs were read with no --group-by; --add"):
        build_store(given, tmp_path / "given-store", inputs=by_take, jobs=1, progress=False,
                    add=True)


def test_audio_files_below_a_folder_are_sorted_and_a_link_loop_ends(tmp_path):
    from featurestore.rows import audio_files
    for name in ("b/2.WAV", "b/1.flac", "a.mp3", "notes.txt", ".hidden.wav", ".cache/x.wav",
                 "c/d/e.ogg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "c" / "d" / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "a_link").symlink_to(tmp_path / "c", target_is_directory=True)
    outside = tmp_path.parent / f"{tmp_path.name}-takes"
    (outside / "more").mkdir(parents=True)
    (outside / "more" / "x.wav").write_bytes(b"")
    (tmp_path / "b" / "takes").symlink_to(outside, target_is_directory=True)
    (tmp_path / "b" / "takes2").symlink_to(outside, target_is_directory=True)
    (outside / "more" / "back").symlink_to(outside, target_is_directory=True)
    found = [p.relative_to(tmp_path).as_posix() for p in audio_files(tmp_path)]
    # a folder inside is read under its own name; one outside once, through the first link
    assert found == ["a.mp3", "b/1.flac", "b/2.WAV", "b/takes/more/x.wav", "c/d/e.ogg"]


def test_a_folder_that_cannot_be_read_is_named_not_passed_over(tmp_path, monkeypatch, capsys,
                                                               caplog):
    from analysis.cli import main
    from featurestore.rows import audio_files
    for label in ("cello", "viola"):
        (tmp_path / "notes" / label / "takes").mkdir(parents=True)
        for i in range(4):
            sf.write(tmp_path / "notes" / label / "takes" / f"{i}.wav", tone(40 + i), SR)
    locked = tmp_path / "notes" / "viola" / "takes"
    _refuse_to_list(locked, monkeypatch)
    with pytest.raises(BuildError, match=rf"{locked}: the folder cannot be read \(Permission "
                                         r"denied\)"):
        list(audio_files(tmp_path / "notes"))
    assert main(["build", str(tmp_path / "notes"), str(tmp_path / "store"), "--jobs", "1",
                 "-q"]) == 0
    skipped = [line for line in capsys.readouterr().out.splitlines() if "skipped in" in line]
    assert skipped == ["  skipped in train: viola/takes/: the folder cannot be read "
                       "(Permission denied)"]
    # predict and place: the other folders' files go on, one given that cannot be read stops
    from analysis.arguments import CommandError, audio_arguments
    cello = sorted((tmp_path / "notes" / "cello" / "takes").iterdir())
    assert audio_arguments([tmp_path / "notes", cello[0]]) == cello + [cello[0]]
    assert f"{locked}: the folder cannot be read (Permission denied); its files are left " \
           f"out" in caplog.text
    with pytest.raises(CommandError, match=rf"^{locked}: the folder cannot be read \(Permission "
                                           rf"denied\)$"):
        audio_arguments([cello[0], locked])
    assert main(["predict", str(tmp_path / "model"), str(tmp_path / "notes")]) == 1
    assert f"{tmp_path / 'model'}: " in caplog.text  # the files found go on, to the model


def test_window_offsets():
    assert window_offsets(10.0, 4.0, 4.0).tolist() == [0.0, 4.0, 8.0]
    assert window_offsets(9.0, 4.0, 2.0).tolist() == [0.0, 2.0, 4.0, 6.0]
    assert window_offsets(4.0, 4.0, 1.0).tolist() == [0.0]
    assert window_offsets(2.5, 4.0, 1.0).tolist() == [0.0]
    assert window_offsets(5.0, 4.0, 10.0).tolist() == [0.0]  # a hop past the end adds none
    assert window_offsets(8.00001, 4.0, 4.0).tolist() == [0.0, 4.0]  # no window of padding
    for hop in (-1.0, 0.001, float("inf")):
        with pytest.raises(ValueError, match="at least 0.01"):
            window_offsets(5.0, 4.0, hop)


def test_windows_further_apart_than_a_clip_are_warned_of(tmp_path, caplog):
    root = tmp_path / "set"
    _wav(root / "train" / "a" / "long.wav", seconds=12.0, k=0)
    read_inputs(root, InputOptions(windows=4.0, valid_fraction=0.0, test_fraction=0.0),
                clip_seconds=4.0)
    assert "unheard" not in caplog.text
    read = read_inputs(root, InputOptions(windows=5.0, valid_fraction=0.0, test_fraction=0.0),
                       clip_seconds=4.0)
    assert read.splits["train"][0].offset.tolist() == [0, 5, 10]
    assert "windows every 5 s of 4 s clips leave 1 s between them unheard (20 % of a " \
           "recording); a hop of at most 4 s hears all of it" in caplog.text
    from featurestore.offsets import warn_of_gaps
    warn_of_gaps(1e308, 4.0)
    assert "leave 1e+308 s between them unheard (100 % of a recording)" in caplog.text  # not inf


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
    y, adjustments = load_audio(path, params, offset=3000.0, hop=4.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * params.n_samples * 4  # a few clips' worth, not the file's 115 MB
    np.testing.assert_allclose(y, tone(40, seconds=4.0), atol=1e-4)
    assert adjustments == []


def test_a_resampled_window_is_the_whole_recording_resampled(tmp_path):
    import soxr
    from featurestore.audio import load_audio
    from featurestore.params import FeatureParams
    rate = 44100
    t = np.arange(6 * rate) / rate
    noise = np.random.default_rng(0).standard_normal(len(t))
    y = np.stack([0.3 * np.sin(2 * np.pi * (200 + 40 * t) * t), 0.2 * noise], axis=1)
    params = FeatureParams(duration=1.5)
    for subtype in ("PCM_16", "FLOAT"):  # numba's reader, libsndfile's
        sf.write(tmp_path / f"{subtype}.wav", y.astype(np.float32), rate, subtype=subtype)
        whole = sf.read(tmp_path / f"{subtype}.wav", dtype="float32")[0].mean(axis=1)
        resampled = soxr.resample(whole, rate, SR, quality="HQ")
        for offset in (0.0, 0.01, 1.5, 3.0, 4.41, 0.2001, 1.2345):  # off the 10 ms grid too
            window, _ = load_audio(tmp_path / f"{subtype}.wav", params, offset=offset, hop=1.5)
            start = round(offset * SR)  # a click at each window's start: resampled from there
            np.testing.assert_allclose(window, resampled[start:start + params.n_samples],
                                       atol=1e-6)


def test_an_mp3_s_clip_or_window_is_what_decoding_the_whole_file_gives(tmp_path):
    from featurestore.audio import load_audio
    from featurestore.params import FeatureParams
    t = np.arange(40 * SR) / SR
    y = (0.3 * np.sin(2 * np.pi * (200 + 30 * t) * t)).astype(np.float32)
    y[::SR // 3] += 0.5  # clicks: what a decoder that starts cold gets wrong
    sf.write(tmp_path / "chirp.mp3", y, SR, format="MP3")
    whole = sf.read(tmp_path / "chirp.mp3", dtype="float32")[0]
    params = FeatureParams()
    for offset in (4.5, 9.0, 13.5, 22.5, 31.5):
        window, _ = load_audio(tmp_path / "chirp.mp3", params, offset=offset, hop=4.5)
        start = round(offset * SR)  # the features' rate: no resampling here
        # its first tens of milliseconds came out silent or wrong, decoded from the window on
        np.testing.assert_allclose(window, whole[start:start + params.n_samples], atol=1e-5)
    sine = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # small frames: their data
    sf.write(tmp_path / "sine.mp3", sine, SR, format="MP3")  # begins a dozen frames before
    whole = sf.read(tmp_path / "sine.mp3", dtype="float32")[0]
    for offset in (4.0, 8.0, 20.0, 36.0):  # wrong for 0.45 s after a seek: 0.2 s before it
        window, _ = load_audio(tmp_path / "sine.mp3", params, offset=offset, hop=4.0)
        start = round(offset * SR)  # was not enough
        np.testing.assert_allclose(window, whole[start:start + params.n_samples], atol=1e-5)
    stereo = np.stack([y[:30 * SR], y[:30 * SR][::-1]], axis=1)
    sf.write(tmp_path / "stereo.mp3", stereo, SR, format="MP3")
    whole = sf.read(tmp_path / "stereo.mp3", dtype="float32")[0].mean(axis=1)
    long = FeatureParams(duration=20.0)  # more frames than one of the reader's blocks
    clip, _ = load_audio(tmp_path / "stereo.mp3", long)
    # where each block's read began, libsndfile's MP3 decoder gave other samples
    np.testing.assert_allclose(clip, whole[:long.n_samples], atol=1e-5)


def test_a_header_that_claims_more_than_the_file_holds_is_not_cut_into_windows(tmp_path):
    from featurestore.audio import AudioError
    from featurestore.windows import audio_seconds
    path = tmp_path / "lie.flac"
    sf.write(path, tone(20, seconds=1.0), SR)
    data = bytearray(path.read_bytes())
    at = 4 + 4 + 10  # fLaC, the block header, then STREAMINFO's fields before the sample count
    field = int.from_bytes(data[at:at + 8], "big") | (2 ** 36 - 1)  # 2**36 samples claimed
    data[at:at + 8] = field.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match="header declares 68719476735 frames"):
        audio_seconds(path)
    wav = tmp_path / "lie.wav"  # a data chunk that says an hour and holds 3 s
    sf.write(wav, tone(20, seconds=3.0), SR, subtype="PCM_16")
    data = bytearray(wav.read_bytes())
    at = data.index(b"data") + 4
    data[at:at + 4] = (3600 * SR * 2).to_bytes(4, "little")
    wav.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=f"header declares {3600 * SR} frames, the file holds "
                                         f"{3 * SR}"):
        audio_seconds(wav)
    root = tmp_path / "set"
    _wav(root / "train" / "a" / "ok.wav", seconds=2.0)
    (root / "train" / "b").mkdir(parents=True)
    path.rename(root / "train" / "b" / "lie.flac")
    wav.rename(root / "train" / "b" / "lie.wav")
    read = read_inputs(root, InputOptions(windows=1.0))
    notes, problems = read.splits["train"]
    assert notes.names == ["a/ok.wav@0.000"]
    assert [name for name, _ in problems] == ["b/lie.flac", "b/lie.wav"]  # once each, uncut


def test_groups_that_match_nothing_or_are_empty_are_the_files_alone(tmp_path, caplog):
    root = tmp_path / "set"
    for k, label in enumerate(("a", "b")):
        for i in range(6):
            _wav(root / label / f"take{i}.wav", seconds=0.3, k=k)
    for pattern in (r"^(x)?", r"(\d*)", r"^nothing"):
        read = read_inputs(root, InputOptions(group_by=pattern, valid_fraction=0.3,
                                              test_fraction=0.3))
        groups = [g for notes, _ in read.splits.values() for g in notes.group]
        assert sorted(groups) == sorted(f"{lab}/take{i}.wav" for lab in "ab" for i in range(6))
    # said as the shell takes it back
    assert "--group-by '^nothing' found no group (no match, or an empty one) in 12 of the 12 " \
           "file names: each of those files is a group of its own" in caplog.text
    assert "--group-by '(\\d*)' found no group" in caplog.text  # matched, but empty


def test_a_group_by_that_puts_every_file_in_one_group_says_so(tmp_path, caplog):
    from featurestore.layouts import drawn_split
    names = [f"g{i}" for i in range(100)]
    kept = next(n for n in names if drawn_split(n, 0.3, 0.3) == "train")
    lost = next(n for n in names if drawn_split(n, 0.3, 0.3) != "train")
    options = InputOptions(group_by=r"^(g\d+)_", valid_fraction=0.3, test_fraction=0.3)
    for group in (kept, lost):
        for k, label in enumerate(("a", "b")):
            for i in range(3):
                _wav(tmp_path / group / label / f"{group}_{i}.wav", seconds=0.3, k=k)
    read_inputs(tmp_path / kept, options)
    assert f"{tmp_path / kept}: the one group was not drawn into valid (all 6 files are in " \
           f"one group, {kept!r})" in caplog.text
    with pytest.raises(BuildError, match=rf"the one group was not drawn into train \(all 6 "
                                         rf"files are in one group, '{lost}'; valid 0.3, test "
                                         rf"0.3 of the groups\); give more groups"):
        read_inputs(tmp_path / lost, options)

def test_a_fraction_of_zero_asks_for_no_split_and_is_not_warned_of(tmp_path, caplog):
    root = tmp_path / "set"
    for k, label in enumerate(("a", "b")):
        _wav(root / label / f"{label}.wav", k=k)
    read = read_inputs(root, InputOptions(valid_fraction=0.0, test_fraction=0.0))
    assert list(read.splits) == ["train"] and "drawn into" not in caplog.text
    read_inputs(root, InputOptions(valid_fraction=1e-9, test_fraction=1e-9))  # asked for
    assert "none of the 2 groups was drawn into valid" in caplog.text
    build_store(root, tmp_path / "store", jobs=1, progress=False,
                inputs=InputOptions(valid_fraction=1e-9, test_fraction=1e-9))
    assert "store: no valid split: 'timbremap train' needs one, to pick its best epoch and " \
           "when to stop (give more groups, or a larger --valid-fraction)" in caplog.text


def test_drawn_splits_that_leave_train_nothing_are_refused(tmp_path):
    root = tmp_path / "set"
    for k, label in enumerate(("a", "b")):
        _wav(root / label / "p1_x.wav", k=k)
    options = InputOptions(group_by=r"^(p\d)_", valid_fraction=0.45, test_fraction=0.5)
    group = "p1"
    from featurestore.layouts import drawn_split
    if drawn_split(group, 0.45, 0.5) == "train":  # the test needs the group drawn elsewhere
        options = InputOptions(group_by=r"^(p\d)_", valid_fraction=0.0, test_fraction=0.05)
    assert drawn_split(group, options.valid_fraction, options.test_fraction) != "train"
    with pytest.raises(BuildError, match="the one group was not drawn into train .all 2 "
                                         "files are in one group, 'p1'; valid .* of the groups"):
        read_inputs(root, options)


def test_a_manifest_group_follows_the_split_its_other_rows_give(tmp_path):
    data = tmp_path / "data"
    rows = ["path,label,split,group"]
    for i in range(12):
        _wav(data / f"g{i}_a.wav", k=i % 2)
        _wav(data / f"g{i}_b.wav", k=i % 2)
        rows += [f"g{i}_a.wav,{'xy'[i % 2]},test,g{i}", f"./g{i}_b.wav,{'xy'[i % 2]},,g{i}"]
    rows.append(f"{data / 'g0_a.wav'},x,test,g0")  # the same file, written otherwise
    (data / "m.csv").write_text("\n".join(rows) + "\n")
    read = read_inputs([data / "m.csv"])
    assert set(read.splits) == {"test"} or not read.splits.get("train")
    notes, problems = read.splits["test"]
    assert len(notes) == 24
    assert [why for name, why in problems] == ["line 26: path given again (first on line 2)"]


@pytest.mark.parametrize("header, message", [
    ("path,label,a/b", "column 'a/b' cannot name a metadata dataset"),
    ("path,label,.", "column '.' cannot name a metadata dataset"),
    ("path,label,mic,mic", "the column 'mic' is given more than once"),
    ("path,label,mic,mic,b,b", "the columns 'b', 'mic' are given more than once"),
])
def test_manifest_columns_that_cannot_be_stored(tmp_path, header, message):
    _wav(tmp_path / "a.wav")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"{header}\na.wav,x,1" + (",2" if header.count(",") == 3 else "")
                        + "\n")
    with pytest.raises(BuildError, match=f"m.csv: {message}"):
        read_inputs([manifest])


def test_file_names_that_are_not_utf8_are_skipped_not_a_crash(tmp_path):
    import os
    root = tmp_path / "set"
    for split in ("train", "valid"):
        _wav(root / split / "a" / "ok.wav")
    bad = os.fsencode(root / "train" / "a") + b"/caf\xe9.wav"
    _wav(root / "train" / "a" / "tmp.wav").rename(os.fsdecode(bad))
    build_store(root, tmp_path / "store", jobs=1, progress=False)
    with h5py.File(tmp_path / "store" / "train.h5", "r") as f:
        assert f[schema.NAMES].asstr()[:].tolist() == ["a/ok.wav"]
        (name, reason), = f[schema.SKIPPED].asstr()[:].tolist()
        assert name == "a/caf\\udce9.wav" and "not valid Unicode" in reason


def test_manifest_given_as_any_file_with_the_layout_said(tmp_path):
    _wav(tmp_path / "a.wav")
    _wav(tmp_path / "b.wav", k=1)
    (tmp_path / "list.txt").write_text("path,label,split\na.wav,x,train\nb.wav,y,train\n")
    read = read_inputs([tmp_path / "list.txt"], InputOptions(layout="manifest"))
    assert read.labels == ("x", "y")


def test_per_recording_accuracy_groups_clips_by_folder_and_file(tmp_path):
    from training.evaluate import _per_file
    store = tmp_path / "store"
    store.mkdir()
    folders = [1, 11, 1, 11, 1]  # (1, "1x/a.wav") and (11, "x/a.wav") are other recordings
    files = ["1x/a.wav", "x/a.wav", "1x/a.wav", "x/a.wav", "b.wav"]
    labels = np.array([0, 1, 0, 1, 1])
    with h5py.File(store / "test.h5", "w") as f:
        f[schema.SPECTRA] = np.zeros((5, 2, 2), np.float16)
        f[schema.LABELS] = labels
        f[schema.SOURCE_FOLDER] = np.array(folders, np.int16)
        f[schema.SOURCE_FOLDER].attrs[schema.LIST_NAMES] = [f"notes{k}" for k in range(12)]
        f.create_dataset(schema.FILE, data=np.array(files, dtype=object), dtype=schema.STRING)
    # clip by clip 3 of 5 right; by recording (means): 1x/a.wav right, x/a.wav wrong, b right
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    result = _per_file(store, "test", labels, probabilities)
    assert result["n"] == 3 and result["accuracy"] == pytest.approx(2 / 3)


def test_map_copies_each_recording_once_and_plays_each_window_alone(tmp_path, caplog):
    import json
    import urllib.parse
    from analysis.mapview import write_map
    from analysis.placements import Placed, write_placed
    root = tmp_path / "set"
    for k, label in enumerate(("a", "b")):  # the same file name in both class folders
        _wav(root / "train" / label / "take.wav", seconds=6.0, k=k)
        _wav(root / "valid" / label / "take.wav", k=k)
    build_store(root, tmp_path / "store", inputs=InputOptions(windows=2.0), jobs=1,
                progress=False)
    with h5py.File(tmp_path / "store" / "train.h5", "r+") as f:
        n = f[schema.SPECTRA].shape[0]
        f[schema.TSNE] = np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32)
        offsets = f[schema.OFFSET][:]
    with pytest.raises(StoreError, match=r"valid.h5: no /tsne map \(run 'timbremap tsne .* "
                                         r"--split valid' first, or give --split with a split "
                                         r"that has one: train\)"):  # the second split has none
        write_map(tmp_path / "store", tmp_path / "failed", ["train", "valid"], copy_audio=True)
    assert not (tmp_path / "failed").exists()  # a map that fails copies nothing
    new = _wav(tmp_path / "new.wav", k=1)
    write_placed(tmp_path / "store", [Placed(str(new), "train", x=0.0, y=0.0, family="b")])
    page = write_map(tmp_path / "store", tmp_path / "map", ["train"], copy_audio=True)
    text = page.read_text()
    data = json.loads(text.split("const DATA = ", 1)[1].split(";\n", 1)[0])
    links = data["splits"]["train"]["audio"]
    copies = sorted((tmp_path / "map" / "audio" / "train").iterdir())
    assert len(copies) == 2  # two recordings, however many windows
    assert [link.split("#")[1] for link in links] == [f"t={o:g},{o + 4:g}" for o in offsets]
    for link, label in zip(links, ("a", "a", "b", "b")):
        copy = tmp_path / "map" / urllib.parse.unquote(link.split("#")[0])
        assert copy.read_bytes() == (root / "train" / label / "take.wav").read_bytes()
    placed, = data["placed"]  # a placed sound is copied too: the folder plays on its own
    assert (tmp_path / "map" / urllib.parse.unquote(placed["audio"])).read_bytes() == \
        new.read_bytes()
    assert write_map(tmp_path / "store", tmp_path / "map", ["train"]) == page  # its own: again
    new.unlink()  # a placed sound gone: its point plays nothing, and that is said
    write_map(tmp_path / "store", tmp_path / "map", ["train"], copy_audio=True)
    assert f"1 of the map's sounds are not there ({new}); their points play nothing" \
        in caplog.text
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<html><title>my site</title></html>")
    from featurestore.errors import InputError
    with pytest.raises(InputError, match=r"site/index.html: is there already and is no map of "
                                         r"timbremap's"):
        write_map(tmp_path / "store", tmp_path / "site", ["train"])
    assert (tmp_path / "site" / "index.html").read_text().endswith("my site</title></html>")
    # without windows a note is a recording's first clip: a longer one plays that clip alone
    _wav(root / "valid" / "a" / "short.wav", seconds=1.0)
    sf.write(root / "train" / "b" / "stereo.wav", np.tile(tone(30, seconds=5.0, sr=22050),
                                                          (2, 1)).T, 22050)  # "downmixed ...; "
    build_store(root, tmp_path / "clips", jobs=1, progress=False)
    for split in ("train", "valid"):
        with h5py.File(tmp_path / "clips" / f"{split}.h5", "r+") as f:
            f[schema.TSNE] = np.zeros((f[schema.SPECTRA].shape[0], 2), np.float32)
            names = f[schema.NAMES].asstr()[:].tolist()
        page = write_map(tmp_path / "clips", tmp_path / f"clips-{split}", [split])
        data = json.loads(page.read_text().split("const DATA = ", 1)[1].split(";\n", 1)[0])
        ends = [link.partition("#")[2] for link in data["splits"][split]["audio"]]
        assert ends == ["t=0,4" if split == "train" else "" for _ in names]  # 6 s, or 4 s or 1 s


def test_a_file_two_manifests_of_one_folder_list_is_refused_naming_both(tmp_path):
    _wav(tmp_path / "clips" / "c0.wav", seconds=0.5, k=0)
    _wav(tmp_path / "clips" / "c1.wav", seconds=0.5, k=1)
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    one.write_text("path,label\nclips/c0.wav,a\n,b\n")
    two.write_text("path,label\nclips/c1.wav,b\n,b\n")  # the empty paths are rows' problems
    read_inputs([one, two])
    two.write_text("path,label\nclips/c0.wav,b\n")
    with pytest.raises(BuildError, match=f"'clips/c0.wav' is listed by {one} and by {two}"):
        read_inputs([one, two])
