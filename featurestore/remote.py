"""Stores on object storage: a store named by an fsspec URL (``s3://bucket/store``,
``gs://...``, ``memory://...``), read through fsspec's file objects with h5py's file-like
support. timbremap reads such a store but never writes to it.

Credentials, endpoints and other options come from fsspec's own configuration: for S3, the
AWS variables and files botocore reads (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ...), or
``FSSPEC_S3_*`` variables (``FSSPEC_S3_ENDPOINT_URL=http://localhost:9000``).
"""
from __future__ import annotations

import contextlib
import errno
import gc
import re
import sys
import time
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple, Union

from .errors import StoreError, install_hint

__all__ = ["is_url", "store_location", "join", "open_binary", "list_files", "read_ranges",
           "file_size", "object_version", "check_unchanged", "client_errors", "cannot_read",
           "METADATA_BLOCK", "METADATA_BLOCKS", "VERSION_SECONDS", "S3_CONNECT_SECONDS",
           "S3_READ_SECONDS", "S3_ATTEMPTS", "S3_RETRIES", "ShortObject", "VersionWatch",
           "CollectionPausedFile"]

#: The block cache h5py's reads of a split's metadata (its chunk index, labels, names) go
#: through: blocks of this many bytes, at most METADATA_BLOCKS of them kept.
METADATA_BLOCK = 1 << 20
METADATA_BLOCKS = 64
#: How often, at most, a reader asks the object whether another upload replaced it
#: (:func:`check_unchanged`): one request a second, whatever the reads.
VERSION_SECONDS = 1.0

#: How a request to S3 is made: how long it may wait to connect and for each reply, in
#: seconds, and how many times botocore tries it (its "standard" retries: throttling, 5xx
#: answers, timeouts). fsspec's configuration (``FSSPEC_S3_CONFIG_KWARGS``) replaces all
#: three where it gives its own.
S3_CONNECT_SECONDS = 5
S3_READ_SECONDS = 15
S3_ATTEMPTS = 3
#: How many times s3fs tries a request after a timeout or a reply cut short (its
#: ``S3FileSystem.retries``, 5 of its own). A read of an object tries its request that many
#: times, and so does the request itself: an endpoint that stops answering ends a read, with
#: one line naming the URL, after at most S3_RETRIES ** 2 x S3_ATTEMPTS waits of
#: S3_READ_SECONDS (s3fs's own 5, squared, had held it for 25 x S3_ATTEMPTS of them). Where
#: fsspec's configuration gives ``config_kwargs``, s3fs's own retries stay.
S3_RETRIES = 2

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(store) -> bool:
    """Whether ``store`` names a location by URL (``PROTOCOL://...``) rather than a path."""
    return isinstance(store, str) and bool(_URL.match(store))


def store_location(text: Union[str, Path]) -> Union[str, Path]:
    """A store as given on a command line: the URL as it is (``pathlib`` would fold its
    ``//``), a local path as a :class:`pathlib.Path`."""
    return text if is_url(text) else Path(text)


def join(url: str, name: str) -> str:
    """``URL/NAME``."""
    return f"{url.rstrip('/')}/{name}"


def _filesystem(url: str):
    """``(filesystem, path)`` for ``url``, or a :class:`StoreError` saying what to install."""
    try:
        import fsspec
        import fsspec.config
    except ImportError:
        raise StoreError(f"{url}: reading a store from a URL needs fsspec; install it with "
                         f"{install_hint('remote')}") from None
    options = {}
    if url.split("://", 1)[0] in ("s3", "s3a") and \
            "config_kwargs" not in fsspec.config.conf.get("s3", {}):
        options["config_kwargs"] = {"connect_timeout": S3_CONNECT_SECONDS,
                                    "read_timeout": S3_READ_SECONDS,
                                    "retries": {"mode": "standard",
                                                "total_max_attempts": S3_ATTEMPTS}}
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError) as err:
        raise StoreError(f"{url}: cannot read this kind of URL ({err}); for s3:// URLs, "
                         f"{install_hint('remote')}") from None
    if options:  # s3fs's attribute, set by no option, on the instance of timbremap's options
        fs.retries = S3_RETRIES  # (with fsspec's configuration, the one others get: left)
    return fs, path


def client_errors() -> Tuple[type, ...]:
    """What an object-storage client raises, besides :class:`OSError`, for an object it cannot
    reach or read: botocore's errors (no credentials, no connection to the endpoint), which
    s3fs passes on as they are, and aiohttp's (HTTP-based filesystems). Only the clients
    already imported are looked up: a store read from a URL has imported its own."""
    found = []
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is not None:
        found += [botocore.BotoCoreError, botocore.ClientError]
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:
        found.append(aiohttp.ClientError)
    return tuple(found)


def _read_errors() -> Tuple[type, ...]:
    return (OSError, ValueError, *client_errors())


#: What to do about a client's error, by its class's name.
_ADVICE = {
    "NoCredentialsError": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
    "PartialCredentialsError": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
    "EndpointConnectionError": "check the endpoint (AWS_ENDPOINT_URL) and the connection to it",
    "ConnectTimeoutError": "check the endpoint (AWS_ENDPOINT_URL) and the connection to it",
    "ReadTimeoutError": "the endpoint stopped answering; try again when it answers",
}


def cannot_read(url: str, err: Exception) -> StoreError:
    """The error of an object the client could not read, with what to check where there is
    something to (credentials, the endpoint)."""
    advice = _ADVICE.get(type(err).__name__)
    return StoreError(f"{url}: cannot be read ({type(err).__name__}: {err})"
                      + (f"; {advice}" if advice else ""))


def open_binary(url: str) -> "CollectionPausedFile":
    """A read-only file object for ``url`` with a block cache (for h5py's small reads), safe
    to give to ``h5py.File`` (:class:`CollectionPausedFile`).

    Raises
    ------
    StoreError
        When the object does not exist or cannot be read.
    """
    fs, path = _filesystem(url)
    fs.invalidate_cache(path)  # an object uploaded again since: fsspec's listing is older
    try:
        return CollectionPausedFile(fs.open(path, "rb", block_size=METADATA_BLOCK,
                                            cache_type="blockcache",
                                            cache_options={"maxblocks": METADATA_BLOCKS}))
    except _read_errors() as err:
        raise cannot_read(url, err) from None


class CollectionPausedFile:
    """An fsspec file object whose reads pause Python's automatic garbage collection.

    h5py holds its global lock while it reads from a file object, and an fsspec file reads on
    fsspec's own thread. A collection started there that frees an h5py object (of any file)
    waits for that lock, which the reading thread holds until the read ends: the process
    hangs for good (h5py's documentation, "Python file-like objects"). No automatic collection
    starts while a read is under way (h5py makes one read at a time, under its lock); one
    that another thread's request started on fsspec's thread just before can still meet it.
    """

    def __init__(self, file):
        self.file = file

    def read(self, size: int = -1) -> bytes:
        with _collection_paused():
            return self.file.read(size)

    def readinto(self, buffer) -> int:
        with _collection_paused():
            return self.file.readinto(buffer)

    def __getattr__(self, name: str):  # seek, tell, close, ...: the file's own
        return getattr(self.file, name)


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def list_files(url: str, suffix: str) -> List[str]:
    """Names of the objects directly under ``url`` whose names end in ``suffix``; a
    :class:`StoreError` for an object ``url`` itself (a split file given as the store)."""
    fs, path = _filesystem(url)
    fs.invalidate_cache(path)  # what was uploaded since the last listing is listed too
    try:
        found = fs.ls(path, detail=True)
    except _read_errors() as err:
        raise cannot_read(url, err) from None
    if [(f["name"].rstrip("/"), f.get("type")) for f in found] == [(path.rstrip("/"), "file")]:
        folder = url.rstrip("/").rsplit("/", 1)[0]
        raise StoreError(f"{url}: is a file, not a store (a store is a folder of split files)"
                         if not url.endswith(suffix) else f"{url}: is a split file, not a "
                         f"store: give the store, its folder {folder}")
    return sorted(f["name"].rstrip("/").rsplit("/", 1)[-1] for f in found
                  if f["name"].endswith(suffix))


def file_size(url: str) -> int:
    """Bytes of the object at ``url``."""
    fs, path = _filesystem(url)
    fs.invalidate_cache(path)
    try:
        return int(fs.size(path))
    except _read_errors() as err:
        raise cannot_read(url, err) from None


class ShortObject(StoreError):
    """An object that ends before bytes a read asked for (one replaced by a smaller upload,
    or cut short)."""


#: The fields of an fsspec ``info`` that change when an object is written again (S3's ETag,
#: Google Cloud Storage's generation, a modification time).
_VERSION_FIELDS = ("ETag", "etag", "generation", "LastModified", "mtime", "created")


def object_version(url: str) -> tuple:
    """What identifies the object at ``url`` as it is now (its size, ETag or generation or
    modification time), asked of the storage, not of fsspec's listing cache: another upload
    under the same name gives another value."""
    fs, path = _filesystem(url)
    fs.invalidate_cache(path)
    try:
        info = fs.info(path)
    except _read_errors() as err:
        raise cannot_read(url, err) from None
    return (info.get("size"),) + tuple(str(info[k]) for k in _VERSION_FIELDS if k in info)


def check_unchanged(url: str, version: tuple):
    """Refuse an object that another upload replaced since ``version``
    (:func:`object_version`) was taken: ranges read by the chunk index of the first would
    not be its notes.

    Raises
    ------
    StoreError
        Naming the object.
    """
    if object_version(url) != version:
        raise StoreError(f"{url}: replaced on the object storage since it was opened (another "
                         f"upload under its name); open the store again")


class VersionWatch:
    """Asks the object at ``url``, at most every :data:`VERSION_SECONDS`, whether it is still
    the one it was when the watch was made (:func:`object_version`): a reader calls
    :meth:`check` after its reads, so a split replaced under it stops them within that time.
    """

    def __init__(self, url: str):
        self.url = url
        self.version = object_version(url)
        self._asked = time.monotonic()

    def check(self, *, now: bool = False):
        """:func:`check_unchanged`, when :data:`VERSION_SECONDS` have passed since the last
        time (or ``now``)."""
        if now or time.monotonic() - self._asked >= VERSION_SECONDS:
            check_unchanged(self.url, self.version)
            self._asked = time.monotonic()


def read_ranges(url: str, ranges: Sequence[Tuple[int, int]]) -> List[bytes]:
    """The bytes ``[start, stop)`` of each range of ``url``, fetched concurrently where the
    filesystem can (``fs.cat_ranges``: S3's are asynchronous requests)."""
    fs, path = _filesystem(url)
    if not ranges:
        return []
    starts, stops = zip(*ranges)
    try:
        got = fs.cat_ranges([path] * len(ranges), list(starts), list(stops), on_error="raise")
    except _read_errors() as err:
        if isinstance(err, OSError) and err.errno == errno.EINVAL:  # S3: range not satisfiable
            raise ShortObject(f"{url}: ends before bytes {max(starts)}..{max(stops)} "
                              f"({err})") from None
        raise cannot_read(url, err) from None
    for data, (start, stop) in zip(got, ranges):
        if len(data) != stop - start:
            raise ShortObject(f"{url}: ends inside bytes {start}..{stop}")
    return got
