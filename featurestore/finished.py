"""A store's finished splits, as a build finds them: what building each split did
(:class:`SplitReport`), and the checks that a finished split fits the build that keeps it or
reads from it (its features, its label set, its train statistics), and the train statistics
given to a finished split that carries others."""
from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import h5py
import numpy as np

from . import schema, writeback
from .errors import (BuildError, StoreError, counted, label_counts_text, label_difference,
                     label_set_text)
from .inputoptions import ATTR_PREFIX as INPUT_PREFIX
from .layouts import Inputs
from .params import FeatureParams
from .splitcheck import check_held_here, check_schema
from .splitfile import Summary, inputs_digest
from .nsynth import SPLITS
from .store import held_by_another, open_split, split_path
from .files import real_path

__all__ = ["SplitReport", "held_labels", "kept", "check_kept_inputs", "input_differences",
           "existing_train_stats", "with_train_stats", "warn_of_splits_that_mislead",
           "warn_of_one_label", "remove_undrawn"]

log = logging.getLogger(__name__)

#: A label train holds fewer notes of than this is warned of by ``build`` and ``train``.
FEW_TRAIN_NOTES = 5


@dataclass
class SplitReport:
    """What building one split did (printed as the build's summary)."""

    split: str
    path: Path
    status: str  # 'built', 'resumed', 'kept'; 'updated': rewritten without new notes (for
    # train's statistics, or the label set --add grew); build --add: 'added'
    n_examples: int = 0
    n_skipped: int = 0
    n_adjusted: int = 0
    seconds: float = 0.0
    steady_rate: float = float("nan")
    resumed_at: int = 0
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    held: int = 0  # build --add: the notes the split held before (n_examples were added)

    @classmethod
    def kept(cls, split: str, path: Path, n: int, problems) -> "SplitReport":
        """The report of a finished split a build keeps as it is: its ``n`` notes and its
        ``(skipped, adjusted)`` rows (:func:`schema.read_problems`)."""
        skipped, adjusted = problems
        return cls(split, path, "kept", n, len(skipped), len(adjusted), skipped=list(skipped))

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size if self.path.is_file() else 0

    @property
    def rate(self) -> float:
        done = self.n_examples + self.n_skipped - self.resumed_at
        return done / self.seconds if self.seconds > 0 else float("nan")


def held_labels(out: Path, splits: Sequence[str]) -> Optional[Tuple[str, ...]]:
    """The label set of the first finished split of ``splits`` (``build --add`` may have
    appended labels out of sorted order), or ``None``."""
    for split in splits:
        path = split_path(out, split)
        if path.is_file():
            try:
                with h5py.File(path, "r") as f:
                    return schema.read_label_names(f) if schema.LABELS in f else None
            except OSError:
                return None  # kept says what is wrong with it
    return None


def kept(split: str, path: Path, read: Inputs, params: FeatureParams, attrs: dict
         ) -> SplitReport:
    """The report of a finished split left as it is, after checking that it fits the build
    (its features and label set), with a warning when its inputs were read otherwise
    (``attrs``: :meth:`InputOptions.to_attrs`), are other folders, or changed."""
    try:
        with h5py.File(path, "r") as f:
            _check_kept_file(f)  # BuildError: not one of the excepts below
            differences = schema.read_params(f).differences(params)
            labels = schema.read_label_names(f) if schema.LABELS in f else None
            problems = schema.read_problems(f)
            n = int(f[schema.SPECTRA].shape[0]) if schema.SPECTRA in f else None
            digest = f.attrs.get(schema.INPUTS_DIGEST)
            folders = (sorted(map(str, f[schema.SOURCE_FOLDER].attrs[schema.LIST_NAMES]))
                       if schema.SOURCE_FOLDER in f else  # built before: its one folder
                       [str(f.attrs["source_root"])] if "source_root" in f.attrs else None)
            was, now = input_differences(f.attrs, attrs, drawn=read.drawn)
    except OSError as err:
        if held_by_another(err):
            raise BuildError(f"{path}: open in another program; close it there and try "
                             f"again") from None
        raise BuildError(f"{path}: exists and is not a timbremap split file; move it away or "
                         f"use --overwrite") from None
    except ValueError as err:  # StoreError, or parameters FeatureParams refuses
        raise BuildError(f"{path}: exists, but its feature parameters cannot be read ({err}); "
                         f"use --overwrite to rebuild it") from None
    if differences:
        raise BuildError(f"{path}: exists and was built with other feature parameters "
                         f"({'; '.join(differences)}); use --overwrite to rebuild")
    if n is None or labels is None:
        raise BuildError(f"{path}: exists and is not a timbremap split file; move it away or "
                         f"use --overwrite")
    if labels != tuple(read.labels):
        raise BuildError(f"{path}: exists with the label set {label_set_text(labels)}, and the "
                         f"inputs hold {label_set_text(read.labels)}"
                         f"{label_difference(labels, read.labels, ('the split', 'the inputs'))}"
                         f"; use --overwrite to rebuild")
    report = SplitReport.kept(split, path, n, problems)
    given = sorted(str(real_path(root)) for root in read.roots)
    if was:  # the notes the split would hold now are others
        log.warning("%s: kept, but its notes were read with %s (now %s); use --overwrite to "
                    "rebuild", path, was, now)
    elif folders is not None and folders != given:  # other NOTES folders, not changed ones
        log.warning("%s: kept, but it was built from %s and is now given %s; use --overwrite "
                    "to rebuild", path, ", ".join(folders), ", ".join(given))
    elif digest is not None and digest != inputs_digest(read.splits[split][0]):
        log.warning("%s: kept, but %s changed since it was built; build --add adds the notes "
                    "it does not hold, --overwrite rebuilds it", path, read.where(split))
    else:
        log.info("%s: finished split kept (build --overwrite rebuilds it)", path)
    if Path(f"{path}.partial").is_file():  # left by a stopped build --overwrite or --add
        log.warning("%s.partial: left by a build --overwrite or --add of it that has not "
                    "finished, and kept as it is: run that build again to resume it, or "
                    "remove it", path)
    return report


def input_differences(recorded, now: dict, *, drawn: bool) -> Tuple[str, str]:
    """How the input options a split file ``recorded`` (its attrs) and those of a build
    (``now``: :meth:`InputOptions.to_attrs`) differ, as options: ``(recorded's, now's)``, e.g.
    ``('--test-fraction 0.1', '--test-fraction 0.3')``; ``('', '')`` where they read the notes
    alike. Options a file does not record are not compared, nor, where the inputs give every
    note its split (``drawn`` false: NSynth's layout, split folders), the fractions.
    """
    def shown(key, value):  # as the option: input_windows 0.0 is no --windows
        name = key[len(INPUT_PREFIX):]
        option = "--" + name.replace("_", "-")
        if name in ("windows", "group_by", "columns") and not value:
            return f"no {option}"
        return f"{option} {shlex.quote(value)}" if isinstance(value, str) else f"{option} {value:g}"
    other = [key for key in now if key in recorded and recorded[key] != now[key]
             and (drawn or not key.endswith("_fraction"))]
    return (", ".join(shown(key, recorded[key]) for key in other),
            ", ".join(shown(key, now[key]) for key in other))


def check_kept_inputs(out: Path, found: Sequence[str], read: Inputs, attrs: dict):
    """Refuse a build that would build some of the splits ``found`` beside finished ones whose
    notes were read with input options other than ``attrs`` (:meth:`InputOptions.to_attrs`):
    a split drawn now could hold their notes."""
    done = [split for split in SPLITS if split_path(out, split).is_file()]
    if all(split in done for split in found):
        return  # nothing is built: kept() warns
    for split in done:
        path = split_path(out, split)
        try:
            with h5py.File(path, "r") as f:
                was, now = input_differences(f.attrs, attrs, drawn=read.drawn)
        except OSError:
            continue  # kept() says what is wrong with it
        if was:
            why = ("a split drawn now beside it could hold its notes" if read.drawn else
                   "a store's splits are read one way")
            raise BuildError(f"{path}: its notes were read with {was}, and this build reads "
                             f"them with {now}: {why}; give the store's options, or --overwrite "
                             f"to build every split again")


def remove_undrawn(out: Path, found: Sequence[str]):
    """Remove the finished splits of ``out`` that a build of every split again (``--overwrite``)
    does not make: drawn before, with other options, they could hold the new splits' notes
    (a valid split of ``--valid-fraction 0.3`` beside a train split of ``0``), with a warning
    naming each."""
    for split in SPLITS:
        path = split_path(out, split)
        if split not in found and path.is_file():
            path.unlink()
            log.warning("%s: removed: this build, drawing every split again, makes no %s split "
                        "(its notes could be train's now)", path, split)


def warn_of_one_label(read: Inputs):
    """Warn where every note of the inputs has one label: a classifier needs two."""
    if len(read.labels) == 1:
        log.warning("%s: every note has the label %r; a classifier needs at least two (%s)",
                    ", ".join(map(str, read.roots)), read.labels[0],
                    "does the manifest's label column hold the labels?" if read.layout ==
                    "manifest" else f"is --layout {read.layout} how these notes are laid out?")


def _check_kept_file(f: h5py.File):
    """Raise :class:`BuildError`, saying that ``--overwrite`` rebuilds it, where a split a
    build keeps holds a link (:func:`check_held_here`) or is of a later store schema
    (:func:`check_schema`)."""
    try:
        check_held_here(f)
        check_schema(f)
    except StoreError as err:
        raise BuildError(f"{err}; or use --overwrite to rebuild it") from None


def existing_train_stats(out: Path, params: FeatureParams) -> Optional[Summary]:
    """The statistics of the store's finished train split, for splits built without it;
    ``None`` (with a warning) when there is none."""
    path = split_path(out, "train")
    if not path.is_file():
        log.warning("no train split: each split's statistics are its own")
        return None
    with h5py.File(path, "r") as f:
        _check_kept_file(f)
        if schema.read_params(f).differences(params):
            raise BuildError(f"{path}: built with other feature parameters; use --overwrite")
        try:
            return Summary.read(f)
        except StoreError as err:
            raise BuildError(str(err)) from None


def with_train_stats(out: Path, params: FeatureParams, reports: List[SplitReport]
                     ) -> List[SplitReport]:
    """Give the train split's statistics to each finished split of ``out`` that carries others:
    its own (built while the store had no train split) or an earlier train split's
    (``--overwrite --split train``), as a copy renamed over it.

    A split of other features keeps its own; so does a link to a split file elsewhere (another
    store's, whose statistics are that store's), and one that cannot be rewritten now (held by
    another program, read-only, no room for its copy), with a warning: a later build gives
    them.

    Parameters
    ----------
    out : pathlib.Path
        The store folder.
    params : FeatureParams
        The build's feature parameters.
    reports : list of SplitReport
        The build's reports, in NSynth order.

    Returns
    -------
    list of SplitReport
        ``reports``, a split given train's statistics ``updated`` (one the build did not ask
        for added), in NSynth order.
    """
    read = _statistics(split_path(out, "train"), params)
    if read is None or read[0] is None:
        return reports
    train = read[0]
    by_split = {report.split: report for report in reports}
    for split in SPLITS[1:]:
        path = split_path(out, split)
        read = _statistics(path, params) if path.is_file() else None
        if read is None:  # none, or kept() and the commands say what is wrong with it
            continue
        summary, of, report = read
        if of == "train" and summary is not None and summary.count == train.count and \
                np.array_equal(summary.mean, train.mean) and np.array_equal(summary.std, train.std):
            continue
        was = f"the statistics of {of}" if summary is not None else "no statistics"
        if path.is_symlink():
            log.warning("%s: carries %s, not those of the train split, and links to %s, whose "
                        "statistics are its own store's: kept as it is", path, was,
                        real_path(path))
            continue
        try:
            with writeback.results_file(out, split, 0, what="the new statistics") as f:
                schema.write_stats(f, train.mean, train.std, train.count, "train")
        except (OSError, StoreError) as err:
            log.warning("%s: carries %s, not those of the train split, and could not be given "
                        "them (%s); it is as it was, and a later build gives them", path, was,
                        err.strerror if isinstance(err, OSError) and err.strerror else err)
            continue
        by_split[split] = replace(by_split.get(split, report), status="updated")
    return [by_split[split] for split in SPLITS if split in by_split]


def _statistics(path: Path, params: FeatureParams
                ) -> Optional[Tuple[Optional[Summary], str, SplitReport]]:
    """The statistics of the split file ``path`` (``None`` where it holds none), the split
    they are of, and its report as a kept split; ``None`` where it cannot be read or holds
    features of other parameters than ``params``."""
    try:
        with h5py.File(path, "r") as f:
            if schema.read_params(f).differences(params):
                return None
            report = SplitReport.kept(path.stem, path, f[schema.SPECTRA].shape[0],
                                      schema.read_problems(f))
            return Summary.read(f), schema.read_stats_count(f)[1], report
    except (OSError, ValueError, KeyError):
        return None


def warn_of_splits_that_mislead(out: Path, *, every_split: bool = True):
    """Warn of what in a store's splits would mislead a model trained and scored on them:

    - a valid or test split that holds the very notes train holds (a copy of its file, or one
      renamed): its scores are not of unheard notes;
    - a label of the inputs' own label set (not NSynth's 11 families, some of which a set of
      notes may lack) that no split holds a note of, every file of it skipped: the model
      has an output for it that it never learns;
    - a label that valid or test hold notes of and train none: a model cannot learn it;
    - the labels train holds and valid none: the validation accuracy, which picks the best
      epoch and stops training, says nothing of them;
    - the labels train holds fewer than :data:`FEW_TRAIN_NOTES` notes of, fewest first.

    Splits of another label set, or that cannot be read now, are passed over; the labels no
    split holds are not looked for unless ``every_split`` the inputs give was built."""
    found = {}  # split -> (label names, notes of each label, content digest, layout)
    for split in SPLITS:
        try:
            with open_split(out, split) as f:
                names = schema.read_label_names(f)
                found[split] = (names, np.bincount(f[schema.LABELS][:], minlength=len(names)),
                                f.attrs.get(schema.CONTENT_DIGEST),
                                str(f.attrs.get(INPUT_PREFIX + "layout", "nsynth")))
        except (OSError, StoreError):  # none, or held by another program: nothing to say
            continue
    if "train" not in found:
        return
    names, in_train, digest, layout = found.pop("train")
    copies = [split for split, (_, _, theirs, _) in found.items()
              if in_train.sum() and theirs is not None and theirs == digest]  # of every name
    if copies:
        log.warning("%s: %s hold%s the very notes train holds (a copy of train.h5?): %s not "
                    "of unheard notes", out, " and ".join(copies), "s" * (len(copies) == 1),
                    "their scores are" if len(copies) > 1 else "its scores are")
    counts = {split: n for split, (theirs, n, _, _) in found.items() if theirs == names}
    unheard = [name for k, name in enumerate(names) if not in_train[k]
               and not any(n[k] for n in counts.values())]
    if unheard and layout != "nsynth" and every_split:
        one = len(unheard) == 1
        log.warning("%s: no split holds a note of %s (every file of %s was skipped, which "
                    "inspect lists, or its split is not built yet); a model trained on the store "
                    "has an output for %s that it never learns: mend or leave out %s files, then "
                    "build with --overwrite", out, label_set_text(unheard),
                    "the label" if one else "these labels", "it" if one else "each",
                    "its" if one else "their")
    for k, name in enumerate(names):
        holders = [split for split, n in counts.items() if n[k] and not in_train[k]]
        if holders:
            log.warning("%s: %s hold%s notes of %r, and train none: a model cannot learn it",
                        out, " and ".join(holders), "s" * (len(holders) == 1), name)
    unchecked = [name for k, name in enumerate(names) if in_train[k] and "valid" in counts
                 and not counts["valid"][k]]
    if unchecked:
        log.warning("%s: valid holds no notes of %s, which train holds: the validation "
                    "accuracy, which picks the best epoch and stops training, says nothing of "
                    "how they are told apart", out, label_set_text(unchecked))
    few = [(names[k], int(in_train[k])) for k in np.argsort(in_train, kind="stable")
           if 0 < in_train[k] < FEW_TRAIN_NOTES]  # fewest first
    if few:
        log.warning("%s: train holds fewer than %d notes of %s (%s): a model learns little of "
                    "a label from so few", out, FEW_TRAIN_NOTES, counted(len(few), "label"),
                    label_counts_text(few, among=names))
