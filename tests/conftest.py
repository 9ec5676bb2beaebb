import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from helpers import make_tone_root  # noqa: E402


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
