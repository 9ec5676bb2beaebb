"""``timbremap demo`` end to end, at a size that runs in a minute."""
import dataclasses
import shutil

import h5py
import pytest

from analysis.demo import DemoOptions, run_demo

pytestmark = pytest.mark.full

TINY = DemoOptions(pitch_step=24, velocities=(100,), synth_per_family=3, synth_pitch_step=24,
                   budget_minutes=0.2, perplexity=5)


def test_a_tiny_demo_trains_on_both_kinds_and_scores_each(tmp_path):
    report = run_demo(tmp_path / "demo", TINY, progress=False)
    steps = dict((name, summary) for name, _, summary in report.steps)
    assert list(steps) == ["render", "build", "train", "evaluate", "embed", "tsne", "plot",
                           "map"]
    assert "TimGM6mb: train" in steps["render"] and "synthesised: train" in steps["render"]
    assert "(timgm6mb " in steps["evaluate"] and "; synth " in steps["evaluate"]
    assert "; stopped: " in steps["train"]  # why training ended
    with h5py.File(tmp_path / "demo" / "store" / "test.h5", "r") as f:
        folders = [name.rsplit("/", 1)[-1] for name in f["source_folder"].attrs["names"]]
        assert folders == ["timgm6mb", "synth"] and set(f["source_folder"][:]) == {0, 1}
        sources = set(f["instrument_str"].asstr()[:])
    assert any("_dexed" in s for s in sources) and any("_faust" in s for s in sources)
    assert (tmp_path / "demo" / "map" / "index.html").is_file()
    assert (tmp_path / "demo" / "map.png").is_file()
    notes = tmp_path / "demo" / "notes"
    assert [folder for folder, _, _ in report.notes] == [notes / "timgm6mb", notes / "synth"]
    wavs = sorted(notes.rglob("*.wav"))
    assert sum(n for _, n, _ in report.notes) == len(wavs) + 6  # and an examples.json a split
    assert sum(b for _, _, b in report.notes) > sum(w.stat().st_size for w in wavs) > 0
    assert tmp_path / "demo" / "store" / "train.h5" in report.files
    assert not any(notes in path.parents for path in report.files)
    assert report.size == sum(p.stat().st_size for p in (tmp_path / "demo").rglob("*")
                               if p.is_file())
    with pytest.raises(ValueError, match=r"model: holds a model trained otherwise than this "
                                         r"demo's \(seed 0; the demo's: seed 1\); run the demo "
                                         r"into another folder"):
        run_demo(tmp_path / "demo", dataclasses.replace(TINY, seed=1), progress=False)
    again = run_demo(tmp_path / "demo", TINY, progress=False)  # finished steps are kept
    assert dict((n, s) for n, _, s in again.steps)["render"] == "TimGM6mb kept; synthesised kept"
    shutil.rmtree(notes / "synth" / "test")  # a render killed as it moved its splits in
    again = dict((n, s) for n, _, s in run_demo(tmp_path / "demo", TINY, progress=False).steps)
    assert again["render"].startswith("TimGM6mb kept; synthesised: train ")  # rendered again
    assert sorted(p.name for p in (notes / "synth").iterdir()) == ["test", "train", "valid"]


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_a_seed_out_of_range_is_refused_before_anything_is_rendered(tmp_path, seed):
    from featurestore.errors import InputError
    with pytest.raises(InputError, match="seed must be an integer in 0..2"):
        run_demo(tmp_path / "demo", DemoOptions(seed=seed), progress=False)
    assert not (tmp_path / "demo").exists()


def test_a_foreign_map_page_is_refused_before_anything_is_rendered(tmp_path):
    from featurestore.errors import InputError
    (tmp_path / "demo" / "map").mkdir(parents=True)
    (tmp_path / "demo" / "map" / "index.html").write_text("<html>mine</html>")
    with pytest.raises(InputError, match="index.html: is there already and is no map of "
                                         "timbremap's"):
        run_demo(tmp_path / "demo", TINY, progress=False)  # it had come after the training
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["map"]


def test_the_packages_the_demo_lacks_are_named_together(tmp_path, monkeypatch):
    import featurestore.synth as synth
    from featurestore.errors import NeedsPackage
    monkeypatch.setattr(synth, "available_engines", lambda: [])
    monkeypatch.setattr("analysis.demo.find_spec", lambda name: None)  # no tinysoundfont
    with pytest.raises(NeedsPackage, match=r"it needs tinysoundfont \(pip install --no-deps "
                       r"'tinysoundfont>=0.3'\) and the synthesis engines \(pip install "
                       r"'dexed-py.*\(timbremap's synth extra\)\)$"):
        run_demo(tmp_path / "demo", TINY, progress=False)  # one had been said after the other
    assert not (tmp_path / "demo").exists()
    for split in ("train", "valid", "test"):  # sampled notes rendered before: kept
        (tmp_path / "demo" / "notes" / "timgm6mb" / split).mkdir(parents=True)
        (tmp_path / "demo" / "notes" / "timgm6mb" / split / "examples.json").write_text("{}")
    with pytest.raises(NeedsPackage, match=r"it needs the synthesis engines \(pip install "
                       r"'dexed-py[^)]*\(timbremap's synth extra\)\)$"):
        run_demo(tmp_path / "demo", TINY, progress=False)  # not tinysoundfont, not needed
