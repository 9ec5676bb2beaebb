"""json read from files that may be damaged: a json object's members one at a time
(:func:`object_members`), so that a file of any size is read in memory that does not grow with
it, and a small file's value whole (:func:`read_json`), up to a size. Either way a fault is
one :class:`InputError` naming the file, nesting too deep and numbers too long included.

Each key and value is decoded by :mod:`json`'s own decoder (``JSONDecoder.raw_decode``), so
escapes, numbers, ``NaN``, lone surrogates and ``object_pairs_hook`` behave exactly as with
``json.load``; only the object's own braces, colons and commas are walked here. The C
backend of ijson, the streaming parser on PyPI, turns a lone surrogate into ``?`` and refuses
the whole file for one ``NaN`` or ``1e400``, which ``json`` reads and a split reports as one
bad entry.
"""
from __future__ import annotations

import codecs
import json
import re
import stat
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple

from .errors import InputError, not_a_file

__all__ = ["object_members", "read_json", "reason"]

_SPACE = re.compile(r"[ \t\n\r]*")  # json's whitespace
_NUMBER_TAIL = re.compile(r"[0-9.eE+-]*")  # what could still continue a number read so far


class _Text:
    """A UTF-8 file's text, read in chunks, with positions counted from the file's start."""

    def __init__(self, fh, path: Path, chunk: int, max_value: int):
        self.fh, self.path, self.chunk, self.max_value = fh, path, chunk, max_value
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buf, self.pos = "", 0
        self.dropped = 0                  # characters before ``buf``
        self.line, self.line_start = 1, 0  # line number at ``buf``'s start, where it began
        self.bytes_read, self.eof = 0, False
        first = fh.read(len(codecs.BOM_UTF8))
        if first == codecs.BOM_UTF8:  # a byte-order mark is allowed, as json.load allows it
            self.bytes_read = len(first)
        else:
            fh.seek(0)

    def more(self) -> bool:
        """Append the next chunk (at least as long as what waits to be decoded, so that a
        value longer than a chunk is read in a few steps); False at the end of the file."""
        if self.eof:
            return False
        data = self.fh.read(max(self.chunk, len(self.buf) - self.pos))
        pending = len(self.decoder.getstate()[0])
        try:
            self.buf += self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as err:
            raise InputError(f"{self.path}: not UTF-8 text ({err.reason} at byte "
                             f"{self.bytes_read - pending + err.start})") from None
        self.bytes_read += len(data)
        self.eof = not data
        return not self.eof

    def peek(self) -> str:
        """The next character that is not whitespace ('' at the end of the file)."""
        while True:
            self.pos = _SPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            self.drop_read()
            if not self.more():
                return ""

    def expect(self, char: str, message: str):
        if self.peek() != char:
            raise self.error(message, self.pos)
        self.pos += 1

    def decode(self, decoder: json.JSONDecoder):
        """The json value at the current position."""
        while True:
            try:
                value, end = decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as err:
                # a fault where the text read so far ends may be where a chunk cut the value
                cut = err.pos >= len(self.buf) - 16 or err.msg.startswith("Unterminated string")
                if cut and len(self.buf) - self.pos > self.max_value:
                    raise self.error(f"more than {self.max_value} characters", self.pos,
                                     "a key or value too long to be read") from None
                if cut and self.more():
                    continue
                raise self.error(err.msg, err.pos) from None
            except (RecursionError, ValueError) as err:  # too deep, an integer too long
                raise self.error(_fault(err), self.pos) from None
            # a number ('1', '1.', '1e') may go on in the next chunk
            if _NUMBER_TAIL.match(self.buf, end).end() < len(self.buf) or not self.more():
                self.pos = end
                return value

    def drop_read(self):
        """Forget the text before the current position once it is longer than a chunk."""
        if self.pos < self.chunk:
            return
        gone = self.buf[:self.pos]
        newlines = gone.count("\n")
        if newlines:
            self.line += newlines
            self.line_start = self.dropped + gone.rindex("\n") + 1
        self.buf, self.dropped, self.pos = self.buf[self.pos:], self.dropped + self.pos, 0

    def error(self, message: str, pos: int, what: str = "not valid json") -> InputError:
        """``json``'s message for a fault at ``buf[pos]``, placed in the whole file."""
        newline = self.buf.rfind("\n", 0, pos)
        line = self.line + self.buf.count("\n", 0, pos)
        column = pos - newline if newline >= 0 else self.dropped + pos - self.line_start + 1
        return InputError(f"{self.path}: {what} ({message}: line {line} column "
                          f"{column} (char {self.dropped + pos}))")


def _fault(err: Exception) -> str:
    """What :mod:`json` raised, other than a syntax error, as a reason."""
    if isinstance(err, RecursionError):
        return "nested too deeply"
    return str(err).split(":")[0]  # 'Exceeds the limit (4300 digits) for integer string ...'


def read_json(path, *, max_bytes: Optional[int] = 64 << 20):
    """The json value of a file read whole (a model's ``config.json``, a build journal,
    ``placed.json``).

    Parameters
    ----------
    path : str or pathlib.Path
    max_bytes : int or None
        The most the file may hold, for a file that has a size no use of it exceeds (a
        model's config); ``None`` for one that grows with what it records (a journal).

    Raises
    ------
    InputError
        Naming the file: not a regular file (a pipe would block the read, a device never end
        it), larger than ``max_bytes`` (what it costs is bounded by what is read), not UTF-8,
        or not json (nesting too deep and too long an integer included).
    OSError
        When it cannot be read (``FileNotFoundError`` when it does not exist).
    """
    path = Path(path)
    if not stat.S_ISREG(path.stat().st_mode):  # checked before it is opened: a pipe blocks
        raise InputError(not_a_file(path))
    with path.open("rb") as fh:
        data = fh.read(-1 if max_bytes is None else max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise InputError(f"{path}: over {max_bytes} bytes, larger than any such file")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid json ({err})") from None
    except (RecursionError, ValueError) as err:
        raise InputError(f"{path}: not valid json ({_fault(err)})") from None


def reason(err: Exception, path) -> str:
    """``err``'s message without the ``path`` that :func:`read_json` names it by, for a
    caller whose own message names the file."""
    return str(err).removeprefix(f"{path}: ")


def _trailing_comma() -> Tuple[str, bool]:
    """What this Python's ``json`` says of a comma before an object's ``}``, and whether it
    places it at the comma (3.13 and later) or at the brace."""
    try:
        json.loads('{"": 0,}')
    except json.JSONDecodeError as err:
        return err.msg, err.pos == 6
    raise AssertionError("json read an object with a trailing comma")


def object_members(path, *, object_pairs_hook: Optional[Callable] = None,
                   chunk_bytes: int = 1 << 20, max_value: int = 1 << 20
                   ) -> Iterator[Tuple[str, object]]:
    """``(key, value)`` for each member of the json object in a UTF-8 file, in file order.

    Parameters
    ----------
    path : str or pathlib.Path
        A file holding one json object (a byte-order mark before it is allowed).
    object_pairs_hook : callable, optional
        As for :func:`json.load`, applied to the objects inside the values.
    chunk_bytes : int
        Bytes read at a time; what is held is about twice this much text and one value.
    max_value : int
        How long a key or value may be, in characters (an entry of NSynth's ``examples.json``
        has about 700): one that is longer and longer than the text read so far is refused
        before it is read whole, so what is held stays within about twice
        ``max(chunk_bytes, max_value)``.

    Yields
    ------
    key : str
    value : object
        A key given twice is yielded twice.

    Raises
    ------
    FileNotFoundError
        No such file.
    InputError
        The file is not UTF-8, not valid json, or valid json that is not an object, or holds
        a key or value longer than ``max_value``; the message names the file and where (line,
        column, character, as ``json`` does).
    """
    path = Path(path)
    if not isinstance(chunk_bytes, int) or chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be a positive integer, got {chunk_bytes!r}")
    decoder = json.JSONDecoder(object_pairs_hook=object_pairs_hook)
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    with fh:
        text = _Text(fh, path, chunk_bytes, max_value)
        if text.peek() != "{":
            text.decode(decoder)  # not valid json, or json that is not an object
            raise InputError(f"{path}: expected a json object mapping note names to fields")
        text.pos += 1
        if text.peek() == "}":
            text.pos += 1
        else:
            while True:
                if text.peek() != '"':
                    raise text.error("Expecting property name enclosed in double quotes",
                                     text.pos)
                key = text.decode(decoder)
                text.expect(":", "Expecting ':' delimiter")
                text.peek()
                yield key, text.decode(decoder)
                text.drop_read()
                if text.peek() == "}":
                    text.pos += 1
                    break
                comma = text.dropped + text.pos
                text.expect(",", "Expecting ',' delimiter")
                if text.peek() == "}":
                    message, at_comma = _trailing_comma()
                    comma -= text.dropped  # < 0: dropped with a long run of whitespace
                    raise text.error(message, comma if at_comma and comma >= 0 else text.pos)
        if text.peek():
            raise text.error("Extra data", text.pos)
