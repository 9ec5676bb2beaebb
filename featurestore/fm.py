"""DX7 FM instruments: family prototypes as 6-operator voices (:mod:`featurestore.dx7`),
rendered by dexed-py."""
from __future__ import annotations

import importlib

from typing import Callable, Dict

import numpy as np

from .errors import NeedsPackage, install_hint
from .fmvoices import VOICES
from .synth import Instrument, Prototype

__all__ = ["PROTOTYPES", "load", "patch", "program", "renderer"]

#: The pip requirement and the module it installs.
PACKAGE, MODULE = "dexed-py", "dexed"

#: The lowest rate dexed renders at (a DX7 ran at 49 kHz): it renders at the smallest multiple
#: of the sample rate at least this, and the note is brought down with an anti-aliasing filter,
#: so that the high partials of a top key do not fold back below the sample rate's Nyquist.
RENDER_RATE = 44100
#: The edge (Hz) of the high-pass filter that takes out the offset some voices' feedback leaves
#: (a DX7's output is AC-coupled too).
DC_EDGE = 20.0

_ENV = {"attack": (50, 75), "release": (55, 75)}
_LFO = {"rate": (28, 40), "delay": (30, 70), "vibrato": (2, 8)}

#: Prototype name -> :class:`Prototype`: the family mapping (each one's voice:
#: :data:`featurestore.fmvoices.VOICES`).
#: Why each is its family: FM brass is the DX7's signature (ratio 1:1, the modulation index
#: swelling with the attack as a player's lips open: ``fmbrass``); basses and electric pianos
#: are its most used patches (``fmbass``: 1:1 with a fast-decaying index, the growl of a
#: picked or synth bass; ``fmepiano``: the tine, a 14:1 modulator that dies within a second
#: over a 1:1 body; ``fmclav``: clavinet, bright and quickly damped, a keyboard in NSynth as
#: in General MIDI); mallets are struck and decay, with the bar's inharmonic modes as extra
#: carriers (``fmmarimba``: modes 1, 4, ~10; ``fmvibes``: with tremolo; ``fmbell``: tubular
#: bells, GM's chimes, inharmonic ratios); ``fmorgan`` is a drawbar organ, six sine carriers at
#: the footages 8', 16', 4', 2 2/3', 2' plus a key click; ``fmflute`` is near-sine with breath
#: noise from a feedback operator and delayed vibrato; reeds are the hollow odd-harmonic
#: clarinet (1:2) and the nasal double reed/saxophone (a formant carrier at 3-5 times the
#: pitch); ``fmstrings`` is a bowed ensemble (slow attack, three detuned 1:1 pairs, vibrato);
#: ``fmguitar`` a plucked string (bright pick transient, body that decays); ``fmlead`` the
#: sustained saw-plus-square mono lead of synthesizers. A second design for most families, as
#: DX7 libraries carry them: ``fmtrumpet`` a solo trumpet (one voice, a scoop into the note,
#: brightness that follows velocity, late vibrato); ``fmwoodbass`` an acoustic or fretless bass
#: (soft thump, round body); ``fmnylon`` a nylon-string guitar (soft pluck, an octave partial
#: that dies first); ``fmpanflute`` a pan flute (a bright 13:1 burst as its chiff);
#: ``fmpipe`` a pipe organ (ranks 16' to 2' and a mixture, slow speech, chiff instead of the
#: drawbars' click); ``fmsolostring`` a solo bowed string (algorithm 1's four-operator stack
#: with a feedback sawtooth at its top, a bow bite that fades, delayed vibrato);
#: ``fmsquarelead`` and ``fmsweeplead`` the square lead with glide and the lead whose filter
#: sweep is a modulation index falling to a held level. The vocal designs follow Chowning's
#: FM singing voice: a 1:1 carrier for the fundamental plus carriers on the harmonics nearest
#: the first two formants, each lightly modulated at 1:1 so its sidebands stay harmonic. The
#: carriers keep their ratios, so the formant partials rise with the key; keyboard level scaling
#: fades them on keys above a break point, where a sung vowel's formants would lie below them
#: (``fmvoice``: a solo sung vowel with vibrato; ``fmchoir``: an "aah" of detuned sines, an
#: octave partial and breath noise from an operator at full feedback).
PROTOTYPES: Dict[str, Prototype] = {
    "fmbass": Prototype("bass", "picked/synth bass: 1:1 or 1:2 growl that decays",
        {"decay": (25, 45), "sustain": (60, 82), "release": (60, 75), "growl": (55, 80),
         "index": (72, 90), "ratio": (0, 1), "feedback": (4, 7)}),
    "fmbrass": Prototype("brass", "brass section: 1:1 with a swelling index",
        {"attack": (55, 72), "swell": (45, 62), "release": (55, 70), "index": (74, 88),
         "brightness": (2, 4), "detune": (1, 3), "feedback": (3, 6), "scoop": (0, 4)}),
    "fmflute": Prototype("flute", "flute: near-sine, octave, breath chiff, delayed vibrato",
        {**_ENV, **_LFO, "attack": (50, 64), "index": (45, 62), "octave": (55, 75),
         "breath": (55, 72)}),
    "fmguitar": Prototype("guitar", "plucked string: pick transient, decaying body",
        {"decay": (28, 42), "body": (70, 88), "release": (65, 78), "pluck": (55, 72),
         "ratio": (0, 1), "index": (65, 82), "pick": (45, 68)}),
    "fmepiano": Prototype("keyboard", "tine electric piano: 14:1 tine over a 1:1 body",
        {"decay": (20, 35), "body": (60, 82), "release": (60, 72), "index": (45, 66),
         "vel": (3, 6), "tine_ratio": (0, 1), "tine": (70, 88), "tine_decay": (55, 78),
         "warmth": (0, 75)}),
    "fmclav": Prototype("keyboard", "clavinet: bright, nasal, quickly damped",
        {"decay": (25, 40), "sustain": (55, 75), "release": (75, 90), "index": (80, 94),
         "nasal": (60, 82), "buzz": (60, 85)}),
    "fmmarimba": Prototype("mallet", "marimba/xylophone: short, modes 1, 4, ~10",
        {"decay": (25, 42), "hardness": (45, 72), "mode2": (55, 80), "ratio3": (0, 1),
         "mode3": (40, 70)}),
    "fmvibes": Prototype("mallet", "vibraphone: long ring, modes 1, 4, 10, tremolo",
        {"decay": (22, 36), "release": (40, 60), "hardness": (30, 58), "mode2": (60, 80),
         "mode3": (40, 65), "rate": (30, 45), "tremolo": (5, 30)}),
    "fmbell": Prototype("mallet", "tubular bell/chime: inharmonic ratios, long decay",
        {"decay": (20, 34), "release": (40, 60), "ratio": (0, 1), "index": (50, 72),
         "partial": (55, 78)}, pitches=(60, 96)),
    "fmorgan": Prototype("organ", "drawbar organ: sine footages, key click, vibrato",
        {"release": (60, 82), "bar8": (90, 99), "bar16": (0, 85), "bar4": (65, 95),
         "bar3": (0, 88), "bar2": (0, 86), "click": (0, 72), "rate": (30, 40), "vibrato": (0, 6)}),
    "fmclarinet": Prototype("reed", "clarinet: odd harmonics from a 1:2 modulator",
        {**_ENV, **_LFO, "attack": (58, 75), "index": (70, 84), "third": (50, 72)}),
    "fmdoublereed": Prototype("reed", "oboe/saxophone: 1:1 with a formant carrier",
        {**_ENV, **_LFO, "attack": (58, 75), "index": (74, 88), "formant": (0, 1),
         "formant_level": (68, 86)}),
    "fmstrings": Prototype("string", "bowed ensemble: slow attack, detuned 1:1 pairs",
        {**_LFO, "attack": (40, 56), "release": (45, 60), "index": (66, 80), "detune": (1, 4),
         "feedback": (4, 7)}),
    "fmlead": Prototype("synth_lead", "mono lead: saw-like 1:1 and square-like 1:2 voices",
        {**_LFO, "release": (65, 85), "saw": (78, 92), "square": (70, 90), "detune": (0, 3),
         "third_voice": (0, 85)}),
    "fmtrumpet": Prototype("brass", "solo trumpet: scoop into the note, brightness with loudness",
        {**_LFO, "attack": (62, 78), "swell": (52, 68), "release": (55, 70), "index": (78, 90),
         "brightness": (3, 5), "feedback": (3, 6), "octave": (0, 70), "scoop": (2, 8),
         "glide": (55, 80)}),
    "fmwoodbass": Prototype("bass", "acoustic/fretless bass: soft thump, round decaying body",
        {"decay": (20, 35), "sustain": (55, 75), "release": (55, 72), "thump": (45, 70),
         "index": (55, 72), "second": (50, 72)}),
    "fmnylon": Prototype("guitar", "nylon-string guitar: soft pluck, octave partial",
        {"decay": (25, 40), "body": (65, 85), "release": (60, 75), "index": (52, 70),
         "octave": (55, 75), "pick": (30, 55)}),
    "fmpanflute": Prototype("flute", "pan flute: soft tone, a bright 13:1 burst as its chiff",
        {**_ENV, **_LFO, "attack": (48, 62), "index": (30, 50), "chiff": (40, 65),
         "breath": (45, 65), "third": (0, 50)}),
    "fmpipe": Prototype("organ", "pipe organ: ranks 16' to 2', slow speech, chiff",
        {"speech": (50, 70), "release": (60, 80), "rank8": (90, 99), "rank16": (0, 85),
         "rank4": (60, 92), "rank2": (0, 85), "mixture": (0, 80), "chiff": (0, 70)}),
    "fmsolostring": Prototype("string", "solo bowed string: saw-like stack, bow bite, vibrato",
        {**_LFO, "attack": (50, 64), "release": (50, 65), "index": (70, 84), "detune": (0, 2),
         "ratio": (0, 1), "bite": (45, 70), "bite_decay": (40, 65), "saw": (55, 80),
         "vibrato": (4, 10)}),
    "fmsquarelead": Prototype("synth_lead", "square lead: 1:2 hollow tone, glide, vibrato",
        {**_LFO, "release": (65, 85), "index": (72, 90), "detune": (0, 3), "octave": (0, 75),
         "glide": (50, 80), "scoop": (0, 6)}),
    "fmsweeplead": Prototype("synth_lead", "filter-sweep lead: a stack's index falls to a hold",
        {**_LFO, "release": (65, 85), "sweep": (25, 55), "hold": (60, 85), "index": (75, 92),
         "detune": (0, 3), "ratio": (0, 1), "upper": (50, 75)}),
    "fmvoice": Prototype("vocal", "sung vowel: carriers at the harmonics near two formants",
        {"attack": (45, 62), "release": (50, 68), "index": (45, 62), "f1_ratio": (0, 1),
         "f1": (82, 94), "f2_ratio": (0, 1), "f2": (70, 86), "break": (27, 45),
         "fade": (20, 50), "rate": (30, 40), "delay": (35, 70), "vibrato": (6, 14)}),
    "fmchoir": Prototype("vocal", "choir 'aah': detuned sines, formant partials, breath",
        {"attack": (38, 55), "release": (45, 62), "detune": (1, 4), "second": (60, 85),
         "f1_ratio": (0, 1), "f1": (78, 92), "f2_ratio": (0, 1), "f2": (62, 82),
         "break": (27, 45), "fade": (20, 50), "breath": (6, 7), "air": (0, 55),
         "rate": (28, 38), "vibrato": (2, 6)}),
}


def patch(instrument: Instrument) -> bytes:
    """The instrument's DX7 voice (155 VCED bytes)."""
    return VOICES[instrument.prototype](instrument.values())


def program(instrument: Instrument) -> bytes:
    """What the instrument is rendered from: its DX7 voice (:func:`patch`)."""
    return patch(instrument)


def load():
    """The dexed module; raises ImportError without dexed-py."""
    return importlib.import_module(MODULE)


def renderer(options) -> Callable[[Instrument, int, int], np.ndarray]:
    """A function ``(instrument, pitch, velocity) -> float32 (n,)`` that renders one note at
    ``options.sample_rate``: dexed renders it at :data:`RENDER_RATE` or above, and it is
    brought down to the sample rate and high-passed at :data:`DC_EDGE`.

    Raises
    ------
    NeedsPackage
        Without dexed-py.
    """
    try:
        dexed = load()
    except ImportError:
        raise NeedsPackage(f"FM rendering needs {PACKAGE}: {install_hint('synth')}") \
            from None
    import scipy.signal
    factor = -(-RENDER_RATE // options.sample_rate)
    synth = dexed.DexedSynth(sample_rate=options.sample_rate * factor)
    dc_block = scipy.signal.butter(2, DC_EDGE, "highpass", fs=options.sample_rate, output="sos")
    loaded = []

    def render(instrument: Instrument, pitch: int, velocity: int) -> np.ndarray:
        if loaded != [instrument]:
            synth.load_patch(dexed.Patch.from_sysex(patch(instrument)))
            loaded[:] = [instrument]
        audio = np.asarray(synth.render(midi_note=pitch, velocity=velocity,
                                        note_duration=options.hold,
                                        render_duration=options.duration), dtype=np.float64)
        if factor > 1:
            audio = scipy.signal.resample_poly(audio, 1, factor)
        return scipy.signal.sosfilt(dc_block, audio).astype(np.float32)

    return render
