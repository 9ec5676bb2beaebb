"""The version is written once, in ``featurestore/_version.py``: the package metadata
(``setup.py``), ``timbremap --version`` and the stores' ``timbremap_version`` attr agree."""
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
