"""The benchmarks as a user runs them: counts checked before any work, the README's commands
run, and a small run of scale.py's store gives a classifier every family."""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.arguments import positive_int
from featurestore.nsynth import FAMILIES
from helpers import load_benchmark, make_tone_split

REPO = Path(__file__).resolve().parents[1]


def test_a_count_is_a_whole_number_of_at_least_one():
    assert positive_int("3") == 3
    for text, message in (("0", "must be at least 1, got 0"), ("-2", "at least 1, got -2"),
                          ("x", "'x' is not a whole number"), ("2.5", "not a whole number")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            positive_int(text)


@pytest.mark.parametrize("argv, message", [
    (["extract.py", "--n", "0"], "argument --n: must be at least 1, got 0"),
    (["extract.py", "--n", "30"], "--n: at least 4 * 32 notes, four of the build's batches"),
    (["tsne.py", "--n", "20"], "--n above 3 times it, got 30 and 20"),
    (["tsne.py", "--sizes", "100", "5"], "--sizes must be at least 16 points"),
    (["loader.py", "--batches", "x"], "argument --batches: 'x' is not a whole number"),
    (["faults.py", "--notes", "8", "4", "4"], "a test split of 4 notes is too few for tsne"),
    (["nearest.py", "missing.h5", "other.h5"], "missing.h5: no such split file"),
    (["adabn.py", "--form", "synth-fm"], "'synth-fm' names no form of the protocol"),
    (["loader.py", "--store", "{split}"], "--batch-size 64: more than the 11 notes read of"),
    (["adabn.py", "--form", "synth-8each"], "'synth-8each' names no form"),  # synth's own count
    (["adabn.py", "--form", "soundfonts-4each"], "'soundfonts-4each' names no form")])
def test_options_that_cannot_make_a_run_are_one_line_before_any_work(argv, message, tmp_path,
                                                                    request):
    import inspect
    from featurestore.build import build_store
    batch = inspect.signature(build_store).parameters["batch_size"].default
    message = message.replace("4 * 32", str(4 * batch))  # the build's batch, whatever it is
    if "{split}" in argv:  # a split of 11 notes
        split = request.getfixturevalue("tone_store") / "test.h5"
        argv = [str(split) if a == "{split}" else a for a in argv]
        tmp_path = tmp_path / "run"
        tmp_path.mkdir()
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / argv[0]), *argv[1:]],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not list(tmp_path.iterdir())


def test_a_small_scale_store_holds_every_family(tmp_path):
    scale = load_benchmark("scale")
    rendered = tmp_path / "rendered"
    make_tone_split(rendered / "train", 33, seed=0)  # in name order: bass's notes first
    root = scale.linked_root(rendered, tmp_path / "root", 11)
    examples = json.loads((root / "train" / "examples.json").read_text())
    assert sorted(e["instrument_family_str"] for e in examples.values()) == sorted(FAMILIES)


@pytest.mark.full  # training.data imports keras
def test_the_readme_s_loader_command_reads_cold_too(tone_store, tmp_path):
    split = tone_store / "train.h5"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "loader.py"), "--store",
                             str(split), "--batches", "2", "--batch-size", "4", "--cold",
                             str(split)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| model-ready batches, 2 threads |" in result.stdout
    assert f"rerun: python benchmarks/loader.py --store {split} --notes 3000 --batches 2 " \
           f"--batch-size 4 --threads 2 --cold {split}" in result.stdout


def test_trainspeed_s_checkout_of_a_revision_leaves_no_worktree_behind(tmp_path):
    trainspeed = load_benchmark("trainspeed")
    listed = ["git", "-C", str(REPO), "worktree", "list", "--porcelain"]
    with trainspeed.checkout("HEAD", tmp_path) as path:
        assert (path / "featurestore" / "__init__.py").is_file()
        assert str(path) in subprocess.run(listed, capture_output=True, text=True).stdout
    assert not path.exists()
    assert str(path) not in subprocess.run(listed, capture_output=True, text=True).stdout
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), "HEAD"],
                   check=True, capture_output=True)  # what a killed run leaves
    with trainspeed.checkout("HEAD", tmp_path) as again:  # git had refused the folder
        assert again == path and (path / "featurestore" / "__init__.py").is_file()
    assert not path.exists()


def test_the_small_stores_are_their_classes_and_groups_and_a_bad_count_is_one_line(tmp_path):
    smallstores = load_benchmark("smallstores")
    options = smallstores.make_notes("imbalanced", tmp_path / "imbalanced")
    counts = {d.name: len(list(d.glob("*.wav"))) for d in (tmp_path / "imbalanced").iterdir()}
    assert counts == {"wind": 150, "rain": 75, "crackle": 30, "hiss": 15, "engine": 8, "buzz": 5}
    assert options == ["--group-by", r"^s(\d+)_"]  # each clip its own session here
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "smallstores.py"),
                             "--budget-minutes", "0"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2 and "--budget-minutes: must be at least 1" in result.stderr
