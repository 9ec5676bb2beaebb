"""Where a picture goes (:func:`image_path`): the file a path names, in a format matplotlib
writes, for ``plot``'s map and ``evaluate``'s confusion matrix alike."""
from __future__ import annotations

from pathlib import Path

from featurestore.errors import InputError

__all__ = ["image_path"]


def image_path(out) -> Path:
    """Where the image ``out`` is written: as given, in the format its ending names (any that
    matplotlib writes: png, pdf, svg, ...), or with ``.png`` added when it has none.

    Raises
    ------
    InputError
        An ending that matplotlib cannot write, named with those it can.
    """
    from matplotlib.backend_bases import FigureCanvasBase
    out = Path(out)
    if not out.suffix:  # 'map' or 'map.': map.png
        return out.with_name(out.name.rstrip(".") + ".png")
    formats = FigureCanvasBase.get_supported_filetypes()
    if out.suffix[1:].lower() not in formats:
        raise InputError(f"{out}: cannot write a {out.suffix} image (endings matplotlib "
                         f"writes: {', '.join('.' + f for f in sorted(formats))})")
    return out
