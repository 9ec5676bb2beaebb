"""DX7 FM instruments: family prototypes as 6-operator voices (:mod:`featurestore.dx7`),
rendered by dexed-py."""
from __future__ import annotations

import importlib

from typing import Callable, Dict, Mapping, Sequence

import numpy as np

from .dx7 import ADDITIVE, PAIRS, STACK, Env, fade_above, op, voice
from .errors import NeedsPackage
from .synth import Instrument, Prototype

__all__ = ["PROTOTYPES", "load", "patch", "program", "renderer"]

#: The pip requirement and the module it installs.
PACKAGE, MODULE = "dexed-py", "dexed"

def _sustained(attack: float, release: float, sustain: float = 95) -> Env:
    return (attack, 40, 30, release, 99, (99 + sustain) / 2, sustain, 0)


def _decaying(decay: float, release: float, level2: float = 80, rate3: float = 25) -> Env:
    return (99, decay, rate3, release, 99, level2, 0, 0)


def _choice(options: Sequence[float], draw: float) -> float:
    return options[min(int(draw * len(options)), len(options) - 1)]


def _brass(s):
    car, mod = _sustained(s["attack"], s["release"]), _sustained(s["swell"], s["release"], 85)
    d = s["detune"]
    return voice(PAIRS, s["feedback"], [
        op(1, 99, car, vel=1), op(1, s["index"], mod, vel=s["brightness"]),
        op(1, 93, car, vel=1, detune=7 + d), op(1, s["index"] - 4, mod, detune=7 - d),
        op(1, 80, car, detune=7 - d), op(1, s["index"] - 12, mod)],
        pitch_env=(80, 60, 50, 60, 50, 50, 50, 50 - s["scoop"]))


def _bass(s):
    car = (99, s["decay"], 20, s["release"], 99, s["sustain"], s["sustain"] - 15, 0)
    growl = (99, s["growl"], 30, s["release"], 99, 60, 50, 0)
    return voice(PAIRS, s["feedback"], [
        op(1, 99, car, vel=2, rate_scaling=2),
        op(_choice((1, 1, 2), s["ratio"]), s["index"], growl, vel=4),
        op(1, 85, car, detune=8, rate_scaling=2), op(1, s["index"] - 10, growl, vel=3),
        op(1, 70, car), op(1, 70, growl)])


def _epiano(s):
    car = _decaying(s["decay"], s["release"], s["body"])
    tine = (99, s["tine_decay"], 30, 70, 99, 0, 0, 0)
    return voice(PAIRS, 6, [
        op(1, 99, car, vel=2, rate_scaling=2), op(1, s["index"], car, vel=s["vel"]),
        op(1, 99, car, vel=2, rate_scaling=2, detune=8),
        op(_choice((14, 14, 11, 7), s["tine_ratio"]), s["tine"], tine, vel=6),
        op(1, s["warmth"], car, detune=6, rate_scaling=2), op(1, 60, car)])


def _clav(s):
    car = (99, s["decay"], 20, s["release"], 99, s["sustain"], 0, 0)
    mod = (99, 50, 30, s["release"], 99, 75, 0, 0)
    return voice(PAIRS, 7, [
        op(1, 99, car, vel=2, rate_scaling=3), op(1, s["index"], mod, vel=4),
        op(1, 90, car, rate_scaling=3), op(3, s["nasal"], mod, vel=3),
        op(1, 60, car), op(1, s["buzz"], mod)])


def _marimba(s):
    def ring(decay):
        return (99, decay, 30, 60, 99, 0, 0, 0)
    return voice(PAIRS, 0, [
        op(1, 99, ring(s["decay"]), vel=2, rate_scaling=3),
        op(1, s["hardness"], ring(s["decay"] + 20), vel=5),
        op(4, s["mode2"], ring(s["decay"] + 10), vel=3, rate_scaling=3),
        op(1, 30, ring(80)),
        op(_choice((9.2, 10), s["ratio3"]), s["mode3"], ring(s["decay"] + 25), vel=4),
        op(1, 0, ring(80))])


def _vibes(s):
    ring = (99, s["decay"], 25, s["release"], 99, 0, 0, 0)
    fast = (99, s["decay"] + 18, 25, s["release"], 99, 0, 0, 0)
    return voice(PAIRS, 0, [
        op(1, 99, ring, vel=2, ams=2, rate_scaling=2), op(1, s["hardness"], fast, vel=5),
        op(4, s["mode2"], fast, vel=3, ams=2, rate_scaling=2), op(1, 20, fast),
        op(10, s["mode3"], fast, vel=4), op(1, 0, fast)],
        lfo=(s["rate"], 0, 0, s["tremolo"]))


def _bell(s):
    ring = (99, s["decay"], 25, s["release"], 99, 0, 0, 0)
    return voice(PAIRS, 0, [
        op(1, 99, ring, vel=2, rate_scaling=2),
        op(_choice((1.41, 3.5), s["ratio"]), s["index"], ring, vel=5),
        op(1, 90, ring, detune=9, rate_scaling=2),
        op(3.5, s["index"] - 12, (99, s["decay"] + 15, 25, 60, 99, 0, 0, 0), vel=4),
        op(_choice((2.76, 5.4), s["ratio"]), s["partial"], ring, rate_scaling=3),
        op(1, 0, ring)])


def _organ(s):
    env = (99, 99, 99, s["release"], 99, 99, 99, 0)
    click = (99, 80, 99, 99, 99, 0, 0, 0)
    return voice(ADDITIVE, 7, [
        op(1, s["bar8"], env), op(0.5, s["bar16"], env), op(2, s["bar4"], env),
        op(3, s["bar3"], env), op(4, s["bar2"], env), op(8, s["click"], click)],
        lfo=(s["rate"], 0, s["vibrato"], 0), pms=2)


def _flute(s):
    env = _sustained(s["attack"], s["release"])
    chiff = (99, 60, 40, 70, 99, 55, 45, 0)
    return voice(PAIRS, 7, [
        op(1, 99, env, vel=1), op(1, s["index"], env, vel=3),
        op(2, s["octave"], env, vel=1), op(1, 40, env),
        op(1, s["breath"], chiff), op(1, 92, chiff)],
        lfo=(s["rate"], s["delay"], s["vibrato"], 0), pms=3)


def _clarinet(s):
    env = _sustained(s["attack"], s["release"])
    return voice(PAIRS, 3, [
        op(1, 99, env, vel=1), op(2, s["index"], env, vel=3),
        op(3, s["third"], env, vel=2), op(2, s["index"] - 15, env),
        op(1, 0, env), op(2, 40, env)],
        lfo=(s["rate"], s["delay"], s["vibrato"], 0), pms=3)


def _double_reed(s):
    env = _sustained(s["attack"], s["release"])
    return voice(PAIRS, 5, [
        op(1, 99, env, vel=1), op(1, s["index"], env, vel=3),
        op(_choice((3, 4, 5), s["formant"]), s["formant_level"], env, vel=2),
        op(1, s["index"] - 8, env, vel=2), op(1, 0, env), op(1, 50, env)],
        lfo=(s["rate"], s["delay"], s["vibrato"], 0), pms=3)


def _strings(s):
    car = _sustained(s["attack"], s["release"], 97)
    mod = _sustained(s["attack"] - 5, s["release"], 90)
    d = s["detune"]
    return voice(PAIRS, s["feedback"], [
        op(1, 99, car, detune=7 - d), op(1, s["index"], mod, vel=2),
        op(1, 97, car, detune=7 + d), op(1, s["index"] - 3, mod, vel=2),
        op(1, 94, car), op(1, s["index"], mod)],
        lfo=(s["rate"], s["delay"], s["vibrato"], 0), pms=3)


def _guitar(s):
    car = (99, s["decay"], 20, s["release"], 99, s["body"], 0, 0)
    pluck = (99, s["pluck"], 30, 70, 99, 50, 0, 0)
    return voice(PAIRS, 4, [
        op(1, 99, car, vel=2, rate_scaling=2),
        op(_choice((1, 3), s["ratio"]), s["index"], pluck, vel=4),
        op(1, 92, car, detune=8, rate_scaling=2),
        op(5, s["pick"], (99, 75, 30, 70, 99, 0, 0, 0), vel=5),
        op(1, 0, car), op(1, 0, car)])


def _lead(s):
    env = (99, 99, 99, s["release"], 99, 99, 99, 0)
    return voice(PAIRS, 7, [
        op(1, 99, env, detune=7 - s["detune"]), op(1, s["saw"], env, vel=2),
        op(1, 95, env, detune=7 + s["detune"]), op(2, s["square"], env, vel=2),
        op(1, s["third_voice"], env), op(1, 80, env)],
        lfo=(s["rate"], s["delay"], s["vibrato"], 0), pms=4)


def _trumpet(s):
    car, mod = _sustained(s["attack"], s["release"]), _sustained(s["swell"], s["release"], 88)
    return voice(PAIRS, s["feedback"], [
        op(1, 99, car, vel=2), op(1, s["index"], mod, vel=s["brightness"]),
        op(1, 88, car, detune=8), op(1, s["index"] - 8, mod, vel=s["brightness"]),
        op(2, s["octave"], car), op(1, 60, mod)],
        lfo=(s["rate"], s["delay"], s["vibrato"], 0), pms=3,
        pitch_env=(s["glide"], 60, 50, 60, 50, 50, 50, 50 - s["scoop"]))


def _wood_bass(s):
    body = (99, s["decay"], 22, s["release"], 99, s["sustain"], 0, 0)
    thump = (99, s["thump"], 30, s["release"], 99, 45, 0, 0)
    return voice(PAIRS, 0, [
        op(1, 99, body, vel=2, rate_scaling=2), op(1, s["index"], thump, vel=3),
        op(2, s["second"], thump, rate_scaling=2), op(1, s["index"] - 15, thump),
        op(1, 0, body), op(1, 0, body)])


def _nylon(s):
    car = (99, s["decay"], 22, s["release"], 99, s["body"], 0, 0)
    fast = (99, s["decay"] + 15, 30, 70, 99, 40, 0, 0)
    return voice(PAIRS, 0, [
        op(1, 99, car, vel=2, rate_scaling=2), op(1, s["index"], fast, vel=3),
        op(2, s["octave"], fast, rate_scaling=3), op(3, s["pick"], fast, vel=4),
        op(1, 0, car), op(1, 0, car)])


def _pan_flute(s):
    env = _sustained(s["attack"], s["release"])
    chiff = (99, s["chiff"], 40, 70, 99, s["breath"], s["breath"] - 10, 0)
    return voice(PAIRS, 7, [
        op(1, 99, env, vel=1), op(1, s["index"], env, vel=2),
        op(1, 70, chiff), op(13, 99, chiff),
        op(3, s["third"], env), op(1, 30, env)],
        lfo=(s["rate"], s["delay"], s["vibrato"], 0), pms=2)


def _pipe(s):
    speech = (s["speech"], 99, 99, s["release"], 99, 99, 99, 0)
    chiff = (99, 45, 99, 99, 99, 0, 0, 0)
    return voice(ADDITIVE, 7, [
        op(1, s["rank8"], speech), op(0.5, s["rank16"], speech), op(2, s["rank4"], speech),
        op(4, s["rank2"], speech), op(3, s["mixture"], speech), op(2, s["chiff"], chiff)])


def _solo_string(s):
    car = _sustained(s["attack"], s["release"], 97)
    mod = _sustained(s["attack"] - 8, s["release"], 92)
    bite = (99, s["bite_decay"], 30, s["release"], 99, 50, 40, 0)
    d = s["detune"]
    return voice(STACK, 6, [
        op(1, 85, car, detune=7 - d), op(1, s["index"], mod, vel=2),
        op(1, 99, car, detune=7 + d), op(1, s["index"] - 6, mod, vel=2),
        op(_choice((1, 2, 3), s["ratio"]), s["bite"], bite, vel=3), op(1, s["saw"], mod)],
        lfo=(s["rate"], s["delay"], s["vibrato"], 0), pms=3)


def _square_lead(s):
    env = (99, 99, 99, s["release"], 99, 99, 99, 0)
    return voice(PAIRS, 5, [
        op(1, 99, env, detune=7 - s["detune"]), op(2, s["index"], env, vel=2),
        op(1, 92, env, detune=7 + s["detune"]), op(2, s["index"] - 5, env, vel=2),
        op(2, s["octave"], env), op(1, 60, env)],
        lfo=(s["rate"], s["delay"], s["vibrato"], 0), pms=4,
        pitch_env=(s["glide"], 99, 99, 99, 50, 50, 50, 50 - s["scoop"]))


def _sweep_lead(s):
    env = (99, 99, 99, s["release"], 99, 99, 99, 0)
    sweep = (99, s["sweep"], 99, s["release"], 99, s["hold"], s["hold"], 0)
    return voice(STACK, 7, [
        op(1, 99, env, detune=7 - s["detune"]), op(1, s["index"], sweep, vel=3),
        op(1, 95, env, detune=7 + s["detune"]), op(1, s["index"] - 4, sweep, vel=3),
        op(_choice((1, 2, 3), s["ratio"]), s["upper"], sweep), op(1, 80, env)],
        lfo=(s["rate"], s["delay"], s["vibrato"], 0), pms=4)


def _solo_voice(s):
    env = _sustained(s["attack"], s["release"])
    return voice(PAIRS, 2, [
        op(1, 99, env, vel=1), op(1, s["index"], env, vel=2),
        op(_choice((2, 3, 4), s["f1_ratio"]), s["f1"], env,
            scaling=fade_above(s["break"], s["fade"])),
        op(1, s["index"] - 10, env),
        op(_choice((5, 6, 7, 8), s["f2_ratio"]), s["f2"], env,
            scaling=fade_above(s["break"] - 6, s["fade"] + 15)),
        op(1, 35, env)],
        lfo=(s["rate"], s["delay"], s["vibrato"], 0), pms=4)


def _choir(s):
    env = _sustained(s["attack"], s["release"])
    d = s["detune"]
    return voice(ADDITIVE, s["breath"], [
        op(1, 99, env, detune=7 - d, ams=1), op(1, 85, env, detune=7 + d, ams=1),
        op(2, s["second"], env, detune=7 + d),
        op(_choice((3, 4), s["f1_ratio"]), s["f1"], env, scaling=fade_above(s["break"], s["fade"])),
        op(_choice((5, 6, 7), s["f2_ratio"]), s["f2"], env,
            scaling=fade_above(s["break"] - 6, s["fade"] + 15)),
        op(1, s["air"], env)],
        lfo=(s["rate"], 0, s["vibrato"], 8), pms=2)


_ENV = {"attack": (50, 75), "release": (55, 75)}
_LFO = {"rate": (28, 40), "delay": (30, 70), "vibrato": (2, 8)}

#: Prototype name -> :class:`Prototype`: the family mapping (each one's voice: ``_VOICES``).
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

#: Prototype name -> the function that turns its drawn settings into a DX7 voice.
_VOICES: Dict[str, Callable[[Mapping[str, float]], bytes]] = {
    "fmbass": _bass, "fmbrass": _brass, "fmflute": _flute, "fmguitar": _guitar,
    "fmepiano": _epiano, "fmclav": _clav, "fmmarimba": _marimba, "fmvibes": _vibes,
    "fmbell": _bell, "fmorgan": _organ, "fmclarinet": _clarinet, "fmdoublereed": _double_reed,
    "fmstrings": _strings, "fmlead": _lead, "fmtrumpet": _trumpet, "fmwoodbass": _wood_bass,
    "fmnylon": _nylon, "fmpanflute": _pan_flute, "fmpipe": _pipe, "fmsolostring": _solo_string,
    "fmsquarelead": _square_lead, "fmsweeplead": _sweep_lead, "fmvoice": _solo_voice,
    "fmchoir": _choir,
}


def patch(instrument: Instrument) -> bytes:
    """The instrument's DX7 voice (155 VCED bytes)."""
    return _VOICES[instrument.prototype](instrument.values())


def program(instrument: Instrument) -> bytes:
    """What the instrument is rendered from: its DX7 voice (:func:`patch`)."""
    return patch(instrument)


def load():
    """The dexed module; raises ImportError without dexed-py."""
    return importlib.import_module(MODULE)


def renderer(options) -> Callable[[Instrument, int, int], np.ndarray]:
    """A function ``(instrument, pitch, velocity) -> float32 (n,)`` that renders one note.

    Raises
    ------
    NeedsPackage
        Without dexed-py.
    """
    try:
        dexed = load()
    except ImportError:
        raise NeedsPackage(f"FM rendering needs {PACKAGE}: pip install 'timbremap[synth]'") \
            from None
    synth = dexed.DexedSynth(sample_rate=options.sample_rate)
    loaded = []

    def render(instrument: Instrument, pitch: int, velocity: int) -> np.ndarray:
        if loaded != [instrument]:
            synth.load_patch(dexed.Patch.from_sysex(patch(instrument)))
            loaded[:] = [instrument]
        audio = synth.render(midi_note=pitch, velocity=velocity, note_duration=options.hold,
                             render_duration=options.duration)
        return np.asarray(audio, dtype=np.float32)

    return render
