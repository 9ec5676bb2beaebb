"""The version is written once, in ``featurestore/_version.py``: the package metadata
(``setup.py``), ``timbremap --version`` and the stores' ``timbremap_version`` attr agree; a
store's ``schema_version`` says which layout it is in."""
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from analysis.cli import main
from featurestore import __version__

REPO = Path(__file__).resolve().parents[1]


def test_setup_reads_the_version_of_the_package():
    out = subprocess.run([sys.executable, "setup.py", "--version"], cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.splitlines()[-1] == __version__


def test_the_command_says_the_version_of_the_package(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"timbremap {__version__}\n"


def test_the_installed_metadata_says_the_version_of_the_package():
    installed = metadata.version("timbremap")  # make test installs it (pip install -e .)
    assert installed == __version__, "installed from another version: pip install -e . again"


def test_a_split_of_a_later_schema_is_refused_and_one_written_before_the_attr_is_read(
        tmp_path):
    import h5py
    from featurestore import SplitDataset
    from featurestore.build import build_store
    from featurestore.errors import BuildError, StoreError
    from featurestore.schema import SCHEMA_VERSION
    from helpers import make_tone_root
    build_store(make_tone_root(tmp_path / "root"), tmp_path / "store", jobs=1, progress=False)
    path = tmp_path / "store" / "valid.h5"
    with h5py.File(path, "r+") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        del f.attrs["schema_version"]  # as a store built before the attr was written
    assert len(SplitDataset(tmp_path / "store", "valid")) == 11
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    newer = (rf"valid.h5: written in store schema {SCHEMA_VERSION + 1} \(by timbremap "
             rf"{__version__}\), and this timbremap \({__version__}\) reads schema "
             rf"{SCHEMA_VERSION} and older: upgrade timbremap to read it")
    with pytest.raises(StoreError, match=newer):
        SplitDataset(tmp_path / "store", "valid")
    (tmp_path / "store" / "test.h5").unlink()
    with pytest.raises(BuildError, match=newer + r"; or use --overwrite to rebuild it"):
        build_store(tmp_path / "root", tmp_path / "store", jobs=1, progress=False)  # keeps valid
    assert not (tmp_path / "store" / "test.h5").exists()  # built beside it before: a mixed store
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = "1"
    with pytest.raises(StoreError, match=r"valid.h5: its attr schema_version is '1', not a whole "
                                         r"number: the file is damaged"):
        SplitDataset(tmp_path / "store", "valid")
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    inspected = subprocess.run([sys.executable, "-m", "analysis.cli", "inspect",
                                tmp_path / "store"], cwd=REPO, capture_output=True, text=True,
                               timeout=120)
    assert inspected.returncode == 1 and re.search(newer, inspected.stderr), inspected.stderr
