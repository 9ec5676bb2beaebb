"""``timbremap demo``: the whole path on notes of two kinds of sound-making: sampled
instruments rendered from the bundled SoundFont and synthesised ones (FM, physical models,
subtractive and additive voices: :mod:`featurestore.synth`).

render -> build -> train (short) -> evaluate -> embed -> tsne -> plot -> map, into one folder.
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import List, Tuple

from featurestore.errors import InputError, NeedsPackage, install_hint
from featurestore.files import check_folder_path
from featurestore.jsonstream import read_json
from featurestore.params import KEYWORD_ONLY

__all__ = ["DemoOptions", "run_demo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, **KEYWORD_ONLY)
class DemoOptions:
    """Sizes of the demo: small enough to run in minutes on a 2-core machine.

    Parameters
    ----------
    pitch_step, velocities : int, tuple of int
        The TimGM6mb notes: every ``pitch_step``-th pitch of a family's range, at each velocity
        (the synthesised notes too).
    synth_per_family, synth_pitch_step, synth_fractions : int, int, tuple of float
        The synthesised instruments: how many of each family per engine, every how many
        pitches, and their shares of train, valid and test (more test instruments a family
        than the SoundFont's one or two, so the test figure holds from seed to seed).
    budget_minutes : float
        Training's budget; otherwise training is ``timbremap train``'s own (epochs of one
        pass over the training notes until validation stops improving).
    perplexity : float
        The t-SNE maps'.
    jobs, seed : int
        The build's workers; the seed of training and of the t-SNE maps.

    Notes, times and scores: ``docs/demo.md``.
    """

    pitch_step: int = 3
    velocities: tuple = (64, 127)
    synth_per_family: int = 8
    synth_pitch_step: int = 4
    synth_fractions: tuple = (0.5, 0.25, 0.25)
    budget_minutes: float = 8.0
    perplexity: float = 30.0
    jobs: int = 2
    seed: int = 0


@dataclass
class DemoReport:
    """What the demo did and made: each step's seconds and summary, the rendered notes' folders
    (``(folder, files, bytes)``), every other file, and the bytes of all of them."""

    out: Path
    steps: List[tuple] = field(default_factory=list)  # (step, seconds, summary)
    notes: List[Tuple[Path, int, int]] = field(default_factory=list)
    files: List[Path] = field(default_factory=list)
    size: int = 0

    def summary(self) -> List[str]:
        """What ``timbremap demo`` prints: each step's time and summary, then every file."""
        from featurestore.files import size_text
        lines = [f"timbremap demo in {self.out}:"]
        lines += [f"  {name:<9}{seconds:7.1f} s  {summary}"
                  for name, seconds, summary in self.steps]
        lines += [f"  total    {sum(s for _, s, _ in self.steps):7.1f} s",
                  f"files ({size_text(self.size)} in all):"]
        lines += [f"  {folder}/  ({n:,} files, {size_text(nbytes)})"
                  for folder, n, nbytes in self.notes]
        lines += [f"  {path}  ({size_text(path.stat().st_size)})" for path in self.files]
        return lines + [f"open {self.out / 'map' / 'index.html'} in a browser to explore and "
                        f"listen"]


def _files_and_bytes(folder: Path) -> Tuple[int, int]:
    """``(files, bytes)`` of the files below ``folder``."""
    sizes = [p.stat().st_size for p in folder.rglob("*") if p.is_file()]
    return len(sizes), sum(sizes)


def _refuse_another_demo(model: Path, config) -> None:
    """Refuse a model folder of a model trained otherwise (another demo's seed or budget, or a
    model of the user's own): it would be kept, and the maps made with this seed shown beside
    it."""
    try:
        recorded = read_json(model / "config.json")["train"]
        other = [name for name, value in config.to_dict().items()
                 if name in recorded and recorded[name] != value]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # train's checks say
        return
    if other:
        theirs = ", ".join(f"{name} {recorded[name]}" for name in other)
        ours = ", ".join(f"{name} {getattr(config, name)}" for name in other)
        raise InputError(f"{model}: holds a model trained otherwise than this demo's ({theirs}; "
                         f"the demo's: {ours}); run the demo into another folder (timbremap "
                         f"demo OTHER --seed {config.seed})")


def _clear_killed_render(folder: Path) -> None:
    """Remove what a render into ``folder`` killed as its splits were moved in leaves (its
    ``.rendering`` and split folders of rendered notes); refuse a folder holding anything
    else, which is not the demo's to remove."""
    from featurestore.nsynth import RENDERING, SPLITS
    if folder.is_symlink() or folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: is a link or a file, where the demo renders its notes; "
                         f"give the demo another folder (or remove it)")
    if not folder.exists():
        return

    def rendered_split(entry: Path) -> bool:
        audio = entry / "audio"
        return (entry.name in SPLITS and entry.is_dir() and not entry.is_symlink()
                and {p.name for p in entry.iterdir()} <= {"examples.json", "audio"}
                and (not audio.exists() or audio.is_dir() and not audio.is_symlink() and all(
                    p.suffix == ".wav" and p.is_file() for p in audio.iterdir())))
    foreign = [entry for entry in sorted(folder.iterdir())
               if entry.name != RENDERING and not rendered_split(entry)]
    if foreign:
        raise InputError(f"{foreign[0]}: is not the demo's (it renders its notes into "
                         f"{folder}); give the demo another folder, or move this away")
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def run_demo(out, options: DemoOptions = DemoOptions(), progress: bool = True) -> DemoReport:
    """Run every step; finished steps (their outputs present) are not redone."""
    from featurestore.build import build_store
    from featurestore.nsynth import find_splits
    from featurestore.render import RENDERER_HINT, RenderOptions, render_soundfont
    from featurestore.synth import available_engines, render_synth
    from training.backend import import_tensorflow_quietly
    import_tensorflow_quietly()  # Keras's backend, before the modules below import it
    from training.config import TrainConfig
    from training.evaluate import evaluate, write_confusion
    from training.train import train

    from .embed import embed_store
    from .mapview import check_map_folder, write_map
    from .plot import plot_map
    from .tsne import tsne_split

    out = Path(out)
    check_folder_path(out, why="the demo writes its notes, store, model and map into a folder")
    # checked before minutes of rendering and building (the seed's range, the budget)
    config = TrainConfig(seed=options.seed, budget_minutes=options.budget_minutes)
    notes, store, model = out / "notes", out / "store", out / "model"
    _refuse_another_demo(model, config)
    check_map_folder(out / "map")  # not after minutes of work
    sampled, synthesised = notes / "timgm6mb", notes / "synth"
    report = DemoReport(out)

    def step(name, func):
        log.info("demo: %s", name)
        start = time.perf_counter()
        summary = func()
        report.steps.append((name, time.perf_counter() - start, summary))

    def finished(folder):
        return find_splits(folder) == ["train", "valid", "test"]

    missing = [f"tinysoundfont ({RENDERER_HINT})"] * (
        not finished(sampled) and find_spec("tinysoundfont") is None) + \
        [f"the synthesis engines ({install_hint('synth')})"] * (
            not finished(synthesised) and not available_engines())
    if missing:  # each said at once, and only for notes it has yet to render
        raise NeedsPackage(f"the demo renders sampled and synthesised instruments; it needs "
                           f"{' and '.join(missing)}")
    for folder in (sampled, synthesised):  # before minutes of work
        if not finished(folder):
            _clear_killed_render(folder)

    def rendered(folder, what, render):
        if finished(folder):
            return f"{what} kept"
        counts = render(folder)
        return f"{what}: " + ", ".join(f"{s} {counts.get(s, 0)}" for s in ("train", "valid",
                                                                            "test")) + " notes"

    def do_render():
        return "; ".join([
            rendered(sampled, "TimGM6mb", lambda folder: render_soundfont(
                folder, options=RenderOptions(pitch_step=options.pitch_step,
                                              velocities=options.velocities),
                progress=progress)),
            rendered(synthesised, "synthesised", lambda folder: render_synth(
                folder, per_family=options.synth_per_family, options=RenderOptions(
                    pitch_step=options.synth_pitch_step, velocities=options.velocities,
                    fractions=options.synth_fractions),
                progress=progress))])

    def do_build():
        reports = build_store([sampled, synthesised], store, jobs=options.jobs,
                              progress=progress)
        return ", ".join(f"{r.split} {r.n_examples}" for r in reports) + " notes"

    def do_train():
        if (model / "model.keras").is_file():
            return "kept"
        result = train(store, model, config, verbose=None if progress else 0,
                       resume=(model / "config.json").is_file())  # a run that was stopped
        return (f"best validation accuracy {result.best_val_accuracy:.3f} "
                f"(epoch {result.best_epoch} of {result.epochs}; stopped: {result.stopped})")

    def do_evaluate():
        result = evaluate(store, model, "test")
        write_confusion(result)
        kinds = "; ".join(f"{Path(folder).name} {r['accuracy']:.3f}"
                          for folder, r in result.per_folder.items())
        return (f"test accuracy {result.accuracy:.3f}, balanced "
                f"{result.balanced_accuracy:.3f} ({kinds})")

    def do_tsne():
        parts = []
        for split in ("valid", "test"):
            attrs = tsne_split(store, split, perplexity=options.perplexity, seed=options.seed).attrs
            parts.append(f"{split}: trustworthiness {attrs['trustworthiness']:.3f}, "
                         f"kNN accuracy {attrs['knn_accuracy_map']:.3f}")
        return "; ".join(parts)

    step("render", do_render)
    step("build", do_build)
    step("train", do_train)
    step("evaluate", do_evaluate)
    step("embed", lambda: ", ".join(f"{s} {shape}" for s, shape in
                                     embed_store(store, model, progress=progress).items()))
    step("tsne", do_tsne)
    step("plot", lambda: str(plot_map(store, out / "map.png")))
    step("map", lambda: str(write_map(store, out / "map")))
    report.notes = [(folder, *_files_and_bytes(folder)) for folder in (sampled, synthesised)]
    report.files = sorted(p for made in (store, model, out / "map") for p in made.rglob("*")
                          if p.is_file()) + [out / "map.png"]  # the demo's, not the folder's
    report.size = (sum(nbytes for _, _, nbytes in report.notes)
                   + sum(path.stat().st_size for path in report.files))
    return report
