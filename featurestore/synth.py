"""Synthesised instruments: settings drawn around each engine's prototypes, rendered to splits.

An *engine* is a module of this package that makes sound another way than sample playback
(:data:`ENGINES`: DX7 FM voices in :mod:`featurestore.fm`; Faust physical models, subtractive
and additive voices in :mod:`featurestore.faust`). Each holds ``PROTOTYPES``, its table of
hand-designed :class:`Prototype` instruments (the family mapping, one NSynth family each),
``PACKAGE`` and ``MODULE`` (the pip requirement and the module it installs), ``load()``,
which imports that module, ``program(instrument)``, the bytes an instrument is rendered from
(a DX7 voice, a Faust program), and ``renderer(options)``, which loads the module only when it
is called, so this package imports without it.

An *instrument* is one prototype with every setting drawn, uniformly within the prototype's
ranges, from a generator seeded with the seed, the engine, the prototype and the instrument's
rank: the same seed gives the same instruments, and asking for more instruments per family
keeps the first ones. Splits are drawn engine by engine and family by family with
:func:`featurestore.drawsplits.assign_splits`, so no instrument is in two splits and every
split gets instruments of every family an engine covers when there are enough.
"""
from __future__ import annotations

import importlib
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .drawsplits import assign_splits, warn_of_empty_splits
from .errors import InputError, NeedsPackage, counted, install_hint
from .gm import PITCH_RANGES
from .nsynth import FAMILIES, SOURCES, SPLITS, Example
from .progressbar import progress_bar
from .render import BANKS, RenderOptions
from .renderfolder import SILENT_PEAK, refuse_rendered, rendering, write_note

__all__ = ["ENGINES", "Prototype", "Instrument", "engine_module", "available_engines",
           "synth_instruments", "render_synth", "scale_note"]

log = logging.getLogger(__name__)

#: Engine name -> the module that holds its prototypes and renderer. The name is also the tag
#: in note and instrument names (``brass_synthetic_dexed094-060-100``).
ENGINES = {"dexed": "featurestore.fm", "faust": "featurestore.faust"}

#: Instrument numbers each family has (its ``k``-th is ``FAMILY_SLOTS * family index + k``), so
#: an instrument's number, name and id do not depend on ``per_family`` or the families asked.
FAMILY_SLOTS = 90


@dataclass(frozen=True)
class Prototype:
    """A hand-designed instrument of one NSynth family that instruments are drawn around.

    Parameters
    ----------
    family : str
        Its NSynth family (one of :data:`featurestore.nsynth.FAMILIES`).
    about : str
        What it imitates and why that is its family.
    ranges : mapping of str to (float, float)
        Each setting's range; an instrument draws every setting uniformly within it.
    source : str
        NSynth source: ``'synthetic'`` (every note here is synthesised).
    pitches : (int, int), optional
        MIDI pitches it is rendered on (inclusive), where the model holds its tuning; default:
        the family's range in :data:`featurestore.render.PITCH_RANGES`.
    """

    family: str
    about: str
    ranges: Mapping[str, Tuple[float, float]]
    source: str = "synthetic"
    pitches: Optional[Tuple[int, int]] = None

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise InputError(f"unknown family {self.family!r} (expected one of "
                             f"{', '.join(FAMILIES)})")
        if self.source not in SOURCES:
            raise InputError(f"unknown source {self.source!r} (expected one of "
                             f"{', '.join(SOURCES)})")
        bad = [k for k, (low, high) in self.ranges.items() if not low <= high]
        if bad:
            raise InputError(f"ranges {bad} need low <= high")


@dataclass(frozen=True)
class Instrument:
    """One patch or model setting: a prototype with its settings drawn."""

    engine: str
    number: int
    prototype: str
    family: str
    source: str
    settings: Tuple[Tuple[str, float], ...]
    pitches: Tuple[int, int]
    seed: int = 0

    @property
    def seed_mark(self) -> str:
        """``s{seed}`` for a seed other than 0 (``''`` for 0): what tells the instruments of
        one seed from those of another in their names and ids."""
        return f"s{self.seed}" if self.seed else ""

    @property
    def tag(self) -> str:
        """``{engine}{seed_mark}``."""
        return self.engine + self.seed_mark

    @property
    def name(self) -> str:
        """``{family}_{source}_{engine}{number:03d}{seed_mark}``, as NSynth's
        ``instrument_str``."""
        return f"{self.family}_{self.source}_{self.engine}{self.number:03d}{self.seed_mark}"

    @property
    def id(self) -> int:
        """Unique across engines and seeds (but for a chance of 1 in ``BANKS`` that two share
        a bank), and apart from SoundFont ids (``bank * 1000 + program`` with
        ``bank < BANKS``, :data:`featurestore.render.BANKS`):
        ``(BANKS + crc32(tag) % BANKS) * 1000 + number``."""
        return (BANKS + zlib.crc32(self.tag.encode()) % BANKS) * 1000 + self.number

    def values(self) -> Dict[str, float]:
        """The settings as a dict."""
        return dict(self.settings)


def engine_module(engine: str):
    """The module of an engine in :data:`ENGINES` (its package is not imported)."""
    if engine not in ENGINES:
        raise InputError(f"unknown synthesis engine {engine!r} (known: {', '.join(ENGINES)})")
    return importlib.import_module(ENGINES[engine])


def _installed(engine: str) -> bool:
    try:
        engine_module(engine).load()
    except ImportError:
        return False
    return True


def available_engines() -> List[str]:
    """The engines of :data:`ENGINES` whose synthesis package is installed."""
    return [engine for engine in ENGINES if _installed(engine)]


def synth_instruments(engine: str, *, per_family: int = 15, seed: int = 0,
                      families: Optional[Sequence[str]] = None) -> List[Instrument]:
    """The instruments an engine renders: ``per_family`` of each family it covers.

    A family's instruments go round its prototypes in turn; instrument ``k`` of a prototype
    draws its settings from ``numpy.random.default_rng([seed, crc32(engine), crc32(prototype),
    k])``, and the family's ``j``-th instrument is numbered ``FAMILY_SLOTS * family index + j``,
    so neither depends on ``per_family`` or the families asked for.

    Parameters
    ----------
    engine : str
        A name in :data:`ENGINES`.
    per_family : int
        Instruments of each family (1 to :data:`FAMILY_SLOTS`).
    seed : int
    families : sequence of str, optional
        Only these families (default: every family the engine covers).

    Returns
    -------
    list of Instrument
        In family order, then round the prototypes.
    """
    module = engine_module(engine)
    prototypes: Mapping[str, Prototype] = module.PROTOTYPES
    covered = [f for f in FAMILIES if any(p.family == f for p in prototypes.values())]
    wanted = covered if families is None else [f for f in FAMILIES if f in set(families)]
    unknown = sorted(set(families or ()) - set(FAMILIES))
    if unknown:
        raise InputError(f"unknown families {unknown} (expected some of {', '.join(FAMILIES)})")
    if not 1 <= per_family <= FAMILY_SLOTS:
        raise InputError(f"per_family must be 1 to {FAMILY_SLOTS}, got {per_family}")
    instruments = []
    for family in wanted:
        names = [n for n, p in prototypes.items() if p.family == family]
        for k in range(per_family):
            name = names[k % len(names)] if names else None
            if name is None:
                break  # a family the engine does not cover
            proto = prototypes[name]
            rng = np.random.default_rng([seed, zlib.crc32(engine.encode()),
                                         zlib.crc32(name.encode()), k // len(names)])
            settings = tuple((key, float(rng.uniform(low, high)))
                             for key, (low, high) in sorted(proto.ranges.items()))
            low, high = PITCH_RANGES[family]
            pitches = proto.pitches or (low, high)
            instruments.append(Instrument(engine, FAMILY_SLOTS * FAMILIES.index(family) + k, name,
                                          family, proto.source, settings,
                                          (max(low, pitches[0]), min(high, pitches[1])), seed))
    return instruments


def scale_note(audio: np.ndarray, velocity: int, *, gain_db: float = 0.0) -> np.ndarray:
    """Scale a note to a peak of ``0.9 (velocity / 127) ** 2``, at most 0.99.

    The engines' output levels are arbitrary and differ with pitch and model, so each note is
    set to the level General MIDI's velocity curve gives (a square law: 84 dB between velocity
    127 and 1); the engine's own velocity response still shapes the timbre.

    Parameters
    ----------
    audio : np.ndarray, float, shape (n,)
    velocity : int
    gain_db : float
        Added to the level (the result is still scaled to a peak of 0.99 at most).

    Returns
    -------
    np.ndarray, float32, shape (n,)
    """
    peak = float(np.abs(audio).max())
    target = min(0.99, 0.9 * (velocity / 127) ** 2 * 10 ** (gain_db / 20))
    return (audio * (target / peak)).astype(np.float32)


def _check_audible(options: RenderOptions):
    """Raise :class:`InputError` for a velocity whose level (:func:`scale_note`) lies below
    :data:`SILENT_PEAK`: its notes would be kept with a peak of at most 33 16-bit steps."""
    audible = [v for v in range(1, 128)
               if scale_note(np.ones(1), v, gain_db=options.gain_db)[0] >= SILENT_PEAK]
    quiet = [v for v in options.velocities if not audible or v < audible[0]]
    if quiet:
        gain = f" with gain_db {options.gain_db:g}" if options.gain_db else ""
        least = f"give {audible[0]} or more" if audible else "raise gain_db"
        raise InputError(f"velocities must leave a synthesised note audible: it is scaled to a "
                         f"peak of 0.9 (velocity / 127)^2{gain}, below -60 dBFS (silence) for "
                         f"{', '.join(map(str, quiet))}; {least}")


def _engines_to_render(engines: Optional[Sequence[str]]) -> List[str]:
    named = list(ENGINES) if engines is None else list(dict.fromkeys(engines))
    for engine in named:
        engine_module(engine)  # refuses unknown names
    if not named:
        raise InputError(f"no engine asked for (known: {', '.join(ENGINES)})")
    present = [e for e in named if _installed(e)]
    missing = [e for e in named if e not in present]
    needed = ", ".join(f"{engine_module(e).PACKAGE} (the {e} engine)" for e in missing)
    if not present or (missing and engines is not None):
        raise NeedsPackage(f"synthesis needs {needed}: {install_hint('synth')}")
    if missing:
        log.warning("%s not installed: rendering %s only (%s)", needed, ", ".join(present),
                    install_hint("synth"))
    return present


def render_synth(out, *, engines: Optional[Sequence[str]] = None, per_family: int = 15,
                 families: Optional[Sequence[str]] = None,
                 options: RenderOptions = RenderOptions(), progress: bool = True
                 ) -> Dict[str, int]:
    """Render the instruments of synthesis engines into NSynth-layout splits.

    Parameters
    ----------
    out : str or pathlib.Path
        Root folder; ``OUT/SPLIT/audio/*.wav`` and ``OUT/SPLIT/examples.json`` are written.
    engines : sequence of str, optional
        Names in :data:`ENGINES`; default: every engine whose package is installed (with a
        warning naming a missing one).
    per_family : int
        Instruments of each family per engine (see :func:`synth_instruments`).
    families : sequence of str, optional
        Only these families (default: all an engine covers).
    options : RenderOptions
        Sample rate, length, hold, velocities, pitch step, split shares, ``seed`` (draws the
        instruments and their splits) and ``gain_db``.
    progress : bool
        Show a progress bar (:func:`featurestore.progressbar.progress_bar`).

    Returns
    -------
    dict
        Notes written per split.

    Raises
    ------
    NeedsPackage
        When no engine asked for is installed, or an engine named in ``engines`` is not.
    InputError
        For an unknown engine or family, a velocity whose notes would lie below
        :data:`SILENT_PEAK`, or when ``out`` holds rendered splits already.

    Notes
    -----
    Each note is held for ``options.hold`` s and recorded for ``options.duration`` s, then
    scaled by :func:`scale_note`. A note that does not sound (peak below :data:`SILENT_PEAK`)
    or is not finite is left out, with a warning.
    """
    _check_audible(options)
    names = _engines_to_render(engines)
    out = Path(out)
    refuse_rendered(out)
    jobs: List[Tuple[Instrument, int, int]] = []
    splits: Dict[Tuple[str, int], str] = {}
    for engine in names:
        instruments = synth_instruments(engine, per_family=per_family, seed=options.seed,
                                        families=families)
        drawn = assign_splits([i.number for i in instruments], options.fractions,
                              options.seed, families={i.number: i.family for i in instruments})
        splits.update({(engine, n): split for n, split in drawn.items()})
        for inst in instruments:
            low, high = inst.pitches
            jobs += [(inst, pitch, v) for pitch in range(low, high + 1, options.pitch_step)
                     for v in options.velocities]
    if not jobs:
        raise InputError(f"no instrument of the families {list(families or ())} in the "
                         f"engines {names}")
    examples: Dict[str, Dict[str, Example]] = {s: {} for s in SPLITS if s in splits.values()}
    renderers: Dict[str, Callable] = {}
    total = int(round(options.duration * options.sample_rate))
    failed: Dict[str, List[str]] = {"silent": [], "not finite": []}
    with rendering(out, examples) as work:
        warn_of_empty_splits(", ".join(names), splits, options.fractions,  # once OUT was made
                             option="--per-family")
        for inst, pitch, velocity in progress_bar(jobs, unit="note", enabled=progress,
                                                  desc=f"render {'+'.join(names)}"):
            if inst.engine not in renderers:
                renderers[inst.engine] = engine_module(inst.engine).renderer(options)
            name = f"{inst.name}-{pitch:03d}-{velocity:03d}"
            audio = np.asarray(renderers[inst.engine](inst, pitch, velocity), dtype=np.float64)
            audio = np.pad(audio[:total], (0, max(0, total - audio.size)))  # exactly the duration
            if not np.all(np.isfinite(audio)):
                failed["not finite"].append(name)
                continue
            if not audio.size or np.abs(audio).max() < SILENT_PEAK:
                failed["silent"].append(name)
                continue
            split = splits[inst.engine, inst.number]
            write_note(work / split / "audio" / f"{name}.wav",
                       scale_note(audio, velocity, gain_db=options.gain_db), options.sample_rate)
            examples[split][name] = Example(
                note_str=name, instrument_family=FAMILIES.index(inst.family),
                instrument_family_str=inst.family, instrument=inst.id, instrument_str=inst.name,
                instrument_source=SOURCES.index(inst.source), instrument_source_str=inst.source,
                pitch=pitch, velocity=velocity, sample_rate=options.sample_rate)
        for what, notes in failed.items():
            if notes:
                log.warning("%s came out %s, left out, e.g. %s", counted(len(notes), "note"),
                            what, notes[0])
    return {split: len(notes) for split, notes in examples.items()}
