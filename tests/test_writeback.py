"""Results written into a split file: room reserved first, nothing touched without it."""
import errno
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from analysis import writeback
from analysis.writeback import METADATA_BYTES, results_file, write_result
from featurestore.store import StoreError


def split_file(path):
    with h5py.File(path, "w") as f:
        f["spectra"] = np.zeros((10, 4, 3), np.float16)
        f["labels"] = np.zeros(10, np.int32)
    return path


def test_results_go_into_reserved_room_which_is_given_back(tmp_path):
    path = split_file(tmp_path / "test.h5")
    seen = []
    with results_file(tmp_path, "test", 4 * 10 * 2) as f:
        seen.append(os.path.getsize(path))
        write_result(f, "tsne", shape=(10, 2), blocks=[np.ones((10, 2))],
                     attrs={"method": "x"})
    assert seen[0] >= 80 + METADATA_BYTES  # reserved before HDF5 opened it
    assert os.path.getsize(path) < METADATA_BYTES  # HDF5 cut it back to what it uses
    with h5py.File(path) as f:
        assert (f["tsne"][:] == 1).all()


def test_no_room_writes_nothing(tmp_path, monkeypatch):
    path = split_file(tmp_path / "test.h5")
    before = path.read_bytes()

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(writeback.os, "posix_fallocate", full)
    with pytest.raises(StoreError, match=r"test.h5: not enough free space for the results "
                                         r"\(1.0 MiB needed, .* MiB free\); nothing was written"):
        with results_file(tmp_path, "test", 80):
            raise AssertionError("opened without room")
    assert path.read_bytes() == before


def test_a_refused_open_gives_the_room_back(tmp_path):
    path = split_file(tmp_path / "test.h5")
    size = os.path.getsize(path)
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
    assert os.path.getsize(path) == size
