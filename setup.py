import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_version() -> str:
    """``featurestore.__version__``, read from the file's text: the version is written once,
    and installing imports nothing of the package (nor its requirements)."""
    text = (HERE / "featurestore" / "_version.py").read_text(encoding="utf-8")
    found = re.search(r"""^__version__ = ["']([^"']+)["']""", text, re.MULTILINE)
    if found is None:
        raise RuntimeError("featurestore/_version.py: no line __version__ = \"...\"")
    return found.group(1)


setup(
    name="timbremap",
    version=read_version(),
    description="HDF5-backed audio feature store, instrument-family trainer and timbre maps",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["featurestore", "training", "analysis"]),
    package_data={"analysis": ["map.html"]},  # the map's page (analysis/mapview.py)
    install_requires=[
        "h5py>=3.10",
        "numpy>=1.24",
        "scipy>=1.10",
        "librosa>=0.10",
        "soundfile>=0.12",
        "soxr>=0.3",
        "tensorflow-cpu>=2.16; platform_machine == 'x86_64'",
        "tensorflow>=2.16; platform_machine != 'x86_64'",
        "scikit-learn>=1.3",
        "joblib>=1.3",
        "matplotlib>=3.7",
        "colorcet>=3.0",  # Glasbey's categorical colours: past 20 labels, each stays apart
        "tqdm>=4.60",
        "pretty_midi>=0.2.10",
        "openTSNE>=1.0",
        "numba>=0.57",
        "packaging>=20",  # reads the extras' requirements for install hints
    ],
    extras_require={
        # tinysoundfont renders SoundFonts; install it with --no-deps (its pyaudio requirement
        # is for live playback only and has no Linux wheel): see the Makefile.
        "dask": ["dask[distributed]>=2023.1"],
        # Keras's JAX backend (KERAS_BACKEND=jax), CPU wheels: make test runs training on it
        "jax": ["jax[cpu]>=0.4.30"],
        # synthesis engines for `timbremap render --synth` (and the demo): DX7 FM voices and
        # Faust voices; their wheels need Python 3.11+ (GPL-3.0, installed, not bundled)
        "synth": ["dexed-py>=0.3", "dawdreamer>=0.9"],
        # reading stores from object storage: `timbremap inspect/train/evaluate/embed
        # s3://BUCKET/STORE` (any fsspec URL; s3fs for s3://)
        "remote": ["fsspec>=2023.1", "s3fs>=2023.1"],
        # s3fs and moto's S3 server: tests/test_remote.py reads a store through a local S3 API;
        # pytest-xdist: make test runs the suite in two processes; pytest-timeout: a test
        # stuck waiting fails with its stack (pytest.ini) where it would hold up the run
        "test": ["pytest>=7.3", "pytest-xdist>=3", "pytest-timeout>=2.1", "dask[distributed]>=2023.1",
                 "s3fs>=2023.1", "moto[server]>=5"],
    },
    entry_points={"console_scripts": ["timbremap=analysis.cli:main"]},
)
