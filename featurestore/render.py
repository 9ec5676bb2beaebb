"""SoundFont rendering: General MIDI programs -> NSynth-layout splits of real sampled notes.

A General MIDI SoundFont holds recorded samples for 128 programs; those that belong clearly to
one NSynth family are rendered (:data:`featurestore.gm.GM_FAMILIES`). Each note is held for
``hold`` seconds, then released, and recorded for ``duration`` seconds, as NSynth's notes are
(3 s held, 4 s long).

Splits are instrument-disjoint: each program of a family goes to exactly one split, and
programs that play one sample of the SoundFont (TimGM6mb's Viola and Fiddle play the same
samples) go to one split together, so like NSynth's test set, the instruments of ``valid`` and
``test`` are never heard in ``train``.
"""
from __future__ import annotations

import logging
import math
import re
import zlib
from dataclasses import dataclass
from importlib import resources
from numbers import Integral
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .drawsplits import (assign_splits, sample_groups, warn_of_empty_splits,
                         warn_of_families_held_together)
from .errors import InputError, NeedsPackage, check_seed, counted
from .gm import GM_FAMILIES, PITCH_RANGES
from .nsynth import FAMILIES, SOURCES, SPLITS, Example
from .params import KEYWORD_ONLY, MAX_SAMPLE_RATE
from .progressbar import progress_bar
from .renderfolder import SILENT_PEAK, refuse_rendered, rendering, write_note
from .sf2check import check_soundfont, preset_samples

__all__ = ["GM_FAMILIES", "PITCH_RANGES", "RenderOptions", "render_soundfont",
           "default_soundfont", "assign_splits", "sample_groups", "warn_of_empty_splits",
           "SILENT_PEAK", "RENDERER_HINT"]

log = logging.getLogger(__name__)

#: A rendered instrument's id is ``bank * 1000 + program``, ``bank`` the CRC-32 of the
#: SoundFont's tag modulo BANKS (two tags share one with a chance of 1 in BANKS); the
#: synthesis engines' ids lie above BANKS * 1000 (:attr:`featurestore.synth.Instrument.id`),
#: all within int32.
BANKS = 1_000_000
#: The longest tag: note names stay far below a file name's 255 bytes.
MAX_TAG = 64
#: How to install the SoundFont renderer (its pyaudio requirement, for live playback, has no
#: Linux wheel).
RENDERER_HINT = "pip install --no-deps 'tinysoundfont>=0.3'"

#: The lowest sample rate a render takes (Hz).
MIN_SAMPLE_RATE = 1000


@dataclass(frozen=True, **KEYWORD_ONLY)
class RenderOptions:
    """How notes are rendered.

    Parameters
    ----------
    sample_rate : int
        Output rate (Hz); NSynth's is 16000.
    duration, hold : float
        Note length and how long the key is held before release (s).
    velocities : tuple of int
        MIDI velocities rendered for every pitch.
    pitch_step : int
        Render every ``pitch_step``-th pitch of a family's range.
    fractions : tuple of float
        Share of each family's programs in train, valid and test (programs that play one
        sample count as one: :func:`~featurestore.drawsplits.assign_splits`).
    seed : int
        Seeds the assignment of programs to splits.
    gain_db : float
        Synth gain; notes whose peak would clip are scaled to a peak of 0.99.
    """

    sample_rate: int = 16000
    duration: float = 4.0
    hold: float = 3.0
    velocities: Tuple[int, ...] = (50, 75, 100, 127)
    pitch_step: int = 1
    fractions: Tuple[float, ...] = (0.6, 0.2, 0.2)
    seed: int = 0
    gain_db: float = 0.0

    def __post_init__(self):
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, Integral) or \
                not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise InputError(f"sample_rate must be a whole number of Hz from {MIN_SAMPLE_RATE} "
                             f"to {MAX_SAMPLE_RATE:,}, got {self.sample_rate!r}")
        if not 0 < self.hold <= self.duration:
            raise InputError(f"need 0 < hold <= duration, got hold={self.hold}, "
                             f"duration={self.duration}")
        if not self.velocities or not all(1 <= v <= 127 for v in self.velocities):
            raise InputError(f"velocities must be MIDI velocities 1..127, got {self.velocities}")
        if len(set(self.velocities)) < len(self.velocities):  # a note name each: one file
            raise InputError(f"velocities must differ (each names its notes), got "
                             f"{self.velocities}")
        if self.pitch_step < 1:
            raise InputError(f"pitch_step must be >= 1, got {self.pitch_step}")
        if len(self.fractions) != 3 or not all(0 <= f < math.inf for f in self.fractions) \
                or not sum(self.fractions) > 0:
            raise InputError(f"fractions must be 3 finite non-negative shares (train, valid, "
                             f"test), got {self.fractions}")
        check_seed(self.seed)


def default_soundfont() -> Path:
    """The ``TimGM6mb.sf2`` General MIDI bank that the ``pretty_midi`` package ships."""
    path = Path(str(resources.files("pretty_midi") / "TimGM6mb.sf2"))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretty_midi's TimGM6mb.sf2 is missing; give a "
                                f"SoundFont (render SOUNDFONT OUT), or reinstall pretty_midi "
                                f"(pip install --force-reinstall pretty_midi)")
    return path


def _tag(soundfont: Path) -> str:
    """The default tag: the file name's ASCII letters and digits, or where it has none,
    ``sf`` and a checksum of the name (so that two such SoundFonts' notes stay apart)."""
    name = soundfont.stem
    return re.sub(r"[^a-z0-9]", "", name.lower())[:MAX_TAG] or "sf%08x" % zlib.crc32(
        name.encode("utf-8", "surrogateescape"))


def _ranges(numbers) -> str:
    """Integers as runs: ``0-7, 9-14, 110``."""
    runs: List[List[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs)


def _render_note(synth, sfid: int, program: int, pitch: int, velocity: int,
                 options: RenderOptions) -> np.ndarray:
    synth.program_select(0, sfid, 0, program)
    synth.noteon(0, pitch, velocity)
    held = int(round(options.hold * options.sample_rate))
    total = int(round(options.duration * options.sample_rate))
    first = np.frombuffer(synth.generate(held), dtype=np.float32)
    synth.noteoff(0, pitch)
    rest = np.frombuffer(synth.generate(total - held), dtype=np.float32)
    synth.sounds_off()
    synth.generate(options.sample_rate // 10)  # let voices die out before the next note
    stereo = np.concatenate([first, rest]).reshape(-1, 2)
    mono = stereo.mean(axis=1)
    peak = float(np.abs(mono).max()) if mono.size else 0.0
    if peak > 0.99:
        mono *= 0.99 / peak
    return mono


def render_soundfont(out, soundfont=None, *, options: RenderOptions = RenderOptions(),
                     programs: Optional[Sequence[int]] = None, tag: Optional[str] = None,
                     progress: bool = True) -> Dict[str, int]:
    """Render General MIDI programs of a SoundFont into NSynth-layout splits.

    Parameters
    ----------
    out : str or pathlib.Path
        Root folder; ``OUT/SPLIT/audio/*.wav`` and ``OUT/SPLIT/examples.json`` are written.
    soundfont : str or pathlib.Path, optional
        An SF2/SF3 file; default: :func:`default_soundfont`.
    options : RenderOptions
    programs : sequence of int, optional
        GM programs to render (default: every program of :data:`GM_FAMILIES`).
    tag : str, optional
        ASCII letters and digits, at most :data:`MAX_TAG`: goes into instrument and note
        names, so the notes of banks rendered into folders of their own and built into one
        store stay apart (default: the SoundFont's file name, its letters and digits).
    progress : bool
        Show a progress bar (:func:`featurestore.progressbar.progress_bar`).

    Returns
    -------
    dict
        Notes written per split.

    Raises
    ------
    FileNotFoundError, ValueError
        When the SoundFont is missing or unreadable, has none of the programs, a program has
        no NSynth family, or ``out`` holds rendered splits already.

    Notes
    -----
    Programs the SoundFont has no preset for (in bank 0) are left out, and so are notes that
    come out silent, their peak below :data:`SILENT_PEAK` (keys no sample covers); both are
    logged as warnings. Programs that play one sample go to one split
    (:func:`sample_groups`).
    """
    try:
        import tinysoundfont
    except ImportError:
        raise NeedsPackage(f"rendering needs tinysoundfont: {RENDERER_HINT}") from None
    out = Path(out)
    refuse_rendered(out)  # before the SoundFont's warnings
    soundfont = Path(soundfont) if soundfont is not None else default_soundfont()
    if not soundfont.is_file():
        raise FileNotFoundError(f"{soundfont}: " + (
            "is a folder, not a SoundFont (.sf2) file" if soundfont.is_dir() else
            "no such SoundFont file" if not soundfont.exists() else
            "not a regular file (a pipe or device?): a SoundFont is read from a file"))
    programs = sorted(GM_FAMILIES) if programs is None else sorted(set(programs))
    if not_gm := [p for p in programs if not 0 <= p <= 127]:
        raise InputError(f"programs {not_gm} are not General MIDI programs (0 to 127)")
    if unknown := [p for p in programs if p not in GM_FAMILIES]:
        raise InputError(f"programs {unknown} have no NSynth family (a program of no clear "
                         f"one, such as accordion, harp or a synth pad, is left out); those "
                         f"mapped: {_ranges(GM_FAMILIES)}")
    tag = _tag(soundfont) if tag is None else tag
    if not re.fullmatch(r"[A-Za-z0-9]{1,%d}" % MAX_TAG, tag):
        raise InputError(f"tag must be ASCII letters and digits, at most {MAX_TAG} (it goes into "
                         f"note names), got {tag!r:.80}")
    tables = check_soundfont(soundfont)  # TinySoundFont trusts every index and size in it
    synth = tinysoundfont.Synth(samplerate=options.sample_rate, gain=options.gain_db)
    try:
        str(soundfont).encode("utf-8")
        source = str(soundfont)
    except UnicodeEncodeError:  # a name of bytes that are not UTF-8, which its C cannot take
        source = soundfont.read_bytes()
    try:
        sfid = synth.sfload(source)
    except Exception as err:  # noqa: BLE001 - tinysoundfont raises a bare Exception
        raise InputError(f"{soundfont}: not a readable SoundFont ({err}): its structure is "
                         f"whole, so its samples' data, such as an SF3's compressed (Ogg Vorbis) "
                         f"samples, may be damaged") from None
    absent = [p for p in programs if synth.sfpreset_name(sfid, 0, p) is None]
    if absent:  # tinysoundfont would play another preset under their labels
        programs = [p for p in programs if p not in absent]
        if not programs:
            raise InputError(f"{soundfont}: has no preset in bank 0 for any GM program asked "
                             f"for ({counted(len(absent), 'program')}, e.g. {absent[0]})")
        log.warning("%s: no preset for %s (e.g. %d): left out", soundfont,
                    counted(len(absent), "GM program"), absent[0])
    groups = [g for g in sample_groups(programs, preset_samples(tables)) if len(g) > 1]
    if groups:
        log.info("%s: programs that play one sample go to one split: %s", soundfont,
                 "; ".join(", ".join(map(str, g)) for g in groups))
    splits = assign_splits(programs, options.fractions, options.seed, groups=groups)
    warn_of_families_held_together(soundfont, splits, options.fractions)
    jobs: List[Tuple[int, int, int]] = []
    for program in programs:
        low, high = PITCH_RANGES[GM_FAMILIES[program][0]]
        jobs += [(program, pitch, v) for pitch in range(low, high + 1, options.pitch_step)
                 for v in options.velocities]
    examples: Dict[str, Dict[str, Example]] = {s: {} for s in SPLITS if s in splits.values()}
    bank = zlib.crc32(tag.encode()) % BANKS
    silent: List[str] = []
    with rendering(out, examples) as work:
        warn_of_empty_splits(soundfont, splits, options.fractions,  # once OUT could be made
                             grouped=bool(groups))
        for program, pitch, velocity in progress_bar(jobs, unit="note", enabled=progress,
                                                     desc=f"render {soundfont.name}"):
            family, source = GM_FAMILIES[program]
            instrument_str = f"{family}_{source}_{tag}{program:03d}"
            name = f"{instrument_str}-{pitch:03d}-{velocity:03d}"
            audio = _render_note(synth, sfid, program, pitch, velocity, options)
            if not np.abs(audio).max() >= SILENT_PEAK:
                silent.append(name)
                continue
            split = splits[program]
            write_note(work / split / "audio" / f"{name}.wav", audio, options.sample_rate)
            examples[split][name] = Example(
                note_str=name, instrument_family=FAMILIES.index(family),
                instrument_family_str=family, instrument=bank * 1000 + program,
                instrument_str=instrument_str, instrument_source=SOURCES.index(source),
                instrument_source_str=source, pitch=pitch, velocity=velocity,
                sample_rate=options.sample_rate)
        if silent:
            log.warning("%s: %s came out silent, below -60 dBFS (no sample covers the key, or "
                        "what covers it is that quiet), left out, e.g. %s", soundfont,
                        counted(len(silent), "note"), silent[0])
    return {split: len(notes) for split, notes in examples.items()}
