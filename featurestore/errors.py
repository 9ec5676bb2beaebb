"""The errors timbremap expects: bad input, a missing or unfit file, a setting out of range, a
package that is not installed. Each message names what and where; the ``timbremap`` command
prints it as one line. Any other exception is a bug and shows its traceback. The checks that
several entry points share are here too (:func:`check_positive_int`, :func:`check_paths`)."""
from __future__ import annotations

import numbers
import os
import re
import reprlib
import shlex
from typing import Sequence

__all__ = ["TimbremapError", "InputError", "NeedsPackage", "BuildError", "StoreError",
           "check_paths", "check_split_names", "check_positive_int", "counted",
           "label_set_text", "label_counts_text",
           "label_difference", "one_line", "shell_path"]


class TimbremapError(Exception):
    """Base class of every expected failure."""


class InputError(TimbremapError, ValueError):
    """A value, setting or file content that is not what was expected."""


class NeedsPackage(TimbremapError, ImportError):
    """An optional package that a feature needs is not installed; says how to install it."""


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun`` as a message says them: ``1 note``, ``2 notes``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


#: The most labels a message lists of a label set.
LABELS_SHOWN = 20


def label_set_text(names: Sequence[str], *, among: Sequence[str] = ()) -> str:
    """A label set as messages show it: ``(cello, dog, kettle)``; every label quoted where one
    (of ``names`` or of ``among``, a set it is shown beside) holds a comma, a bracket or a
    quote, or spaces at its ends: ``('bass, electric', 'cello')`` (four labels are not read as
    five); of a set of over :data:`LABELS_SHOWN`, the first ones and how many there are:
    ``(a0, a1, ..., a19, ... 5000 labels)``."""
    names = list(names)
    shown = _quoted(names, among=among)
    if len(shown) > LABELS_SHOWN:
        shown = shown[:LABELS_SHOWN] + [f"... {len(names)} labels"]
    return "(" + ", ".join(shown) + ")"


def label_counts_text(pairs, *, among: Sequence[str] = (), most: int = LABELS_SHOWN) -> str:
    """``kettle 1, cello 3``: ``(label, number)`` pairs as messages show them, the labels quoted
    as :func:`label_set_text` quotes them (``'bass, electric' 3``), the first ``most`` and
    ``...`` after them."""
    pairs = list(pairs)
    shown = _quoted([name for name, _ in pairs], among=among)
    return ", ".join(f"{name} {n}" for name, (_, n) in zip(shown[:most], pairs)) + (
        ", ..." if len(pairs) > most else "")


def _quoted(names: list, *, among: Sequence[str] = ()) -> list:
    """``names`` as they are, or every one quoted where one (of them or of ``among``) holds a
    comma, a bracket or a quote, or spaces at its ends."""
    plain = all(name and name == name.strip() and not set(name) & set(",()'\"")
                for name in [*names, *among])
    return list(names if plain else map(repr, names))


def label_difference(ours: Sequence[str], theirs: Sequence[str], owners: Sequence[str]) -> str:
    """How two label sets differ, for a message that shows both (:func:`label_set_text` shows
    only the first labels of a large set).

    Parameters
    ----------
    ours, theirs : sequence of str
        The two label sets, each in its order.
    owners : (str, str)
        What holds each, as the message names them: ``('the store', 'the model')``.

    Returns
    -------
    str
        ``' (no label in common)'``; ``' (only in the store: (x); only in the model: (y, z))'``;
        for the same labels in another order, where the orders part: ``' (the same labels in
        another order: at index 2, the store has b, the model c)'``; ``''`` for equal sets.
        Labels are quoted alike in both sets (:func:`label_set_text`).
    """
    ours, theirs = list(ours), list(theirs)
    in_ours, in_theirs = set(ours), set(theirs)
    if ours and theirs and not in_ours & in_theirs:
        return " (no label in common)"
    both = ours + [name for name in theirs if name not in in_ours]
    parts = [f"only in {owner}: {label_set_text(names, among=both)}" for owner, names in (
        (owners[0], [name for name in ours if name not in in_theirs]),
        (owners[1], [name for name in theirs if name not in in_ours])) if names]
    if parts:
        return " (" + "; ".join(parts) + ")"
    at = next((k for k, pair in enumerate(zip(ours, theirs)) if pair[0] != pair[1]), None)
    if at is None:
        return ""
    shown = _quoted([ours[at], theirs[at]], among=both)
    return (f" (the same labels in another order: at index {at}, {owners[0]} has {shown[0]}, "
            f"{owners[1]} {shown[1]})")


def not_a_file(path) -> str:
    """``PATH: not a file but a folder`` (or ``a pipe, socket or device``): what a message says
    of a path that exists and is no regular file, which timbremap never opens (a pipe blocks)."""
    kind = "folder" if os.path.isdir(path) else "pipe, socket or device"
    return f"{path}: not a file but a {kind}"


def install_hint(extra: str = "", *, name: str = "") -> str:
    """How to install timbremap's optional ``extra`` (``'synth'``, ``'remote'``, ...), or
    those of its requirements whose names start with ``name`` (``'tensorflow'``): ``pip
    install`` of the requirements as the installed distribution names them, which serves an
    editable install and a wheel's alike; a source tree never installed, or metadata that
    lacks them, gets ``pip install -e`` in timbremap's folder."""
    from importlib import metadata
    from packaging.requirements import InvalidRequirement, Requirement
    try:
        requires = [Requirement(text) for text in metadata.requires("timbremap") or ()]
    except (metadata.PackageNotFoundError, InvalidRequirement):
        requires = []
    wanted = [str(r).split(";")[0] for r in requires if r.name.startswith(name)
              and ("extra" in str(r.marker)) == bool(extra)  # an extra's, or a requirement
              and (r.marker is None or r.marker.evaluate({"extra": extra}))]  # for here
    if not wanted:
        return f"pip install -e '.[{extra}]' in timbremap's folder" if extra else \
            "pip install -e . in timbremap's folder"
    return "pip install " + " ".join(f"'{w}'" for w in wanted) + (
        f" (timbremap's {extra} extra)" if extra else "")


class BuildError(TimbremapError, RuntimeError):
    """A build that cannot start or go on; the message names the path and the problem."""


class StoreError(TimbremapError, ValueError):
    """A store, or a split of it, that is missing or not what the caller needs."""


def check_positive_int(name: str, value):
    """Raise :class:`InputError` unless ``value`` is an integer of at least 1 (a ``bool``
    is not one), naming the parameter ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")


def check_seed(value, name: str = "seed"):
    """Raise :class:`InputError` unless ``value`` is an integer in ``0..2**32-1``, what numpy's
    and scikit-learn's random states take (a ``bool`` is not one), naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or not 0 <= value < 2**32:
        raise InputError(f"{name} must be an integer in 0..2**32-1, got {value!r}")


def check_paths(name: str, paths, *, what: str = "path"):
    """Raise :class:`InputError` when ``paths`` is one path (a ``str`` or ``Path``) where a
    sequence of them is expected (iterated, a string would give its characters), or no
    sequence at all (``None``, bytes, a number). ``what``
    names one item in the message (``'split name'``)."""
    if isinstance(paths, (str, os.PathLike)):
        raise InputError(f"{name} must be a sequence of {what}s, got the one {what} {paths!r}: "
                         f"give [{str(paths)!r}]")
    if isinstance(paths, (bytes, bytearray, memoryview)) or not hasattr(paths, "__iter__"):
        raise InputError(f"{name} must be a sequence of {what}s, got {reprlib.repr(paths)}")


def check_split_names(splits):
    """``splits`` as a list of split names, or ``None`` (every split) as it is; raise
    :class:`InputError` for one name given as the sequence (:func:`check_paths`), an empty
    sequence (which would select no split, where ``None`` selects all) or an item that is no
    ``str``."""
    if splits is None:
        return None
    check_paths("splits", splits, what="split name")
    splits = list(splits)
    if not splits:
        raise InputError("splits is empty: give the names of the splits, or None for all")
    if bad := [split for split in splits if not isinstance(split, str)]:
        raise InputError(f"splits must be split names such as 'train', got {bad[0]!r}")
    return splits


#: Control characters, which a name may hold (a line break in a file name).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """``text`` with each control character as its escape (a line break as ``\\n``), so that a
    name printed in a line of results stays on that line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def shell_path(path) -> str:
    """``path`` as a word of a command to paste into a shell (a message's ``'timbremap train
    STORE MODEL --resume'``): quoted where it must be (``shlex.quote``; its control characters
    as escapes, :func:`one_line`), and a relative path that begins with ``-`` as ``./-x``, not
    read as an option."""
    text = str(path)
    return one_line(shlex.quote("./" + text if text.startswith("-") else text))
