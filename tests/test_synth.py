"""Synthesised instruments: the family mapping, the instrument draws, a tiny render per engine."""
import dataclasses
import hashlib
import importlib
import json
import re
import sys
import zlib
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from featurestore import dx7, faust, fm, fmvoices
from featurestore.errors import InputError, NeedsPackage
from featurestore.nsynth import FAMILIES, QUALITIES
from featurestore.render import RenderOptions, assign_splits
from featurestore.splitfolder import read_split
from featurestore.synth import (ENGINES, Prototype, available_engines, render_synth, scale_note,
                                synth_instruments)

pytestmark = pytest.mark.full

FIELDS = {"instrument_family", "instrument_family_str", "instrument", "instrument_str",
          "instrument_source", "instrument_source_str", "pitch", "velocity", "sample_rate",
          "qualities", "note_str", "note"}
TINY = RenderOptions(pitch_step=24, velocities=(100,), duration=1.0, hold=0.75,
                     fractions=(1, 1, 1))
#: Families whose Faust voices compile in a fraction of a second (the vocal ones take seconds).
QUICK = ("organ", "mallet")

#: The documented mapping, written out: a prototype moved to another family fails here.
EXPECTED = {
    "dexed": {"fmbass": "bass", "fmbrass": "brass", "fmflute": "flute", "fmguitar": "guitar",
              "fmepiano": "keyboard", "fmclav": "keyboard", "fmmarimba": "mallet",
              "fmvibes": "mallet", "fmbell": "mallet", "fmorgan": "organ",
              "fmclarinet": "reed", "fmdoublereed": "reed", "fmstrings": "string",
              "fmlead": "synth_lead", "fmtrumpet": "brass", "fmwoodbass": "bass",
              "fmnylon": "guitar", "fmpanflute": "flute", "fmpipe": "organ",
              "fmsolostring": "string", "fmsquarelead": "synth_lead",
              "fmsweeplead": "synth_lead", "fmvoice": "vocal", "fmchoir": "vocal"},
    "faust": {"subbass": "bass", "pluckbass": "bass", "shapebrass": "brass",
              "subbrass": "brass", "airflute": "flute", "noiseflute": "flute",
              "pmguitar": "guitar", "ksguitar": "guitar", "piano": "keyboard",
              "tine": "keyboard", "strikebar": "mallet", "modalbar": "mallet",
              "drawbar": "organ", "pipe": "organ", "pmclarinet": "reed", "pulsereed": "reed",
              "pmviolin": "string", "ensemble": "string", "sawlead": "synth_lead",
              "pwmlead": "synth_lead", "formant": "vocal", "fof": "vocal"},
}


def needs(engine):
    module = importlib.import_module(ENGINES[engine])
    try:
        module.load()  # as the engine loads it (faust's binds its own symbols first)
    except ImportError:
        raise AssertionError(f"this test needs {module.PACKAGE}: pip install -e '.[synth]' "
                             f"(make test installs it)") from None


def digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_family_mapping_covers_every_family_and_is_documented():
    for engine, expected in EXPECTED.items():
        prototypes = importlib.import_module(ENGINES[engine]).PROTOTYPES
        assert {name: p.family for name, p in prototypes.items()} == expected
        for name, proto in prototypes.items():
            assert proto.about and proto.source == "synthetic", name
            assert all(low <= high for low, high in proto.ranges.values()), name
    assert set(fm.PROTOTYPES) == set(fmvoices.VOICES)
    assert set(faust.PROTOTYPES) == set(faust._VOICES)
    covered = {p.family for e in EXPECTED for p in importlib.import_module(ENGINES[e])
               .PROTOTYPES.values()}
    assert covered == set(FAMILIES)
    both = set(EXPECTED["dexed"].values()) & set(EXPECTED["faust"].values())
    assert both == set(FAMILIES)  # each engine covers every family
    with pytest.raises(InputError, match="unknown family 'drums'"):
        Prototype("drums", "a drum", {})


def test_the_documented_table_is_the_mapping():
    """docs/synthesis.md's table of prototypes says what ``PROTOTYPES`` holds, row for row."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "synthesis.md").read_text()
    rows = {m[3]: (m[1], m[2], m[4]) for m in re.finditer(
        r"^\| (\w+) \| (dexed \(FM\)|faust) \| `(\w+)` \| (.+) \|$", text, re.M)}
    labels = {"dexed": "dexed (FM)", "faust": "faust"}
    assert rows == {name: (proto.family, labels[engine], proto.about) for engine in ENGINES
                    for name, proto in importlib.import_module(ENGINES[engine]).PROTOTYPES.items()}


def test_instruments_are_drawn_deterministically_within_their_ranges():
    for engine in ENGINES:
        prototypes = importlib.import_module(ENGINES[engine]).PROTOTYPES
        first = synth_instruments(engine, per_family=4, seed=3)
        assert first == synth_instruments(engine, per_family=4, seed=3)
        assert first != synth_instruments(engine, per_family=4, seed=4)
        more = synth_instruments(engine, per_family=6, seed=3)
        key = lambda i: (i.prototype, i.settings)  # noqa: E731
        assert {key(i) for i in first} <= {key(i) for i in more}  # more keeps the first ones
        for inst in more:
            proto = prototypes[inst.prototype]
            assert inst.family == proto.family and inst.name.startswith(f"{inst.family}_")
            assert all(proto.ranges[k][0] <= v <= proto.ranges[k][1] for k, v in inst.settings)
        numbers = {i.name: i.number for i in more}  # more per family, or fewer families:
        assert all(numbers[i.name] == i.number for i in first)  # the same names and numbers
        assert all(numbers[i.name] == i.number for i in synth_instruments(
            engine, per_family=6, seed=3, families=["vocal", "string"]))
        assert len(set(numbers.values())) == len(more)
    drawn = [i for e in ENGINES for seed in (0, 5) for i in synth_instruments(e, per_family=15,
                                                                           seed=seed)]
    ids, names = [i.id for i in drawn], [i.name for i in drawn]  # two seeds: other instruments
    assert len(set(ids)) == len(ids) and len(set(names)) == len(names)
    dexed0 = synth_instruments("dexed", per_family=1, seed=0)[0]  # seed 0 as it always was
    assert dexed0.name == "bass_synthetic_dexed000" and dexed0.id == (
        1_000_000 + zlib.crc32(b"dexed") % 1_000_000) * 1000
    assert synth_instruments("dexed", per_family=1, seed=5)[0].name == \
        "bass_synthetic_dexed000s5"
    assert min(ids) >= 1_000_000_000  # SoundFont ids: bank * 1000 + program < 10**9
    assert max(ids) < 2 ** 31  # an int32, as the store keeps it
    with pytest.raises(InputError, match="unknown synthesis engine"):
        synth_instruments("moog")
    with pytest.raises(InputError, match="unknown families"):
        synth_instruments("faust", families=["drums"])


def test_default_splits_give_every_split_several_instruments_of_each_family():
    for engine in ENGINES:
        instruments = synth_instruments(engine, per_family=15)
        splits = assign_splits([i.number for i in instruments], (0.6, 0.2, 0.2), 0,
                               families={i.number: i.family for i in instruments})
        for family in {i.family for i in instruments}:
            got = [splits[i.number] for i in instruments if i.family == family]
            assert [got.count(s) for s in ("train", "valid", "test")] == [9, 3, 3], family


def test_fm_voices_are_valid_dx7_voices():
    needs("dexed")
    import dexed
    for inst in synth_instruments("dexed", per_family=3):
        voice = fm.patch(inst)
        assert len(voice) == 155 and max(voice) <= 99, inst.name
        assert dexed.Patch.from_sysex(voice).to_sysex()[:155] == voice, inst.name


def _spectrum(note: np.ndarray, pitch: int, rate: int):
    """``(power, freqs, f0)``: the power spectrum of a note from 0.1 s to 0.9 s (Hann window),
    and the frequency of its key."""
    segment = note[rate // 10:rate * 9 // 10] * np.hanning(rate * 8 // 10)
    return (np.abs(np.fft.rfft(segment)) ** 2, np.fft.rfftfreq(segment.size, 1 / rate),
            float(librosa.midi_to_hz(pitch)))


def _harmonic_share(note: np.ndarray, pitch: int, rate: int) -> float:
    """The share of a note's power within 3 % of the harmonics of its key."""
    power, freqs, f0 = _spectrum(note, pitch, rate)
    k = np.round(freqs / f0)
    near = (k >= 1) & (np.abs(freqs - k * f0) <= np.maximum(0.03 * f0, 4))
    return float(power[near].sum() / power.sum())


def _first_of_each(engine: str) -> dict:
    """Prototype name -> the engine's first instrument of that prototype."""
    prototypes = importlib.import_module(ENGINES[engine]).PROTOTYPES
    most = max(sum(p.family == f for p in prototypes.values()) for f in FAMILIES)
    first = {}
    for inst in synth_instruments(engine, per_family=most):
        first.setdefault(inst.prototype, inst)
    assert set(first) == set(prototypes)
    return first


def test_fm_voices_sound_the_key_they_are_played_on():
    """Every FM design but the mallets' (struck bars and bells ring inharmonic modes by design)
    puts most of its power on the harmonics of the key, at the bottom, the middle and the top of
    its range, in each of its first instruments: a wrong ratio, a detuned carrier, a stuck pitch
    envelope, a partial folded back below 8 kHz or an offset fails here."""
    needs("dexed")
    render = fm.renderer(TINY)
    for inst in synth_instruments("dexed", per_family=6):
        if inst.family == "mallet":
            continue
        low, high = inst.pitches
        for pitch in (low, (low + high) // 2, high):
            share = _harmonic_share(render(inst, pitch, 127), pitch, TINY.sample_rate)
            assert share > 0.8, (inst.name, inst.prototype, pitch, share)


def _period(note: np.ndarray, pitch: int, rate: int, until: float) -> tuple:
    """``(cents, at_period, at_half)``: how far the period of a note from 0.1 s to ``until`` s
    lies from its key's, and its normalised autocorrelation there and at half that lag (medians
    over frames). The period is the autocorrelation's peak within a sixth of the key's either
    way, on lags of a quarter sample (the spectrum zero-padded), so that a key of a few samples'
    period is read as closely as a low one; vibrato and detuned voices, which smear the upper
    harmonics, leave it where it is."""
    f0, up = float(librosa.midi_to_hz(pitch)), 4
    n = 2048 if f0 > 60 else 4096
    low, high = int(up * rate / (f0 * 1.6)), int(np.ceil(up * rate * 1.6 / f0))
    frames = []
    for start in range(rate // 10, int(rate * until) - n + 1, n // 4):
        spectrum = np.fft.rfft(note[start:start + n] * np.hanning(n), 2 * n)
        acf = np.fft.irfft(np.abs(spectrum) ** 2, 2 * n * up)[:n * up]
        assert acf[0] > 0, "a silent frame"
        acf = acf / acf[0]
        k = low + int(np.argmax(acf[low:high + 1]))
        curve = acf[k - 1] - 2 * acf[k] + acf[k + 1]
        shift = 0.0 if curve >= 0 else float(np.clip((acf[k - 1] - acf[k + 1]) / (2 * curve),
                                                     -0.5, 0.5))
        frames.append((k + shift, acf[k], acf[int(round((k + shift) / 2))]))
    assert frames, "the note is shorter than one analysis frame"
    lag, at_period, at_half = np.median(np.array(frames), axis=0)
    return 1200 * np.log2(up * rate / lag / f0), at_period, at_half


def test_faust_voices_sound_the_key_they_are_played_on():
    """Every Faust design but the mallets' (bars and bells ring inharmonic modes by design),
    played at velocity 100 as its first instrument and with every setting at the bottom and at
    the top of its range, is periodic at its key within 40 cents, at the bottom, middle and top
    of its range, and more so than at half the period: a voice an octave high, a sub-octave
    rank louder than the key's or a loop detuned by a sample fails."""
    needs("faust")
    render = faust.renderer(TINY)
    for name, inst in _first_of_each("faust").items():
        if inst.family == "mallet":
            continue
        ranges = faust.PROTOTYPES[name].ranges
        corners = [dataclasses.replace(inst, settings=tuple((key, ranges[key][end])
                                                            for key, _ in inst.settings))
                   for end in (0, 1)]
        low, high = inst.pitches
        for variant in [inst, *corners]:
            for pitch in (low, (low + high) // 2, high):
                note = render(variant, pitch, 100)
                cents, at_period, at_half = _period(note, pitch, TINY.sample_rate, TINY.hold)
                assert abs(cents) < 40 and at_period > 0.5 and at_period > at_half + 0.2, \
                    (name, variant.settings, pitch, cents, at_period, at_half)


def _partials_db(note: np.ndarray, pitch: int, rate: int) -> float:
    """Power above 2.5 times the key's frequency against the power around it (dB)."""
    power, freqs, f0 = _spectrum(note, pitch, rate)
    return float(10 * np.log10(power[freqs > 2.5 * f0].sum()
                               / power[(freqs > 0.5 * f0) & (freqs < 1.5 * f0)].sum()))


def test_fm_vocal_formants_fade_up_the_keyboard(monkeypatch):
    """The sung designs' formant partials rise with the key (fixed ratios); keyboard level
    scaling fades them on high keys: at the top of the vocal range they are well below the
    same voice without scaling, and at its bottom (below every break point) they are not."""
    needs("dexed")
    low, high = 48, 84

    def partials(inst):  # a renderer of its own: one loads an instrument's patch only once
        render = fm.renderer(TINY)
        return {p: _partials_db(render(inst, p, 100), p, TINY.sample_rate) for p in (low, high)}
    for inst in synth_instruments("dexed", per_family=2, families=["vocal"]):
        scaled = partials(inst)
        with monkeypatch.context() as m:
            m.setattr(fmvoices, "fade_above", lambda break_point, depth: dx7.FLAT)
            flat = partials(inst)
        assert scaled[high] < flat[high] - 10, (inst.prototype, scaled, flat)
        assert abs(scaled[low] - flat[low]) < 1, (inst.prototype, scaled, flat)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_tiny_render(engine, tmp_path):
    needs(engine)
    counts = render_synth(tmp_path / "a", engines=[engine], per_family=3, families=QUICK,
                          options=TINY, progress=False)
    assert set(counts) == {"train", "valid", "test"}
    instruments, by_family = {}, {}
    for split, n in counts.items():
        usable, problems = read_split(tmp_path / "a" / split)
        assert len(usable) == n > 0 and problems == []
        instruments[split] = {e.instrument for e, _ in usable}
        assert {e.instrument_family_str for e, _ in usable} == set(QUICK)  # each family
        entries = json.loads((tmp_path / "a" / split / "examples.json").read_text())
        for name, entry in entries.items():
            assert FIELDS <= set(entry) and entry["note_str"] == name
            assert entry["instrument_family_str"] == FAMILIES[entry["instrument_family"]]
            assert name.startswith(f"{entry['instrument_family_str']}_synthetic_{engine}")
            assert entry["instrument_str"] == name.rsplit("-", 2)[0]
            assert entry["instrument_source_str"] == "synthetic"
            assert len(entry["qualities"]) == len(QUALITIES)
            audio, rate = sf.read(tmp_path / "a" / split / "audio" / f"{name}.wav")
            assert rate == 16000 and audio.shape == (16000,)
            assert np.abs(audio).max() == pytest.approx(0.9 * (100 / 127) ** 2, abs=1e-3)
            by_family.setdefault(entry["instrument_family_str"], []).append(audio)
    splits = list(instruments.values())
    assert all(not (a & b) for i, a in enumerate(splits) for b in splits[i + 1:])
    organ, mallet = (np.mean([np.abs(np.fft.rfft(a)) for a in by_family[f]], axis=0)
                     for f in QUICK)
    assert np.corrcoef(organ, mallet)[0, 1] < 0.95  # the families do not sound alike
    render_synth(tmp_path / "b", engines=[engine], per_family=3, families=QUICK, options=TINY,
                 progress=False)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")  # the same seed, the same notes
    with pytest.raises(InputError, match="holds rendered notes already"):
        render_synth(tmp_path / "a", engines=[engine], per_family=1, options=TINY,
                     progress=False)


def test_a_renderer_leaves_no_state_between_notes():
    for engine in ENGINES:
        needs(engine)
        render = importlib.import_module(ENGINES[engine]).renderer(TINY)
        first, other = synth_instruments(engine, per_family=1, families=["guitar", "reed"])
        note = render(first, 60, 100)
        render(other, 48, 50)
        assert np.array_equal(note, render(first, 60, 100)), engine


def test_without_any_engine_it_says_what_to_install(monkeypatch, tmp_path):
    for engine in ENGINES:
        monkeypatch.setitem(sys.modules, importlib.import_module(ENGINES[engine]).MODULE, None)
    assert available_engines() == []
    with pytest.raises(NeedsPackage, match=r"needs dexed-py \(the dexed engine\), dawdreamer "
                       r"\(the faust engine\): pip install 'dexed-py>=[\d.]+' "
                       r"'dawdreamer>=[\d.]+' \(timbremap's synth extra\)"):
        render_synth(tmp_path, progress=False)
    with pytest.raises(NeedsPackage, match="dexed-py"):
        fm.renderer(TINY)
    assert not tmp_path.joinpath("train").exists()


def test_with_one_engine_missing_it_renders_the_other_with_a_warning(monkeypatch, tmp_path,
                                                                     caplog):
    needs("dexed")
    monkeypatch.setitem(sys.modules, "dawdreamer", None)
    assert available_engines() == ["dexed"]
    render_synth(tmp_path / "one", per_family=3, families=["organ"], options=TINY,
                 progress=False)
    names = [p.name for p in (tmp_path / "one").rglob("*.wav")]
    assert names and all("_dexed" in n for n in names)
    assert "dawdreamer (the faust engine) not installed: rendering dexed only" in caplog.text
    with pytest.raises(NeedsPackage, match=r"needs dawdreamer \(the faust engine\)"):
        render_synth(tmp_path / "two", engines=["faust"], options=TINY, progress=False)


def test_silent_and_broken_notes_are_left_out_with_a_warning(monkeypatch, tmp_path, caplog):
    def fake_renderer(options):
        def render(instrument, pitch, velocity):
            if pitch == 36:
                return np.zeros(16000, dtype=np.float32)
            if pitch == 60:
                return np.full(16000, np.nan, dtype=np.float32)
            return np.sin(np.arange(16000) * 0.1).astype(np.float32) * 0.01
        return render
    monkeypatch.setattr(fm, "renderer", fake_renderer)
    monkeypatch.setattr("featurestore.synth._installed", lambda engine: True)
    counts = render_synth(tmp_path, engines=["dexed"], per_family=1, families=["organ"],
                          options=RenderOptions(pitch_step=24, velocities=(127,),
                                                duration=1.0, hold=0.75, fractions=(1, 0, 0)),
                          progress=False)
    usable, _ = read_split(tmp_path / "train")
    assert counts == {"train": 1} and [e.pitch for e, _ in usable] == [84]
    assert "1 note came out silent, left out" in caplog.text
    assert "1 note came out not finite, left out" in caplog.text


def test_scale_note_follows_the_velocity_curve():
    note = np.sin(np.arange(1000) * 0.1) * 7.0
    assert np.abs(scale_note(note, 127)).max() == pytest.approx(0.9)
    assert np.abs(scale_note(note, 64)).max() == pytest.approx(0.9 * (64 / 127) ** 2)
    assert np.abs(scale_note(note, 127, gain_db=6)).max() == pytest.approx(0.99)
    assert scale_note(note, 100).dtype == np.float32


def test_velocities_whose_notes_would_be_silent_are_refused_before_rendering(tmp_path):
    for options, message in [
            (RenderOptions(velocities=(1, 4, 5, 100)), r"velocities must leave a synthesised "
             r"note audible: it is scaled to a peak of 0.9 \(velocity / 127\)\^2, below -60 "
             r"dBFS \(silence\) for 1, 4; give 5 or more"),
            (RenderOptions(velocities=(30, 100), gain_db=-40),
             "with gain_db -40, .* for 30; give 43 or more"),
            (RenderOptions(velocities=(127,), gain_db=-80), "for 127; raise gain_db")]:
        with pytest.raises(InputError, match=message):
            render_synth(tmp_path / "out", options=options, progress=False)
        assert not (tmp_path / "out").exists()


def test_the_command_renders_the_engines_asked_for(tmp_path, capsys):
    from analysis.cli import main
    needs("dexed")
    main(["render", "--synth", str(tmp_path / "notes"), "--engines", "dexed", "--per-family",
          "3", "--pitch-step", "36", "--velocities", "100", "-q"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["train", "valid", "test"]
    assert all(re.fullmatch(r"\w+: \d+ notes of \d+ instruments -> .+", line) for line in lines)
    for split in ("train", "valid", "test"):
        usable, _ = read_split(tmp_path / "notes" / split)
        assert usable and all("_dexed" in e.instrument_str for e, _ in usable)


def test_faust_renders_in_a_process_that_imported_tensorflow_first():
    """The demo and a test session import TensorFlow before dawdreamer (a segmentation fault
    without :func:`featurestore.faust.load`)."""
    import subprocess
    needs("faust")
    code = ("import tensorflow\n"
            "from featurestore import faust\n"
            "from featurestore.render import RenderOptions\n"
            "from featurestore.synth import available_engines, synth_instruments\n"
            "assert 'faust' in available_engines()\n"
            "render = faust.renderer(RenderOptions(duration=0.5, hold=0.25))\n"
            "note = render(synth_instruments('faust', per_family=1, families=['organ'])[0], "
            "60, 100)\n"
            "print(note.shape, float(abs(note).max()) > 0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["(8000,)", "True"]
