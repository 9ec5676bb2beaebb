"""Files written whole or not at all: under a temporary name beside the destination, then
renamed over it (``os.replace`` is atomic on POSIX and Windows), so a reader, or a run after a
``kill -9``, finds the previous file or the new one, never half of one; and held by one
writer at a time (:func:`exclusive_lock`)."""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from .errors import InputError

__all__ = ["replaced", "temporary", "atomic_write_text", "copy_file", "own_like", "free_room",
           "size_text", "exclusive_lock", "locked_by_another", "hdf5_locks_off", "NO_LOCKS",
           "check_folder_path", "check_writable_in", "made_folder", "removed_where_left_empty",
           "real_path"]

log = logging.getLogger(__name__)

#: What ``copy_file_range`` answers where it cannot copy these two files (then an ordinary
#: copy does).
NO_RANGE_COPY = (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF,
                 errno.EPERM)


def real_path(path) -> Path:
    """``path`` absolute, its links followed, as ``Path.resolve()`` gives it, but for a link
    loop, which is left as it is (``resolve`` raises ``RuntimeError`` before Python 3.13) for
    whatever reads it to say what is wrong."""
    return Path(os.path.realpath(path))


def temporary(path, suffix: str = "") -> Path:
    """The name :func:`replaced` writes ``path`` under: ``.NAME.partial`` plus ``suffix``,
    beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial{suffix}")


def _own_temporary(path: Path, suffix: str) -> Path:
    """A new empty file beside ``path`` no other program writes: :func:`temporary`'s name with
    a random part (``.NAME.1a2b3c4d.partial``), made with the mode ``open`` gives."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.partial{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def replaced(path, suffix: str = "", *, durable: bool = False,
             shared: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success it replaces ``path``, on
    an exception it is removed.

    Parameters
    ----------
    path : str or pathlib.Path
        The destination.
    suffix : str
        Ending the temporary name must have (some writers insist: ``'.keras'``,
        ``'.weights.h5'``); see :func:`temporary`.
    durable : bool
        Write the new file to the disk (``fsync``) before the rename, and the rename after
        it, so that a power cut too leaves the old file or the new one.
    shared : bool
        ``path`` is an output that two programs may write at once, with no lock (a picture;
        a map's page where the file system takes no lock):
        each writes a temporary name of its own, and the last rename wins (a ``kill -9``
        leaves its temporary file). Otherwise the name is :func:`temporary`'s, whatever is
        there removed first (a kill's leftover, or a link, whose target is never written).
    """
    path = Path(path)
    if shared:
        tmp = _own_temporary(path, suffix)
    else:
        tmp = temporary(path, suffix)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            tmp.unlink()
    try:
        yield tmp
        if durable:
            _sync(tmp)
        os.replace(tmp, path)
        if durable:
            _sync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _sync(path: Path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path, text: str):
    """Write ``text`` (UTF-8) to ``path`` whole or not at all."""
    with replaced(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def copy_file(src, dst):
    """Write ``dst``, a copy of ``src``'s bytes, mode and (where this process may give it)
    owner.

    ``copy_file_range`` copies: with shared extents where the file system has them (XFS,
    Btrfs), so that the copy takes neither time nor room until one of the two is written;
    elsewhere in the kernel. Where it cannot, an ordinary copy does. The copy is readable by
    its owner alone until it is complete.

    Raises
    ------
    OSError
        What reading or writing raised (a full disk: ``ENOSPC``), or ``EIO`` when the copy
        does not hold as many bytes as ``src``.
    """
    with open(src, "rb") as fin, \
            open(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fout:
        info = os.fstat(fin.fileno())
        if not _range_copy(fin, fout, info.st_size):
            fin.seek(0)
            fout.seek(0)
            fout.truncate()
            shutil.copyfileobj(fin, fout, 2 ** 24)
        fout.flush()
        copied = os.fstat(fout.fileno()).st_size
        if copied != info.st_size:
            raise OSError(errno.EIO, f"the copy holds {copied} bytes of {info.st_size}", str(dst))
        _own_like(info, fout.fileno())


def own_like(src, dst):
    """Give ``dst`` the mode and (where this process may give it) owner of ``src``."""
    fd = os.open(dst, os.O_RDONLY)
    try:
        _own_like(os.stat(src), fd)
    finally:
        os.close(fd)


def _own_like(info: os.stat_result, fd: int):
    with contextlib.suppress(OSError):  # not allowed: the copy is the copier's
        os.fchown(fd, info.st_uid, info.st_gid)
    os.fchmod(fd, stat.S_IMODE(info.st_mode))


def _range_copy(fin, fout, size: int) -> bool:
    """Whether ``copy_file_range`` copied all ``size`` bytes of ``fin`` into ``fout``."""
    left = size
    try:
        while left > 0:
            done = os.copy_file_range(fin.fileno(), fout.fileno(), left)
            if done == 0:  # some file systems answer 0 for what they cannot copy
                return False
            left -= done
    except AttributeError:  # no copy_file_range here
        return False
    except OSError as err:
        if err.errno not in NO_RANGE_COPY:
            raise
        return False
    return True


def free_room(path) -> int:
    """The bytes free on the file system of ``path``, a file about to be replaced: its own
    bytes, when it exists, count as free."""
    path = Path(path)
    free = shutil.disk_usage(path.parent).free
    if path.is_file():
        free += path.stat().st_blocks * 512
    return free


def size_text(nbytes: int) -> str:
    """``nbytes`` for a message: GiB from 1 GiB, else MiB."""
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


#: What ``flock`` answers on a file system without such locks (some network ones; NFS answers
#: EBADF for a folder's descriptor opened to read).
NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EBADF)
#: What ``flock`` answers, not blocking, where another process holds the lock.
HELD = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
#: How long :func:`exclusive_lock` tries before it calls a lock held.
PROBE_SECONDS = 0.5


@contextlib.contextmanager
def exclusive_lock(path, busy: Callable[[], Exception], *,
                   wait: float = PROBE_SECONDS) -> Iterator[None]:
    """Hold an exclusive lock on ``path``, a file or a folder, for the block: POSIX ``flock``
    (the lock HDF5 takes on its files) on a descriptor of it, so no file is left behind and the
    lock goes when the process ends, however it ends.

    ``busy()`` is raised when another process holds a lock on it for ``wait`` seconds
    (default :data:`PROBE_SECONDS`; a :func:`locked_by_another` holds one for less). Where
    there are no such locks (no ``fcntl``; a file system without them, some network ones) the
    block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno in HELD:
                    if time.monotonic() > deadline:
                        raise busy() from None
                    time.sleep(PROBE_SECONDS / 20)
                    continue
                if err.errno not in NO_LOCKS:
                    raise
                log.debug("%s: cannot be locked (%s); going on unlocked", path, err)
            break
        yield
    finally:
        os.close(fd)


def hdf5_locks_off() -> bool:
    """Whether HDF5's file locks are switched off (``HDF5_USE_FILE_LOCKING=FALSE``, common on
    network file systems): then writers of split files take no lock either."""
    return os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() in ("FALSE", "0")


def locked_by_another(path) -> Optional[bool]:
    """Whether another process holds :func:`exclusive_lock` on ``path`` now: asked with a
    shared lock let go at once, which :func:`exclusive_lock` waits out.

    Returns
    -------
    bool or None
        None where it cannot be known: no ``fcntl``, a file system without such locks, a
        path that cannot be opened to ask, or one that is no file or folder.
    """
    try:
        import fcntl
    except ImportError:
        return None
    try:
        mode = os.stat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            return None  # a pipe or device: opened, it could wait for a writer, or act
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError as err:
        return True if err.errno in HELD else None
    finally:
        os.close(fd)


def check_folder_path(folder, *, why: str = "") -> None:
    """Raise :class:`~featurestore.errors.InputError` where ``folder`` cannot be a folder
    (made with its parents, as ``mkdir -p`` would): a file, or a link to nothing, on its path,
    named; ``why`` says what the folder is for, where it is a file itself. Nothing is made."""
    folder = Path(folder)
    for part in (folder, *folder.parents):
        try:
            there, link = part.exists(), part.is_symlink()
        except OSError as err:  # a parent that cannot be searched
            raise InputError(f"{part}: cannot be looked into ({err.strerror or err})") from None
        if link and not there:
            raise InputError(f"{part}: is a link to nothing (its target is missing, or it is a "
                             f"loop)" + ("" if part == folder else
                                         f", so {folder} cannot be a folder"))
        if there and not part.is_dir():
            raise InputError(f"{folder}: is a file; {why}" if part == folder and why
                             else f"{part}: is a file, so {folder} cannot be a folder")
        if there:
            return


def check_writable_in(path) -> None:
    """Refuse the file ``path`` where it could not be written, before the work that writes it:
    a file is made and removed at once in its folder, or, where that is missing, in the
    nearest folder above it that is there (where it would be made). Nothing is left.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to be written (it need not be there).

    Raises
    ------
    InputError
        No file can be made there (naming the folder tried, with the system's reason), or the
        nearest path above it that is there is not a folder.
    """
    path = Path(path)
    there = next((p for p in path.parents if p.exists()), None)
    if there is None or not there.is_dir():
        raise InputError(f"{path}: cannot be written ({there or path.parent} is no folder)")
    try:
        tempfile.TemporaryFile(dir=there).close()
    except OSError as err:
        raise InputError(f"{path}: cannot be written ({err.strerror or err} in {there})") \
            from None


def made_folder(folder: Path) -> bool:
    """Make ``folder`` and its parents where it is not there; whether this call made it (not
    where it was there, or another process made it meanwhile). A file in its place raises
    ``FileExistsError``, a link to nothing on its path :func:`check_folder_path`'s
    :class:`~featurestore.errors.InputError`, and what else ``mkdir`` raises is raised."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True)
        return True
    except OSError as err:
        if isinstance(err, FileExistsError) and folder.is_dir():
            return False
        if any(part.is_symlink() and not part.exists() for part in (folder, *folder.parents)):
            check_folder_path(folder)  # names the link (mkdir says "File exists")
        raise


@contextlib.contextmanager
def removed_where_left_empty(folder: Path, made: bool) -> Iterator[None]:
    """Remove ``folder``, where the caller ``made`` it, when the block fails and leaves it
    empty: a command that keeps nothing leaves no folder behind (one that holds anything,
    what the command kept or the user's, stays)."""
    try:
        yield
    except BaseException:
        if made:
            with contextlib.suppress(OSError):  # only an empty one
                Path(folder).rmdir()
        raise
