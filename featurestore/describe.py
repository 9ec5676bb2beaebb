"""A readable description of a store: what ``timbremap inspect`` prints, and the summary
``timbremap build`` ends with."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import List, Optional, Sequence

import h5py
import numpy as np

from . import schema
from .errors import counted, one_line
from .inputoptions import ATTR_PREFIX as INPUT_PREFIX
from .params import ATTR_PREFIX
import featurestore.remote as remote
from .files import hdf5_locks_off, locked_by_another, size_text, temporary
from .store import (StoreError, no_splits, open_split, require_store, split_path,
                    store_splits, unfinished_splits)

__all__ = ["describe_store", "build_summary", "shown"]


def shown(text: str, *, limit: int = 200) -> str:
    """``text`` as a line of a summary shows it: at most ``limit`` characters of it, each
    control character as its escape (:func:`~featurestore.errors.one_line`)."""
    text = one_line(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def describe_store(store, *, max_skipped: Optional[int] = 10, all_adjusted: bool = False,
                   unreadable: Optional[dict] = None) -> List[str]:
    """Lines describing every split of ``store``: shapes, label counts, statistics, skipped
    inputs and feature parameters.

    Parameters
    ----------
    store : str or pathlib.Path
        A store folder, or the URL of one (``s3://...``).
    max_skipped : int or None
        The skipped inputs listed by name in a split; the rest are counted (None: all).
    all_adjusted : bool
        List every input fitted to the parameters (``/adjusted``), not one for an example.
    unreadable : dict, optional
        Where given, a split that cannot be read is one line saying why, its error is put
        here under its name, and the other splits are described; by default it raises.

    Returns
    -------
    list of str
        The lines ``timbremap inspect`` prints, a section per split (``== SPLIT: PATH ...``),
        and a line for each file that a build or a write of results is writing now, or left
        unfinished.

    Raises
    ------
    StoreError
        When ``store`` is not a folder or holds no split file, or (without ``unreadable``) a
        split cannot be read.
    """
    url = remote.is_url(store)
    store = store if url else Path(store)
    require_store(store)
    splits = store_splits(store)
    if not splits:
        raise no_splits(store)
    lines = []
    for split in splits:
        path = split_path(store, split)
        try:
            size = remote.file_size(path) if url else path.stat().st_size
            with open_split(store, split) as f:
                lines += _describe_split(split, f, path, size, max_skipped, all_adjusted)
        except (StoreError, OSError) as err:
            if unreadable is None:
                raise
            unreadable[split] = err
            lines.append(f"== {split}: cannot be read: {err}")
    return lines if url else lines + _unfinished(store, splits)


def _unfinished(store: Path, splits: Sequence[str]) -> List[str]:
    """A line for each file that a build (``SPLIT.h5.partial``) or ``embed`` or ``tsne``
    writing results into a split (``.SPLIT.h5.partial``) is writing now, or left when it was
    stopped: told by the writers' locks, where there are locks."""
    def line(path: Path, now: Optional[bool], what: str, writing: str, left: str,
             then: str) -> List[str]:
        try:
            size = size_text(path.stat().st_size) if path.is_file() else None
        except FileNotFoundError:  # finished since
            size = None
        state = {True: writing, False: f"{left}; {then}"}.get(
            now, f"{writing}, or {left} (no lock tells which here); {then}")
        return [] if size is None else [f"== unfinished: {path.name} ({size}), {what}{state}"]

    building = locked_by_another(store)
    lines = []
    for name in unfinished_splits(store):
        again = (store / name[:-len(".partial")]).is_file()  # a rebuild of a finished one
        lines += line(store / name, building, "", "which a build is writing now",
                      "left by a build that has not finished",
                      "run it again (with --overwrite or --add, as it was) to resume it, or "
                      "remove it" if again
                      else "run it again to resume it")
    for split in splits:
        path = split_path(store, split)
        if not temporary(path).is_file():  # no copy: no writer to ask about
            continue
        lines += line(temporary(path), None if hdf5_locks_off() else locked_by_another(path),
                      f"a copy of {path.name} ", "that embed or tsne is writing results into now",
                      "left when embed or tsne was stopped",
                      f"the next embed or tsne of {split} removes it")
    return lines


def _describe_split(split: str, f, path, size: int, max_skipped: Optional[int],
                    all_adjusted: bool) -> List[str]:
    spectra = f[schema.SPECTRA]
    n = spectra.shape[0]
    per_note = f"{size / n / 1024:.1f} KiB/note" if n else "no notes"
    lines = [f"== {split}: {path}  ({size / 2**20:.1f} MiB, {per_note})",
             f"  {schema.SPECTRA:<9} {spectra.dtype} {spectra.shape}, chunks {spectra.chunks}, "
             f"compression {spectra.compression}"]
    built_as = str(f.attrs.get("split", split))
    if built_as != split:  # a file renamed (on purpose or not): read as the split it is named
        lines.append(f"  renamed   built as the '{built_as}' split, read as '{split}' by its "
                     f"name")
    others = [(name, ds) for name, ds in schema.datasets(f) if name not in schema.BUILT
              and not name.startswith(schema.METADATA + "/")]
    if others:  # whatever else the file holds (analysis results, ...), and how it was made
        lines.append("  also      " + ", ".join(f"{name} {ds.dtype} {ds.shape}"
                                               for name, ds in others))
        for name, ds in others:
            lines += _scalar_attrs(name, ds)
    lines += _label_counts(f[schema.LABELS][:], schema.read_label_names(f))
    lines.append(f"  notes     {n}" + _from_what(f, n))
    count, stats_split = schema.read_stats_count(f)
    if count:
        mean, std = schema.read_stats(f)
        lines.append(f"  stats     from '{stats_split}' ({count} frames): mean "
                     f"{mean.min():.3f}..{mean.max():.3f}, std {std.min():.3f}..{std.max():.3f}")
    skipped, adjusted = schema.read_problems(f)
    lines.append(f"  skipped   {len(skipped)}" + (":" if skipped else ""))
    listed = skipped if max_skipped is None else skipped[:max_skipped]
    lines += [f"    {shown(name)}: {shown(reason)}" for name, reason in listed]
    if len(skipped) > len(listed):
        lines.append(f"    ... and {len(skipped) - len(listed)} more (--all-skipped lists them)")
    if adjusted and all_adjusted:
        lines.append(f"  adjusted  {len(adjusted)}:")
        lines += [f"    {shown(name)}: {shown(what)}" for name, what in adjusted]
    elif adjusted:
        lines.append(f"  adjusted  {len(adjusted)} (e.g. {shown(adjusted[0][0])}: "
                     f"{adjusted[0][1]}" + ("; --all-adjusted lists them)" if len(adjusted) > 1
                                            else ")"))
    params = schema.read_params(f)
    attrs = params.to_attrs()
    lines.append("  features  " + ", ".join(
        f"{name}={attrs[ATTR_PREFIX + name]}" for name in params.shaping()))
    inputs = {key[len(INPUT_PREFIX):]: value for key, value in f.attrs.items()
              if key.startswith(INPUT_PREFIX)}
    if inputs:  # how the notes were read (stores built before this was recorded: none)
        if str(inputs.get("layout")) == "nsynth":  # its splits are folders, never drawn
            inputs = {key: value for key, value in inputs.items()
                      if not key.endswith("_fraction")}
        lines.append("  inputs    " + ", ".join(f"{key}={value}" for key, value in inputs.items()
                                                if value or key.endswith("_fraction")))
    if isinstance(f.get(schema.METADATA), h5py.Group):
        lines.append("  metadata  " + ", ".join(f"{schema.METADATA}/{key}"
                                                for key in f[schema.METADATA]))
    if schema.SOURCE_FOLDER in f:  # every NOTES folder, with its notes in this split
        folders = f[schema.SOURCE_FOLDER]
        counts = np.bincount(folders[:], minlength=len(folders.attrs[schema.LIST_NAMES]))
        source = ", ".join(f"{root} ({counted(n, 'note')})"
                           for root, n in zip(folders.attrs[schema.LIST_NAMES], counts))
    else:
        source = str(f.attrs.get("source_root", "?"))
    lines.append(f"  built     {f.attrs.get('created', '?')} by timbremap "
                 f"{f.attrs.get('timbremap_version', '?')} from {source}")
    return lines


def _scalar_attrs(name: str, ds, *, most: int = 30, width: int = 100) -> List[str]:
    """``NAME: key=value, ...`` over lines of at most ``width`` characters: the attributes of
    ``ds`` that are one number or text (a t-SNE map's settings and scores, the model that made
    embeddings), the first ``most`` of them."""
    pairs, keys = [], list(ds.attrs)
    for key in keys[:most]:
        value = ds.attrs[key]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, (np.floating, float)):
            pairs.append(f"{key}={float(value):.4g}")
        elif isinstance(value, (np.integer, int, str)):
            pairs.append(shown(f"{key}={value}", limit=80))
    if len(keys) > most:
        pairs.append(f"... and {len(keys) - most} more")
    if not pairs:
        return []
    return textwrap.wrap(", ".join(pairs), width, initial_indent=f"    {name}: ",
                         subsequent_indent=" " * 6, break_long_words=False,
                         break_on_hyphens=False)


def _from_what(f, n: int) -> str:
    """`` from K instruments`` (NSynth), or `` from F files in G groups``."""
    if not n:
        return ""
    if str(f.attrs.get(INPUT_PREFIX + "layout", "nsynth")) == "nsynth":  # by name: two
        # renders' ids may coincide (featurestore.render.BANKS), their names never do
        return f" from {counted(len(np.unique(f[schema.INSTRUMENT_STR].asstr()[:])), 'instrument')}"
    files = len(np.unique(f[schema.FILE].asstr()[:]))
    groups = len(np.unique(f[schema.GROUP].asstr()[:]))
    return f" from {counted(files, 'file')} in {counted(groups, 'group')}"


def _label_counts(labels: np.ndarray, names: Sequence[str], width: int = 100) -> List[str]:
    """``labels    NAME COUNT  NAME COUNT ...``: the notes of each label of the store's label set
    ``names``, in its order, over as many lines of at most ``width`` characters as it takes
    (every value indexes ``names``: :func:`~featurestore.splitcheck.check_split`)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(names))
    entries = [f"{name} {count}" for name, count in zip(names, counts)]
    prefix, rows, row = "  labels    ", [], []
    for entry in entries or ["(none)"]:
        if row and len(prefix) + len("  ".join(row + [entry])) > width:
            rows.append(row)
            row = []
        row.append(entry)
    rows.append(row)
    return [(prefix if k == 0 else " " * len(prefix)) + "  ".join(row)
            for k, row in enumerate(rows)]


def build_summary(reports):
    """The one-screen summary of a build: ``notes`` counts the notes each split file holds,
    and under ``build --add`` an ``added`` column those this build added (the skipped and
    adjusted columns count the split's rows of ``/skipped`` and ``/adjusted``, held notes'
    too; the rate is this build's). A split
    rewritten without new notes (``--add``: for train's merged statistics or the grown label
    set; a build: for the train split's statistics) is ``updated``."""
    grew = any(r.status == "added" or r.held for r in reports)
    lines = [f"{'split':<7}{'status':<9}{'notes':>8}" + (f"{'added':>8}" if grew else "")
             + f"{'skipped':>9}{'adjusted':>10}{'seconds':>9}{'notes/s':>9}{'MiB':>9}"
             f"{'KiB/note':>10}"]
    for r in reports:
        held = r.n_examples + r.held  # the notes in the file (build --add: held and added)
        rate = f"{r.rate:.0f}" if r.status != "kept" and 0 < r.rate < math.inf else "-"
        per_note = f"{r.bytes / held / 1024:.1f}" if held else "-"
        added = (f"{r.n_examples if r.status != 'kept' else 0:>8}" if grew else "")
        lines.append(f"{r.split:<7}{r.status:<9}{held:>8}{added}{r.n_skipped:>9}"
                     f"{r.n_adjusted:>10}{r.seconds:>9.1f}{rate:>9}"
                     f"{r.bytes / 2**20:>9.1f}{per_note:>10}")
    for r in reports:
        for name, reason in r.skipped[:5]:
            lines.append(f"  skipped in {r.split}: {shown(name)}: {shown(reason)}")
        if len(r.skipped) > 5:
            lines.append(f"  ... {len(r.skipped) - 5} more skipped in {r.split} "
                         f"(timbremap inspect --all-skipped lists them)")
    return lines
