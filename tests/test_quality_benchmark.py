"""The quality benchmark (``benchmarks/quality.py``) reuses a trained model only when its
``config.json`` records the recipe: a model trained under another default is not reported as
the recipe's. Checked on configurations and hand-written model folders, without training; with
the layout of each form of the protocol, ``benchmarks/adabn.py``'s adaptation on a tiny
model, and what ``benchmarks/pretrained.py`` feeds musicnn (its model itself only where musicnn
is installed)."""
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import load_benchmark

from featurestore.params import FeatureParams
from training.config import TrainConfig

quality = load_benchmark("quality")


def test_config_differences_name_every_field_that_shapes_the_model():
    default = TrainConfig().to_dict()
    assert quality.config_differences(default, default) == []
    older = TrainConfig(weight_decay=1e-4, time_pool=2).to_dict()
    assert quality.config_differences(older, default) == ["weight_decay: 0.0001 != 0.05",
                                                          "time_pool: 2 != 4"]
    fixed = TrainConfig(**quality.RECIPES["fixed"][0]).to_dict()
    assert {d.split(":")[0] for d in quality.config_differences(default, fixed)} == {
        "epochs", "steps_per_epoch", "schedule", "patience", "budget_minutes", "weight_decay"}
    assert quality.config_differences(default, TrainConfig(seed=1).to_dict()) == ["seed: 0 != 1"]


def test_how_a_run_is_carried_out_does_not_count():
    default = TrainConfig().to_dict()
    other = TrainConfig(deterministic=True, loader="h5py", workers=1).to_dict()
    assert quality.config_differences(other, default) == []
    assert quality.config_differences(TrainConfig(loader="mmap", buffer_mib=64).to_dict(),
                                      default) == []


def test_the_block_order_counts_with_its_sizes():
    default = TrainConfig().to_dict()
    block = TrainConfig(**quality.RECIPES["block-order"][0]).to_dict()
    assert quality.config_differences(default, block) == [
        "loader: 'one by one' != 'block'", "block_mib: None != 0.5", "buffer_mib: None != 256.0"]
    smaller = TrainConfig(loader="block", buffer_mib=64).to_dict()
    assert quality.config_differences(smaller, block) == ["buffer_mib: 64.0 != 256.0"]


def test_a_field_the_record_lacks_has_its_value_from_before_the_field():
    recorded = TrainConfig(weight_decay=1e-4).to_dict()
    del recorded["time_pool"]  # saved before the option existed: the model pooled 2 frames
    assert quality.config_differences(recorded, TrainConfig().to_dict()) == [
        "weight_decay: 0.0001 != 0.05", "time_pool: 2 != 4"]
    recipe = TrainConfig(**quality.RECIPES["time-pool-2"][0], weight_decay=1e-4).to_dict()
    assert quality.config_differences(recorded, recipe) == []


def _model(folder, config: TrainConfig, features: FeatureParams, content=None, banks=None):
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"")  # never opened by the check
    (folder / "config.json").write_text(json.dumps(
        {"train": config.to_dict(), "features": json.loads(features.to_json()),
         **({"store_content": content} if content else {})}))
    if banks is not None:
        (folder / quality.NOTES_FILE).write_text(json.dumps(banks))
    return folder


@pytest.mark.parametrize("recipe", ["default", "fixed", "fixed-time-pool-2"])
def test_a_model_of_the_recipe_is_reused(recipe, tmp_path):
    changes = quality.RECIPES[recipe][0]
    folder = _model(tmp_path / "m", TrainConfig(seed=1, **changes), FeatureParams())
    assert quality.reuse_differences(folder, changes, 1, FeatureParams()) == []


def test_a_model_trained_otherwise_is_not_reused(tmp_path):
    changes = quality.RECIPES["default"][0]
    older = _model(tmp_path / "older", TrainConfig(weight_decay=1e-4), FeatureParams())
    assert quality.reuse_differences(older, changes, 0, FeatureParams()) == [
        "weight_decay: 0.0001 != 0.05"]
    assert quality.reuse_differences(older, changes, 1, FeatureParams()) == [
        "weight_decay: 0.0001 != 0.05", "seed: 0 != 1"]
    mel = _model(tmp_path / "mel", TrainConfig(), FeatureParams(kind="mel"))
    found = quality.reuse_differences(mel, changes, 0, FeatureParams())
    assert found and all(d.startswith("features ") for d in found)
    assert any("kind" in d for d in found)


def test_a_model_that_learnt_other_notes_is_not_reused(tmp_path):
    """The store was built again from other notes, or an engine's bank was rendered again from
    new designs under the same note names: a model trained before does not stand for the
    recipe."""
    content = {"train": "t1", "valid": "v1"}
    now = {"train split": "t1", "valid split": "v1", "dexed bank": "d1"}
    same = _model(tmp_path / "same", TrainConfig(), FeatureParams(), content, {"dexed bank": "d1"})
    assert quality.reuse_differences(same, {}, 0, FeatureParams(), notes=now) == []
    assert quality.reuse_differences(same, {}, 0, FeatureParams(),
                                     notes={**now, "dexed bank": "d2", "valid split": "v2"}) == [
        "learnt from other notes: valid split v1 != v2",
        "learnt from other notes: dexed bank d1 != d2"]
    unrecorded = _model(tmp_path / "unrecorded", TrainConfig(), FeatureParams())
    assert quality.reuse_differences(unrecorded, {}, 0, FeatureParams(), notes=now) == [
        "learnt from other notes: train split not recorded != t1",
        "learnt from other notes: valid split not recorded != v1",
        "learnt from other notes: dexed bank not recorded != d1"]
    # a form without synthesised banks asks for the splits alone
    soundfonts = _model(tmp_path / "sf", TrainConfig(), FeatureParams(), content)
    assert quality.reuse_differences(soundfonts, {}, 0, FeatureParams(),
                                     notes={"train split": "t1", "valid split": "v1"}) == []
    _model(quality.model_dir_of(tmp_path, "default", 0), TrainConfig(), FeatureParams(),
           {**content, "train": "old"}, {"dexed bank": "d1"})
    assert "train split old != t1" in quality.stale_models(tmp_path, ["default"], [0],
                                                            FeatureParams(), notes=now)
    broken = _model(tmp_path / "broken", TrainConfig(), FeatureParams(), content, {})
    (broken / quality.NOTES_FILE).write_text("{")
    found = quality.reuse_differences(broken, {}, 0, FeatureParams(), notes=now)
    assert len(found) == 1 and found[0].startswith("config.json or notes.json unreadable")


def test_a_synthesised_bank_is_rendered_again_when_what_it_renders_changed(tmp_path,
                                                                          monkeypatch):
    from featurestore import fm
    rendered = []

    def fake_render(out, *, engines, **_):
        (out / "train").mkdir(parents=True)
        rendered.append(engines[0])

    monkeypatch.setattr("featurestore.synth.render_synth", fake_render)
    quality.render_synth_banks(tmp_path, 2, [100])
    assert sorted(rendered) == ["dexed", "faust"]
    bank = tmp_path / "banks" / "dexed"
    options = quality.bank_options("dexed", 2, [100])
    assert (bank / "done").read_text() == quality.bank_digest("dexed", 8, options)
    quality.render_synth_banks(tmp_path, 2, [100])
    assert len(rendered) == 2  # the same instruments, programs and options: kept
    (bank / "train" / "stale.wav").write_bytes(b"")
    first = fm.PROTOTYPES["fmorgan"]
    monkeypatch.setitem(fm.PROTOTYPES, "fmorgan", type(first)(
        first.family, first.about, {**first.ranges, "click": (0, 1)}))  # a range changed
    quality.render_synth_banks(tmp_path, 2, [100])
    assert rendered[2:] == ["dexed"] and not (bank / "train" / "stale.wav").exists()
    quality.render_synth_banks(tmp_path, 4, [100])  # another pitch step: both again
    assert sorted(rendered[3:]) == ["dexed", "faust"]


def test_no_model_or_an_unreadable_record(tmp_path):
    assert quality.reuse_differences(tmp_path / "none", {}, 0, FeatureParams()) == []
    broken = _model(tmp_path / "broken", TrainConfig(), FeatureParams())
    (broken / "config.json").write_text("{")
    found = quality.reuse_differences(broken, {}, 0, FeatureParams())
    assert len(found) == 1 and found[0].startswith("config.json or notes.json unreadable")


def test_a_run_names_every_model_it_will_not_reuse_before_training(tmp_path):
    _model(quality.model_dir_of(tmp_path, "default", 0), TrainConfig(), FeatureParams())
    _model(quality.model_dir_of(tmp_path, "default", 1), TrainConfig(seed=1, weight_decay=1e-4),
           FeatureParams())
    _model(quality.model_dir_of(tmp_path, "fixed", 0), TrainConfig(), FeatureParams())
    assert quality.stale_models(tmp_path, ["default"], [0], FeatureParams()) == ""
    message = quality.stale_models(tmp_path, ["default", "fixed"], [0, 1], FeatureParams())
    lines = message.splitlines()
    assert lines[0].startswith("trained otherwise than its recipe asks")
    assert lines[1] == (f"  {tmp_path / 'model-fixed-synth-seed0'}: epochs: None != 7; "
                        "steps_per_epoch: None != 150; schedule: 'plateau' != 'cosine'; "
                        "weight_decay: 0.05 != 0.0001; patience: 6 != 8; "
                        "budget_minutes: 30.0 != 28.0")
    assert lines[2] == f"  {tmp_path / 'model-default-synth-seed1'}: weight_decay: 0.0001 != 0.05"
    assert len(lines) == 3  # model-fixed-synth-seed1 does not exist: it will be trained
    # the protocol on the SoundFonts alone keeps models of its own
    assert quality.model_dir_of(tmp_path, "default", 0, "soundfonts").name == \
        "model-default-soundfonts-seed0"
    assert quality.stale_models(tmp_path, ["default", "fixed"], [0, 1], FeatureParams(),
                                "soundfonts") == ""
    # and so does the protocol with the engines' roles swapped
    assert quality.model_dir_of(tmp_path, "default", 0, "select-fm").name == \
        "model-default-select-fm-seed0"


def test_the_forms_keep_the_reported_bank_out_and_hold_a_kind_out_for_selection():
    def kinds(variant, split):
        return {bank for bank, _ in quality.layout_of(variant)[split]} & set(quality.SYNTH_BANKS)
    assert (kinds("synth", "train"), kinds("synth", "valid")) == ({"dexed"}, {"faust"})
    assert (kinds("select-fm", "train"), kinds("select-fm", "valid")) == ({"faust"}, {"dexed"})
    assert kinds("soundfonts", "train") == kinds("soundfonts", "valid") == set()
    # the form that hears both kinds selects on recorded programs alone
    assert (kinds("train-both", "train"), kinds("train-both", "valid")) == ({"dexed", "faust"},
                                                                          set())
    # each engine's notes are read from the split it was rendered into, whatever their role
    assert ("faust", "valid") in quality.layout_of("select-fm")["train"]
    # more instruments a family: banks, root, store and models of their own; the roles alike
    more = quality.layout_of("train-both", 24)
    assert {b for b, _ in more["train"]} >= {"dexed-24each", "faust-24each"}
    assert not {"dexed", "faust"} & {b for split in more.values() for b, _ in split}
    assert quality.form_of("train-both", 24) == "train-both-24each"
    assert quality.form_of("train-both", quality.SYNTH_PER_FAMILY) == "train-both"
    assert quality.form_of("soundfonts", 24) == "soundfonts"  # no engine: the same form
    assert quality.model_dir_of(Path("w"), "default", 0, "synth-24each").name == \
        "model-default-synth-24each-seed0"
    for variant in quality.VARIANTS:  # the reported bank is never trained or selected on
        layout = quality.layout_of(variant)
        assert layout["test"] == [("opl3", "test")]
        assert all(bank != "opl3" for split in ("train", "valid") for bank, _ in layout[split])



@pytest.mark.parametrize("argv, message", [
    (["--soundfonts-only", "--synth-per-family", "3"], "this form has no synthesised"),
    (["--synth-per-family", "100"], "per_family must be 1 to 90, got 100"),
    (["--synth-per-family", "0"], "per_family must be 1 to 90, got 0"),
    (["--seeds", "0"], "at least two"),
    (["--set", "epochs=3"], "--set and --train-banks: only with --selection"),
    (["--selection", "x", "--set", "epoch=3"], "no TrainConfig field 'epoch'"),
    ([], "nowhere.sf2")])
def test_options_that_cannot_make_a_form_are_refused_before_anything_is_rendered(
        argv, message, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(quality, "FLUID", tmp_path / "nowhere.sf2")  # as where it is missing
    monkeypatch.setattr("sys.argv", ["quality.py", "--workdir", str(tmp_path / "w"), *argv])
    with pytest.raises(SystemExit):
        quality.main()
    assert message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


@pytest.mark.full
def test_adabn_gives_each_batch_norm_layer_the_statistics_of_its_inputs():
    import keras
    adabn = load_benchmark("adabn")

    class Reader:  # SpectraReader's batch(), over an array
        def __init__(self, x):
            self.x = x

        def batch(self, rows):
            return self.x[rows], None
    rng = np.random.default_rng(0)
    x = (rng.normal(3.0, 2.0, (40, 8, 6)) * np.linspace(0.5, 4, 6)).astype(np.float32)
    inputs = keras.Input((8, 6))
    seeded = keras.initializers.GlorotUniform(seed=0)
    h = keras.layers.Dense(5, name="d1", kernel_initializer=seeded)(inputs)
    h = keras.layers.BatchNormalization(name="bn1")(h)
    h = keras.layers.Dense(4, name="d2", kernel_initializer=seeded)(h)
    h = keras.layers.BatchNormalization(name="bn2")(h)
    model = keras.Model(inputs, h)
    rows = np.arange(3, 40)
    adabn.adapt(model, Reader(x), rows, layers=1)  # the first layer only
    assert np.abs(np.asarray(model.get_layer("bn1").moving_mean)).max() > 0.1
    np.testing.assert_array_equal(np.asarray(model.get_layer("bn2").moving_mean), 0)
    adabn.adapt(model, Reader(x), rows)
    for name in ("bn1", "bn2"):  # each layer's output over the rows: mean 0, variance 1
        layer = model.get_layer(name)  # (v / (v + epsilon), for an input of variance v)
        out = np.asarray(keras.Model(inputs, layer.output)(x[rows]))
        out = out.reshape(-1, out.shape[-1])
        variance = np.asarray(layer.moving_variance)
        np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-3)
        np.testing.assert_allclose(out.var(axis=0), variance / (variance + layer.epsilon),
                                   atol=2e-3)


def test_each_bank_is_a_notes_folder_of_its_own_so_the_store_tells_them_apart(tmp_path):
    from featurestore.nsynth import find_splits
    from featurestore.splitfolder import read_split
    from helpers import make_tone_split
    for bank, splits in (("sf", ("train", "valid")), ("fm", ("train",)), ("chip", ("test",))):
        for k, split in enumerate(splits):
            make_tone_split(tmp_path / "banks" / bank / split, 2, seed=k,
                            first_instrument=100 * len(bank) + 10 * k)
    layout = {"train": [("sf", "train"), ("fm", "train")], "valid": [("sf", "valid")],
              "test": [("chip", "test")]}
    parts = quality.link_parts(tmp_path, tmp_path / "parts", layout)
    assert list(parts) == ["sf", "fm", "chip"]
    assert [find_splits(parts[b]) for b in parts] == [["train", "valid"], ["train"], ["test"]]
    for bank, folder in parts.items():
        for split in find_splits(folder):
            assert {wav.resolve() for _, wav in read_split(folder / split)[0]} == {
                wav.resolve() for _, wav in read_split(tmp_path / "banks" / bank / split)[0]}


def test_the_report_gives_the_selection_banks_and_their_mean():
    def run(seed, sf, synth, opl3):
        recall = {"bass": opl3}
        return {"seed": seed, "valid": (sf + 3 * synth) / 4, "valid_banks": {"sf": sf,
                                                                             "synth": synth},
                "valid_bank_mean": (sf + synth) / 2, "epochs": 10, "minutes": 5.0,
                "test": {"opl3": {"accuracy": opl3, "balanced_accuracy": opl3, "n": 9,
                                  "recall": recall}}}
    base = {"valid": 0.5, "minutes": 1.0, "test": {"opl3": {
        "accuracy": 0.3, "balanced_accuracy": 0.3, "n": 9, "recall": {"bass": 0.3},
        "support": {"bass": 9}}}}
    results = {"default": [run(0, 0.8, 0.4, 0.3), run(1, 0.6, 0.6, 0.4)],
               "folders": [run(0, 0.9, 0.5, 0.3), run(1, 0.9, 0.5, 0.3)]}
    text = "\n".join(quality.report(results, base, ["opl3"], {"opl3": "OPL-3"}))
    assert "| default | 0.700 (0.600-0.800) | 0.500 (0.400-0.600) |" in text
    assert "| folders | 0.900 (0.900-0.900) | 0.500 (0.500-0.500) |" in text
    assert "- selection, mean of its banks: default - folders = -10.0 accuracy points" in text
    assert "- OPL-3: default - folders = +5.0 accuracy points (the seeds' ranges overlap" in text


@pytest.mark.parametrize("recipe", list(quality.RECIPES))
def test_every_recipe_is_a_set_of_train_options(recipe):
    """A recipe is trained by ``timbremap train`` with its fields as options: one the command
    does not take would fail only when its first model is trained."""
    from analysis.arguments import train_config
    from analysis.options import make_parser
    changes = quality.RECIPES[recipe][0]
    args = make_parser().parse_args(["train", "store", "model", *quality._flags(changes)])
    config = train_config(args)
    assert {name: getattr(config, name) for name in changes} == changes


def test_pretrained_reads_each_note_from_the_folder_it_was_built_from(tmp_path):
    from featurestore.build import build_store
    from helpers import make_tone_split
    pretrained = load_benchmark("pretrained")
    a = make_tone_split(tmp_path / "a" / "train", 4, seed=0)
    b = make_tone_split(tmp_path / "b" / "train", 3, seed=1, first_instrument=500)
    build_store([tmp_path / "a", tmp_path / "b"], tmp_path / "store", jobs=1, progress=False)
    paths, offsets, families, instruments = pretrained.notes(tmp_path / "store" / "train.h5")
    expected = {**{tmp_path / "a" / "train" / "audio" / f"{n}.wav": e for n, e in a.items()},
                **{tmp_path / "b" / "train" / "audio" / f"{n}.wav": e for n, e in b.items()}}
    assert sorted(paths) == sorted(expected)
    assert list(families) == [expected[p].instrument_family_str for p in paths]
    assert list(instruments) == [expected[p].instrument for p in paths]
    assert (offsets == 0).all()
    (tmp_path / "b" / "train" / "audio" / f"{next(iter(b))}.wav").unlink()
    with pytest.raises(FileNotFoundError, match="1 of its 7 notes' audio files are missing"):
        pretrained.notes(tmp_path / "store" / "train.h5")


def test_pretrained_feeds_the_tagger_the_first_three_seconds(tmp_path):
    from helpers import tone, write_note
    pretrained = load_benchmark("pretrained")
    audio = tone(20, seconds=4.0)
    write_note(tmp_path, "long", audio)
    write_note(tmp_path, "short", audio[:pretrained.SAMPLE_RATE])  # its first second
    long, short = (pretrained.log_mel(tmp_path / "audio" / f"{n}.wav") for n in ("long", "short"))
    assert long.shape == short.shape == (pretrained.FRAMES, pretrained.N_MELS)
    assert long.dtype == np.float32
    np.testing.assert_allclose(long[:60], short[:60], rtol=1e-4)  # the same first second
    assert (short[66:] == 0).all() and (long.max(axis=1) > 0).all()
    hop = pretrained.HOP / pretrained.SAMPLE_RATE
    later = pretrained.log_mel(tmp_path / "audio" / "long.wav", offset=64 * hop)
    np.testing.assert_allclose(later[2:60], long[66:124], rtol=1e-3)  # past the cut's frames


@pytest.mark.full
def test_pretrained_tagger_pools_each_note_on_its_own():
    pytest.importorskip("musicnn")
    pretrained = load_benchmark("pretrained")
    tagger = pretrained.Tagger()
    x = np.random.default_rng(0).uniform(0, 3, (2, pretrained.FRAMES, pretrained.N_MELS))
    both = tagger(x.astype(np.float32))
    alone = tagger(x[:1].astype(np.float32))
    tagger.close()
    assert both.shape == (2, 1506)
    np.testing.assert_allclose(alone[0], both[0], rtol=1e-4, atol=1e-5)  # no batch statistics
    assert (both[:, 0::2] >= both[:, 1::2] - 1e-6).all()  # each channel's max, then its mean
