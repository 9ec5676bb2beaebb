"""The ``timbremap`` command: messages and exit codes over the packages' public functions
(its options are in :mod:`analysis.options`). Heavy modules (tensorflow) are imported only by
the commands that need them.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
import threading
from pathlib import Path

from analysis.arguments import (CommandError, audio_arguments, feature_params, given_settings,
                                named_as_options, resume_conflicts)
from analysis.options import parse_args
from analysis.output import (EXIT_READER_GONE, ReaderGone, error_line, one_line,
                             set_up_streams, write_json_array, write_results as _print)
from analysis.signals import exit_status, stopped_by, terminated_as_interrupted
from featurestore.errors import TimbremapError, counted
from featurestore.remote import client_errors, is_url

log = logging.getLogger("timbremap")

EXIT_ERROR = 1


def cmd_render(args):
    from featurestore.nsynth import SPLITS
    from featurestore.render import RenderOptions, render_soundfont
    from featurestore.synth import render_synth
    options = RenderOptions(velocities=tuple(args.velocities), pitch_step=args.pitch_step,
                            fractions=tuple(args.fractions), seed=args.seed)
    others = ({"SOUNDFONT": args.soundfont, "--programs": args.programs, "--tag": args.tag}
              if args.synth else {"--engines": args.engines, "--per-family": args.per_family})
    given = [name for name, value in others.items() if value is not None]
    if given:
        what = "for a SoundFont" if len(given) == 1 else "each for a SoundFont"
        raise CommandError(f"{', '.join(given)}: " + (
            f"{what}, not for --synth" if args.synth else "only with --synth"))
    if not args.synth and args.soundfont is None and not Path(args.out).is_dir() and \
            Path(args.out).suffix.lower() in (".sf2", ".sf3"):  # a SoundFont alone, or mistyped
        raise CommandError(f"{args.out}: is a SoundFont file, not an OUT folder; give "
                           f"SOUNDFONT OUT" if Path(args.out).exists() else
                           f"{args.out}: no such SoundFont, and as OUT it would be a folder "
                           f"named as one; give SOUNDFONT OUT (to render into a folder of that "
                           f"name, make it first)")
    if args.synth:
        extra = {} if args.per_family is None else {"per_family": args.per_family}
        counts = render_synth(args.out, engines=args.engines, options=options,
                              progress=not args.quiet, **extra)
    else:
        counts = render_soundfont(args.out, args.soundfont, options=options,
                                  programs=args.programs, tag=args.tag, progress=not args.quiet)
    _print(*(f"{split}: {counted(counts[split], 'note')} of "
             f"{counted(_instruments(Path(args.out) / split), 'instrument')} -> "
             f"{Path(args.out) / split}" for split in SPLITS if split in counts))


def _instruments(split_dir: Path) -> int:
    """How many instruments a split that render wrote holds."""
    from featurestore.jsonstream import read_json
    examples = read_json(split_dir / "examples.json", max_bytes=None)  # grows with the notes
    return len({e["instrument"] for e in examples.values()})


def cmd_build(args):
    import dataclasses
    from featurestore.build import build_store
    from featurestore.describe import build_summary
    from featurestore.grow import recorded_inputs, recorded_params
    from featurestore.layouts import InputOptions
    *inputs, out = args.paths
    if args.manifest:
        if inputs:
            raise CommandError(f"{', '.join(map(str, inputs))}: with --manifest, give only "
                               f"the STORE folder")
        if args.layout not in (None, "auto", "manifest"):
            raise CommandError(f"--manifest reads a manifest, not --layout {args.layout}")
        inputs = args.manifest
    elif not inputs:
        raise CommandError("give the NOTES folders and the STORE folder (or --manifest FILE.csv "
                           "and the STORE folder)")
    given = {name: getattr(args, name) for name in
             ("layout", "group_by", "windows", "valid_fraction", "test_fraction", "columns")
             if getattr(args, name) is not None}
    if args.manifest:
        given["layout"] = "manifest"
    # --add reads the inputs as the store was built, but for the options given
    options = (dataclasses.replace(recorded_inputs(out), **given) if args.add
               else InputOptions(**given))
    features = feature_params(args, recorded_params(out) if args.add else None)
    try:
        reports = build_store(inputs, out, features, inputs=options, jobs=args.jobs,
                              add=args.add, backend=args.backend, batch_size=args.batch_size,
                              splits=args.splits, overwrite=args.overwrite,
                              progress=not args.quiet)
    except KeyboardInterrupt:
        log.warning("%s: the same command goes on from where it was stopped", out)
        raise
    _print(*build_summary(reports))


def cmd_inspect(args):
    from analysis.placements import describe_placed
    from featurestore.describe import describe_store
    from featurestore.errors import StoreError
    unreadable = {}
    _print(*describe_store(args.store, max_skipped=None if args.all_skipped else 10,
                           all_adjusted=args.all_adjusted, unreadable=unreadable))
    if not is_url(args.store):  # place writes into local stores only
        from analysis.tsne import mapped_splits
        from featurestore.store import store_splits
        readable = [s for s in store_splits(args.store) if s not in unreadable]
        _print(*describe_placed(args.store, mapped=mapped_splits(args.store, readable)))
    if len(unreadable) == 1:
        raise next(iter(unreadable.values()))
    if unreadable:
        raise StoreError(f"{args.store}: {len(unreadable)} splits of it cannot be read (above)")


def cmd_train(args):
    from training.config import TrainConfig
    from training.modeldir import MODEL_FILE
    from training.train import interrupted_config, train
    given = given_settings(args)
    started = interrupted_config(args.model_dir) if args.resume else None
    other = [] if started is None else resume_conflicts(given, started)
    if other:  # before the settings are checked on their own: they are not the run's
        raise CommandError(
            f"{args.model_dir}: its run had finished, so --resume has nothing to go on with; a "
            f"run with {', '.join(other)} starts again, in another folder or with --overwrite, "
            f"which replaces this model" if (Path(args.model_dir) / MODEL_FILE).is_file() else
            f"--resume continues the run with the settings it started with; leave out "
            f"{', '.join(other)} (or give the run's own)")
    config = TrainConfig(**given)
    try:
        result = train(args.store, args.model_dir, config, resume=args.resume,
                       overwrite=args.overwrite,
                       verbose=0 if args.quiet else None)
    except KeyboardInterrupt:
        from training.modeldir import resume_hint  # Keras may be half imported
        log.warning("%s", resume_hint(args.store, args.model_dir))
        raise
    _print(f"model: {result.model_dir / 'model.keras'}",
           f"best validation accuracy {result.best_val_accuracy:.3f} at epoch "
           f"{result.best_epoch} of {result.epochs} (stopped: {result.stopped}); "
           f"{result.minutes:.1f} minutes of training",
           f"history: {result.model_dir / 'history.csv'}, curves: "
           f"{result.model_dir / 'curves.png'}, config: {result.model_dir / 'config.json'}")


def cmd_evaluate(args):
    import json
    from training.evaluate import evaluate, write_confusion
    from training.images import image_path
    if args.confusion:  # its format and folder, before the scoring
        image_path(args.confusion, in_folder="confusion.png")
    result = evaluate(args.store, args.model_dir, args.split)
    png = None
    try:
        png = write_confusion(result, args.confusion)
    finally:  # the scores, where the PATH given cannot be written too (its error comes after)
        _print(*[json.dumps({**result.to_dict(), "confusion_png": png and str(png.resolve())})]
               if args.json else _scores_text(args, result, png))


def _scores_text(args, result, png) -> list:
    """The lines ``evaluate`` prints of ``result`` (its confusion matrix written to ``png``)."""
    from training.evaluate import per_label_text
    folders = [f"  {name}: accuracy {r['accuracy']:.3f}, balanced "
               f"{r['balanced_accuracy']:.3f} ({counted(r['n'], 'note')})"
               for name, r in result.per_folder.items()]
    return [f"{args.split} split of {one_line(str(args.store))}: {counted(result.n, 'note')}",
            f"accuracy {result.accuracy:.3f}, balanced accuracy "
            f"{result.balanced_accuracy:.3f}", *(["by NOTES folder:"] + folders if folders
                                                 else []),
            *([f"by recording (its clips' probabilities averaged): accuracy "
               f"{files['accuracy']:.3f}, balanced {files['balanced_accuracy']:.3f} "
               f"({counted(files['n'], 'file')})"] if (files := result.per_file) else []),
            "", per_label_text(result).rstrip(),
            *(["", f"confusion matrix: {one_line(str(png))}"] if png else [])]


def cmd_predict(args):
    from training.predict import iter_predictions
    if args.top < 1:
        raise CommandError(f"--top must be at least 1, got {args.top}")
    if args.windows is not None:
        from featurestore.windows import check_hop
        try:
            check_hop(args.windows)
        except ValueError as err:
            raise CommandError(f"--windows: {err}") from None
    files = audio_arguments(args.files)

    def results():  # the model loaded in --json's array: stopped then, it prints []
        return iter_predictions(args.model_dir, files, windows=args.windows)
    if args.json:
        failed = []  # each file's: whether it could not be used

        def rows():
            for r in results():
                failed.append(bool(r.error))
                yield r.to_json(args.top)
        write_json_array(rows())
        if any(failed):
            raise CommandError(f"{sum(failed)} of {len(failed)} files could not be used")
        return

    def top(names):
        return ", ".join(f"{name} {p:.3f}" for name, p in names)

    def describe(r):
        if not r.clips:
            return top(r.top(args.top))
        used = sum(1 for c in r.clips if c.error is None)
        lines = [f"{top(r.top(args.top))} (mean of {used} clip{'s' * (used != 1)})"]
        for c in r.clips:
            span = f"  {c.offset:8.2f}-{c.end:.2f} s  "
            lines.append(span + (f"not used: {c.error}" if c.error else
                                 top(r.clip_top(c, args.top))))
        return "\n".join(lines)
    _report_files(results(), describe)


def _report_files(results, describe, given=None):
    """One line per file (stdout) with what reading did to it, one error line per unreadable
    file (stderr), each as its file is done; then fail if any file could not be used, after
    all the others were done. Each is named as ``given`` (in order), else by its ``path``."""
    failed = total = 0
    for r, name in zip(results, given or itertools.repeat(None)):
        total += 1
        if r.error:
            failed += 1
            log.error("error: %s", one_line(r.error))
        else:  # what reading did goes on the first line, below it any further lines
            first, _, more = describe(r).partition("\n")
            _print(f"{one_line(str(r.path if name is None else name))}: {first}"
                   + (f"  ({'; '.join(r.adjustments)})" if r.adjustments else "")
                   + (f"\n{more}" if more else ""))
    if failed:
        raise CommandError(f"{failed} of {total} files could not be used")


def cmd_embed(args):
    from analysis.embed import embed_store
    from training.modeldir import label_set_text, read_model_labels
    shapes = embed_store(args.store, args.model_dir, args.split, into=args.into,
                         progress=not args.quiet)
    labels = read_model_labels(args.model_dir)
    _print(*(f"{split}: /embeddings {shape}, /probabilities ({shape[0]}, {len(labels)})"
             for split, shape in shapes.items()), f"labels: {label_set_text(labels)}")


def cmd_tsne(args):
    from analysis.tsne import tsne_split
    result = tsne_split(args.store, args.split, source=args.source, method=args.method,
                        perplexity=args.perplexity, seed=args.seed)
    a = result.attrs
    _print(f"{args.split}: /tsne ({result.n}, 2) by {a['method']} from {a['source']}, "
           f"perplexity {a['perplexity']:g}, KL {a['kl_divergence']:.3f}",
           f"trustworthiness (k={a['trustworthiness_k']}) {a['trustworthiness']:.3f}; kNN "
           f"label accuracy (k={a['knn_k']}) "
           f"{a['knn_accuracy_source']:.3f} in the source space, {a['knn_accuracy_map']:.3f} "
           f"on the map")


def cmd_place(args):
    from analysis.place import placements
    files = audio_arguments(args.files)  # printed as given: placed.json keeps real paths
    _report_files(placements(args.store, args.model_dir, files, split=args.split),
                  lambda r: (f"({r.x:.2f}, {r.y:.2f}) on the {r.split} map, predicted "
                             f"{r.family} {r.probability:.2f}; "
                             f"nearest: " + ", ".join(f"{n['name']} ({n['family']})"
                                                      for n in r.nearest[:3])), files)


def cmd_plot(args):
    from analysis.plot import plot_map
    _print(str(plot_map(args.store, args.out, args.split)))


def cmd_map(args):
    from analysis.mapview import write_map
    _print(str(write_map(args.store, args.out_dir, args.split, copy_audio=args.copy_audio)))


def cmd_demo(args):
    from analysis.demo import DemoOptions, run_demo
    try:
        report = run_demo(args.out_dir, DemoOptions(seed=args.seed), progress=not args.quiet)
    except KeyboardInterrupt:
        log.warning("%s: the same command goes on: it keeps the notes, store and model made, "
                    "and a stopped training resumes", args.out_dir)
        raise
    _print(*report.summary())


COMMANDS = {"render": cmd_render, "build": cmd_build, "inspect": cmd_inspect, "train": cmd_train,
            "evaluate": cmd_evaluate, "predict": cmd_predict, "embed": cmd_embed,
            "tsne": cmd_tsne, "place": cmd_place, "plot": cmd_plot, "map": cmd_map,
            "demo": cmd_demo}
#: The commands whose modules import Keras, and so its backend, as they load (the others import
#: it as they load a model or train: training.modeldir, training.train).
MODEL_COMMANDS = {"embed", "place"}
#: The commands that import Keras, and so need its backend's package.
KERAS_COMMANDS = MODEL_COMMANDS | {"train", "evaluate", "predict", "demo"}
OWN_LOGGERS = {"timbremap", "featurestore", "training", "analysis"}


def _own_or_warning(record: logging.LogRecord) -> bool:
    """Our packages' messages at any level; other libraries' only from warnings up."""
    return record.levelno >= logging.WARNING or record.name.split(".")[0] in OWN_LOGGERS


def main(argv=None) -> int:
    """Results go to stdout, messages and progress to stderr (logging and tqdm); SIGTERM ends
    a command as Ctrl-C does (:mod:`analysis.signals`)."""
    with terminated_as_interrupted():
        try:
            return _run(argv)
        except KeyboardInterrupt as stop:  # before the command ran (parsing its options)
            print(f"timbremap: {stopped_by(stop)}", file=sys.stderr)
            return exit_status(stop)


def _run(argv) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # tensorflow's C++ start-up chatter
    set_up_streams()
    args = parse_args(argv)
    if args.command in MODEL_COMMANDS:
        from training.backend import import_tensorflow_quietly
        import_tensorflow_quietly()  # interrupted: before logging is set up, said by main
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="timbremap: %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:  # other libraries (dask, numba...): warnings
        handler.addFilter(_own_or_warning)
    try:
        if args.command in KERAS_COMMANDS:
            from training.backend import check_installed
            check_installed()
        COMMANDS[args.command](args)
    except KeyboardInterrupt as stop:
        log.error(stopped_by(stop))
        if threading.active_count() > 1:  # workers may be inside C++ code (the FFT): ending
            with contextlib.suppress(OSError):  # the interpreter under them aborts the process,
                sys.stdout.flush()              # so leave without finalising (files are closed
                sys.stderr.flush()              # by now; a terminal hung up cannot be written)
            os._exit(exit_status(stop))
        return exit_status(stop)
    except ReaderGone:  # | head: the reader has what it wanted
        return EXIT_READER_GONE
    except (TimbremapError, OSError) as err:  # expected: bad input, a file, the disk
        if args.verbose:
            log.exception("failed")
        log.error("error: %s", named_as_options(error_line(err), args) or type(err).__name__)
        return EXIT_ERROR
    except client_errors() as err:  # a store on object storage that went out of reach
        if args.verbose:
            log.exception("failed")
        log.error("error: %s: cannot be read (%s: %s)", getattr(args, "store", "the store"),
                  type(err).__name__, err)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
