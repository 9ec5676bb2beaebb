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


def test_curves_mark_whole_epochs_and_where_the_rate_was_lowered(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from training.progress import plot_curves
    history = [dict(epoch=e, loss=1.0 / (e + 1), val_loss=1.0, accuracy=0.5, val_accuracy=0.5,
                    learning_rate=2e-3 if e < 3 else 1e-3) for e in range(5)]
    seen, close = [], plt.close

    def closing(fig):
        ax = fig.axes[0]
        seen.append(([t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]],
                     [line.get_xdata()[0] for line in ax.lines if line.get_color() == "tab:red"
                      and len(line.get_xdata())],
                     [text.get_text() for text in ax.get_legend().get_texts()]))
        close(fig)
    monkeypatch.setattr(plt, "close", closing)
    plot_curves(history, tmp_path / "curves.png", "run", augmented=True)
    (ticks, lowered, legend), = seen
    assert all(float(t).is_integer() for t in ticks)  # epochs, not 1.25
    assert lowered == [3.5]  # before epoch 4, the first at the halved rate
    assert legend == ["train loss (augmented batches)", "validation loss",
                      "learning rate lowered"]
