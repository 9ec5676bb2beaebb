"""The DX7 voice of each FM prototype: its drawn settings (:class:`featurestore.synth.Instrument`
values) -> a 155-byte VCED voice built from :mod:`featurestore.dx7`'s operators."""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Sequence

from .dx7 import ADDITIVE, PAIRS, STACK, Env, fade_above, op, voice

__all__ = ["VOICES"]


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


#: Prototype name -> the function that turns its drawn settings into a DX7 voice.
VOICES: Dict[str, Callable[[Mapping[str, float]], bytes]] = {
    "fmbass": _bass, "fmbrass": _brass, "fmflute": _flute, "fmguitar": _guitar,
    "fmepiano": _epiano, "fmclav": _clav, "fmmarimba": _marimba, "fmvibes": _vibes,
    "fmbell": _bell, "fmorgan": _organ, "fmclarinet": _clarinet, "fmdoublereed": _double_reed,
    "fmstrings": _strings, "fmlead": _lead, "fmtrumpet": _trumpet, "fmwoodbass": _wood_bass,
    "fmnylon": _nylon, "fmpanflute": _pan_flute, "fmpipe": _pipe, "fmsolostring": _solo_string,
    "fmsquarelead": _square_lead, "fmsweeplead": _sweep_lead, "fmvoice": _solo_voice,
    "fmchoir": _choir,
}
