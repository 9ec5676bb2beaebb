"""The files of the ``folders`` and ``manifest`` layouts (:mod:`featurestore.layouts`) as
:class:`Row` s, one per file, each checked: a file or manifest row that cannot be used gets its
problem instead of stopping the build.
"""
from __future__ import annotations

import codecs
import csv
import logging
import os
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

from .errors import BuildError, counted
from .nsynth import SPLITS, check_text

__all__ = ["AUDIO_SUFFIXES", "MANIFEST_COLUMNS", "OPTIONAL_COLUMNS", "SPLIT_NAMES", "Row",
           "audio_files", "folder_rows", "manifest_rows"]

log = logging.getLogger(__name__)

#: The files the folder layout reads as audio (by suffix, any case); others are left alone.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
                  ".au", ".w64", ".caf", ".m4a")
#: A manifest's columns, and those it may have besides; any other is kept as metadata text.
MANIFEST_COLUMNS = ("path", "label")
OPTIONAL_COLUMNS = ("split", "group")
#: The names a split goes by, as a folder of the folder layout or a manifest's ``split`` (in
#: any case): NSynth's, and those datasets often use.
SPLIT_NAMES = {"train": "train", "training": "train", "valid": "valid", "validation": "valid",
               "val": "valid", "dev": "valid", "test": "test", "testing": "test"}


@dataclass
class Row:
    """One file of the folder or manifest layout, before it is a note."""

    name: str
    file: str          # relative to its root (or absolute)
    label: str
    split: str         # '' to draw
    group: str = ""    # '' to take from group_by or the file
    meta: Dict[str, str] = field(default_factory=dict)
    problem: str = ""  # why it cannot be used
    draws_valid: bool = False  # a train folder's file, drawn into valid where no folder is

    def __post_init__(self):  # one label however its letters are composed: a folder named on
        self.label = unicodedata.normalize("NFC", self.label)  # macOS is NFD, a typed one NFC


def audio_files(folder: Path, unreadable: Optional[Callable[[Path, str], None]] = None
                ) -> Iterator[Path]:
    """The audio files below ``folder`` (:data:`AUDIO_SUFFIXES`, any case), in sorted order
    folder by folder. Hidden files and folders are passed over. Links to folders outside
    ``folder`` are followed, each folder read once (a link loop, or two links to one folder,
    cannot repeat it); a link to a folder inside it is passed over, as the folder is read
    under its own name.

    Parameters
    ----------
    folder : pathlib.Path
    unreadable : callable, optional
        Called with each folder that cannot be listed and why (``'Permission denied'``);
        by default such a folder raises :class:`BuildError`.
    """
    seen, top = set(), os.path.realpath(folder)

    def first_visit(path: str) -> bool:
        if os.path.islink(path) and os.path.commonpath([top, os.path.realpath(path)]) == top:
            return False  # read under its own name
        try:
            info = os.stat(path)
        except OSError:  # os.walk reports it
            return True
        if (info.st_dev, info.st_ino) in seen:
            return False
        seen.add((info.st_dev, info.st_ino))
        return True

    def refused(err: OSError):
        reason = err.strerror or str(err)
        if unreadable is None:
            raise BuildError(f"{err.filename}: the folder cannot be read ({reason})")
        unreadable(Path(err.filename), reason)

    first_visit(str(folder))
    for dirpath, dirnames, filenames in os.walk(folder, onerror=refused, followlinks=True):
        dirnames[:] = [d for d in sorted(dirnames) if not d.startswith(".")
                       and first_visit(os.path.join(dirpath, d))]  # in the order walked
        for filename in sorted(filenames):
            if not filename.startswith(".") and \
                    os.path.splitext(filename)[1].lower() in AUDIO_SUFFIXES:
                yield Path(dirpath) / filename


def _split_folders(root: Path) -> Dict[str, Path]:
    """``split -> folder`` for the split folders below ``root``, in NSynth's order: those
    named ``train``, ``valid`` or ``test``, or, where every folder of ``root`` has a split's
    name (:data:`SPLIT_NAMES`, any case: ``Training/ val/``) and train is one of them, all.

    Raises
    ------
    BuildError
        Two folders of one split (``val/`` and ``valid/``).
    """
    folders = [entry for entry in sorted(root.iterdir())
               if not entry.name.startswith(".") and entry.is_dir()]
    named = {entry: SPLIT_NAMES.get(entry.name.casefold()) for entry in folders}
    named = {entry: split for entry, split in named.items()  # not a zip's __MACOSX, or docs/
             if split or entry.name != "__MACOSX" and _holds_audio(entry)}
    if not all(named.values()) or "train" not in named.values():
        spelt = [entry.name for entry, split in named.items()
                 if split and entry.name not in SPLITS]
        if spelt:
            other = next((e.name for e, split in named.items() if not split), None)
            log.warning("%s: %s read as %s (named as a split's, but %s); name split folders "
                        "train/, valid/, test/ to have them read as splits", root,
                        ", ".join(f"{name}/" for name in spelt),
                        "a class folder" if len(spelt) == 1 else "class folders",
                        f"{other}/ is no split folder" if other else "no folder is train's")
        named = {entry: split for entry, split in named.items() if entry.name in SPLITS}
    found: Dict[str, List[Path]] = {}
    for entry, split in named.items():
        found.setdefault(split, []).append(entry)
    for split, twice in found.items():
        if len(twice) > 1:
            raise BuildError(f"{root}: {' and '.join(f.name + '/' for f in twice)} are both "
                             f"read as the {split} split; which one is it? Move the other out")
    return {split: found[split][0] for split in SPLITS if split in found}


def _holds_audio(folder: Path) -> bool:
    """Whether any audio file lies below ``folder`` (one that cannot be read: yes)."""
    try:
        return next(audio_files(folder), None) is not None
    except BuildError:
        return True


def folder_rows(root: Path, *, told: bool = False) -> List[Row]:
    """Every audio file below ``root``'s class folders, split folders or not (``told``: the
    layout was given, not told by what the folder holds). With a ``train`` folder and no
    ``valid`` one, valid is drawn from train's files (:attr:`Row.draws_valid`), as training
    needs one."""
    folders = _split_folders(root)
    draws = "train" in folders and "valid" not in folders
    if draws:
        log.info("%s: no valid folder: valid is drawn from the groups of %s's files "
                 "(--valid-fraction)", root, folders["train"].name)
    left = sorted(entry.name for entry in root.iterdir() if not entry.name.startswith(".")
                  and (entry.is_dir() and folders and entry not in folders.values()
                       or entry.is_file() and entry.suffix.lower() in AUDIO_SUFFIXES))
    if left:
        log.warning("%s: %d entries outside the class folders%s are not read (first: %s)",
                    root, len(left), " of its split folders" if folders else "", left[0])
    rows, classes = [], set()
    for split in folders or [""]:
        top = folders[split] if split else root
        loose = sum(1 for entry in top.iterdir() if not entry.name.startswith(".")
                    and entry.is_file() and entry.suffix.lower() in AUDIO_SUFFIXES)
        if split and loose:
            log.warning("%s: %d audio files directly in a split folder are not read (a split "
                        "folder holds class folders; a class folder cannot have a split "
                        "folder's name, such as train, val or test: rename it, or list the "
                        "files in a manifest)", top, loose)
        for label_dir in sorted(top.iterdir()):
            if label_dir.name.startswith(".") or not label_dir.is_dir():
                continue
            classes.add(unicodedata.normalize("NFC", label_dir.name))  # as a Row's label

            def unreadable(path: Path, reason: str, label: str = label_dir.name):
                rows.append(Row(path.relative_to(top).as_posix() + "/",
                                path.relative_to(root).as_posix() + "/", label, split,
                                problem=f"the folder cannot be read ({reason})"))

            for path in audio_files(label_dir, unreadable):
                row = Row(path.relative_to(top).as_posix(), path.relative_to(root).as_posix(),
                          label_dir.name, split, draws_valid=draws and split == "train")
                try:
                    check_text({"file name": row.file}, "file name")
                    _check_label(row.label, "the class folder's name")
                except ValueError as err:  # not stored as UTF-8, or a label no table prints
                    row.problem = str(err)
                rows.append(row)
    empty = sorted(classes - {row.label for row in rows})
    if rows and empty:
        log.warning("%s: no audio file in %s, which give%s the store no label (first: %s; "
                    "endings read: %s)", root, counted(len(empty), "class folder"),
                    "s" * (len(empty) == 1), empty[0], ", ".join(AUDIO_SUFFIXES))
    if not rows:
        nsynth = ("" if told else f"no split folder with an examples.json (NSynth's layout: "
                                  f"{', '.join(s + '/' for s in SPLITS)} or nsynth-train/, "
                                  f"...) and ")
        raise BuildError(f"{root}: {nsynth}no audio files in class folders (ROOT/LABEL/FILE "
                         f"or ROOT/SPLIT/LABEL/FILE, FILE one of {', '.join(AUDIO_SUFFIXES)})")
    return rows


def _line_breaks(entry: dict) -> int:
    """The line breaks inside a manifest row's quoted fields (``\\r\\n``, ``\\n`` or ``\\r``)."""
    text = "".join(v if isinstance(v, str) else "".join(map(str, v or ()))
                   for v in entry.values())
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def manifest_rows(path: Path, names: Optional[Dict[str, str]] = None) -> List[Row]:
    """The rows of a manifest CSV, each checked: a row that cannot be used gets its problem.
    ``names``: ``role -> column`` for the roles (``path``, ``label``, ``split``, ``group``)
    whose columns are named otherwise (:attr:`InputOptions.column_names`)."""
    names = names or {}
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as err:
        raise BuildError(f"{path}: cannot be read ({err.strerror or err})") from None
    rows, seen = [], {}
    with fh:
        reader = csv.DictReader(fh, strict=True)  # a stray or unclosed quote is an error
        try:
            columns = [c.strip() for c in reader.fieldnames or []]
            _check_named(path, columns, names)
            role = {column: r for r, column in names.items()}
            columns = [role.get(c, c) for c in columns]  # each role's column named as the role
            reader.fieldnames = columns
            extra = [c for c in columns if c not in MANIFEST_COLUMNS + OPTIONAL_COLUMNS]
            _check_columns(path, columns, extra)
            for entry in reader:  # a row is named by its first line, where it spans several
                rows.append(_manifest_row(path, reader.line_num - _line_breaks(entry), entry,
                                          extra, seen))
        except UnicodeDecodeError:  # decoded a block at a time: found again, by its line
            raise BuildError(f"{path}: not a readable CSV file: {_not_utf8(path)}") from None
        except csv.Error as err:  # on the line after those read whole
            line = reader.line_num + 1
            raise BuildError(f"{path}: line {line}: " + (
                "a quote that opens a field there is never closed" if "end of data" in str(err)
                else f"not readable CSV ({err}: a field with quotes in it is quoted whole, its "
                     f"quotes doubled)")) from None
    if not rows:
        raise BuildError(f"{path}: no rows below its header")
    return rows


def _not_utf8(path: Path, block: int = 1 << 20) -> str:
    """Where ``path`` first stops being UTF-8: ``not UTF-8 text (line N, byte B: reason)``,
    read a block at a time."""
    decoder, line, offset = codecs.getincrementaldecoder("utf-8")(), 1, 0
    with path.open("rb") as fh:
        while True:
            data, held = fh.read(block), len(decoder.getstate()[0])  # held: a character's
            try:                                                       # start, no line break
                decoder.decode(data, final=not data)
            except UnicodeDecodeError as err:  # err.start counts the held bytes first
                line += data.count(b"\n", 0, max(err.start - held, 0))
                return (f"not UTF-8 text (line {line}, byte {offset - held + err.start}: "
                        f"{err.reason}; save it as UTF-8)")
            if not data:
                return "not UTF-8 text"
            line += data.count(b"\n")
            offset += len(data)


def _check_named(path: Path, columns: List[str], names: Dict[str, str]):
    """Refuse a header without a column for ``path`` or ``label``, or with a column named as a
    role whose column is another (``names``: ``role -> column``)."""
    given = f" (--columns {','.join(f'{r}={c}' for r, c in names.items())})" if names else ""
    missing = [names.get(r, r) for r in MANIFEST_COLUMNS + OPTIONAL_COLUMNS
               if names.get(r, r) not in columns and (r in MANIFEST_COLUMNS or r in names)]
    if missing:
        raise BuildError(f"{path}: no {', '.join(missing)} column{given} (a manifest has the "
                         f"columns path,label and optionally split, group, or says which of "
                         f"its columns give them with --columns path=COLUMN,label=COLUMN; "
                         f"found: {', '.join(columns) or 'no header'})")
    clash = [r for r in names if r in columns and names[r] != r]
    if clash:
        raise BuildError(f"{path}: has a column named {clash[0]!r}, and{given} takes the "
                         f"{clash[0]} from {names[clash[0]]!r}: rename that column")


def _check_columns(path: Path, columns: List[str], extra: List[str]):
    """Refuse column names given twice, or that cannot name a ``/metadata`` dataset."""
    twice = sorted(c for c, n in Counter(columns).items() if n > 1)
    if twice:
        raise BuildError(f"{path}: the column{'s' * (len(twice) > 1)} "
                         f"{', '.join(map(repr, twice))} {'are' if len(twice) > 1 else 'is'} "
                         f"given more than once")
    for column in extra:
        try:
            check_text({"column": column}, "column")
        except ValueError as err:
            raise BuildError(f"{path}: column {column!r}: {err}") from None
        if column in ("", ".", "..") or "/" in column:
            raise BuildError(f"{path}: column {column!r} cannot name a metadata dataset (a "
                             f"column name is not empty, . or .., and has no /)")


def _manifest_row(path: Path, line: int, entry: dict, extra: List[str], seen: dict) -> Row:
    def text(key: str) -> str:
        value = entry.get(key)
        return "" if value is None else str(value).strip()
    written, label, split = text("path"), text("label"), text("split")
    split = SPLIT_NAMES.get(split.casefold(), split)
    file = _as_on_disk(path.parent, written)
    row = Row(written or f"(line {line})", file, label, split, text("group"),
              {key: text(key) for key in extra})
    if None in entry:  # csv.DictReader's key for the fields past the header's
        row.problem = (f"line {line}: {len(entry) - 1 + len(entry[None])} fields, but the "
                       f"header names {len(entry) - 1} (a comma in a field needs quotes)")
        row.split = split if split in SPLITS else "train"  # where /skipped records it
        return row
    try:
        for key in ("path", "label", "group"):
            check_text({key: text(key)}, key)
        _check_label(label, "the label")
        for key in extra:  # free text, as long as the CSV reader takes a field
            check_text({key: text(key)}, key, longest=None)
    except ValueError as err:
        row.problem = f"line {line}: {err}"
        return row
    if not file:
        row.problem = "empty path"  # the row is named by its line
    elif not label:
        row.problem = f"line {line}: empty label"
    elif split and split not in SPLITS:
        row.problem = (f"line {line}: unknown split {split!r} (expected {', '.join(SPLITS)}, "
                       f"or {', '.join(n for n in SPLIT_NAMES if n not in SPLITS)}; empty: drawn)")
        row.split = "train"  # recorded in train's /skipped
    elif _same_file(path, file) in seen:
        first, first_label = seen[_same_file(path, file)]
        other = f" with the label {first_label!r}" if first_label not in ("", label) else ""
        row.problem = f"line {line}: path given again (first on line {first}{other})"
    elif not (path.parent / file).is_file():
        row.problem = (f"line {line}: no such file ({path.parent / file})"
                       if not (path.parent / file).exists() else
                       f"line {line}: not a file ({path.parent / file})")
    if file:
        seen.setdefault(_same_file(path, file), (line, label))
    return row


def _check_label(label: str, what: str):
    """Raise ``ValueError`` where ``label`` holds a control character or a line break (a
    tab, a new line: each command prints labels in lines and columns)."""
    bad = next((c for c in label if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
    if bad is not None:
        raise ValueError(f"{what} {label!r} holds a control character ({ascii(bad)[1:-1]}); "
                         f"a label is printed in lines and columns")


def _as_on_disk(folder: Path, file: str) -> str:
    """``file`` as the disk spells it, where it is there with a folder or its name in the other
    of Unicode's forms (a path typed composed, NFC, of a file named decomposed, NFD, as macOS
    names them, or the reverse; each part of the path in either, and where two folders differ
    only in form, each tried); else as it is given."""
    if file.isascii() or os.path.lexists(folder / file):
        return file
    parts, paths = Path(file).parts, [()]  # the spellings found so far, depth first
    while paths:
        path = paths.pop()
        if len(path) == len(parts):
            return str(Path(*path))
        part = parts[len(path)]
        forms = dict.fromkeys([part] + [unicodedata.normalize(f, part) for f in ("NFC", "NFD")])
        paths += [(*path, form) for form in reversed(forms)
                  if os.path.lexists(folder.joinpath(*path, form))]
    return file


def _same_file(manifest: Path, file: str) -> str:
    """What ``file`` of ``manifest`` is, however it is written (``a.wav``, ``./a.wav``, an
    absolute path)."""
    return os.path.normpath(os.path.abspath(manifest.parent / file))
