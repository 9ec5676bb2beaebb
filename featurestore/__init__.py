"""featurestore: audio -> chunked HDF5 feature stores (one file per split).

Knows audio and HDF5 only: it imports neither ``training`` nor ``analysis``, nor tensorflow.
"""
from ._version import __version__

__all__ = ["SplitDataset", "__version__"]


def __getattr__(name):
    """``featurestore.SplitDataset``, imported when first asked for (with h5py and numpy)."""
    if name == "SplitDataset":
        from .dataset import SplitDataset
        return SplitDataset
    raise AttributeError(f"module 'featurestore' has no attribute {name!r}")
