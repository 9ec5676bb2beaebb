"""The command line's words as paths: a store's location (a local folder or a URL) and the
local paths timbremap writes."""
from __future__ import annotations

import argparse
from pathlib import Path

from featurestore.remote import is_url, store_location

__all__ = ["local_path", "store_location"]


def local_path(text: str) -> Path:
    """A path on this machine as given on a command line; a URL is refused (``pathlib`` would
    make ``s3://b/x`` a local folder ``s3:/b/x``): timbremap writes only local files.

    Raises
    ------
    argparse.ArgumentTypeError
        For a URL, saying which commands read one.
    """
    if is_url(text):
        raise argparse.ArgumentTypeError(
            f"{text}: a URL where a local path is needed (timbremap reads stores on object "
            f"storage, with inspect, train, evaluate and embed, and writes only local files: "
            f"write locally, then copy the folder up)")
    return Path(text)
