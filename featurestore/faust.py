"""Faust instruments: physical models, subtractive and additive voices, rendered by DawDreamer."""
from __future__ import annotations

import importlib
import os
import sys
from typing import Callable, Dict, Mapping

import numpy as np

from .errors import NeedsPackage, install_hint
from .synth import Instrument, Prototype

__all__ = ["PROTOTYPES", "dsp_code", "program", "load", "renderer"]

#: The pip requirement and the module it installs.
PACKAGE, MODULE = "dawdreamer", "dawdreamer"

#: Every voice reads ``freq`` (Hz), ``vel`` (velocity / 127) and ``hold`` (s); ``gate`` is 1
#: while the key is held and ``t`` the time since the key went down (s). A voice's own settings
#: are sliders named as in its prototype's ranges.
_HEADER = """import("stdfaust.lib");
freq = hslider("freq", 440, 10, 10000, 0.001);
vel = hslider("vel", 0.8, 0, 1, 0.0001);
hold = hslider("hold", 3, 0, 100, 0.0001);
gate = ba.time < hold * ma.SR;
t = ba.time / ma.SR;
decay(t60) = exp(-6.91 * t / t60);
vib(rate, semitones, delay) = 1 + 0.0578 * semitones * os.osc(rate) * min(1, max(0, t - delay) * 3);
sine(f) = os.osc(f) * (f < ma.SR / 2 - 200);
pulse(f, width) = os.sawtooth(f) - (os.sawtooth(f) : de.fdelay(8192, width * ma.SR / f));
soft(drive) = *(1 + 4 * drive) : ma.tanh : /(1 + 2 * drive);
nyq(fc) = min(fc, 0.45 * ma.SR);
tuned(f, d) = f / (1 - d * f / ma.SR);
"""

#: A plucked string (Karplus-Strong with pluck position, loss for a decay of ``t60`` seconds,
#: damped when the key is released), shared by the plucked bass and guitar.
_PLUCK = """
N = ma.SR / freq;
loss = pow(0.001, 1 / (freq * t60)) * select2(gate, 0.9, 1);
d = damp * min(1, 220 / freq);
avg = _ <: *(1 - d), (mem : *(d)) :> _;
burst = no.noise * (ba.time < N) : fi.lowpass(1, nyq(freq * (2 + 14 * bright * (0.4 + 0.6 * vel))));
pick = burst <: _, de.fdelay(8192, pos * N) : -;
string = pick : (+ : de.fdelay1a(8192, N - 1 - d)) ~ (avg : *(loss));
"""

_VOICES = {
    "subbass": """
osc = (1 - shape) * os.sawtooth(freq) + shape * os.square(freq);
fc = min(freq * (cutoff + envamt * (0.3 + 0.7 * vel) * decay(fdecay)), 6500);
amp = en.adsr(0.003, adecay, sustain, 0.08, gate);
voice = osc : soft(drive) : ve.moog_vcf_2b(res, fc) : *(amp);
""",
    "pluckbass": _PLUCK + """
voice = string : fi.lowpass(2, tone) : soft(drive) : *(en.asr(0.001, 1, 0.08, gate));
""",
    "shapebrass": """
f = freq * vib(rate, vibrato, vdelay);
env = en.adsr(attack, 0.15, 0.8, 0.08, gate);
x = sine(f) * env * (0.5 + 0.5 * vel) * drive;
voice = ma.tanh(x + bias) - ma.tanh(bias) : fi.lowpass(2, nyq(f * 12));
""",
    "subbrass": """
f = freq * (1 - 0.0578 * scoop * decay(0.08)) * vib(rate, vibrato, 0.4);
swell = en.adsr(attack, 0.3, 0.8, 0.12, gate);
osc = (os.sawtooth(f * (1 + detune)) + os.sawtooth(f * (1 - detune))) * 0.5;
fc = min(f * (1 + bright * (0.4 + 0.6 * vel) * swell), 7000);
voice = osc : ve.moog_vcf_2b(res, fc) : *(swell);
""",
    "noiseflute": """
f = freq * vib(rate, vibrato, vdelay);
env = en.adsr(attack, 0.2, 0.9, 0.08, gate);
breath = no.noise * env;
voice = (breath : fi.resonbp(f, q, 1)) + h2 * (breath : fi.resonbp(nyq(2 * f), q, 1))
      + tone * sine(f) * env;
""",
    "airflute": """
f = freq * vib(rate, vibrato, vdelay);
tone = sine(f) + h2 * (0.5 + vel) * sine(2 * f) + h3 * vel * sine(3 * f);
air = no.noise : fi.resonbp(2 * f, 1.5, 1) : *(breath);
voice = (tone + air) * en.adsr(attack, 0.2, 0.9, 0.1, gate);
""",
    "pmguitar": """
steel = pm.guitar(pm.f2l(tuned(freq, 9.35)), pos, 0.4 + 0.6 * vel, gate);
nylon = pm.nylonGuitar(pm.f2l(tuned(freq, 10.05)), pos, 0.4 + 0.6 * vel, gate);
voice = select2(kind > 0.5, steel, nylon) * en.asr(0.001, 1, 0.1, gate);
""",
    "ksguitar": _PLUCK + """
body = _ <: _, fi.resonbp(body1, 4, 0.5), fi.resonbp(body2, 6, 0.3) :> _;
voice = string : body : fi.lowpass(2, tone) : *(en.asr(0.001, 1, 0.1, gate));
""",
    "piano": """
fn(n) = freq * n * sqrt(1 + inharm * n * n);
tn(n) = t60 * pow(261.6 / freq, 0.5) / (1 + 0.2 * n);
unison(n) = (sine(fn(n)) + sine(fn(n) * (1 + detune))) * 0.5;
part(n) = unison(n) * pow(n, 0.6 * vel - tilt) * decay(tn(n));
thump = no.noise : fi.lowpass(2, 1500) : *(hammer * vel * decay(0.03));
voice = (sum(i, 14, part(i + 1)) + thump) * en.asr(0.001, 1, 0.12, gate);
""",
    "tine": """
body = sine(freq) * decay(t60) + 0.2 * sine(2 * freq) * decay(0.4 * t60);
tine = sine(freq * ratio) * bell * vel * decay(0.05 + 0.1 * (1 - vel));
x = body + tine;
trem = 1 - tremolo * 0.5 * (1 + os.osc(trate));
voice = (x + bark * vel * x * x) * trem * en.asr(0.001, 1, 0.1, gate);
""",
    "strikebar": """
r2 = ba.selectn(2, int(kind * 1.999), 4.0, 3.0);
r3 = ba.selectn(2, int(kind * 1.999), 10.0, 6.0);
mode(r, tt, g) = pm.modeFilter(nyq(freq * r), tt, g);
strike = pm.strikeModel(10, nyq(cutoff * (0.5 + 0.5 * vel)), sharp, 1, gate);
bar = strike <: mode(1, t60, 1), mode(r2, 0.4 * t60, hard), mode(r3, 0.15 * t60, hard * hard) :> _;
voice = bar * en.asr(0.0005, 1, 0.25, gate);
""",
    "modalbar": """
r2 = ba.selectn(3, int(kind * 2.999), 4.0, 3.0, 2.76);
r3 = ba.selectn(3, int(kind * 2.999), 10.0, 6.0, 5.4);
m(r, a, tt) = sine(freq * r) * a * decay(tt);
trem = 1 - tremolo * 0.5 * (1 + os.osc(trate));
click = no.noise : fi.highpass(2, 2000) : *(0.3 * hard * vel * decay(0.004));
modes = m(1, 1, t60) + m(r2, hard * vel, 0.35 * t60) + m(r3, hard * hard * vel, 0.15 * t60);
voice = (modes * trem + click) * en.asr(0.0005, 1, 0.25, gate);
""",
    "drawbar": """
f = freq * (1 + depth * os.osc(rate));
lvl(d) = select2(d < 0.5, pow(10, (d - 8) * 0.15), 0);
bar(r, d) = sine(f * r) * lvl(d);
tones = bar(0.5, d16) + bar(1.5, d513) + bar(1, d8) + bar(2, d4) + bar(3, d223) + bar(4, d2)
      + bar(5, d135) + bar(6, d113) + bar(8, d1);
percussion = perc * sine(3 * f) * decay(0.4);
clk = no.noise : fi.bandpass(1, 1000, 5000) : *(click * decay(0.006));
voice = (tones * 0.3 + percussion + clk) * (1 + 0.1 * os.osc(rate)) * en.asr(0.004, 1, 0.03, gate);
""",
    "pipe": """
w(k) = pow(k, -1 - flue) * select2((k % 2) == 0, 1, even);
pipe(f) = sum(i, 8, sine(f * (i + 1)) * w(i + 1));
chiffy = no.noise : fi.resonbp(2 * freq, 3, 1) : *(chiff * decay(0.06));
air = no.noise : fi.lowpass(2, 2000) : *(wind);
voice = (pipe(freq) * r8 + pipe(2 * freq) * r4 + pipe(4 * freq) * r2 + chiffy + air)
      * en.asr(attack, 1, 0.08, gate);
""",
    "pmclarinet": """
f = freq * vib(rate, vibrato, vdelay);
env = en.adsr(attack, 0.1, 0.9, 0.05, gate) * (0.65 + 0.35 * vel) * blow;
tube = pm.f2l(tuned(f, 7.2 + 1.9 * bell / (1 - bell)));
voice = pm.clarinetModel(tube, env * (1 + 0.05 * no.noise), stiff, bell)
      * en.asr(0.001, 1, 0.06, gate);
""",
    "pulsereed": """
f = freq * vib(rate, vibrato, vdelay);
env = en.adsr(attack, 0.1, 0.85, 0.08, gate);
body = pulse(f, width) : fi.lowpass(2, min(f * (1 + bright * (0.4 + 0.6 * vel) * env), 7000));
air = no.noise : fi.resonbp(formant, 2, 1) : *(breath);
voice = (body * 0.6 + (body : fi.resonbp(formant, q, 1)) * 0.8 + air) * env;
""",
    "pmviolin": """
f = freq * vib(rate, vibrato, vdelay);
bow = en.adsr(attack, 0.2, 0.9, 0.05, gate) * (0.5 + 0.5 * vel);
voice = pm.violinModel(pm.f2l(tuned(f, 8.2)), press, bow, pos) * en.asr(0.001, 1, 0.1, gate);
""",
    "ensemble": """
f = freq * vib(rate, vibrato, 0.2);
osc = (os.sawtooth(f) + os.sawtooth(f * (1 + detune)) + os.sawtooth(f * (1 - detune))) / 3;
voice = osc : fi.lowpass(2, min(f * cutoff * (0.6 + 0.4 * vel), 7000))
      : *(en.adsr(attack, 0.3, 0.9, release, gate));
""",
    "sawlead": """
f = freq * vib(rate, vibrato, vdelay);
osc = (1 - square) * (os.sawtooth(f) + os.sawtooth(f * (1 + detune))) * 0.5 + square * os.square(f);
fc = min(f * (cutoff + fenv * (0.4 + 0.6 * vel) * decay(fdecay)), 7000);
voice = osc : soft(drive) : ve.moog_vcf_2b(res, fc) : *(en.adsr(0.005, 0.2, 0.85, 0.08, gate));
""",
    "pwmlead": """
f = freq * vib(rate, vibrato, vdelay);
osc = pulse(f, 0.5 + 0.4 * pwm * os.osc(prate));
fc = min(f * cutoff * (0.6 + 0.4 * vel), 7000);
voice = osc : ve.moog_vcf_2b(res, fc) : *(en.adsr(0.005, 0.2, 0.85, 0.08, gate));
""",
    "formant": """
f = freq * vib(rate, vibrato, 0.25);
voice = pm.SFFormantModelBP(int(kind), vowel, fric, f, 1)
      * en.adsr(attack, 0.2, 0.9, 0.12, gate) * (0.6 + 0.4 * vel);
""",
    "fof": """
f = freq * vib(rate, vibrato, 0.25);
voice = pm.SFFormantModelFofSmooth(int(kind), vowel, f, 1)
      * en.adsr(attack, 0.2, 0.9, 0.12, gate) * (0.6 + 0.4 * vel);
""",
}

_VIBRATO = {"vibrato": (0.05, 0.3), "rate": (4.5, 6.5), "vdelay": (0.2, 0.8)}

#: Prototype name -> :class:`Prototype`: the family mapping. Why each is its family:
#: ``subbass`` and ``pluckbass`` are the two ways synthesizers and electric basses make a bass
#: (a saw/square whose resonant filter snaps shut; a plucked string with a dark pickup tone),
#: played on bass keys. ``shapebrass`` (a waveshaped sine whose harmonics grow with loudness)
#: and ``subbrass`` (detuned saws whose filter opens as the note swells) both make brass's
#: defining trait, brightness that follows loudness. ``airflute`` (near-sine with breath noise)
#: and ``noiseflute`` (breath noise through resonators at the pitch and octave) are flutes:
#: few harmonics, audible air, delayed vibrato. ``pmguitar`` is Faust's steel and nylon string
#: models, ``ksguitar`` a plucked string with body resonances. ``piano`` (a hammered string:
#: inharmonic partials whose highs decay first) and ``tine`` (an electric piano: sine tine,
#: bell partial, pickup bark) are NSynth's keyboards. ``strikebar`` (a noise strike into the
#: modes of a marimba or xylophone bar) and ``modalbar`` (vibraphone, xylophone or glockenspiel
#: modes with tremolo) are struck, decaying mallets. ``drawbar`` (tonewheel organ: nine sine
#: footages, key click, percussion, rotary vibrato) and ``pipe`` (flue ranks at 8', 4', 2' with
#: chiff and wind) are organs: steady from key down to key up. ``pmclarinet`` is Faust's
#: single-reed model, ``pulsereed`` the saxophone/oboe patch (a pulse wave through a formant).
#: ``pmviolin`` is Faust's bowed string, ``ensemble`` the string machine (three detuned saws,
#: slow attack). ``sawlead`` and ``pwmlead`` are the mono leads of analogue synthesizers.
#: ``formant`` and ``fof`` are Faust's source-filter singing voices (five voice types, five
#: vowels). Faust's brass, flute and marimba models are left out: they do not hold a pitch
#: across their range. The physical models are rendered on the keys where they hold their
#: tuning: ``tuned`` takes out the delay their filters add to the loop, as measured at 16 kHz.
PROTOTYPES: Dict[str, Prototype] = {
    "subbass": Prototype("bass", "synth bass: saw/square through a closing resonant lowpass", {
        "shape": (0, 1), "cutoff": (1.5, 6), "envamt": (3, 16), "fdecay": (0.08, 0.5),
        "res": (0.1, 0.75), "drive": (0, 0.6), "adecay": (0.8, 3), "sustain": (0.3, 0.8)}),
    "pluckbass": Prototype("bass", "electric bass: plucked string, dark pickup tone", {
        "t60": (3, 9), "damp": (0.4, 0.5), "bright": (0.3, 1), "pos": (0.08, 0.3),
        "tone": (600, 2500), "drive": (0, 0.5)}),
    "shapebrass": Prototype("brass", "waveshaped sine: harmonics grow with loudness", {
        **_VIBRATO, "drive": (2, 6), "bias": (0.3, 0.9), "attack": (0.03, 0.1)}),
    "subbrass": Prototype("brass", "analogue brass: detuned saws, filter opens as it swells", {
        **_VIBRATO, "detune": (0.002, 0.008), "attack": (0.03, 0.12), "bright": (2, 6),
        "res": (0, 0.4), "scoop": (0, 0.5)}),
    "noiseflute": Prototype("flute", "breath noise through resonators at the pitch and octave", {
        **_VIBRATO, "q": (15, 60), "h2": (0, 0.4), "tone": (0.05, 0.3),
        "attack": (0.04, 0.15)}),
    "airflute": Prototype("flute", "near-sine tone with breath noise and vibrato", {
        **_VIBRATO, "h2": (0.05, 0.35), "h3": (0, 0.15), "breath": (0.02, 0.15),
        "attack": (0.04, 0.15)}),
    "pmguitar": Prototype("guitar", "Faust's steel and nylon string models", {
        "pos": (0.1, 0.9), "kind": (0, 1)}, pitches=(46, 64)),
    "ksguitar": Prototype("guitar", "plucked string with body resonances", {
        "t60": (3, 10), "damp": (0.1, 0.35), "bright": (0.3, 1), "pos": (0.1, 0.4),
        "tone": (2000, 6000),
        "body1": (90, 220), "body2": (250, 500)}),
    "piano": Prototype("keyboard", "hammered string: inharmonic partials, highs decay first", {
        "inharm": (0.0001, 0.0008), "tilt": (0.8, 1.6), "t60": (6, 20), "hammer": (0, 0.3),
        "detune": (0.0005, 0.003)}),
    "tine": Prototype("keyboard", "electric piano: sine tine, bell partial, pickup bark", {
        "t60": (4, 12), "ratio": (6.5, 8.5), "bell": (0.1, 0.6), "bark": (0, 0.6),
        "tremolo": (0, 0.4), "trate": (3, 6)}),
    "strikebar": Prototype("mallet", "noise strike into resonant modes of a tuned bar", {
        "kind": (0, 1), "cutoff": (2000, 7000), "sharp": (0.2, 1), "t60": (0.5, 2.5),
        "hard": (0.2, 0.8)}),
    "modalbar": Prototype("mallet", "struck bar: vibraphone, xylophone or glockenspiel modes", {
        "kind": (0, 1), "t60": (1.5, 6), "hard": (0.1, 0.8), "tremolo": (0, 0.5),
        "trate": (3.5, 7)}),
    "drawbar": Prototype("organ", "tonewheel organ: nine sine footages, click, rotary", {
        "d16": (0, 6), "d513": (0, 4), "d8": (6, 8), "d4": (0, 8), "d223": (0, 6),
        "d2": (0, 6), "d135": (0, 4), "d113": (0, 4), "d1": (0, 6), "click": (0, 0.3),
        "perc": (0, 0.6), "rate": (0.7, 6.7), "depth": (0, 0.004)}),
    "pipe": Prototype("organ", "pipe organ: flue ranks 8', 4', 2', chiff and wind", {
        "r8": (0.7, 1), "r4": (0, 0.7), "r2": (0, 0.5), "flue": (0.3, 1.5), "even": (0.2, 1),
        "chiff": (0, 0.3), "attack": (0.03, 0.12), "wind": (0, 0.03)}),
    "pmclarinet": Prototype("reed", "Faust's single-reed clarinet model", {
        **_VIBRATO, "stiff": (0.3, 0.7), "bell": (0.3, 0.5), "blow": (0.7, 1),
        "attack": (0.01, 0.06)}, pitches=(40, 78)),
    "pulsereed": Prototype("reed", "saxophone/oboe patch: pulse wave through a formant", {
        **_VIBRATO, "width": (0.1, 0.5), "formant": (700, 2200), "q": (1, 4),
        "bright": (2, 6), "breath": (0, 0.1), "attack": (0.02, 0.08)}),
    "pmviolin": Prototype("string", "Faust's bowed string model", {
        **_VIBRATO, "press": (0.3, 0.7), "pos": (0.45, 0.65), "attack": (0.02, 0.15)},
        pitches=(46, 76)),
    "ensemble": Prototype("string", "string machine: three detuned saws, slow attack", {
        "vibrato": (0.05, 0.25), "rate": (4.5, 6.5), "detune": (0.002, 0.008),
        "attack": (0.08, 0.4), "cutoff": (3, 8), "release": (0.15, 0.5)}),
    "sawlead": Prototype("synth_lead", "mono lead: saw/square, resonant lowpass, vibrato", {
        **_VIBRATO, "detune": (0, 0.01), "cutoff": (2, 10), "res": (0.2, 0.85),
        "fenv": (0, 8), "fdecay": (0.1, 0.6), "square": (0, 1), "drive": (0, 0.7)}),
    "pwmlead": Prototype("synth_lead", "pulse-width-modulated lead through a lowpass", {
        **_VIBRATO, "pwm": (0.1, 0.9), "prate": (0.3, 4), "cutoff": (3, 12),
        "res": (0.1, 0.7)}),
    "formant": Prototype("vocal", "source-filter voice: saw through vowel formants", {
        "kind": (0, 5), "vowel": (0, 4), "fric": (0, 0.15), "vibrato": (0.2, 0.6),
        "rate": (4.5, 6.5), "attack": (0.05, 0.2)}),
    "fof": Prototype("vocal", "FOF singing voice (formant wave functions)", {
        "kind": (0, 5), "vowel": (0, 4), "vibrato": (0.2, 0.6), "rate": (4.5, 6.5),
        "attack": (0.05, 0.2)}),
}


def dsp_code(prototype: str) -> str:
    """The Faust program of a prototype: its settings are sliders named as in its ranges."""
    proto = PROTOTYPES[prototype]
    sliders = "".join(f'{name} = hslider("{name}", {low}, {low}, {max(high, low + 1)}, '
                      f"0.00001);\n" for name, (low, high) in sorted(proto.ranges.items()))
    return f"{_HEADER}{sliders}{_VOICES[prototype]}process = voice : fi.dcblocker;\n"


def program(instrument: Instrument) -> bytes:
    """What the instrument is rendered from: its prototype's Faust program (its settings are
    the sliders' values, in ``instrument.settings``)."""
    return dsp_code(instrument.prototype).encode()


def load():
    """The dawdreamer module, its shared library loaded with its own symbols bound first
    (``RTLD_DEEPBIND``, where the platform has it): in a process that imported TensorFlow
    before it (the demo, a test session) it otherwise binds to libraries TensorFlow loaded and
    crashes the process (``tests/test_synth.py``).

    Raises
    ------
    ImportError
        Without dawdreamer.
    """
    if MODULE in sys.modules or not hasattr(sys, "getdlopenflags"):  # loaded, or not POSIX
        return importlib.import_module(MODULE)
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | getattr(os, "RTLD_DEEPBIND", 0))
    try:
        return importlib.import_module(MODULE)
    finally:
        sys.setdlopenflags(flags)


def renderer(options) -> Callable[[Instrument, int, int], np.ndarray]:
    """A function ``(instrument, pitch, velocity) -> float32 (n,)`` that renders one note; each
    prototype's program is compiled the first time one of its instruments plays.

    Raises
    ------
    NeedsPackage
        Without dawdreamer.
    """
    try:
        dawdreamer = load()
    except ImportError:
        raise NeedsPackage(f"Faust rendering needs {PACKAGE}: {install_hint('synth')}") \
            from None
    engines: Dict[str, tuple] = {}  # prototype -> (its render engine, its compiled program)

    def render(instrument: Instrument, pitch: int, velocity: int) -> np.ndarray:
        name = instrument.prototype
        if name not in engines:
            engine = dawdreamer.RenderEngine(options.sample_rate, 256)
            processor = engine.make_faust_processor(name)
            if not processor.set_dsp_string(dsp_code(name)) or not processor.compile():
                raise RuntimeError(f"Faust could not compile the {name} voice")
            engine.load_graph([(processor, [])])
            used = {p["name"] for p in processor.get_parameters_description()}
            engines[name] = engine, processor, used
        engine, processor, used = engines[name]
        values: Mapping[str, float] = {**instrument.values(), "vel": velocity / 127,
                                       "hold": options.hold,
                                       "freq": 440 * 2 ** ((pitch - 69) / 12)}
        for key, value in values.items():
            if f"/dawdreamer/{key}" in used:  # Faust drops the sliders a voice does not read
                processor.set_parameter(f"/dawdreamer/{key}", value)
        engine.render(options.duration)
        return np.asarray(engine.get_audio(), dtype=np.float32)[0]

    return render
