import csv
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import soundfile as sf

from featurestore.build import build_store
from featurestore.errors import InputError, StoreError
from featurestore.params import FeatureParams
from training.config import TrainConfig
from training.data import StoreBatches, balanced_weights
from training.evaluate import per_label_text, evaluate, write_confusion
from training.modeldir import ModelError, load_trained
from training.models import (FramePool, FrequencyShift, Mixup, SpecAugment, SpectralGain,
                             build_model)
from training.predict import predict_features, predict_files
from training.runfiles import RunFiles, plateau_learning_rate, should_stop
from training.train import train

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.full
QUICK = TrainConfig(epochs=2, steps_per_epoch=6, batch_size=8, patience=5, budget_minutes=None,
                    seed=1, width=8, deterministic=True)


def history(model_dir):
    with (Path(model_dir) / "history.csv").open() as fh:
        return list(csv.DictReader(fh))


class EpochPredictions(keras.callbacks.Callback):
    """The probabilities of the classifier the run holds in memory for notes ``x``, at the end
    of each epoch (after timbremap's own callbacks have saved it)."""

    def __init__(self, x):
        super().__init__()
        self.x, self.epochs = x, []

    def on_epoch_end(self, epoch, logs=None):
        nested = [layer for layer in self.model.layers if isinstance(layer, keras.Model)]
        classifier = nested[0] if nested else self.model  # the classifier behind the Mixup
        self.epochs.append(np.asarray(classifier.predict_on_batch(self.x)))


@pytest.fixture(scope="module")
def before_saving(tone_store):
    with h5py.File(tone_store / "test.h5") as f:
        return EpochPredictions(f["spectra"][:6])


@pytest.fixture(scope="module")
def trained(tone_store, tmp_path_factory, before_saving):
    model_dir = tmp_path_factory.mktemp("model")
    result = train(tone_store, model_dir, QUICK, verbose=0, callbacks=[before_saving])
    return model_dir, result


def test_training_writes_everything_and_loss_falls(trained):
    model_dir, result = trained
    for name in ("model.keras", "config.json", "history.csv", "curves.png"):
        assert (model_dir / name).is_file(), name
    assert not (model_dir / "backup").exists()
    rows = history(model_dir)
    assert len(rows) == 2 == result.epochs
    assert float(rows[1]["loss"]) < float(rows[0]["loss"])
    info = json.loads((model_dir / "config.json").read_text())
    assert FeatureParams.from_dict(info["features"]) == FeatureParams()
    assert TrainConfig.from_dict(info["train"]) == QUICK
    assert info["best_epoch"] in (1, 2) and 0 <= info["best_val_accuracy"] <= 1
    assert (model_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = load_trained(model_dir).model  # the classifier, without the Mixup it trained behind
    assert [(i.name, i.dtype) for i in model.inputs] == [("spectra", "float16")]
    assert not any(isinstance(layer, Mixup) for layer in model.layers) and QUICK.mixup() > 0


def test_plateau_schedule_and_stopping_follow_the_history():
    config = TrainConfig(learning_rate=1e-3, lr_patience=2, patience=4, budget_minutes=None)

    def rows(accuracies):
        return [{"val_accuracy": a, "seconds": 60.0} for a in accuracies]
    assert plateau_learning_rate([], config) == 1e-3
    assert plateau_learning_rate(rows([.1, .2, .3]), config) == 1e-3
    assert plateau_learning_rate(rows([.1, .3, .2]), config) == 1e-3  # one epoch without
    assert plateau_learning_rate(rows([.1, .3, .2, .3]), config) == 5e-4  # equal is not better
    assert plateau_learning_rate(rows([.1, .3, .2, .3, .4, .1, .1]), config) == 2.5e-4
    assert should_stop(rows([.1, .3, .2, .2, .2]), config) is None
    assert "for 4 epochs" in should_stop(rows([.1, .3, .2, .2, .2, .2]), config)
    budget = config.replace(budget_minutes=3.5)
    assert should_stop(rows([.1, .2]), budget) is None  # a third epoch ends at 3 minutes
    assert "budget of 3.5 minutes" in should_stop(rows([.1, .2, .3]), budget)  # a 4th at 4
    assert should_stop(rows([.1]), budget.replace(budget_minutes=1)) == \
        "time budget of 1 minute used"
    assert "2 epochs done" in should_stop(rows([.1, .2]), config.replace(epochs=2))
    assert should_stop(rows([.1]), config.replace(epochs=1)) == "1 epoch done"
    assert should_stop(rows([.3, .2]), config.replace(patience=1, lr_patience=1)).endswith(
        "for 1 epoch")
    with pytest.raises(ValueError, match="epochs must be given for the cosine schedule"):
        TrainConfig(schedule="cosine")
    tutorial = TrainConfig(model="tutorial")  # its network never augments, and says so
    assert not tutorial.augment and tutorial.mixup() == 0 and tutorial.to_dict()["augment"] is False
    assert TrainConfig.from_dict({**tutorial.to_dict(), "augment": True}) == tutorial
    assert (TrainConfig().learning_rate, tutorial.learning_rate) == (2e-3, 5e-4)  # each its own
    assert TrainConfig(model="tutorial", learning_rate=1e-3).learning_rate == 1e-3  # given
    assert TrainConfig().replace(model="tutorial").learning_rate == 5e-4  # its own
    assert TrainConfig(learning_rate=1e-3).replace(model="tutorial").learning_rate == 1e-3
    assert TrainConfig.from_dict({**tutorial.to_dict(), "learning_rate": 2e-3}).learning_rate \
        == 2e-3  # a run resumes at the rate it started with
    from training.runfiles import epoch_past_budget
    assert epoch_past_budget([], budget, epoch_seconds=1500) == 25.0  # a first epoch of 25 min
    assert epoch_past_budget(rows([.1]), budget, epoch_seconds=150) is None  # ends at 3.5
    assert epoch_past_budget(rows([.1, .2]), budget, epoch_seconds=150) == 4.5
    assert epoch_past_budget([], config, epoch_seconds=10 ** 6) is None  # no budget



def test_an_epoch_that_will_end_past_the_budget_is_warned_of_each_epoch(tmp_path, monkeypatch,
                                                                        caplog):
    import training.runfiles as runfiles
    clock = iter([0.0, 30.0, 31.0, 40.0, 45.0, 100.0, 100.5, 101.0, 111.0])
    monkeypatch.setattr(runfiles.time, "monotonic", lambda: next(clock))
    config = TrainConfig(budget_minutes=2, schedule="cosine", epochs=9)
    calls = RunFiles(tmp_path, config, [], None, history_file="h.csv", best_file="b.keras",
                     backup_dir="backup")  # the clock's first reading
    calls.set_params({"steps": 1000})
    calls.on_epoch_begin(0)  # at 30
    for batch in range(3):  # at 31 the first batch (tracing); at 40 too soon to tell; at 45
        calls.on_train_batch_end(batch)
    # 7 s a batch after the first: 1 + 999 * 7 s, far past 2 minutes
    assert "the epoch will end after 117 minutes of training, past the time budget of 2" \
        in caplog.text
    caplog.clear()
    calls.on_epoch_begin(1)  # at 100
    for batch in range(2):  # at 100.5 the first batch; at 101 too soon to tell
        calls.on_train_batch_end(batch)
    assert caplog.text == ""
    calls.on_train_batch_end(9)  # at 111: 10.5 s for 9 batches, 0.5 + 999 * 1.17 s
    assert "the epoch will end after 19 minutes" in caplog.text  # said again, this epoch
    clock = iter([0.0, 0.5, 11.0])  # a budget of 3 s: 0.5 + 9 * 1.17 s is 0.18 minutes
    calls.config = TrainConfig(budget_minutes=0.05, schedule="cosine", epochs=9)
    calls.set_params({"steps": 10})
    calls.on_epoch_begin(2)
    calls.on_train_batch_end(0)
    calls.on_train_batch_end(9)
    assert "will end after 0.18 minutes of training, past the time budget of 0.05: the budget " \
           "is kept between epochs (fewer batches an epoch: --steps-per-epoch)" in caplog.text


def test_default_training_runs_until_validation_stops_improving(tone_store, tmp_path, caplog):
    config = TrainConfig(steps_per_epoch=2, batch_size=8, width=8, patience=2, lr_patience=1,
                         budget_minutes=1.0, seed=2)
    assert config.epochs is None and config.schedule == "plateau"
    with caplog.at_level(logging.INFO, logger="training.runfiles"):
        result = train(tone_store, tmp_path / "m", config, verbose=0)
    # said once training ended, after Keras's progress bar has ended its line
    assert caplog.records[-1].getMessage() == (f"stopping after epoch {result.epochs}: "
                                               f"{result.stopped}")
    rows = [{k: float(v) for k, v in row.items()} for row in history(tmp_path / "m")]
    assert len(rows) == result.epochs >= 1
    assert result.stopped.startswith(("no better validation accuracy for 2 epochs",
                                      "time budget of 1 minute used"))
    for i, row in enumerate(rows):  # each epoch ran at the rate its history called for
        assert row["learning_rate"] == pytest.approx(plateau_learning_rate(rows[:i], config))
    assert json.loads((tmp_path / "m" / "config.json").read_text())["stopped"] == result.stopped


def test_model_normalises_its_own_input(trained, tone_store):
    model = load_trained(trained[0]).model
    norm = model.get_layer("normalize")
    with h5py.File(tone_store / "train.h5") as f:
        mean, std = f["spectra"].attrs["mean"], f["spectra"].attrs["std"]
    np.testing.assert_allclose(np.ravel(norm.mean), mean, rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.ravel(norm.variance)), std, rtol=1e-5)


def test_save_load_identical_predictions(trained, before_saving):
    """The saved model predicts what the best epoch's model predicted in memory, bit for bit."""
    model_dir, result = trained
    assert len(before_saving.epochs) == result.epochs == 2
    before = before_saving.epochs[result.best_epoch - 1]
    loaded = predict_features(load_trained(model_dir), before_saving.x)
    np.testing.assert_array_equal(loaded, before)
    np.testing.assert_allclose(loaded.sum(axis=1), 1, rtol=1e-5)
    other = before_saving.epochs[2 - result.best_epoch]  # the epoch that was not kept
    assert not np.array_equal(loaded, other)


def test_no_train_serve_skew(trained, tone_root, tone_store):
    """Predicting a note's wav equals predicting from its stored spectrum."""
    model = load_trained(trained[0])
    with h5py.File(tone_store / "test.h5") as f:
        names = f["names"].asstr()[:4]
        stored = f["spectra"][:4]
    from_store = predict_features(model, stored)
    results = predict_files(model, [tone_root / "test" / "audio" / f"{n}.wav" for n in names])
    from_files = np.stack([r.probabilities for r in results])
    np.testing.assert_array_equal(from_files, from_store)


def test_predict_any_format_and_goes_on_after_bad_files(trained, tone_root, tmp_path):
    wav = next((tone_root / "test" / "audio").glob("*.wav"))
    y, sr = sf.read(wav)
    sf.write(tmp_path / "stereo44k.flac", np.stack([y, y], 1).repeat(2, axis=0), 2 * sr)
    (tmp_path / "broken.wav").write_bytes(b"garbage")
    sf.write(tmp_path / "silent.wav", np.zeros(sr), sr)
    (tmp_path / "cut.wav").write_bytes(wav.read_bytes()[:-2])  # one frame short
    results = predict_files(trained[0], [tmp_path / "broken.wav", wav, tmp_path / "silent.wav",
                                         tmp_path / "stereo44k.flac", tmp_path / "missing.mp3",
                                         tmp_path / "cut.wav"])
    assert [r.error is None for r in results] == [False, True, False, True, False, False]
    assert "broken.wav" in results[0].error and "missing.mp3" in results[4].error
    assert results[5].error == f"{tmp_path / 'cut.wav'}: truncated: its header declares 64000 " \
                               f"frames, the file holds 63999"
    assert results[2].error == f"{tmp_path / 'silent.wav'}: silent: every sample is 0"
    sf.write(tmp_path / "silent9.wav", np.zeros(9 * sr), sr)
    one, two = predict_files(trained[0], [tmp_path / "silent.wav", tmp_path / "silent9.wav"],
                               windows=4.0)  # cut into clips: one, and two, all silent
    assert one.error.startswith(f"{tmp_path / 'silent.wav'}: its clip could not be used (at 0 "
                                f"s: "), one.error
    assert two.error.startswith(f"{tmp_path / 'silent9.wav'}: none of its 2 clips could be "
                                  f"used (first, at 0 s: "), two.error
    top = results[1].top(3)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]
    with pytest.raises(InputError, match="k must be a positive integer, got 0"):
        results[1].top(0)
    with pytest.raises(ValueError, match="broken.wav: cannot decode audio"):
        results[0].top(3)  # a file that could not be used has no top labels
    with pytest.raises(InputError, match="files must be a sequence of paths, got the one path"):
        predict_files(trained[0], str(wav))
    with pytest.raises(InputError, match="batch_size must be a positive integer, got 0"):
        predict_files(trained[0], [wav], batch_size=0)
    with pytest.raises(InputError, match=r"the windows' hop must be a number of seconds"):
        predict_files(trained[0], [wav], windows=-1)
    with pytest.raises(TypeError, match="positional"):
        predict_files(trained[0], [wav], 2)  # an option, named
    x = np.zeros((251, 513), np.float16)
    with pytest.raises(InputError, match=r"features must be of shape \(N, 251, 513\) for the "
                                         r"model in .*/, got \(251, 513\)"):
        predict_features(load_trained(trained[0]), x)
    x = np.zeros((3, 251, 513), np.float16)
    x[2, 5, 7] = np.nan  # answered as a sound before
    with pytest.raises(InputError, match=r"features\[2\] is not all finite"):
        predict_features(trained[0], x)  # the model's folder will do
    big = np.zeros((2, 251, 513), np.float32)
    big[1, 0, 0] = 7e4  # infinite once cast to float16, as the model takes it
    with pytest.raises(InputError, match=r"features\[1\] is not all finite in float16"):
        predict_features(trained[0], big)
    with pytest.raises(InputError, match="features must be real numbers .* got dtype complex"):
        predict_features(trained[0], big.astype(np.complex64))
    with pytest.raises(InputError, match="got dtype object"):
        predict_features(trained[0], big.astype(object))
    assert predict_features(trained[0], x[:2]).shape == (2, 11)
    assert "resampled 32000 Hz -> 16000 Hz" in results[3].adjustments


def test_predictions_come_a_batch_at_a_time_and_equal_one_batch_of_all(trained, tone_root,
                                                                        tmp_path):
    from training.predict import iter_predictions
    wavs = sorted((tone_root / "test" / "audio").glob("*.wav"))[:4]
    (tmp_path / "broken.wav").write_bytes(b"garbage")
    files = [wavs[0], tmp_path / "broken.wav", *wavs[1:]]
    taken = []
    answers = iter_predictions(trained[0], (taken.append(p) or p for p in files), batch_size=2)
    first = next(answers)
    assert len(taken) == 2  # a batch is answered before the next is read
    results = [first, *answers]
    whole = predict_files(trained[0], files, batch_size=64)
    assert [r.path for r in results] == files and [r.error is None for r in results] == \
        [r.error is None for r in whole] == [True, False, True, True, True]
    for one, other in zip(results, whole):
        if one.error is None:
            np.testing.assert_allclose(one.probabilities, other.probabilities, atol=1e-6)
    with pytest.raises(InputError, match="batch_size must be a positive integer"):
        iter_predictions(trained[0], files, batch_size=0)  # checked when called, not iterated


def test_the_readme_python_prediction(trained, tone_root, capsys):
    from helpers import readme_block
    block = readme_block("predict_files")
    wav = next((tone_root / "test" / "audio").glob("*.wav"))
    code = block.replace('"demo/model"', repr(str(trained[0]))).replace(
        '["cello.wav", "take 2.flac"]', repr([str(wav), "missing.flac"]))
    exec(compile(code, "README.md", "exec"), {})
    found, missing = capsys.readouterr().out.splitlines()
    assert found.startswith(f"{wav} [(") and missing.startswith("missing.flac missing.flac: ")
    import keras
    import training.models  # noqa: F401  (registers the layers)
    model = keras.models.load_model(Path(trained[0]) / "model.keras")
    assert model.output_shape == (None, 11)


def test_history_gives_the_learning_rate_each_epoch_started_with(tone_store, tmp_path):
    import math
    config = QUICK.replace(schedule="cosine", learning_rate=0.002)
    train(tone_store, tmp_path / "model", config, verbose=0)
    half = 0.002 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 6 / 12)))  # 6 of 12 steps
    assert [float(r["learning_rate"]) for r in history(tmp_path / "model")] == [
        pytest.approx(0.002), pytest.approx(half)]


def test_evaluate_matches_scikit_learn(trained, tone_store):
    from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix,
                                 f1_score)
    model_dir, _ = trained
    result = evaluate(tone_store, model_dir, "test")
    with h5py.File(tone_store / "test.h5") as f:
        x, labels = f["spectra"][:].astype(np.float32), f["labels"][:]
    predicted = predict_features(load_trained(model_dir), x).argmax(axis=1)
    assert result.n == len(labels)
    assert result.accuracy == pytest.approx(accuracy_score(labels, predicted))
    assert result.balanced_accuracy == pytest.approx(balanced_accuracy_score(labels, predicted))
    np.testing.assert_array_equal(result.confusion,
                                  confusion_matrix(labels, predicted, labels=range(11)))
    f1 = f1_score(labels, predicted, labels=range(11), average=None, zero_division=0)
    seen = np.isin(np.arange(11), np.concatenate([labels, predicted]))
    assert [v["f1"] for v in result.per_family.values()] == [
        pytest.approx(f) if k else None for f, k in zip(f1, seen)]  # None: undefined
    for k, v in enumerate(result.per_family.values()):  # a label no note has: no recall
        assert (v["recall"] is None) == (v["support"] == 0) == (k not in labels)
        assert (v["precision"] is None) == (k not in predicted)
    assert result.default_png == model_dir / "confusion_test.png"  # its own store
    assert not result.default_png.exists()  # evaluate writes nothing
    assert write_confusion(result) == result.default_png
    assert result.default_png.read_bytes()[:4] == b"\x89PNG"
    assert json.loads(json.dumps(result.to_dict()))["confusion"] == result.confusion.tolist()
    report = per_label_text(result).splitlines()  # every label, as --json
    assert report[0].split() == ["label", "precision", "recall", "f1", "notes"]
    for row, (name, scores) in zip(report[1:], result.per_family.items(), strict=True):
        assert row.split() == [name] + ["-" if scores[k] is None else f"{scores[k]:.3f}"
                                        for k in ("precision", "recall", "f1")] + [
            str(scores["support"])]


def read_only(*args, **kwargs):  # root, who runs the tests, writes anywhere
    raise OSError(30, "Read-only file system")


def test_confusion_path_is_a_png_wherever_it_is_asked_for(trained, tone_store, tmp_path,
                                                           monkeypatch, capsys, caplog):
    import training.evaluate
    model_dir, _ = trained
    result = evaluate(tone_store, model_dir, "test")
    assert write_confusion(result, tmp_path) == tmp_path / "confusion_test.png"
    assert write_confusion(result, tmp_path / "cm") == tmp_path / "cm.png"
    assert (tmp_path / "cm.png").is_file() and (tmp_path / "confusion_test.png").is_file()
    assert write_confusion(result, tmp_path / "cm.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(InputError, match=r"cm.xyz: cannot write a .xyz image \(endings"):
        write_confusion(result, tmp_path / "cm.xyz")
    from analysis.cli import main  # a folder yet to be made, named as one: its file in it
    assert main(["evaluate", str(tone_store), str(model_dir), "--split", "test",
                 "--confusion", f"{tmp_path / 'new'}/"]) == 0
    assert (tmp_path / "new" / "confusion_test.png").is_file()
    assert not (tmp_path / "new.png").exists()
    # a PATH given that cannot be written: the scores, then its error, exit 1
    monkeypatch.setattr(training.evaluate, "plot_confusion", read_only)
    for json_out in ([], ["--json"]):
        assert main(["evaluate", str(tone_store), str(model_dir), "--split", "test",
                     "--confusion", str(tmp_path / "cm2.png"), *json_out]) == 1
        assert "accuracy" in capsys.readouterr().out
        assert caplog.messages[-1] == (f"error: {tmp_path / 'cm2.png'}: cannot write the "
                                       f"confusion matrix (Read-only file system)")


def test_evaluating_another_store_does_not_overwrite_the_plot(trained, tone_store, tmp_path):
    import shutil
    model_dir, _ = trained
    other = tmp_path / "other"
    shutil.copytree(tone_store, other)
    assert evaluate(other, model_dir, "test").default_png == \
        model_dir / "confusion_other_test.png"


def test_evaluate_scores_each_notes_folder_of_a_store_built_from_several(trained, tone_store,
                                                                         tmp_path):
    import shutil
    model_dir, _ = trained
    assert evaluate(tone_store, model_dir, "test").per_folder == {}  # one folder
    store = tmp_path / "two"
    shutil.copytree(tone_store, store)
    with h5py.File(store / "test.h5", "r+") as f:  # as if built from two NOTES folders
        folder = np.arange(len(f["labels"])) % 2
        f["source_folder"][...] = folder
        f["source_folder"].attrs["names"] = ["/notes/sf", "/notes/synth"]
        labels, x = f["labels"][:], f["spectra"][:].astype(np.float32)
    result = evaluate(store, model_dir, "test")
    predicted = predict_features(load_trained(model_dir), x).argmax(axis=1)
    assert list(result.per_folder) == ["/notes/sf", "/notes/synth"]
    for k, name in enumerate(result.per_folder):
        mine = folder == k
        assert result.per_folder[name]["n"] == mine.sum()
        assert result.per_folder[name]["accuracy"] == pytest.approx(
            np.mean(labels[mine] == predicted[mine]))


def test_valid_weights_folders_picks_epochs_on_the_mean_over_folders(tone_store, tmp_path,
                                                                     caplog):
    import shutil
    store = tmp_path / "two"
    shutil.copytree(tone_store, store)
    with h5py.File(store / "valid.h5", "r+") as f:  # 3 notes of one folder, 8 of another
        folder = (np.arange(len(f["labels"])) >= 3).astype(np.int16)
        f["source_folder"][...] = folder
        f["source_folder"].attrs["names"] = ["/notes/small", "/notes/large", "/notes/train-only"]
    valid = StoreBatches(store / "valid.h5", 4, multiple_of=2, weigh_by="folders")
    weights = np.concatenate([valid[k][2] for k in range(len(valid))])
    assert list(weights) == [11 / 6] * 3 + [11 / 16] * 8 + [0]  # padding counts in nothing
    valid.close()
    assert "valid.h5: no notes of /notes/train-only: the validation accuracy, the mean over " \
           "the NOTES folders, is over the others" in caplog.text
    assert "/notes/small" not in caplog.text
    with pytest.raises(ValueError, match="needs shuffle=False"):
        StoreBatches(store / "train.h5", 4, shuffle=True, weigh_by="folders")
    one_folder = StoreBatches(tone_store / "valid.h5", 4, weigh_by="folders")
    assert (one_folder[0][2] == 1).all()
    one_folder.close()
    config = QUICK.replace(epochs=1, valid_weights="folders")
    result = train(store, tmp_path / "model", config, verbose=0)
    scored = evaluate(store, tmp_path / "model", "valid")
    by_folder = [r["accuracy"] for r in scored.per_folder.values()]
    assert result.best_val_accuracy == pytest.approx(np.mean(by_folder), abs=1e-6)
    with pytest.raises(InputError, match="valid_weights must be one of"):
        TrainConfig(valid_weights="files")
    with h5py.File(store / "valid.h5", "r+") as f:  # 6 notes of bass, 1 of 5 others
        f["labels"][...] = [0] * 6 + [1, 2, 3, 4, 5]
    config = QUICK.replace(epochs=1, valid_weights="labels")  # every label the same
    result = train(store, tmp_path / "by-label", config, verbose=0)
    scored = evaluate(store, tmp_path / "by-label", "valid")
    assert result.best_val_accuracy == pytest.approx(scored.balanced_accuracy, abs=1e-6)
    assert scored.balanced_accuracy != pytest.approx(scored.accuracy)


def test_evaluate_cli_json(trained, tone_store):
    out = subprocess.run([sys.executable, "-m", "analysis.cli", "evaluate", str(tone_store),
                          str(trained[0]), "--split", "valid", "--json"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {"accuracy", "balanced_accuracy", "n", "per_label", "confusion"} <= set(data)
    assert data["n"] == 11 and set(data["per_label"]) >= {"bass", "vocal"}
    assert data["per_family"] == data["per_label"]  # its older name


def test_evaluate_says_when_a_model_recorded_no_content_of_its_store(trained, tone_store,
                                                                      tmp_path, caplog):
    assert evaluate(tone_store, trained[0], "valid").store_changed == []
    (few,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert few == f"{tone_store / 'valid.h5'}: 11 of its 11 labels have fewer than 5 notes " \
                  f"(bass 1, brass 1, flute 1, guitar 1, keyboard 1, mallet 1, organ 1, reed 1, " \
                  f"...): their recall, and the balanced accuracy that averages the recalls, " \
                  f"rest on a note or a few"  # the split's notes, one of each label
    caplog.clear()
    old = shutil.copytree(trained[0], tmp_path / "old")  # as a version before digests left it
    info = json.loads((old / "config.json").read_text())
    del info["store_content"]
    (old / "config.json").write_text(json.dumps(info))
    assert evaluate(tone_store, old, "valid").store_changed == []
    assert f"{old}: recorded no content of its store (trained before models did, or on splits " \
           f"that recorded none), so whether {tone_store} changed since cannot be told" \
           in caplog.text


def test_evaluate_tells_a_copy_of_the_model_s_store_that_changed_from_another_store(
        trained, tone_store, tmp_path, caplog):
    from featurestore import schema
    copy = shutil.copytree(tone_store, tmp_path / "copy")  # moved or copied, then grown
    assert evaluate(copy, trained[0], "valid").store_changed == []
    with h5py.File(copy / "test.h5", "r+") as f:  # as build --add leaves it
        f.attrs[schema.CONTENT_DIGEST] = "grown"
    assert evaluate(copy, trained[0], "valid").store_changed == ["test"]
    assert f"{copy / 'test.h5'}: changed since the model in {trained[0]}/ was trained" \
        in caplog.text
    caplog.clear()
    with h5py.File(copy / "train.h5", "r+") as f, h5py.File(copy / "valid.h5", "r+") as g:
        f.attrs[schema.CONTENT_DIGEST] = g.attrs[schema.CONTENT_DIGEST] = "another"
    assert evaluate(copy, trained[0], "valid").store_changed == []  # no split in common:
    assert "changed since" not in caplog.text                       # another store


def test_evaluate_warns_of_a_split_holding_the_notes_the_model_was_trained_on(
        trained, tone_store, tmp_path, caplog):
    copy = shutil.copytree(tone_store, tmp_path / "copy")
    evaluate(copy, trained[0], "test")
    assert "the very notes" not in caplog.text
    shutil.copyfile(copy / "train.h5", copy / "test.h5")  # renamed, or the same notes built
    evaluate(copy, trained[0], "test")
    assert f"{copy / 'test.h5'}: holds the very notes the model in {trained[0]}/ was trained " \
           f"on (its train split's content): these scores are not of unheard notes" in caplog.text


def test_same_seed_same_model(tone_store, tmp_path, trained):
    train(tone_store, tmp_path / "again", QUICK, verbose=0)
    a = load_trained(trained[0]).model.get_weights()
    b = load_trained(tmp_path / "again").model.get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt


def test_resume_continues_an_interrupted_run(tone_store, tmp_path, caplog):
    config = QUICK.replace(epochs=3)
    with pytest.raises(KeyboardInterrupt):
        train(tone_store, tmp_path / "m", config, verbose=0, callbacks=[Interrupt()])
    assert (tmp_path / "m" / "backup").is_dir() and not (tmp_path / "m" / "model.keras").exists()
    assert len(history(tmp_path / "m")) == 1
    with pytest.raises(ModelError, match="--resume"):
        train(tone_store, tmp_path / "m", config, verbose=0)
    other = shutil.copytree(tone_store, tmp_path / "grown")  # as a build --add leaves it
    with h5py.File(other / "train.h5", "r+") as f:
        f.attrs["content_digest"] = "other notes"
    with pytest.raises(ModelError, match="m: its run learnt from other notes than "
                                         "this store's train split now holds"):
        train(other, tmp_path / "m", resume=True, verbose=0)
    old = shutil.copytree(tmp_path / "m", tmp_path / "old")  # as an older version left it
    (old / "backup" / "epoch-0001.weights.h5").rename(old / "backup" / "latest.weights.h5")
    (old / "backup" / "training_metadata.json").write_text('{"epoch": 1}')
    for resume in (True, False):  # not sent to --resume, which refuses it
        with pytest.raises(ModelError, match=re.escape(
                f"{old / 'backup'}: holds latest.weights.h5, training_metadata.json, not the "
                f"epoch-NNNN.weights.h5 of a run this version can resume (a run of an older "
                f"timbremap?): start again with --overwrite")):
            train(tone_store, old, resume=resume, verbose=0)  # it had started again over it
    from analysis.cli import main
    assert main(["train", str(tone_store), str(tmp_path / "m"), "--resume", "--schedule",
                 "cosine"]) == 1  # named as a setting the run did not start with, first
    assert "--resume continues the run with the settings it started with; leave out " \
           "--schedule" in caplog.text
    with pytest.raises(ModelError, match=re.escape(
            "and the config given sets epochs 10 (the run's 3); learning_rate 1e-05 (the run's "
            "0.002): give the run's own, or TrainConfig()")):
        train(tone_store, tmp_path / "m", config.replace(epochs=10, learning_rate=1e-5),
              resume=True, verbose=0)  # had been passed over without a word
    import random
    from training.backend import requested
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["keras_backend"] == requested()
    began = "jax" if requested() != "jax" else "torch"  # as if begun on another backend
    (tmp_path / "m" / "config.json").write_text(json.dumps({**saved, "keras_backend": began}))
    np.random.seed(123)
    random.seed(123)
    with caplog.at_level(logging.INFO, logger="training"):
        result = train(tone_store, tmp_path / "m", config, resume=True, verbose=0)  # its own
    assert "m: resuming the run after its epoch 1" in caplog.text
    assert f"m: its run began under Keras's {began} backend and continues under " \
           f"{requested()} (KERAS_BACKEND)" in caplog.text
    assert json.loads((tmp_path / "m" / "config.json").read_text())["keras_backend"] == \
        requested()  # the backend it finished on
    drawn = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    assert (np.random.rand(), random.random()) == drawn  # the caller's draws go on as before
    assert [int(r["epoch"]) for r in history(tmp_path / "m")] == [0, 1, 2]
    assert result.epochs == 3 and (tmp_path / "m" / "model.keras").is_file()
    with pytest.raises(ModelError, match="already"):
        train(tone_store, tmp_path / "m", config, verbose=0)
    with caplog.at_level(logging.INFO, logger="training.train"):
        again = train(tone_store, tmp_path / "m", resume=True, verbose=0)  # finished: left
    assert (again.epochs, again.best_epoch) == (result.epochs, result.best_epoch)
    assert "m: the run had finished; nothing to resume (a longer run starts again, in " \
           "another folder, or with --overwrite, which replaces this model)" in caplog.text
    with pytest.raises(ModelError, match="m: its run had finished, so resume has nothing to go "
                                         "on with; a run that sets epochs 9 "):
        train(tone_store, tmp_path / "m", config.replace(epochs=9), resume=True, verbose=0)
    assert main(["train", str(tone_store), str(tmp_path / "m"), "--resume", "--epochs",
                 "9"]) == 1  # not "leave out --epochs": it had finished
    assert "m: its run had finished, so --resume has nothing to go on with; a run with --epochs " \
           "starts again, in another folder or with --overwrite, which replaces this model" \
        in caplog.text
    with pytest.raises(ModelError, match="new: no such folder, so no interrupted run to resume$"):
        train(tone_store, tmp_path / "new", resume=True, verbose=0)
    assert not (tmp_path / "new").exists()
    (tmp_path / "m" / "confusion_test.png").write_bytes(b"the old model's")
    (tmp_path / "m" / "notes.txt").write_text("mine")
    train(tone_store, tmp_path / "m", config, overwrite=True, verbose=0)
    assert sorted(p.name for p in (tmp_path / "m").glob("*.png")) == ["curves.png"]
    assert (tmp_path / "m" / "notes.txt").read_text() == "mine"  # a user's file is left alone


def test_resumed_run_equals_an_uninterrupted_one(tone_store, tmp_path):
    config = QUICK.replace(epochs=3)  # with augmentation, dropout and mixup
    train(tone_store, tmp_path / "whole", config, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        train(tone_store, tmp_path / "parts", config, verbose=0, callbacks=[Interrupt()])
    # resumed reading its batches with more threads: the same batches all the same
    train(tone_store, tmp_path / "parts", TrainConfig(workers=3), resume=True, verbose=0)
    assert json.loads((tmp_path / "parts" / "config.json").read_text())["train"]["workers"] == 3
    # killed between the files of an epoch's end: its history row and best model are written,
    # its backup not; the resumed run does that epoch again
    save_weights = keras.Model.save_weights
    calls = []

    def killed_on_the_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return save_weights(self, *args, **kwargs)
    with pytest.MonkeyPatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(keras.Model, "save_weights", killed_on_the_second)
        train(tone_store, tmp_path / "cut", config, verbose=0)
    assert len(history(tmp_path / "cut")) == 2
    assert [p.name for p in (tmp_path / "cut" / "backup").iterdir()] == ["epoch-0001.weights.h5"]
    train(tone_store, tmp_path / "cut", resume=True, verbose=0)
    rows = [[(r["epoch"], r["loss"], r["val_loss"]) for r in history(tmp_path / name)]
            for name in ("whole", "parts", "cut")]
    assert rows[0] == rows[1] == rows[2] and len(rows[0]) == 3
    whole, parts, cut = (load_trained(tmp_path / name).model for name in ("whole", "parts", "cut"))
    for u, v, w in zip(whole.get_weights(), parts.get_weights(), cut.get_weights()):
        np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(u, w)


class Steps(keras.callbacks.Callback):
    """The batches of each epoch that ran."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(self.params["steps"])


def test_a_run_of_an_older_timbremap_resumes_only_where_its_config_tells_enough(
        tone_store, tmp_path, caplog):
    config = QUICK.replace(epochs=3, steps_per_epoch=None)  # 22 notes: 32 batches of 8
    for name in ("m", "recorded"):
        with pytest.raises(KeyboardInterrupt):
            train(tone_store, tmp_path / name, config, verbose=0, callbacks=[Interrupt()])
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["epoch_steps"] == 32
    older = {k: v for k, v in saved.items()
             if k not in ("store_content", "epoch_steps", "keras_backend")}
    (tmp_path / "m" / "config.json").write_text(json.dumps(older))
    moved = shutil.copytree(tone_store, tmp_path / "moved")
    with pytest.raises(ModelError, match=re.escape(
            f"m: its run learnt from {tone_store.resolve()} and recorded none of its content (a "
            f"run of an older timbremap), so no other store can be told to hold its notes: "
            f"resume it on that store, or start again with --overwrite")):
        train(moved, tmp_path / "m", resume=True, verbose=0)  # had gone on without a word
    wide = shutil.copytree(tmp_path / "m", tmp_path / "wide")  # as if the model had changed
    (wide / "config.json").write_text(json.dumps({**older, "train": {**older["train"],
                                                                     "width": 16}}))
    with pytest.raises(ModelError, match=r"epoch-0001.weights.h5: does not fit the model this "
                       r"version builds of the run's settings \(a run of an older timbremap\?\): "
                       r"start again with --overwrite"):
        train(tone_store, wide, resume=True, verbose=0)  # had been Keras's traceback
    assert (wide / "backup" / "epoch-0001.weights.h5").is_file()  # kept
    steps = Steps()
    with caplog.at_level(logging.WARNING, logger="training"):
        result = train(tone_store, tmp_path / "m", resume=True, verbose=0, callbacks=[steps])
    assert "m: its run recorded none of its store's content (a run of an older timbremap): a " \
           "rebuild of" in caplog.text
    assert "m: its run recorded no epoch length (a run of an older timbremap): its epochs go on " \
           "with 32 batches; one begun before epochs were at least 32 batches may have had 3" \
        in caplog.text
    assert result.epochs == 3 and steps.seen == [32, 32]
    finished = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps(
        {k: v for k, v in finished.items() if k not in ("store_content", "epoch_steps")}))
    caplog.clear()
    again = train(moved, tmp_path / "m", resume=True, verbose=0)  # finished: left as it is
    assert again.epochs == 3 and "older timbremap" not in caplog.text
    recorded = json.loads((tmp_path / "recorded" / "config.json").read_text())
    (tmp_path / "recorded" / "config.json").write_text(json.dumps({**recorded,
                                                                   "epoch_steps": 4}))
    steps = Steps()  # a run's epochs stay as long as they began, whatever this version's rule
    train(tone_store, tmp_path / "recorded", resume=True, verbose=0, callbacks=[steps])
    assert steps.seen == [4, 4]


class InterruptFirstEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        raise KeyboardInterrupt


def test_resume_before_any_epoch_finished_starts_the_run_again(tone_store, tmp_path, trained):
    with pytest.raises(KeyboardInterrupt):
        train(tone_store, tmp_path / "m", QUICK, verbose=0, callbacks=[InterruptFirstEpoch()])
    assert (tmp_path / "m" / "config.json").is_file()
    assert not (tmp_path / "m" / "backup").exists() and history(tmp_path / "m") == []
    train(tone_store, tmp_path / "m", resume=True, verbose=0)
    a = load_trained(trained[0]).model.get_weights()  # the same settings, uninterrupted
    b = load_trained(tmp_path / "m").model.get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))


def test_a_model_file_never_runs_code(trained, tmp_path):
    inputs = keras.Input((2,))
    lambda_model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    folder = tmp_path / "lambda"
    folder.mkdir()
    lambda_model.save(folder / "model.keras")
    (folder / "config.json").write_text((trained[0] / "config.json").read_text())
    with pytest.raises(ModelError, match="model.keras: cannot load the model .*arbitrary code"):
        load_trained(folder)


def test_the_plateau_schedule_sets_the_rate_and_logs_only_a_lower_one(tmp_path, caplog):
    config = TrainConfig(learning_rate=2e-3, lr_patience=2, budget_minutes=None)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.AdamW(config.learning_rate), loss="mse")
    rows = [{"val_accuracy": a, "seconds": 1.0} for a in (0.5, 0.4, 0.3)]
    run = RunFiles(tmp_path, config, rows[:2], model, history_file="history.csv",
                   best_file="best.keras", backup_dir="backup")
    run.set_model(model)
    with caplog.at_level(logging.INFO, logger="training.runfiles"):
        run.on_epoch_begin(2)  # one epoch without a better accuracy: the same rate
        assert "learning rate" not in caplog.text  # float32's 0.002 is not above 0.002
        run.history = rows  # two: halved
        run.on_epoch_begin(3)
    assert "epoch 4: learning rate 0.001 (validation accuracy stalled)" in caplog.text
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == \
        pytest.approx(1e-3)


def test_batches_are_balanced_and_bounded(tone_store):
    data = StoreBatches(tone_store / "train.h5", 8, shuffle=True, steps=50, seed=0)
    x, y = data[0]
    assert x.shape == (8, 251, 513) and x.dtype == np.float16 and y.shape == (8, 11)
    np.testing.assert_array_equal(x, data.reader.batch(data._order[:8])[0])  # as stored
    counts = np.bincount(data.reader.labels[data._order], minlength=11)
    assert counts.min() > 0.5 * counts.mean()
    data.close()
    w = balanced_weights(np.array([0, 0, 0, 1]), np.array([5, 5, 6, 7]))
    np.testing.assert_allclose(w, [0.125, 0.125, 0.25, 0.5])


def test_the_block_order_reads_runs_and_is_chosen_for_a_split_larger_than_memory(
        tone_store, monkeypatch):
    import training.data
    path = tone_store / "train.h5"
    data = StoreBatches(path, 8, shuffle=True, steps=6, seed=0)
    assert data.order == "random"  # the split fits in memory
    data.close()
    monkeypatch.setattr(training.data, "memory_for_cache", lambda: 1)
    data = StoreBatches(path, 8, shuffle=True, steps=6, seed=0, block_mib=0.5, buffer_mib=1.5)
    assert data.order == "block" and data.block == 2 and data.window == 3
    reads = []
    runs = data.reader.runs
    monkeypatch.setattr(data.reader, "runs", lambda spans, out: reads.extend(spans) or
                        runs(spans, out))
    for i in range(len(data)):
        x, y = data[i]
        notes = data._order.notes[i * 8:(i + 1) * 8]
        np.testing.assert_array_equal(x, data.reader.batch(notes)[0])  # as stored
        np.testing.assert_array_equal(y.argmax(axis=1), data.reader.labels[notes])
    assert all(b - a == 2 for a, b in reads)  # whole runs, each buffer read once
    assert len(reads) == sum(len(blocks) for blocks in data._order.blocks)
    # a reader thread still on the last epoch's plan fills no buffer of this epoch's
    last = data._order
    data.set_epoch(1)
    with data._buffer(last, 0):
        pass
    x, _ = data[0]
    np.testing.assert_array_equal(x, data.reader.batch(data._order.notes[:8])[0])
    data.close()
    # balance off, an epoch of one pass: every note once
    data = StoreBatches(path, 11, shuffle=True, balance=False, loader="block", seed=1)
    seen = np.concatenate([data._order.notes[i * 11:(i + 1) * 11] for i in range(len(data))])
    np.testing.assert_array_equal(np.sort(seen), np.arange(22))
    data.close()


def test_mixup_mixes_labels_in_the_batches_as_the_layer_mixes_notes(tone_store):
    data = StoreBatches(tone_store / "train.h5", 8, shuffle=True, steps=5, mixup_alpha=0.4)
    x, y = data[1]
    spectra, mix = x["spectra"], x["mix"]
    stored, labels = data.reader.batch(data._order[8:16])
    np.testing.assert_array_equal(spectra, stored)
    assert mix.dtype == np.float32 and (mix >= 0.5).all() and (mix <= 1).all() and mix.std() > 0
    partner = np.arange(8) ^ 1  # 2k with 2k + 1
    onehot = np.eye(11, dtype=np.float32)[labels]
    np.testing.assert_allclose(y, mix[:, None] * onehot + (1 - mix[:, None]) * onehot[partner])
    mixed = np.asarray(Mixup(dtype="float32")(spectra, mix, training=True))
    expected = spectra.astype(np.float32)
    expected = mix[:, None, None] * expected + (1 - mix[:, None, None]) * expected[partner]
    np.testing.assert_allclose(mixed, expected, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(Mixup(dtype="float32")(spectra, mix)),
                                  spectra.astype(np.float32))  # inference: as they are
    data.close()
    valid = StoreBatches(tone_store / "valid.h5", 4, mixup_alpha=0.4, multiple_of=3)
    x, y, weight = valid[0]  # in order: no mixing, and padded for the devices
    assert len(weight) == 6 and (x["mix"] == 1).all() and list(weight) == [1] * 4 + [0] * 2
    assert (y.max(axis=1) == 1).all()
    valid.close()
    with pytest.raises(InputError, match="batch_size must be even with mixup"):
        TrainConfig(batch_size=7)
    assert TrainConfig(batch_size=7, augment=False).mixup() == 0


AUGMENTATIONS = [SpectralGain(12.0, 1.0, tilt_db=6.0, seed=0), FrequencyShift(2, seed=0),
                 SpecAugment(2, 3, 2, 4, seed=0)]


@pytest.mark.parametrize("layer", AUGMENTATIONS, ids=lambda layer: type(layer).__name__)
def test_augmentation_is_identity_at_inference_and_changes_training_input(layer):
    x = np.random.default_rng(0).uniform(0, 5, (6, 40, 24)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    y = np.asarray(layer(x, training=True))
    assert y.shape == x.shape and np.isfinite(y).all() and not np.array_equal(y, x)


def test_augmentation_of_a_small_note_keeps_most_of_it_and_no_band_is_always_0():
    default = build_model(TrainConfig(), FeatureParams(), mean=np.zeros(513), std=np.ones(513))
    masks = default.get_layer("specaugment")  # the settings' widths on the default shape
    assert (masks.freq_width, masks.time_width, default.get_layer("shift").max_bins) == (12, 20, 2)
    small = FeatureParams(kind="mel", n_mels=8, duration=0.05, n_fft=256, hop_length=64)
    assert small.shape == (13, 8)
    model = build_model(TrainConfig(time_pool=1), small, mean=np.zeros(8), std=np.ones(8))
    masks, shift = model.get_layer("specaugment"), model.get_layer("shift")
    assert (masks.freq_width, masks.time_width, shift.max_bins) == (1, 2, 0)
    x = np.random.default_rng(0).uniform(1, 5, (400, 13, 8)).astype(np.float32)
    kept = np.mean(np.asarray(masks(x, training=True)) != 0)
    assert kept > 0.6  # 12-band, 20-frame masks had kept 7 % of it, and wiped 40 % of notes
    assert default.get_layer("bands").units == 96
    coarse = FeatureParams(sample_rate=48000, n_fft=256)  # 129 bins, 188 Hz apart
    model = build_model(TrainConfig(), coarse, mean=np.zeros(129), std=np.ones(129))
    bands = model.get_layer("bands").get_weights()[0]
    assert bands.shape == (129, 77) and (bands.sum(axis=0) > 0.99).all()  # 19 bands left out


def test_default_model_pools_the_configured_frames_first():
    params = FeatureParams()
    for frames in (2, 4):
        model = build_model(QUICK.replace(time_pool=frames), params, mean=np.zeros(513),
                            std=np.ones(513))
        assert model.get_layer("time_pool").size == frames
    with pytest.raises(InputError, match="time_pool must be >= 1"):
        TrainConfig(time_pool=0)
    saved = TrainConfig().to_dict()
    assert TrainConfig.from_dict(saved).time_pool == 4
    del saved["time_pool"]  # a run saved before the field: it pooled 2, and resumes so
    assert TrainConfig.from_dict(saved).time_pool == 2


@pytest.mark.parametrize("frames", [251, 252, 249, 3, 1])
@pytest.mark.parametrize("size", [1, 2, 4])
def test_frame_pool_is_tensorflows_same_average_pooling(frames, size):
    """What AveragePooling2D((size, 1), padding='same') gives under TensorFlow and JAX (the
    windows at the edges average only the frames they hold), whatever the backend."""
    x = np.random.default_rng(frames).normal(size=(2, frames, 3, 1)).astype(np.float32)
    windows = -(-frames // size)
    pad = windows * size - frames
    starts = np.arange(windows) * size - pad // 2
    expected = np.stack([x[:, max(a, 0):a + size].mean(axis=1) for a in starts], axis=1)
    got = np.asarray(FramePool(size)(x))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_default_model_averages_stft_bins_into_the_configured_bands():
    params = FeatureParams()
    mean, std = np.zeros(513), np.ones(513)
    for bands in (96, 32):
        model = build_model(QUICK.replace(bands=bands), params, mean=mean, std=std)
        weights = model.get_layer("bands").get_weights()[0]
        assert weights.shape == (513, bands)
        np.testing.assert_allclose(weights.sum(axis=0), 1, rtol=1e-5)  # each band: an average
    mel = FeatureParams(kind="mel", n_mels=64)
    model = build_model(QUICK, mel, mean=np.zeros(64), std=np.ones(64))
    assert "bands" not in [layer.name for layer in model.layers]


def test_spectral_gain_is_a_gain_in_the_feature_domain():
    """Features log(1 + c*S): a gain g on S maps v to log(1 + g * (exp(v) - 1)). The gain in dB
    is a level plus a tilt linear in log-frequency, the same in every frame, within bounds."""
    x = np.random.default_rng(1).uniform(0.5, 6, (64, 5, 30)).astype(np.float32)
    y = np.asarray(SpectralGain(12.0, 1.0, tilt_db=6.0, seed=3)(x, training=True))
    db = 20 * np.log10(np.expm1(y.astype(np.float64)) / np.expm1(x.astype(np.float64)))
    np.testing.assert_allclose(db, db[:, :1].repeat(5, axis=1), atol=1e-3)  # every frame
    position = np.log1p(np.arange(30)) / np.log1p(29)
    for note in db[:, 0]:  # level + tilt * position: linear in log-frequency
        np.testing.assert_allclose(note, np.polyval(np.polyfit(position, note, 1), position),
                                   atol=1e-3)
    assert np.abs(db).max() <= 12 + 6 + 1e-3
    assert (db[:, 0, 0] > 3).any() and (db[:, 0, 0] < -3).any()
    silent = np.zeros((4, 5, 30), np.float32)  # silence stays silent whatever the gain
    np.testing.assert_array_equal(
        np.asarray(SpectralGain(12.0, 1.0, 6.0, seed=0)(silent, training=True)), silent)


def run(*args):
    return subprocess.run([sys.executable, "-m", "analysis.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", ["predict", "embed"])  # load a model; import Keras
def test_a_model_command_prints_no_tensorflow_banner(trained, tone_root, tmp_path, command):
    wav = next((tone_root / "test" / "audio").glob("*.wav"))
    args = ([trained[0], wav] if command == "predict" else
            [tmp_path / "nostore", trained[0]])
    result = run(command, *args)
    assert "oneDNN" not in result.stderr and "absl" not in result.stderr, result.stderr
    assert result.returncode == (0 if command == "predict" else 1), result.stderr


def one_line_error(result, message):
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    # one line of ours (TensorFlow's own start-up notes may stand beside it)
    assert len([l for l in result.stderr.splitlines() if "timbremap: error" in l]) == 1, \
        result.stderr


def test_a_model_file_that_unpacks_to_far_more_than_it_holds_is_not_loaded(trained, tmp_path):
    import zipfile
    model_dir, _ = trained
    bomb = tmp_path / "bomb"
    shutil.copytree(model_dir, bomb)
    with zipfile.ZipFile(bomb / "model.keras", "a", zipfile.ZIP_DEFLATED) as zf, \
            zf.open("padding.bin", "w") as member:  # 96 MiB of zeros: a few hundred KB
        for _ in range(96):
            member.write(bytes(2**20))
    size = (bomb / "model.keras").stat().st_size
    with pytest.raises(ModelError, match=rf"model.keras: its members unpack to [\d,]+ bytes, more "
                                         rf"than [\d,]+ for a file of {size:,}"):
        load_trained(bomb)


def test_bad_inputs(trained, tone_root, tone_store, tmp_path):
    model_dir, _ = trained
    (tmp_path / "nosplit").mkdir()
    one_line_error(run("train", tmp_path / "nosplit", tmp_path / "m"),
                   "nosplit: no split files (*.h5) in this folder")
    other = tmp_path / "other"
    build_store(tone_root, other, FeatureParams(kind="mel", n_mels=32), jobs=1, progress=False,
                splits=["test"])
    one_line_error(run("evaluate", other, model_dir), "other features than the model")
    one_line_error(run("evaluate", tone_store, tmp_path / "nomodel"), "no such model folder")
    one_line_error(run("evaluate", tone_store, model_dir / "model.keras"),
                   "model.keras: is a file; a model is the folder that holds model.keras")
    from training.modeldir import ModelError, load_trained
    with pytest.raises(ModelError, match="/dev/null: not a folder but a pipe, socket or device"):
        load_trained("/dev/null")  # it had said "no such model folder"
    piped = shutil.copytree(model_dir, tmp_path / "piped")
    (piped / "config.json").unlink()
    os.mkfifo(piped / "config.json")  # read, it would wait for a writer
    with pytest.raises(ModelError, match="config.json: not a file but a folder, pipe, socket"):
        load_trained(piped)  # it had said "no config.json"
    (piped / "config.json").unlink()
    (piped / "config.json").symlink_to(piped / "config.json")
    with pytest.raises(ModelError, match="config.json: is a link to nothing"):
        load_trained(piped)
    one_line_error(run("train", tone_store, tmp_path / "m", "--budget-minutes", "-1"),
                   "--budget-minutes must be a finite number of minutes, at least 0 (0: no "
                   "limit), got -1")
    one_line_error(run("train", tone_store, tmp_path / "m", "--budget-minutes", "inf"),
                   "--budget-minutes must be a finite number of minutes, at least 0 (0: no "
                   "limit), got inf")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((model_dir / "config.json").read_text())
    (broken / "model.keras").write_bytes(b"not a zip")
    one_line_error(run("predict", broken, "x.wav"), "model.keras: not a Keras model file")
    epochs = json.loads((model_dir / "config.json").read_text())["train"]["epochs"]
    one_line_error(run("train", tone_store, broken, "--resume", "--epochs", (epochs or 1) + 1),
                   "broken: its run had finished, so --resume has nothing to go on with; a run "
                   "with --epochs starts again")  # it holds model.keras
    config = json.loads((model_dir / "config.json").read_text())
    for damage, message in ((lambda c: "[" * 100_000 + "]" * 100_000, "not valid json (nested "
                                                                        "too deeply)"),
                            (lambda c: json.dumps({**c, "labels": []}), "its labels are [], not "
                                                                         "a list of label names"),
                            (lambda c: json.dumps({**c, "features": {**c["features"],
                                                                     "duration": 1e9}}),
                             "a note's features must be at most 4096 MiB")):
        (broken / "config.json").write_text(damage(config))
        one_line_error(run("predict", broken, "x.wav"), message)
    (broken / "model.keras").write_bytes((model_dir / "model.keras").read_bytes())
    for features, message in (({"duration": 8.0}, r"config.json's features make notes of shape "
                                                  r"\(501, 513\), but model.keras takes "
                                                  r"\(251, 513\): they are not one model's"),
                              ({"sample_rate": 32000}, r"make notes of shape \(501, 513\)")):
        (broken / "config.json").write_text(json.dumps(
            {**config, "features": {**config["features"], **features}}))
        with pytest.raises(ModelError, match=message):  # before any audio is read
            load_trained(broken)
    one_line_error(run("train", tone_store, tone_store), f"{tone_store}: is the store; train "
                                                         f"into a folder of its own")
    one_line_error(run("train", tone_store, tone_store / "nested" / ".."),
                   "is the store; train into a folder of its own")
    other_store = tmp_path / "other_store"
    other_store.mkdir()
    (other_store / "train.h5").write_bytes(b"")
    one_line_error(run("train", tone_store, other_store), "holds files that are not a timbremap "
                                                          "model's (train.h5)")
    with pytest.raises(ModelError, match=r"no model.keras; it holds split files, test.h5, "
                                          r"train.h5, valid.h5: a store\? Give the folder"):
        load_trained(tone_store)  # the arguments swapped: not "train into the store"
    stopped = tmp_path / "stopped"  # what Ctrl-C leaves of a run: its backup, no model.keras
    (stopped / "backup").mkdir(parents=True)
    (stopped / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"stopped: not a trained model folder \(no model.keras;"
                                          r" it holds a run that was stopped before it finished: "
                                          r"go on with 'timbremap train STORE .*stopped --resume'"):
        load_trained(stopped)
    from featurestore.files import exclusive_lock
    with exclusive_lock(stopped, lambda: AssertionError("held")):  # as a running train holds it
        with pytest.raises(ModelError, match=r"stopped: not a trained model yet \(no "
                                              r"model.keras\): a 'timbremap train' is writing it"):
            load_trained(stopped)
    from featurestore.store import open_split
    with pytest.raises(StoreError, match="split must be a name such as train, valid or test"):
        open_split(tone_store, "../store/test")  # the command line's --split takes only those
    one_line_error(run("train", tone_store, tmp_path / "m", "--learning-rate", "inf"),
                   "--learning-rate must be positive and finite")
    (tmp_path / "bad.wav").write_bytes(b"RIFF")
    wav = next((tone_root / "test" / "audio").glob("*.wav"))
    result = run("predict", model_dir, tmp_path / "bad.wav", wav)
    assert result.returncode == 1 and "bad.wav" in result.stderr
    assert wav.name in result.stdout and "Traceback" not in result.stderr


def test_predict_names_a_file_whose_name_is_not_utf8_or_holds_a_line_break(
        trained, tone_root, tmp_path):
    wav = next((tone_root / "test" / "audio").glob("*.wav"))
    latin = os.fsencode(tmp_path) + b"/caf\xe9.wav"
    shutil.copyfile(wav, latin)
    result = run("predict", trained[0], os.fsdecode(latin), "--json")
    assert result.returncode == 0, result.stderr
    assert "\\udce9" in result.stdout  # ASCII JSON: every parser reads it
    (row,) = json.loads(result.stdout)
    assert os.fsencode(row["path"]) == latin
    folder = tmp_path / "names"  # a line break in a name: still one line a file
    folder.mkdir()
    shutil.copyfile(wav, folder / "new\nline.wav")
    (folder / "bad\nname.wav").write_bytes(b"RIFF")
    result = run("predict", trained[0], folder)
    assert result.returncode == 1 and result.stdout.count("\n") == 1, result.stdout
    assert result.stdout.startswith(f"{folder}/new\\nline.wav: ")
    assert f"error: {folder}/bad\\nname.wav: " in result.stderr, result.stderr


def test_cli_train_prints_only_results_on_stdout(tone_store, tmp_path):
    result = run("train", tone_store, tmp_path / "m", "--epochs", "1", "--steps-per-epoch", "1",
                 "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("model: "), result.stdout  # no progress bar
    assert "1/1" in result.stderr  # Keras's progress went to stderr


def test_a_second_train_into_a_model_folder_being_trained_into_is_refused(tone_store,
                                                                          tmp_path):
    from featurestore.files import exclusive_lock
    folder = tmp_path / "m"
    folder.mkdir()
    with exclusive_lock(folder, lambda: AssertionError("held")):  # as a running train holds it
        with pytest.raises(ModelError, match="m: another 'timbremap train' is writing this "
                                             "model folder"):
            train(tone_store, folder, QUICK, verbose=0)
    assert list(folder.iterdir()) == []


def test_training_that_diverges_is_an_error(tone_store, tmp_path):
    (tmp_path / "mine").mkdir()
    for folder in (tmp_path / "m", tmp_path / "mine"):
        with pytest.raises(ModelError, match=r"training diverged .* lower --learning-rate, or "
                                             r"--weight-decay where it was given \(the run kept "
                                             r"nothing\)$"):
            train(tone_store, folder, QUICK.replace(learning_rate=1e30, augment=False),
                  verbose=0)
    assert not (tmp_path / "m").exists()  # made by the run, which kept nothing
    assert list((tmp_path / "mine").iterdir()) == []  # the user's, left
    train(tone_store, tmp_path / "m", QUICK, verbose=0)  # the hint, followed
    assert (tmp_path / "m" / "model.keras").is_file()


def test_a_model_that_learnt_nothing_is_warned_of(tone_store, tmp_path, caplog):
    from training.trainsplits import learnt_nothing
    store = tmp_path / "store"  # valid: 11 notes, one a family
    shutil.copytree(tone_store, store)

    def rows(*accuracies):
        return [{"val_accuracy": a, "loss": 2.0, "val_loss": 9.0} for a in accuracies]
    assert learnt_nothing(store, rows(0.2, 0.0909)) is None
    assert learnt_nothing(store, [{"val_accuracy": 0.5, "val_loss": float("nan")}]) is None
    assert learnt_nothing(store, rows(np.float32(1 / 11))).startswith(
        "no epoch's validation accuracy (at best 0.091) beat a guess among the valid split's 11 "
        "labels (0.091): the model learnt nothing")
    with h5py.File(store / "valid.h5", "r+") as f:  # 8 notes of one label, one of 3 others
        f["labels"][:8] = 0
    assert learnt_nothing(store, rows(0.25)) is not None  # a guess among 4: 0.25
    assert learnt_nothing(store, rows(0.3)) is None  # below 8 / 11, but no guess
    with h5py.File(store / "valid.h5", "r+") as f:
        f["labels"][:] = 0  # one label: any model is right, and none is warned of
    assert learnt_nothing(store, rows(1.0)) is None
    assert learnt_nothing(tmp_path / "gone", rows(0.0)) is None  # unreadable: no warning
    with caplog.at_level(logging.WARNING, logger="training.train"):
        train(tone_store, tmp_path / "m", QUICK, verbose=0)
        assert "learnt nothing" not in caplog.text
        # a rate this high sends the loss up without making it infinite
        train(tone_store, tmp_path / "m", QUICK.replace(learning_rate=50, augment=False),
              verbose=0, overwrite=True)
    assert re.search(r"m: no epoch's validation accuracy \(at best 0.091\) beat a guess among "
                     r"the valid split's 11 labels \(0.091\): the model learnt nothing that "
                     r"the valid split shows in \d+ epochs? \(too few epochs or notes do this, "
                     r"and so does a learning rate too high: try a lower one\)", caplog.text)


def test_a_store_that_fails_while_training_reads_it_is_its_own_error(tone_store, tmp_path,
                                                                      monkeypatch):
    read = StoreBatches._read

    def failing(self, index):  # as a store on object storage does when its endpoint goes
        if self.shuffle and self.epoch == 1:  # train's batches, in the second epoch
            raise StoreError(f"{self.reader.path}: cannot be read (EndpointConnectionError)")
        return read(self, index)
    monkeypatch.setattr(StoreBatches, "_read", failing)
    with pytest.raises(StoreError, match=r"train.h5: cannot be read \(EndpointConnectionError"):
        train(tone_store, tmp_path / "m", QUICK, verbose=0)  # not the backend's error around it


def test_an_epoch_whose_validation_loss_is_not_finite_is_no_model_and_stops_the_run():
    from training.runfiles import finite
    config = TrainConfig(epochs=2, budget_minutes=None)
    rows = [{"epoch": 0.0, "loss": 1.0, "val_loss": float("nan"), "val_accuracy": 0.3}]
    assert not finite(rows[0])  # the model answers NaN: its accuracy is argmax's of NaN
    assert should_stop(rows, config) == "the loss was not finite in epoch 1"  # not "2 epochs"
    rows.append({**rows[0], "epoch": 1.0, "loss": float("inf")})
    assert should_stop(rows, config) == "the loss was not finite in epoch 1"
    assert finite({"loss": 0.5, "val_loss": 0.7}) and finite({"loss": 0.5})


def test_a_valid_split_without_notes_is_one_line(tmp_path):
    from helpers import make_tone_split, write_note
    make_tone_split(tmp_path / "root" / "train", 11, seed=0)
    valid = make_tone_split(tmp_path / "root" / "valid", 1, seed=1)
    write_note(tmp_path / "root" / "valid", next(iter(valid)), np.zeros(16000))  # silent
    build_store(tmp_path / "root", tmp_path / "store", jobs=1, progress=False)
    one_line_error(run("train", tmp_path / "store", tmp_path / "m", "--epochs", "1"),
                   "valid.h5: the split holds no notes")


def test_a_store_drawn_without_a_valid_split_says_how_to_give_it_one(tmp_path):
    from featurestore.describe import describe_store
    from featurestore.layouts import InputOptions
    for k, label in enumerate(("bell", "drum")):
        (tmp_path / "set" / label).mkdir(parents=True)
        for i in range(6):
            sf.write(tmp_path / "set" / label / f"{i}.wav",
                     0.3 * np.sin(np.arange(8000) * (0.05 + 0.1 * k + 0.01 * i)), 16000)
    build_store(tmp_path / "set", tmp_path / "store", jobs=1, progress=False,
                inputs=InputOptions(valid_fraction=0.0, test_fraction=0.3))
    assert not (tmp_path / "store" / "valid.h5").exists()
    inputs = [line for line in describe_store(tmp_path / "store") if "inputs" in line]
    assert inputs and all("test_fraction=0.3" in line and "valid_fraction=0.0" in line
                          for line in inputs)  # a share of 0 is shown too
    one_line_error(run("train", tmp_path / "store", tmp_path / "m", "--epochs", "1"),
                   "valid.h5: the store has no 'valid' split; training chooses its best epoch "
                   "and when to stop on it: build the store with a valid/ folder, or with "
                   "--valid-fraction above 0")


def test_balanced_accuracy_of_a_split_of_one_label_warns_of_nothing():
    import warnings
    from training.evaluate import _balanced_accuracy
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _balanced_accuracy(np.array([2, 2, 2]), np.array([2, 2, 2])) == 1.0
        assert _balanced_accuracy(np.array([2, 2]), np.array([2, 3])) == 0.5


def test_labels_of_few_notes_are_warned_of_the_fewest_first(caplog):
    from training.evaluate import _warn_of_few_notes
    names = ("cello", "harp", "oboe", "tuba")
    with caplog.at_level(logging.WARNING, logger="training.evaluate"):
        _warn_of_few_notes("t.h5", names, np.array([5.0, 0.0, 4.0, 1.0]))  # as evaluate counts
        _warn_of_few_notes("u.h5", names, np.array([5, 0, 9, 30]))  # none of 1 to 4 notes
    assert [r.getMessage() for r in caplog.records] == [
        "t.h5: 2 of its 3 labels have fewer than 5 notes (tuba 1, oboe 4): their recall, and "
        "the balanced accuracy that averages the recalls, rest on a note or a few"]


def test_a_read_only_model_folder_still_evaluates_and_is_not_trained_into(
        trained, tone_store, tmp_path, monkeypatch, capsys, caplog):
    import training.evaluate
    import training.images
    import training.train
    from analysis.cli import main
    from featurestore.errors import BuildError

    monkeypatch.setattr(training.evaluate, "plot_confusion", read_only)
    assert main(["evaluate", str(tone_store), str(trained[0]), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "confusion matrix" not in out  # the scores, no plot
    assert "confusion_test.png: cannot write the confusion matrix (Read-only file system); " \
           "give --confusion PATH" in caplog.text
    assert write_confusion(evaluate(tone_store, trained[0], "test")) is None

    def unwritable(path):  # as a folder no file can be made in is told
        raise InputError(f"{path}: cannot be written (Read-only file system in {path.parent})")
    monkeypatch.setattr(training.images, "check_writable_in", unwritable)
    caplog.clear()
    assert write_confusion(evaluate(tone_store, trained[0], "test")) is None  # the default
    assert "confusion_test.png: cannot be written (Read-only file system in " in caplog.text
    def scored(*args, **kwargs):
        raise AssertionError("the split was scored before --confusion was refused")
    monkeypatch.setattr(training.evaluate, "predict_split", scored)
    assert main(["evaluate", str(tone_store), str(trained[0]), "--confusion",
                 str(tmp_path / "c.png")]) == 1
    assert f"{tmp_path / 'c.png'}: cannot be written (Read-only file system in {tmp_path})" \
        in caplog.text

    def cannot(out):
        raise BuildError(f"{out}: cannot write there (Read-only file system)")
    monkeypatch.setattr(training.train, "check_writable", cannot)
    with pytest.raises(ModelError, match=r"m: cannot write there \(Read-only file system\)"):
        train(tone_store, tmp_path / "m", TrainConfig(epochs=1, steps_per_epoch=1, batch_size=4,
                                                      width=8, budget_minutes=None), verbose=0)


def test_ctrl_c_says_how_to_resume(tone_store, tmp_path, monkeypatch, caplog):
    import training.train
    from analysis.cli import cmd_train
    from analysis.options import make_parser

    def interrupted(store, model_dir, *args, **kwargs):  # as a run stopped mid-epoch
        model_dir.mkdir(exist_ok=True)
        (model_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt
    monkeypatch.setattr(training.train, "train", interrupted)
    monkeypatch.chdir(tmp_path)
    args = make_parser().parse_args(["train", str(tone_store), "-my m"])  # pasted as typed
    with pytest.raises(KeyboardInterrupt):  # main then says "interrupted" and exits 130
        cmd_train(args)
    assert f"no epoch had finished: 'timbremap train {tone_store} './-my m' --resume' " \
           f"starts it again" in caplog.text
    (tmp_path / "-my m" / "backup").mkdir()
    (tmp_path / "-my m" / "backup" / "epoch-0002.weights.h5").write_bytes(b"")
    with pytest.raises(KeyboardInterrupt):
        cmd_train(args)
    assert f"2 finished epochs kept: 'timbremap train {tone_store} './-my m' " \
           f"--resume' continues the run" in caplog.text


def test_a_full_disk_says_whether_an_epoch_was_kept(tone_store, tmp_path, monkeypatch):
    import errno
    import training.train
    model = tmp_path / "m"

    def full(store, model_dir, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(model_dir / "best.keras"))
    monkeypatch.setattr(training.train, "_fit", full)
    config = TrainConfig(epochs=1, steps_per_epoch=1, batch_size=4, width=8)
    with pytest.raises(ModelError, match=r"best.keras: cannot be written \(No space left on "
                                         rf"device\); no epoch had finished: 'timbremap train "
                                         rf"{tone_store} {model} --resume' starts it again, "
                                         r"once there is room$"):
        train(tone_store, model, config, verbose=0)
    (model / "backup").mkdir()
    (model / "backup" / "epoch-0001.weights.h5").write_bytes(b"")
    with pytest.raises(ModelError, match=r"; 1 finished epoch kept: 'timbremap train "
                                         rf"{tone_store} {model} --resume' continues the run, "
                                         r"once there is room$"):
        train(tone_store, model, config, resume=True, verbose=0)
    shutil.rmtree(model)
    monkeypatch.setattr(training.train, "atomic_write_text", lambda path, text: full(
        None, path.parent))  # config.json: not even that written
    with pytest.raises(ModelError, match=r"the run had not started: run the same command "
                                         r"again, once there is room$"):
        train(tone_store, model, config, verbose=0)
    assert not model.exists()  # the folder it made, removed: the same command starts it
    from training.modeldir import resume_hint
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.keras").write_bytes(b"")  # a finished run's, before --overwrite cleared it
    assert resume_hint(tone_store, model) == f"the model in {model} is as it was"


def test_an_interrupted_predict_json_prints_a_closed_array_of_the_files_done(
        tmp_path, monkeypatch, capsys):
    import numpy as np

    import training.predict
    from analysis.cli import cmd_predict
    from analysis.options import make_parser
    from training.predict import FilePrediction

    def two_then_stopped(model, files, **kwargs):
        yield FilePrediction(Path("a.wav"), np.array([0.9, 0.1], np.float32), labels=("x", "y"))
        yield FilePrediction(Path("b.wav"), error="b.wav: cannot decode audio")
        raise KeyboardInterrupt
    monkeypatch.setattr(training.predict, "iter_predictions", two_then_stopped)
    args = make_parser().parse_args(["predict", str(tmp_path), "a.wav", "b.wav", "--json"])
    with pytest.raises(KeyboardInterrupt):  # main then says "interrupted" and exits 130
        cmd_predict(args)
    rows = json.loads(capsys.readouterr().out)
    assert [row["path"] for row in rows] == ["a.wav", "b.wav"]
    assert rows[0]["top"] == [["x", 0.9], ["y", 0.1]] and "error" in rows[1]

    def stopped_loading(model, files, **kwargs):  # Ctrl-C while the model loads
        raise KeyboardInterrupt
    monkeypatch.setattr(training.predict, "iter_predictions", stopped_loading)
    with pytest.raises(KeyboardInterrupt):
        cmd_predict(args)
    assert json.loads(capsys.readouterr().out) == []
