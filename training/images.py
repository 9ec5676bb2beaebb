"""Where a picture goes (:func:`image_path`): the file a path names, in a format matplotlib
writes, for ``plot``'s map and ``evaluate``'s confusion matrix alike; how it is written
(:func:`save_figure`); and how their text is drawn (:func:`literal_text`, :func:`cut_text`,
:func:`cut_labels`)."""
from __future__ import annotations

import functools
import os
import logging
import re
import warnings
from pathlib import Path

from featurestore.errors import InputError, counted, one_line
from featurestore.files import check_folder_path, check_writable_in, replaced

__all__ = ["image_path", "save_figure", "literal_text", "drawable", "cut_text", "cut_labels"]

log = logging.getLogger(__name__)


def image_path(out, *, in_folder: str) -> Path:
    """Where the image ``out`` is written: as given, in the format its ending names (any that
    matplotlib writes: png, pdf, svg, ...), or with ``.png`` added when it has none; a folder,
    or text ending in a separator (``maps/``), gets the file ``in_folder`` in it. The folders
    it is in are made where they are missing (a mistyped one too).

    Raises
    ------
    InputError
        A path that names no file (``..`` of a missing folder), or whose folder cannot be one
        (a file on its path) or cannot be written in, an ending alone (``.png``), or an ending
        that matplotlib cannot write here, named with those it can.
    """
    folder = str(out).endswith(("/", os.sep))  # Path('maps/') drops the separator
    out = Path(out)
    formats = _formats()
    if folder or out.is_dir():
        out = out / in_folder
    if out.name.strip(".") == "":
        raise InputError(f"{out}: names no file; give the image's file name (map.png)")
    if not out.suffix and out.name.startswith(".") and out.name[1:].lower() in formats:
        raise InputError(f"{out}: is an ending alone; give the image a name (map{out.name})")
    check_folder_path(out.parent)  # before the work whose picture it is
    if not out.suffix:  # 'map' or 'map.': map.png
        out = out.with_name(out.name.rstrip(".") + ".png")
    elif out.suffix[1:].lower() not in formats:
        raise InputError(f"{out}: cannot write a {out.suffix} image (endings written here: "
                         f"{', '.join('.' + f for f in sorted(formats))})")
    check_writable_in(out)
    return out


def save_figure(fig, path: Path, **options):
    """Write ``fig`` to ``path`` (:func:`image_path`'s) whole or not at all: beside it, then
    renamed over it, so that a kill or a full disk leaves the picture that was there. Its
    format is the one its ending names (png where it has none), not the temporary name's;
    ``options`` go to ``savefig``. Two programs writing one picture at once each write their
    own, and the last one's stays."""
    with replaced(path, shared=True) as tmp, open(tmp, "wb") as fh:
        fig.savefig(fh, format=path.suffix[1:].lower() or "png", **options)


def _formats() -> set:
    """The endings matplotlib writes here: PGF only where its TeX program is installed."""
    import shutil
    import matplotlib
    from matplotlib.backend_bases import FigureCanvasBase
    formats = set(FigureCanvasBase.get_supported_filetypes())
    if shutil.which(matplotlib.rcParams["pgf.texsystem"]) is None:
        formats.discard("pgf")
    return formats


def drawable(text: str) -> str:
    """``text`` as a figure can draw it: on one line (each control character as its escape,
    :func:`~featurestore.errors.one_line`), and each lone surrogate (a byte of a file name
    that is no UTF-8, as Python reads it), which matplotlib refuses, as U+FFFD."""
    return re.sub("[\ud800-\udfff]", "\ufffd", one_line(text))


def cut_text(text: str, most: int) -> str:
    """``text`` as a figure draws it: at most ``most`` characters (a long label would squeeze
    the drawing into a corner), cut in the middle, where an ellipsis stands for what is left
    out, so that labels that differ at their ends (``... section A``, ``... section B``) stay
    apart."""
    if len(text) <= most:
        return text
    head = most // 2
    return text[:head] + "\u2026" + text[len(text) - (most - 1 - head):]


def cut_labels(names, most: int) -> list:
    """:func:`cut_text` of each of ``names``, but where different names would read alike
    (``Strings - violin I - sustain`` and ``... violin II ...`` cut to their ends), each of
    those is shown from a little before where it parts from the one most like it:
    ``…violin II - sus…``. Each name is :func:`drawable`."""
    names = [drawable(name) for name in names]
    cut = [cut_text(name, most) for name in names]
    alike: dict = {}
    for name, shown in zip(names, cut):
        alike.setdefault(shown, set()).add(name)
    for i, name in enumerate(names):
        others = alike[cut[i]] - {name}
        if others:
            parts = max(len(os.path.commonprefix([name, other])) for other in others)
            start = max(0, parts - most // 3)
            shown = name[start:start + most - 2]
            cut[i] = "\u2026" * (start > 0) + shown + "\u2026" * (start + len(shown) < len(name))
    return cut


def literal_text(draw):
    """``draw`` (a function that draws and saves a figure) with matplotlib drawing text as
    given: labels and file names are never read as mathtext (``a$b$`` is no formula, and
    ``$x`` no error), and characters its fonts lack are one warning, not one per glyph."""
    @functools.wraps(draw)
    def drawing(*args, **kwargs):
        import matplotlib
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with matplotlib.rc_context({"text.parse_math": False}):
                result = draw(*args, **kwargs)
        missing = set()
        for w in caught:
            found = re.search(r"Glyph (\d+) .* missing from font", str(w.message))
            if found:
                missing.add(chr(int(found.group(1))))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if missing:
            log.warning("%s: %s no glyph in matplotlib's fonts and %s drawn as boxes (%s)",
                        result, counted(len(missing), "character") + (
                            " has" if len(missing) == 1 else " have"),
                        "is" if len(missing) == 1 else "are",
                        one_line("".join(sorted(missing)[:20])))
        return result
    return drawing
