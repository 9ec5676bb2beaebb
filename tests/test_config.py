"""TrainConfig from Python: each field of its type and range, NumPy's numbers taken as Python's,
``replace`` and ``from_dict`` as a caller of the library meets them (no TensorFlow)."""
import json
import sys

import numpy as np
import pytest

from featurestore.errors import InputError
from training.config import TrainConfig


@pytest.mark.parametrize("values, message", [
    ({"epochs": "2"}, "epochs must be an integer or None, got '2'"),
    ({"epochs": 2.5}, "epochs must be an integer or None, got 2.5"),  # had failed in Keras
    ({"batch_size": True}, "batch_size must be an integer, got True"),
    ({"learning_rate": "1e-3"}, "learning_rate must be a number or None, got '1e-3'"),
    ({"patience": None}, "patience must be an integer, got None"),
    ({"balance": "no"}, "balance must be True or False, got 'no'"),  # had been on
    ({"augment": 0}, "augment must be True or False, got 0"),
    ({"model": 3}, "model must be a string, got 3"),
    ({"bn_momentum": -3.0}, r"bn_momentum must be in \[0, 1\], got -3.0"),  # had trained
    ({"bn_momentum": float("nan")}, r"bn_momentum must be in \[0, 1\], got nan"),
    ({"budget_minutes": 10 ** 400}, "budget_minutes must be a finite number"),
    ({"shift_bins": -3}, "shift_bins must be >= 0, got -3"),
    ({"time_mask_frames": -5}, "time_mask_frames must be >= 0, got -5"),
    ({"freq_masks": -1}, "freq_masks must be >= 0, got -1"),
])
def test_a_value_of_another_type_or_out_of_range_is_refused(values, message):
    with pytest.raises(InputError, match=message):
        TrainConfig(**values)


@pytest.mark.skipif(sys.version_info < (3, 10), reason="keyword-only fields need Python 3.10")
def test_the_configuration_classes_take_their_fields_by_name():
    from analysis.demo import DemoOptions
    from featurestore.inputoptions import InputOptions
    from featurestore.params import FeatureParams
    from featurestore.render import RenderOptions
    for kind in (TrainConfig, FeatureParams, RenderOptions, InputOptions, DemoOptions):
        with pytest.raises(TypeError, match="positional argument"):
            kind("default")  # TrainConfig("default", 3) had set epochs=3 without a word
    assert TrainConfig(model="default", epochs=3).epochs == 3


def test_numpy_numbers_are_taken_as_python_s():
    config = TrainConfig(epochs=np.int64(3), learning_rate=np.float32(0.5), seed=np.int32(1),
                         balance=np.bool_(False), budget_minutes=5)
    values = config.to_dict()
    assert [type(values[k]) for k in ("epochs", "learning_rate", "seed", "balance",
                                      "budget_minutes")] == [int, float, int, bool, float]
    assert json.loads(json.dumps(values)) == values  # config.json takes them


def test_replace_gives_the_default_model_back_its_augmentation():
    tutorial = TrainConfig().replace(model="tutorial")
    assert not tutorial.augment and tutorial.learning_rate == 5e-4
    back = tutorial.replace(model="default")  # had stayed without augmentation
    assert back == TrainConfig()
    assert not tutorial.replace(model="default", augment=False).augment  # given


def test_from_dict_reads_a_saved_run_and_refuses_what_is_not_one():
    saved = TrainConfig(epochs=3).to_dict()
    assert TrainConfig.from_dict({**saved, "max_minutes": 28}) == TrainConfig(epochs=3)
    old = TrainConfig.from_dict({"epochs": 3, "max_minutes": 28})  # the budget's older name
    assert old.budget_minutes == 28 and old.epochs == 3
    assert TrainConfig.from_dict({"epochs": 3}).time_pool == 2  # a run saved before time_pool
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        TrainConfig(**{"epoch": 3})  # settings of one's own: a typo is refused
    with pytest.raises(InputError, match="a TrainConfig is read from a dict of its fields, got "
                                         "NoneType"):
        TrainConfig.from_dict(None)
    # a saved run's counts written as floats, switches as 0 and 1 (by hand): read as they were
    edited = TrainConfig.from_dict({**saved, "width": 16.0, "balance": 1, "augment": 0})
    assert edited == TrainConfig(epochs=3, augment=False) and type(edited.width) is int


def test_other_than_names_the_settings_given_that_a_run_did_not_start_with():
    run = TrainConfig(epochs=3, batch_size=8)
    assert TrainConfig().other_than(run) == []  # nothing given: the run's own
    assert TrainConfig(epochs=3).other_than(run) == []
    assert TrainConfig(epochs=10, learning_rate=1e-5).other_than(run) == [
        "epochs 10 (the run's 3)", "learning_rate 1e-05 (the run's 0.002)"]
    assert TrainConfig(model="tutorial").other_than(run) == [
        "model 'tutorial' (the run's 'default')"]  # not its rate and augmentation as well
    tutorial = TrainConfig(model="tutorial", epochs=2)
    assert TrainConfig(model="tutorial").other_than(tutorial) == []
    assert TrainConfig().other_than(tutorial) == []  # the default model is no setting given
    given = TrainConfig(workers=3, budget_minutes=None)  # taken anew
    assert given.other_than(run) == []
    assert given.resumed(run) == run.replace(workers=3, budget_minutes=None)
    assert TrainConfig(loader="block").other_than(run) == ["loader 'block' (the run's 'auto')"]
    assert TrainConfig().resumed(run) == run
    with pytest.raises(InputError, match="workers must be at most 64, got 65"):
        TrainConfig(workers=65).resumed(run)


def test_an_epoch_is_a_pass_of_at_least_32_batches_and_at_most_20000_notes():
    from training.config import EPOCH_MIN_STEPS, EPOCH_NOTES
    assert (EPOCH_MIN_STEPS, EPOCH_NOTES) == (32, 20_000)
    assert TrainConfig().steps(300) == 32  # a small store: its notes drawn again
    assert TrainConfig(batch_size=8).steps(300) == 38  # a pass, where it is 32 batches or more
    assert TrainConfig().steps(4_322) == 68  # the demo's: a pass
    assert TrainConfig().steps(289_205) == 313  # NSynth's: 20,000 notes
    assert TrainConfig(steps_per_epoch=3).steps(300) == 3  # as given


def test_train_refuses_what_is_not_a_config_or_callbacks_before_anything_is_made(tmp_path):
    from training.train import train
    for config in (None, {"epochs": 1}):
        with pytest.raises(InputError, match="config must be a TrainConfig"):
            train(tmp_path / "store", tmp_path / "m", config)
    for callbacks in (["x"], object()):
        with pytest.raises(InputError, match="callbacks must be a sequence of "
                                             "keras.callbacks.Callback"):
            train(tmp_path / "store", tmp_path / "m", callbacks=callbacks)
    with pytest.raises(InputError, match="verbose must be 0, 1 or 2, got 5"):
        train(tmp_path / "store", tmp_path / "m", verbose=5)
    assert not (tmp_path / "m").exists()


def test_a_model_too_large_for_the_memory_is_refused_and_usual_ones_are_not(monkeypatch):
    import training.blockorder
    from featurestore.params import FeatureParams
    monkeypatch.setattr(training.blockorder, "memory_for_cache", lambda: 2**31)  # 4 GiB in all
    shape = FeatureParams().shape
    for config in (TrainConfig(), TrainConfig(model="tutorial"), TrainConfig(width=32)):
        config.check_fits(FeatureParams(), shape)
    with pytest.raises(InputError, match=r"^width and batch_size must keep training within the "
                                         r"memory \(4.0 GiB\): the default model of width 512 "):
        TrainConfig(width=512).check_fits(FeatureParams(), shape)
    with pytest.raises(InputError, match=r"^batch_size must keep training within the memory .*"
                                         r"the tutorial model on batches of 256 notes"):
        TrainConfig(model="tutorial", batch_size=256).check_fits(FeatureParams(), shape)
    TrainConfig(width=512).check_fits(FeatureParams(), shape, resumed=True)  # resumes as it ran
