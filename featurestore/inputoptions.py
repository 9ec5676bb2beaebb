"""How a build reads its inputs (:class:`InputOptions`), recorded in every split file's attrs
(``input_*``) so that a later build, ``--add`` or ``inspect`` reads them as the store did."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional

from .errors import BuildError
from .params import KEYWORD_ONLY
from .windows import check_hop

__all__ = ["LAYOUTS", "ROLES", "ATTR_PREFIX", "InputOptions"]

LAYOUTS = ("auto", "nsynth", "folders", "manifest")
#: What a manifest's columns give, in the order ``columns`` is written: ``path`` and ``label``
#: it must have, ``split`` and ``group`` it may.
ROLES = ("path", "label", "split", "group")
#: The attrs prefix of :class:`InputOptions` in a split file.
ATTR_PREFIX = "input_"


@dataclass(frozen=True, **KEYWORD_ONLY)
class InputOptions:
    """How a build reads its inputs (recorded in every split file's attrs, ``input_*``).

    Parameters
    ----------
    layout : {'auto', 'nsynth', 'folders', 'manifest'}
        ``'auto'``: ``'manifest'`` for CSV files, ``'nsynth'`` for a folder with
        ``SPLIT/examples.json``, ``'folders'`` otherwise (:func:`detect_layout`).
    group_by : str, optional
        A regular expression on a file's name (on its path where it holds a ``/``: below
        the split folder, class folder first, or as a manifest writes it): what it matches
        (its first group, if it has one) is the file's group; files that share a group never
        share a drawn split.
    windows : float, optional
        Cut files longer than a clip into windows starting this many seconds apart, each a
        note; default: the clip from each file's start (the rest trimmed, as ``/adjusted``
        records).
    valid_fraction, test_fraction : float
        Shares of the groups that drawn splits give to valid and test.
    columns : str, optional
        A manifest's columns that give a note's :data:`ROLES`, where they are not named so:
        ``'path=filename,label=category'`` (kept in the order of :data:`ROLES`).
    """

    layout: str = "auto"
    group_by: Optional[str] = None
    windows: Optional[float] = None
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    columns: Optional[str] = None

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise BuildError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.columns is not None:
            named = self.column_names  # checked
            object.__setattr__(self, "columns", ",".join(
                f"{role}={named[role]}" for role in ROLES if role in named) or None)
        if self.group_by == "":
            raise BuildError("--group-by '': an empty expression groups nothing; leave the "
                             "option out to make each file its own group")
        if self.group_by is not None:
            try:
                re.compile(self.group_by)
            except re.error as err:
                raise BuildError(f"--group-by {self.group_by!r}: not a regular expression "
                                 f"({err})") from None
        if self.windows is not None:
            try:
                object.__setattr__(self, "windows", check_hop(self.windows))
            except ValueError as err:
                raise BuildError(f"--windows: {err}") from None
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise BuildError(f"{name} must be within [0, 1), got {value!r}")
        if self.valid_fraction + self.test_fraction >= 1:
            raise BuildError(f"valid_fraction and test_fraction must leave groups for train "
                             f"(a sum below 1), got {self.valid_fraction} + {self.test_fraction}")

    @property
    def column_names(self) -> Dict[str, str]:
        """``role -> column`` of :attr:`columns` (empty: each role's column is named so)."""
        if not self.columns:
            return {}
        named: Dict[str, str] = {}
        for part in self.columns.split(","):
            role, equals, column = (text.strip() for text in part.partition("="))
            if role not in ROLES or not equals or not column:
                raise BuildError(f"--columns {self.columns!r}: {part.strip()!r} is not ROLE="
                                 f"COLUMN with ROLE one of {', '.join(ROLES)} (for example "
                                 f"path=filename,label=category)")
            if role in named:
                raise BuildError(f"--columns {self.columns!r}: {role} is given twice")
            named[role] = column
        twice = sorted(c for c in set(named.values()) if list(named.values()).count(c) > 1)
        if twice:
            raise BuildError(f"--columns {self.columns!r}: the column {twice[0]!r} gives two "
                             f"roles; each role needs a column of its own")
        return named

    @classmethod
    def from_attrs(cls, attrs) -> "InputOptions":
        """The options a split file records (:meth:`to_attrs`); NSynth's layout and the
        defaults for a file that records none."""
        def value(name, default):
            found = attrs.get(ATTR_PREFIX + name, default)
            return found.item() if hasattr(found, "item") else found
        return cls(layout=str(value("layout", "nsynth")),
                   group_by=str(value("group_by", "")) or None,
                   windows=float(value("windows", 0.0)) or None,
                   valid_fraction=float(value("valid_fraction", cls.valid_fraction)),
                   test_fraction=float(value("test_fraction", cls.test_fraction)),
                   columns=str(value("columns", "")) or None)

    def to_attrs(self, layout: str) -> dict:
        """The attrs that record how the notes were read (``layout`` as detected)."""
        return {ATTR_PREFIX + "layout": layout,
                ATTR_PREFIX + "group_by": self.group_by or "",
                ATTR_PREFIX + "windows": self.windows or 0.0,
                ATTR_PREFIX + "valid_fraction": self.valid_fraction,
                ATTR_PREFIX + "test_fraction": self.test_fraction,
                ATTR_PREFIX + "columns": self.columns or ""}
