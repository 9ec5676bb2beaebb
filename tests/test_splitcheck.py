"""A split file is checked against what it can hold before anything in it is read: a header
that declares more rows than the file's bytes, a per-note dataset of another length, or
/spectra stored so that one note cannot be read alone, is refused naming the file."""
import shutil

import h5py
import numpy as np
import pytest

from analysis.cli import main
from featurestore import SplitDataset
from featurestore.build import build_store
from featurestore.errors import BuildError
from featurestore.reader import SpectraReader
from featurestore.store import StoreError, open_split


@pytest.fixture
def copy(tone_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(tone_store, store)
    return store


def damage(path, name, **create):
    """Replace dataset ``name`` of ``path`` with an empty one made with ``create``."""
    with h5py.File(path, "a") as f:
        dtype = f[name].dtype
        del f[name]
        f.create_dataset(name, dtype=create.pop("dtype", dtype), **create)


@pytest.mark.parametrize("name, create, message", [
    # 4e8 labels declared, none written: 1.6 GB read for a file of a few MB
    ("labels", dict(shape=(4 * 10**8,), chunks=(10**6,)),
     r"/labels declares \(400000000,\) int32 \(1,600,000,000 bytes\), more than the whole file"),
    ("spectra", dict(shape=(10**6, 251, 513), chunks=(1, 251, 513)), "/spectra declares"),
    ("names", dict(shape=(3,), dtype=h5py.string_dtype()), "/names has 3 rows but /spectra 11"),
    ("spectra", dict(data=np.zeros((11, 251, 513), np.float16), chunks=(11, 251, 513)),
     "/spectra is stored in chunks of 11 notes"),
    ("spectra", dict(data=np.zeros((11, 251, 513), np.float16), chunks=(1, 251, 513),
                     compression="gzip"), r"/spectra is stored with filters \(deflate\)"),
    ("pitch", dict(data=np.zeros(11, np.int16), chunks=(11,), fletcher32=True),
     r"/pitch is stored with filters \(fletcher32\)"),
])
def test_a_split_that_declares_what_it_cannot_hold_is_refused(copy, name, create, message):
    path = copy / "test.h5"
    damage(path, name, **create)
    with pytest.raises(StoreError, match=f"{path}: {message}"):
        open_split(copy, "test").close()
    with pytest.raises(StoreError, match=message):
        SpectraReader(path)


def test_a_dataset_another_program_added_is_left_alone(copy, capsys):
    with h5py.File(copy / "test.h5", "a") as f:  # of any length, compressed, sparse, empty
        f.create_dataset("my_scores", data=np.zeros((3, 4)), compression="gzip")
        f.create_dataset("my_sparse", shape=(10**6, 100), chunks=(1000, 100))
        f.create_dataset("my_empty", data=h5py.Empty("f4"))
    with open_split(copy, "test") as f:
        assert f["my_scores"].shape == (3, 4)
    assert main(["inspect", str(copy)]) == 0
    assert "my_scores float64 (3, 4)" in capsys.readouterr().out


def test_one_of_our_datasets_with_no_dataspace_is_refused(copy):
    with h5py.File(copy / "test.h5", "a") as f:
        del f["pitch"]
        f.create_dataset("pitch", data=h5py.Empty("i2"))
    with pytest.raises(StoreError, match=r"test.h5: /pitch is empty \(no dataspace\)"):
        open_split(copy, "test").close()


def test_inspect_of_a_damaged_split_names_it_and_describes_the_others(copy, caplog, capsys):
    damage(copy / "valid.h5", "labels", shape=(4 * 10**8,), chunks=(10**6,))
    with open(copy / "test.h5", "r+b") as f:  # cut short
        f.truncate(4096)
    assert main(["inspect", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "== train: " in out  # what can be read is shown: nothing was, before
    assert "== valid: cannot be read: " in out and "valid.h5: /labels declares" in out
    assert "== test: cannot be read: " in out and "test.h5" in out
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [f"error: {copy}: 2 splits of it cannot be read (above)"], errors


def held_elsewhere(path, kind, other):
    """Make a name of split file ``path`` reach outside it, into file ``other``."""
    with h5py.File(path, "a") as f:
        if kind == "external link":
            f["extra"] = h5py.ExternalLink(str(other), "/x")
        elif kind == "soft link":
            f["metadata/alias"] = h5py.SoftLink("/spectra")
        elif kind == "external storage":  # /labels read from any file's bytes
            n = f["labels"].shape[0]
            del f["labels"]
            f.create_dataset("labels", shape=(n,), dtype="i4", external=[(str(other), 0, 4 * n)])
        else:  # a virtual dataset
            n = f["pitch"].shape[0]
            layout = h5py.VirtualLayout(shape=(n,), dtype="i2")
            layout[:] = h5py.VirtualSource(str(other), "pitch", shape=(n,))
            del f["pitch"]
            f.create_virtual_dataset("pitch", layout)


@pytest.mark.parametrize("kind, message", [
    ("external link", r"/extra is a link to /x in .*other"),
    ("soft link", r"/metadata/alias is a link to /spectra"),
    ("external storage", r"/labels is stored in other files \(.*other\)"),
    ("virtual dataset", r"/pitch is a virtual dataset, its data in other files"),
])
def test_a_split_that_reaches_into_other_files_is_refused_before_they_are_read(
        copy, tone_root, tmp_path, kind, message):
    # a pipe there would block every read, and any file would be read as the store's data
    other = tmp_path / "other"
    other.write_bytes(bytes(4096))
    held_elsewhere(copy / "test.h5", kind, other)
    message = f"{copy / 'test.h5'}: {message}; a store holds its data itself"
    with pytest.raises(StoreError, match=message):
        open_split(copy, "test").close()
    with pytest.raises(StoreError, match=message):
        SpectraReader(copy / "test.h5")
    with pytest.raises(BuildError, match=message):  # a build keeping the split
        build_store(tone_root, copy, jobs=1, progress=False)


@pytest.mark.parametrize("change, message", [
    (lambda f: f["labels"].__setitem__(0, 999),
     r"/labels holds 999, but its attr names lists 11 names \(indices 0 to 10\)"),
    (lambda f: f["source_folder"].__setitem__(0, -1),
     r"/source_folder holds -1, but its attr names lists 1 name \(indices 0 to 0\)"),
    (lambda f: f["source_folder"].attrs.__delitem__("names"),
     r"/source_folder holds 0, but its attr names lists 0 names"),
    (lambda f: (f.__delitem__("pitch"), f.create_dataset("pitch", data=np.array(["x"] * 11,
                                                                               dtype="S2"))),
     r"/pitch is stored as \|S2, not as numbers"),
    (lambda f: f["labels"].attrs.__setitem__("names", np.arange(11)),
     r"/labels attr names holds int64 values, not label names"),
    (lambda f: f["offset"].__setitem__(0, np.nan),
     r"/offset holds a time that is not a number of seconds from 0 on"),
    (lambda f: f.attrs.__setitem__("feature_duration", 8.0),
     r"its feature_\* attrs make notes of shape \(501, 513\), but /spectra holds \(251, 513\)"),
])
def test_a_split_whose_values_do_not_fit_its_names_is_refused(copy, capsys, change, message):
    with h5py.File(copy / "test.h5", "a") as f:
        change(f)
    with pytest.raises(StoreError, match=f"test.h5: {message}: the file is damaged"):
        open_split(copy, "test").close()
    assert main(["inspect", str(copy)]) == 1  # one line for it, the others described
    out = capsys.readouterr().out
    assert "== test: cannot be read: " in out and "== train: " in out


@pytest.mark.timeout(60)  # a read of the pipe would wait for a writer for good
def test_a_split_that_is_a_pipe_or_a_folder_is_said_to_be_one(copy):
    import os
    (copy / "test.h5").unlink()
    os.mkfifo(copy / "test.h5")
    with pytest.raises(StoreError, match=r"test.h5: not a file but a pipe, socket or device; a "
                                         r"split is an HDF5 file"):
        open_split(copy, "test")  # it had said "no 'test' split (splits present: ..., test)"
    assert main(["inspect", str(copy)]) == 1  # a pipe is not opened to ask whether it is locked
    (copy / "test.h5").unlink()
    (copy / "test.h5").mkdir()
    with pytest.raises(StoreError, match=r"test.h5: not a file but a folder"):
        SplitDataset(copy, "test")
