"""What a split file must be before anything in it is read: the datasets every split has, and
datasets no larger than the file can hold, so that what a file costs to read is bounded by its
size, whatever its header declares (:func:`check_split`)."""
from __future__ import annotations

import h5py
import numpy as np

from ._version import __version__
from .errors import InputError, StoreError, counted
from .params import FeatureParams
from .schema import (BUILT, EMBEDDINGS, INSTRUMENT, LABELS, LIST_NAMES, MEAN, METADATA,
                     NOT_PER_NOTE, OFFSET, PITCH, PROBABILITIES, REQUIRED, SCHEMA_VERSION,
                     SOURCE_FOLDER, SPECTRA, STD, TSNE, VELOCITY, datasets, is_apart_results,
                     read_label_names, read_params, read_stats, read_stats_count)

__all__ = ["check_split", "check_held_here", "check_schema", "PER_NOTE"]

#: The datasets whose values index their attr ``names``.
INDICES = (LABELS, SOURCE_FOLDER)
#: The datasets timbremap writes with a row per note (and every ``/metadata/COLUMN``).
PER_NOTE = tuple(name for name in BUILT if name not in NOT_PER_NOTE) + (
    EMBEDDINGS, PROBABILITIES, TSNE)


def check_split(f: h5py.File):
    """Raise :class:`StoreError` when ``f`` lacks what every split file has, or declares more
    than it can hold.

    Checked before any note is read, from the file's metadata, its index datasets and offsets:

    - its attr ``schema_version`` is :data:`~featurestore.schema.SCHEMA_VERSION` or older (a
      file written without it is read as schema 1);
    - everything in it is held in it: no name at its root or in ``/metadata`` is a link
      (another file's object, opened when the name is read), and no dataset keeps its data in
      other files (external storage, a virtual dataset), which a read could block on (a pipe)
      or take from any file;
    - ``/spectra`` is ``(notes, frames, bins)``, stored without filters, one note a chunk (or
      contiguous), so that one note is read alone and its bytes are the file's;
    - no dataset timbremap writes is stored with filters (compression, checksums) or declares
      more bytes than the file holds (its chunks not written);
    - every per-note dataset (:data:`PER_NOTE`, ``/metadata/COLUMN``) has a row per note;
    - the features' attrs make ``/spectra``'s notes, numbers are stored as numbers (the
      features' attrs, the statistics: one finite number a bin), label names as text, and
      every index (``/labels``, ``/source_folder``) is one of the names its attr ``names``
      lists.

    Datasets another program added are left alone: nothing here reads them whole.

    Raises
    ------
    StoreError
        Naming the file, the dataset and what it declares.
    """
    check_held_here(f)
    check_schema(f)
    missing = [name for name in REQUIRED if name not in f]
    if missing and is_apart_results(f):
        raise StoreError(f"{f.filename}: results 'timbremap embed --into' wrote for "
                         f"{f.attrs['store']}, not a store (no /spectra); to map them, copy "
                         f"the store here and run embed on the copy")
    if missing:
        raise StoreError(f"{f.filename}: not a timbremap store (no "
                         f"{', '.join('/' + m for m in missing)} dataset)")
    spectra = f[SPECTRA]
    if not isinstance(spectra, h5py.Dataset) or spectra.shape is None or spectra.ndim != 3:
        raise StoreError(f"{f.filename}: /{SPECTRA} is not a dataset of (notes, frames, bins)")
    if spectra.chunks is not None and spectra.chunks[0] != 1:
        raise StoreError(f"{f.filename}: /{SPECTRA} is stored in chunks of {spectra.chunks[0]} "
                         f"notes; a store keeps one note a chunk, so that a note is read alone "
                         f"(rebuild the store)")
    size, n = f.id.get_filesize(), spectra.shape[0]
    for name, ds in datasets(f):
        if not (name in PER_NOTE or name in NOT_PER_NOTE or name.startswith(METADATA + "/")):
            continue  # another program's, read whole by nothing here
        if ds.shape is None:
            raise StoreError(f"{f.filename}: /{name} is empty (no dataspace): the file is damaged")
        if ds.id.get_create_plist().get_nfilters():
            raise StoreError(f"{f.filename}: /{name} is stored with filters ({_filters(ds)}); a "
                             f"store keeps its datasets without any (rebuild the store, or "
                             f"h5repack it without filters)")
        declared = int(np.prod(ds.shape, dtype=np.float64)) * ds.dtype.itemsize
        if declared > size:
            raise StoreError(f"{f.filename}: /{name} declares {ds.shape} {ds.dtype} "
                             f"({declared:,} bytes), more than the whole file holds "
                             f"({size:,} bytes): the file is damaged")
        if name not in NOT_PER_NOTE and ds.shape[:1] != (n,):
            raise StoreError(f"{f.filename}: /{name} has {ds.shape[0] if ds.shape else 0} rows "
                             f"but /{SPECTRA} {n} notes: the file is damaged")
    _check_values(f)


def _check_values(f: h5py.File):
    """Raise :class:`StoreError` where the features' attrs do not make ``/spectra``'s notes,
    a number is stored as something else, or an index (``/labels``, ``/source_folder``)
    points outside the names it indexes."""
    try:
        shape = FeatureParams.from_attrs(f.attrs).shape
    except (KeyError, InputError):  # one missing, or a value this version does not take: said
        shape = f[SPECTRA].shape[1:]  # where the parameters are used
    except (ValueError, TypeError):  # damaged (a number stored as text): read_params says how
        read_params(f)
        raise
    if tuple(f[SPECTRA].shape[1:]) != tuple(shape):
        raise StoreError(f"{f.filename}: its feature_* attrs make notes of shape {shape}, but "
                         f"/{SPECTRA} holds {tuple(f[SPECTRA].shape[1:])}: the file is damaged")
    for name in (LABELS, SOURCE_FOLDER, PITCH, VELOCITY, INSTRUMENT, OFFSET):
        if name in f and f[name].dtype.kind not in ("iu" if name in INDICES else "iuf"):
            raise StoreError(f"{f.filename}: /{name} is stored as {f[name].dtype}, not as "
                             f"{'integers' if name in INDICES else 'numbers'}: the file is "
                             f"damaged")
    offsets = f[OFFSET][:] if OFFSET in f else np.zeros(0)
    if not (np.isfinite(offsets) & (offsets >= 0)).all():
        raise StoreError(f"{f.filename}: /{OFFSET} holds a time that is not a number of "
                         f"seconds from 0 on: the file is damaged")
    if MEAN in f[SPECTRA].attrs or STD in f[SPECTRA].attrs:
        read_stats(f)  # numbers, one a bin, finite
    read_stats_count(f)
    names = f[LABELS].attrs.get(LIST_NAMES)
    dtype = None if names is None else np.asarray(names).dtype
    if dtype is not None and dtype.kind not in "SUO":
        raise StoreError(f"{f.filename}: /{LABELS} attr {LIST_NAMES} holds {dtype} values, not "
                         f"label names: the file is damaged")
    indexed = {LABELS: read_label_names(f)}
    if SOURCE_FOLDER in f:
        indexed[SOURCE_FOLDER] = f[SOURCE_FOLDER].attrs.get(LIST_NAMES, ())
    for name, names in indexed.items():
        values = f[name][:]
        if len(values) and (values.min() < 0 or values.max() >= len(names)):
            bad = int(values.min() if values.min() < 0 else values.max())
            within = f" (indices 0 to {len(names) - 1})" if len(names) else ""
            raise StoreError(f"{f.filename}: /{name} holds {bad}, but its attr names lists "
                             f"{counted(len(names), 'name')}{within}: the file is damaged")


def check_schema(f: h5py.File):
    """Raise :class:`StoreError` when ``f``'s attr ``schema_version`` is later than
    :data:`~featurestore.schema.SCHEMA_VERSION`, the layout this version reads (a file without
    it is read as schema 1), or is not a whole number."""
    version = f.attrs.get("schema_version", 1)  # written before the attr was kept: the first
    if not isinstance(version, (int, np.integer)) or isinstance(version, (bool, np.bool_)):
        raise StoreError(f"{f.filename}: its attr schema_version is {version!r}, not a whole "
                         f"number: the file is damaged")
    if version > SCHEMA_VERSION:
        raise StoreError(f"{f.filename}: written in store schema {int(version)} (by timbremap "
                         f"{f.attrs.get('timbremap_version', '?')}), and this timbremap "
                         f"({__version__}) reads schema {SCHEMA_VERSION} and older: upgrade "
                         f"timbremap to read it")


def check_held_here(f: h5py.File):
    """Raise :class:`StoreError` when a name at the root of ``f`` or in its ``/metadata`` is a
    link, or a dataset there keeps its data in other files: checked before any name of the
    file is opened (opening an external link opens its file)."""
    groups = [("/", f)]
    if isinstance(f.get(METADATA, getlink=True), h5py.HardLink) and isinstance(
            f[METADATA], h5py.Group):
        groups.append((f"/{METADATA}/", f[METADATA]))
    for prefix, group in groups:
        for key in group:
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                what = f"a link to {link.path} in {link.filename}"
            elif isinstance(link, h5py.SoftLink):
                what = f"a link to {link.path}"
            elif not isinstance(group[key], h5py.Dataset):
                continue
            elif group[key].is_virtual:
                what = "a virtual dataset, its data in other files"
            elif group[key].external:
                what = (f"stored in other files "
                        f"({', '.join(str(name) for name, *_ in group[key].external)})")
            else:
                continue
            raise StoreError(f"{f.filename}: {prefix}{key} is {what}; a store holds its data "
                             f"itself (copy it in with h5py, or remove it)")


def _filters(ds: h5py.Dataset) -> str:
    """The names of a dataset's filters, for a message."""
    plist = ds.id.get_create_plist()
    return ", ".join(plist.get_filter(k)[3].decode(errors="replace") or str(plist.get_filter(k)[0])
                     for k in range(plist.get_nfilters()))
