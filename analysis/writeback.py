"""Writing analysis results back into a split file, safely.

A result is written under a temporary name (``/.partial-NAME``), filled, given its attrs, and
only then moved to ``/NAME`` (replacing the old one), so a crash mid-write never leaves a
dataset that looks complete; leftovers of a crashed write are removed by the next one. The
datasets written by ``build`` are never touched.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import h5py
import numpy as np

__all__ = ["write_result", "PROTECTED"]

PREFIX = ".partial-"
#: Written by the build; analysis never replaces them.
PROTECTED = {"spectra", "labels", "names", "pitch", "velocity", "instrument", "instrument_str",
             "source", "qualities", "skipped", "adjusted"}


def write_result(f: h5py.File, name: str, shape, blocks: Iterable[np.ndarray],
                 attrs: Mapping, dtype=np.float32) -> h5py.Dataset:
    """Write ``/name`` from consecutive row blocks, atomically within the file.

    Parameters
    ----------
    f : h5py.File
        Open for writing.
    name : str
    shape : tuple
        Full shape; the blocks fill it along axis 0, in order.
    blocks : iterable of np.ndarray
    attrs : mapping
        Attributes of the finished dataset.
    """
    if name in PROTECTED:
        raise ValueError(f"/{name} is written by the build and cannot be replaced")
    for leftover in [k for k in f if k.startswith(PREFIX)]:
        del f[leftover]
    temporary = PREFIX + name
    ds = f.create_dataset(temporary, shape=shape, dtype=dtype)
    start = 0
    for block in blocks:
        ds[start:start + len(block)] = block
        start += len(block)
    if start != shape[0]:
        del f[temporary]
        raise ValueError(f"/{name}: {start} rows written, expected {shape[0]}")
    ds.attrs.update(dict(attrs))
    if name in f:
        del f[name]
    f.move(temporary, name)
    f.flush()
    return f[name]
