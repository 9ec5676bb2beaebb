import dataclasses
import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from featurestore.nsynth import FAMILIES, QUALITIES
from featurestore.splitfolder import read_split
from featurestore.render import (GM_FAMILIES, SILENT_PEAK, RenderOptions, assign_splits,
                                 default_soundfont, render_soundfont, sample_groups)

FIELDS = {"instrument_family", "instrument_family_str", "instrument", "instrument_str",
          "instrument_source_str", "pitch", "velocity", "sample_rate", "qualities", "note_str",
          "note"}
OPTIONS = RenderOptions(pitch_step=12, velocities=(100,), duration=1.0, hold=0.75)
PROGRAMS = [0, 1, 2, 40, 41, 42, 73, 74, 75]


def digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_an_interrupted_render_leaves_no_split_and_the_next_one_starts_again(tmp_path,
                                                                              monkeypatch, caplog):
    import featurestore.render as render
    clean = render_soundfont(tmp_path / "clean", options=OPTIONS, programs=PROGRAMS,
                             progress=False)
    assert clean["valid"] and "no valid split" not in caplog.text
    played, render_note = [], render._render_note

    def interrupted(*args):
        played.append(args)
        if len(played) == 5:
            raise KeyboardInterrupt
        return render_note(*args)
    monkeypatch.setattr(render, "_render_note", interrupted)
    with pytest.raises(KeyboardInterrupt):
        render_soundfont(tmp_path / "out", options=OPTIONS, programs=PROGRAMS, progress=False)
    assert not (tmp_path / "out").exists()  # no split, its work removed, and the folder it made
    monkeypatch.undo()
    (tmp_path / "out" / ".rendering" / "train" / "audio").mkdir(parents=True)  # a killed one's
    (tmp_path / "out" / ".rendering" / "train" / "audio" / "x.wav").write_bytes(b"")
    (tmp_path / "out" / "train").mkdir()  # an empty split folder is no rendered split
    assert render_soundfont(tmp_path / "out", options=OPTIONS, programs=PROGRAMS,
                            progress=False) == clean
    assert digest(tmp_path / "out") == digest(tmp_path / "clean")  # nothing stale, no .rendering
    other = tmp_path / "other"
    (other / "valid" / "audio").mkdir(parents=True)
    (other / "valid" / "audio" / "mine.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="valid: is there already and holds other files"):
        render_soundfont(other, options=OPTIONS, programs=PROGRAMS, progress=False)
    assert [p.name for p in other.iterdir()] == ["valid"]


def test_a_render_sent_sigterm_ends_as_an_interrupted_one(tmp_path):
    """``kill`` or ``timeout``: exit 143, no .rendering left (gigabytes, in a big render)."""
    import signal
    import subprocess
    import sys
    import time
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "analysis.cli", "render", str(out),
                             "--pitch-step", "1", "-q"], cwd=Path(__file__).parents[1],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any((out / ".rendering").glob("*/audio/*.wav")) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "timbremap: terminated" in stderr, stderr
    assert not out.exists()


def test_a_folder_whose_render_has_not_finished_is_refused_by_build(tmp_path):
    from featurestore.errors import BuildError
    from featurestore.layouts import read_inputs
    out = tmp_path / "out"
    render_soundfont(out, options=OPTIONS, programs=PROGRAMS, progress=False)
    assert sorted(read_inputs(out).splits) == ["test", "train", "valid"]
    (out / ".rendering").mkdir()  # a render stopped as it moved its splits in: train moved
    for split in ("valid", "test"):
        (out / split).replace(out / ".rendering" / split)
    with pytest.raises(BuildError, match=r"out: a render into this folder has not finished .*"
                                         r"render again into a new folder \(it had moved a "
                                         r"split in\)$"):
        read_inputs(out)  # not a store of train alone
    with pytest.raises(ValueError, match="holds rendered notes already"):
        render_soundfont(out, options=OPTIONS, programs=PROGRAMS, progress=False)
    for split in ("valid", "test"):
        (out / ".rendering" / split).replace(out / split)
    assert sorted(read_inputs(out).splits) == ["test", "train", "valid"]  # an empty one: done
    killed = tmp_path / "killed"  # before it moved a split in
    (killed / ".rendering").mkdir(parents=True)
    (out / "train").replace(killed / ".rendering" / "train")
    with pytest.raises(BuildError, match=r"render again into it \(the render starts over\)$"):
        read_inputs(killed)


def test_a_second_render_into_a_folder_being_rendered_into_is_refused(tmp_path):
    from featurestore.files import exclusive_lock
    (tmp_path / "out").mkdir()
    with exclusive_lock(tmp_path / "out", lambda: AssertionError("held")):  # as a render does
        with pytest.raises(ValueError, match="out: another render is writing into this folder"):
            render_soundfont(tmp_path / "out", options=OPTIONS, programs=PROGRAMS,
                             progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_render_of_no_sounding_note_writes_nothing(tmp_path, monkeypatch, caplog):
    import featurestore.render as render
    monkeypatch.setattr(render, "_render_note", lambda *args: np.zeros(16000, np.float32))
    with pytest.raises(ValueError, match="out: no note sounded .*; nothing written"):
        render_soundfont(tmp_path / "out", options=OPTIONS, programs=PROGRAMS, progress=False)
    assert "came out silent, below -60 dBFS (no sample covers the key, or what covers it is " \
           "that quiet), left out" in caplog.text
    assert not (tmp_path / "out").exists()


def test_notes_below_minus_60_dbfs_are_left_out_as_synthesised_ones_are(tmp_path, caplog):
    import soundfile as sf
    quiet = dataclasses.replace(OPTIONS, velocities=(1,), fractions=(1, 0, 0))
    render_soundfont(tmp_path / "quiet", options=quiet, programs=[0, 40, 73], progress=False)
    peaks = [np.abs(sf.read(path)[0]).max()
             for path in (tmp_path / "quiet" / "train" / "audio").glob("*.wav")]
    left_out = int(re.search(r"(\d+) notes? came out silent, below -60 dBFS", caplog.text)[1])
    assert peaks and left_out and min(peaks) >= SILENT_PEAK * (1 - 2 ** -14)  # as 16-bit


def test_a_note_or_examples_json_that_cannot_be_written_is_one_error_and_nothing_is_kept(
        tmp_path, monkeypatch):
    import errno
    import soundfile as sf
    import featurestore.renderfolder as folder
    written, write = [], sf.write

    def full(path, *args, **kwargs):  # libsndfile says no more than this of a full disk
        written.append(path)
        if len(written) == 3:
            raise sf.LibsndfileError(2, "Error writing: ")
        return write(path, *args, **kwargs)
    monkeypatch.setattr(folder.sf, "write", full)
    with pytest.raises(ValueError, match=r"out/\.rendering/\w+/audio/\S+\.wav: cannot be "
                                         r"written \(.*\); nothing of the render was kept"):
        render_soundfont(tmp_path / "out", options=OPTIONS, programs=PROGRAMS, progress=False)
    assert not (tmp_path / "out").exists()
    monkeypatch.undo()

    def no_room(split_dir, examples, **_):
        raise OSError(errno.ENOSPC, "No space left on device", str(split_dir / "examples.json"))
    monkeypatch.setattr(folder, "write_split", no_room)
    with pytest.raises(ValueError, match=r"out/\.rendering/\w+/examples.json: cannot be "
                                         r"written \(No space left on device\); nothing"):
        render_soundfont(tmp_path / "out", options=OPTIONS, programs=PROGRAMS, progress=False)
    assert not (tmp_path / "out").exists()  # no .rendering a build would refuse


def test_odd_paths_are_named_and_a_link_in_the_render_s_place_is_never_followed(tmp_path,
                                                                                 caplog):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("a user's")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".rendering").symlink_to(tmp_path / "mine")
    render_soundfont(tmp_path / "out", options=OPTIONS, programs=PROGRAMS, progress=False)
    assert (tmp_path / "mine" / "keep.txt").read_text() == "a user's"
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"file: is a file, so .*file/out cannot be a folder"):
        render_soundfont(tmp_path / "file" / "out", options=OPTIONS, programs=PROGRAMS,
                         progress=False)
    import os
    odd = Path(os.fsdecode(bytes(tmp_path / "x") + b"\xff.sf2"))  # a name not of UTF-8
    odd.write_bytes(default_soundfont().read_bytes())
    out = Path(os.fsdecode(bytes(tmp_path / "r") + b"\xe9"))  # written into, as read from
    with caplog.at_level(logging.ERROR):  # its warnings name it: a test worker cannot send them
        counts = render_soundfont(out, odd, options=dataclasses.replace(
            OPTIONS, fractions=(1, 0, 0)), programs=[0], progress=False)
    assert counts["train"] == len(list((out / "train" / "audio").glob("*.wav"))) > 0
    names = []
    for stem in ("\u65e5\u672c", "\u4e2d\u56fd"):  # no ASCII letter or digit: a tag each
        (tmp_path / f"{stem}.sf2").write_bytes(default_soundfont().read_bytes())
        render_soundfont(tmp_path / stem, tmp_path / f"{stem}.sf2", options=dataclasses.replace(
            OPTIONS, fractions=(1, 0, 0)), programs=[0], progress=False)
        names.append(min(json.loads((tmp_path / stem / "train" / "examples.json").read_text())))
    assert names[0] != names[1] and all(re.match(r"keyboard_acoustic_sf[0-9a-f]{8}000-", name)
                                        for name in names), names
    os.mkfifo(tmp_path / "pipe.sf2")
    with pytest.raises(FileNotFoundError, match="pipe.sf2: not a regular file"):
        render_soundfont(tmp_path / "x", tmp_path / "pipe.sf2", progress=False)


def test_a_split_none_of_whose_notes_sounded_is_warned_of(tmp_path, monkeypatch, caplog):
    import featurestore.render as render
    render_note = render._render_note

    def silent_but_piano(synth, sfid, program, *args):
        audio = render_note(synth, sfid, program, *args)
        return audio if program < 8 else 0 * audio
    monkeypatch.setattr(render, "_render_note", silent_but_piano)
    counts = render_soundfont(tmp_path / "out", options=dataclasses.replace(
        OPTIONS, fractions=(0.5, 0.5, 0)), programs=[0, 40, 42], progress=False)
    empty = [split for split, n in counts.items() if not n]
    assert len(empty) == 1 and f"no note of the {empty[0]} split sounded" in caplog.text


def test_render_is_deterministic_and_instrument_disjoint(tmp_path):
    counts = render_soundfont(tmp_path / "a", options=OPTIONS, programs=PROGRAMS, progress=False)
    render_soundfont(tmp_path / "b", options=OPTIONS, programs=PROGRAMS, progress=False)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    with pytest.raises(ValueError, match="holds rendered notes already"):  # no stale wavs
        render_soundfont(tmp_path / "a", options=OPTIONS, programs=PROGRAMS[:1], progress=False)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    instruments, numbers = {}, []
    for split, n in counts.items():
        usable, problems = read_split(tmp_path / "a" / split)
        assert len(usable) == n > 0 and problems == []
        instruments[split] = {e.instrument for e, _ in usable}
        entries = json.loads((tmp_path / "a" / split / "examples.json").read_text())
        numbers += [entry["note"] for _, entry in sorted(entries.items())]
        for name, entry in entries.items():
            assert FIELDS <= set(entry)
            assert entry["note_str"] == name
            assert entry["instrument_family_str"] == FAMILIES[entry["instrument_family"]]
            assert len(entry["qualities"]) == len(QUALITIES)
    assert list(counts) == ["train", "valid", "test"]  # whatever Python's hash seed
    assert numbers == list(range(sum(counts.values())))  # NSynth's note: train's first
    splits = list(instruments.values())
    assert all(not (a & b) for i, a in enumerate(splits) for b in splits[i + 1:])


def test_electric_instruments_are_electronic():
    assert GM_FAMILIES[7] == ("keyboard", "electronic")  # Clavinet: an electric keyboard
    assert {GM_FAMILIES[p][1] for p in (4, 5, 16, 26, 33)} == {"electronic"}


def test_programs_that_play_one_sample_go_to_one_split(caplog):
    """So that no valid or test note plays a sample train holds (TimGM6mb's Viola, 41, plays
    the Fiddle's samples, 110, and its Guitar Harmonics, 31, a Picked Bass sample, 34)."""
    from featurestore.sf2check import check_soundfont, preset_samples
    played = preset_samples(check_soundfont(default_soundfont()))
    assert played[41] == played[110] and played[31] & played[34] and not played[40] & played[42]
    assert played[0] == played[1] == played[3]  # as the README says
    groups = [g for g in sample_groups(GM_FAMILIES, played) if len(g) > 1]
    assert [40, 41, 110] in groups and not any(set(g) & {42, 45} and 40 in g for g in groups)
    for seed in range(5):
        splits = assign_splits(sorted(GM_FAMILIES), (0.6, 0.2, 0.2), seed, groups=groups)
        assert not [(a, b) for a in splits for b in splits
                    if splits[a] != splits[b] and played[a] & played[b]]
        assert set(splits.values()) == {"train", "valid", "test"}
    from featurestore.drawsplits import warn_of_families_held_together
    warn_of_families_held_together("tim", splits, (0.6, 0.2, 0.2))
    assert "tim: the programs of brass (train, valid); synth_lead (train, valid); vocal (train, " \
           "valid) are in fewer splits than asked for" in caplog.text  # groups of 2 in 3 splits
    assert sample_groups([1, 2, 3, 4], {1: {"a"}, 2: {"b"}, 3: {"a", "b"}, 4: {"c"}}) == [
        [1, 2, 3], [4]]  # through another program too
    for seed in range(5):  # groups that share a program are one
        drawn = assign_splits(range(1, 4), (0.34, 0.33, 0.33), seed,
                              families=dict.fromkeys(range(4), "bass"), groups=[[1, 2], [2, 3]])
        assert len(set(drawn.values())) == 1
    bass = dict.fromkeys(range(7), "bass")
    for seed in range(5):  # a group is drawn first: into train, where train has a share
        assert assign_splits(range(1, 7), (0.6, 0.2, 0.2), seed, families=bass,
                             groups=[[1, 2, 3]])[1] == "train"
        assert assign_splits([1, 2, 3, 4], (0, 0.5, 0.5), seed, families=bass,
                             groups=[[1, 2, 3]]) == {1: "valid", 2: "valid", 3: "valid", 4: "test"}


def test_a_render_keeps_programs_that_play_one_sample_in_one_split(tmp_path, caplog):
    with caplog.at_level("INFO", logger="featurestore.render"):
        counts = render_soundfont(tmp_path / "out", options=OPTIONS,
                                  programs=[40, 41, 42, 45, 110], progress=False)
    drawn = {split: {e.instrument % 1000 for e, _ in read_split(tmp_path / "out" / split)[0]}
             for split in counts}
    assert next(s for s in drawn.values() if 41 in s) >= {40, 41, 110}  # Viola plays the Fiddle's
    assert "programs that play one sample go to one split: 40, 41, 110" in caplog.text


def test_assign_splits_gives_every_split_each_family_when_possible():
    splits = assign_splits(sorted(GM_FAMILIES), (0.6, 0.2, 0.2), seed=0)
    for family in FAMILIES:
        got = {splits[p] for p, (f, _) in GM_FAMILIES.items() if f == family}
        assert got == {"train", "valid", "test"}, family
    assert assign_splits(sorted(GM_FAMILIES), (1, 0, 0), seed=0) == {
        p: "train" for p in GM_FAMILIES}


def test_render_warns_when_a_split_gets_no_instrument(tmp_path, caplog):
    render_soundfont(tmp_path / "few", options=OPTIONS, programs=[0, 40], progress=False)
    assert "valid and test got no instrument; a family's instruments are divided among the " \
           "splits, each getting one only when the family has at least 3: give 3 or more of a " \
           "family (--programs)" in caplog.text
    assert not (tmp_path / "few" / "valid").exists()
    caplog.clear()
    render_soundfont(tmp_path / "pianos", options=OPTIONS, programs=[0, 1, 2], progress=False)
    assert "valid and test got no instrument; a family's instruments are divided among the " \
           "splits, each getting one only when the family has at least 3 (programs that play " \
           "one sample counting as one): give 3" in caplog.text  # TimGM6mb's pianos share theirs
    caplog.clear()
    render_soundfont(tmp_path / "halves", options=dataclasses.replace(
        OPTIONS, fractions=(0.5, 0.5, 0)), programs=[0, 40], progress=False)
    assert "valid got no instrument" in caplog.text and "at least 2" in caplog.text
    assert "halves: no valid split rendered" in caplog.text
    caplog.clear()
    render_soundfont(tmp_path / "train-only", options=dataclasses.replace(
        OPTIONS, fractions=(1, 0, 0)), programs=[0, 40], progress=False)
    assert "got no instrument" not in caplog.text  # asked for train alone
    assert "train-only: no valid split rendered; 'timbremap train' needs one, from these " \
           "notes or from a folder built with them" in caplog.text


def test_render_bad_input(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no such SoundFont"):
        render_soundfont(tmp_path, tmp_path / "missing.sf2", progress=False)
    import featurestore.render as render
    monkeypatch.setattr(render.resources, "files", lambda package: tmp_path)  # one without it
    with pytest.raises(FileNotFoundError, match=r"TimGM6mb.sf2: pretty_midi's TimGM6mb.sf2 is "
                       r"missing; give a SoundFont \(render SOUNDFONT OUT\), or reinstall "
                       r"pretty_midi"):
        render_soundfont(tmp_path / "out", progress=False)
    monkeypatch.undo()
    junk = tmp_path / "junk.sf2"
    junk.write_bytes(b"not a soundfont")
    with pytest.raises(ValueError, match="not a SoundFont"):
        render_soundfont(tmp_path / "out", junk, progress=False)
    with pytest.raises(ValueError, match="tag must be ASCII letters and digits"):
        render_soundfont(tmp_path / "out", programs=[0], tag="../evil", progress=False)
    with pytest.raises(ValueError, match="tag must be ASCII letters and digits.*, got ''"):
        render_soundfont(tmp_path / "out", programs=[0], tag="", progress=False)
    with pytest.raises(ValueError, match="tag must be ASCII letters and digits, at most 64 .*, got "
                                         "'aaaa"):
        render_soundfont(tmp_path / "out", programs=[0], tag="a" * 230, progress=False)
    with pytest.raises(ValueError, match="tag must be ASCII letters and digits.*'Fl.te'"):
        render_soundfont(tmp_path / "out", programs=[0], tag="Fl\u00f6te", progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=r"programs \[120\] have no NSynth family \(a program "
                                         r"of no clear one.*\); those mapped: 0-7, 9-14, 16-20, "):
        render_soundfont(tmp_path / "out", programs=[120], progress=False)
    with pytest.raises(ValueError, match=r"programs \[-1, 128\] are not General MIDI programs "
                                         r"\(0 to 127\)"):
        render_soundfont(tmp_path / "out", programs=[0, 128, -1], progress=False)
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "train.h5").write_bytes(b"")
    with pytest.raises(ValueError, match=r"store: is a store \(it holds train.h5\); render the "
                                         r"notes into a folder of their own"):
        render_soundfont(tmp_path / "store", programs=[0], progress=False)
    (tmp_path / "filed").mkdir()
    (tmp_path / "filed" / "valid").write_bytes(b"")
    with pytest.raises(ValueError, match=r"filed/valid: is a file, where the valid split's "
                                         r"folder goes"):
        render_soundfont(tmp_path / "filed", programs=[0], progress=False)
    with pytest.raises(ValueError, match="velocities"):
        RenderOptions(velocities=(0,))
    with pytest.raises(ValueError, match=r"velocities must differ .*, got \(100, 100\)"):
        RenderOptions(velocities=(100, 100))  # rendered twice, into one file
    for rate in (40, 0, 16000.0, True, 10**6):
        with pytest.raises(ValueError, match=r"sample_rate must be a whole number of Hz from "
                                             r"1000 to 768,000, got "):
            RenderOptions(sample_rate=rate)
    assert default_soundfont().name == "TimGM6mb.sf2"


def test_a_folder_that_cannot_be_written_is_one_error_and_left_as_it_was(tmp_path, monkeypatch):
    import errno
    import featurestore.files

    def read_only(*args, **kwargs):  # as on a read-only file system, which root meets too
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(featurestore.files.tempfile, "TemporaryFile", read_only)
    (tmp_path / "there").mkdir()
    for out in (tmp_path / "there", tmp_path / "new"):
        with pytest.raises(ValueError, match=fr"^{out}/.rendering: cannot be written \(Read-only "
                                             fr"file system in {out}\)$"):
            render_soundfont(out, options=OPTIONS, programs=[0], progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["there"] and not any(
        (tmp_path / "there").iterdir())


def test_a_folder_named_like_a_soundfont_is_an_out_folder_where_it_is_there(tmp_path, capsys):
    from analysis.cli import main
    out = tmp_path / "notes.sf2"
    out.mkdir()  # made first: what the refusal of OUT alone says to do
    assert main(["render", str(out), "--programs", "0", "40", "73", "--pitch-step", "40",
                 "--velocities", "100", "--fractions", "1", "0", "0", "-q"]) == 0
    written = capsys.readouterr()
    notes = len(read_split(out / "train")[0])
    assert written.out == f"train: {notes} notes of 3 instruments -> {out / 'train'}\n"
    assert "notes of" not in written.err  # said once, as the result


def test_silent_notes_and_programs_without_a_preset_are_left_out(tmp_path, monkeypatch, caplog):
    options = RenderOptions(pitch_step=12, velocities=(100,), duration=1.0, hold=0.75,
                            fractions=(1, 0, 0))
    # TimGM6mb's whistle (program 78) has no sample above key 80: those keys render silent
    render_soundfont(tmp_path / "whistle", options=options, programs=[78], progress=False)
    usable, _ = read_split(tmp_path / "whistle" / "train")
    assert sorted(e.pitch for e, _ in usable) == [60, 72]
    assert "2 notes came out silent" in caplog.text
    import tinysoundfont
    has_preset = tinysoundfont.Synth.sfpreset_name
    monkeypatch.setattr(tinysoundfont.Synth, "sfpreset_name", lambda self, sfid, bank, preset:
                        None if preset == 41 else has_preset(self, sfid, bank, preset))
    counts = render_soundfont(tmp_path / "partial", options=options, programs=[40, 41],
                              progress=False)
    usable, _ = read_split(tmp_path / "partial" / "train")
    assert {e.instrument % 1000 for e, _ in usable} == {40} and counts == {"train": len(usable)}
    assert "no preset for 1 GM program (e.g. 41): left out" in caplog.text
    with pytest.raises(ValueError, match=r"has no preset in bank 0 for any GM program asked for "
                                         r"\(1 program, e.g. 41\)"):
        render_soundfont(tmp_path / "none", options=options, programs=[41], progress=False)


@pytest.mark.full  # Debian's sf3convert
def test_renders_sf3_soundfonts_like_their_sf2(tmp_path):
    """MuseScore's banks come as SF3 (Vorbis-compressed samples): the same notes, lossy."""
    import shutil
    import subprocess

    import numpy as np
    import soundfile as sf
    if shutil.which("sf3convert") is None:
        raise AssertionError("this test needs Debian's sf3convert (make test installs it)")
    sf3 = tmp_path / "tim.sf3"
    subprocess.run(["sf3convert", "-z", str(default_soundfont()), str(sf3)], check=True,
                   capture_output=True, timeout=120)
    data = sf3.read_bytes()
    at = data.index(b"ifil") + 8  # the version chunk: major 3 = Vorbis-compressed samples
    assert int.from_bytes(data[at:at + 2], "little") == 3
    options = RenderOptions(pitch_step=24, velocities=(100,), duration=1.0, hold=0.75,
                            fractions=(1, 0, 0))
    for name, soundfont in (("sf2", default_soundfont()), ("sf3", sf3)):
        render_soundfont(tmp_path / name, soundfont, options=options, programs=[0, 73], tag="tim",
                         progress=False)
    wavs = sorted(p.name for p in (tmp_path / "sf2" / "train" / "audio").iterdir())
    assert wavs and wavs == sorted(p.name for p in (tmp_path / "sf3" / "train" / "audio")
                                   .iterdir())
    for wav in wavs:
        a = sf.read(tmp_path / "sf2" / "train" / "audio" / wav)[0]
        b = sf.read(tmp_path / "sf3" / "train" / "audio" / wav)[0]
        assert np.corrcoef(a, b)[0, 1] > 0.98, wav  # the same recording, through Vorbis


def test_the_demo_removes_only_what_a_killed_render_leaves_and_refuses_other_files(tmp_path):
    from analysis.demo import _clear_killed_render
    from featurestore.errors import InputError
    synth = tmp_path / "notes" / "synth"
    (synth / "pads").mkdir(parents=True)
    (synth / "pads" / "mypad.wav").write_bytes(b"x")
    (synth / "README.md").write_text("mine")
    with pytest.raises(InputError, match=r"synth/README\.md: is not the demo's \(it renders its "
                                         r"notes into .*synth\); give the demo another folder"):
        _clear_killed_render(synth)  # it had removed the folder, and these with it
    assert (synth / "pads" / "mypad.wav").is_file() and (synth / "README.md").is_file()
    killed = tmp_path / "killed"  # a render killed as it moved its splits in
    (killed / "train" / "audio").mkdir(parents=True)
    (killed / "train" / "audio" / "a.wav").write_bytes(b"x")
    (killed / "train" / "examples.json").write_text("{}")
    (killed / ".rendering" / "valid" / "audio").mkdir(parents=True)
    _clear_killed_render(killed)
    assert killed.is_dir() and not list(killed.iterdir())
    (killed / "train" / "audio").mkdir(parents=True)
    (killed / "train" / "audio" / "notes.txt").write_text("mine")  # not a rendered note
    with pytest.raises(InputError, match="train: is not the demo's"):
        _clear_killed_render(killed)
    (tmp_path / "link").symlink_to(killed)
    with pytest.raises(InputError, match="link: is a link or a file, where the demo renders"):
        _clear_killed_render(tmp_path / "link")
    assert (killed / "train" / "audio" / "notes.txt").is_file()
