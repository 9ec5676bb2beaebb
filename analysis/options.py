"""The ``timbremap`` command's options: one builder a command, in the order ``--help`` lists
them. Choices and defaults come from the modules and functions that own them; nothing is typed
twice."""
from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

from featurestore.nsynth import SPLITS
from analysis.arguments import ArgumentParser, local_image, local_path, store_location

__all__ = ["make_parser"]


def make_parser() -> argparse.ArgumentParser:
    """The ``timbremap`` parser: ``--version`` and one subcommand per builder of
    :data:`COMMANDS`, each with the common options ``-v`` and ``-q``; the namespace names the
    subcommand in ``command``, and the parser's ``commands`` maps each name to its parser."""
    from featurestore import __version__
    parser = ArgumentParser(
        prog="timbremap",
        description="HDF5 feature store, classifier and timbre maps for labelled audio: "
                    "NSynth's layout (instrument families), a folder per class, or a CSV "
                    "manifest.")
    parser.add_argument("--version", action="version", version=f"timbremap {__version__}")
    common = ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug messages")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)
    for add_options in COMMANDS:
        add_options(add_command)
    parser.commands = sub.choices  # each command's parser, for its own usage in errors
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    """``argv`` (default: the command line) parsed by :func:`make_parser`, the common options
    taken before the command too; an argument no option takes is an error with its command's
    usage (argparse would show timbremap's)."""
    parser = make_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    lead = next((k for k, w in enumerate(words) if w not in ("-v", "--verbose", "-q", "--quiet")),
                len(words))
    if 0 < lead < len(words):  # timbremap -q build ...
        words = [words[lead], *words[:lead], *words[lead + 1:]]
    args, extra = parser.parse_known_args(words)
    if extra:
        parser.commands[args.command].unrecognized(words[1:], extra)  # after the command
    return args


#: The model argument of the commands that use a trained model.
MODEL_HELP = "the folder train wrote the model into"

#: The store argument of the commands that read a store without writing to it.
STORE_HELP = ("the store folder, or its URL on object storage (s3://BUCKET/STORE, any fsspec "
              "URL: read, never written)")


def _listed(values) -> str:
    """``(0.6, 0.2, 0.2)`` as ``0.6 0.2 0.2``: a default as the command line takes it."""
    return " ".join(f"{v:g}" for v in values)


def _default(func, name: str):
    """The default of ``func``'s parameter ``name``: the function that owns a setting says
    what it is, the parser repeats nothing."""
    return inspect.signature(func).parameters[name].default


def _render(add_command):
    from featurestore.render import RenderOptions
    from featurestore.synth import ENGINES, FAMILY_SLOTS, render_synth
    p = add_command("render", help="render notes from a GM SoundFont or synthesis engines",
                    description="Render notes of a General MIDI SoundFont, or with --synth of "
                                "synthesised instruments (DX7 FM voices, Faust physical models, "
                                "subtractive and additive voices: timbremap's synth "
                                "extra), into instrument-disjoint train/valid/test "
                                "splits in NSynth's layout.")
    p.add_argument("soundfont", nargs="?", type=local_path,
                   help="SF2 or SF3 (Vorbis-compressed) file (default: TimGM6mb.sf2 "
                        "shipped by pretty_midi); not with --synth")
    p.add_argument("out", type=local_path, help="root folder to write train/ valid/ test/ into")
    r = RenderOptions()
    p.add_argument("--velocities", type=int, nargs="+", default=list(r.velocities),
                   help=f"MIDI velocities of each note (default {_listed(r.velocities)})")
    p.add_argument("--pitch-step", type=int, default=r.pitch_step,
                   help=f"render every Nth pitch of an instrument's range (default "
                        f"{r.pitch_step})")
    p.add_argument("--fractions", type=float, nargs=3, default=list(r.fractions),
                   metavar=("TRAIN", "VALID", "TEST"),
                   help=f"share of each family's instruments per split (default "
                        f"{_listed(r.fractions)}; each gets one once the family has one for "
                        f"each; programs that play one sample count as one, in one split)")
    p.add_argument("--programs", type=int, nargs="+", help="GM programs (default: all mapped)")
    p.add_argument("--tag", help="tag in note names: ASCII letters, digits (default: the file's)")
    p.add_argument("--seed", type=int, default=r.seed,
                   help=f"seeds the program -> split assignment (with --synth: the "
                        f"instruments too; default {r.seed})")
    g = p.add_argument_group("synthesis engines")
    g.add_argument("--synth", action="store_true",
                   help="render every installed engine's instruments instead of a SoundFont")
    g.add_argument("--engines", nargs="+", choices=sorted(ENGINES),
                   help="only these engines (default: every installed one)")
    g.add_argument("--per-family", type=int, help=f"instruments of each family per engine, 1 "
                   f"to {FAMILY_SLOTS} (default {_default(render_synth, 'per_family')})")


def _build(add_command):
    from featurestore.build import build_store
    from featurestore.layouts import LAYOUTS, InputOptions
    from featurestore.workers import BACKENDS, THREADS_UP_TO
    p = add_command("build", help="build one chunked HDF5 feature file per split",
                    usage="%(prog)s [options] (NOTES... | --manifest FILE.csv) STORE",
                    description="Turn labelled audio into STORE/SPLIT.h5: NSynth-layout folders "
                                "(NOTES/{train,valid,test} with examples.json + audio/*.wav), "
                                "class folders (ROOT/LABEL/FILE or ROOT/SPLIT/LABEL/FILE) or a "
                                "CSV manifest (path,label[,split,group,...]). With several "
                                "inputs each split holds the notes of that split of every "
                                "input; a note name two inputs share is refused. Resumes an "
                                "interrupted build.")
    p.add_argument("paths", type=local_path, nargs="+", metavar="NOTES... STORE", help="the "
                   "input folders, one or more (none with --manifest), then the store folder")
    d = InputOptions()
    g = p.add_argument_group("inputs (recorded in the store's attrs; with --add, the store's "
                             "unless given)")
    g.add_argument("--layout", choices=LAYOUTS, help="auto (default): nsynth where "
                   "NOTES/SPLIT/examples.json exists, else folders (one folder per class)")
    g.add_argument("--manifest", type=local_path, action="append", metavar="FILE.csv",
                   help="read this CSV (columns path,label and optionally split, group, or as "
                        "--columns names them; others kept as metadata); paths are relative "
                        "to its folder; may be given more than once")
    g.add_argument("--columns", metavar="ROLE=COLUMN,...", help="the manifest's columns that "
                   "give path, label, split, group: path=filename,label=category")
    g.add_argument("--group-by", metavar="REGEX",
                   help="what this regular expression matches in a file's name (path, if "
                        "it holds a /; its first group, if any) is the file's group: files "
                        "of one group never share a drawn split (default: each file alone)")
    g.add_argument("--windows", type=float, metavar="HOP_SECONDS",
                   help="cut files longer than a clip into clips starting HOP_SECONDS apart, "
                        "each a note (default: each file's first clip; the rest is trimmed)")
    g.add_argument("--valid-fraction", type=float,
                   help="share of the groups a drawn split gives valid (default "
                        f"{d.valid_fraction:g}); splits are drawn where the inputs give none")
    g.add_argument("--test-fraction", type=float, help=f"share of the groups a drawn split "
                   f"gives test (default {d.test_fraction:g})")
    jobs = _default(build_store, "jobs")
    p.add_argument("--jobs", type=int, default=jobs, help=f"parallel workers (default {jobs})")
    p.add_argument("--backend", choices=BACKENDS, default=_default(build_store, "backend"),
                   help=f"joblib backend (default auto: threads for up to {THREADS_UP_TO} "
                        f"jobs, loky processes beyond); dask uses the running client or a "
                        f"LocalCluster")
    batch = _default(build_store, "batch_size")
    p.add_argument("--batch-size", type=int, default=batch,
                   help=f"notes per worker task (default {batch})")
    p.add_argument("--overwrite", action="store_true", help="rebuild finished split files")
    p.add_argument("--split", choices=SPLITS, nargs="+", dest="splits",
                   help="only these splits of the inputs (default: every one they give)")
    p.add_argument("--add", action="store_true",
                   help="grow the store by the notes of the inputs it does not hold yet (those "
                        "it holds kept as they are, statistics merged, new labels appended), "
                        "the inputs read with the options the store was built with")
    _feature_options(p)


def _feature_options(p):
    """The options of :class:`featurestore.params.FeatureParams` (``build``)."""
    from featurestore.params import KINDS, FeatureParams
    d = FeatureParams()
    g = p.add_argument_group("features (recorded in the store's attrs; with --add, the "
                             "store's unless given)")
    g.add_argument("--features", choices=KINDS,
                   help="log-magnitude STFT (default) or log-mel bands")
    g.add_argument("--duration", type=float, metavar="SECONDS",
                   help=f"the clip each note is cut or zero-padded to (default {d.duration:g})")
    g.add_argument("--n-fft", type=int, help=f"STFT window in samples (default {d.n_fft})")
    g.add_argument("--hop-length", type=int,
                   help=f"samples between frames (default {d.hop_length})")
    g.add_argument("--n-mels", type=int, help=f"mel bands (--features mel; default {d.n_mels})")
    g.add_argument("--sample-rate", type=int,
                   help=f"audio at other rates is resampled to this one (default "
                        f"{d.sample_rate} Hz)")


def _inspect(add_command):
    p = add_command("inspect", help="describe a store's splits",
                    description="Every split's shapes, labels, statistics, skipped inputs, "
                                "features and results (with their settings and scores), and "
                                "the sounds placed on the store's maps.")
    p.add_argument("store", type=store_location, help=STORE_HELP)
    p.add_argument("--all-skipped", action="store_true",
                   help="list every skipped input of a split, with its reason (default: the "
                        "first 10)")
    p.add_argument("--all-adjusted", action="store_true",
                   help="list every input fitted to the features (downmixed, resampled, padded, "
                        "trimmed, a recording's tail left out), with what was done")


def _train(add_command):
    """The options of :class:`training.config.TrainConfig`: left out, they are ``None`` and
    the config's default applies (so ``--resume`` can tell which were given)."""
    from training.config import (EPOCH_NOTES, LEARNING_RATES, LOADERS, MODELS, PRECISIONS,
                                 SCHEDULES, VALID_WEIGHTS, TrainConfig)
    d = TrainConfig()
    p = add_command("train", help="train a classifier of the store's labels",
                    description="Train on STORE/train.h5, pick the best epoch on "
                                "STORE/valid.h5; write MODEL_DIR/model.keras, config.json, "
                                "history.csv and curves.png.")
    p.add_argument("store", type=store_location, help=STORE_HELP)
    p.add_argument("model_dir", type=local_path, help="folder to write the model into")
    p.add_argument("--model", choices=MODELS,
                   help=f"default: a 5-layer CNN on mel-averaged bands with augmentation; "
                        f"tutorial: the TF1 tutorial's two-stage CNN (default {d.model})")
    p.add_argument("--budget-minutes", type=float,
                   help=f"training time: no epoch starts that would end after it (default "
                        f"{d.budget_minutes:g}; 0: no limit)")
    p.add_argument("--patience", type=int,
                   help=f"stop after this many epochs without a better validation accuracy "
                        f"(default {d.patience})")
    p.add_argument("--valid-weights", choices=VALID_WEIGHTS,
                   help=f"the validation accuracy that picks the best epoch: every note, "
                        f"NOTES folder or label of the valid split the same (labels: balanced "
                        f"accuracy, for labels of unequal sizes; default {d.valid_weights})")
    p.add_argument("--epochs", type=int, help="at most this many epochs (default: no limit)")
    p.add_argument("--steps-per-epoch", type=int,
                   help=f"batches per epoch (default: a pass over the training split, at most "
                        f"{EPOCH_NOTES:,} notes)")
    p.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    p.add_argument("--learning-rate", type=float, help=f"default {d.learning_rate} "
                   f"({LEARNING_RATES['tutorial']} for --model tutorial)")
    p.add_argument("--schedule", choices=SCHEDULES,
                   help=f"learning rate: halved on a validation plateau, or a cosine over "
                        f"--epochs (default {d.schedule})")
    p.add_argument("--seed", type=int, help=f"default {d.seed}")
    p.add_argument("--deterministic", action="store_true",
                   help="the same seed gives the same model (slower: see docs/training.md)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help=f"mixed: float16 arithmetic; auto: mixed on a GPU (default {d.precision})")
    p.add_argument("--loader", choices=LOADERS,
                   help=f"how training batches are read: notes one by one (mmap, h5py), or runs "
                        f"of notes shuffled within a buffer (block); auto: block when the train "
                        f"split is larger than half the memory or on object storage (default "
                        f"{d.loader})")
    p.add_argument("--block-mib", type=float,
                   help=f"the block order's runs of consecutive notes, MiB (default "
                        f"{d.block_mib:g})")
    p.add_argument("--buffer-mib", type=float,
                   help=f"the block order's shuffle buffer, MiB (default {d.buffer_mib:g})")
    p.add_argument("--workers", type=int,
                   help=f"threads reading batches ahead of training (default {d.workers})")
    p.add_argument("--time-pool", type=int,
                   help=f"frames the default model averages before its first convolution "
                        f"(default {d.time_pool})")
    p.add_argument("--weight-decay", type=float,
                   help=f"AdamW's decoupled weight decay, per unit of learning rate (default "
                        f"{d.weight_decay:g})")
    p.add_argument("--width", type=int,
                   help=f"channels of the default model's first convolution, doubling per "
                        f"block (default {d.width})")
    p.add_argument("--no-augment", action="store_true", help="no augmentation")
    p.add_argument("--no-balance", action="store_true", help="sample notes uniformly")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace a trained model")


def _evaluate(add_command):
    from training.evaluate import evaluate
    p = add_command("evaluate", help="score a model on a split",
                    description="Per-label precision/recall/F1, accuracy, balanced accuracy "
                                "and a confusion-matrix PNG, over the model's label set.")
    p.add_argument("store", type=store_location, help=STORE_HELP)
    p.add_argument("model_dir", type=local_path, help=MODEL_HELP)
    p.add_argument("--split", choices=SPLITS, default=_default(evaluate, "split"),
                   help="the split to score (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--confusion", type=local_image,
                   help="confusion-matrix image, PNG unless its ending names another format "
                        "(default MODEL_DIR/confusion_SPLIT.png, or confusion_STORENAME_SPLIT.png "
                        "for another store than the model's)")


def _predict(add_command):
    from training.predict import FilePrediction
    p = add_command("predict", help="top labels of audio files",
                    description="The model's top labels with probabilities for each audio file "
                                "(wav, flac, mp3, ...; any sample rate; stereo is downmixed).")
    p.add_argument("model_dir", type=local_path, help=MODEL_HELP)
    p.add_argument("files", type=local_path, nargs="+",
                   help="audio files, or folders: every audio file below them")
    p.add_argument("--top", type=int, default=_default(FilePrediction.top, "k"),
                   help="labels printed per file (default: %(default)s)")
    p.add_argument("--windows", type=float, metavar="HOP_SECONDS",
                   help="cut each file into clips starting HOP_SECONDS apart and print the "
                        "labels of each (a timeline) after their mean; default: each file's "
                        "first clip, as build stores it")
    p.add_argument("--json", action="store_true", help="print one JSON array, an object a file")


def _embed(add_command):
    p = add_command("embed", help="write embeddings and probabilities into the store",
                    description="Write /embeddings (the model's penultimate layer) and "
                                "/probabilities into each split file, or into files of their "
                                "own (--into).")
    p.add_argument("store", type=store_location, help=STORE_HELP)
    p.add_argument("model_dir", type=local_path, help=MODEL_HELP)
    p.add_argument("--into", type=local_path, metavar="FOLDER",
                   help="write FOLDER/SPLIT.h5 (embeddings, probabilities, names, labels, "
                        "instrument) instead of writing into the store; needed for a store "
                        "on object storage")
    p.add_argument("--split", choices=SPLITS, nargs="+", help="only these splits (default: all)")


def _tsne(add_command):
    from analysis.tsne import DEFAULT_PERPLEXITY as PERPLEXITY, METHODS, SOURCES, tsne_split
    p = add_command("tsne", help="write a t-SNE map of a split into the store",
                    description="Write /tsne (N, 2) with its quality (trustworthiness, kNN "
                                "label accuracy) in the attrs.")
    p.add_argument("store", type=store_location, help="the store folder (a local store)")
    helps = {"split": "the split to map", "perplexity": f"t-SNE's perplexity: about the number "
             f"of neighbours each point keeps close (default: {PERPLEXITY:g}, or for a split of "
             f"{3 * PERPLEXITY:g} points or fewer the most it allows)", "seed": "seeds the layout"}
    for option, text in helps.items():
        default = _default(tsne_split, option)  # None: said in the text
        p.add_argument(f"--{option}", type=float if default is None else type(default),
                       default=default, choices=SPLITS if option == "split" else None,
                       help=text if default is None else f"{text} (default: %(default)s)")
    p.add_argument("--source", choices=SOURCES, default=_default(tsne_split, "source"),
                   help="map embeddings (run embed first) or stored spectra (default: %(default)s)")
    p.add_argument("--method", choices=METHODS, default=_default(tsne_split, "method"),
                   help="openTSNE (place can add sounds to its maps) or scikit-learn "
                        "(default: %(default)s)")


def _place(add_command):
    p = add_command("place", help="put new sounds on an existing t-SNE map",
                    description="Embed audio files and position them on a split's "
                                "openTSNE map; print coordinates and nearest stored notes.")
    p.add_argument("store", type=store_location, help="the store folder (a local store)")
    p.add_argument("model_dir", type=local_path, help="the model whose embeddings the map shows")
    p.add_argument("files", type=local_path, nargs="+",
                   help="audio files, or folders: every audio file below them")
    p.add_argument("--split", choices=SPLITS,
                   help="the split whose map to place on (default: test's, or the only map)")


def _plot(add_command):
    p = add_command("plot", help="the t-SNE maps as an image (PNG, PDF, SVG), coloured by label",
                    description="One panel per split with a /tsne map (run tsne first), each "
                                "note a dot coloured by its label.")
    p.add_argument("store", type=store_location, help="the store folder (a local store)")
    p.add_argument("out", type=local_image,
                   help="the image to write: .png (added to a name without an ending), .pdf, "
                        ".svg or any other that matplotlib writes; a folder (or a name ending "
                        "in /) gets map.png")
    p.add_argument("--split", choices=SPLITS, nargs="+",
                   help="only these splits (default: all with a map)")


def _map(add_command):
    p = add_command("map", help="interactive HTML map: hover, click to listen, filter",
                    description="Write OUT_DIR/index.html, which opens offline from disk.")
    p.add_argument("store", type=store_location, help="the store folder (a local store)")
    p.add_argument("out_dir", type=local_path, help="folder to write index.html into")
    p.add_argument("--split", choices=SPLITS, nargs="+",
                   help="only these splits (default: all with a map)")
    p.add_argument("--copy-audio", action="store_true",
                   help="copy the notes' and placed sounds' audio next to the page (default: "
                        "link to it); an earlier map's copies the new page does not play are "
                        "removed, but for copies of sounds that are missing")


def _demo(add_command):
    from analysis.demo import DemoOptions
    p = add_command("demo", help="everything on sampled and synthesised notes, in minutes",
                    description=f"render -> build -> train ({DemoOptions.budget_minutes:g} "
                    "minutes at most) -> evaluate -> embed -> tsne -> plot -> map on notes from "
                    "TimGM6mb and the synthesis engines (timbremap's synth extra), a few GiB "
                    "in OUT_DIR (docs/demo.md); run again, it keeps the steps it finished.")
    p.add_argument("out_dir", type=local_path, nargs="?", default=Path("demo"),
                   help="folder for the notes, store, model and pictures (default %(default)s)")
    p.add_argument("--seed", type=int, default=DemoOptions.seed,
                   help="the seed of training and of the t-SNE maps")


#: One builder per subcommand, in the order ``timbremap --help`` lists them; each is given
#: ``add_command(name, help=..., description=...)`` and adds its options to the parser it gets.
COMMANDS = (_render, _build, _inspect, _train, _evaluate, _predict, _embed, _tsne, _place,
            _plot, _map, _demo)
