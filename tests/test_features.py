import json
import os
import re
import subprocess
import sys
from pathlib import Path

import librosa

import numpy as np
import pytest
import soundfile as sf

from featurestore import fastpaths, features
from featurestore.audio import AudioError, load_audio
from featurestore.features import compute_features, features_from_file
from featurestore.half import to_float16, to_float32
from featurestore.params import FeatureParams
from helpers import SR, tone

REPO = Path(__file__).resolve().parents[1]


def librosa_reference(y, p: FeatureParams):
    spectrum = np.abs(librosa.stft(y, n_fft=p.n_fft, hop_length=p.hop_length, window=p.window,
                                   center=p.center, pad_mode=p.pad_mode)) ** p.power
    if p.kind == "mel":
        spectrum = librosa.feature.melspectrogram(S=spectrum, sr=p.sample_rate, n_mels=p.n_mels,
                                                  fmin=p.fmin, fmax=p.fmax, power=1.0)
    return np.log1p(p.compression * spectrum.astype(np.float64)).T


def assert_within_float16_rounding(ours, reference):
    assert ours.dtype == np.float16
    reference16 = reference.astype(np.float16).astype(np.float64)
    ulp = np.spacing(np.abs(reference).astype(np.float16)).astype(np.float64)
    assert np.all(np.abs(ours.astype(np.float64) - reference16) <= ulp + 1e-12)


@pytest.mark.parametrize("params", [
    FeatureParams(),
    FeatureParams(n_fft=512, hop_length=128, window="hamming"),
    FeatureParams(center=False, power=2.0, compression=10.0),
    FeatureParams(pad_mode="reflect", duration=1.0),
    FeatureParams(n_fft=1023, hop_length=250, window="blackman"),  # odd: padded by 511 a side
    FeatureParams(kind="mel", n_mels=64),
])
def test_equals_librosa_within_float16_rounding(params):
    rng = np.random.default_rng(0)
    y = (tone(20, seconds=params.duration, harmonics=3)
         + 0.01 * rng.standard_normal(params.n_samples)).astype(np.float32)
    ours = compute_features(y, params)
    assert ours.shape == params.shape
    assert_within_float16_rounding(ours, librosa_reference(y, params))


def _note_with_silent_end(params):
    rng = np.random.default_rng(1)
    y = (tone(30, seconds=params.duration, harmonics=4)
         + 0.003 * rng.standard_normal(params.n_samples)).astype(np.float32)
    y[int(0.7 * len(y)):] = 0  # digital silence: its frames are skipped, their features 0
    return y


def test_the_kernels_compile_where_numba_may_cache_nowhere(tmp_path):
    script = """
import numba.core.caching as caching
caching.CacheImpl._locator_classes = []  # as a read-only install run with a read-only home
import numpy as np
from featurestore.features import compute_features
from featurestore.fastpaths import kernels
from featurestore.params import FeatureParams
assert kernels() is not None
assert type(kernels().log_half._cache).__name__ == "NullCache"  # the fallback, compiled here
print(compute_features(np.ones(64000, np.float32), FeatureParams()).shape)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0 and done.stdout == "(251, 513)\n", done.stderr[-2000:]


@pytest.mark.parametrize("params", [FeatureParams(), FeatureParams(power=2.0),
                                    FeatureParams(kind="mel", n_mels=64)])
def test_compiled_kernels_agree_with_numpy(params, monkeypatch):
    y = _note_with_silent_end(params)
    fast, fast_sums, fast_squares = features._features_and_sums(y, params)
    with monkeypatch.context() as m:
        m.setattr(fastpaths, "kernels", lambda: None)
        slow, slow_sums, slow_squares = features._features_and_sums(y, params)
    ulp = np.spacing(slow.astype(np.float16)).astype(np.float64)
    assert np.all(np.abs(fast.astype(np.float64) - slow.astype(np.float64)) <= ulp)
    assert np.mean(fast == slow) > 0.99  # two log implementations, rounding alike
    assert not fast[int(0.7 * params.n_frames) + 3:].any()
    for values, sums, squares in [(fast, fast_sums, fast_squares),
                                  (slow, slow_sums, slow_squares)]:
        stored = values.astype(np.float64)
        np.testing.assert_array_equal(sums, stored.sum(axis=0))  # float16 sums are exact
        np.testing.assert_allclose(squares, (stored ** 2).sum(axis=0), rtol=1e-13)


def test_blocks_of_frames_do_not_change_anything(monkeypatch):
    params = FeatureParams()
    y = _note_with_silent_end(params)
    whole = features._features_and_sums(y, params)
    monkeypatch.setattr(features, "BLOCK_FRAMES", 7)
    for ours, reference in zip(features._features_and_sums(y, params), whole):
        assert np.array_equal(ours.view(np.uint8), reference.view(np.uint8))


def test_default_shape_is_the_tutorials():
    assert FeatureParams().shape == (251, 513)
    assert FeatureParams(kind="mel", n_mels=96).shape == (251, 96)


def test_peak_bin_of_a_tone():
    features = compute_features(tone(37), FeatureParams())
    assert np.argmax(features.astype(np.float32).mean(axis=0)) == 37


def test_rejects_wrong_length_and_samples_that_are_not_finite():
    with pytest.raises(ValueError, match="64000 samples"):
        compute_features(np.zeros(100, np.float32), FeatureParams())
    y = tone(37)
    y[[5, 9]] = np.nan, np.inf
    with pytest.raises(ValueError, match="expected finite samples, got 2 NaN or infinite of "
                                         "64000"):
        compute_features(y, FeatureParams())


@pytest.mark.parametrize("bad, message", [
    (dict(kind="cqt"), "kind must be one of"),
    (dict(n_fft=0), "n_fft must be a positive integer"),
    (dict(hop_length=2.5), "hop_length must be a positive integer"),
    (dict(window="kaiser"), "window must be one of"),
    (dict(duration=0.01, center=False), "fewer than one frame"),
    (dict(duration=0.01), "fewer than one frame"),
    (dict(n_fft=16384), "8193 frequency bins is more than 8,000"),
    (dict(kind="mel", n_mels=9000), "9000 frequency bins"),
    (dict(kind="mel", fmax=9000), "fmax"),
    (dict(duration="4"), "duration must be a number, got '4'"),
    (dict(kind="mel", fmax=True), "fmax must be a number, got True"),
    (dict(duration=1e9), r"a note's features must be at most 4096 MiB: duration=1e\+09 s, "
                         r"hop_length=256 and n_fft=1024 give .* \(no store holds more"),
])
def test_params_validated(bad, message):
    with pytest.raises(ValueError, match=message):
        FeatureParams(**bad)


def test_params_take_numpy_s_numbers_and_hold_python_s():
    given = FeatureParams(n_fft=np.int64(512), hop_length=np.uint16(128),
                          duration=np.float32(2.0))  # as read from an array or h5py attrs
    assert given == FeatureParams(n_fft=512, hop_length=128, duration=2.0)
    assert type(given.n_fft) is int and type(given.duration) is float
    assert FeatureParams.from_dict(json.loads(given.to_json())) == given


def test_a_build_holds_a_note_to_16_mib_and_the_rate_to_768_khz():
    long = FeatureParams(duration=300)  # a store of such notes is read
    with pytest.raises(ValueError, match=r"a note's features must be at most 16 MiB: duration="
                                         r"300 s, hop_length=256 and n_fft=1024 give "
                                         r"\(18751, 513\), 18 MiB \(cut"):
        long.check_buildable()  # but not built any more
    for built_before, message in [  # read back from a store or a model; not built any more
            (dict(n_fft=8, duration=1), "n_fft must be at least 16 samples, got 8"),  # zeros
            (dict(hop_length=2 ** 63), "hop_length must be at most a note's 64000 samples, got "
                                       "9223372036854775808")]:
        params = FeatureParams.from_dict(json.loads(FeatureParams(**built_before).to_json()))
        with pytest.raises(ValueError, match=message):
            params.check_buildable()
    with pytest.raises(ValueError, match=r"hop_length=1 and n_fft=1024 give \(64001, 513\)"):
        FeatureParams(hop_length=1).check_buildable()  # the setting that makes it is named
    mel = FeatureParams(kind="mel", n_fft=2 ** 20, duration=66, hop_length=16000)
    with pytest.raises(ValueError, match=r"the STFT a note's mel bands are made from must be at "
                                         r"most 16 MiB as float16: n_fft=1048576"):
        mel.check_buildable()  # 16 KiB of mel bands, made from 64 MiB of STFT a note
    with pytest.raises(ValueError, match=r"n_mels must leave no band empty: \d+ of 600 bands "
                                         r"hold no STFT bin at n_fft=1024 and 16000 Hz"):
        FeatureParams(kind="mel", n_mels=600).check_buildable()
    FeatureParams(kind="mel", n_mels=128).check_buildable()
    with pytest.raises(ValueError, match="sample_rate must be at most 768000, got 10000000"):
        FeatureParams(sample_rate=10_000_000).check_buildable()
    FeatureParams(duration=100, sample_rate=768_000, hop_length=8192).check_buildable()


def test_params_roundtrip_through_attrs(tmp_path):
    import h5py
    params = FeatureParams(kind="mel", n_mels=40, fmax=6000.0, center=False)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.attrs.update(params.to_attrs())
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert FeatureParams.from_attrs(f.attrs) == params
    assert FeatureParams.from_attrs(FeatureParams().to_attrs()) == FeatureParams()


def test_differences_name_only_what_shapes_the_features():
    assert FeatureParams(n_mels=40, fmin=50.0).differences(FeatureParams()) == []  # both STFT
    assert FeatureParams(kind="mel", n_mels=40).differences(FeatureParams(kind="mel")) == [
        "n_mels: 40 != 128"]
    assert FeatureParams(hop_length=128).differences(FeatureParams()) == [
        "hop_length: 128 != 256"]
    assert FeatureParams(n_mels=40).differences(FeatureParams(kind="mel")) == [  # mixed kinds
        "kind: 'stft' != 'mel'", "n_mels: 40 != 128"]


def test_half_casts_match_numpy_bit_for_bit():
    sweep = np.arange(0, 0x477FE000, 4099, dtype=np.uint32).view(np.float32)
    ours = to_float16(sweep)
    assert np.array_equal(ours.view(np.uint16), sweep.astype(np.float16).view(np.uint16))
    back = to_float32(ours)
    assert np.array_equal(back.view(np.uint32), ours.astype(np.float32).view(np.uint32))
    odd = np.array([-1.0, np.inf, np.nan, 70000.0], np.float32)  # numpy's own cast
    np.testing.assert_array_equal(to_float16(odd), odd.astype(np.float16))


def test_load_audio_fits_files_to_params(tmp_path):
    params = FeatureParams()
    y = tone(20)
    sf.write(tmp_path / "stereo.wav", np.stack([y, y], axis=1), SR)
    sf.write(tmp_path / "hi.flac", librosa.resample(y, orig_sr=SR, target_sr=44100), 44100)
    sf.write(tmp_path / "short.wav", y[:SR], SR)
    sf.write(tmp_path / "long.wav", np.concatenate([y, y]), SR)
    sf.write(tmp_path / "exact.wav", y, SR)
    sf.write(tmp_path / "click.wav", y[SR // 4:SR // 4 + 3], SR)
    expected = {"stereo.wav": "downmixed 2 channels", "hi.flac": "resampled 44100 Hz -> 16000 Hz",
                "short.wav": "padded 1.000 s -> 4.000 s", "long.wav": "trimmed 8.000 s -> 4.000 s",
                "click.wav": "padded 3 samples -> 4.000 s"}
    for name, what in expected.items():
        audio, adjustments = load_audio(tmp_path / name, params)
        assert audio.shape == (params.n_samples,) and audio.dtype == np.float32
        assert what in adjustments, (name, adjustments)
    audio, adjustments = load_audio(tmp_path / "exact.wav", params)
    assert adjustments == []
    np.testing.assert_allclose(audio, y, atol=1 / 32768)
    resampled, _ = features_from_file(tmp_path / "hi.flac", params)
    direct = compute_features(load_audio(tmp_path / "exact.wav", params)[0], params)
    assert np.argmax(resampled.astype(np.float32).mean(0)) == np.argmax(
        direct.astype(np.float32).mean(0)) == 20


def test_a_file_named_in_no_encoding_is_read_and_its_damage_said(tmp_path):
    good = tmp_path / os.fsdecode(b"lat\xe9.flac")  # a name that is not UTF-8
    sf.write(os.fsencode(good), 0.5 * tone(37, seconds=1.0), SR, format="FLAC")
    assert load_audio(good, FeatureParams())[0].shape == (FeatureParams().n_samples,)
    bad = tmp_path / os.fsdecode(b"bad\xe9.wav")
    bad.write_bytes(b"x" * 100)
    with pytest.raises(AudioError, match="Format not recognised") as damaged:  # not 'utf-8'
        load_audio(bad, FeatureParams())
    assert str(damaged.value) == f"{bad}: cannot decode audio (Format not recognised.)"


def test_load_audio_rejects_bad_files(tmp_path):
    params = FeatureParams()
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00not really a wav at all" * 10)
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SR)
    bad = tone(10)
    bad[100] = np.nan
    sf.write(tmp_path / "nan.wav", bad, SR, subtype="FLOAT")
    (tmp_path / "zero.wav").write_bytes(b"")
    (tmp_path / "folder.wav").mkdir()
    sf.write(tmp_path / "silent.wav", np.zeros(SR), SR)
    late = np.concatenate([np.zeros(5 * SR), tone(10)])  # its sound starts after the 4 s used
    sf.write(tmp_path / "late.wav", late, SR)
    sf.write(tmp_path / "silent44k.wav", np.zeros(3 * 44100), 44100)  # all of it used
    pcm = (3000 * tone(10)).astype(np.int16)
    sf.write(tmp_path / "antiphase.wav", np.stack([pcm, -pcm], axis=1), SR, subtype="PCM_16")
    for name, reason in [("corrupt.wav", "cannot decode"), ("empty.wav", "no samples"),
                         ("nan.wav", "NaN"), ("missing.wav", "no such file"),
                         ("zero.wav", "empty file"), ("folder.wav", "is a folder"),
                         ("silent.wav", "silent: every sample is 0$"),
                         ("late.wav", "silent: every sample is 0 in the 4.000 s used"),
                         ("silent44k.wav", "silent: every sample is 0$"),
                         ("antiphase.wav", "silent once its 2 channels are mixed to one: they "
                                           "cancel out$")]:
        with pytest.raises(AudioError, match=reason) as err:
            load_audio(tmp_path / name, params)
        assert name in str(err.value)


def test_unreadable_unseekable_and_undecodable_files_say_so_with_and_without_windows(
        tmp_path, monkeypatch):
    from featurestore import audiocheck
    from featurestore.windows import audio_seconds
    params = FeatureParams()
    y = tone(40)[: 3 * SR]
    sf.write(tmp_path / "gsm.wav", librosa.resample(np.tile(y, 3), orig_sr=SR, target_sr=8000),
             8000, subtype="GSM610")  # 9 s, in an encoding libsndfile cannot seek in
    decoded = load_audio(tmp_path / "gsm.wav", params)  # the clip, though its end is unchecked
    assert len(decoded[0]) == params.n_samples
    with pytest.raises(AudioError, match=r"gsm.wav: its encoding \(GSM 6.10\) cannot be read "
                                         r"from an offset, so it cannot be cut into windows"):
        audio_seconds(tmp_path / "gsm.wav", 4.0)
    assert audio_seconds(tmp_path / "gsm.wav", 10.0) == pytest.approx(9.0, abs=0.05)  # one window
    (tmp_path / "text.wav").write_text("not audio at all " * 20)
    with pytest.raises(AudioError) as loading:
        load_audio(tmp_path / "text.wav", params)
    with pytest.raises(AudioError) as windowing:
        audio_seconds(tmp_path / "text.wav")
    assert str(loading.value) == str(windowing.value)
    assert "text.wav: cannot decode audio (" in str(windowing.value)
    (tmp_path / "text.mp3").write_text("not audio at all " * 20)  # libsndfile: "not a regular file"
    for read in (lambda p: load_audio(p, params), audio_seconds):
        with pytest.raises(AudioError, match=r"text.mp3: cannot decode audio \(.*no audio found "
                                             r"in it: damaged, or not the format its name says"):
            read(tmp_path / "text.mp3")
    monkeypatch.setattr(audiocheck.os, "access", lambda path, mode: False)  # root reads any file
    for read in (lambda p: load_audio(p, params), audio_seconds):
        with pytest.raises(AudioError, match=r"gsm.wav: cannot be read \(Permission denied\)"):
            read(tmp_path / "gsm.wav")


def _flac_claiming(path, source, total_samples):
    """A copy of the FLAC ``source`` whose STREAMINFO claims ``total_samples`` (0: unknown, as
    a FLAC streamed to a pipe says)."""
    data = bytearray(source.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first
    field = int.from_bytes(data[18:26], "big")  # rate 20 bits, channels 3, bits 5, samples 36
    field = (field & ~((1 << 36) - 1)) | total_samples
    data[18:26] = field.to_bytes(8, "big")
    path.write_bytes(bytes(data))


def test_pcm16_files_read_through_libsndfile_as_soundfile_reads_them(tmp_path, monkeypatch):
    from featurestore import audio
    params = FeatureParams()
    y = tone(20)
    sf.write(tmp_path / "exact.wav", y, SR)
    sf.write(tmp_path / "stereo.wav", np.stack([y, 0.5 * y], axis=1), SR)
    sf.write(tmp_path / "short.flac", y[:SR], SR)  # FLAC's samples are PCM_16 too
    sf.write(tmp_path / "rate.wav", y, 22050)
    sf.write(tmp_path / "float.wav", y, SR, subtype="FLOAT")  # not PCM_16: soundfile reads it
    whole = (tmp_path / "exact.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[:len(whole) // 2 + 1])  # cut in its data
    _flac_claiming(tmp_path / "unknown.flac", tmp_path / "short.flac", 0)
    _flac_claiming(tmp_path / "inflated.flac", tmp_path / "short.flac", 2 * SR)
    names = ["exact.wav", "stereo.wav", "short.flac", "rate.wav", "float.wav", "cut.wav",
             "unknown.flac", "inflated.flac"]

    def read_all():
        outcomes = {}
        for name in names:
            try:
                outcomes[name] = load_audio(tmp_path / name, params)
            except AudioError as err:  # never anything else: a build skips these and goes on
                outcomes[name] = str(err)
        return outcomes
    fast = read_all()
    with monkeypatch.context() as m:  # a soundfile without the C binding: SoundFile reads all
        m.setattr(fastpaths, "_libsndfile", lambda: None)
        slow = read_all()
    for name in names:
        if isinstance(slow[name], str):
            assert fast[name] == slow[name], name
            continue
        assert np.array_equal(fast[name][0], slow[name][0]), name
        assert fast[name][1] == slow[name][1], name
    # cut short: what its header declares is not there (one frame is 2 bytes)
    assert fast["cut.wav"].endswith("truncated: its header declares 64000 frames, the file "
                                     "holds 31989")
    assert re.search(fr"truncated or damaged: its header declares {2 * SR} frames, decoding "
                     fr"stopped after 1\d{{4}} \(", fast["inflated.flac"])  # till the decoder fails

    def no_soundfile(*args, **kwargs):
        raise AssertionError("soundfile.SoundFile used for a 16-bit file")
    monkeypatch.setattr(audio, "open_sound", no_soundfile)  # the fast path is the one taken
    for name in ["exact.wav", "stereo.wav", "short.flac", "rate.wav"]:
        assert np.array_equal(load_audio(tmp_path / name, params)[0], fast[name][0]), name
    with pytest.raises(AudioError, match="truncated"):
        load_audio(tmp_path / "cut.wav", params)
    out = np.full(params.n_samples, np.nan, np.float32)
    y_out, adjustments = load_audio(tmp_path / "exact.wav", params, out=out)
    assert y_out is out and adjustments == [] and np.array_equal(out, fast["exact.wav"][0])
    y_out, _ = load_audio(tmp_path / "stereo.wav", params, out=out)  # adjusted: copied into out
    assert y_out is out and np.array_equal(out, fast["stereo.wav"][0])
    with pytest.raises(ValueError, match="out must be float32"):
        load_audio(tmp_path / "exact.wav", params, out=np.empty(10, np.float32))


def test_fft_into_the_workspace_equals_scipys_rfft(monkeypatch):
    y = _note_with_silent_end(FeatureParams())
    direct = features._features_and_sums(y, FeatureParams())
    monkeypatch.setattr(fastpaths, "rfft_into", lambda: None)
    copied = features._features_and_sums(y, FeatureParams())
    for ours, reference in zip(copied, direct):
        assert np.array_equal(ours.view(np.uint8), reference.view(np.uint8))


def test_every_fast_path_is_taken_on_the_installed_versions(tmp_path):
    """Fails when a dependency upgrade breaks a fast path (the build would run slower)."""
    sf.write(tmp_path / "note.wav", tone(20), SR, subtype="PCM_16")
    pcm, rate, frames = fastpaths.read_pcm16(tmp_path / "note.wav", lambda sr, channels: (0, SR))
    assert pcm.dtype == np.int16 and pcm.shape == (SR, 1) and rate == SR and frames == 4 * SR
    assert fastpaths.rfft_into() is not None
    assert fastpaths.kernels() is not None


def test_a_fast_path_not_taken_says_so(monkeypatch, caplog):
    import scipy.fft._pocketfft as pocketfft
    monkeypatch.delattr(fastpaths.sf, "_snd")  # a soundfile without the binding
    monkeypatch.delattr(pocketfft, "pypocketfft")  # a scipy without it
    monkeypatch.setitem(sys.modules, "scipy.fft._pocketfft.pypocketfft", None)
    for cached in (fastpaths._libsndfile, fastpaths.rfft_into):
        cached.cache_clear()
    try:
        assert fastpaths._libsndfile() is None and fastpaths.rfft_into() is None
    finally:
        monkeypatch.undo()
        for cached in (fastpaths._libsndfile, fastpaths.rfft_into):
            cached.cache_clear()
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("'libsndfile C calls' not taken" in w and "_snd" in w for w in warned), warned
    assert any("'pocketfft into the workspace' not taken" in w for w in warned), warned


def test_features_of_files_reads_a_batch_at_a_time_in_order(tmp_path):
    from featurestore.features import features_of_files
    params = FeatureParams()
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.wav")
        sf.write(paths[-1], tone(40 + 5 * i), SR)
    paths[2].write_bytes(b"not audio")
    taken = []
    batches = features_of_files((taken.append(p) or p for p in paths), params, 2)
    first = next(batches)
    assert len(taken) == 2  # the next files are not read before the first batch is used
    read = first + [r for batch in batches for r in batch]
    assert [r.path for r in read] == paths and [len(first), len(taken)] == [2, 5]
    assert read[2].features is None and read[2].error.startswith(str(paths[2]))
    for r in read[:2] + read[3:]:
        assert r.error is None
        np.testing.assert_array_equal(r.features, features_from_file(r.path, params)[0])
    from featurestore.errors import InputError
    with pytest.raises(InputError, match="batch_size must be a positive integer, got 0"):
        features_of_files(paths, params, 0)  # at the call: it had given nothing, silently
    with pytest.raises(InputError, match="paths must be a sequence of paths, got the one"):
        features_of_files(paths[0], params, 2)
    for nothing in (None, b"a.wav", 5):  # not iterated: one error, not a TypeError within
        with pytest.raises(InputError, match=f"paths must be a sequence of paths, got "
                                             f"{re.escape(repr(nothing))}$"):
            features_of_files(nothing, params, 2)


def test_audioread_reads_and_reports_a_file_as_libsndfile_does(tmp_path, monkeypatch):
    import featurestore.audio as audio
    params = FeatureParams()
    read = {}
    for seconds in (3.0, 4.0, 6.0):  # shorter, as long as, longer than the clip
        path = tmp_path / f"{seconds}.wav"
        sf.write(path, tone(40, seconds=seconds), SR, subtype="PCM_16")
        read[seconds] = load_audio(path, params)

    def refused(*args, **kwargs):  # as for an m4a: audioread's decoders read it
        raise sf.LibsndfileError(1, "refused")
    monkeypatch.setattr(audio, "_read_blocks", refused)
    monkeypatch.setattr(fastpaths, "read_pcm16", lambda *args: None)
    unknown_length = {6.0: ["trimmed to 4.000 s (the rest not read)"]}  # not read to its end
    for seconds, (y, adjustments) in read.items():
        y_other, adjustments_other = load_audio(tmp_path / f"{seconds}.wav", params)
        np.testing.assert_array_equal(y_other, y)
        assert adjustments_other == unknown_length.get(seconds, adjustments), seconds
    assert read[6.0][1] == ["trimmed 6.000 s -> 4.000 s"] and read[4.0][1] == []


def test_audioread_clips_equal_libsndfiles(tmp_path):
    """Files libsndfile cannot open are read through audioread's decoders: the same clip."""
    from featurestore.audio import _audioread_clip, frames_needed, lead_frames
    y = np.stack([tone(40), tone(52)], axis=1)[: 3 * SR]
    sf.write(tmp_path / "stereo.wav", y, SR, subtype="PCM_16")
    expected, _ = sf.read(tmp_path / "stereo.wav", dtype="float32")
    for offset, seconds, rate in ((0.0, 1.0, SR), (0.5, 1.25, SR), (2.5, 4.0, SR),
                                  (5.0, 1.0, SR), (0.5, 1.0, 8000), (0.01, 1.0, 8000)):
        params = FeatureParams(duration=seconds, sample_rate=rate)
        got, sr, lead = _audioread_clip(tmp_path / "stereo.wav", offset, params, float("inf"))
        first = round(offset * SR)
        assert sr == SR and got.shape[1] == 2 and lead == lead_frames(first, SR, params)
        assert (lead > 0) == (rate != SR and offset > 0)  # before the clip: to resample it
        np.testing.assert_array_equal(  # and a frame more: whether the file goes on
            got, expected[first - lead:first + frames_needed(SR, params) + 1])
