"""A store owns its label set: training, evaluation, prediction, the maps and ``inspect`` follow
the store's (or the model's) label names and number of classes, and a model matches a store's
labels to its own by name; it scores only notes of its labels, and embeds any. The tests that
train or load a model are in the full tier."""
import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from featurestore.describe import describe_store
from featurestore.nsynth import FAMILIES
from featurestore.reader import SpectraReader
from featurestore.store import StoreError
from helpers import load_benchmark, relabel_store

NAMES = ("cello", "dog", "kettle")
NSYNTH = "(" + ", ".join(FAMILIES) + ")"
OURS = "(cello, dog, kettle)"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def three_labels(tone_store, tmp_path_factory):
    """The tone store with the label set ``NAMES``: family ``k`` becomes label ``k % 3``."""
    store = tmp_path_factory.mktemp("labels") / "store"
    shutil.copytree(tone_store, store)
    return relabel_store(store, NAMES)


def label_lines(lines):
    """The ``labels`` lines of each split in ``describe_store``'s output, joined."""
    found, split = {}, None
    for line in lines:
        if line.startswith("== "):
            split = line.split(":")[0][3:]
        elif line.startswith("  labels") or (split in found and line.startswith(" " * 12)):
            found[split] = (found.get(split, "") + " " + line.strip()).strip()
    return found


# ---- the unit tier: no TensorFlow ----

def test_the_store_reports_its_own_label_set(three_labels, tone_store):
    with SpectraReader(three_labels / "train.h5") as reader:
        assert reader.label_names == NAMES
        counts = np.bincount(reader.labels, minlength=3)
    with SpectraReader(tone_store / "train.h5") as reader:
        assert reader.label_names == tuple(FAMILIES)
    lines = label_lines(describe_store(three_labels))
    assert lines["train"] == "labels    " + "  ".join(
        f"{name} {n}" for name, n in zip(NAMES, counts))
    assert set(lines) == {"train", "valid", "test"}
    assert "bass" not in " ".join(lines.values())


def test_inspect_shows_one_label_and_refuses_labels_out_of_the_set(three_labels, tmp_path):
    store = relabel_store(shutil.copytree(three_labels, tmp_path / "one"), ["only"],
                          relabel=np.zeros_like)
    assert label_lines(describe_store(store))["test"] == "labels    only 11"
    with h5py.File(store / "test.h5", "r+") as f:
        f["labels"][:2] = [4, -1]  # not in the label set (a damaged file)
    unreadable = {}
    lines = describe_store(store, unreadable=unreadable)
    assert f"== test: cannot be read: {store / 'test.h5'}: /labels holds -1, but its attr " \
           f"names lists 1 name (indices 0 to 0): the file is damaged" in lines
    assert list(unreadable) == ["test"] and label_lines(lines)["train"] == "labels    only 22"


def test_label_colours_keep_nsynths_and_fit_any_number():
    import matplotlib
    from analysis.plot import family_colors, label_colors
    tab20 = matplotlib.colormaps["tab20"]
    before = [matplotlib.colors.to_hex(tab20(i * 2 % 20 + (i * 2 // 20))) for i in range(11)]
    assert family_colors() == label_colors(11) == before  # NSynth's families as they were
    assert label_colors(3) == before[:3]
    for n in (1, 2, 20, 21, 64):
        colors = label_colors(n)
        assert len(colors) == len(set(colors)) == n, n
    assert len(label_colors(300)) == 300  # past Glasbey's 256, its colours again
    # 60 labels: no two colours closer than 10 in CIE76 (sRGB, D65), where 2 is barely seen
    rgb = np.array([matplotlib.colors.to_rgb(c) for c in label_colors(60)])
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                             [0.0193, 0.1192, 0.9505]]).T / [0.95047, 1.0, 1.08883]
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    lab = np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)
    apart = np.linalg.norm(lab[:, None] - lab[None], axis=2) + np.eye(60) * 1e3
    assert apart.min() > 10


def tsne_split_file(path: Path, names, per_label: int = 4):
    """A minimal split file holding what ``plot`` and ``map`` read: notes of the label set
    ``names`` and a ``/tsne`` map of them."""
    n = per_label * len(names)
    with h5py.File(path, "w") as f:
        f["spectra"] = np.zeros((n, 1, 1), np.float16)
        f["names"] = np.array([f"note{i}" for i in range(n)], dtype=h5py.string_dtype())
        f["pitch"] = f["velocity"] = np.full(n, 60, np.int16)
        f["labels"] = np.repeat(np.arange(len(names)), per_label).astype(np.int32)
        f["labels"].attrs["names"] = list(names)
        f["tsne"] = np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32)
        f["tsne"].attrs.update(source="embeddings", trustworthiness=0.9, knn_accuracy_map=0.8)


@pytest.mark.parametrize("n", [3, 30])
def test_plot_legend_names_the_labels_and_fits(tmp_path, monkeypatch, n):
    import matplotlib.image
    import matplotlib.pyplot as plt
    from analysis.plot import plot_map
    names = [f"sound_class_number_{i}" for i in range(n)] if n > 3 else list(NAMES)
    tsne_split_file(tmp_path / "test.h5", names)
    legends, close = [], plt.close

    def closing(fig):
        legends.append([t.get_text() for t in fig.legends[0].get_texts()])
        close(fig)
    monkeypatch.setattr(plt, "close", closing)
    out = plot_map(tmp_path, tmp_path / "map.png")
    assert legends == [names]
    image = matplotlib.image.imread(out)[..., :3]
    for edge in (image[:, :3], image[:, -3:], image[:3], image[-3:]):  # nothing cut off
        assert edge.min() > 0.95


def test_plot_keeps_its_panel_and_the_map_s_proportions_beside_long_placed_names(
        tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from analysis.placements import Placed, write_placed
    from analysis.plot import plot_map
    tsne_split_file(tmp_path / "test.h5", NAMES)
    with h5py.File(tmp_path / "test.h5", "r+") as f:
        f["tsne"][:, 1] *= 0.05  # a flat map stays flat
        right = float(f["tsne"][:, 0].max())
    write_placed(tmp_path, [Placed(f"/new/a rather long name of placed sound {k} recorded "
                                   f"outdoors.wav", "test", right, 0.0, "cello")
                            for k in range(3)])
    seen, close = [], plt.close

    def closing(fig):
        ax = fig.axes[0]
        seen.append((ax.get_position().width, ax.get_aspect(),
                     [t.get_text() for t in ax.texts], [t.get_ha() for t in ax.texts]))
        close(fig)
    monkeypatch.setattr(plt, "close", closing)
    plot_map(tmp_path, tmp_path / "map.png")
    (width, aspect, texts, sides), = seen
    assert width > 0.8 and aspect == 1.0  # the names leave the panel as wide as it was
    assert len(set(texts)) == 3 and all(len(text) <= 24 for text in texts)
    assert sides == ["right"] * 3  # at the map's right edge, written to the star's left


def test_plot_and_map_refuse_a_map_that_is_not_finite(tmp_path):
    from analysis.mapview import write_map
    from analysis.plot import plot_map
    tsne_split_file(tmp_path / "test.h5", NAMES)
    with h5py.File(tmp_path / "test.h5", "r+") as f:
        f["tsne"][0] = [np.nan, np.inf]  # drawn nowhere, and written into the page as NaN
    message = re.escape(f"{tmp_path / 'test.h5'}: its /tsne map is damaged (not finite "
                        f"coordinates, two a note); run 'timbremap tsne' again")
    with pytest.raises(StoreError, match=message):
        plot_map(tmp_path, tmp_path / "map.png")
    with pytest.raises(StoreError, match=message):
        write_map(tmp_path, tmp_path / "map")


def test_plot_and_map_refuse_splits_of_different_label_sets(tmp_path):
    from analysis.mapview import write_map
    from analysis.plot import plot_map
    tsne_split_file(tmp_path / "test.h5", NAMES)
    tsne_split_file(tmp_path / "train.h5", ["cello", "dog"])
    message = re.escape(f"{tmp_path / 'test.h5'} holds labels {OURS}, but "
                        f"{tmp_path / 'train.h5'} holds (cello, dog): a store's splits share one "
                        f"label set (only in test: (kettle))") + "$"
    with pytest.raises(StoreError, match=message):
        plot_map(tmp_path, tmp_path / "map.png")
    with pytest.raises(StoreError, match="a store's splits share one label set"):
        write_map(tmp_path, tmp_path / "map")


def test_confusion_plot_scales_with_the_labels(tmp_path):
    import matplotlib.image
    from training.evaluate import plot_confusion
    sizes = []
    for n in (3, 11, 30, 60):
        names = [f"label_{i}" for i in range(n)]
        plot_confusion(np.diag(np.arange(1, n + 1)) + 1, tmp_path / f"{n}.png", "title",
                       names=names)
        assert (tmp_path / f"{n}.png").read_bytes()[:8] == PNG
        sizes.append(matplotlib.image.imread(tmp_path / f"{n}.png").shape[:2])
    heights, widths = zip(*sizes)
    assert list(widths) == sorted(set(widths)) and list(heights) == sorted(set(heights))
    assert widths[-1] < 31 * 120  # bounded (30 inches at 120 dpi, and the margins)


def test_confusion_plot_cuts_a_long_label(tmp_path):
    import matplotlib
    import matplotlib.image
    from training.evaluate import LABEL_CHARS, plot_confusion
    names, counts = ["S" * 300 + " A", "S" * 300 + " B", "x"], np.eye(3, dtype=int) + 1
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        svg = plot_confusion(counts, tmp_path / "c.svg", "t", names=names).read_text()
    head, tail = "S" * (LABEL_CHARS // 2), "S" * (LABEL_CHARS - 3 - LABEL_CHARS // 2)
    for end in "AB":  # cut in the middle: the two stay apart
        assert f">{head}\u2026{tail} {end}<" in svg
    assert "S" * (LABEL_CHARS // 2 + 1) not in svg
    short = matplotlib.image.imread(plot_confusion(counts, tmp_path / "s.png", "t",
                                                   names=["l", "short", "x"])).shape
    long = matplotlib.image.imread(plot_confusion(counts, tmp_path / "l.png", "t",
                                                  names=names)).shape
    assert long[0] < 1.5 * short[0] and long[1] < 1.5 * short[1]  # the matrix keeps its room


def test_the_per_label_table_cuts_a_long_label_and_lines_up_wide_characters():
    from training.evaluate import LABEL_CHARS, Evaluation, per_label_text
    names = ("S" * 300 + " A", "S" * 300 + " B", "\u97f3\u697d \U0001f3b5", "x")
    scores = {"precision": 0.5, "recall": 0.25, "f1": 1 / 3, "support": 4}
    result = Evaluation(split="test", store="s", model="m", n=16, accuracy=0.5,
                        balanced_accuracy=0.5, per_label={name: scores for name in names},
                        per_folder={}, per_file={}, store_changed=[],
                        confusion=np.eye(4, dtype=np.int64), labels=names, default_png=None)
    rows = per_label_text(result).splitlines()
    head, tail = "S" * (LABEL_CHARS // 2), "S" * (LABEL_CHARS - 3 - LABEL_CHARS // 2)
    assert rows[1].startswith(f"{head}\u2026{tail} A  ") and rows[2].startswith(f"{head}\u2026")
    wide = 2 + 2 + 1 + 2  # two CJK characters, a space, an emoji
    assert rows[3] == "\u97f3\u697d \U0001f3b5" + " " * (LABEL_CHARS - wide) + \
        "      0.500   0.250  0.333      4"
    assert {len(row) for row in (rows[0], rows[1], rows[4])} == {LABEL_CHARS + 33}
    from training.images import cut_labels, cut_text  # labels differing midway stay apart
    strings = [f"Orchestra strings - {part} - sustain fortissimo" for part in
               ("violin I", "violin II", "viola", "cello")]
    shown = cut_labels(strings + ["bass"], 24)
    assert len(set(shown)) == 5 and shown[-1] == "bass"
    assert shown[:2] == ["\u2026violin I - sustain for\u2026", "\u2026violin II - sustain fo\u2026"]
    assert all(len(text) <= 24 for text in shown)
    same = "a rather long recording of the session 01"  # one name twice: cut as one
    assert cut_labels([same, same], 24) == [cut_text(same, 24)] * 2
    late = ["X" * 60 + f"{tail}YYYYYYYYYY end" for tail in ("a", "b")] + ["X" * 20 + "c end"]
    assert len(set(cut_labels(late, 24))) == 3  # two that part late, from a third early
    assert cut_labels(["line\nbreak", "a\ttab"], 24) == ["line\\nbreak", "a\\ttab"]  # one line


def test_a_label_set_in_a_message_reads_as_its_labels():
    from featurestore.errors import label_set_text
    assert label_set_text(["cello", "dog bark"]) == "(cello, dog bark)"
    assert label_set_text(["drum, kick", "violin"]) == "('drum, kick', 'violin')"  # not three
    assert label_set_text(["a", " b"]) == "('a', ' b')"
    many = label_set_text([f"l{k}" for k in range(5000)])  # a message of one line
    assert many == "(" + ", ".join(f"l{k}" for k in range(20)) + ", ... 5000 labels)"
    from featurestore.errors import label_counts_text  # labels, each with a number
    assert label_counts_text([("kettle", 1), ("cello", 3)]) == "kettle 1, cello 3"
    assert label_counts_text([("bass, electric", 3), ("piano 2", 4)]) == \
        "'bass, electric' 3, 'piano 2' 4"  # not read as three labels
    assert label_counts_text([("piano 2", 4)], among=["a, b"]) == "'piano 2' 4"
    assert label_counts_text([(f"l{k}", k) for k in range(9)], most=2) == "l0 0, l1 1, ..."


def test_two_label_sets_in_a_message_say_where_they_differ():
    from featurestore.errors import label_difference
    many = [f"l{k}" for k in range(5000)]
    owners = ("the store", "the model")
    assert label_difference(many, many[:4000] + ["x"] + many[4001:], owners) == (
        " (only in the store: (l4000); only in the model: (x))")  # past what each set shows
    assert label_difference(many[:30], many[:31], owners) == " (only in the model: (l30))"
    swapped = many[:25] + [many[26], many[25]] + many[27:]
    assert label_difference(many, swapped, owners) == (
        " (the same labels in another order: at index 25, the store has l25, the model l26)")
    # quoted alike, as the sets they come from are
    assert label_difference(["cello", "dog", "kettle (old)"], ["dog", "cello", "kettle (old)"],
                            ("valid", "train")) == (
        " (the same labels in another order: at index 0, valid has 'cello', train 'dog')")
    assert label_difference(["a", "b"], ["a", "b, c"], owners) == (
        " (only in the store: ('b'); only in the model: ('b, c'))")
    assert label_difference(many, [f"m{k}" for k in range(5000)], owners) == (
        " (no label in common)")
    assert label_difference(many, list(many), owners) == ""


def test_a_label_set_names_each_label_once_as_text():
    from training.modeldir import config_labels
    for labels, message in ((["bass", "bass", "reed"], r"its labels \['bass'\] are each given "
                                                       r"more than once"),
                            (["Flo\u0308te", "Fl\u00f6te"], r"are each two labels written with "
                                                           r"their letters composed"),
                            ([None, 1, "x"], r"its labels are \[None, 1, 'x'\], not a list of "
                                             r"label names"),
                            (["a", ""], r"its labels are \['a', ''\], not a list")):
        with pytest.raises(ValueError, match=message):
            config_labels({"labels": labels})


def test_a_title_or_label_of_a_name_that_is_no_utf8_is_drawn(tmp_path):
    from training.evaluate import plot_confusion
    from training.images import drawable
    from training.progress import plot_curves
    assert drawable("st\udcffre\n") == "st\ufffdre\\n"  # a byte 0xff of a folder's name
    history = [{"epoch": 0, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.2, "val_accuracy": 0.4}]
    plot_curves(history, tmp_path / "curves.png", "default model on st\udcffre")  # had raised
    plot_confusion(np.eye(2, dtype=int), tmp_path / "c.png", "on st\udcffre", names=["a\udcfe",
                                                                                    "b"])
    assert (tmp_path / "curves.png").stat().st_size and (tmp_path / "c.png").stat().st_size


def test_labels_are_drawn_as_given_and_missing_glyphs_are_one_warning(tmp_path, caplog,
                                                                       recwarn):
    import matplotlib.image
    from training.evaluate import plot_confusion
    names = ["$x^2$", "a$\\frac{b$", "cash $ $ money", "日本語"]  # mathtext: a formula, errors
    path = plot_confusion(np.eye(4, dtype=int) + 1, tmp_path / "c.png", "a $title", names=names)
    assert path == tmp_path / "c.png" and matplotlib.image.imread(path).shape[0] > 100
    assert not [w for w in recwarn if "missing from font" in str(w.message)]
    assert "c.png: 3 characters have no glyph in matplotlib's fonts and are drawn as boxes " \
           "(日本語)" in caplog.text


@pytest.mark.full  # training.data imports keras
def test_balanced_sampling_over_any_label_set():
    from training.data import balanced_weights
    labels = np.array([0] * 50 + [1] * 5 + [2] * 20 + [5] * 1)  # label 3, 4 absent
    instruments = np.array([0] * 40 + [1] * 10 + [2] * 5 + [3] * 10 + [4] * 10 + [5])
    weights = balanced_weights(labels, instruments)
    assert weights.sum() == pytest.approx(1)
    for label in (0, 1, 2, 5):  # every label present equally likely
        assert weights[labels == label].sum() == pytest.approx(1 / 4)
    assert weights[:40].sum() == pytest.approx(weights[40:50].sum())  # then its instruments
    one = balanced_weights(np.zeros(7, int))
    assert one == pytest.approx(np.full(7, 1 / 7))


# ---- the full tier: a model trained on the three labels ----

QUICK = dict(epochs=1, steps_per_epoch=4, batch_size=8, width=8, time_pool=2,
             budget_minutes=None, seed=3, deterministic=True)


@pytest.fixture(scope="module")
def labelled_model(three_labels, tmp_path_factory):
    """``(store, model)``: a quick model trained on :func:`three_labels`, its embeddings in the
    store, and an openTSNE map of the test split."""
    from analysis.embed import embed_store
    from analysis.tsne import tsne_split
    from training.config import TrainConfig
    from training.train import train
    store = tmp_path_factory.mktemp("mapped") / "store"
    shutil.copytree(three_labels, store)
    model = store.parent / "model"
    train(store, model, TrainConfig(**QUICK), verbose=0)
    embed_store(store, model, progress=False)
    tsne_split(store, "test", perplexity=3, seed=0)
    return store, model


@pytest.fixture(scope="module")
def nsynth_model(labelled_model, tmp_path_factory):
    """A model folder for NSynth's 11 families (untrained: only its label set matters), with
    the features of the tone store."""
    from training.config import TrainConfig
    from training.models import build_model
    from featurestore.params import FeatureParams
    folder = tmp_path_factory.mktemp("nsynth") / "model"
    folder.mkdir()
    params = FeatureParams.from_dict(
        json.loads((labelled_model[1] / "config.json").read_text())["features"])
    bins = params.shape[1]
    model = build_model(TrainConfig(**QUICK), params, mean=np.zeros(bins), std=np.ones(bins))
    model.save(folder / "model.keras")
    info = json.loads((labelled_model[1] / "config.json").read_text())
    info["labels"] = list(FAMILIES)
    (folder / "config.json").write_text(json.dumps(info))
    return folder


@pytest.mark.full
def test_train_makes_one_output_for_each_label_and_records_them(labelled_model):
    from training.modeldir import load_trained, read_model_labels
    store, model = labelled_model
    info = json.loads((model / "config.json").read_text())
    assert info["labels"] == list(NAMES) and "families" not in info
    trained = load_trained(model)
    assert trained.labels == NAMES == read_model_labels(model)
    assert tuple(trained.model.outputs[0].shape) == (None, 3)


@pytest.mark.full
def test_store_batches_one_hot_over_the_stores_labels(three_labels):
    from training.data import StoreBatches
    batches = StoreBatches(three_labels / "train.h5", 8, shuffle=True, steps=1)
    try:
        x, y = batches[0]
        assert batches.label_names == NAMES and y.shape == (8, 3)
        assert set(np.unique(y)) <= {0.0, 1.0} and (y.sum(axis=1) == 1).all()
    finally:
        batches.close()


@pytest.mark.full
def test_train_refuses_splits_of_different_label_sets(three_labels, tmp_path):
    from training.config import TrainConfig
    from training.train import train
    store = shutil.copytree(three_labels, tmp_path / "store")
    with h5py.File(store / "valid.h5", "r+") as f:
        f["labels"].attrs["names"] = ["cello", "dog", "kettle", "tuba"]
    message = re.escape(f"{store / 'valid.h5'} holds labels (cello, dog, kettle, tuba), but "
                        f"{store / 'train.h5'} holds {OURS}: a store's splits share one "
                        f"label set (only in valid: (tuba))") + "$"
    with pytest.raises(StoreError, match=message):
        train(store, tmp_path / "m", TrainConfig(**QUICK), verbose=0)
    relabel_store(store, ["only"], relabel=np.zeros_like)
    with pytest.raises(StoreError, match=r"train.h5: the store has 1 label \(only\); a "
                                         r"classifier needs at least two"):
        train(store, tmp_path / "m", TrainConfig(**QUICK), verbose=0)
    relabel_store(store, NAMES)
    with h5py.File(store / "train.h5", "r+") as f:
        f["labels"][:] = 1
    with pytest.raises(StoreError, match=r"train.h5: the train split holds notes of one label "
                                         r"alone \('dog'\); a classifier learns from two "
                                         r"\(.*lower --valid-fraction and --test-fraction\)"):
        train(store, tmp_path / "m", TrainConfig(**QUICK), verbose=0)
    relabel_store(store, NAMES)
    with h5py.File(store / "train.h5", "r+") as f:
        f["labels"][0] = 3
    with pytest.raises(StoreError, match=r"train.h5: /labels holds 3, but its attr names lists "
                                         r"3 names \(indices 0 to 2\): the file is damaged"):
        train(store, tmp_path / "m", TrainConfig(**QUICK), verbose=0)


@pytest.mark.full
def test_evaluate_refuses_labels_outside_the_label_set(labelled_model, tmp_path):
    from training.evaluate import evaluate
    store = shutil.copytree(labelled_model[0], tmp_path / "store")
    with h5py.File(store / "test.h5", "r+") as f:
        f["labels"][0] = -5  # was counted in the accuracy and in no row of the report
    with pytest.raises(StoreError, match=r"test.h5: /labels holds -5, but its attr names lists "
                                         r"3 names"):
        evaluate(store, labelled_model[1], split="test")


@pytest.mark.full
def test_resume_refuses_a_store_of_another_label_set(labelled_model, tone_store, tmp_path):
    from training.train import train
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copyfile(labelled_model[1] / "config.json", folder / "config.json")  # as if cut
    from training.modeldir import ModelError
    with pytest.raises(ModelError, match=re.escape(
            f"{folder}: its run was trained on labels {OURS}; this store holds "
            f"{NSYNTH} (no label in common); --resume goes on with the labels it started "
            f"with: start again with --overwrite") + "$"):
        train(tone_store, folder, resume=True, verbose=0)


@pytest.mark.full
def test_evaluate_reports_the_models_label_names(labelled_model):
    from training.evaluate import per_label_text, evaluate, write_confusion
    store, model = labelled_model
    result = evaluate(store, model, "test")
    assert result.labels == NAMES and result.to_dict()["families"] == list(NAMES)
    assert list(result.per_family) == list(NAMES)
    assert sum(v["support"] for v in result.per_family.values()) == result.n == 11
    assert result.confusion.shape == (3, 3)
    report = per_label_text(result)
    assert "cello" in report and "bass" not in report
    assert write_confusion(result).read_bytes()[:8] == PNG


@pytest.mark.full
def test_predict_names_the_models_labels(labelled_model, tone_root):
    from training.modeldir import load_trained
    from training.predict import predict_features, predict_files
    trained = load_trained(labelled_model[1])
    wav = next((tone_root / "test" / "audio").glob("*.wav"))
    (result,) = predict_files(trained, [wav])
    top = result.top(5)
    assert len(top) == 3 and {name for name, _ in top} == set(NAMES)
    assert predict_features(trained, np.zeros((0, 251, 513), np.float16)).shape == (0, 3)


@pytest.mark.full
def test_embed_writes_one_probability_for_each_label(labelled_model, tmp_path, capsys, caplog):
    from analysis.cli import main
    from featurestore.schema import read_label_names
    store, model = labelled_model
    with h5py.File(store / "train.h5") as f:
        assert f["probabilities"].shape == (22, 3)
        assert list(f["probabilities"].attrs["names"]) == list(NAMES)
    assert main(["embed", str(store), str(model), "--into", str(tmp_path / "apart"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "train: /embeddings (22, 128), /probabilities (22, 3)" in out
    assert f"labels: {OURS}" in out
    with h5py.File(tmp_path / "apart" / "test.h5") as f:
        assert f["probabilities"].shape == (11, 3) and read_label_names(f) == NAMES
    # the folder is not a store: a command given it says what it is and what to do
    assert main(["tsne", str(tmp_path / "apart")]) == 1
    assert (f"apart/test.h5: results 'timbremap embed --into' wrote for {store.resolve()}, not a "
            f"store (no /spectra); to map them, copy the store here") in caplog.text


@pytest.mark.full
def test_place_plot_and_map_show_the_stores_labels(labelled_model, tone_root, tmp_path):
    from analysis.mapview import write_map
    from analysis.place import place_files
    store = shutil.copytree(labelled_model[0], tmp_path / "store")
    wav = next((tone_root / "test" / "audio").glob("*.wav"))
    (placed,) = place_files(store, labelled_model[1], [wav], split="test")
    assert placed.family in NAMES
    assert {n["family"] for n in placed.nearest} <= set(NAMES)
    data = _map_data(write_map(store, tmp_path / "map"))
    assert data["families"] == list(NAMES) and len(data["colors"]) == 3
    assert max(data["splits"]["test"]["family"]) <= 2
    assert data["placed"][0]["family"] in NAMES


@pytest.mark.full
def test_a_model_scores_only_notes_of_its_labels_and_embeds_any(labelled_model, nsynth_model,
                                                                 tone_store, tone_root,
                                                                 tmp_path):
    from analysis.embed import embed_store
    from analysis.mapview import write_map
    from analysis.place import place_files
    from training.evaluate import evaluate, predict_split
    from training.modeldir import ModelError, load_trained
    store, model = labelled_model
    # an NSynth model on the store of three labels: it cannot score them
    ours = (f"{store / 'test.h5'} holds notes of {OURS}, which the model in {nsynth_model} "
            f"was not trained on: it knows {NSYNTH}; a model scores only its labels")
    for attempt in (lambda: evaluate(store, nsynth_model, "test"),
                    lambda: predict_split(load_trained(nsynth_model), store, "test")):
        with pytest.raises(ModelError) as caught:
            attempt()
        assert str(caught.value) == ours
    # and the model of three labels on an NSynth store
    with pytest.raises(ModelError) as caught:
        evaluate(tone_store, model, "test")
    assert str(caught.value).startswith(f"{tone_store / 'test.h5'} holds notes of (")
    # but its embeddings, predictions and map are any model's: named by its labels
    copy = shutil.copytree(store, tmp_path / "store")
    (copy / "placed.json").unlink(missing_ok=True)
    assert embed_store(copy, nsynth_model, ["test"], progress=False)["test"][0] == 11
    with h5py.File(copy / "test.h5") as f:
        assert f["probabilities"].shape == (11, len(FAMILIES))
        assert list(f["probabilities"].attrs["names"]) == list(FAMILIES)
        outputs = f["probabilities"][:].argmax(axis=1)
    embed_store(store, nsynth_model, ["test"], into=tmp_path / "apart", progress=False)
    from featurestore.schema import read_label_names
    with h5py.File(tmp_path / "apart" / "test.h5") as f, h5py.File(store / "test.h5") as g:
        assert read_label_names(f) == NAMES  # the store's labels, not the model's
        np.testing.assert_array_equal(f["labels"][:], g["labels"][:])
        assert list(f["probabilities"].attrs["names"]) == list(FAMILIES)
    from analysis.tsne import tsne_split
    tsne_split(copy, "test", perplexity=3, seed=0)
    data = _map_data(write_map(copy, tmp_path / "map"))
    assert data["families"] == list(NAMES) + list(FAMILIES) and len(data["colors"]) == 3
    assert [data["families"][k] for k in data["splits"]["test"]["predicted"]] == [
        FAMILIES[k] for k in outputs]
    wav = next((tone_root / "test" / "audio").glob("*.wav"))
    (placed,) = place_files(copy, nsynth_model, [wav], split="test")
    assert not placed.error and placed.family in FAMILIES
    assert {n["family"] for n in placed.nearest} <= set(NAMES)


def _map_data(page: Path) -> dict:
    return json.loads(page.read_text().split("const DATA = ", 1)[1].split(";\n", 1)[0])


@pytest.mark.full
def test_a_model_matches_a_store_s_labels_by_name(labelled_model, tone_root, tmp_path):
    from analysis.mapview import write_map
    from analysis.place import place_files
    from training.evaluate import evaluate
    from training.modeldir import ModelError
    store, model = labelled_model
    before = evaluate(store, model, "test")
    with h5py.File(store / "test.h5") as f:
        outputs = f["probabilities"][:].argmax(axis=1)  # the model's, in NAMES' order
    # the same labels in another order, as a rebuild of a store grown by --add sorts them
    turned = relabel_store(shutil.copytree(store, tmp_path / "turned"), NAMES[::-1],
                           lambda old: 2 - old)
    after = evaluate(turned, model, "test")
    assert (after.accuracy, after.per_family, after.labels) == (
        before.accuracy, before.per_family, before.labels)
    assert (after.confusion == before.confusion).all()
    scored = load_benchmark("adabn").score(model, turned, "test")  # the benchmark's own loop
    assert sum(v["n"] * v["as trained"] for v in scored.values()) == pytest.approx(
        before.accuracy * before.n)
    data = _map_data(write_map(turned, tmp_path / "map"))
    assert data["families"] == list(NAMES[::-1]) and len(data["colors"]) == 3
    shown = [data["families"][k] for k in data["splits"]["test"]["predicted"]]
    assert shown == [NAMES[k] for k in outputs]
    wav = next((tone_root / "test" / "audio").glob("*.wav"))
    (placed,) = place_files(turned, model, [wav], split="test")
    assert not placed.error and placed.family in NAMES
    # a few of the model's labels: a test set of two classes (kettle's notes called dog here)
    few = relabel_store(shutil.copytree(store, tmp_path / "few"), ("dog", "cello"),
                        lambda old: np.where(old == 0, 1, 0))
    result = evaluate(few, model, "test")
    assert result.labels == NAMES and result.n == 11
    assert result.per_family["kettle"]["support"] == 0
    assert result.per_family["kettle"]["recall"] is None
    assert result.confusion[2].sum() == 0  # no note is a kettle; some may be predicted one
    with h5py.File(few / "test.h5") as f:
        truth = np.array([NAMES.index(("dog", "cello")[k]) for k in f["labels"][:]])
    assert result.accuracy == pytest.approx(np.mean(truth == outputs))
    data = _map_data(write_map(few, tmp_path / "few_map"))
    assert data["families"][:2] == ["dog", "cello"] and len(data["colors"]) == 2
    assert set(data["families"]) == set(NAMES)  # kettle, predicted alone, named after them
    assert [data["families"][k] for k in data["splits"]["test"]["predicted"]] == [
        NAMES[k] for k in outputs]
    with h5py.File(few / "test.h5", "r+") as f:
        f["probabilities"].attrs["names"] = ["dog", "cello"]
    with pytest.raises(StoreError, match=r"test.h5: /probabilities has the shape \(11, 3\), "
                                         r"not \(11, 2\) .* the file is damaged"):
        write_map(few, tmp_path / "few_map")
    with h5py.File(few / "test.h5", "r+") as f:
        del f["probabilities"].attrs["names"]  # as an older embed wrote it
    with pytest.raises(StoreError, match=r"not \(11, 11\) for its 11 notes and NSynth's 11 "
                                         r"families, which it holds without an attr names \(an "
                                         r"older embed's\): run 'timbremap embed' again"):
        write_map(few, tmp_path / "few_map")
    # a label the model was not trained on: no matter until a note of the split carries it
    grown = relabel_store(shutil.copytree(store, tmp_path / "grown"), NAMES + ("zither",),
                          lambda old: old)
    assert evaluate(grown, model, "test").per_family == before.per_family
    other = relabel_store(shutil.copytree(store, tmp_path / "other"), ("cello", "dog", "zither"))
    with pytest.raises(ModelError, match=re.escape(
            "test.h5 holds notes of (zither), which the model ")):
        evaluate(other, model, "test")


@pytest.mark.full
def test_older_model_configs_name_nsynths_families(labelled_model, nsynth_model, tmp_path):
    from training.modeldir import ModelError, load_trained
    folder = shutil.copytree(nsynth_model, tmp_path / "old")
    info = json.loads((folder / "config.json").read_text())
    del info["labels"]
    (folder / "config.json").write_text(json.dumps(info))  # before any label set was recorded
    assert load_trained(folder).labels == tuple(FAMILIES)
    (folder / "config.json").write_text(json.dumps({**info, "families": list(FAMILIES)}))
    assert load_trained(folder).labels == tuple(FAMILIES)
    (folder / "config.json").write_text(json.dumps({**info, "labels": list(NAMES)}))
    with pytest.raises(ModelError, match=re.escape(
            f"{folder}: model.keras has 11 outputs, but config.json lists 3 labels {OURS}")):
        load_trained(folder)


@pytest.mark.parametrize("text, why", [
    ("[]", "a JSON list, not an object of settings"),
    ('{"train": {}}', "it has no 'features' entry"),
    ('{"features": {}}', "it has no 'train' entry"),
    ('{"train": {}, "features": {}, "labels": "ab"}', "its labels are 'ab', not a list of "
                                                      "label names"),
])
def test_a_model_config_that_cannot_be_used_says_why_in_words(tmp_path, text, why):
    from training.modeldir import ModelError, load_trained, read_model_labels
    (tmp_path / "model.keras").write_bytes(b"never read: refused before")
    (tmp_path / "config.json").write_text(text)
    message = re.escape(f"{tmp_path / 'config.json'}: unreadable model config ({why})")
    with pytest.raises(ModelError, match=message):
        load_trained(tmp_path)
    if "labels" in text or text == "[]":  # the label set alone is read here
        with pytest.raises(ModelError, match=message):
            read_model_labels(tmp_path)
