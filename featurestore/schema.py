"""The schema of a split file: the name of every dataset and of the attributes a build writes,
and the functions that write and read them (a t-SNE map's attributes are
:mod:`analysis.tsne`'s). Every module that touches a split file by name goes through here.

A store is a folder with one HDF5 file per split (``train.h5``, ``valid.h5``, ``test.h5``).
Each file opens with plain ``h5py.File(path, 'r')``; this is all there is in it.

Written by the build
--------------------
``/spectra``       float16 ``(N, frames, bins)``: the features of each note, from
                   :func:`featurestore.features.compute_features` (default: log(1 + 1000·|STFT|),
                   ``(251, 513)`` for a 4 s note at 16 kHz).
                   Chunked ``(1, frames, bins)`` (one note, ~250 KiB), uncompressed, no filters,
                   every chunk allocated up front and in order (:func:`create_spectra`).
                   Why: the trainer reads random batches by index; a one-note chunk means a batch
                   reads exactly the notes it asks for (no read amplification, no decompression),
                   and the notes can also be read through a numpy memory map at the chunks' byte
                   offsets (:class:`featurestore.reader.SpectraReader`), as fast as fancy indexing
                   in RAM once the file is in the page cache.
    attrs ``mean``, ``std``: float64 ``(bins,)``, per-bin mean and standard deviation (square
                   root of the population variance) over every frame of the *train* split,
                   accumulated streaming in float64. ``valid.h5`` and ``test.h5`` carry the train
                   split's values. ``stats_split`` names the split they come from,
                   ``stats_count`` the number of frames they summarise.
``/labels``        int32 ``(N,)``: each note's class, an index into its attr ``names``, the
                   store's label set (the same in every split): NSynth's 11 families in their
                   order for NSynth's layout (``names[label]`` is the json's
                   ``instrument_family_str``), else every label of the inputs, sorted (a
                   later ``build --add`` appends new ones, old indices kept).
``/names``         utf-8 ``(N,)``: note names, unique in a split (NSynth: the json keys,
                   ``audio/NAME.wav``; folders: ``LABEL/FILE``; manifest: its ``path``; a
                   window of a recording: ``NAME@OFFSET``).
``/file``          utf-8 ``(N,)``: each note's audio file, relative to its source folder
                   (or absolute, as a manifest gave it).
``/offset``        float64 ``(N,)``: where the note starts in its file, seconds (0 but for
                   ``--windows``).
``/group``         utf-8 ``(N,)``: what no two drawn splits share (NSynth: the instrument; a
                   manifest's ``group`` column; the ``--group-by`` match; else the file).
``/pitch``         int16 ``(N,)``: MIDI pitch (-1: not known).
``/velocity``      int16 ``(N,)``: MIDI velocity (-1: not known).
``/instrument``    int32 ``(N,)``: instrument id (-1: not known); ``/instrument_str`` utf-8
                   ``(N,)`` its name (outside NSynth: the group).
``/source``        utf-8 ``(N,)``: ``acoustic``, ``electronic`` or ``synthetic`` (empty: not
                   known).
``/qualities``     uint8 ``(N, 10)``: NSynth's quality flags; attr ``names`` lists them.
``/source_folder`` int16 ``(N,)``: the folder each note comes from (a NOTES folder, or a
                   manifest's folder), an index into its attr ``names`` (absolute: the same
                   index means the same folder in every split of a store); the note's audio is
                   ``names[source_folder[i]]/file[i]``.
``/metadata``      a group: ``/metadata/COL`` utf-8 ``(N,)`` for each other column of the
                   store's manifests, in every split (empty text where a note has none).
``/skipped``       utf-8 ``(M, 2)``: ``[name, reason]`` of every input that could not be used
                   (corrupt, truncated or empty audio, NaN samples, silence, json entry without
                   wav, wav without json entry, unknown family, ...); attr ``columns``.
``/adjusted``      utf-8 ``(K, 2)``: ``[name, what]`` of every used input that had to be fitted to
                   the feature parameters (downmixed to mono, resampled, padded or trimmed,
                   louder than full scale); attr ``columns``.
root attrs         ``feature_*``: every parameter that shapes the features
                   (:class:`featurestore.params.FeatureParams`); ``input_*``: how the notes
                   were read (:class:`featurestore.layouts.InputOptions`: ``input_layout``,
                   ``input_group_by``, ``input_windows`` (0: none), ``input_valid_fraction``,
                   ``input_test_fraction``, ``input_columns``); ``split``, ``n_examples``,
                   ``timbremap_version``, ``schema_version`` (:data:`SCHEMA_VERSION`:
                   a later version that changes this layout writes a higher one, which this
                   version refuses), ``source_root`` (the first NOTES folder; see
                   ``/source_folder``), ``created`` (ISO 8601, UTC), ``computed`` (float64
                   ``(R, 2)``: ``[first row, POSIX time]`` of each run of notes a build or
                   ``build --add`` computed, in row order; ``--add`` warns of a note's file
                   modified after its run),
                   ``inputs_digest`` (SHA-1 of the input files' names and sizes: a later
                   build warns when the folder changed), ``content_digest`` (SHA-1 of the
                   label set and each note's name, label, file and offset: a model records it,
                   and ``evaluate`` warns when the store changed since).

Added by analysis (never by a build)
------------------------------------
``/embeddings``    float32 ``(N, D)``, ``/probabilities`` float32 ``(N, C)``: a trained model's
                   penultimate layer and output (``C`` labels, named by the attr ``names`` of
                   ``/probabilities``); attrs ``model``, ``model_sha1``, ``layer``
                   (``timbremap embed``).
``/tsne``          float32 ``(N, 2)``: a t-SNE map, with its method, source and quality in its
                   attrs (:mod:`analysis.tsne`); for a map of spectra also
                   ``/tsne_pca_components`` float32 ``(k, frames * bins)`` and
                   ``/tsne_pca_mean`` float32 ``(frames * bins,)``.

Strings read back as ``bytes`` with plain h5py; ``f['names'].asstr()[:]`` gives ``str``.
"""
from __future__ import annotations

import datetime
import os
import unicodedata
from collections import Counter
from pathlib import Path
from typing import List, Sequence, Tuple

import h5py
import numpy as np

from ._version import __version__
from .errors import StoreError
from .nsynth import FAMILIES, MAX_TEXT, QUALITIES as QUALITY_FLAGS
from .params import FeatureParams

__all__ = ["SPECTRA", "LABELS", "NAMES", "FILE", "OFFSET", "GROUP", "METADATA", "PITCH",
           "VELOCITY", "INSTRUMENT", "INSTRUMENT_STR", "SOURCE", "QUALITIES", "SOURCE_FOLDER",
           "SKIPPED", "ADJUSTED", "BUILT", "EMBEDDINGS", "PROBABILITIES", "TSNE",
           "TSNE_PCA_COMPONENTS", "TSNE_PCA_MEAN", "MODEL_SHA1", "SCHEMA_VERSION",
           "create_spectra", "write_notes",
           "write_stats", "write_problems", "stored_text", "write_provenance", "analysis_results",
           "clear_metadata", "is_apart_results", "read_params", "read_stats",
           "read_stats_count", "read_audio_paths", "read_problems", "read_label_names",
           "composed_labels", "datasets", "note_datasets"]

# datasets written by the build
SPECTRA = "spectra"
LABELS = "labels"
NAMES = "names"
FILE = "file"
OFFSET = "offset"
GROUP = "group"
METADATA = "metadata"
PITCH = "pitch"
VELOCITY = "velocity"
INSTRUMENT = "instrument"
INSTRUMENT_STR = "instrument_str"
SOURCE = "source"
QUALITIES = "qualities"
SOURCE_FOLDER = "source_folder"
SKIPPED = "skipped"
ADJUSTED = "adjusted"
#: Every dataset a build writes; analysis never replaces them.
BUILT = (SPECTRA, LABELS, NAMES, FILE, OFFSET, GROUP, PITCH, VELOCITY, INSTRUMENT,
         INSTRUMENT_STR, SOURCE, QUALITIES, SOURCE_FOLDER, SKIPPED, ADJUSTED)
REQUIRED = (SPECTRA, LABELS)

# datasets analysis adds
EMBEDDINGS = "embeddings"
PROBABILITIES = "probabilities"
TSNE = "tsne"
TSNE_PCA_COMPONENTS = "tsne_pca_components"
TSNE_PCA_MEAN = "tsne_pca_mean"

#: Datasets whose rows are not the notes, however many they hold: the problem lists (a row per
#: input skipped or adjusted) and a map's PCA (a row per component, a value per feature).
NOT_PER_NOTE = (SKIPPED, ADJUSTED, TSNE_PCA_COMPONENTS, TSNE_PCA_MEAN)

# attributes
MEAN, STD, STATS_COUNT, STATS_SPLIT = "mean", "std", "stats_count", "stats_split"  # /spectra
LIST_NAMES = "names"   # /labels, /qualities: what each index or column means
COLUMNS = "columns"    # /skipped, /adjusted
MODEL_SHA1 = "model_sha1"  # /embeddings: the weights they come from
INPUTS_DIGEST = "inputs_digest"  # root
CONTENT_DIGEST = "content_digest"  # root
COMPUTED = "computed"  # root: [first row, POSIX time] of each run of rows a build computed
#: The layout of a split file this version writes, in its root attr ``schema_version``; it
#: reads files of this one or older (a file without the attr was written before it was kept).
SCHEMA_VERSION = 1

STRING = h5py.string_dtype("utf-8")


def create_spectra(f: h5py.File, n: int, params: FeatureParams):
    """``/spectra`` for ``n`` notes, every one-note chunk allocated now and in order (without
    writing fill values), and the feature parameters as root attrs."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    f.create_dataset(SPECTRA, shape=(n,) + params.shape, dtype=np.float16,
                     maxshape=(None,) + params.shape, chunks=(1,) + params.shape, dcpl=dcpl)
    f.attrs.update(params.to_attrs())


def analysis_results(f: h5py.File) -> List[str]:
    """The names of what a split file holds besides what a build writes (analysis results,
    or what another program added)."""
    return [name for name in f if name not in BUILT and name != METADATA]


def clear_metadata(f: h5py.File):
    """Remove what a build writes around ``/spectra`` (what a finish that failed half way
    wrote); analysis results stay."""
    for name in [name for name in f if name != SPECTRA and name not in analysis_results(f)]:
        del f[name]


def write_notes(f: h5py.File, notes, roots: Sequence[str], label_names: Sequence[str]):
    """``/labels`` and the per-note metadata of the written notes, in their order.

    Parameters
    ----------
    notes : featurestore.notes.Notes
        One row per note of ``/spectra``.
    roots : sequence of str
        The folders the notes come from (absolute); ``notes.folder`` indexes them.
    label_names : sequence of str
        The store's label set; every note's label is one of them.
    """
    index = {name: k for k, name in enumerate(label_names)}
    f.create_dataset(LABELS, data=np.array([index[label] for label in notes.label], np.int32))
    f[LABELS].attrs[LIST_NAMES] = np.array(list(label_names), dtype=STRING)
    prefixes = [Path(os.path.relpath(os.path.realpath(d), root))
                for d, root in zip(notes.audio_dirs, roots)]
    columns = {
        NAMES: (notes.names, STRING),
        FILE: ([(prefixes[k] / name).as_posix() for k, name in zip(notes.folder, notes.files)],
               STRING),
        OFFSET: (notes.offset, np.float64),
        GROUP: (notes.group, STRING),
        PITCH: (notes.pitch, np.int16),
        VELOCITY: (notes.velocity, np.int16),
        INSTRUMENT: (notes.instrument, np.int32),
        INSTRUMENT_STR: (notes.instrument_str, STRING),
        SOURCE: (notes.instrument_source_str, STRING),
    }
    for name, (values, dtype) in columns.items():
        f.create_dataset(name, data=np.array(values, dtype=object if dtype is STRING else dtype),
                         dtype=dtype)
    f.create_dataset(QUALITIES, data=notes.qualities.astype(np.uint8))
    f[QUALITIES].attrs[LIST_NAMES] = np.array(QUALITY_FLAGS, dtype=STRING)
    f.create_dataset(SOURCE_FOLDER, data=notes.folder.astype(np.int16))
    f[SOURCE_FOLDER].attrs[LIST_NAMES] = np.array(list(roots), dtype=STRING)
    if notes.meta:
        group = f.create_group(METADATA)
        for key, values in notes.meta.items():
            group.create_dataset(key, data=np.array(values, dtype=object), dtype=STRING)


def write_stats(f: h5py.File, mean: np.ndarray, std: np.ndarray, count: int, split: str):
    """The normalisation statistics on ``/spectra``: per-bin ``mean`` and ``std`` (float64
    ``(bins,)``) over ``count`` frames of ``split``."""
    f[SPECTRA].attrs.update({MEAN: mean, STD: std, STATS_COUNT: count, STATS_SPLIT: split})


def write_problems(f: h5py.File, skipped: Sequence[Tuple[str, str]],
                   adjusted: Sequence[Tuple[str, str]]):
    """``/skipped`` (``[name, reason]`` rows) and ``/adjusted`` (``[name, what]`` rows)."""
    for name, rows, second in ((SKIPPED, skipped, "reason"), (ADJUSTED, adjusted, "what")):
        f.create_dataset(name, data=_strings(rows), dtype=STRING, maxshape=(None, 2))
        f[name].attrs[COLUMNS] = np.array(["name", second], dtype=STRING)


def stored_text(text: str) -> str:
    """``text`` as a ``/skipped`` or ``/adjusted`` row keeps it: a name from a json key may hold
    what UTF-8 strings in HDF5 cannot (a NUL, a lone surrogate), which is written escaped, and
    may be longer than any note's (:data:`~featurestore.nsynth.MAX_TEXT`), which is cut to
    fit it. Text kept so is kept the same again."""
    if len(text) > MAX_TEXT:
        text = f"{text[:MAX_TEXT - 32]}... ({len(text)} characters)"
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\0", "\\0")


def _strings(rows) -> np.ndarray:
    """``[name, text]`` rows as HDF5 can store them (:func:`stored_text`)."""
    return np.array([[stored_text(a), stored_text(b)] for a, b in rows],
                    dtype=object).reshape(-1, 2)


def write_provenance(f: h5py.File, *, split: str, n: int, inputs_digest: str, source_root: str,
                     held: int = 0, computed_before=()):
    """The root attrs saying what the file is and what it was built from. ``held``: the notes
    before those this build computed (``build --add``), and ``computed_before`` their
    :data:`COMPUTED` runs."""
    now = datetime.datetime.now(datetime.timezone.utc)
    runs = [[float(first), float(time)] for first, time in computed_before]
    if n > held or not runs:  # the rows computed now
        runs.append([float(held), now.timestamp()])
    f.attrs.update({"split": split, "n_examples": n, INPUTS_DIGEST: inputs_digest,
                    "timbremap_version": __version__, "schema_version": SCHEMA_VERSION,
                    "source_root": source_root, "created": now.isoformat(),
                    COMPUTED: np.array(runs, np.float64).reshape(-1, 2)})


def is_apart_results(f: h5py.File) -> bool:
    """Whether ``f`` holds the results ``embed --into`` writes (a root attr ``store`` naming
    the store they are of, and no ``/spectra``), not a split of a store."""
    return "store" in f.attrs and SPECTRA not in f


def read_params(f: h5py.File) -> FeatureParams:
    """The :class:`FeatureParams` a split file was built with."""
    try:
        return FeatureParams.from_attrs(f.attrs)
    except KeyError as err:
        raise StoreError(f"{f.filename}: feature parameter {err} missing from its attrs") from None
    except (ValueError, TypeError) as err:  # a damaged attr: 'abc' for n_fft
        raise StoreError(f"{f.filename}: its feature parameters (feature_* attrs) are not "
                         f"valid: {err}") from None


def read_stats(f: h5py.File) -> Tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` float64 arrays of shape ``(bins,)`` stored on ``/spectra``.

    Raises
    ------
    StoreError
        When they are missing, not one number a bin, or not all finite (nothing could be learnt
        from them).
    """
    attrs = f[SPECTRA].attrs
    if MEAN not in attrs or STD not in attrs:
        raise StoreError(f"{f.filename}: no statistics (/{SPECTRA} attrs {MEAN}, {STD})")
    bins = f[SPECTRA].shape[-1]
    try:
        mean, std = np.asarray(attrs[MEAN], np.float64), np.asarray(attrs[STD], np.float64)
    except (ValueError, TypeError):
        mean = std = None
    if mean is None or mean.shape != (bins,) or std.shape != (bins,):
        raise StoreError(f"{f.filename}: its statistics (/{SPECTRA} attrs {MEAN}, {STD}) are "
                         f"not {bins} numbers each, one a bin; rebuild the store with "
                         f"--overwrite")
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        raise StoreError(f"{f.filename}: its statistics (/{SPECTRA} attrs {MEAN}, {STD}) are "
                         f"not finite; rebuild the store with --overwrite")
    return mean, std


def read_stats_count(f: h5py.File) -> Tuple[int, str]:
    """``(frames, split)`` the statistics summarise; ``(0, '')`` when the file has none."""
    attrs = f[SPECTRA].attrs
    try:
        return int(attrs.get(STATS_COUNT, 0)), str(attrs.get(STATS_SPLIT, ""))
    except (ValueError, TypeError) as err:
        raise StoreError(f"{f.filename}: /{SPECTRA} attr {STATS_COUNT} is not a count "
                         f"({err})") from None


def read_audio_paths(f: h5py.File) -> List[Path]:
    """Where each note's audio was when the split was built: ``ROOT/FILE``, ``ROOT`` from
    ``/source_folder`` (in a store built before ``/file``: ``ROOT/SPLIT/audio/NAME.wav``, and
    before ``/source_folder`` the ``source_root`` attr)."""
    if FILE in f:
        roots = [Path(r) for r in f[SOURCE_FOLDER].attrs[LIST_NAMES]]
        return [roots[k] / name for k, name in zip(f[SOURCE_FOLDER][:], f[FILE].asstr()[:])]
    split, names = str(f.attrs.get("split", "")), f[NAMES].asstr()[:]
    if SOURCE_FOLDER in f:
        roots = [Path(r) for r in f[SOURCE_FOLDER].attrs[LIST_NAMES]]
        folder = f[SOURCE_FOLDER][:]
    else:
        roots, folder = [Path(str(f.attrs.get("source_root", ".")))], np.zeros(len(names), int)
    return [roots[k] / split / "audio" / f"{name}.wav" for k, name in zip(folder, names)]


def read_label_names(f: h5py.File, *, of: str = LABELS) -> Tuple[str, ...]:
    """The store's label set: ``names[label]`` is the class of a note whose ``/labels`` value
    is ``label`` (a store built before stores owned their label set: NSynth's families), each
    in Unicode's composed form (NFC), as builds read labels (a store written before may hold
    a macOS folder's decomposed name). With ``of=PROBABILITIES``: the label of each column of
    ``/probabilities`` (the label set of the model ``embed`` ran)."""
    names = f[of].attrs.get(LIST_NAMES) if of in f else None
    if names is None:
        return tuple(FAMILIES)
    try:
        return composed_labels(n.decode("utf-8") if isinstance(n, bytes) else str(n)
                               for n in names)
    except ValueError as err:
        raise StoreError(f"{f.filename}: {err}") from None


def composed_labels(names) -> Tuple[str, ...]:
    """A label set in Unicode's composed form (NFC), as builds read labels; ``ValueError``
    naming the labels given twice, or two that become one (a store or model written before,
    from folders named both ways)."""
    names = tuple(names)
    repeated = sorted(name for name, n in Counter(names).items() if n > 1)
    if repeated:
        raise ValueError(f"its labels {repeated[:5]}{' ...' if len(repeated) > 5 else ''} are "
                         f"each given more than once: a label set names each label once")
    composed = tuple(unicodedata.normalize("NFC", name) for name in names)
    twice = sorted(name for name, n in Counter(composed).items() if n > 1)
    if twice:
        raise ValueError(f"its labels {twice} are each two labels written with their letters "
                         f"composed and decomposed (NFC, NFD): rebuild it (--overwrite)")
    return composed


def read_problems(f: h5py.File) -> Tuple[List[Tuple[str, str]], List[Tuple[str, str]]]:
    """``(skipped, adjusted)``: the ``[name, reason]`` and ``[name, what]`` rows."""
    def rows(name):
        return [tuple(row) for row in f[name].asstr()[:]] if name in f else []
    return rows(SKIPPED), rows(ADJUSTED)


def datasets(f: h5py.File) -> List[Tuple[str, h5py.Dataset]]:
    """Every dataset of a split file, ``(name, dataset)``, the build's first (in schema order),
    then any other by name (analysis results, or what another program added)."""
    built = [name for name in BUILT if name in f]
    if isinstance(f.get(METADATA), h5py.Group):
        built += [f"{METADATA}/{key}" for key in f[METADATA]]
    other = sorted(name for name, item in f.items()
                   if name not in BUILT and isinstance(item, h5py.Dataset))
    return [(name, f[name]) for name in built + other]


def note_datasets(f: h5py.File) -> List[str]:
    """The names of a split file's per-note datasets: a row per note (``/spectra``'s), in
    :func:`datasets`' order, none of :data:`NOT_PER_NOTE`."""
    n = f[SPECTRA].shape[0]
    return [name for name, item in datasets(f)
            if item.shape[:1] == (n,) and name not in NOT_PER_NOTE]
