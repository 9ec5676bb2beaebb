"""Results written into a split file: into a copy renamed over it, so that the split is the
old file or the new one whatever happens while they are written."""
import errno
import os
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from featurestore import writeback
from featurestore import files
from featurestore.writeback import METADATA_BYTES, results_file, write_result
from featurestore.store import StoreError
from tests.helpers import everything_in


def split_file(path):
    with h5py.File(path, "w") as f:
        f["spectra"] = np.zeros((10, 4, 3), np.float16)
        f["labels"] = np.zeros(10, np.int32)
        f.attrs["created"] = "now"
        write_result(f, "tsne", shape=(10, 2), blocks=[np.zeros((10, 2))], attrs={"method": "old"})
    return path


def partials(folder):
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name)


def test_results_go_into_a_copy_renamed_over_the_split(tmp_path):
    path = split_file(tmp_path / "test.h5")
    path.chmod(0o640)
    before, data = os.stat(path), path.read_bytes()
    with results_file(tmp_path, "test", 80) as f:
        write_result(f, "tsne", shape=(10, 2), blocks=[np.ones((10, 2))], attrs={"method": "x"})
        f.flush()
        now = os.stat(path)  # the split is never written: not a byte, not its time
        assert (now.st_ino, now.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert path.read_bytes() == data
        assert partials(tmp_path) == [".test.h5.partial"]
    assert partials(tmp_path) == []
    assert path.stat().st_ino != before.st_ino and path.stat().st_mode & 0o777 == 0o640
    with h5py.File(path) as f:
        assert (f["tsne"][:] == 1).all() and f["tsne"].attrs["method"] == "x"
        assert f["spectra"].shape == (10, 4, 3)


def test_results_written_again_take_no_more_room(tmp_path):
    path = split_file(tmp_path / "test.h5")
    sizes = []
    for value in range(3):
        with results_file(tmp_path, "test", 80) as f:
            write_result(f, "tsne", shape=(10, 2), blocks=[np.full((10, 2), value)], attrs={})
        sizes.append(path.stat().st_size)
    assert sizes[0] == sizes[1] == sizes[2]


def test_the_room_of_results_removed_is_given_back_when_it_is_much(tone_store, tmp_path,
                                                                   monkeypatch, caplog):
    from featurestore import splitfile
    monkeypatch.setattr(splitfile, "SPARE_BYTES", 0)  # what a quarter of the notes take
    path = tmp_path / "test.h5"
    path.write_bytes((tone_store / "test.h5").read_bytes())
    path.chmod(0o640)  # as a store its group shares
    size = path.stat().st_size
    with results_file(tmp_path, "test", 8 << 20) as f:  # as a map of spectra, with its PCA
        write_result(f, "tsne_pca_components", shape=(1 << 20,), blocks=[np.ones(1 << 20)],
                     attrs={})
        write_result(f, "tsne", shape=(11, 2), blocks=[np.ones((11, 2))], attrs={"method": "x"})
        write_result(f, "embeddings", shape=(11, 4), blocks=[np.ones((11, 4))], attrs={})
    assert path.stat().st_size > size + (4 << 20)
    with results_file(tmp_path, "test", 80) as f:  # a map without one replaces it
        del f["tsne_pca_components"]
        write_result(f, "tsne", shape=(11, 2), blocks=[np.ones((11, 2))], attrs={"method": "y"})
    assert path.stat().st_size < size + (1 << 20) and partials(tmp_path) == []
    assert path.stat().st_mode & 0o777 == 0o640  # the copy's mode is the split's
    with h5py.File(path, "r") as f, h5py.File(tone_store / "test.h5", "r") as original:
        assert f["tsne"].attrs["method"] == "y" and (f["tsne"][:] == 1).all()
        assert (f["embeddings"][:] == 1).all()  # kept, after the room given back
        assert (f["spectra"][:] == original["spectra"][:]).all()
        assert dict(f.attrs).keys() == dict(original.attrs).keys()
    contiguous = tmp_path / "contiguous.h5"  # notes not one a chunk, as h5py writes them
    with h5py.File(path, "r") as f, h5py.File(contiguous, "w") as g:
        for name in f:
            g.create_dataset(name, data=f[name][()])
        g["removed"], g["after"] = np.ones(1 << 20), np.ones(1 << 16)
    with h5py.File(contiguous, "r+") as g:
        del g["removed"]  # 8 MiB of room no dataset uses
    assert not splitfile.give_back_room(contiguous)  # kept as it is: not a traceback
    assert "could not be copied" not in caplog.text  # nor tried


def test_a_failed_write_leaves_the_split_as_it_was(tmp_path):
    path = split_file(tmp_path / "test.h5")
    before = everything_in(path)

    def broken():
        yield np.ones((4, 2))
        raise RuntimeError("crash mid-write")
    with pytest.raises(RuntimeError, match="crash mid-write"):
        with results_file(tmp_path, "test", 80) as f:
            write_result(f, "tsne", shape=(10, 2), blocks=broken(), attrs={"method": "new"})
    assert everything_in(path) == before and partials(tmp_path) == []
    with pytest.raises(ValueError, match="/tsne: 4 rows written, expected 10"):
        with results_file(tmp_path, "test", 80) as f:
            write_result(f, "tsne", shape=(10, 2), blocks=[np.ones((4, 2))], attrs={})
    assert everything_in(path) == before and partials(tmp_path) == []
    with pytest.raises(ValueError, match="written by the build"):
        with results_file(tmp_path, "test", 80) as f:
            write_result(f, "spectra", shape=(1,), blocks=[np.zeros(1)], attrs={})
    assert everything_in(path) == before


def test_a_kill_mid_write_leaves_the_split_as_it_was(tmp_path):
    path = split_file(tmp_path / "test.h5")
    before = everything_in(path)
    killed = subprocess.run(
        [sys.executable, "-c", "import os, signal, sys, numpy as np\n"
         "from featurestore.writeback import results_file, write_result\n"
         "with results_file(sys.argv[1], 'test', 8 << 20) as f:\n"
         "    write_result(f, 'tsne', shape=(10, 2), blocks=[np.ones((10, 2))], attrs={})\n"
         "    write_result(f, 'embeddings', shape=(1000, 1000), blocks=[np.ones((1000, 1000))],"
         " attrs={})\n"
         "    f.flush()\n"
         "    os.kill(os.getpid(), signal.SIGKILL)\n", str(tmp_path)],
        cwd=os.getcwd(), capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert everything_in(path) == before
    assert partials(tmp_path) == [".test.h5.partial"]  # what the kill left: the next write's
    with results_file(tmp_path, "test", 80) as f:
        assert "embeddings" not in f
        write_result(f, "tsne", shape=(10, 2), blocks=[np.ones((10, 2))], attrs={})
    assert partials(tmp_path) == []


def test_no_room_writes_nothing(tmp_path, monkeypatch):
    path = split_file(tmp_path / "test.h5")
    before = everything_in(path)
    free = path.stat().st_size + 80 + METADATA_BYTES - 1
    monkeypatch.setattr(files.shutil, "disk_usage", lambda folder: free_space(free))
    with pytest.raises(StoreError, match=r"test.h5: not enough free space for the results "
                                         r"\(1.0 MiB needed: a copy of the split with them is "
                                         r"written beside it, then renamed over it; 1.0 MiB "
                                         r"free\); the split is as it was"):
        with results_file(tmp_path, "test", 80):
            raise AssertionError("opened without room")
    assert everything_in(path) == before and partials(tmp_path) == []


def free_space(free):
    return type("usage", (), {"free": free})()


@pytest.mark.parametrize("where", ["copy", "write"])
def test_a_disk_that_fills_leaves_the_split_as_it_was(tmp_path, monkeypatch, where):
    path = split_file(tmp_path / "test.h5")
    before = everything_in(path)
    if where == "copy":
        def full(source, destination):
            destination.write_bytes(b"x" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(writeback, "copy_file", full)
    with pytest.raises(StoreError, match=r"test.h5: the disk \(or quota\) filled while the "
                                         r"results were written \(a copy of the split with "
                                         r"them is written beside it, .*\); the split is as it "
                                         r"was: make room"):
        with results_file(tmp_path, "test", 80):
            # as HDF5 reports a full disk: the errno in its message only
            raise OSError("Can't write data (file write failed: errno = 28, error message = "
                          "'No space left on device')")
    assert everything_in(path) == before and partials(tmp_path) == []


def test_a_refused_open_writes_nothing(tmp_path):
    path = split_file(tmp_path / "test.h5")
    before = everything_in(path)
    holder = subprocess.Popen([sys.executable, "-c", "import h5py, sys, time; "
                               "f = h5py.File(sys.argv[1]); print('open', flush=True); "
                               "time.sleep(60)", str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreError, match="open in another program"):
            with results_file(tmp_path, "test", 10**6):
                raise AssertionError("opened while another program had it")
    finally:
        holder.kill()
        holder.wait()
    assert everything_in(path) == before and partials(tmp_path) == []


@pytest.mark.parametrize("libver", ["earliest", "latest"])
def test_a_kill_while_the_split_is_held_leaves_it_untouched(tmp_path, libver):
    # HDF5 marks a file open for writing in its superblock (newer versions refuse to open it
    # while the mark stays): the split is held for reading only
    path = tmp_path / "test.h5"
    with h5py.File(path, "w", libver=libver) as f:
        f["spectra"] = np.zeros((10, 4, 3), np.float16)
        f["labels"] = np.zeros(10, np.int32)
    data = path.read_bytes()
    killed = subprocess.run(
        [sys.executable, "-c", "import os, signal, sys\n"
         "from featurestore.writeback import results_file\n"
         "with results_file(sys.argv[1], 'test', 80) as f:\n"
         "    os.kill(os.getpid(), signal.SIGKILL)\n", str(tmp_path)],
        cwd=os.getcwd(), capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert path.read_bytes() == data
    with results_file(tmp_path, "test", 80) as f:
        write_result(f, "tsne", shape=(10, 2), blocks=[np.ones((10, 2))], attrs={})
    with h5py.File(path) as f:
        assert (f["tsne"][:] == 1).all()


def test_a_copy_the_kernel_answers_with_nothing_is_made_another_way(tmp_path, monkeypatch):
    path = split_file(tmp_path / "test.h5")
    before = everything_in(path)
    monkeypatch.setattr(files.os, "copy_file_range", lambda *args: 0)
    with results_file(tmp_path, "test", 80) as f:
        write_result(f, "tsne", shape=(10, 2), blocks=[np.ones((10, 2))], attrs={})
    after = everything_in(path)
    assert after.pop("tsne")[3] == np.ones((10, 2), np.float32).tobytes()
    before.pop("tsne")
    assert after == before  # every other dataset is the split's


def test_a_copy_short_of_the_split_is_an_error(tmp_path, monkeypatch):
    path = split_file(tmp_path / "test.h5")
    before = everything_in(path)

    def short(fin, fout, count):  # a copy that ends early, saying nothing
        os.write(fout, b"\0" * 100)
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
    monkeypatch.setattr(files.os, "copy_file_range", short)
    monkeypatch.setattr(files.shutil, "copyfileobj", lambda fin, fout, size: fout.write(b"x"))
    with pytest.raises(OSError, match="the copy holds 1 bytes of"):
        with results_file(tmp_path, "test", 80):
            raise AssertionError("a short copy was used")
    assert everything_in(path) == before and partials(tmp_path) == []


def test_a_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    path = split_file(tmp_path / "test.h5")
    real_access = os.access
    monkeypatch.setattr(writeback.os, "access", lambda p, mode: (
        False if os.fspath(p) == os.fspath(tmp_path) else real_access(p, mode)))
    with pytest.raises(StoreError, match=f"{tmp_path}: the folder cannot be written, and the "
                                         f"results of test.h5 are written into a copy of it "
                                         f"there, then renamed over it"):
        writeback.check_writable(tmp_path, "test")
    monkeypatch.setattr(writeback.os, "access", lambda p, mode: (
        False if os.fspath(p) == os.fspath(path) else real_access(p, mode)))
    with pytest.raises(StoreError, match="test.h5: not writable"):
        with results_file(tmp_path, "test", 80):
            raise AssertionError("opened a split that cannot be written")


def test_the_copy_keeps_the_split_s_owner_and_mode(tmp_path, monkeypatch):
    path = split_file(tmp_path / "test.h5")
    path.chmod(0o604)
    given = []
    monkeypatch.setattr(files.os, "fchown", lambda fd, uid, gid: given.append((uid, gid)))
    with results_file(tmp_path, "test", 80) as f:
        assert os.stat(f.filename).st_mode & 0o777 == 0o604  # never more open than the split
    info = os.stat(path)
    assert given == [(info.st_uid, info.st_gid)] and info.st_mode & 0o777 == 0o604


def test_a_linked_split_stays_a_link_to_the_new_file(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real = split_file(elsewhere / "kept.h5")
    store = tmp_path / "store"
    store.mkdir()
    (store / "test.h5").symlink_to(real)
    with results_file(store, "test", 80) as f:
        write_result(f, "tsne", shape=(10, 2), blocks=[np.ones((10, 2))], attrs={})
    assert (store / "test.h5").is_symlink()
    with h5py.File(real) as f:
        assert (f["tsne"][:] == 1).all()
    assert partials(elsewhere) == partials(store) == []


def test_leftovers_of_an_earlier_version_are_removed(tmp_path):
    path = split_file(tmp_path / "test.h5")
    with h5py.File(path, "r+") as f:
        f[".partial-embeddings"] = np.zeros(3)
    with results_file(tmp_path, "test", 80) as f:
        write_result(f, "tsne", shape=(10, 2), blocks=[np.ones((10, 2))], attrs={})
    with h5py.File(path) as f:
        assert sorted(f) == ["labels", "spectra", "tsne"]


def test_a_copy_falls_back_where_the_kernel_cannot_copy_ranges(tmp_path, monkeypatch):
    source = tmp_path / "a"
    source.write_bytes(bytes(range(256)) * 1000)

    def unsupported(*args):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
    monkeypatch.setattr(files.os, "copy_file_range", unsupported)
    files.copy_file(source, tmp_path / "b")
    assert (tmp_path / "b").read_bytes() == source.read_bytes()

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(files.os, "copy_file_range", full)
    with pytest.raises(OSError) as err:  # a full disk is no reason to copy again
        files.copy_file(source, tmp_path / "c")
    assert err.value.errno == errno.ENOSPC


def test_a_split_that_cannot_be_read_is_not_called_unwritable(tmp_path, monkeypatch):
    from featurestore import store
    from featurestore.store import open_split
    split_file(tmp_path / "test.h5")

    def denied(path, mode):
        raise OSError(errno.EACCES, "Unable to synchronously open file (unable to open file: "
                      "errno = 13, error message = 'Permission denied')")
    monkeypatch.setattr(store.h5py, "File", denied)
    with pytest.raises(StoreError, match=r"test.h5: cannot be read \(permission denied\)$"):
        open_split(tmp_path, "test")
    with pytest.raises(StoreError, match="test.h5: not writable"):
        open_split(tmp_path, "test", "r+")


def test_results_of_a_split_rewritten_since_it_was_read_are_refused(tmp_path):
    path = split_file(tmp_path / "test.h5")
    version = writeback.split_version(tmp_path, "test")
    with results_file(tmp_path, "test", 80) as f:  # another program's rewrite (build --add)
        write_result(f, "embeddings", shape=(10, 3), blocks=[np.ones((10, 3))], attrs={})
    data = path.read_bytes()
    with pytest.raises(StoreError, match=r"test.h5: another program rewrote it .* while these "
                                         r"results were computed from it"):
        with results_file(tmp_path, "test", 80, version=version) as f:
            write_result(f, "tsne", shape=(10, 2), blocks=[np.ones((10, 2))], attrs={})
    assert path.read_bytes() == data and partials(tmp_path) == []
    with results_file(tmp_path, "test", 80, version=writeback.split_version(tmp_path, "test")):
        pass  # read as it is: written
