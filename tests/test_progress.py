"""Keras's progress line during ``timbremap train`` says what is known of the run's length:
``Epoch 3``, or ``Epoch 3 (at most N)``, never Keras's ``Epoch 3/1000000``."""
import re

import pytest

from training.config import TrainConfig
from training.progress import epoch_progress
from training.train import train

pytestmark = pytest.mark.full
TINY = dict(steps_per_epoch=2, batch_size=8, width=8, seed=1)


def epoch_lines(text):
    return [line for line in re.split(r"[\r\n]", text) if line.startswith("Epoch")]


@pytest.mark.parametrize("at_most, epochs, line", [(None, 1_000_000, "Epoch 3"),
                                                    (40, 40, "Epoch 3 (at most 40)")])
def test_the_epoch_line_says_the_bound_there_is(capsys, at_most, epochs, line):
    bar = epoch_progress(at_most)
    bar.set_params({"verbose": 1, "epochs": epochs, "steps": 2})
    bar.on_epoch_begin(2)
    assert epoch_lines(capsys.readouterr().out) == [line]
    bar.set_params({"verbose": 0, "epochs": epochs, "steps": 2})
    bar.on_epoch_begin(3)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("verbose", [1, 2])
def test_training_until_stopped_shows_no_made_up_epoch_count(tone_store, tmp_path, capsys,
                                                              verbose):
    config = TrainConfig(budget_minutes=1e-4, **TINY)  # stops after its first epoch
    result = train(tone_store, tmp_path / "m", config, verbose=verbose)
    out, err = capsys.readouterr()
    assert result.epochs == 1 and result.stopped.startswith("time budget")
    assert epoch_lines(err) == ["Epoch 1"] and "Epoch" not in out
    assert "/1000000" not in err and "2/2" in err  # the bar itself still counts its steps


def test_training_of_at_most_n_epochs_says_so(tone_store, tmp_path, capsys):
    train(tone_store, tmp_path / "m", TrainConfig(epochs=2, budget_minutes=None, **TINY))
    assert epoch_lines(capsys.readouterr().err) == ["Epoch 1 (at most 2)", "Epoch 2 (at most 2)"]


def test_silent_training_prints_no_epoch_line(tone_store, tmp_path, capsys):
    train(tone_store, tmp_path / "m", TrainConfig(epochs=1, **TINY), verbose=0)
    assert epoch_lines("".join(capsys.readouterr())) == []
