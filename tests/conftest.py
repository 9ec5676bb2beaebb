import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from helpers import make_tone_root  # noqa: E402

FULL_MODULE = "pytestmark = pytest.mark.full"


def pytest_ignore_collect(collection_path, config):
    """The unit tier (``-m "not full"``) does not even import a module whose every test is in
    the full tier (it says so with :data:`FULL_MODULE`): those import TensorFlow."""
    if "not full" in (config.getoption("markexpr") or "") and collection_path.suffix == ".py":
        lines = collection_path.read_text(encoding="utf-8").splitlines()
        return True if FULL_MODULE in lines else None
    return None


def pytest_sessionfinish(session, exitstatus):
    """The unit tier fails when something in it imported TensorFlow (it would be slow). It is
    run in one process (``make check``): a pytest-xdist worker's status would not count."""
    if "not full" in (session.config.getoption("markexpr") or "") and "tensorflow" in sys.modules:
        session.config.get_terminal_writer().line("the unit tier imported tensorflow: mark the "
                                                  "test that needs it full", red=True)
        session.exitstatus = 1


@pytest.fixture(scope="session")
def tone_root(tmp_path_factory):
    """An NSynth-layout root of synthetic tones: 22 train, 11 valid, 11 test notes."""
    return make_tone_root(tmp_path_factory.mktemp("tones"))


@pytest.fixture(scope="session")
def tone_store(tone_root, tmp_path_factory):
    """The feature store built from :func:`tone_root`."""
    from featurestore.build import build_store
    out = tmp_path_factory.mktemp("store")
    build_store(tone_root, out, jobs=1, progress=False)
    return out
