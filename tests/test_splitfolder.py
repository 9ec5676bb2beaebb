import json

import pytest

from featurestore.nsynth import Example
from featurestore.splitfolder import read_split

from helpers import example, tone, write_note

GOOD = example("n", "brass").to_json()


def test_read_split_encodings_and_missing_audio(tmp_path):
    split = tmp_path / "train"
    write_note(split, "a", tone(10))
    (split / "audio" / "b.flac").write_bytes(b"fLaC")
    entries = {"a": GOOD, "b": GOOD}
    (split / "examples.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(entries).encode())
    usable, problems = read_split(split)  # a byte-order mark is fine
    assert [e.note_str for e, _ in usable] == ["n"]
    assert problems == [("b", "json entry has no wav (b.flac is there; only .wav files are "
                              "read)")]
    (split / "examples.json").write_bytes(json.dumps(entries).encode("utf-16"))
    with pytest.raises(ValueError, match=r"examples.json: not UTF-8 text"):
        read_split(split)
    (tmp_path / "valid").mkdir()
    (tmp_path / "valid" / "examples.json").write_text(json.dumps({"a": GOOD}))
    assert read_split(tmp_path / "valid")[1] == [
        ("a", f"json entry has no wav (no folder {tmp_path / 'valid' / 'audio'})")]


def test_read_split_names_entries_given_twice(tmp_path):
    split = tmp_path / "train"
    for name in "abcde":
        write_note(split, name, tone(10))
    good, other = json.dumps(GOOD), json.dumps(dict(GOOD, pitch=61))
    twice_field = good[:-1] + ', "pitch": 99}'  # pitch given again, differently
    reordered = json.dumps(dict(reversed(list(dict(GOOD, pitch=60.0).items()))))
    (split / "examples.json").write_text(
        f'{{"a": {good}, "a": {other}, "b": {good}, "b": {good}, "c": {twice_field}, '
        f'"d": {good}, "e": {good}, "e": {reordered}}}')
    usable, problems = read_split(split)
    # b and e (the same entry twice loses nothing, written as it may be) and d
    assert len(usable) == 3
    assert problems == [
        ("a", "examples.json has several different entries for this name; which one is meant "
              "is unclear"),
        ("c", "json entry gives pitch more than once, with different values")]


def _split_of_empty_wavs(split, n):
    (split / "audio").mkdir(parents=True)
    entries = {}
    for i in range(n):
        name = f"bass_synthetic_{i % 300:03d}-{i % 100:03d}-{i:06d}"
        entries[name] = example(name, "bass", instrument=i % 300).to_json()
        (split / "audio" / f"{name}.wav").touch()
    (split / "examples.json").write_text(json.dumps(entries, indent=1))


def test_read_split_memory_grows_by_a_few_hundred_bytes_a_note(tmp_path, monkeypatch):
    """examples.json is read entry by entry and the notes kept as columns: reading it whole
    and keeping an Example and a Path per note grew by 2.3 KiB a note at its peak, and kept
    0.9 KiB."""
    import functools
    import tracemalloc

    from featurestore import jsonstream, splitfolder
    # chunks much smaller than the files, as NSynth's 130 MB file is to the default's 1 MB
    monkeypatch.setattr(splitfolder, "object_members",
                        functools.partial(jsonstream.object_members, chunk_bytes=4096))
    sizes, peaks, kept = (2000, 6000), [], []
    for n in sizes:
        _split_of_empty_wavs(tmp_path / str(n), n)
        tracemalloc.start()
        notes, problems = read_split(tmp_path / str(n))
        kept.append(tracemalloc.get_traced_memory()[0])
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert len(notes) == n and not problems
        del notes
    per_note = [(b - a) / (sizes[1] - sizes[0]) for a, b in (peaks, kept)]
    assert per_note[0] < 800, f"peak grows by {per_note[0]:.0f} bytes a note"
    assert per_note[1] < 300, f"the notes keep {per_note[1]:.0f} bytes each"


def test_notes_are_columns_that_give_back_each_example(tmp_path):
    split = tmp_path / "train"
    entries = {}
    for i, name in enumerate(["c", "a", "b"]):
        write_note(split, name, tone(10))
        entries[name] = dict(example(name, "guitar", pitch=40 + i, instrument=i).to_json(),
                             qualities=[1, 0, 0, 1, 0, 0, 0, 0, 0, 0],
                             qualities_str=["bright", "fast_decay"])
    entries["b"]["note_str"] = "not b"
    (split / "audio" / "a.wav").rename(split / "audio" / "a.WAV")
    (split / "examples.json").write_text(json.dumps(entries))
    notes, problems = read_split(split)
    assert not problems and notes.names == ["a", "b", "c"]  # sorted by name
    for (got, path), name in zip(notes, notes.names):
        assert got == Example.from_json(name, entries[name])
        assert path == split / "audio" / (name + (".WAV" if name == "a" else ".wav"))
    assert notes.pitch.tolist() == [41, 42, 40] and notes.qualities.shape == (3, 10)
    some = notes.take([2, 0])
    assert some.names == ["c", "a"] and some[1] == notes[0] and some.pitch.tolist() == [40, 41]
    with pytest.raises(IndexError):
        notes[3]
