"""``timbremap demo``: the whole path on notes rendered from the bundled SoundFont.

render -> build -> train (short) -> evaluate -> embed -> tsne -> plot -> map, into one folder.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

__all__ = ["DemoOptions", "run_demo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    """Sizes of the demo: small enough to run in minutes on a 2-core machine.

    Training is ``timbremap train``'s own (epochs of one pass over the rendered training notes
    until validation stops improving), with a budget of ``budget_minutes`` instead of 30:
    its notes, times and scores are in ``docs/demo.md``.
    """

    pitch_step: int = 3
    velocities: tuple = (64, 127)
    budget_minutes: float = 8.0
    jobs: int = 2
    seed: int = 0


@dataclass
class DemoReport:
    out: Path
    steps: List[tuple] = field(default_factory=list)  # (step, seconds, summary)
    files: List[Path] = field(default_factory=list)


def run_demo(out, options: DemoOptions = DemoOptions(), progress: bool = True) -> DemoReport:
    """Run every step; finished steps (their outputs present) are not redone."""
    from featurestore.build import build_store
    from featurestore.nsynth import find_splits
    from featurestore.render import RenderOptions, render_soundfont
    from training.config import TrainConfig
    from training.evaluate import evaluate
    from training.train import train

    from .embed import embed_store
    from .mapview import write_map
    from .plot import plot_map
    from .tsne import tsne_split

    out = Path(out)
    notes, store, model = out / "notes", out / "store", out / "model"
    report = DemoReport(out)

    def step(name, func):
        log.info("demo: %s", name)
        start = time.perf_counter()
        summary = func()
        report.steps.append((name, time.perf_counter() - start, summary))

    def do_render():
        if find_splits(notes) == ["train", "valid", "test"]:
            return "kept"
        counts = render_soundfont(notes, options=RenderOptions(
            pitch_step=options.pitch_step, velocities=options.velocities), progress=progress)
        return ", ".join(f"{s} {n}" for s, n in counts.items()) + " notes (TimGM6mb)"

    def do_build():
        reports = build_store(notes, store, jobs=options.jobs, progress=progress)
        return ", ".join(f"{r.split} {r.n_examples}" for r in reports) + " notes"

    def do_train():
        if (model / "model.keras").is_file():
            return "kept"
        config = TrainConfig(seed=options.seed, budget_minutes=options.budget_minutes)
        result = train(store, model, config, verbose=1 if progress else 0)
        return (f"best validation accuracy {result.best_val_accuracy:.3f} "
                f"(epoch {result.best_epoch} of {result.epochs})")

    def do_evaluate():
        result = evaluate(store, model, "test")
        return (f"test accuracy {result['accuracy']:.3f}, balanced "
                f"{result['balanced_accuracy']:.3f}")

    def do_tsne():
        parts = []
        for split in ("valid", "test"):
            attrs = tsne_split(store, split, perplexity=30.0, seed=options.seed).attrs
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
    report.files = sorted(p for p in out.rglob("*") if p.is_file() and notes not in p.parents)
    return report
