"""The errors timbremap expects: bad input, a missing or unfit file, a setting out of range, a
package that is not installed. Each message names what and where; the ``timbremap`` command
prints it as one line. Any other exception is a bug and shows its traceback."""
from __future__ import annotations

__all__ = ["TimbremapError", "InputError", "NeedsPackage", "BuildError", "StoreError"]


class TimbremapError(Exception):
    """Base class of every expected failure."""


class InputError(TimbremapError, ValueError):
    """A value, setting or file content that is not what was expected."""


class NeedsPackage(TimbremapError, ImportError):
    """An optional package that a feature needs is not installed; says how to install it."""


class BuildError(TimbremapError, RuntimeError):
    """A build that cannot start or go on; the message names the path and the problem."""


class StoreError(TimbremapError, ValueError):
    """A store, or a split of it, that is missing or not what the caller needs."""
