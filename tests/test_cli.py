import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis.cli import main
from helpers import relabel_store

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ["render", "build", "inspect"]


def run(*args):
    return subprocess.run([sys.executable, "-m", "analysis.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert command in capsys.readouterr().out


def test_demo_ends_with_its_steps_its_files_and_the_room_they_take(tmp_path, monkeypatch,
                                                                   capsys):
    import analysis.demo
    out = tmp_path / "demo"

    def finished(out_dir, options, progress):
        return analysis.demo.DemoReport(
            Path(out_dir), steps=[("render", 30.0, "rendered"), ("train", 300.0, "trained")],
            notes=[(out / "notes" / "timgm6mb", 2866, 377 * 2**20)],
            files=[out / "store" / "train.h5"], size=3 * 2**30)
    monkeypatch.setattr(analysis.demo, "run_demo", finished)
    (out / "store").mkdir(parents=True)
    (out / "store" / "train.h5").write_bytes(b"\0" * 3 * 2**20)
    assert main(["demo", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [
        "  render      30.0 s  rendered", "  train      300.0 s  trained",
        "  total      330.0 s", "files (3.0 GiB in all):",
        f"  {out}/notes/timgm6mb/  (2,866 files, 377.0 MiB)",
        f"  {out}/store/train.h5  (3.0 MiB)",
        f"open {out}/map/index.html in a browser to explore and listen"]


def test_every_command_has_its_help_and_a_builder(capsys):
    from analysis import cli
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    listed = capsys.readouterr().out
    assert exit_.value.code == 0
    for command in cli.COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        out = capsys.readouterr().out
        assert exit_.value.code == 0, command
        assert out.startswith(f"usage: timbremap {command} ") and "--quiet" in out, command
    commands = [line.split()[0] for line in listed.splitlines() if line.startswith("    ")]
    assert commands == list(cli.COMMANDS)  # each with its function, in the same order

def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("timbremap ")


def test_build_does_not_import_tensorflow(tone_root, tmp_path):
    code = ("import sys; from analysis.cli import main; "
            f"main(['build', r'{tone_root}', r'{tmp_path / 's'}', '--jobs', '1', '-q']); "
            "assert 'tensorflow' not in sys.modules and 'librosa' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith(('tensorflow', 'librosa')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_importing_a_module_does_not_import_keras():
    """Keras (and TensorFlow with it) loads when a model is built or read, not on import."""
    modules = sorted(f"{p.parent.name}.{p.stem}" for folder in ("featurestore", "analysis")
                     for p in (REPO / folder).glob("[!_]*.py"))
    modules.append("training.modeldir")  # what a stopped train says, Keras half imported
    code = (f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
            "assert 'keras' not in sys.modules, 'keras imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_build_and_inspect(tone_root, tmp_path):
    out = tmp_path / "store"
    result = run("build", tone_root, out, "--jobs", "2", "-q")
    assert result.returncode == 0, result.stderr
    assert "train" in result.stdout and "KiB/note" in result.stdout
    result = run("inspect", out)
    assert result.returncode == 0, result.stderr
    for text in ("== train", "== valid", "== test", "spectra   float16 (22, 251, 513)",
                 "bass 2", "skipped   0", "n_fft=1024"):
        assert text in result.stdout, text
    assert "n_mels" not in result.stdout  # mel bands do not shape an STFT store
    assert "also" not in result.stdout
    assert "inputs    layout=nsynth" in result.stdout  # NSynth's splits are folders, never
    assert "fraction" not in result.stdout             # drawn: no shares of drawn splits
    with h5py.File(out / "test.h5", "a") as f:  # whatever else a split holds is shown too
        f["my_scores"] = np.zeros((3, 4), np.float32)
    result = run("inspect", out)
    assert "also      my_scores float32 (3, 4)" in result.stdout, result.stdout


def test_a_stopped_demo_says_that_the_same_command_goes_on(tmp_path, monkeypatch, caplog):
    import analysis.demo
    from analysis.cli import cmd_demo
    from analysis.options import make_parser

    def stopped(out, options, progress):
        raise KeyboardInterrupt
    monkeypatch.setattr(analysis.demo, "run_demo", stopped)
    with pytest.raises(KeyboardInterrupt):  # main then says "interrupted" and exits 130
        cmd_demo(make_parser().parse_args(["demo", str(tmp_path / "demo")]))
    assert f"{tmp_path / 'demo'}: the same command goes on: it keeps the notes, store and " \
           f"model made, and a stopped training resumes" in caplog.text


def test_build_of_some_splits_builds_those_alone(tone_root, tmp_path):
    out = tmp_path / "store"
    result = run("build", tone_root, out, "--split", "train", "test", "-q")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.h5")) == ["test.h5", "train.h5"]
    assert "no valid split" not in result.stderr  # chosen: valid may come later
    shutil.copytree(tone_root, tmp_path / "notes", ignore=shutil.ignore_patterns("valid"))
    result = run("build", tmp_path / "notes", tmp_path / "other", "--split", "valid")
    assert result.returncode == 1 and "no split valid (found train, test)" in result.stderr
    result = run("build", tmp_path / "notes", tmp_path / "other", "-q")  # every split it has
    assert result.returncode == 0 and f"{tmp_path / 'other'}: no valid split" in result.stderr


def test_build_and_inspect_point_to_every_skipped_input(tone_root, tmp_path):
    import json
    import shutil
    root = tmp_path / "notes"
    shutil.copytree(tone_root, root)
    examples = json.loads((root / "valid" / "examples.json").read_text())
    entry = next(iter(examples.values()))
    examples.update({f"gone_{k:02d}": {**entry, "note_str": f"gone_{k:02d}"} for k in range(12)})
    (root / "valid" / "examples.json").write_text(json.dumps(examples))
    import soundfile as sf
    stereo = sorted((root / "valid" / "audio").glob("*.wav"))[:2]  # adjusted: downmixed
    for wav in stereo:
        y, sr = sf.read(wav, dtype="float32")
        sf.write(wav, np.stack([y, y], axis=1), sr)
    result = run("build", root, tmp_path / "store", "--jobs", "1", "-q")
    assert result.returncode == 0, result.stderr
    assert "... 7 more skipped in valid (timbremap inspect --all-skipped lists them)" \
        in result.stdout
    shown = run("inspect", tmp_path / "store").stdout
    assert shown.count("    gone_") == 10 and "... and 2 more (--all-skipped lists them)" in shown
    every = run("inspect", tmp_path / "store", "--all-skipped").stdout
    assert [line.split(":")[0].strip() for line in every.splitlines() if "gone_" in line] == \
        [f"gone_{k:02d}" for k in range(12)] and "more" not in every
    assert "; --all-adjusted lists them)" in shown
    every = run("inspect", tmp_path / "store", "--all-adjusted").stdout
    assert [line.split(":")[0].strip() for line in every.splitlines()
            if line.startswith("    ") and "downmixed" in line] == [w.stem for w in stereo]


def test_a_store_folder_that_cannot_be_listed_is_said_to_be_one(tmp_path, monkeypatch):
    import errno
    import featurestore.store
    from featurestore.store import StoreError, store_splits

    def denied(path):  # as for a folder of mode 300 (root is not denied: CI runs as root)
        raise PermissionError(errno.EACCES, "Permission denied", str(path))
    monkeypatch.setattr(featurestore.store.os, "scandir", denied)
    with pytest.raises(StoreError, match=r"the store folder cannot be read \(Permission denied"):
        store_splits(tmp_path)  # a glob of it had found no split file, without a word


@pytest.mark.parametrize("args, message", [
    (["build", "{tmp}/nowhere", "{tmp}/out"], "nowhere: no such folder"),
    (["build", "{tmp}", "{tmp}/out"], "no split folder"),
    (["build", "{tmp}/file", "{tmp}/out"], "file: not a folder"),
    (["inspect", "{tmp}/nowhere"], "no such store folder"),
    (["inspect", "{tmp}/file"], "file: is a file, not a store"),
    (["inspect", "{tmp}/model/model.keras"], "model.keras: is a file, not a store"),
    (["inspect", "{tmp}/half/train.h5.partial"], "train.h5.partial: is a file, not a store"),
    (["inspect", "{tmp}/store/test.h5"], "test.h5: is a split file, not a store: give the "
                                         "store, its folder {tmp}/store"),
    (["plot", "{tmp}/nowhere", "{tmp}/x.png"], "nowhere: no such store folder"),
    (["map", "{tmp}/nowhere", "{tmp}/map"], "nowhere: no such store folder"),
    (["map", "{tmp}", "{tmp}/file"], "file: is a file; the map is written into a folder"),
    (["map", "{tmp}", "{tmp}/file/sub"], "file: is a file, so {tmp}/file/sub cannot be a folder"),
    (["plot", "{tmp}", "{tmp}/file/x.png"], "file: is a file, so {tmp}/file cannot be a folder"),
    (["plot", "{tmp}", "{tmp}/dangling/x.png"], "dangling: is a link to nothing (its target is "
                                                "missing, or it is a loop)\n"),
    (["plot", "{tmp}", "{tmp}/dangling/in/x.png"], "dangling: is a link to nothing (its target "
     "is missing, or it is a loop), so {tmp}/dangling/in cannot be a folder"),
    (["render", "{tmp}/dangling/in"], "dangling: is a link to nothing (its target is missing, or "
     "it is a loop), so {tmp}/dangling/in cannot be a folder"),  # mkdir: "File exists"
    (["build", "{tmp}/loop", "{tmp}/out"], "loop: no such folder"),  # not resolve()'s error
    (["render", "{tmp}/loop"], "loop: is a link to nothing (its target is missing, or it is a "
                               "loop)\n"),
    (["evaluate", "{tmp}", "{tmp}/m", "--confusion", "{tmp}/file/c.png"],
     "file: is a file, so {tmp}/file cannot be a folder"),  # before the scoring
    (["plot", "s3://bucket/store", "{tmp}/x.png"], "plot needs a local store"),
    (["map", "s3://bucket/store", "{tmp}/map"], "map needs a local store"),
    (["tsne", "s3://bucket/store"], "s3://bucket/store: tsne needs a local store"),
    (["inspect", "{tmp}"], "no split files"),
    (["tsne", "{tmp}"], "no split files (*.h5) in this folder"),  # not "no 'test' split"
    (["plot", "{tmp}/half", "{tmp}/x.png"], "no split files (*.h5) in this folder; an "
                                            "unfinished build left train.h5.partial"),
    (["map", "{tmp}", "{tmp}/map"], "no split files (*.h5) in this folder"),  # not "no map"
    (["inspect", "{tmp}/half"], "an unfinished build left train.h5.partial"),
    (["inspect", "{tmp}/model"], "{tmp}/model: no split files (*.h5) in this folder; it holds "
                                 "model.keras: a model folder? Give the store folder"),
    (["render", "{tmp}/missing.sf2", "{tmp}/out"], "no such SoundFont"),
    (["render", "{tmp}/half", "{tmp}/out"], "half: is a folder, not a SoundFont"),
    (["render", "--synth", "{tmp}/out", "--tag", "x"], "--tag: for a SoundFont, not for "
                                                       "--synth"),
    (["render", "--synth", "{tmp}/out", "--tag", "x", "--programs", "1"],
     "--programs, --tag: each for a SoundFont, not for --synth"),
    (["render", "{tmp}/x.sf2", "{tmp}/out"], "no such SoundFont"),  # as given: SOUNDFONT OUT
    (["render", "{tmp}/Mytypo.sf2"], "Mytypo.sf2: no such SoundFont, and as OUT it would be a "
                                     "folder named as one; give SOUNDFONT OUT (to render into a "
                                     "folder of that name, make it first)"),
    (["render", "{tmp}/bank.SF3"], "bank.SF3: is a SoundFont file, not an OUT folder; give "
                                   "SOUNDFONT OUT"),
    (["demo", "{tmp}/file"], "file: is a file; the demo writes its notes, store, model and map "
                             "into a folder"),
    (["render", "{tmp}/out", "--per-family", "2"], "--per-family: only with --synth"),
    (["build", "{tmp}", "{tmp}/out", "--n-mels", "64"], "apply to --features mel only"),
    # a setting's error names the option typed, not its dataclass field
    (["train", "{tmp}", "{tmp}/m", "--workers", "0"], "error: --workers must be >= 1, got 0"),
    (["train", "{tmp}", "{tmp}/m", "--model", "tutorial", "--width", "8"], "--width: an option "
     "of the default model; the tutorial's network has its own layers"),
    (["train", "{tmp}", "{tmp}/m", "--batch-size", "7"], "--batch-size must be even with mixup"),
    (["train", "{tmp}", "{tmp}/m", "--resume", "--overwrite"], "error: --resume and --overwrite "
     "must not be given together (one continues a run, the other starts it again)"),
    (["train", "{tmp}", "{tmp}/m", "--block-mib", "8", "--buffer-mib", "4"],
     "--block-mib and --buffer-mib must be positive"),
    (["build", "{tmp}", "{tmp}/out", "--n-fft", "0"], "--n-fft must be a positive integer"),
    (["build", "{tmp}", "{tmp}/out", "--duration", "inf"], "--duration must be positive and "
                                                           "finite, got inf"),
    (["render", "{tmp}/out", "--pitch-step", "0"], "--pitch-step must be >= 1, got 0"),
    (["render", "{tmp}/file"], "file: is a file; render writes its notes into a folder"),
    (["render", "{tmp}/file/sub"], "file: is a file, so {tmp}/file/sub cannot be a folder"),
    (["render", "--synth", "{tmp}/file"], "file: is a file; render writes its notes into a "
                                          "folder"),
    (["render", "{tmp}/out", "--seed", "-1"], "--seed must be an integer in 0..2**32-1, got -1"),
    (["render", "{tmp}/out", "--fractions", "inf", "1", "1"], "--fractions must be 3 finite"),
    (["tsne", "{tmp}", "--seed", "4294967296"], "--seed must be an integer in 0..2**32-1, got "
                                                "4294967296"),
])
def test_errors_are_one_line_without_traceback(tmp_path, args, message):
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "bank.SF3").write_text("not a folder either")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "train.h5.partial").write_bytes(b"")
    (tmp_path / "half" / ".train.h5.partial").write_bytes(b"")  # embed's copy: not a build's
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.keras").write_bytes(b"")
    (tmp_path / "store").mkdir()
    with h5py.File(tmp_path / "store" / "test.h5", "w") as f:
        f["spectra"] = np.zeros((1, 2, 3), np.float16)
    result = run(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 1
    assert message.format(tmp=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_build_summary_of_a_split_with_no_notes_prints_no_nan(tmp_path):
    from featurestore.describe import build_summary
    from featurestore.finished import SplitReport
    (tmp_path / "test.h5").write_bytes(b"\0" * 2048)
    lines = build_summary([SplitReport("test", tmp_path / "test.h5", "built", n_skipped=1,
                                       skipped=[("../other/a.wav", "silent")]),
                           SplitReport("valid", tmp_path / "valid.h5", "kept")])
    assert "nan" not in "\n".join(lines)
    assert lines[1].split() == ["test", "built", "0", "1", "0", "0.0", "-", "0.0", "-"]
    assert lines[3] == "  skipped in test: ../other/a.wav: silent"  # not a path 'test/../'


def test_build_summary_under_add_counts_the_files_notes_and_those_added(tmp_path):
    from featurestore.describe import build_summary
    from featurestore.finished import SplitReport
    (tmp_path / "train.h5").write_bytes(b"\0" * 14 * 1024)
    lines = build_summary([SplitReport("train", tmp_path / "train.h5", "added", n_examples=4,
                                       seconds=1.0, held=10),
                           SplitReport("valid", tmp_path / "valid.h5", "kept", n_examples=3),
                           SplitReport("test", tmp_path / "test.h5", "updated", seconds=1.0,
                                       held=2)])
    assert lines[0].split()[:5] == ["split", "status", "notes", "added", "skipped"]
    assert lines[1].split() == ["train", "added", "14", "4", "0", "0", "1.0", "4", "0.0", "1.0"]
    assert lines[2].split()[:7] == ["valid", "kept", "3", "0", "0", "0", "0.0"]  # none added
    assert lines[3].split()[:8] == ["test", "updated", "2", "0", "0", "0", "1.0", "-"]


def test_a_split_of_no_notes_is_described_so(tmp_path):
    from featurestore.build import build_store
    from featurestore.describe import describe_store
    from tests.helpers import make_tone_root
    root = make_tone_root(tmp_path / "notes", 11, 0, 1)
    next((root / "test" / "audio").iterdir()).write_bytes(b"RIFF, but no wav")
    build_store(root, tmp_path / "store", jobs=1, progress=False)
    test = next(line for line in describe_store(tmp_path / "store") if line.startswith("== test"))
    assert test.endswith(" MiB, no notes)"), test


def test_a_lock_waits_out_a_probe_and_is_refused_while_held(tmp_path):
    import fcntl
    import os
    import threading
    from featurestore.errors import InputError
    from featurestore.files import PROBE_SECONDS, exclusive_lock, locked_by_another
    fd = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # what locked_by_another holds for an instant
    threading.Timer(PROBE_SECONDS / 4, os.close, [fd]).start()
    with exclusive_lock(tmp_path, lambda: AssertionError("refused for a probe")):
        assert locked_by_another(tmp_path) is True
        start = time.monotonic()
        with pytest.raises(InputError, match="held"):
            with exclusive_lock(tmp_path, lambda: InputError("held")):
                pass
        assert time.monotonic() - start >= PROBE_SECONDS
    assert locked_by_another(tmp_path) is False


def test_inspect_names_what_unfinished_writes_left_and_what_is_being_written(tone_store,
                                                                            tmp_path,
                                                                            monkeypatch):
    from featurestore import describe
    from featurestore.errors import InputError, StoreError
    from featurestore.files import exclusive_lock
    store = tmp_path / "store"
    shutil.copytree(tone_store, store)
    (store / "test.h5").rename(store / "test.h5.partial")  # a build killed as it wrote test
    shutil.copyfile(store / "valid.h5", store / ".valid.h5.partial")  # an embed killed

    def unfinished(**kwargs):
        lines = describe.describe_store(store, **kwargs)
        assert [line.split(":")[0] for line in lines if line.startswith("== ")] == [
            "== train", "== valid", "== unfinished", "== unfinished"]
        assert re.match(r"== unfinished: test.h5.partial \(\d+\.\d MiB\), ", lines[-2])
        assert re.match(r"== unfinished: .valid.h5.partial \(\d+\.\d MiB\), a copy of valid.h5 ",
                        lines[-1])
        return [line.split("), ", 1)[1] for line in lines[-2:]]

    build = ["left by a build that has not finished; run it again to resume it",
             "which a build is writing now"]
    copy = ["a copy of valid.h5 left when embed or tsne was stopped; the next embed or tsne of "
            "valid removes it", "a copy of valid.h5 that embed or tsne is writing results into now"]
    assert unfinished() == [build[0], copy[0]]
    with exclusive_lock(store, InputError):  # a build is running
        assert unfinished() == [build[1], copy[0]]
    with exclusive_lock(store / "valid.h5", InputError):  # an embed is running
        assert unfinished(unreadable={}) == [build[0], copy[1]]  # valid: 'written by another'
    monkeypatch.setattr(describe, "locked_by_another", lambda path: None)  # a file system
    assert unfinished() == [  # without locks
        "which a build is writing now, or left by a build that has not finished (no lock tells "
        "which here); run it again to resume it",
        "a copy of valid.h5 that embed or tsne is writing results into now, or left when embed "
        "or tsne was stopped (no lock tells which here); the next embed or tsne of valid removes "
        "it"]
    assert not any("unfinished" in line for line in describe.describe_store(tone_store))
    shutil.copyfile(store / "train.h5", store / "train.h5.partial")  # a killed --overwrite
    assert any(line.startswith("== unfinished: train.h5.partial") and line.endswith(
        "; run it again (with --overwrite or --add, as it was) to resume it, or remove it")
        for line in describe.describe_store(store))
    first = tmp_path / "first"  # a first build: no split finished yet
    first.mkdir()
    (first / "train.h5.partial").write_bytes(b"")
    with exclusive_lock(first, InputError), pytest.raises(
            StoreError, match=r"no split files \(\*.h5\) in this folder; a build is writing "
                              r"train.h5.partial now: wait for it to finish$"):
        describe.describe_store(first)


def test_an_os_error_naming_a_file_is_one_line_that_starts_with_it(tmp_path, monkeypatch,
                                                                    caplog):
    import errno
    import analysis.cli

    def read_only(args):  # as os.makedirs says it on a read-only mount
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "ro" / "m"))
    monkeypatch.setitem(analysis.cli.COMMANDS, "inspect", read_only)
    assert main(["inspect", str(tmp_path)]) == 1
    assert f"error: {tmp_path / 'ro' / 'm'}: Read-only file system\n" in caplog.text
    from analysis.output import error_line
    assert error_line(OSError(errno.ENOENT, "No such file or directory", "a", None, "b")) == \
        "a: No such file or directory (to b)"
    assert error_line(OSError("no file named")) == "no file named"


def test_a_json_array_is_written_an_object_a_line_and_closed_when_stopped(capsys):
    import json
    from analysis.output import write_json_array

    def stopped():
        yield {"path": "a.wav"}
        raise KeyboardInterrupt
    write_json_array(iter([{"a": 1}, {"b": 2}]))
    assert capsys.readouterr().out == '[{"a": 1}\n,{"b": 2}\n]\n'  # each as it comes
    with pytest.raises(KeyboardInterrupt):
        write_json_array(stopped())
    assert json.loads(capsys.readouterr().out) == [{"path": "a.wav"}]

    def failing():
        raise ValueError("no model here")
        yield
    with pytest.raises(ValueError):
        write_json_array(failing())
    assert capsys.readouterr().out == ""  # an error before any object: nothing printed
    write_json_array(iter(()))
    assert capsys.readouterr().out == "[]\n"


def test_only_an_error_whose_subject_is_options_is_named_by_them():
    from analysis.arguments import named_as_options
    args = argparse.Namespace(batch_size=7, block_mib=8, time_pool=None)
    assert named_as_options("batch_size must be even", args) == "--batch-size must be even"
    assert named_as_options("time_pool must be at most the 2 frames of a note, got 4", args) \
        == "--time-pool must be at most the 2 frames of a note, got 4 (--time-pool: left at " \
           "its default)"
    args.epochs = args.workers = None
    assert named_as_options("epochs must be given for the cosine schedule", args) == \
        "--epochs must be given for the cosine schedule"
    assert named_as_options("batch_size and workers and epochs must fit", args) == \
        "--batch-size, --workers and --epochs must fit (--workers and --epochs: left at their " \
        "defaults)"
    args.resume = True  # what is not given is the run's own
    assert named_as_options("time_pool must be at most 2, got 4", args) == \
        "--time-pool must be at most 2, got 4"
    for message in ("dropout and batch_size must be in [0, 1)",  # no --dropout option
                    "/data/batch_size must be a folder", "batch_size is odd"):
        assert named_as_options(message, args) == message


def test_a_path_whose_tilde_the_shell_left_is_refused_unless_such_a_folder_is_here(
        tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)
    home = os.path.expanduser("~")
    for args in (["inspect", "~/store"], ["train", "s", "~/model"], ["plot", "s", "~/m.png"],
                 ["build", "n", "--manifest", "~/set.csv", "s"]):
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code == 2
        assert f"~/{args[-1][2:] if args[-1].startswith('~') else 'set.csv'}: the shell did not " \
               f"expand '~', as it was quoted: leave it unquoted or write {home}/" in \
               capsys.readouterr().err
    assert not (tmp_path / "~").exists()  # nothing made
    (tmp_path / "~").mkdir()  # a folder of that name, meant: its path is taken as given
    assert main(["inspect", "~/store"]) == 1
    assert "~/store: no such store folder" in caplog.text


def test_build_options_shape_the_features_and_are_recorded(tone_root, tmp_path, caplog):
    from featurestore.params import FeatureParams
    from featurestore.schema import read_params
    assert main(["build", str(tone_root), str(tmp_path / "store"), "--duration", "1.5",
                 "--n-fft", "512", "--hop-length", "128", "--sample-rate", "8000", "-q"]) == 0
    assert "never heard" not in caplog.text
    assert main(["build", str(tone_root), str(tmp_path / "gaps"), "--n-fft", "256",
                 "--hop-length", "1024", "-q"]) == 0
    assert "the hop between frames (hop_length 1024) is longer than a frame (n_fft 256): 75 % " \
           "of each note's samples fall between its frames and are never heard" in caplog.text
    with h5py.File(tmp_path / "store" / "train.h5", "r") as f:
        params = read_params(f)
        assert params == FeatureParams(duration=1.5, n_fft=512, hop_length=128,
                                       sample_rate=8000)
        assert f["spectra"].shape[1:] == (1 + 12000 // 128, 257) == params.shape


def test_build_into_a_file_is_one_clear_line(tone_root, tmp_path):
    (tmp_path / "store").write_text("a file")
    result = run("build", tone_root, tmp_path / "store", "-q")
    assert result.returncode == 1 and "store: exists and is not a folder" in result.stderr


INTERRUPTED_BUILD = """
import sys
import featurestore.workers as w
from analysis.cli import main
extract = w.extract
def slow(*args):  # each batch 200 times over: the worker threads are mostly in the FFT
    for _ in range(200):
        result = extract(*args)
    return result
w.extract = slow
sys.exit(main(["build", sys.argv[1], sys.argv[2], "--jobs", "2", "--batch-size", "1", "-q"]))
"""


@pytest.mark.parametrize("sent, status, said", [
    (signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated"),
    (signal.SIGHUP, 129, "hung up (SIGHUP: its terminal closed)")])
def test_ctrl_c_or_sigterm_during_a_threaded_build_ends_it_and_it_resumes(
        sent, status, said, tone_root, tmp_path):
    out = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED_BUILD, str(tone_root), str(out)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a suite run in the background ignores SIGINT (under nohup,
                            # SIGHUP), and so would this
                            preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL)
                                                for s in (signal.SIGINT, signal.SIGHUP)])
    deadline = time.monotonic() + 120
    while not (out / "train.h5.journal").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # worker threads busy with notes (a split takes seconds)
    proc.send_signal(sent)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == status, stderr
    assert f"timbremap: {said}" in stderr and "terminate called" not in stderr
    assert f"{out}: the same command goes on from where it was stopped" in stderr
    assert run("build", tone_root, out, "-q").returncode == 0


def test_sigterm_before_the_command_runs_ends_it_and_the_handler_found_is_put_back(
        monkeypatch, capsys):
    import analysis.cli as cli
    def mine(signum, frame):
        raise AssertionError("not ours")
    before = signal.signal(signal.SIGTERM, mine)
    try:
        assert main(["inspect", "/nonexistent/store"]) == 1
        assert signal.getsignal(signal.SIGTERM) is mine

        def terminated(argv):  # SIGTERM while the options are parsed
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        monkeypatch.setattr(cli, "parse_args", terminated)
        assert main(["inspect", "s"]) == 143
        assert capsys.readouterr().err.endswith("timbremap: terminated\n")
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup leaves it
    try:
        def hung_up(argv):
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.2)
            raise SystemExit(2)  # the command ran on: SIGHUP stays set aside
        monkeypatch.setattr(cli, "parse_args", hung_up)
        with pytest.raises(SystemExit):
            main(["inspect", "s"])
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_keras_backend_that_is_not_installed_is_one_line(monkeypatch, tmp_path, caplog):
    import importlib.util
    from analysis.cli import main
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "jax" else find_spec(name, *args))
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert main(["evaluate", str(tmp_path), str(tmp_path)]) == 1  # Keras's traceback, before
    assert "error: KERAS_BACKEND=jax: jax is not installed (pip install 'jax[cpu]>=0.4.30' " \
           "(timbremap's jax extra))" in caplog.text


def test_the_backend_is_found_as_keras_finds_it(monkeypatch, tmp_path):
    from training.backend import requested
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert requested() == "tensorflow"
    (tmp_path / "keras.json").write_text('{"backend": "jax"}')
    assert requested() == "jax"  # Keras's own setting: it had been taken for tensorflow
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert requested() == "torch"


def test_keras_home_is_found_as_keras_finds_it(monkeypatch, tmp_path):
    """Path.expanduser raises where no home folder can be found: Keras's own rule never does."""
    from training.backend import keras_home
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert keras_home() == tmp_path / ".keras"
    monkeypatch.setenv("HOME", str(tmp_path / "none"))  # not writable: Keras's is in /tmp
    assert keras_home() == Path("/tmp/.keras")
    monkeypatch.setenv("KERAS_HOME", "~/k")
    assert keras_home() == tmp_path / "none" / "k"


def test_install_hints_name_the_packages_however_timbremap_was_installed(monkeypatch):
    """``pip install -e '.[synth]' in timbremap's folder`` was wrong for a wheel's or a
    non-editable install's user: the hint names the packages, from the installed metadata."""
    from importlib import metadata
    from featurestore.errors import install_hint
    requires = metadata.requires("timbremap")
    for extra in ("synth", "jax", "remote", "dask"):
        packages = [r.split(";")[0] for r in requires if f'extra == "{extra}"' in r]
        assert install_hint(extra) == ("pip install " + " ".join(f"'{p}'" for p in packages)
                                       + f" (timbremap's {extra} extra)")
    assert re.fullmatch(r"pip install 'tensorflow(-cpu)?>=[\d.]+'", install_hint(name="tensorflow"))
    monkeypatch.setattr(metadata, "requires", lambda name: ['jax>=1; extra == "jax"'])
    assert install_hint("synth") == "pip install -e '.[synth]' in timbremap's folder"  # stale
    monkeypatch.setattr(metadata, "requires", lambda name: (_ for _ in ()).throw(
        metadata.PackageNotFoundError(name)))  # a source tree never installed
    assert install_hint("jax") == "pip install -e '.[jax]' in timbremap's folder"
    assert install_hint(name="tensorflow") == "pip install -e . in timbremap's folder"
    monkeypatch.setattr(metadata, "requires", lambda name: ["not a requirement ((("])
    assert install_hint("jax") == "pip install -e '.[jax]' in timbremap's folder"  # no traceback


def test_a_tensorflow_that_cannot_be_imported_is_left_alone_under_another_backend(tmp_path):
    """Keras's set_random_seed skips a TensorFlow that fails to import; so does training."""
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text("raise ImportError('built for "
                                                         "another numpy')")
    code = ("from training.backend import import_tensorflow_quietly as quietly; "
            "quietly(any_backend=True); print('left alone')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    for backend, ok in (("jax", True), ("tensorflow", False)):  # its own backend: an error
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                              text=True, timeout=120, env={**env, "KERAS_BACKEND": backend})
        assert (done.returncode == 0 and done.stdout == "left alone\n") == ok, done.stderr
        assert ok or "built for another numpy" in done.stderr


def test_a_keras_backend_timbremap_does_not_run_on_is_one_line(monkeypatch, tmp_path, caplog):
    from analysis.cli import main
    monkeypatch.setenv("KERAS_BACKEND", "nonsense")
    assert main(["evaluate", str(tmp_path), str(tmp_path)]) == 1  # Keras's traceback, before
    assert "error: KERAS_BACKEND=nonsense: not one of Keras's backends (timbremap runs on " \
           "tensorflow, jax, torch; unset, tensorflow)" in caplog.text
    monkeypatch.setenv("KERAS_BACKEND", "numpy")  # fit: NotImplementedError, past config.json
    assert main(["train", str(tmp_path), str(tmp_path / "m")]) == 1
    assert "error: KERAS_BACKEND=numpy: a backend of Keras's that cannot train (timbremap runs " \
           "on tensorflow" in caplog.text and not (tmp_path / "m").exists()


def test_results_go_to_whatever_stdout_the_caller_gave(tone_store, tmp_path):
    """A closed stream, a full disk, a reader that stops, an encoding without a label's
    letters: results or one line naming stdout, never a traceback after the work."""
    store = tmp_path / "store"
    relabel_store(shutil.copytree(tone_store, store), [f"Fl\u00f6te {k}" for k in range(11)])
    full = subprocess.run(f"{sys.executable} -m analysis.cli inspect {store} >/dev/full",
                          shell=True, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert full.returncode == 1 and full.stderr == \
        "timbremap: error: stdout: cannot be written (No space left on device)\n"
    for asked in ("--version", "build --help"):  # argparse's own writes, which it leaves unsaid
        full = subprocess.run(f"{sys.executable} -m analysis.cli {asked} >/dev/full", shell=True,
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        assert (full.returncode, full.stderr) == (1, "timbremap: error: stdout: cannot be "
                                                     "written (No space left on device)\n")
    closed = subprocess.run(f"{sys.executable} -m analysis.cli inspect {store} 2>&- >&-",
                            shell=True, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert closed.returncode == 0  # as into /dev/null, where its stderr had stopped it
    ascii_out = subprocess.run([sys.executable, "-m", "analysis.cli", "inspect", store], cwd=REPO,
                               capture_output=True, timeout=120,
                               env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert ascii_out.returncode == 0 and b"Fl\\xf6te 0" in ascii_out.stdout, ascii_out.stderr
    gone = subprocess.Popen([sys.executable, "-m", "analysis.cli", "inspect", store], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    gone.stdout.close()  # as `| head -1` once it has its line
    assert gone.wait(timeout=120) == 141 and gone.stderr.read() == b""  # quietly, as SIGPIPE


def test_ctrl_c_while_tensorflow_loads_is_one_line(monkeypatch, tmp_path, capsys):
    import training.backend
    from analysis.cli import main

    def interrupted():
        raise KeyboardInterrupt
    monkeypatch.setattr(training.backend, "import_tensorflow_quietly", interrupted)
    for command in ("embed", "place"):  # they load it first: a 30-line traceback, before
        args = [command, str(tmp_path), str(tmp_path)] + (["x.wav"] if command == "place" else [])
        assert main(args) == 130
        assert capsys.readouterr().err == "timbremap: interrupted\n"


def test_a_bug_shows_its_traceback_and_an_expected_error_is_one_line(monkeypatch, tmp_path,
                                                                     caplog):
    import analysis.cli as cli
    from featurestore.errors import InputError

    def bug(args):
        raise KeyError("a bug")
    monkeypatch.setitem(cli.COMMANDS, "inspect", bug)
    with pytest.raises(KeyError, match="a bug"):  # not hidden behind a one-line message
        cli.main(["inspect", str(tmp_path)])

    def expected(args):
        raise InputError("x.h5: not what was expected")
    monkeypatch.setitem(cli.COMMANDS, "inspect", expected)
    assert cli.main(["inspect", str(tmp_path)]) == 1
    assert "error: x.h5: not what was expected" in caplog.text


def test_train_options_become_the_training_configuration():
    from analysis.arguments import train_config
    from analysis.options import make_parser
    from training.config import TrainConfig
    parser = make_parser()
    assert train_config(parser.parse_args(["train", "store", "model"])) == TrainConfig()
    config = train_config(parser.parse_args([
        "train", "store", "model", "--precision", "float32", "--workers", "4",
        "--budget-minutes", "0", "--deterministic", "--no-augment", "--batch-size", "7",
        "--time-pool", "2", "--width", "24", "--weight-decay", "0.05"]))
    assert (config.precision, config.workers, config.budget_minutes, config.deterministic,
            config.augment, config.batch_size) == ("float32", 4, None, True, False, 7)
    assert (config.time_pool, config.width, config.weight_decay) == (2, 24, 0.05)


def test_resume_takes_the_options_the_run_started_with_and_refuses_others():
    from analysis.arguments import given_settings, resume_conflicts, train_config
    from analysis.options import make_parser
    parser = make_parser()

    def args(*options):
        return parser.parse_args(["train", "store", "model", *options])
    started = train_config(args("--epochs", "6", "--batch-size", "32", "--no-augment"))
    assert resume_conflicts(given_settings(args()), started) == []  # the run's own settings
    assert resume_conflicts(given_settings(args("--epochs", "6", "--batch-size", "32",
                                                "--no-augment")), started) == []  # again
    assert resume_conflicts(given_settings(args("--epochs", "7", "--workers", "3")),
                            started) == ["--epochs"]  # how batches are read: taken anew
    assert resume_conflicts(given_settings(args("--loader", "block", "--budget-minutes", "0")),
                            started) == ["--loader"]  # another loader draws other batches
    # another value than the run's, though it is the default, is refused too
    assert resume_conflicts(given_settings(args("--batch-size", "64", "--model", "default")),
                            train_config(args("--batch-size", "32", "--model", "tutorial"))) \
        == ["--model", "--batch-size"]
    assert resume_conflicts(given_settings(args("--no-balance")), started) == ["--no-balance"]


def test_train_shows_no_progress_bar_where_stderr_is_not_a_terminal(monkeypatch, tmp_path,
                                                                    tone_store):
    import training.train
    from featurestore.errors import InputError
    seen = []

    def fit(*args, verbose, **options):  # as train() gives it to Keras
        seen.append(verbose)
        raise InputError("stopped here")
    monkeypatch.setattr(training.train, "_fit", fit)
    assert main(["train", str(tone_store), str(tmp_path / "a")]) == 1  # stderr: pytest's
    assert main(["train", str(tone_store), str(tmp_path / "b"), "-q"]) == 1
    with pytest.raises(InputError):  # from Python too
        training.train.train(tone_store, tmp_path / "c")
    assert seen == [2, 0, 2]  # a line an epoch, no bar; nothing


def test_option_defaults_come_from_the_functions_that_own_them(monkeypatch):
    import analysis.tsne
    import featurestore.build
    from analysis.options import make_parser

    def build_store(root, out, params=None, *, jobs=7, backend="threading", batch_size=5):
        pass

    def tsne_split(store, split="valid", *, source="spectra", method="sklearn",
                   perplexity=12.5, seed=3):
        pass
    monkeypatch.setattr(featurestore.build, "build_store", build_store)
    monkeypatch.setattr(analysis.tsne, "tsne_split", tsne_split)
    parser = make_parser()
    args = parser.parse_args(["build", "root", "out"])
    assert (args.jobs, args.backend, args.batch_size) == (7, "threading", 5)
    args = parser.parse_args(["tsne", "store"])
    assert (args.split, args.source, args.method, args.perplexity, args.seed) == (
        "valid", "spectra", "sklearn", 12.5, 3)
    assert parser.parse_args(["place", "store", "model", "a.wav"]).split is None  # place_files
    # chooses: the test split's map, or the only map (test_analysis.py)


def test_the_common_options_may_come_before_the_command(capsys):
    from analysis.options import parse_args
    for argv in (["-q", "-v", "inspect", "s"], ["--quiet", "inspect", "-v", "s"]):
        args = parse_args(argv)
        assert (args.command, str(args.store), args.quiet, args.verbose) == ("inspect", "s", 1, 1)
    with pytest.raises(SystemExit):
        parse_args(["-q", "inspect", "a", "b"])
    assert "timbremap inspect: error: unrecognized arguments: b\n" in capsys.readouterr().err
    args = parse_args(["render", "out", "--programs", "0", "1"])  # as the hint says
    assert (args.programs, str(args.out)) == ([0, 1], "out")


@pytest.mark.parametrize("args, message", [
    (["build", "notes", "--manifest", "m.csv", "store"],
     "timbremap build: error: unrecognized arguments: store (the positional arguments go "
     "together, all before the options or all after them)"),
    (["evaluate", "s", "m", "--split", "test", "valid"], "timbremap evaluate: error: "
     "unrecognized arguments: valid (--split takes one value)\n"),  # not: go together
    (["evaluate", "s", "m", "--split=test", "valid"], "evaluate: error: unrecognized "
     "arguments: valid (--split takes one value)\n"),
    (["evaluate", "s", "m", "--spl", "test", "valid"], "evaluate: error: unrecognized "
     "arguments: valid (--split takes one value)\n"),  # argparse's abbreviation
    (["evaluate", "s", "m", "--spl=test", "valid"], "arguments: valid (--split takes one "
     "value)\n"),
    (["predict", "m", "a.wav", "--top", "3", "b.wav"], "predict: error: unrecognized "
     "arguments: b.wav (the positional arguments go together"),  # FILES... takes any number
    (["inspect", "a", "b"], "timbremap inspect: error: unrecognized arguments: b\n"),
    (["inspect", "--all-skipped", "a", "b"], "inspect: error: unrecognized arguments: b\n"),
    (["build", "--bogus", "a", "b"], "timbremap build: error: unrecognized arguments: --bogus\n"),
    (["build"], "usage: timbremap build [options] (NOTES... | --manifest FILE.csv) STORE\n"
     "timbremap build: error: the following arguments are required: NOTES... STORE\n"),
    (["evaluate", "s", "m", "--split", "../s/test"], "evaluate: error: argument --split: invalid "
     "choice: '../s/test'"),
    (["embed", "--split", "test", "store", "model"], "embed: error: argument --split: invalid "
     "choice: 'store' (choose from 'train', 'valid', 'test') (--split takes every word up to "
     "the next option: give it after the positional arguments)\n"),
    (["render", "--programs", "0", "1", "out"], "render: error: argument --programs: invalid "
     "int value: 'out' (--programs takes every word"),
    (["render", "--seed", "x", "out"], "render: error: argument --seed: invalid int value: "
     "'x'\n"),  # one value: none taken from the positional arguments
    (["build", "notes", "s3://b/new"], "build: error: argument NOTES... STORE: s3://b/new: a URL "
     "where a local path is needed"),  # not a folder s3:/b/new here
    (["train", "s3://b/store", "s3://b/model"], "argument model_dir: s3://b/model: a URL where"),
    (["embed", "s3://b/store", "m", "--into", "s3://b/e"], "argument --into: s3://b/e: a URL"),
    (["predict", "s3://b/model", "a.wav"], "s3://b/model: a URL where a local path is needed "
     "(timbremap reads stores on object storage, with inspect, train, evaluate and embed; "
     "models, audio and what it writes are local files: copy a model or audio down"),
    (["build", "notes", ""], "build: error: argument NOTES... STORE: an empty path (an unset "
     "shell variable?)\n"),  # not a store in the current folder
    (["inspect", ""], "inspect: error: argument store: an empty path"),
    (["predict", "m", "a.wav", ""], "predict: error: argument files: an empty path"),
    (["plot", "store", ""], "plot: error: argument out: an empty path"),
])
def test_a_wrong_argument_is_named_with_the_command_s_usage(args, message, capsys):
    with pytest.raises(SystemExit) as exit:
        main(args)
    err = capsys.readouterr().err
    assert exit.value.code == 2 and f"usage: timbremap {args[0]} " in err and message in err, err


def test_train_refuses_batches_the_notes_cannot_fit_before_any_work(tone_store, tmp_path,
                                                                     caplog):
    from featurestore.params import FeatureParams
    model = tmp_path / "m"
    note = FeatureParams().note_bytes
    for args, message in [
            (["--batch-size", "100000000"], "error: --batch-size and --workers must keep the "
                                            "batches in memory within half of it ("),
            (["--batch-size", "100000000"], "GiB (--workers: left at its default)\n"),
            (["--batch-size", "100000000"], f"9 batches of 100000000 notes of {note / 1024:.0f} "
                                            f"KiB with 2 workers would take"),
            (["--time-pool", "99999999999999"], "--time-pool must be at most the 251 frames of a "
                                                "note, got 99999999999999"),
            (["--workers", "65"], "--workers must be at most 64, got 65"),
            (["--width", "100000"], "error: --width and --batch-size must keep training within "
                                    "the memory ("),
            (["--steps-per-epoch", "20000000", "--batch-size", "64"],  # 82 GB of draws
             "error: --steps-per-epoch and --batch-size must keep an epoch's draws in memory "
             "beside its batches, within half of it (")]:
        assert main(["train", str(tone_store), str(model), *args]) == 1
        assert message in caplog.text
        assert not model.exists()  # refused before the model folder is made
    from training.config import TrainConfig
    old = TrainConfig.from_dict({**TrainConfig().to_dict(), "workers": 100})  # a run's, read back
    old.check_fits(FeatureParams(), FeatureParams().shape, resumed=True)  # resumes as it ran



@pytest.mark.parametrize("error", [
    MemoryError(), type("ResourceExhaustedError", (Exception,), {})("OOM when allocating"),
    RuntimeError("RESOURCE_EXHAUSTED: out of memory while trying to allocate")])
def test_training_out_of_memory_is_one_line_saying_what_to_lower(tone_store, tmp_path, caplog,
                                                                 monkeypatch, error):
    import training.train

    def fit(*args, **kwargs):
        raise error
    monkeypatch.setattr(training.train, "_fit", fit)  # as TensorFlow, PyTorch or XLA say it
    assert main(["train", str(tone_store), str(tmp_path / "m")]) == 1
    assert "error: out of memory while training (" in caplog.text
    assert "start again (--overwrite) with a smaller batch size, or width of the default " \
           "model" in caplog.text
    monkeypatch.setattr(training.train, "_fit", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # anything else is no user's mistake: a traceback
        main(["train", str(tone_store), str(tmp_path / "m2")])
