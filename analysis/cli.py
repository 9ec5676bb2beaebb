"""The ``timbremap`` command: argument parsing, messages and exit codes over the packages'
public functions. Heavy modules (tensorflow) are imported only by the commands that need them.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from pathlib import Path

from featurestore.errors import TimbremapError

log = logging.getLogger("timbremap")

EXIT_ERROR = 1


class CommandError(TimbremapError):
    """A command line that cannot be run as given: printed as one line, exit code 1."""


def _print(*lines):
    """Results go to stdout (messages and progress go to stderr through logging and tqdm)."""
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    sys.stdout.flush()


def cmd_render(args):
    from featurestore.render import RenderOptions, render_soundfont
    options = RenderOptions(velocities=tuple(args.velocities), pitch_step=args.pitch_step,
                            fractions=tuple(args.fractions), seed=args.seed)
    counts = render_soundfont(args.out, args.soundfont, options=options, programs=args.programs,
                              tag=args.tag, progress=not args.quiet)
    _print(*(f"{split}: {n} notes -> {Path(args.out) / split}" for split, n in counts.items()))


def feature_params(args):
    from featurestore.params import FeatureParams
    if args.n_mels is not None and args.features != "mel":
        raise CommandError(f"--n-mels {args.n_mels}: mel bands apply to --features mel only")
    mel = {} if args.n_mels is None else {"n_mels": args.n_mels}
    return FeatureParams(kind=args.features, n_fft=args.n_fft, hop_length=args.hop_length,
                         sample_rate=args.sample_rate, **mel)


def build_summary(reports):
    """The one-screen summary of a build."""
    lines = [f"{'split':<7}{'status':<9}{'notes':>8}{'skipped':>9}{'adjusted':>10}"
             f"{'seconds':>9}{'notes/s':>9}{'MiB':>9}{'KiB/note':>10}"]
    for r in reports:
        per_note = r.bytes / r.n_examples / 1024 if r.n_examples else float("nan")
        lines.append(f"{r.split:<7}{r.status:<9}{r.n_examples:>8}{r.n_skipped:>9}"
                     f"{r.n_adjusted:>10}{r.seconds:>9.1f}"
                     f"{'-' if r.status == 'kept' else f'{r.rate:.0f}':>9}"
                     f"{r.bytes / 2**20:>9.1f}{per_note:>10.1f}")
    for r in reports:
        for name, reason in r.skipped[:5]:
            lines.append(f"  skipped {r.split}/{name}: {reason}")
        if len(r.skipped) > 5:
            lines.append(f"  ... {len(r.skipped) - 5} more skipped in {r.split} "
                         f"(timbremap inspect lists them)")
    return lines


def cmd_build(args):
    from featurestore.build import build_store
    reports = build_store(args.root, args.out, feature_params(args), jobs=args.jobs,
                          backend=args.backend, batch_size=args.batch_size,
                          overwrite=args.overwrite, progress=not args.quiet)
    _print(*build_summary(reports))


def cmd_inspect(args):
    from featurestore.inspect import describe_store
    _print(*describe_store(args.store))


def train_config(args):
    from training.config import TrainConfig
    changes = {name: getattr(args, name) for name in
               ("model", "epochs", "steps_per_epoch", "batch_size", "learning_rate", "patience",
                "max_minutes", "seed", "loader")
               if getattr(args, name, None) is not None}
    if args.no_augment:
        changes["augment"] = False
    if args.no_balance:
        changes["balance"] = False
    return TrainConfig(**changes)


def cmd_train(args):
    from training.config import TrainConfig
    from training.train import train
    config = train_config(args)
    if args.resume:
        negated = {"augment": "--no-augment", "balance": "--no-balance"}
        given = [negated.get(name, "--" + name.replace("_", "-"))
                 for name, value in config.to_dict().items()
                 if value != getattr(TrainConfig(), name)]
        if given:
            raise CommandError(f"--resume continues the run with the settings it started "
                               f"with; leave out {', '.join(given)}")
    result = train(args.store, args.model_dir, config, resume=args.resume,
                   overwrite=args.overwrite, verbose=0 if args.quiet else 1)
    _print(f"model: {result.model_dir / 'model.keras'}",
           f"best validation accuracy {result.best_val_accuracy:.3f} at epoch "
           f"{result.best_epoch} of {result.epochs}"
           f"{' (stopped early)' if result.stopped_early else ''}; "
           f"{result.minutes:.1f} minutes of training",
           f"history: {result.model_dir / 'history.csv'}, curves: "
           f"{result.model_dir / 'curves.png'}, config: {result.model_dir / 'config.json'}")


def cmd_evaluate(args):
    import json
    from training.evaluate import classification_report_text, evaluate
    result = evaluate(args.store, args.model_dir, args.split, confusion_png=args.confusion)
    report = classification_report_text(result)
    if args.json:
        _print(json.dumps({k: v for k, v in result.items() if not k.startswith("_")}))
        return
    _print(f"{args.split} split of {args.store}: {result['n']} notes",
           f"accuracy {result['accuracy']:.3f}, balanced accuracy "
           f"{result['balanced_accuracy']:.3f}", "", report.rstrip(), "",
           f"confusion matrix: {result['confusion_png']}")


def cmd_predict(args):
    from training.predict import predict_files
    if args.top < 1:
        raise CommandError(f"--top must be at least 1, got {args.top}")
    _report_files(predict_files(args.model_dir, args.files), lambda r: ", ".join(
        f"{name} {p:.3f}" for name, p in r.top(args.top)))


def _report_files(results, describe):
    """One line per file (stdout) with what reading did to it, one error line per unreadable
    file (stderr); then fail if any file could not be used, after all the others were done."""
    failed = [r for r in results if r.error]
    for r in results:
        if r.error:
            log.error("error: %s", r.error)
        else:
            _print(f"{r.path}: {describe(r)}"
                   + (f"  ({'; '.join(r.adjustments)})" if r.adjustments else ""))
    if failed:
        raise CommandError(f"{len(failed)} of {len(results)} files could not be used")


def cmd_embed(args):
    from analysis.embed import embed_store
    from featurestore.nsynth import FAMILIES
    shapes = embed_store(args.store, args.model_dir, args.split, progress=not args.quiet)
    _print(*(f"{split}: /embeddings {shape}, /probabilities ({shape[0]}, {len(FAMILIES)})"
             for split, shape in shapes.items()))


def cmd_tsne(args):
    from analysis.tsne import tsne_split
    result = tsne_split(args.store, args.split, source=args.source, method=args.method,
                        perplexity=args.perplexity, seed=args.seed)
    a = result.attrs
    _print(f"{args.split}: /tsne ({result.n}, 2) by {a['method']} from {a['source']}, "
           f"perplexity {a['perplexity']:g}, KL {a['kl_divergence']:.3f}",
           f"trustworthiness (k=10) {a['trustworthiness']:.3f}; kNN family accuracy (k=10) "
           f"{a['knn_accuracy_source']:.3f} in the source space, {a['knn_accuracy_map']:.3f} "
           f"on the map")


def cmd_place(args):
    from analysis.place import place_files
    _report_files(place_files(args.store, args.model_dir, args.files, split=args.split),
                  lambda r: (f"({r.x:.2f}, {r.y:.2f}) predicted {r.family} {r.probability:.2f}; "
                             f"nearest: " + ", ".join(f"{n['name']} ({n['family']})"
                                                      for n in r.nearest[:3])))


def cmd_plot(args):
    from analysis.plot import plot_map
    _print(str(plot_map(args.store, args.out, args.split)))


def cmd_map(args):
    from analysis.mapview import write_map
    _print(str(write_map(args.store, args.out_dir, args.split, copy_audio=args.copy_audio)))


def cmd_demo(args):
    from analysis.demo import run_demo
    report = run_demo(args.out_dir, progress=not args.quiet)
    lines = [f"timbremap demo in {report.out}:"]
    lines += [f"  {name:<9}{seconds:7.1f} s  {summary}" for name, seconds, summary in report.steps]
    lines += [f"  total    {sum(s for _, s, _ in report.steps):7.1f} s", "files:"]
    lines += [f"  {path}" for path in report.files]
    lines.append(f"open {report.out / 'map' / 'index.html'} in a browser to explore and listen")
    _print(*lines)


def _add_feature_options(p):
    from featurestore.params import KINDS, FeatureParams
    d = FeatureParams()
    g = p.add_argument_group("features (recorded in the store's attrs)")
    g.add_argument("--features", choices=KINDS, default=d.kind,
                   help="log-magnitude STFT (default) or log-mel bands")
    g.add_argument("--n-fft", type=int, default=d.n_fft)
    g.add_argument("--hop-length", type=int, default=d.hop_length)
    g.add_argument("--n-mels", type=int, help=f"mel bands (--features mel; default {d.n_mels})")
    g.add_argument("--sample-rate", type=int, default=d.sample_rate,
                   help="audio at other rates is resampled to this one")


def make_parser():
    from analysis.tsne import METHODS, SOURCES
    from featurestore import __version__
    from featurestore.workers import BACKENDS
    from training.config import LOADERS, MODELS, TrainConfig
    parser = argparse.ArgumentParser(
        prog="timbremap",
        description="HDF5 feature store, instrument-family classifier and timbre maps "
                    "for NSynth-layout audio.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug messages")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--version", action="version", version=f"timbremap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add = sub.add_parser

    def add_parser(*a, **k):
        return _add(*a, parents=[common], **k)
    sub.add_parser = add_parser

    p = sub.add_parser("render", help="render NSynth-layout notes from a General MIDI SoundFont",
                       description="Render notes of a General MIDI SoundFont into instrument-"
                                   "disjoint train/valid/test splits in NSynth's layout.")
    p.add_argument("soundfont", nargs="?", type=Path,
                   help="SF2 or SF3 (Vorbis-compressed) file (default: TimGM6mb.sf2 "
                        "shipped by pretty_midi)")
    p.add_argument("out", type=Path, help="root folder to write train/ valid/ test/ into")
    p.add_argument("--velocities", type=int, nargs="+", default=[50, 75, 100, 127])
    p.add_argument("--pitch-step", type=int, default=1, help="render every Nth pitch")
    p.add_argument("--fractions", type=float, nargs=3, default=[0.6, 0.2, 0.2],
                   metavar=("TRAIN", "VALID", "TEST"), help="share of programs per split")
    p.add_argument("--programs", type=int, nargs="+", help="GM programs (default: all mapped)")
    p.add_argument("--tag", help="bank tag in instrument names (default: SoundFont file name)")
    p.add_argument("--seed", type=int, default=0, help="seeds the program -> split assignment")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("build", help="build one chunked HDF5 feature file per split",
                       description="Turn ROOT/{train,valid,test} (examples.json + audio/*.wav) "
                                   "into OUT/SPLIT.h5. Resumes an interrupted build.")
    p.add_argument("root", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--jobs", type=int, default=2, help="parallel workers (default 2)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="joblib backend (default auto: threads for up to 2 jobs, loky processes "
                        "beyond); dask uses the running client or a LocalCluster")
    p.add_argument("--batch-size", type=int, default=32, help="notes per worker task")
    p.add_argument("--overwrite", action="store_true", help="rebuild finished split files")
    _add_feature_options(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("inspect", help="describe a store's splits",
                       description="Shapes, label counts, statistics, skipped inputs and "
                                   "feature parameters of every split of a store.")
    p.add_argument("store", type=Path)
    p.set_defaults(func=cmd_inspect)

    d = TrainConfig()
    p = sub.add_parser("train", help="train the family classifier on a store",
                       description="Train on STORE/train.h5, pick the best epoch on "
                                   "STORE/valid.h5; write MODEL_DIR/model.keras, config.json, "
                                   "history.csv and curves.png.")
    p.add_argument("store", type=Path)
    p.add_argument("model_dir", type=Path)
    p.add_argument("--model", choices=MODELS, default=d.model)
    p.add_argument("--epochs", type=int, help=f"at most this many (default {d.epochs})")
    p.add_argument("--steps-per-epoch", type=int, help="batches per epoch (default: N / batch)")
    p.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    p.add_argument("--learning-rate", type=float, help=f"default {d.learning_rate}")
    p.add_argument("--patience", type=int, help=f"early-stopping patience (default {d.patience})")
    p.add_argument("--max-minutes", type=float,
                   help=f"time budget; stops after the epoch that crosses it "
                        f"(default {d.max_minutes})")
    p.add_argument("--seed", type=int, help=f"default {d.seed}")
    p.add_argument("--loader", choices=LOADERS, help=f"default {d.loader}")
    p.add_argument("--no-augment", action="store_true", help="no augmentation")
    p.add_argument("--no-balance", action="store_true", help="sample notes uniformly")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace a trained model")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a model on a split",
                       description="Per-family precision/recall/F1, accuracy, balanced accuracy "
                                   "and a confusion-matrix PNG.")
    p.add_argument("store", type=Path)
    p.add_argument("model_dir", type=Path)
    p.add_argument("--split", default="test")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--confusion", type=Path,
                   help="confusion-matrix PNG (default MODEL_DIR/confusion_SPLIT.png, or "
                        "confusion_STORENAME_SPLIT.png for another store than the model's)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="top families of audio files",
                       description="Top families with probabilities for each audio file "
                                   "(wav, flac, mp3, ...; any sample rate; stereo is downmixed).")
    p.add_argument("model_dir", type=Path)
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--top", type=int, default=3)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("embed", help="write embeddings and probabilities into the store",
                       description="Write /embeddings (the model's penultimate layer) and "
                                   "/probabilities into each split file.")
    p.add_argument("store", type=Path)
    p.add_argument("model_dir", type=Path)
    p.add_argument("--split", nargs="+", help="only these splits (default: all)")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("tsne", help="write a t-SNE map of a split into the store",
                       description="Write /tsne (N, 2) with its quality (trustworthiness, kNN "
                                   "family accuracy) in the attrs.")
    p.add_argument("store", type=Path)
    p.add_argument("--split", default="test")
    p.add_argument("--source", choices=SOURCES, default=SOURCES[0])
    p.add_argument("--method", choices=METHODS, default=METHODS[0])
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_tsne)

    p = sub.add_parser("place", help="put new sounds on an existing t-SNE map",
                       description="Embed audio files and position them on a split's "
                                   "openTSNE map; print coordinates and nearest stored notes.")
    p.add_argument("store", type=Path)
    p.add_argument("model_dir", type=Path)
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--split", default="test")
    p.set_defaults(func=cmd_place)

    p = sub.add_parser("plot", help="PNG of the t-SNE maps, coloured by family")
    p.add_argument("store", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--split", nargs="+", help="only these splits (default: all with a map)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("map", help="interactive HTML map: hover, click to listen, filter",
                       description="Write OUT_DIR/index.html, which opens offline from disk.")
    p.add_argument("store", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--split", nargs="+", help="only these splits (default: all with a map)")
    p.add_argument("--copy-audio", action="store_true",
                   help="copy the notes' audio next to the page (default: link to it)")
    p.set_defaults(func=cmd_map)

    p = sub.add_parser("demo", help="everything on the bundled SoundFont, in minutes",
                       description="render -> build -> train (short) -> evaluate -> embed -> "
                                   "tsne -> plot -> map on notes from TimGM6mb.")
    p.add_argument("out_dir", type=Path, nargs="?", default=Path("demo"))
    p.set_defaults(func=cmd_demo)
    return parser


OWN_LOGGERS = {"timbremap", "featurestore", "training", "analysis"}


def _own_or_warning(record: logging.LogRecord) -> bool:
    """Our packages' messages at any level; other libraries' only from warnings up."""
    return record.levelno >= logging.WARNING or record.name.split(".")[0] in OWN_LOGGERS


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # tensorflow's C++ start-up chatter
    parser = make_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="timbremap: %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:  # other libraries (dask, numba...): warnings
        handler.addFilter(_own_or_warning)
    try:
        args.func(args)
    except KeyboardInterrupt:
        log.error("interrupted")
        if threading.active_count() > 1:  # workers may be inside C++ code (the FFT): ending
            sys.stdout.flush()            # the interpreter under them aborts the process, so
            sys.stderr.flush()            # leave without finalising (files are closed by now)
            os._exit(130)
        return 130
    except (TimbremapError, OSError) as err:  # expected: bad input, a file, the disk
        if args.verbose:
            log.exception("failed")
        log.error("error: %s", str(err).strip() or type(err).__name__)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
