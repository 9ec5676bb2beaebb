import html
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from unittest import mock

import h5py
import numpy as np
import pytest
import soundfile as sf

from analysis.embed import embed_store
from analysis.mapview import write_map
from analysis.place import place_files
from analysis.placements import read_placed
from analysis.plot import plot_map
from analysis.tsne import _Converged, knn_accuracy, tsne_split
from featurestore.writeback import write_result
from featurestore.build import build_store
from featurestore.errors import BuildError, InputError
from featurestore.params import FeatureParams
from featurestore.store import StoreError
from training.config import TrainConfig
from training.modeldir import ModelError
from training.train import train

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.full
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def mapped(tone_store, tmp_path_factory):
    """A copy of the tone store with a quick model, embeddings and t-SNE maps. The model pools
    2 frames: after its 12 steps, one pooling 4 maps a copy of a note next to a tone a
    semitone away, not next to its original, which the tests of `place` look for."""
    store = tmp_path_factory.mktemp("mapped") / "store"
    shutil.copytree(tone_store, store)
    model = store.parent / "model"
    train(store, model, TrainConfig(epochs=2, steps_per_epoch=6, batch_size=8, width=8,
                                    time_pool=2, budget_minutes=None, seed=3,
                                    deterministic=True), verbose=0)
    embed_store(store, model, progress=False)
    for split in ("train", "test"):
        tsne_split(store, split, perplexity=3, seed=0)
    return store, model


def build_only(path):
    with h5py.File(path) as f:
        return {"spectra": f["spectra"][:].tobytes(), "labels": f["labels"][:].tobytes(),
                "names": f["names"].asstr()[:].tolist()}, \
            dict(f["spectra"].attrs), dict(f.attrs)


def test_embed_writes_shapes_and_attrs(mapped, tone_store):
    store, model = mapped
    for split, n in (("train", 22), ("valid", 11), ("test", 11)):
        with h5py.File(store / f"{split}.h5") as f:
            assert f["embeddings"].shape == (n, 128) and f["embeddings"].dtype == np.float32
            assert f["probabilities"].shape == (n, 11)
            np.testing.assert_allclose(f["probabilities"][:].sum(1), 1, rtol=1e-5)
            attrs = f["embeddings"].attrs
            assert attrs["model"] == str(model.resolve()) and attrs["layer"] == "embedding"
            assert len(attrs["model_sha1"]) == 40
            assert f["probabilities"].attrs["layer"] == "family"
            assert not [k for k in f if k.startswith(".partial")]
        before, after = build_only(tone_store / f"{split}.h5"), build_only(store / f"{split}.h5")
        assert before[0] == after[0]
        assert all(np.array_equal(before[1][k], after[1][k]) for k in before[1])


def test_rerun_replaces_and_leaves_the_build_alone(mapped):
    store, model = mapped
    before = build_only(store / "test.h5")
    with h5py.File(store / "test.h5") as f:
        old = f["embeddings"][:]
    embed_store(store, model, ["test"], progress=False)
    tsne_split(store, "test", perplexity=3, seed=0)
    with h5py.File(store / "test.h5") as f:
        np.testing.assert_array_equal(f["embeddings"][:], old)
        assert sorted(f) == sorted(["adjusted", "embeddings", "file", "group", "instrument",
                                    "instrument_str", "labels", "names", "offset", "pitch",
                                    "probabilities", "qualities",
                                    "skipped", "source", "source_folder", "spectra", "tsne",
                                    "velocity"])
    after = build_only(store / "test.h5")
    assert before[0] == after[0]


def test_placements_come_batch_by_batch_and_a_stop_keeps_those_placed(mapped, tone_root,
                                                                      tmp_path, caplog):
    from analysis.place import placements
    store = tmp_path / "store"
    shutil.copytree(mapped[0], store)
    wavs = sorted((tone_root / "valid" / "audio").glob("*.wav"))[:5]
    placing = placements(store, mapped[1], wavs, split="test", batch_size=2)
    first = next(placing)  # the first batch is done, the others are not read yet
    assert first.path == str(wavs[0].resolve()) and read_placed(store) == []
    placing.close()  # the caller stops (an interrupt, a reader gone): the batch is kept
    assert [p.path for p in read_placed(store)] == [str(w.resolve()) for w in wavs[:2]]
    assert [p.path for p in place_files(store, mapped[1], wavs, split="test")] == [
        str(w.resolve()) for w in wavs]
    assert len(read_placed(store)) == 5
    placing = placements(store, mapped[1], wavs[:1], split="test")
    next(placing)
    with h5py.File(store / "test.h5", "r+") as f:  # as a tsne that replaced the map meanwhile
        f["tsne"][0] += 1
    placing.close()
    assert len(read_placed(store)) == 5  # not recorded on a map no longer there
    assert "its map was replaced or removed while the sounds were placed" in caplog.text


def test_a_map_and_its_placed_sounds_follow_the_embeddings(mapped, tone_root, tmp_path, caplog):
    store = tmp_path / "store"
    shutil.copytree(mapped[0], store)
    model = mapped[1]
    wav = next((tone_root / "train" / "audio").glob("*.wav"))
    place_files(store, model, [wav], split="train")
    place_files(store, model, [wav], split="test")
    assert sorted(p.split for p in read_placed(store)) == ["test", "train"]
    with h5py.File(store / "test.h5") as f:
        old_map = f["tsne"][:]
    import analysis.tsne

    def fails(*args, **kwargs):
        raise RuntimeError("stopped while the new map is written")
    with pytest.MonkeyPatch.context() as patch, pytest.raises(RuntimeError, match="stopped"):
        patch.setattr(analysis.tsne, "write_result", fails)
        tsne_split(store, "test", perplexity=3, seed=1)
    with h5py.File(store / "test.h5") as f:  # the old map, and the sounds placed on it, stay
        np.testing.assert_array_equal(f["tsne"][:], old_map)
    assert sorted(p.split for p in read_placed(store)) == ["test", "train"]
    tsne_split(store, "test", perplexity=3, seed=1)  # a new map: its old placed sounds go
    assert [p.split for p in read_placed(store)] == ["train"]
    assert "1 sound placed on the old test map removed (run 'timbremap place' again" in caplog.text
    place_files(store, model, [wav], split="test")
    caplog.clear()
    tsne_split(store, "test", perplexity=3, seed=1)  # the same map again: they stay on it
    assert sorted(p.split for p in read_placed(store)) == ["test", "train"]
    assert "removed" not in caplog.text
    tsne_split(store, "test", perplexity=3, seed=2)
    assert [p.split for p in read_placed(store)] == ["train"]
    other = tmp_path / "other-model"
    embed_store(store, model, ["train"], progress=False)  # the same model: the map stays
    with h5py.File(store / "train.h5") as f:
        assert "tsne" in f
    assert [p.split for p in read_placed(store)] == ["train"]
    train(store, other, TrainConfig(epochs=1, steps_per_epoch=2, batch_size=8, width=8,
                                    budget_minutes=None, seed=4, deterministic=True), verbose=0)
    with pytest.raises(StoreError, match=rf"made from the embeddings of another model "
                                         rf"\({model}\), not of {other}'s; embed and map again"):
        place_files(store, other, [wav], split="train")
    mine = shutil.copytree(model, tmp_path / "mine")
    embed_store(store, mine, ["train"], progress=False)  # the same weights: the map stays
    shutil.copy(other / "model.keras", mine / "model.keras")  # as if trained again in place
    with pytest.raises(StoreError, match=rf"embeddings of the model {mine} held before it was "
                                         rf"trained again, not of {mine}'s"):
        place_files(store, mine, [wav], split="train")
    embed_store(store, other, ["train"], progress=False)  # the old map no longer fits
    with h5py.File(store / "train.h5") as f:
        assert "tsne" not in f and "embeddings" in f
    assert read_placed(store) == []
    assert "placed on the old train map removed (run 'timbremap tsne', then 'place' again" \
        in caplog.text  # there is no new map to place them on yet
    with h5py.File(store / "test.h5") as f:
        assert "tsne" in f  # other splits keep theirs


def cluster_store(path: Path, n_per: int = 30, families: int = 5, dim: int = 16, seed: int = 0):
    """A minimal split file whose embeddings form well-separated clusters by family."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(families), n_per)
    centres = rng.normal(0, 20, (families, dim))
    embeddings = centres[labels] + rng.normal(0, 1, (len(labels), dim))
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["spectra"] = np.repeat(embeddings[:, None, :], 2, axis=1).astype(np.float16)
        f["labels"] = labels.astype(np.int32)
        f["embeddings"] = embeddings.astype(np.float32)
    return labels


@pytest.mark.parametrize("method", ["opentsne", "sklearn"])
def test_tsne_of_separated_clusters_is_faithful(tmp_path, method):
    cluster_store(tmp_path / "test.h5")
    result = tsne_split(tmp_path, "test", method=method, perplexity=10, seed=0)
    with h5py.File(tmp_path / "test.h5") as f:
        assert f["tsne"].shape == (150, 2) and f["tsne"].dtype == np.float32
        attrs = dict(f["tsne"].attrs)
    assert attrs == pytest.approx(result.attrs)
    assert attrs["method"] == method and attrs["perplexity"] == 10 and attrs["seed"] == 0
    assert attrs["trustworthiness"] > 0.9
    assert attrs["knn_accuracy_source"] == 1.0 and attrs["knn_accuracy_map"] > 0.98
    assert attrs["trustworthiness_k"] == attrs["knn_k"] == 10
    assert attrs["kl_divergence"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["test.h5"]  # nothing beside the store
    if method == "opentsne":
        assert attrs["neighbors"] == "exact" and 50 <= attrs["iterations"] <= 500
        assert attrs["gradient"] == "bh"  # 150 points: Barnes-Hut (BH_MAX)


def test_tsne_stops_when_the_kl_divergence_stalls():
    converged = _Converged(tol=0.01)
    assert [converged(i, kl, None) for i, kl in ((50, 4.0), (100, 3.0), (150, 2.98))] == \
        [False, False, True]
    assert converged.stopped_at == 150


def test_tsne_from_spectra_records_pca(tmp_path):
    cluster_store(tmp_path / "test.h5")
    attrs = tsne_split(tmp_path, "test", source="spectra", perplexity=10).attrs
    assert attrs["source"] == "spectra" and attrs["pca_components"] == 32
    assert 0.99 < attrs["pca_explained_variance"] <= 1.0 + 1e-6


def test_tsne_refuses_a_split_rewritten_while_it_fitted(tmp_path, monkeypatch):
    import analysis.tsne as tsne
    path = tmp_path / "test.h5"
    cluster_store(path)
    fit = tsne.fit_opentsne

    def fit_while_rewritten(*args, **kwargs):  # a build --add or embed renames a new file in
        shutil.copyfile(path, tmp_path / "new.h5")
        (tmp_path / "new.h5").replace(path)
        return fit(*args, **kwargs)
    monkeypatch.setattr(tsne, "fit_opentsne", fit_while_rewritten)
    with pytest.raises(StoreError, match="test.h5: another program rewrote it"):
        tsne_split(tmp_path, "test", source="spectra", perplexity=10)
    with h5py.File(path, "r") as f:
        assert "tsne" not in f  # nothing written into the new file


def test_knn_accuracy_leaves_one_out():
    points = np.array([[0.0], [0.1], [5.0], [5.1], [5.2]])
    assert knn_accuracy(points, np.array([0, 0, 1, 1, 1]), k=1) == 1.0
    assert knn_accuracy(points, np.array([0, 1, 0, 1, 0]), k=1) == 0.0
    from analysis.tsne import map_metrics
    metrics = map_metrics(points, points, np.array([0, 0, 1, 1, 1]))  # 5 points: fewer than 10
    assert (metrics["trustworthiness_k"], metrics["knn_k"]) == (1, 1)  # the k each used
    assert metrics["knn_accuracy_map"] == 1.0


def test_knn_accuracy_lets_every_label_win_a_vote():
    """Three clusters of three notes: a vote of 8 neighbours would lose every note to the
    other labels; the vote is of the rarest label's notes but one."""
    from analysis.tsne import knn_neighbours
    labels = np.repeat([0, 1, 2], 3)
    points = labels[:, None] * 10.0 + np.arange(9)[:, None] * 0.01
    assert knn_neighbours(labels) == 2 and knn_accuracy(points, labels) == 1.0
    assert knn_neighbours(np.repeat([3, 7], 20)) == 10  # the default, where labels allow it
    assert knn_neighbours(np.array([0, 1])) == 1 and knn_neighbours(np.array([4])) == 0
    assert np.isnan(knn_accuracy(points[:1], labels[:1]))


def test_tsne_bad_input(tmp_path, tone_store, caplog):
    with pytest.raises(StoreError, match="no /embeddings"):
        tsne_split(tone_store, "test")
    cluster_store(tmp_path / "test.h5", n_per=1, families=1)
    with pytest.raises(StoreError, match=r"test.h5: 1 note, too few for a map \(at least 5\)"):
        tsne_split(tmp_path, "test", perplexity=1)
    cluster_store(tmp_path / "test.h5", n_per=5)
    with pytest.raises(StoreError, match=r"25 points are too few for perplexity 30 \(needs more "
                                         r"than 90; give --perplexity 8 or lower\)"):
        tsne_split(tmp_path, "test", perplexity=30)
    assert tsne_split(tmp_path, "test", perplexity=8).n == 25  # the one it named
    with caplog.at_level(logging.INFO, logger="analysis.tsne"):  # none given: the most 25 allow
        assert tsne_split(tmp_path, "test").attrs["perplexity"] == 8
    assert "test.h5: 25 points, too few for perplexity 30: perplexity 8, the most they allow" \
        in caplog.text
    for bad in (0, 0.3, float("inf"), float("nan")):  # 0.3: openTSNE's error, before
        with pytest.raises(InputError, match="perplexity must be at least 1 and finite"):
            tsne_split(tmp_path, "test", perplexity=bad)
    for options, message in ((dict(perplexity="5"), "perplexity must be a number, got '5'"),
                             (dict(source="spectra", pca_components=0),
                              "pca_components must be a positive integer, got 0"),
                             (dict(pca_components=2.5), "pca_components must be a positive"),
                             (dict(n_jobs=0), "n_jobs must be a whole number of threads other "
                                              "than 0")):
        with pytest.raises(InputError, match=message):  # sklearn's and joblib's errors, before
            tsne_split(tmp_path, "test", **options)


def test_split_names_given_as_one_string_are_refused_before_any_work(tmp_path):
    calls = {"embed": lambda splits: embed_store(tmp_path, tmp_path, splits),
             "plot": lambda splits: plot_map(tmp_path, tmp_path / "map.png", splits),
             "map": lambda splits: write_map(tmp_path, tmp_path / "map", splits),
             "build": lambda splits: build_store(tmp_path, tmp_path / "s", splits=splits)}
    for call in calls.values():
        with pytest.raises(InputError, match=r"splits must be a sequence of split names, got "
                                             r"the one split name 'test': give \['test'\]"):
            call("test")  # iterated, it had named splits 't', 'e', 's'
        with pytest.raises(InputError, match=r"splits is empty: give the names of the splits, "
                                             r"or None for all"):
            call([])  # embed had read it as None, and written every split
        with pytest.raises(InputError, match=r"splits must be split names such as 'train', "
                                             r"got 3"):
            call(["test", 3])
    with pytest.raises(InputError, match="batch_size must be a positive integer, got 0"):
        embed_store(tmp_path, tmp_path, batch_size=0)
    for option in ("jobs", "batch_size"):  # a ValueError, as the others are
        with pytest.raises(InputError, match=f"{option} must be a positive integer, got 0"):
            build_store(tmp_path, tmp_path / "s", **{option: 0})
    assert not list(tmp_path.iterdir())


def test_embed_rejects_a_model_of_other_features(mapped, tone_root, tmp_path):
    other = tmp_path / "mel"
    build_store(tone_root, other, FeatureParams(kind="mel", n_mels=32), jobs=1, progress=False,
                splits=["test"])
    with pytest.raises(ModelError, match="other features than the model"):
        embed_store(other, mapped[1], progress=False)


def test_embed_refuses_a_missing_store_and_an_into_that_is_a_file(mapped, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="file: is a file; --into names a folder"):
        embed_store(mapped[0], tmp_path / "nomodel", into=tmp_path / "file")  # before the model
    with pytest.raises(BuildError, match="holds a model \\(model.keras\\); split files go into"):
        embed_store(mapped[0], mapped[1], into=mapped[1])
    assert not list(Path(mapped[1]).glob("*.h5"))
    with pytest.raises(StoreError, match="nowhere: no such store folder"):
        embed_store(tmp_path / "nowhere", mapped[1])
    with pytest.raises(StoreError, match="file: is a file, not a store"):
        embed_store(tmp_path / "file", mapped[1])


def test_an_interrupted_embed_ends_its_bar_s_line_before_the_message(mapped, tmp_path,
                                                                     capsys):
    store = shutil.copytree(mapped[0], tmp_path / "store")

    class Stopped:
        outputs = [np.zeros((1, 8))]

        def predict_on_batch(self, x):
            raise KeyboardInterrupt
    with mock.patch("analysis.embed.embedding_model", lambda trained: Stopped()):
        try:
            embed_store(store, mapped[1], progress=True)
        except KeyboardInterrupt:  # where the command says so, its frames not yet freed
            err = capsys.readouterr().err
    assert "embed" in err and err.endswith("\n")  # 'timbremap: interrupted' on a line of its own


def test_embed_into_never_replaces_a_stores_split(mapped, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(mapped[0], store)
    before = {p.name: p.read_bytes() for p in store.glob("*.h5")}
    for into in (store, mapped[0]):  # the store itself, or another one
        with pytest.raises(InputError, match=r"test.h5: is not results that 'embed --into' "
                                             r"wrote \(a store's split\?\)"):
            embed_store(store, mapped[1], into=into, progress=False)
    other = tmp_path / "other"  # a store of one split, given for another split's results
    other.mkdir()
    shutil.copyfile(store / "test.h5", other / "test.h5")
    with pytest.raises(InputError, match=r"other/test.h5: is not results that 'embed --into'"):
        embed_store(store, mapped[1], ["train"], into=other, progress=False)
    assert sorted(p.name for p in other.iterdir()) == ["test.h5"]
    assert {p.name: p.read_bytes() for p in store.glob("*.h5")} == before
    embed_store(store, mapped[1], ["test"], into=tmp_path / "apart", progress=False)
    embed_store(store, mapped[1], ["test", "train"], into=tmp_path / "apart",
                progress=False)  # again
    with pytest.raises(InputError, match=r"apart/test.h5: another store's results \(.*store\); "
                                         r"--into names a folder for one store's results"):
        embed_store(mapped[0], mapped[1], ["train"], into=tmp_path / "apart", progress=False)
    embed_store(mapped[0], mapped[1], ["train", "test"], into=tmp_path / "apart",
                progress=False)  # every split it holds, of the other store: not a mix
    with h5py.File(tmp_path / "apart" / "test.h5", "r+") as f:  # as another model made it
        f["embeddings"].attrs.update({"model": "/models/other", "model_sha1": "0" * 40})
    with pytest.raises(InputError, match=r"apart/test.h5: results of another model "
                                         r"\(/models/other\)"):
        embed_store(mapped[0], mapped[1], ["train"], into=tmp_path / "apart", progress=False)
    with pytest.raises(StoreError, match="train.h5: results 'timbremap embed --into' wrote"):
        build_store(store, tmp_path / "apart", jobs=1, progress=False, add=True)  # no store
    from featurestore.files import exclusive_lock
    with exclusive_lock(tmp_path / "apart", lambda: AssertionError("held")):  # as an embed
        with pytest.raises(InputError, match=r"apart: another embed is writing its results "
                                             r"into this folder; wait for it to finish"):
            embed_store(mapped[0], mapped[1], ["train"], into=tmp_path / "apart",
                        progress=False)  # the two had mixed two models' results, or lost one


def test_place_puts_a_copy_next_to_its_original(mapped, tone_root, tmp_path):
    store, model = mapped
    with h5py.File(store / "train.h5") as f:
        names = f["names"].asstr()[:]
    copy = tmp_path / "copy_of_note.wav"  # as stereo: two equal channels
    y, sr = sf.read(tone_root / "train" / "audio" / f"{names[4]}.wav", dtype="float32")
    sf.write(copy, np.stack([y, y], axis=1), sr, subtype="FLOAT")
    (tmp_path / "bad.wav").write_bytes(b"nope")
    results = place_files(store, model, [copy, tmp_path / "bad.wav"], split="train")
    assert results[1].error and "bad.wav" in results[1].error
    placed = results[0]
    assert placed.adjustments == ["downmixed 2 channels"]
    assert placed.nearest[0]["name"] == names[4]
    with h5py.File(store / "train.h5") as f:
        xy = f["tsne"][:]
    spread = np.linalg.norm(xy - xy.mean(0), axis=1).mean()
    assert placed.nearest[0]["distance"] < 0.25 * spread
    assert [p.path for p in read_placed(store)] == [str(copy)]
    # a file at a time, in another order: the same place
    bad, again = place_files(store, model, [tmp_path / "bad.wav", copy], split="train",
                             batch_size=1)
    assert bad.error == results[1].error and again.nearest == placed.nearest
    np.testing.assert_allclose([again.x, again.y], [placed.x, placed.y], atol=1e-4)
    with pytest.raises(InputError, match="files must be a sequence of paths"):
        place_files(store, model, str(copy), split="train")



def test_place_takes_the_test_map_or_the_only_one(mapped, tone_root, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(mapped[0], store)
    wav = next((tone_root / "train" / "audio").glob("*.wav"))
    assert place_files(store, mapped[1], [wav])[0].split == "test"  # of two maps
    with h5py.File(store / "test.h5", "r+") as f:
        del f["tsne"]
    assert place_files(store, mapped[1], [wav])[0].split == "train"  # the only map


@pytest.mark.parametrize("damage, message", [
    (lambda f: f["tsne"].attrs.__setitem__("neighbors", "rm -rf"), r"neighbors 'rm -rf'"),
    (lambda f: f["tsne"].attrs.__delitem__("seed"), r"can't locate attribute: 'seed'"),
    (lambda f: f["tsne"].attrs.__setitem__("perplexity", np.nan), r"perplexity nan"),
    (lambda f: f["tsne"].attrs.__setitem__("gradient", "exact"), r"gradient 'exact'"),
])
def test_place_refuses_a_map_whose_settings_are_damaged(mapped, tone_root, tmp_path, damage,
                                                        message):
    store = shutil.copytree(mapped[0], tmp_path / "store")
    with h5py.File(store / "test.h5", "r+") as f:
        damage(f)
    wav = next((tone_root / "train" / "audio").glob("*.wav"))
    with pytest.raises(StoreError, match=rf"test.h5: its map's settings \(/tsne's attrs\) are "
                                         rf"damaged \(.*{message}.*\); run 'timbremap tsne'"):
        place_files(store, mapped[1], [wav], split="test")


def test_place_on_a_map_of_nan_is_one_line(mapped, tone_root, tmp_path):
    store = shutil.copytree(mapped[0], tmp_path / "store")
    with h5py.File(store / "test.h5", "r+") as f:
        f["tsne"][0] = [np.nan, np.inf]  # openTSNE had crashed the process (SIGSEGV)
    wav = next((tone_root / "train" / "audio").glob("*.wav"))
    result = subprocess.run([sys.executable, "-m", "analysis.cli", "place", str(store),
                             str(mapped[1]), str(wav), "--split", "test"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and result.stderr.strip().endswith(
        "test.h5: its map or the points it maps hold NaN or infinite values (openTSNE would "
        "crash on them); run 'timbremap tsne' again"), result.stderr


def test_a_placed_file_that_cannot_be_read_now_leaves_its_map(mapped, tone_root, tmp_path,
                                                               caplog):
    store = tmp_path / "store"
    shutil.copytree(mapped[0], store)
    (store / "placed.json").unlink(missing_ok=True)  # other tests' sounds on the shared store
    sound = tmp_path / "sound.wav"
    assert place_files(store, mapped[1], [sound], split="test")[0].error  # not there yet
    assert not (store / "placed.json").exists()  # nothing placed: nothing written
    shutil.copyfile(next((tone_root / "train" / "audio").glob("*.wav")), sound)
    place_files(store, mapped[1], [sound], split="test")
    assert [p.path for p in read_placed(store)] == [str(sound)]
    sound.write_bytes(b"no longer audio")
    assert place_files(store, mapped[1], [sound], split="test")[0].error
    assert read_placed(store) == []  # it had stayed where the sound once was
    assert f"{sound}: removed from the test map, where it had been placed before" in caplog.text
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)  # a link to itself: an error, as any file that cannot be read
    assert "loop.wav" in place_files(store, mapped[1], [loop], split="test")[0].error


def test_place_keeps_a_damaged_placed_json_aside(mapped, tone_root, tmp_path, caplog):
    store = tmp_path / "store"
    shutil.copytree(mapped[0], store)
    damaged = b'[{"path": "/my/own.wav", "split": "train"'
    (store / "placed.json").write_bytes(damaged)
    wav = next((tone_root / "train" / "audio").glob("*.wav"))
    place_files(store, mapped[1], [wav], split="train")
    aside, = store.glob("placed.json.damaged-*")
    assert aside.read_bytes() == damaged
    assert [p.path for p in read_placed(store)] == [str(wav.resolve())]
    assert "placed.json: not a list of placed sounds" in caplog.text
    assert f"kept as {aside.name}" in caplog.text

def test_place_command_prints_what_reading_did(mapped, tone_root, tmp_path, capsys, caplog,
                                               monkeypatch):
    from analysis.cli import main
    monkeypatch.chdir(tmp_path)  # files are printed as given, relative here
    store, model = tmp_path / "store", mapped[1]
    shutil.copytree(mapped[0], store)  # its placed sounds stay out of the shared store
    with h5py.File(store / "train.h5") as f:
        name = f["names"].asstr()[0]
    y, sr = sf.read(tone_root / "train" / "audio" / f"{name}.wav", dtype="float32")
    sf.write(tmp_path / "stereo.wav", np.stack([y, y], axis=1), sr)
    (tmp_path / "bad.wav").write_bytes(b"nope")
    code = main(["place", str(store), str(model), "stereo.wav", "bad.wav", "--split", "train"])
    out = capsys.readouterr().out
    assert code == 1  # one file could not be used, after the other was placed
    line, = [row for row in out.splitlines() if "stereo.wav" in row]
    assert line.startswith("stereo.wav: (")
    shutil.copytree(mapped[0], tmp_path / "again")  # what place_files says of the same file
    placed = place_files(tmp_path / "again", model, [tmp_path / "stereo.wav"], split="train")[0]
    nearest = ", ".join(f"{n['name']} ({n['family']})" for n in placed.nearest[:3])
    assert line.split("nearest: ")[1] == f"{nearest}  (downmixed 2 channels)"
    assert placed.family in line and f"({placed.x:.2f}, {placed.y:.2f}) on the train map" in line
    assert "bad.wav: cannot decode audio" in caplog.text
    assert "1 of 2 files could not be used" in caplog.text
    assert main(["inspect", str(store)]) == 0  # the sound placed, and how the map was made
    shown = capsys.readouterr().out.splitlines()
    on_maps = Counter(p.split for p in read_placed(store))  # the shared store's, and ours
    first = next(i for i, line in enumerate(shown) if line.startswith("== placed"))
    placed_lines = shown[first:]
    assert placed_lines[0] == f"== placed: {store / 'placed.json'}  " + ", ".join(
        f"{n} on {split}'s map" for split, n in sorted(on_maps.items()))
    assert f"    {tmp_path / 'stereo.wav'}: train, {placed.family} " \
           f"({placed.probability:.2f})" in placed_lines
    with h5py.File(store / "train.h5") as f:
        perplexity, trust = f["tsne"].attrs["perplexity"], f["tsne"].attrs["trustworthiness"]
    joined = " ".join(line.strip() for line in shown)  # lines wrapped at spaces, joined
    assert re.search(fr"tsne: [^:]*perplexity={perplexity:.4g},[^:]*trustworthiness="
                     fr"{trust:.4g}", joined)
    assert f"embeddings: layer=embedding, model={model}," in joined


@pytest.mark.parametrize("splits", [["train"], ["train", "test"]])
def test_plot_is_a_png_with_nothing_cut_off(mapped, tmp_path, splits):
    out = plot_map(mapped[0], tmp_path / "map.png", splits=splits)
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 20000
    import matplotlib.image
    image = matplotlib.image.imread(out)[..., :3]
    # the legend and titles fit: the image's outer columns and rows are background only
    for edge in (image[:, :3], image[:, -3:], image[:3], image[-3:]):
        assert edge.min() > 0.95


def test_maps_of_two_models_drawn_side_by_side_are_warned_of(mapped, tmp_path, caplog):
    from analysis.tsne import EMBEDDINGS_MODEL
    store = shutil.copytree(mapped[0], tmp_path / "store")
    plot_map(store, tmp_path / "one.png")
    assert "different models" not in caplog.text  # both maps of one model's embeddings
    with h5py.File(store / "train.h5") as f:
        sha = f["tsne"].attrs[EMBEDDINGS_MODEL]
    with h5py.File(store / "test.h5", "r+") as f:  # as a model trained again embedded it
        f["tsne"].attrs[EMBEDDINGS_MODEL] = f["embeddings"].attrs["model_sha1"] = "0" * 40
    plot_map(store, tmp_path / "two.png")
    write_map(store, tmp_path / "map")
    said = (f"{store}: its maps come from different models' embeddings (train: {sha[:8]}, test: "
            f"00000000): embed every split with one model and run tsne again")
    assert caplog.text.count(said) == 2  # plot and map
    plot_map(store, tmp_path / "test.png", splits=["test"])  # one map alone: nothing to say
    with h5py.File(store / "test.h5", "r+") as f:  # a map of spectra: no model's at all
        f["tsne"].attrs["source"] = "spectra"
    plot_map(store, tmp_path / "spectra.png")
    assert caplog.text.count("different models") == 2


def test_two_programs_writing_one_picture_or_map_at_once_never_clash(mapped, tmp_path):
    from featurestore.files import exclusive_lock, replaced
    (tmp_path / "page").mkdir()
    with exclusive_lock(tmp_path / "page", RuntimeError):  # a map being written there
        with pytest.raises(InputError, match=r"page: another program is writing into this "
                                             r"folder \(a map; or the build or train whose "
                                             r"folder it is\); wait for it to finish"):
            write_map(mapped[0], tmp_path / "page", copy_audio=True)
    assert os.listdir(tmp_path / "page") == []  # nothing copied, nothing written
    out = tmp_path / "map.png"
    with replaced(out, shared=True) as first:
        first.write_bytes(b"first")
        with replaced(out, shared=True) as second:  # another plot of the same file
            assert second != first
            second.write_bytes(b"second")
        assert out.read_bytes() == b"second" and first.read_bytes() == b"first"
    assert out.read_bytes() == b"first"  # the last rename's: neither lost, nor an error
    assert sorted(os.listdir(tmp_path)) == ["map.png", "page"]  # no temporary left


def test_plot_writes_the_format_its_ending_names_and_png_without_one(mapped, tmp_path,
                                                                    monkeypatch):
    from functools import partial
    from training.images import image_path
    image_path = partial(image_path, in_folder="map.png")
    assert plot_map(mapped[0], tmp_path / "map", splits=["test"]) == tmp_path / "map.png"
    assert (tmp_path / "map.png").read_bytes()[:8] == PNG
    assert image_path(tmp_path / "map.") == tmp_path / "map.png"
    (tmp_path / "maps").mkdir()  # a folder gets map.png, as evaluate's --confusion gets its own
    assert plot_map(mapped[0], tmp_path / "maps", splits=["test"]) == tmp_path / "maps" / "map.png"
    assert plot_map(mapped[0], tmp_path / "map.PDF", splits=["test"]).read_bytes()[:5] == \
        b"%PDF-"
    with pytest.raises(InputError, match=r"map.txt: cannot write a .txt image \(endings "
                                         r"written here: .*\.png"):
        image_path(tmp_path / "map.txt")
    import training.images
    with monkeypatch.context() as patched:  # / is written by root alone
        patched.setattr(training.images, "check_writable_in", lambda path: None)
        for folder in (Path("."), Path("/"), tmp_path / ".."):  # a traceback, or .png.png, before
            assert image_path(folder) == folder / "map.png"
    # a folder yet to be made, named as one: its own file in it, not new.png beside it
    assert plot_map(mapped[0], f"{tmp_path / 'new'}/", splits=["test"]) == \
        tmp_path / "new" / "map.png"
    from analysis.cli import main  # the command line keeps the separator, for evaluate too
    assert main(["plot", str(mapped[0]), f"{tmp_path / 'cli'}/"]) == 0
    assert (tmp_path / "cli" / "map.png").read_bytes()[:8] == PNG
    from analysis.options import make_parser
    assert make_parser().parse_args(["evaluate", "s", "m", "--confusion", "out/"]).confusion \
        == "out/"
    with pytest.raises(InputError, match="names no file; give the image's file name"):
        image_path(tmp_path / "missing" / "..")
    # a folder no file can be made in (procfs, where root may write anywhere else): refused
    with pytest.raises(InputError, match=r"^/proc/sys/m\.png: cannot be written \(.* in "
                                         r"/proc/sys\)$"):
        image_path(Path("/proc/sys/m.png"))
    with pytest.raises(InputError, match=r"^/proc/sys/map/index\.html: cannot be written"):
        write_map(mapped[0], Path("/proc/sys/map"))  # its page, not its .partial, named
    assert image_path(tmp_path / "to" / "be" / "made.png") == tmp_path / "to" / "be" / "made.png"
    assert not (tmp_path / "to").exists()  # asked of tmp_path, the nearest folder there
    with pytest.raises(InputError, match=r"\.png: is an ending alone; give the image a name "
                                         r"\(map\.png\)"):
        image_path(tmp_path / ".png")
    (tmp_path / "afile").write_text("")  # a file on the path: one line, before any work
    from featurestore.files import check_writable_in
    with pytest.raises(InputError, match=r"afile/sub/x\.png: cannot be written \(.*afile is no "
                                         r"folder\)$"):
        check_writable_in(tmp_path / "afile" / "sub" / "x.png")
    for write in (lambda out: plot_map(mapped[0], out / "x.png"),
                  lambda out: write_map(mapped[0], out / "map"),
                  lambda out: embed_store(mapped[0], mapped[1], into=out / "into")):
        with pytest.raises(InputError, match=r"afile: is a file, so .*afile/sub\S* cannot be "
                                             r"a folder"):
            write(tmp_path / "afile" / "sub")  # [Errno 17] File exists: 'afile', before
    with pytest.raises(InputError, match=r"/proc/x.png: cannot be written \(No such file"):
        plot_map(mapped[0], "/proc/x.png")
    import matplotlib.figure
    before = (tmp_path / "map.png").read_bytes()

    def cut_short(fig, file, **options):  # as a kill or a full disk mid-write
        file.write(PNG)
        raise OSError(28, "No space left on device")
    with monkeypatch.context() as m:
        m.setattr(matplotlib.figure.Figure, "savefig", cut_short)
        with pytest.raises(InputError, match=r"map.png: cannot be written \(No space left"):
            plot_map(mapped[0], tmp_path / "map.png", splits=["test"])
    assert (tmp_path / "map.png").read_bytes() == before  # the picture it had, not part of one
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]
    import shutil as shell
    monkeypatch.setattr(shell, "which", lambda name: None)  # no TeX: no PGF, which needs it
    with pytest.raises(InputError, match=r"map.pgf: cannot write a .pgf image"):
        image_path(tmp_path / "map.pgf")


def test_plot_names_placed_sounds_of_any_file_name_and_only_a_few(mapped, tmp_path,
                                                                  monkeypatch):
    import os
    import matplotlib.axes
    from analysis.placements import Placed, write_placed
    from analysis.plot import PLACED_NAMES
    store = tmp_path / "store"
    shutil.copytree(mapped[0], store)
    latin = os.fsdecode(b"/sounds/caf\xe9.flac")  # a name that is no UTF-8
    names = []
    monkeypatch.setattr(matplotlib.axes.Axes, "annotate",
                        lambda self, text, *args, **kwargs: names.append(text))
    write_placed(store, [Placed(latin, "test", 0.0, 0.0, "bass", 0.5)])
    assert plot_map(store, tmp_path / "one.png").read_bytes()[:8] == PNG  # a traceback before
    assert names == ["caf\ufffd"]
    names.clear()
    write_placed(store, [Placed(f"/s/{i}.wav", "test", float(i), 0.0, "bass", 0.5)
                         for i in range(PLACED_NAMES + 1)])
    assert plot_map(store, tmp_path / "many.png").read_bytes()[:8] == PNG
    assert names == []  # stars alone: the names of so many would cover the map
    from analysis.mapview import _audio_link  # the map's link to its copy: relative too
    assert _audio_link(tmp_path / "map", tmp_path / "map" / "audio" / Path(latin).name) == \
        "audio/caf%E9.flac"


def test_plot_legend_lists_only_the_labels_shown(mapped, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(mapped[0], store)
    with h5py.File(store / "test.h5", "r+") as f:  # the test split loses its first label
        names = list(f["labels"].attrs["names"].astype(str))
        labels = f["labels"][:]
        gone, other = labels.min(), labels.max()
        labels[labels == gone] = other
        f["labels"][:] = labels
    import matplotlib
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as text, to be read back
        svg = plot_map(store, tmp_path / "map.svg", splits=["test"]).read_text()
    legend = [name for name in names if f">{name}<" in svg]
    assert legend == [names[i] for i in sorted(set(labels.tolist()))]
    assert names[gone] not in legend and names[other] in legend


def test_plot_cuts_a_long_label_to_keep_the_legend_inside(mapped, tmp_path):
    from tests.helpers import relabel_store
    names = ["L" * 200, "short", "x"]
    store = relabel_store(shutil.copytree(mapped[0], tmp_path / "store"), names)
    import matplotlib.image
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        svg = plot_map(store, tmp_path / "map.svg", splits=["test", "test"]).read_text()
    assert ">" + "L" * 12 + "\u2026" + "L" * 11 + "<" in svg and "L" * 13 not in svg
    assert svg.count("t-SNE of") == 1  # a split asked for twice is one panel
    out = plot_map(store, tmp_path / "map.png", splits=["test"])
    image = matplotlib.image.imread(out)[..., :3]
    for edge in (image[:, :3], image[:, -3:], image[:3], image[-3:]):
        assert edge.min() > 0.95  # nothing runs off the image


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("the map test needs Debian's chromium (make test installs it)")


def test_map_opens_offline_draws_points_and_plays(mapped, tone_root, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(mapped[0], store)
    wav = next((tone_root / "test" / "audio").glob("*.wav"))
    for split in ("train", "test"):
        place_files(store, mapped[1], [wav], split=split)
    page = write_map(store, tmp_path / "map")
    html = page.read_text()
    assert "http://" not in html and "https://" not in html  # no CDN, nothing fetched
    data = json.loads(html.split("const DATA = ", 1)[1].split(";\n", 1)[0])
    assert set(data["splits"]) == {"train", "test"}
    assert data["open"] == "test"  # the split tsne maps unless told, though train comes first
    assert all((page.parent / a).is_file() for a in data["splits"]["test"]["audio"])
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--autoplay-policy=no-user-gesture-required",
             "--allow-file-access-from-files", "--window-size=1200,800",
             "--virtual-time-budget=8000"]
    shot = tmp_path / "shot.png"
    subprocess.run([chromium(), *flags, f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == PNG
    from matplotlib.image import imread
    pixels = imread(shot)[:, 240:, :3]
    coloured = (pixels.max(axis=2) - pixels.min(axis=2)) > 0.2  # family colours, not grey
    assert coloured.sum() > 200
    dom = subprocess.run([chromium(), *flags, "--dump-dom", page.as_uri() + "#selftest"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    drawn = int(dom.split('data-drawn="', 1)[1].split('"', 1)[0])
    assert drawn == len(data["splits"]["test"]["x"]) + 1  # its notes and the sound placed on it
    assert 'data-playing="' in dom, dom[-2000:]
    assert 'data-tip-inside="true"' in dom  # the rightmost point's box opens to its left
    test = data["splits"]["test"]
    alone = test["family"].count(0) + sum(p["split"] == "test" and p["family"] ==
                                          data["families"][0] for p in data["placed"])
    assert f'data-alone="{alone}"' in dom  # a double-click on a label: its points alone


def test_map_draws_a_split_of_hundreds_of_thousands_of_notes(mapped, tmp_path):
    store = shutil.copytree(mapped[0], tmp_path / "store")
    (store / "placed.json").unlink(missing_ok=True)
    page = write_map(store, tmp_path / "map")
    head, rest = page.read_text().split("const DATA = ", 1)
    text, tail = rest.split(";\n", 1)
    data = json.loads(text)
    notes = data["splits"][data["open"]]
    n = len(notes["x"])
    times = -(-300_000 // n)
    for key, values in notes.items():  # every per-note list, the points repeated
        if isinstance(values, list) and len(values) == n:
            notes[key] = values * times
    page.write_text(f"{head}const DATA = {json.dumps(data)};\n{tail}")
    dom = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                          f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,800",
                          "--virtual-time-budget=8000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180, check=True).stdout
    assert 'data-drawn="' in dom, dom[-1500:]  # a stack overflow drawing had left it blank
    assert int(dom.split('data-drawn="', 1)[1].split('"', 1)[0]) == n * times


def test_map_shows_names_as_text_and_plays_names_with_url_characters(mapped, tmp_path):
    store = tmp_path / "st<i>ore"
    shutil.copytree(mapped[0], store)
    odd = "<img src=x onerror=\"document.title='XSS'\">take#1 100%?v=2"
    with h5py.File(store / "test.h5", "r+") as f:  # the split the page opens on
        original = Path(f.attrs["source_root"]) / "test" / "audio" / f"{f['names'][0].decode()}.wav"
        f["names"][0] = odd
        f["file"][0] = f"test/audio/{odd}.wav"
        f["source_folder"].attrs["names"] = [str(tmp_path / "notes")]  # the audio moved
        f["pitch"][0] = -1  # a note of one's own data: no pitch, no velocity
    (tmp_path / "notes" / "test" / "audio").mkdir(parents=True)
    shutil.copyfile(original, tmp_path / "notes" / "test" / "audio" / f"{odd}.wav")
    page = write_map(store, tmp_path / "map")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--autoplay-policy=no-user-gesture-required",
             "--allow-file-access-from-files", "--window-size=1200,800",
             "--virtual-time-budget=8000", "--dump-dom"]
    dom = subprocess.run([chromium(), *flags, page.as_uri() + "#selftest"], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert "<title>timbremap: st&lt;i&gt;ore</title>" in dom  # the name's script never ran
    tip = dom.split('id="tip"', 1)[1].split("</div>", 1)[0]
    assert "&lt;img src=x" in tip  # shown as text on hover
    assert "pitch" not in tip and "velocity" not in tip  # not "pitch -1, velocity -1"
    assert 'data-playing="' in dom and "data-play-error" not in dom, dom[-1500:]  # it played


def test_map_keeps_labels_that_look_like_markup_or_its_own_placeholders(mapped, tmp_path):
    from tests.helpers import relabel_store
    names = ["<!--<script>", "__TITLE__", "__DATA__ </script>"]
    store = relabel_store(shutil.copytree(mapped[0], tmp_path / "__DATA__"), names)
    (store / "placed.json").unlink(missing_ok=True)
    page = write_map(store, tmp_path / "map")
    text = page.read_text()
    script = text.split("const DATA = ", 1)[1]
    assert "<!--" not in script.split("</script>", 1)[0]  # the data cannot open a comment
    data = json.loads(script.split(";\n", 1)[0])
    assert data["families"][:3] == names and len(data["colors"]) == 3  # then the model's
    assert "<title>timbremap: __DATA__</title>" in text
    dom = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    legend = dom.split('id="legend"', 1)[1].split("</div></div>", 1)[0]
    assert all(html.escape(name, quote=False) in legend for name in names), legend
    assert "bass" not in legend  # the model's own labels name predictions, not the legend


def test_map_copies_only_audio_whatever_a_store_names(mapped, tmp_path, caplog):
    import os
    store = shutil.copytree(mapped[0], tmp_path / "store")
    secret = tmp_path / "secret.txt"
    secret.write_text("a stranger's store names any file")
    with h5py.File(store / "test.h5", "r+") as f:  # the split the page opens on
        f["file"][0] = str(secret)  # as a manifest's absolute path
        f["file"][1] = "../" * 40 + str(secret).lstrip("/")
        kept = Path(f["source_folder"].attrs["names"][0]) / f["file"].asstr()[2]
    page = write_map(store, tmp_path / "map", copy_audio=True)
    data = json.loads(page.read_text().split("const DATA = ", 1)[1].split(";\n", 1)[0])
    links = data["splits"]["test"]["audio"]
    assert links[0] == "../secret.txt" and links[2].startswith("audio/")  # linked where it is
    copies = [p for p in (tmp_path / "map" / "audio").rglob("*") if p.is_file()]
    assert copies and not any(p.read_bytes() == secret.read_bytes() for p in copies)
    assert any(p.read_bytes() == kept.read_bytes() for p in copies)
    assert f"2 of the map's sounds are not named as audio files ({secret}, ...); linked where " \
           f"they are, not copied" in caplog.text
    for copy in copies:  # a read-only source: a rerun copies over its own copy
        copy.chmod(0o444)
    write_map(store, tmp_path / "map", copy_audio=True)
    assert sorted(p for p in (tmp_path / "map" / "audio").rglob("*") if p.is_file()) == sorted(
        copies)
    before = {copy: copy.read_bytes() for copy in copies}

    def interrupted(source, tmp):
        Path(tmp).write_bytes(b"half")
        raise KeyboardInterrupt
    with mock.patch("analysis.mapview.copy_file", interrupted), \
            pytest.raises(KeyboardInterrupt):
        write_map(store, tmp_path / "map", copy_audio=True)
    assert {copy: copy.read_bytes() for copy in copies} == before  # the earlier map's, whole
    assert sorted(p for p in (tmp_path / "map" / "audio").rglob("*") if p.is_file()) == sorted(
        copies)  # and no part of the interrupted one
    killed = copies[0].with_name(f".{copies[0].name}.partial")  # as a kill -9 leaves it
    killed.write_bytes(b"half")
    kept.rename(tmp_path / "away.wav")  # a sound of the map no longer there: its copy stays
    try:
        write_map(store, tmp_path / "map")
    finally:
        (tmp_path / "away.wav").rename(kept)
    assert [p.name.split("-", 1)[1] for p in (tmp_path / "map" / "audio").rglob("*")
            if p.is_file()] == [kept.name]
    write_map(store, tmp_path / "map", copy_audio=True)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        write_map(store, tmp_path / "map")  # linked where they are: the copies are the old page's
    assert not (tmp_path / "map" / "audio").exists()  # and the folders they leave empty
    assert f"{tmp_path / 'map'}: {len(copies)} sound(s) an earlier map copied, which this " \
           f"page does not play, removed" in caplog.text
    write_map(store, tmp_path / "map", copy_audio=True)
    mine = tmp_path / "map" / "audio" / "test" / "my notes.txt"
    mine.write_text("a user's own file")
    played = tmp_path / "map" / "audio" / "test" / "00099-a note of the store.wav"
    shutil.copyfile(kept, played)  # named as a copy, but the store's own audio: played
    with h5py.File(store / "test.h5", "r+") as f:
        f["file"][2] = str(played)
    write_map(store, tmp_path / "map")
    assert sorted(p for p in (tmp_path / "map" / "audio").rglob("*") if p.is_file()) == [
        played, mine]
    os.mkfifo(tmp_path / "pipe.html")  # an index.html that is a pipe would block a read
    (tmp_path / "piped").mkdir()
    (tmp_path / "piped" / "index.html").symlink_to(tmp_path / "pipe.html")
    result = subprocess.run([sys.executable, "-m", "analysis.cli", "map", str(store),
                             str(tmp_path / "piped")], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1 and "index.html: is there already and is no map" in \
        result.stderr, result.stderr


def test_map_copies_a_sound_of_a_long_name_under_a_shorter_one(mapped, tmp_path):
    store = shutil.copytree(mapped[0], tmp_path / "store")
    with h5py.File(store / "test.h5", "r+") as f:
        source = Path(f["source_folder"].attrs["names"][0]) / f["file"].asstr()[0]
        long = tmp_path / ("é" * 123 + ".wav")  # 250 bytes: its copy's temporary name, 265
        shutil.copyfile(source, long)
        f["file"][0] = str(long)
    write_map(store, tmp_path / "map", copy_audio=True)
    copy = next((tmp_path / "map" / "audio" / "test").glob("00000-*"))
    assert copy.read_bytes() == long.read_bytes() and copy.suffix == ".wav"
    assert len(copy.name.encode()) <= 240 and copy.name.startswith("00000-éé")


def test_map_copies_no_sound_into_a_folder_of_class_folders_of_the_store(mapped, tmp_path):
    from featurestore.errors import InputError
    store = shutil.copytree(mapped[0], tmp_path / "store")
    with h5py.File(store / "test.h5", "r+") as f:
        notes = shutil.copytree(f["source_folder"].attrs["names"][0], tmp_path / "notes")
        f["source_folder"].attrs["names"] = np.array([str(notes)], dtype=h5py.string_dtype())
        f.attrs["input_layout"] = "folders"  # a build reads every audio file below it
    with pytest.raises(InputError, match=f"{notes}/cello/map: is in {notes}, a NOTES folder the "
                                         f"store was built from"):
        write_map(store, notes / "cello" / "map", ["test"], copy_audio=True)
    assert not (notes / "cello").exists()  # a later build would read copies as notes
    with h5py.File(store / "test.h5", "r+") as f:
        f.attrs["input_layout"] = "nsynth"  # reads only the files examples.json lists
    assert write_map(store, notes / "map", ["test"], copy_audio=True).is_file()


def test_embed_records_a_model_folder_whose_name_is_no_utf8(mapped, tmp_path):
    store = shutil.copytree(mapped[0], tmp_path / "store")
    model = shutil.copytree(mapped[1], tmp_path / "model\udcff")  # a byte 0xff: had raised
    embed_store(store, model, ["test"], progress=False)
    with h5py.File(store / "test.h5") as f:
        assert f["embeddings"].attrs["model"] == f"{tmp_path}/model\\udcff"


def test_cli_bad_input_lines(mapped, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "analysis.cli", *map(str, args)],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
    r = run("tsne", mapped[0], "--split", "valid", "--perplexity", "30")
    assert r.returncode == 1 and "too few for perplexity" in r.stderr
    assert "Traceback" not in r.stderr
    r = run("plot", tmp_path, tmp_path / "x.png")
    assert r.returncode == 1 and "no split files (*.h5) in this folder" in r.stderr
    (tmp_path / "unmapped").mkdir()
    shutil.copyfile(mapped[0] / "valid.h5", tmp_path / "unmapped" / "valid.h5")
    r = run("map", tmp_path / "unmapped", tmp_path / "page")
    assert r.returncode == 1 and "no split has a /tsne map" in r.stderr
    assert not (tmp_path / "page").exists()  # a map that failed leaves no folder behind
    r = run("plot", mapped[0], tmp_path / "x.png", "--split", "valid")  # mapped: train, test
    assert r.returncode == 1 and "valid.h5: no /tsne map (run 'timbremap tsne" in r.stderr


class Planted:
    """A pickle that leaves a file behind when it is loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def place_copy(store, model, tone_root, tmp_path, split="train", row=4):
    """Place a copy of a stored note; returns ``(its original's name, Placed)``."""
    with h5py.File(store / f"{split}.h5") as f:
        name = f["names"].asstr()[row]
    copy = tmp_path / "copy.wav"
    copy.write_bytes((tone_root / split / "audio" / f"{name}.wav").read_bytes())
    return name, place_files(store, model, [copy], split=split)[0]


def test_nothing_beside_a_store_is_unpickled(mapped, tone_root, tmp_path, monkeypatch):
    import pickle
    store = tmp_path / "store"
    shutil.copytree(mapped[0], store)
    marker = tmp_path / "the-pickle-ran"
    for split in ("train", "test"):
        (store / f"{split}.tsne.pkl").write_bytes(pickle.dumps(Planted(marker)))

    def refused(*args, **kwargs):
        raise AssertionError("something was unpickled")
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refused)
    name, placed = place_copy(store, mapped[1], tone_root, tmp_path)
    assert placed.nearest[0]["name"] == name and not marker.exists()
    tsne_split(store, "train", perplexity=3, seed=0)  # a new map, with the pickle still there
    assert place_copy(store, mapped[1], tone_root, tmp_path)[1].nearest[0]["name"] == name
    assert not marker.exists()


def test_fit_opentsne_takes_fft_beyond_bh_max_and_refuses_another_gradient(monkeypatch):
    import analysis.tsne as tsne
    from featurestore.errors import InputError
    points = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    monkeypatch.setattr(tsne, "BH_MAX", 40)
    assert tsne.fit_opentsne(points, 5.0, max_iter=50)[1]["gradient"] == "bh"
    monkeypatch.setattr(tsne, "BH_MAX", 39)
    assert tsne.fit_opentsne(points, 5.0, max_iter=50)[1]["gradient"] == "fft"
    with pytest.raises(InputError, match=r"gradient must be one of \('bh', 'fft'\), got 'exact'"):
        tsne.fit_opentsne(points, 5.0, gradient="exact")


@pytest.mark.parametrize("gradient", ["bh", None])  # None: an older tsne's map, of FFT
def test_a_map_rebuilt_from_the_file_places_as_the_fitted_one(tmp_path, gradient):
    from analysis.storedmap import StoredMap
    from analysis.tsne import fit_opentsne
    labels = cluster_store(tmp_path / "test.h5")
    with h5py.File(tmp_path / "test.h5", "r+") as f:
        points = f["embeddings"][:]
        fitted, attrs = fit_opentsne(points, 10.0, seed=0, max_iter=100,  # as tsne fits it
                                     gradient=gradient or "fft")
        if gradient is None:  # older maps were all fitted with FFT gradients
            del attrs["gradient"]
        xy = np.asarray(fitted, np.float32)
        write_result(f, "tsne", shape=xy.shape, blocks=[xy], attrs={
            "method": "opentsne", "perplexity": 10.0, "seed": 0, "source": "embeddings", **attrs})
    new = points[[0, 70]] + 0.01
    with h5py.File(tmp_path / "test.h5") as f:
        placed = StoredMap().fit(f).transform(None, new)
    expected = np.asarray(fitted.transform(new, perplexity=10.0 / 6))  # a sixth of the map's
    # transform centres the map first; the rebuilt map answers in /tsne's coordinates
    np.testing.assert_allclose(placed - (xy.max(0) + xy.min(0)) / 2, expected, atol=1e-3)
    nearest = [labels[np.argmin(np.linalg.norm(xy - p, axis=1))] for p in placed]
    assert nearest == [labels[0], labels[70]]


def test_place_on_a_map_of_spectra(mapped, tone_root, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(mapped[0], store)
    tsne_split(store, "train", source="spectra", perplexity=3, seed=0, pca_components=8)
    with h5py.File(store / "train.h5") as f:
        assert f["tsne_pca_components"].shape == (8, int(np.prod(f["spectra"].shape[1:])))
    name, placed = place_copy(store, mapped[1], tone_root, tmp_path)
    with h5py.File(store / "train.h5") as f:
        xy = f["tsne"][:]
    spread = np.linalg.norm(xy - xy.mean(0), axis=1).mean()
    assert name in [n["name"] for n in placed.nearest]  # among its 5 nearest on the map
    assert placed.nearest[0]["distance"] < 0.25 * spread
    assert placed.nearest[0]["family"] == name.split("_synthetic")[0]
    tsne_split(store, "train", method="sklearn", perplexity=3, seed=0)
    with h5py.File(store / "train.h5") as f:
        assert "tsne_pca_components" not in f  # gone with the map it belonged to
    with pytest.raises(StoreError, match="made with --method sklearn, which cannot place"):
        place_copy(store, mapped[1], tone_root, tmp_path)


def test_a_kl_divergence_estimated_below_zero_is_warned_of(mapped, tmp_path, monkeypatch,
                                                           caplog):
    import sklearn.manifold
    store = tmp_path / "store"
    shutil.copytree(mapped[0], store)
    fit = sklearn.manifold.TSNE.fit_transform

    def estimated_below_zero(self, data):  # as Barnes-Hut gives for many identical notes
        mapped = fit(self, data)
        self.kl_divergence_ = -1.699
        return mapped
    monkeypatch.setattr(sklearn.manifold.TSNE, "fit_transform", estimated_below_zero)
    attrs = tsne_split(store, "test", method="sklearn", perplexity=3, seed=0).attrs
    assert attrs["kl_divergence"] == pytest.approx(-1.699)  # kept as the method gave it
    assert "test.h5: the map's KL divergence is estimated at -1.699, below 0, which a " \
           "divergence cannot be" in caplog.text


def test_embed_writes_nothing_when_a_stored_note_is_not_finite(mapped, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(mapped[0], store)
    with h5py.File(store / "test.h5", "r+") as f:
        before = f["embeddings"][:]
        name = f["names"].asstr()[2]
        row = f["spectra"][2]
        row[7, 9] = np.inf
        f["spectra"][2] = row
    with pytest.raises(StoreError, match=rf"test.h5: note {name} \(row 2\): its stored "
                                         rf"features are not finite"):
        embed_store(store, mapped[1], ["test"], progress=False)
    with h5py.File(store / "test.h5") as f:
        assert np.array_equal(f["embeddings"][:], before)


HOLD = """
import sys, time, h5py
f = h5py.File(sys.argv[1], sys.argv[2])
print("open", flush=True)
time.sleep(60)
"""


def held(path, mode):
    """A process of its own that holds ``path`` open (HDF5's locks are per process)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), mode], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "open"
    return proc


def test_a_split_being_read_is_not_written_and_one_being_written_is_not_read(mapped, tmp_path,
                                                                             monkeypatch):
    import analysis.embed
    from featurestore.reader import SpectraReader
    from featurestore.store import open_split

    def computed(*args):
        raise AssertionError("embed computed embeddings for a split it cannot write")
    monkeypatch.setattr(analysis.embed, "embedding_model", computed)  # refused before that
    store = tmp_path / "store"
    shutil.copytree(mapped[0], store)
    before = (store / "test.h5").read_bytes()
    reader = held(store / "test.h5", "r")  # a training run, inspect, a user's h5py session
    try:
        with pytest.raises(StoreError, match="test.h5: open in another program .* wait for it "
                                             "or close it there"):
            embed_store(store, mapped[1], ["test"], progress=False)
        with pytest.raises(StoreError, match="test.h5: open in another program"):
            tsne_split(store, "test", perplexity=3)
    finally:
        reader.kill()
        reader.wait()
    assert (store / "test.h5").read_bytes() == before
    writer = held(store / "test.h5", "r+")
    try:
        with pytest.raises(StoreError, match="test.h5: written by another program"):
            open_split(store, "test")
        with pytest.raises(StoreError, match="test.h5: written by another program"):
            SpectraReader(store / "test.h5")
        r = subprocess.run([sys.executable, "-m", "analysis.cli", "inspect", str(store)],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and "test.h5: written by another program" in r.stderr
        assert "Traceback" not in r.stderr
    finally:
        writer.kill()
        writer.wait()
