"""``timbremap map``: an interactive map of the sounds, as one ``index.html`` that opens from
disk (no server, no CDN): every note a point coloured by its label (the store's label set);
hover shows its name, label, pitch, velocity and the model's predicted label; a click plays
it; the legend filters labels; placed new sounds are stars.

Audio is linked by relative path to the notes the store was built from (each note's folder in
``/source_folder``), or copied next to the page with ``copy_audio``.
"""
from __future__ import annotations

import contextlib
import html
import json
import logging
import math
import os
import re
import urllib.parse
from importlib import resources
from pathlib import Path
from typing import Optional, Sequence, Tuple

import h5py
import numpy as np

from featurestore import schema
from featurestore.errors import InputError, check_split_names
from featurestore.files import (check_folder_path, check_writable_in,
                                copy_file, exclusive_lock, real_path, replaced)
from featurestore.rows import AUDIO_SUFFIXES
from featurestore.store import StoreError, no_splits, open_split, require_store, store_splits
from training.images import cut_labels, drawable

from .placements import placed_on_maps
from .plot import (PLACED_CHARS, PLACED_NAMES, label_colors, one_label_set,
                   warn_of_mixed_models)
from .tsne import DEFAULT_SPLIT, map_coords, map_model, no_map

log = logging.getLogger(__name__)

__all__ = ["write_map", "check_map_folder"]

#: The page, package data beside this module: its script reads the map from ``__DATA__`` (json)
#: and the store's name from ``__TITLE__``.
PAGE = "map.html"
#: The name of a sound a map copied next to its page (``audio/SPLIT/NNNNN-NAME``).
COPY_NAME = re.compile(r"\d{5,}-.+")
#: A copy killed while it was written (:func:`featurestore.files.temporary`).
PART_NAME = re.compile(r"\.\d{5,}-.+\.partial")
#: The most bytes of a copy's name: its temporary name, 9 more, fits a file system's 255.
COPY_BYTES = 240


def _copied(source: Path) -> bool:
    """Whether ``copy_audio`` copies ``source`` next to the page: a file named as an audio
    format (:data:`AUDIO_SUFFIXES`). A store or ``placed.json`` from elsewhere may name any
    file (``/etc/shadow``): the page links to others, and never copies them."""
    return source.suffix.lower() in AUDIO_SUFFIXES


def _copy_name(k: int, source: Path) -> str:
    """The name of the ``k``-th copy of ``source`` (``NNNNN-NAME``), its stem cut to keep it
    within :data:`COPY_BYTES` bytes and its ending whole."""
    stem, suffix = f"{k:05d}-{source.stem}", source.suffix
    while len(os.fsencode(stem + suffix)) > COPY_BYTES:  # by characters: none cut in two
        stem = stem[:-1]
    return stem + suffix


def _audio_link(out_dir: Path, audio: Path) -> str:
    """A URL of ``audio`` relative to the page, percent-encoded (names may hold ``#``, ``?``,
    ``%``, spaces, or bytes that are no UTF-8: the file system's own)."""
    try:
        relative = Path(os.path.relpath(audio, out_dir)).as_posix()
    except ValueError:  # another drive (Windows)
        return real_path(audio).as_uri()
    return urllib.parse.quote(os.fsencode(relative))


def write_map(store, out_dir, splits: Optional[Sequence[str]] = None, *,
              copy_audio: bool = False) -> Path:
    """Write ``OUT_DIR/index.html`` for every split with a ``/tsne`` map.

    The page's data names the store's label set (``families``, with one colour each in
    ``colors``, which the legend shows), then any label of the model's (``embed``'s) that the
    store lacks; each note's ``family`` and ``predicted`` are indices into it.

    Raises
    ------
    StoreError
        When the store is not a local folder, no split of it has a ``/tsne`` map, or two splits hold
        different label sets (nothing is written).
    InputError
        When ``out_dir`` is a file, or holds an ``index.html`` that is no map of timbremap's.
    """
    splits = check_split_names(splits)
    require_store(store, local_for="map")
    store, out_dir = Path(store), Path(out_dir)
    check_map_folder(out_dir)
    page = out_dir / "index.html"
    data, label_sets, outputs, made_by = {"splits": {}}, {}, {}, {}
    copies, missing, linked, played, roots = {}, set(), set(), set(), set()
    for split in splits or store_splits(store):
        with open_split(store, split) as f:
            if schema.TSNE not in f:
                if splits:  # asked for by name
                    raise no_map(store, split)
                continue
            label_sets[split], made_by[split] = schema.read_label_names(f), map_model(f)
            if str(f.attrs.get("input_layout", "")) == "folders":  # every audio file is read
                roots.update(f[schema.SOURCE_FOLDER].attrs[schema.LIST_NAMES])
            names = f[schema.NAMES].asstr()[:]
            outputs[split] = _predicted(f, len(names))
            offsets = (f[schema.OFFSET][:] if schema.OFFSET in f
                       else np.zeros(len(names)))
            windows = bool(np.any(offsets))  # clips of recordings: each played alone
            trimmed = {name for name, what in schema.read_problems(f)[1]  # "downmixed ...;
                       if any(part.startswith("trimmed") for part in what.split("; "))}
            params = schema.read_params(f) if windows or trimmed else None
            clip = params.n_samples / params.sample_rate if params else 0.0
            audio, copied = [], {}
            for name, source, offset in zip(names, schema.read_audio_paths(f), offsets):
                if not source.is_file():  # no link: a point of it plays nothing
                    missing.add(source)
                    audio.append("")
                    continue
                if copy_audio and not _copied(source):
                    linked.add(source)
                elif copy_audio:
                    if source not in copied:  # once a file, whatever its windows
                        copied[source] = (out_dir / "audio" / split
                                          / _copy_name(len(copied), source))
                        copies[copied[source]] = source  # copied once the page can be made
                    source = copied[source]
                # a window of a recording, or the clip a note kept of it, plays alone: from its
                # start to its end (a media fragment)
                played.add(source)
                audio.append(_audio_link(out_dir, source)
                             + (f"#t={offset:g},{offset + clip:g}" if windows or name in trimmed
                                else ""))
            xy = map_coords(f)
            data["splits"][split] = {
                "x": np.round(xy[:, 0], 3).tolist(), "y": np.round(xy[:, 1], 3).tolist(),
                "family": f[schema.LABELS][:].tolist(), "name": names.tolist(),
                "pitch": f[schema.PITCH][:].tolist(), "velocity": f[schema.VELOCITY][:].tolist(),
                "audio": audio,
                "info": {k: (v.item() if hasattr(v, "item") else v)
                         for k, v in f[schema.TSNE].attrs.items()},
            }
    if not data["splits"]:
        raise no_splits(store) if not store_splits(store) else StoreError(
            f"{store}: no split has a /tsne map yet (run 'timbremap tsne')")
    opens = DEFAULT_SPLIT if DEFAULT_SPLIT in data["splits"] else next(iter(data["splits"]))
    data["open"] = opens  # the page opens on the split `tsne` maps unless told
    data["families"] = families = list(one_label_set(store, label_sets))
    warn_of_mixed_models(store, made_by)
    data["colors"] = label_colors(len(families))  # and the legend: the store's labels
    for split, (predicted, columns) in outputs.items():  # a label of the model's alone: added
        families += [name for name in columns if name not in families]
        index = np.array([families.index(name) for name in columns] + [-1])  # -1: none
        data["splits"][split]["predicted"] = index[predicted].tolist()
    data["placed"], data["placed_names"] = [], PLACED_NAMES
    for k, p in enumerate(placed_on_maps(store)):
        source, link = Path(p.path), ""
        if not source.is_file():
            missing.add(source)
        elif copy_audio and _copied(source):  # the page's folder holds every sound it plays
            copy = out_dir / "audio" / "placed" / _copy_name(k, source)
            copies[copy], link = source, _audio_link(out_dir, copy)
            played.add(copy)
        else:
            if copy_audio:
                linked.add(source)
            link = _audio_link(out_dir, source)
            played.add(source)
        data["placed"].append({"split": p.split, "x": p.x, "y": p.y, "name": source.name,
                               "family": p.family, "audio": link,
                               "probability": None if math.isnan(p.probability) else
                               round(p.probability, 3),
                               "nearest": [str(n.get("name", "")) for n in p.nearest[:3]]})
    for split in {p["split"] for p in data["placed"]}:  # each map's names, as plot draws them
        here = [p for p in data["placed"] if p["split"] == split]
        for p, short in zip(here, cut_labels([Path(p["name"]).stem for p in here],
                                             PLACED_CHARS)):
            p["short"] = short
    if missing:
        log.warning("%s: %d of the map's sounds are not there (%s%s); their points play "
                    "nothing", store, len(missing), min(missing),
                    ", ..." if len(missing) > 1 else "")
    if linked:
        log.warning("%s: %d of the map's sounds are not named as audio files (%s%s); linked "
                    "where they are, not copied", store, len(linked), min(linked),
                    ", ..." if len(linked) > 1 else "")
    if copies:
        _refuse_notes_folder(out_dir, roots)
    # every < as \u003c: no text in the data can open or close a tag or comment in the script
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    values = {"DATA": payload, "TITLE": html.escape(drawable(store.name))}
    # one pass: a value that holds __TITLE__ or __DATA__ is not replaced in turn
    template = resources.files(__package__).joinpath(PAGE).read_text(encoding="utf-8")
    text = re.sub(r"__(DATA|TITLE)__", lambda m: values[m.group(1)], template)
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_dir, lambda: InputError(  # one writer: its copies and its page
            f"{out_dir}: another program is writing into this folder (a map; or the build or "
            f"train whose folder it is); wait for it to finish")):
        ours = page.is_file()  # an earlier map's (check_map_folder): its copies are its own
        for copy, source in copies.items():
            copy.parent.mkdir(parents=True, exist_ok=True)
            _copy_sound(source, copy)
        with replaced(page, shared=True) as tmp:  # shared: where no lock can be taken
            tmp.write_text(text, encoding="utf-8")
        if ours:  # a copy of a sound no longer there may be all that is left of it: kept
            removed = _remove_old_copies(out_dir, {real_path(path) for path in played},
                                         [*store_splits(store), "placed"], missing)
            if removed:
                log.info("%s: %d sound(s) an earlier map copied, which this page does not "
                         "play, removed", out_dir, removed)
    return page


def _copy_sound(source: Path, copy: Path):
    """Write ``copy`` of ``source`` whole or not at all (an interrupted copy leaves an earlier
    map's whole), with its permissions: a copy is no more readable."""
    with replaced(copy) as tmp:
        copy_file(source, tmp)


def _remove_old_copies(out_dir: Path, played: set, folders: Sequence[str],
                       missing: set) -> int:
    """Remove the sounds an earlier map copied next to its page (``audio/FOLDER/NNNNN-NAME``,
    FOLDER a split or ``placed``) that the new page does not play (``played``, resolved), but
    for copies of ``missing`` sounds (named as one: a copy may be all that is left of it), and
    a folder they leave empty; anything else stays. Returns how many were removed."""
    audio, removed = out_dir / "audio", 0
    if audio.is_symlink() or not audio.is_dir():
        return removed
    gone = {(path.suffix, path.stem) for path in missing}

    def of_missing(name: str) -> bool:  # its stem, or the start of it a long name was cut to
        stem, suffix = os.path.splitext(name.split("-", 1)[-1])
        return (suffix, stem) in gone or len(os.fsencode(name)) >= COPY_BYTES - 8 and any(
            suffix == end and whole.startswith(stem) for end, whole in gone)
    for folder in (audio / name for name in folders):
        if folder.is_symlink() or not folder.is_dir():
            continue
        old = [path for path in folder.iterdir() if (COPY_NAME.fullmatch(path.name) or
                                                     PART_NAME.fullmatch(path.name))
               and not path.is_symlink() and path.is_file() and real_path(path) not in played
               and not of_missing(path.name)]
        for path in old:
            path.unlink()
        removed += len(old)
        with contextlib.suppress(OSError):  # where they leave it empty
            if old:
                folder.rmdir()
                audio.rmdir()
    return removed


def _predicted(f: h5py.File, n: int) -> Tuple[np.ndarray, Tuple[str, ...]]:
    """Each of a split's ``n`` notes' most probable output of ``/probabilities`` and the label
    of each output (``-1`` and none without it)."""
    if schema.PROBABILITIES not in f:
        return np.full(n, -1), ()
    probabilities = f[schema.PROBABILITIES]
    columns = schema.read_label_names(f, of=schema.PROBABILITIES)
    if probabilities.shape != (n, len(columns)):
        listed = (f"the {len(columns)} labels its attr names lists: the file is damaged"
                  if schema.LIST_NAMES in probabilities.attrs else
                  f"NSynth's {len(columns)} families, which it holds without an attr names (an "
                  f"older embed's): run 'timbremap embed' again")
        raise StoreError(f"{f.filename}: /probabilities has the shape {probabilities.shape}, "
                         f"not ({n}, {len(columns)}) for its {n} notes and {listed}")
    return probabilities[:].argmax(axis=1), columns


def _refuse_notes_folder(out_dir: Path, roots):
    """Refuse copies of sounds into a NOTES folder of class folders of ``roots`` (the
    ``/source_folder`` names of a store of that layout), or a folder in one: a later build
    would read them as notes (NSynth's layout and a manifest read only the files they
    list)."""
    where = real_path(out_dir)
    for root in sorted(map(str, roots)):
        if where.is_relative_to(real_path(root)):  # the folder itself, or one below it
            raise InputError(f"{out_dir}: is in {root}, a NOTES folder the store was built "
                             f"from, where a later build would read the copies --copy-audio "
                             f"makes as notes; give the map a folder of its own")


def check_map_folder(out_dir: Path) -> None:
    """Raise :class:`InputError` where :func:`write_map` could not write ``out_dir``: a file
    (or a file on its path), a folder no file can be written in, or one holding an
    ``index.html`` that is not a map of timbremap's."""
    out_dir = Path(out_dir)
    check_folder_path(out_dir, why="the map is written into a folder")
    page = out_dir / "index.html"
    check_writable_in(page)
    if page.exists() and not _our_page(page):
        raise InputError(f"{page}: is there already and is no map of timbremap's; write the map "
                         f"into another folder (or delete it)")


def _our_page(page: Path) -> bool:
    """Whether ``page`` is a map this module wrote (its title says so, at its start)."""
    if not page.is_file():  # a folder, or a pipe that would block the read
        return False
    try:
        with page.open("rb") as fh:
            return b"<title>timbremap: " in fh.read(1024)
    except OSError:
        return False
