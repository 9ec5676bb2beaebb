"""A store on object storage, read through a real S3 API: moto's server on a free localhost
port (no mock of the client), the AWS variables pointing botocore at it, the tone store copied
into ``s3://bucket/store``. The unit tier reads it (inspect, SpectraReader, SplitDataset, bad
inputs); the full tier trains, evaluates and embeds from the command line."""
import hashlib
import json
import logging
import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import s3fs
from moto.server import ThreadedMotoServer

from analysis.cli import main
from analysis.tsne import tsne_split
from featurestore import SplitDataset
from featurestore.describe import describe_store
from featurestore.reader import SpectraReader
from featurestore.store import StoreError, open_split, store_splits

REPO = Path(__file__).resolve().parents[1]
BUCKET = "bucket"
URL = f"s3://{BUCKET}/store"
SPLIT_SIZES = {"train": 22, "valid": 11, "test": 11}


def run(*args, env=None):
    """``timbremap ARGS`` in a process of its own (it inherits the S3 variables, or is given
    ``env``)."""
    return subprocess.run([sys.executable, "-m", "analysis.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=env)


def one_line_error(result, message):
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    # one line of ours (TensorFlow's own start-up notes may stand beside it)
    assert len([line for line in result.stderr.splitlines() if "timbremap: error" in line]) \
        == 1, result.stderr


@pytest.fixture(scope="module")
def s3(tone_store, tmp_path_factory):
    """``s3://bucket/store``: a copy of :func:`tone_store` on a local S3 server, the
    environment (of this process and the commands it starts) pointing at it; both undone
    afterwards."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    werkzeug = logging.getLogger("werkzeug")  # the server's line per request
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)
    nothing = tmp_path_factory.mktemp("aws") / "none"  # no ~/.aws profile of the user's
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
                     "AWS_SECURITY_TOKEN", "AWS_REGION", "FSSPEC_S3_ENDPOINT_URL",
                     "FSSPEC_S3_KEY", "FSSPEC_S3_SECRET", "FSSPEC_S3"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", str(nothing))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nothing))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        s3fs.S3FileSystem.clear_instance_cache()  # none made for another endpoint is reused
        try:
            fs = s3fs.S3FileSystem()
            fs.mkdir(BUCKET)
            for path in sorted(Path(tone_store).glob("*.h5")):
                fs.put_file(str(path), f"{BUCKET}/store/{path.name}")
            fs.pipe_file(f"{BUCKET}/empty/readme.txt", b"no split files here")
            yield URL
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()
            werkzeug.setLevel(level)


def without_paths(lines, *prefixes):
    """``lines`` with each store's location taken out of them."""
    out = []
    for line in lines:
        for prefix in prefixes:
            line = line.replace(str(prefix).rstrip("/") + "/", "STORE/")
        out.append(line)
    return out


# ---- the unit tier: reading, no TensorFlow ----------------------------------------------------

def test_the_store_lists_its_splits(s3):
    assert store_splits(s3) == ["train", "valid", "test"]
    assert store_splits(s3 + "/") == ["train", "valid", "test"]


def test_inspect_describes_the_store_as_its_local_copy(s3, tone_store):
    remote, local = describe_store(s3), describe_store(tone_store)
    assert [line for line in remote if line.startswith("== ")] == [
        line.replace(f"{tone_store}/", f"{s3}/") for line in local if line.startswith("== ")]
    assert f"== train: {s3}/train.h5  (" in remote[0]
    assert without_paths(remote, s3) == without_paths(local, tone_store)
    result = run("inspect", s3)  # the command, in a process of its own
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == remote
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("split", ["train", "test"])
def test_spectra_reader_reads_what_the_local_one_does(s3, tone_store, split):
    n = SPLIT_SIZES[split]
    with SpectraReader(f"{s3}/{split}.h5") as remote, \
            SpectraReader(tone_store / f"{split}.h5") as local:
        assert remote.method == "remote" and local.method == "mmap"
        assert (remote.n, remote.shape, remote.note_bytes, remote.in_order) == \
            (local.n, local.shape, local.note_bytes, local.in_order) and remote.n == n
        assert remote.in_order  # as build writes them: rows() is one request
        np.testing.assert_array_equal(remote.labels, local.labels)
        for indices in ([3, 1, 3], [n - 1, 0, 5, 5, 2, n - 1], [7], []):
            x, y = remote.batch(indices)
            want_x, want_y = local.batch(indices)
            assert x.dtype == np.float16 and x.shape == (len(indices),) + local.shape
            np.testing.assert_array_equal(x, want_x)
            np.testing.assert_array_equal(y, want_y)
        for start, stop in ((0, n), (2, 9), (n - 1, n), (4, 4)):
            rows = remote.rows(start, stop)
            assert rows.shape == (stop - start,) + local.shape and rows.flags.writeable
            np.testing.assert_array_equal(rows, local.rows(start, stop))
        np.testing.assert_array_equal(np.concatenate(list(remote.iter_batches(4))),
                                      local.rows(0, n))
        np.testing.assert_array_equal(remote.field("names"), local.field("names"))
        with pytest.raises(IndexError, match=rf"indices must be in \[0, {n}\)"):
            remote.batch([0, n])
        with pytest.raises(IndexError):
            remote.rows(0, n + 1)


def test_a_split_replaced_on_the_storage_while_it_is_read_is_refused(s3, tone_store,
                                                                     monkeypatch):
    import featurestore.remote as remote
    asked = []
    version = remote.object_version
    monkeypatch.setattr(remote, "object_version", lambda url: asked.append(url) or version(url))
    monkeypatch.setattr(remote, "VERSION_SECONDS", 3600.0)  # as within a second
    with SpectraReader(f"{s3}/train.h5") as reader:
        for i in range(22):
            reader.batch([i])  # one request a note, as a per-item loader reads
    assert len(asked) == 1  # when it opened: not once a read
    monkeypatch.setattr(remote, "VERSION_SECONDS", 0.0)  # every read asks
    fs = s3fs.S3FileSystem()
    url = f"s3://{BUCKET}/swapped"
    fs.put_file(str(tone_store / "train.h5"), f"{BUCKET}/swapped/train.h5")
    with SpectraReader(f"{url}/train.h5") as reader:
        reader.batch([0, 5])
        fs.put_file(str(tone_store / "valid.h5"), f"{BUCKET}/swapped/train.h5")  # a new upload
        for read in (lambda: reader.batch([5, 0]), lambda: reader.rows(0, 4)):
            with pytest.raises(StoreError, match=f"{url}/train.h5: replaced on the object "
                                                 f"storage since it was opened"):
                read()  # not the new file's bytes at the old file's offsets
    monkeypatch.setattr(remote, "VERSION_SECONDS", 3600.0)
    fs.put_file(str(tone_store / "train.h5"), f"{BUCKET}/swapped/train.h5")
    with SpectraReader(f"{url}/train.h5") as reader:
        fs.put_file(str(tone_store / "valid.h5"), f"{BUCKET}/swapped/train.h5")  # smaller
        with pytest.raises(StoreError, match=f"{url}/train.h5: replaced on the object storage"):
            reader.batch([21])  # past the new file's end: said to be replaced, not unreadable
    monkeypatch.setattr(remote, "VERSION_SECONDS", 0.0)
    fs.put_file(str(tone_store / "train.h5"), f"{BUCKET}/swapped/train.h5")
    dataset = SplitDataset(url, "train", fields=("names", "labels"))  # fields beside spectra
    dataset[[0, 5]]
    fs.put_file(str(tone_store / "valid.h5"), f"{BUCKET}/swapped/train.h5")
    with pytest.raises(StoreError, match=f"{url}/train.h5: replaced on the object storage"):
        dataset[[20, 21]]  # not the old names' cache beside the new file's bytes
    monkeypatch.setattr(remote, "VERSION_SECONDS", 3600.0)  # within the second
    fs.put_file(str(tone_store / "train.h5"), f"{BUCKET}/swapped/train.h5")
    dataset = SplitDataset(url, "train", fields=("names",))
    dataset[[0]]
    fs.put_file(str(tone_store / "valid.h5"), f"{BUCKET}/swapped/train.h5")
    import featurestore.dataset

    def unreadable(ds, rows):  # as h5py fails on the new object's bytes at the old offsets
        raise OSError("Can't read data (wrong B-tree signature)")
    monkeypatch.setattr(featurestore.dataset, "_read_rows", unreadable)
    with pytest.raises(StoreError, match=f"{url}/train.h5: replaced on the object storage"):
        dataset[[20]]  # said as such, not h5py's error


def test_split_dataset_reads_what_the_local_one_does(s3, tone_store):
    fields = ("spectra", "labels", "names", "pitch")
    remote = SplitDataset(s3, "train", fields=fields)
    local = SplitDataset(tone_store, "train", fields=fields)
    assert len(remote) == len(local) == 22 and remote.shapes == local.shapes
    assert "s3://bucket/store" in repr(remote) and "'train'" in repr(remote)
    for index in ([3, 1, 3], [21, 0], 5, -1, slice(2, 6)):
        for got, want in zip(remote[index], local[index]):
            np.testing.assert_array_equal(got, want)
    again = pickle.loads(pickle.dumps(remote))  # as a loader's worker receives it
    for got, want in zip(again[[4, 2]], local[[4, 2]]):
        np.testing.assert_array_equal(got, want)
    for ds in (remote, again, local):
        ds.close()
    x, y = SplitDataset(s3, "valid")[[0, 10]]  # the default fields
    np.testing.assert_array_equal(x, SplitDataset(tone_store, "valid")[[0, 10]][0])
    assert y.dtype == np.int32


#: Reads a remote split while fsspec's thread, which does the reading, starts a collection
#: that frees an h5py object (the garbage of an h5py file held in a reference cycle).
COLLECTED_WHILE_READ = """
import gc, sys
import h5py, s3fs
from featurestore import SplitDataset
gc.set_threshold(100_000)
fetch = s3fs.S3FileSystem._call_s3
async def allocating(self, *args, **kwargs):  # on fsspec's thread: a collection starts there
    junk = [[] for _ in range(200_000)]
    return await fetch(self, *args, **kwargs)
s3fs.S3FileSystem._call_s3 = allocating
for _ in range(3):
    f = h5py.File(sys.argv[1], "r")
    cycle = [f, None]
    cycle[1] = cycle  # only a collection frees it
    del f, cycle
    with SplitDataset(sys.argv[2], "train", fields=("spectra", "labels", "names")) as ds:
        ds[[0, 5]]
print("read")
"""


def test_a_collection_on_fsspecs_thread_does_not_hang_a_read(s3, tone_store):
    """h5py holds its lock while it reads the file object, and a collection on fsspec's
    thread that frees an h5py object waits for that lock: the read never ended."""
    done = subprocess.run([sys.executable, "-c", COLLECTED_WHILE_READ,
                           str(tone_store / "train.h5"), s3], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["read"], done.stderr[-3000:]


def test_a_split_uploaded_again_opens_as_it_is_now(s3, tone_store):
    """fsspec's listing of a store opened before kept the first upload's ETag: every later
    open of the split in that process failed (FileExpired), however often it was asked."""
    fs = s3fs.S3FileSystem()
    url = f"s3://{BUCKET}/again"
    fs.put_file(str(tone_store / "train.h5"), f"{BUCKET}/again/train.h5")
    assert store_splits(url) == ["train"]
    with SplitDataset(url, "train") as dataset:
        assert len(dataset) == 22 and dataset[[0]][0].shape[0] == 1
    for split, notes in (("valid", 11), ("train", 22)):  # another upload under its name
        fs.put_file(str(tone_store / f"{split}.h5"), f"{BUCKET}/again/train.h5")
        with SpectraReader(f"{url}/train.h5") as reader:  # the object itself, not listed first
            assert reader.batch([notes - 1])[0].shape[0] == 1
        with SplitDataset(url, "train") as dataset:
            assert len(dataset) == notes and dataset[[notes - 1]][0].shape[0] == 1
    fs.put_file(str(tone_store / "test.h5"), f"{BUCKET}/again/test.h5")
    assert store_splits(url) == ["train", "test"]  # listed since


def test_a_missing_split_names_the_splits_present(s3):
    with pytest.raises(StoreError, match=r"store/nope\.h5: the store has no 'nope' split "
                                         r"\(splits present: train, valid, test\)"):
        open_split(s3, "nope")
    with pytest.raises(StoreError, match="split must be a name"):
        open_split(s3, "../store/train")
    with pytest.raises(StoreError, match=r"s3://bucket/store/nope\.h5: cannot be read"):
        SpectraReader(f"{s3}/nope.h5")


@pytest.mark.parametrize("url", ["s3://nobucket/store", "s3://bucket/nostore"])
def test_a_missing_bucket_or_store_is_a_store_error_naming_it(s3, url):
    with pytest.raises(StoreError, match=rf"^{url}: cannot be read \(FileNotFoundError"):
        describe_store(url)
    with pytest.raises(StoreError, match=rf"^{url}: cannot be read"):
        open_split(url, "train")


def test_a_split_file_given_as_the_store_is_named_so(s3):
    with pytest.raises(StoreError, match=rf"^{s3}/train.h5: is a split file, not a store: give "
                                         rf"the store, its folder {s3}$"):
        describe_store(f"{s3}/train.h5")
    readme = f"s3://{BUCKET}/empty/readme.txt"
    with pytest.raises(StoreError, match=rf"^{readme}: is a file, not a store \(a store is a "):
        describe_store(readme)


def test_a_folder_without_split_files(s3):
    with pytest.raises(StoreError, match=r"s3://bucket/empty: no split files \(\*\.h5\)"):
        describe_store("s3://bucket/empty")


def test_a_store_on_object_storage_is_never_written(s3):
    for mode in ("r+", "a", "w"):
        with pytest.raises(StoreError, match="a store on object storage is read, never written"):
            open_split(s3, "train", mode)
    with pytest.raises(StoreError, match=f"{s3}: tsne needs a local store"):
        tsne_split(s3, "train", source="spectra", perplexity=3)  # refused before the fit
    with open_split(s3, "train") as f:  # reading it still works
        assert f["spectra"].shape[0] == 22


def test_an_unknown_protocol_is_a_clear_store_error(s3):
    with pytest.raises(StoreError, match=r"nosuch://x/y: cannot read this kind of URL "
                                         r"\(Protocol not known: nosuch\)"):
        describe_store("nosuch://x/y")
    with pytest.raises(StoreError, match="cannot read this kind of URL"):
        SpectraReader("nosuch://x/y/train.h5")


def test_a_damaged_split_on_object_storage_is_named(s3, tone_store):
    fs = s3fs.S3FileSystem()
    whole = (Path(tone_store) / "train.h5").read_bytes()
    for name, data in [("cut", whole[:len(whole) // 2]), ("text", b"hello"), ("empty", b"")]:
        fs.pipe_file(f"{BUCKET}/{name}/train.h5", data)
        s3fs.S3FileSystem.clear_instance_cache()  # timbremap's own lists the bucket afresh
        url = f"s3://{BUCKET}/{name}"
        with pytest.raises(StoreError, match=rf"^{url}/train\.h5: not a readable HDF5 file"):
            open_split(url, "train")
        with pytest.raises(StoreError, match=rf"^{url}/train\.h5: not a readable HDF5 file"):
            SplitDataset(url, "train")


def test_a_connection_lost_as_a_split_opens_is_not_called_a_damaged_file(s3, monkeypatch):
    import io
    import featurestore.remote as remote

    class Lost(io.BytesIO):  # as s3fs's file gives up: h5py passes the error on
        def readinto(self, buffer):
            raise ConnectionResetError(104, "Connection reset by peer")
    monkeypatch.setattr(remote, "open_binary", lambda url: Lost(b"\0" * 4096))
    with pytest.raises(StoreError, match=r"train\.h5: cannot be read \(ConnectionResetError"):
        open_split(s3, "train")


def test_a_client_that_cannot_reach_the_store_is_one_line(s3, monkeypatch):
    import os
    env = {k: v for k, v in os.environ.items()
           if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    one_line_error(run("inspect", s3, env=env), f"error: {s3}: cannot be read "
                                                f"(NoCredentialsError: Unable to locate "
                                                f"credentials); set AWS_ACCESS_KEY_ID and "
                                                f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        with pytest.raises(StoreError, match=f"{s3}: cannot be read \\(NoCredentialsError"):
            SplitDataset(s3, "train")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()


def test_an_endpoint_that_stops_answering_is_one_error_not_a_hang(s3, monkeypatch):
    """Each request to an endpoint that takes it and never answers is tried S3_ATTEMPTS times
    by botocore, and S3_RETRIES times by s3fs: a read of an object, S3_RETRIES times again
    (s3fs's own 5, squared, had made 25 x 3 waits of 15 s)."""
    import socket
    import threading
    import featurestore.remote as remote
    silent = socket.socket()  # takes every request, answers none
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    held = []

    def accept():
        while True:
            try:
                conn = silent.accept()[0]
            except OSError:  # closed
                return
            held.append(conn)
            conn.recv(1 << 16)  # the request
    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:%d" % silent.getsockname()[1])
    monkeypatch.setattr(remote, "S3_READ_SECONDS", 0.5)
    monkeypatch.setattr(remote, "S3_ATTEMPTS", 2)
    s3fs.S3FileSystem.clear_instance_cache()
    stopped = rf"{s3}.*: cannot be read \(ReadTimeoutError: .*\); the endpoint stopped answering"
    try:
        with pytest.raises(StoreError, match=stopped):
            describe_store(s3)
        assert len(held) == remote.S3_RETRIES * remote.S3_ATTEMPTS
        held.clear()
        with pytest.raises(StoreError, match=stopped):
            remote.read_ranges(f"{s3}/train.h5", [(0, 10), (20, 30)])
        assert len(held) == 2 * remote.S3_RETRIES ** 2 * remote.S3_ATTEMPTS  # two ranges
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        silent.close()
        for conn in held:
            conn.close()


def test_an_endpoint_that_is_not_there_says_what_to_check(s3, monkeypatch):
    import socket
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        for read in (lambda: SplitDataset(s3, "train"), lambda: SpectraReader(f"{s3}/test.h5"),
                     lambda: describe_store(s3)):
            with pytest.raises(StoreError, match=r"cannot be read \(EndpointConnectionError: .*"
                                                 r"\); check the endpoint \(AWS_ENDPOINT_URL\) "
                                                 r"and the connection to it"):
                read()
    finally:
        s3fs.S3FileSystem.clear_instance_cache()


def test_inspect_errors_are_one_line(s3):
    one_line_error(run("inspect", "s3://nobucket/store"),
                   "error: s3://nobucket/store: cannot be read")
    one_line_error(run("inspect", "nosuch://x/y"), "nosuch://x/y: cannot read this kind of URL")


# ---- the full tier: training, evaluation and embeddings (TensorFlow) --------------------------

@pytest.fixture(scope="module")
def remote_model(s3, tmp_path_factory):
    """A quick model trained from the command line on ``s3://bucket/store``."""
    model = tmp_path_factory.mktemp("remote") / "model"
    result = run("train", s3, model, "--epochs", "1", "--steps-per-epoch", "2",
                 "--batch-size", "4", "--width", "8", "--budget-minutes", "0", "--seed", "3",
                 "-q")
    assert result.returncode == 0, result.stderr
    return model, result


def file_state(folder):
    return {p.name: (p.stat().st_mtime_ns, hashlib.sha1(p.read_bytes()).hexdigest())
            for p in sorted(Path(folder).iterdir())}


@pytest.mark.full  # TensorFlow
def test_train_from_a_url_records_it(remote_model):
    model, result = remote_model
    assert result.stdout.splitlines()[0] == f"model: {model / 'model.keras'}"
    assert "Traceback" not in result.stderr
    info = json.loads((model / "config.json").read_text())
    assert info["store"] == URL
    assert (model / "model.keras").is_file() and (model / "history.csv").is_file()


@pytest.mark.full  # TensorFlow
def test_evaluate_a_url_as_its_local_copy(remote_model, tone_store, capsys):
    model, _ = remote_model
    results = {}
    for store in (URL, str(tone_store)):
        assert main(["evaluate", store, str(model), "--json", "-q"]) == 0
        results[store] = json.loads(capsys.readouterr().out)
    remote, local = results[URL], results[str(tone_store)]
    assert remote["store"] == URL and local["store"] == str(Path(tone_store).resolve())
    assert remote["n"] == local["n"] == 11
    assert remote["accuracy"] == local["accuracy"]
    assert remote["balanced_accuracy"] == local["balanced_accuracy"]
    assert remote["confusion"] == local["confusion"]


@pytest.mark.full  # TensorFlow
def test_place_needs_a_local_store(remote_model, tmp_path):
    (tmp_path / "x.wav").write_bytes(b"")
    one_line_error(run("place", URL, remote_model[0], tmp_path / "x.wav"),
                   f"{URL}: place needs a local store")


@pytest.mark.full  # TensorFlow
def test_embed_a_url_needs_into(remote_model):
    model, _ = remote_model
    one_line_error(run("embed", URL, model, "-q"),
                   f"{URL}: a store on object storage is read, never written; give --into")


@pytest.mark.full  # TensorFlow
def test_embed_a_url_into_a_folder_as_its_local_copy(remote_model, tone_store, tmp_path,
                                                      capsys):
    model, _ = remote_model
    before = file_state(tone_store)
    assert main(["embed", URL, str(model), "--into", str(tmp_path / "remote"), "-q"]) == 0
    assert main(["embed", str(tone_store), str(model), "--into", str(tmp_path / "local"),
                 "-q"]) == 0
    out = capsys.readouterr().out
    assert "train: /embeddings (22, " in out and "test: /embeddings (11, " in out
    assert file_state(tone_store) == before  # nothing written into the store
    assert sorted(p.name for p in (tmp_path / "remote").iterdir()) == \
        ["test.h5", "train.h5", "valid.h5"]
    for split, n in SPLIT_SIZES.items():
        with h5py.File(tmp_path / "remote" / f"{split}.h5") as remote, \
                h5py.File(tmp_path / "local" / f"{split}.h5") as local:
            assert remote.attrs["store"] == URL and remote.attrs["split"] == split
            assert remote["embeddings"].shape[0] == n
            for name in ("embeddings", "probabilities", "names", "labels", "instrument"):
                np.testing.assert_array_equal(remote[name][:], local[name][:], err_msg=name)
