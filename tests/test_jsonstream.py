import json
import os
import sys
import threading
from pathlib import Path

import pytest

from featurestore.errors import InputError
from featurestore.jsonstream import object_members, read_json

#: Whether this Python refuses to read integers of over 4,300 digits (3.11, 3.10.7, 3.9.14 on).
LIMITED_INTS = hasattr(sys, "get_int_max_str_digits")

VALID = [
    '{}',
    ' \n{ }\n',
    '{"a": 1}',
    '{"a": {"pitch": 60, "q": [0, 1, 1e400, NaN, -Infinity]}, "b": 12345678901234567890}',
    '{"a": 1.5, "b": -2e+5, "c": 3E-1, "d": 0.25, "e": true, "f": null, "g": "\\u00e9"}',
    '{"é\\u00e9\\ud800": "ünïcödé \\ud83c\\udfb5", "a": {"a": 1, "a": 2}, "a": true}',
    '{\n "x": [ {"y": null}, "z" ] ,\r\n\t"w" : -0.5e-3 }  \n',
]
INVALID = [
    '',
    '{',
    '{"a" 1}',
    '{"a": 1,}',
    '{"a": 1,   \n  }',
    '{"a": 1 "b": 2}',
    '{"a": 1}}',
    '{"a": 1} x',
    '{\n"a": {"b": [1, 2,]}}',
    '{\n  "a": 1,\n  "b": tru}',
    '{"a": "unterminated}',
    '{a: 1}',
    'nothing',
]


@pytest.mark.parametrize("text", VALID)
def test_members_are_what_json_reads_wherever_a_chunk_ends(tmp_path, text):
    path = tmp_path / "x.json"
    path.write_text(text, encoding="utf-8")
    expected = json.dumps(json.loads(text, object_pairs_hook=list))  # NaN == NaN here
    for chunk in range(1, len(text.encode()) + 2):
        got = list(object_members(path, object_pairs_hook=list, chunk_bytes=chunk))
        assert json.dumps(got) == expected, chunk  # duplicates kept, in order


@pytest.mark.parametrize("chunk", [1, 2, 5, 1 << 20])
@pytest.mark.parametrize("text", INVALID)
def test_faults_are_placed_as_json_places_them(tmp_path, text, chunk):
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(InputError) as got:
        list(object_members(path, chunk_bytes=chunk))
    assert str(got.value) == f"{path}: not valid json ({expected.value})"


def test_a_long_document_in_small_chunks(tmp_path):
    entries = {f"note{i:05d}": {"pitch": i % 128, "text": "x" * (i % 50)} for i in range(3000)}
    path = tmp_path / "long.json"
    path.write_text(json.dumps(entries, indent=1))
    assert dict(object_members(path, chunk_bytes=100)) == entries
    broken = json.dumps(entries, indent=1).replace('"pitch": 7,', '"pitch": 7,,', 1)
    path.write_text(broken)
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(broken)
    assert expected.value.lineno > 20  # far past the first chunks
    with pytest.raises(InputError) as got:
        list(object_members(path, chunk_bytes=100))
    assert str(got.value) == f"{path}: not valid json ({expected.value})"


def test_bom_not_utf8_not_an_object_and_no_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b"\xef\xbb\xbf" + '{"\xe9": 1}'.encode())
    assert list(object_members(path)) == [("\xe9", 1)]
    for chunk in (1, 1 << 20):
        path.write_bytes(b'{"abc": "d\xc3\xa9", "e": "\xff"}')  # byte 21 is not UTF-8
        with pytest.raises(InputError, match=r"x.json: not UTF-8 text \(invalid start byte at "
                                             r"byte 21\)"):
            list(object_members(path, chunk_bytes=chunk))
    path.write_bytes(b'{"a": "\xc3')  # cut inside a character
    with pytest.raises(InputError, match="not UTF-8 text"):
        list(object_members(path))
    for text in ("[1, 2]", '"a"', "3"):
        path.write_text(text)
        with pytest.raises(InputError, match="x.json: expected a json object"):
            list(object_members(path))
    with pytest.raises(FileNotFoundError, match="none.json: no such file"):
        list(object_members(tmp_path / "none.json"))
    with pytest.raises(ValueError, match="chunk_bytes must be a positive integer, got 0"):
        list(object_members(path, chunk_bytes=0))


def test_a_fault_early_in_a_long_file_is_found_without_reading_the_rest(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    with path.open("w") as fh:
        fh.write('{"a": {"b": 1 "c": 2}, ')
        fh.write(", ".join(f'"n{i}": {{"pitch": {i}}}' for i in range(20000)) + "}")
    read, open_file = [], Path.open

    class Counted:
        def __init__(self, fh):
            self.fh = fh

        def read(self, n=-1):
            data = self.fh.read(n)
            read.append(len(data))
            return data

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: Counted(open_file(self, *a, **k)))
    with pytest.raises(InputError, match=r"Expecting ',' delimiter: line 1 column 15"):
        list(object_members(path, chunk_bytes=64))
    assert sum(read) < 1000 < path.stat().st_size


def test_nesting_too_deep_a_number_too_long_and_a_value_too_long_are_one_error(tmp_path):
    path = tmp_path / "x.json"
    bomb = "[" * 200_000 + "]" * 200_000
    cases = [(f'{{"a": 1, "b": {bomb}}}', r"nested too deeply: line 1 column 15")]
    if LIMITED_INTS:
        cases.append(('{"a": ' + "9" * 5000 + "}", r"Exceeds the limit \(4300 digits\)"))
    for text, message in cases:
        path.write_text(text)
        with pytest.raises(InputError, match=rf"x.json: not valid json \({message}"):
            list(object_members(path))
    path.write_text('{"a": 1, "b": "' + "x" * 5000 + '"}')
    assert dict(object_members(path, chunk_bytes=64, max_value=6000))["b"] == "x" * 5000
    members = object_members(path, chunk_bytes=64, max_value=1000)
    assert next(members) == ("a", 1)
    with pytest.raises(InputError, match=r"x.json: a key or value too long to be read \(more "
                                         r"than 1000 characters: line 1 column 15"):
        next(members)  # refused before it is read whole


def test_read_json_refuses_what_is_not_a_small_json_file_in_one_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"labels": ["a", "b"]}')
    assert read_json(path) == {"labels": ["a", "b"]}
    cases = [(("[" * 100_000 + "]" * 100_000).encode(), r"not valid json \(nested too deeply\)"),
             (b'{"a": 1', r"not valid json \(Expecting ',' delimiter"),
             (b'{"a": "\xff"}', r"not UTF-8 text \(invalid start byte at byte 7\)")]
    if LIMITED_INTS:
        cases.append((b'{"n": ' + b"1" * 5000 + b"}", r"not valid json \(Exceeds the limit"))
    for data, message in cases:
        path.write_bytes(data)
        with pytest.raises(InputError, match=rf"config.json: {message}"):
            read_json(path)
    path.write_bytes(b" " * 101)
    with pytest.raises(InputError, match="config.json: over 100 bytes, larger than any such"):
        read_json(path, max_bytes=100)
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "none.json")


def test_read_json_refuses_a_pipe_a_device_and_a_folder_before_reading(tmp_path):
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)  # a read would block until a writer came
    # were it read, a writer opening it lets the read end: the test fails rather than hangs
    writer = threading.Timer(20, lambda: os.close(os.open(pipe, os.O_WRONLY)))
    writer.daemon = True
    writer.start()
    try:
        with pytest.raises(InputError, match=r"pipe.json: not a file but a pipe, socket or "
                                             r"device"):
            read_json(pipe, max_bytes=None)  # a journal's: as long as it is
    finally:
        writer.cancel()
    (tmp_path / "zero.json").symlink_to("/dev/zero")  # a read would never end
    with pytest.raises(InputError, match=r"zero.json: not a file but a pipe, socket or device"):
        read_json(tmp_path / "zero.json")
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(InputError, match=r"folder.json: not a file but a folder"):
        read_json(tmp_path / "folder.json")
