"""SplitDataset: a split read by index, in this process and in worker processes however they
start, equal to what plain h5py reads."""
import multiprocessing
import pickle

import h5py
import numpy as np
import pytest

from featurestore import SplitDataset
from featurestore.errors import StoreError
from featurestore.params import FeatureParams
from helpers import read_in_worker, readme_block


def h5(store, split, name, rows):
    with h5py.File(store / f"{split}.h5", "r") as f:
        ds = f[name]
        values = ds.asstr()[:] if h5py.check_string_dtype(ds.dtype) else ds[:]
        return values[rows]


def test_items_and_batches_are_what_h5py_reads(tone_store):
    ds = SplitDataset(tone_store, "train", fields=("spectra", "labels", "names", "pitch"))
    assert len(ds) == 22 and ds.shapes == {"spectra": (251, 513), "labels": (), "names": (),
                                           "pitch": ()}
    x, y, name, pitch = ds[3]
    assert x.dtype == np.float16 and x.shape == (251, 513)
    for same in (np.int64(3), np.array(3)):  # numpy's scalar and 0-d indices: one note too
        assert np.array_equal(ds[same][0], x) and ds[same][2] == name
    assert np.array_equal(x, h5(tone_store, "train", "spectra", 3))
    assert y == h5(tone_store, "train", "labels", 3) and isinstance(name, str)
    assert name == h5(tone_store, "train", "names", 3) and pitch == h5(tone_store, "train",
                                                                        "pitch", 3)
    rows = [5, 0, 21, 5, -1]  # any order, repeats, from the end
    xs, ys, names, _ = ds[rows]
    expected = [5, 0, 21, 5, 21]
    assert xs.shape == (5, 251, 513) and np.array_equal(xs, h5(tone_store, "train", "spectra",
                                                               expected))
    assert np.array_equal(ys, h5(tone_store, "train", "labels", expected))
    assert list(names) == list(h5(tone_store, "train", "names", expected))
    assert np.array_equal(ds[2:6][1], h5(tone_store, "train", "labels", slice(2, 6)))
    assert ds[np.array([], int)][0].shape == (0, 251, 513)
    assert ds[[]][0].shape == ds[range(0)][0].shape == (0, 251, 513)
    x_only, = SplitDataset(tone_store, "valid", fields=("spectra",), method="h5py")[[1]]
    assert np.array_equal(x_only, h5(tone_store, "valid", "spectra", [1]))


def test_a_manifest_s_columns_are_fields(tmp_path):
    import soundfile as sf
    from featurestore.build import build_store
    from helpers import SR, tone
    rows = ["path,label,split,mic"]
    for i in range(6):
        sf.write(tmp_path / f"c{i}.wav", tone(10 + 20 * (i % 2), seconds=0.5), SR)
        rows.append(f"c{i}.wav,{'ab'[i % 2]},{'train' if i < 4 else 'valid'},mic{i}")
    (tmp_path / "set.csv").write_text("\n".join(rows) + "\n")
    build_store([tmp_path / "set.csv"], tmp_path / "store", jobs=1, progress=False)
    ds = SplitDataset(tmp_path / "store", "train", fields=("metadata/mic", "names"))
    assert ds.shapes == {"metadata/mic": (), "names": ()}
    assert ds[1] == ("mic1", "c1.wav") and list(ds[[3, 0]][0]) == ["mic3", "mic0"]
    rooted = SplitDataset(tmp_path / "store", "train", fields=("/metadata/mic", "/names"))
    assert rooted.fields == ("metadata/mic", "names") and rooted[1] == ds[1]  # paths, as h5py


def test_bad_indices_fields_and_splits_say_what_exists(tone_store):
    ds = SplitDataset(tone_store, "test")
    with pytest.raises(IndexError, match="out of range for 11 notes"):
        ds[11]
    with pytest.raises(IndexError, match=r"index -12 \(item 1 of 2\) out of range"):
        ds[[0, -12]]
    with pytest.raises(IndexError, match=r"index 11 \(item 11 of 5000\) out of range for 11 "
                                         r"notes$"):  # the first bad one, not all 5000
        ds[list(range(5000))]
    with pytest.raises(TypeError, match=r"ints or a mask of bools, not both, got \[True, 2\]"):
        ds[[True, 2]]  # which numpy would read as [1, 2]
    with pytest.raises(IndexError, match="out of range for 11 notes"):
        ds[np.array([2 ** 64 - 1], np.uint64)]  # not -1 once cast to int64
    for huge in (2 ** 70, [0, 10 ** 20]):  # beyond int64: numpy's objects
        with pytest.raises(IndexError, match="out of range for 11 notes"):
            ds[huge]
    with pytest.raises(TypeError, match="index must be an int"):
        ds[0.5]
    mask = np.arange(11) % 3 == 0
    assert np.array_equal(ds[mask][1], ds[[0, 3, 6, 9]][1])  # a mask: the notes it holds
    assert np.array_equal(ds[list(mask)][1], ds[[0, 3, 6, 9]][1])
    with pytest.raises(IndexError, match="a mask of 10 values for 11 notes"):
        ds[mask[:10]]
    assert np.array_equal(ds[np.array([1, 2], dtype=object)][1], ds[[1, 2]][1])  # pandas'
    with pytest.raises(TypeError, match="index must be an int"):
        ds[True]  # not a mask of one
    with pytest.raises(ValueError, match=r"fields must be a non-empty sequence of dataset "
                                         r"names, got \(3,\)"):
        SplitDataset(tone_store, "test", fields=(3,))
    with pytest.raises(StoreError, match=r"no dataset /colour \(its per-note datasets: "
                                         r".*labels.*names"):
        SplitDataset(tone_store, "test", fields=("spectra", "colour"))
    with pytest.raises(StoreError, match="no 'nope' split"):
        SplitDataset(tone_store, "nope")
    with pytest.raises(StoreError, match=r"no 'test.h5' split \(splits present: train, valid, "
                                         r"test\); give 'test', without .h5$"):
        SplitDataset(tone_store, "test.h5")
    with pytest.raises(StoreError, match="split must be a name such as train, valid or test, "
                                         "not 3"):
        SplitDataset(tone_store, 3)
    with pytest.raises(StoreError, match="store must be a folder's path or a URL, not 123"):
        SplitDataset(123, "test")
    with pytest.raises(ValueError, match="fields must be a non-empty sequence"):
        SplitDataset(tone_store, "test", fields="labels")


def test_a_split_missing_or_being_built_is_said_so(tone_store, tmp_path):
    from featurestore.reader import SpectraReader
    with pytest.raises(StoreError, match=r"nope.h5: no such file$"):
        SpectraReader(tmp_path / "nope.h5")  # not "not a readable HDF5 file (...errno 2...)"
    (tmp_path / "train.h5").write_bytes((tone_store / "train.h5").read_bytes())
    (tmp_path / "test.h5.partial").write_bytes(b"")  # as while a build writes test
    with pytest.raises(StoreError, match=r"test.h5: the store has no 'test' split \(splits "
                                         r"present: train\); an unfinished build left "
                                         r"test.h5.partial \(run build again to resume\)$"):
        SplitDataset(tmp_path, "test")


def test_problem_lists_and_a_map_s_pca_are_not_per_note_fields(tone_store, tmp_path):
    """``/adjusted`` (a row per note adjusted), ``/skipped`` and a map's PCA are not notes,
    even when they hold as many rows as there are notes."""
    import shutil
    store = tmp_path / "store"
    shutil.copytree(tone_store, store)
    with h5py.File(store / "test.h5", "r+") as f:
        n = len(f["labels"])
        for name in ("adjusted", "skipped"):
            del f[name]
            f[name] = np.array([[f"note{i}", "trimmed"] for i in range(n)], dtype=object).astype(
                h5py.string_dtype())
        f["tsne_pca_components"] = np.zeros((n, 4), np.float32)
        f["odd"] = np.zeros(3)
    with pytest.raises(StoreError, match=fr"/odd is not per-note \(shape \(3,\); the split has "
                                         fr"{n} notes\)"):
        SplitDataset(store, "test", fields=("odd",))
    for field in ("adjusted", "skipped", "tsne_pca_components"):
        with pytest.raises(StoreError, match=fr"/{field} is not per-note: its rows are not the "
                                             fr"notes \(its per-note datasets") as caught:
            SplitDataset(store, "test", fields=(field,))
        listed = str(caught.value).split("its per-note datasets:")[1]
        assert "names" in listed and field not in listed


def test_a_relative_store_path_stays_the_store_it_named(tone_store, tmp_path, monkeypatch):
    """A notebook, Hydra or a worker_init_fn that changes the working folder does not move
    a dataset to another store of the same relative name."""
    import shutil
    other = tmp_path / "elsewhere"
    shutil.copytree(tone_store, other / "store")  # a store of the same name ...
    with h5py.File(other / "store" / "train.h5", "r+") as f:
        f["names"][0] = "changed"  # ... of other content
    monkeypatch.chdir(tone_store.parent)
    ds = SplitDataset(tone_store.name, "train", fields=("names",))
    monkeypatch.chdir(other)
    assert ds[0] == (h5(tone_store, "train", "names", 0),)
    assert ds.path == tone_store.resolve() / "train.h5"


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_workers_open_the_file_themselves_however_they_start(tone_store, method):
    ds = SplitDataset(tone_store, "train", fields=("spectra", "labels", "names"))
    ds[0]  # opened here first: a forked worker must not use this process's handle
    rows = [0, 7, 13, 21, 4, 9]
    with multiprocessing.get_context(method).Pool(2) as pool:
        read = pool.starmap(read_in_worker, [(ds, i) for i in rows])
    assert all(own for _, own in read)  # each worker read through a file it opened itself
    items = [item for item, _ in read]
    for i, (x, y, name) in zip(rows, items):
        assert np.array_equal(x, h5(tone_store, "train", "spectra", i))
        assert y == h5(tone_store, "train", "labels", i)
        assert name == h5(tone_store, "train", "names", i)
    assert ds._opened is not None  # this process's file is still open and usable
    assert np.array_equal(ds[21][0], items[3][0])


def test_a_pickled_dataset_carries_no_open_file(tone_store):
    ds = SplitDataset(tone_store, "valid")
    ds[0]
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._opened is None and len(copy) == len(ds)
    assert np.array_equal(copy[1][0], ds[1][0])
    ds.close()
    ds.close()  # twice is fine, and the next read opens it again
    assert np.array_equal(ds[1][0], copy[1][0])


AT_EXIT = """
import atexit, sys
from featurestore import SplitDataset
opened = []
atexit.register(lambda: print(*("open" if f else "closed" for f in opened)))  # runs last
ds = SplitDataset(sys.argv[1], "train", fields=("spectra", "labels"))
ds[0]
reader, f = ds._open()
opened.extend([reader._file, f])  # the HDF5 files of the spectra and of the labels
"""


def test_files_opened_on_a_url_are_closed_before_python_tears_down(tone_store):
    # an HDF5 file on a Python file object that outlives the interpreter's modules crashes a
    # process as it exits (a PyTorch DataLoader's spawn workers did)
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-c", AT_EXIT, tone_store.resolve().as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.split() == ["closed", "closed"], \
        result.stderr


def test_a_dataset_is_a_context_that_closes_its_files(tone_store):
    with SplitDataset(tone_store, "test", fields=("labels",)) as ds:
        ds[0]
        f = ds._open()[1]
    assert not f.id.valid and ds._opened is None


def test_a_split_that_changed_since_the_dataset_was_made_is_refused(tmp_path):
    import shutil
    from featurestore.build import build_store
    from helpers import make_tone_root
    store = tmp_path / "store"
    build_store(make_tone_root(tmp_path / "a", 6, 3, 0), store, jobs=1, progress=False)
    ds = SplitDataset(store, "train", fields=("spectra", "names"))
    first = ds[2]
    shutil.copyfile(store / "train.h5", tmp_path / "copy.h5")  # a rewrite of the same notes
    (tmp_path / "copy.h5").replace(store / "train.h5")
    ds.close()
    assert ds[2][1] == first[1]
    build_store(make_tone_root(tmp_path / "b", 8, 3, 0), store, jobs=1, progress=False,
                overwrite=True)
    ds.close()
    with pytest.raises(StoreError, match=r"train\.h5: changed since this dataset was made \(6 "
                                         r"notes then, 8 now; built again"):
        ds[2]  # not another note under the same index
    ds = SplitDataset(store, "train", fields=("spectra",))
    ds[0]
    ds.close()  # the same notes built again with other features of the same shape
    build_store(make_tone_root(tmp_path / "b", 8, 3, 0), store, FeatureParams(compression=10),
                jobs=1, progress=False, overwrite=True)
    with pytest.raises(StoreError, match=r"\(its attributes differ: computed, created, "
                                         r"feature_compression; built again"):
        ds[0]
    with h5py.File(store / "valid.h5", "r+") as f:
        f["embeddings"] = np.ones((3, 4), np.float32)
        f["embeddings"].attrs["model_sha1"] = "1234"
    ds = SplitDataset(store, "valid", fields=("embeddings",))
    ds[0]
    ds.close()
    with h5py.File(store / "valid.h5", "r+") as f:  # another model's, of the same shape
        f["embeddings"][...] = 2
        f["embeddings"].attrs["model_sha1"] = "5678"
    with pytest.raises(StoreError, match=r"\(the attributes of /embeddings differ: model_sha1; "
                                         r"built again, grown by build --add, or given other "
                                         r"results\)"):
        ds[0]
    with h5py.File(store / "valid.h5", "r+") as f:  # another model's, of 6 dimensions
        del f["embeddings"]
        f["embeddings"] = np.ones((3, 6), np.float32)
    with pytest.raises(StoreError, match="changed since this dataset was made \\(/embeddings of "
                                         "another shape or type"):
        ds[0]
    with h5py.File(store / "valid.h5", "r+") as f:
        del f["embeddings"]
    with pytest.raises(StoreError, match="changed since this dataset was made \\(no /embeddings "
                                         "any more"):
        ds[0]


def run_snippet(code: str, store):
    namespace = {"__name__": "__main__"}  # as a script runs it
    exec(compile(code.replace('"demo/store"', repr(str(store))), "README.md", "exec"),
         namespace)
    return namespace


def test_the_readme_numpy_loop(tone_store):
    space = run_snippet(readme_block("SplitDataset", "\"names\""), tone_store)
    assert space["x"].shape == (22 % 64, 251, 513) and list(space["names"]) == list(
        h5(tone_store, "train", "names", slice(None)))


def test_the_readme_pytorch_loader(tone_store):
    pytest.importorskip("torch")
    space = run_snippet(readme_block("SplitDataset", "DataLoader"), tone_store)
    assert str(space["x"].dtype) == "torch.float16" and tuple(space["x"].shape) == (22, 251, 513)
    assert sorted(space["y"].tolist()) == sorted(h5(tone_store, "train", "labels",
                                                      slice(None)).tolist())


@pytest.mark.full  # TensorFlow
def test_the_readme_tf_data_pipeline(tone_store):
    space = run_snippet(readme_block("SplitDataset", "tf.data"), tone_store)
    assert space["x"].dtype.name == "float16" and tuple(space["x"].shape) == (22, 251, 513)
    assert sorted(space["y"].numpy().tolist()) == sorted(
        h5(tone_store, "train", "labels", slice(None)).tolist())
