"""timbremap on a user's own recordings, used as a user would: the ``timbremap`` command in
subprocesses, on sounds written here (1 to 30 s, mono and stereo, 16, 22.05 and 44.1 kHz, WAV
and FLAC, labels of their own). Class folders whose splits are drawn by player (``--group-by``)
go through build -> inspect -> train -> evaluate -> predict -> embed -> tsne -> plot -> map; a
CSV manifest with a metadata column and bad rows is cut into clips (``--windows``), trained on,
evaluated by recording and predicted as a timeline; ``build --add`` grows a store under a
model; and bad command lines are one line each. Building and inspecting are in the unit tier;
whatever trains or loads a model is in the full tier."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
QUICK = ("--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8", "--width", "8", "-q")
#: TensorFlow's C++ start-up lines, which it writes to stderr before any of our code runs.
TF_CHATTER = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} )")

#: Each label's sound: a fundamental (Hz) and a number of harmonics, held for the whole file
#: (a slow tremolo, never silent), so every clip of a long recording sounds like its label.
SOUNDS = {"cello": (196.0, 6), "dog_bark": (740.0, 1), "kettle": (2600.0, 2),
          "bassoon": (110.0, 4), "siren": (880.0, 1), "tabla": (150.0, 3),
          "whistle": (2000.0, 1)}
FOLDER_LABELS = ("cello", "dog_bark", "kettle")
GROUP_BY = r"^(p\d+)_"
DRAWN = ("--group-by", GROUP_BY, "--valid-fraction", "0.25", "--test-fraction", "0.25")


def timbremap(*args, ok: bool = True) -> subprocess.CompletedProcess:
    """``timbremap ARGS...`` in a subprocess; with ``ok``, it must exit 0."""
    result = subprocess.run([sys.executable, "-m", "analysis.cli", *map(str, args)], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    if ok:
        assert result.returncode == 0, f"timbremap {' '.join(map(str, args))}:\n{result.stderr}"
    return result


def messages(stderr: str) -> list:
    """Our lines of stderr (TensorFlow's start-up chatter left out)."""
    return [line for line in stderr.splitlines() if line and not TF_CHATTER.match(line)]


def one_error(result: subprocess.CompletedProcess) -> str:
    """The one error line a failed command gave (exit 1, nothing else, no traceback)."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = messages(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("timbremap: error: "), result.stderr
    assert result.stdout == ""
    return lines[0][len("timbremap: error: "):]


def sound(label: str, seconds: float, sr: int = 16000, channels: int = 1,
          seed: int = 0) -> np.ndarray:
    f0, harmonics = SOUNDS[label]
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    f = f0 * (1 + 0.01 * rng.standard_normal())
    y = sum(np.sin(2 * np.pi * f * h * t) / h for h in range(1, harmonics + 1) if f * h < sr / 2)
    y = 0.3 * y / np.abs(y).max() * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t) ** 2)
    y = y.astype(np.float32)
    return np.stack([y, 0.8 * y], axis=1) if channels == 2 else y


def write(path: Path, label: str, seconds: float, sr: int = 16000, channels: int = 1,
          seed: int = 0, audio: np.ndarray = None) -> Path:
    """A sound file (WAV or FLAC by its suffix, 16-bit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, sound(label, seconds, sr, channels, seed) if audio is None else audio, sr,
             subtype="PCM_16")
    return path


def label_names(f: h5py.File) -> list:
    return [str(n) for n in f["labels"].attrs["names"]]


def text(f: h5py.File, name: str) -> list:
    return f[name].asstr()[:].tolist()


# ---- class folders: ROOT/LABEL/FILE, splits drawn by player ----

#: Players and the split their hash draws with --valid-fraction 0.25 --test-fraction 0.25
#: (checked below: a change in how splits are drawn shows here first).
PLAYERS = {"p01": "test", "p02": "valid", "p03": "valid", "p04": "train", "p05": "test",
           "p10": "train", "p11": "train", "p12": "train", "p13": "train", "p14": "train"}
LENGTHS = (1.0, 2.5, 4.0, 6.0, 9.0, 3.0, 1.5, 5.0)


def write_folders(root: Path) -> dict:
    """One take of each label by each player (two 30 s takes, some stereo, some FLAC, 16,
    22.05 and 44.1 kHz), a second cello take by p04; ``{note name: (player, seconds, sr,
    channels)}``."""
    files, n = {}, 0
    for i, player in enumerate(PLAYERS):
        for k, label in enumerate(FOLDER_LABELS):
            takes = 2 if (player, label) == ("p04", "cello") else 1
            for take in range(1, takes + 1):
                seconds = 30.0 if (i, k, take) in ((3, 0, 1), (6, 2, 1)) \
                    else LENGTHS[(i + k + take) % len(LENGTHS)]
                sr = (16000, 22050, 44100)[(i + 2 * k + take) % 3]
                channels = 2 if (i + k) % 4 == 0 else 1
                ext = "flac" if (3 * i + k) % 5 == 0 else "wav"
                name = f"{label}/{player}_take{take}.{ext}"
                write(root / name, label, seconds, sr, channels, seed=n)
                files[name] = (player, seconds, sr, channels)
                n += 1
    return files


@pytest.fixture(scope="module")
def folder_set(tmp_path_factory):
    """``(root, files, store, build's stdout)``: class folders built into a store by the CLI."""
    base = tmp_path_factory.mktemp("own_folders")
    files = write_folders(base / "sounds")
    result = timbremap("build", base / "sounds", base / "store", *DRAWN, "--jobs", "2", "-q")
    return base / "sounds", files, base / "store", result.stdout


@pytest.fixture(scope="module")
def folder_model(folder_set):
    root, files, store, _ = folder_set
    model = store.parent / "model"
    timbremap("train", store, model, *QUICK)
    return model


def test_class_folders_become_a_store_of_their_own_labels(folder_set):
    root, files, store, stdout = folder_set
    counts = {}
    groups = {}
    for split in ("train", "valid", "test"):
        assert re.search(rf"^{split}\s+built\s+\d+\s+0\s", stdout, re.M), stdout
        with h5py.File(store / f"{split}.h5", "r") as f:
            assert label_names(f) == list(FOLDER_LABELS)  # the store's own label set, sorted
            names = text(f, "names")
            labels = [label_names(f)[k] for k in f["labels"][:]]
            assert labels == [name.split("/")[0] for name in names]  # LABEL/FILE
            assert f["spectra"].shape[1:] == (251, 513)
            # every note's group is its player, and a player's takes are all in one split
            group = text(f, "group")
            assert group == [Path(name).name.split("_")[0] for name in names]
            groups[split] = set(group)
            assert all(PLAYERS[g] == split for g in group), (split, group)
            adjusted = dict(f["adjusted"].asstr()[:].tolist())
            counts[split] = {label: labels.count(label) for label in FOLDER_LABELS}
            for name in names:
                player, seconds, sr, channels = files[name]
                what = adjusted.get(name, "")
                assert ("downmixed 2 channels" in what) == (channels == 2), (name, what)
                assert (f"resampled {sr} Hz -> 16000 Hz" in what) == (sr != 16000), (name, what)
                if seconds > 4:
                    assert f"trimmed {seconds:.3f} s -> 4.000 s" in what, (name, what)
    assert sorted(n for names in groups.values() for n in names) == sorted(PLAYERS)
    assert not (groups["train"] & groups["valid"] or groups["train"] & groups["test"]
                or groups["valid"] & groups["test"])
    assert sum(sum(c.values()) for c in counts.values()) == len(files)

    out = timbremap("inspect", store).stdout
    for split, count in counts.items():
        section = out.split(f"== {split}: ", 1)[1].split("\n== ", 1)[0]
        assert "  labels    " + "  ".join(f"{k} {v}" for k, v in count.items()) in section
        assert re.search(r"^  inputs    .*\blayout=folders\b", section, re.M), section
        assert f"group_by={GROUP_BY}" in section
        players = sum(1 for p in PLAYERS.values() if p == split)
        assert re.search(rf"notes +{sum(count.values())} from {sum(count.values())} files in "
                         rf"{players} groups", section), section
        assert "  skipped   0" in section


@pytest.mark.full
def test_class_folders_train_evaluate_predict_embed_and_map(folder_set, folder_model, tmp_path):
    root, files, store, _ = folder_set
    model = folder_model
    assert json.loads((model / "config.json").read_text())["labels"] == list(FOLDER_LABELS)

    result = timbremap("evaluate", store, os.path.relpath(model, REPO), "--split", "valid",
                       "--json")  # the model's folder as a relative path
    assert "changed since" not in result.stderr
    scores = json.loads(result.stdout)
    assert scores["model"] == str(model.resolve())  # the paths absolute alike
    assert scores["confusion_png"] == str(model.resolve() / "confusion_valid.png")
    with h5py.File(store / "valid.h5", "r") as f:
        assert scores["labels"] == label_names(f) == list(FOLDER_LABELS)
        assert scores["n"] == len(f["names"])
    assert list(scores["per_family"]) == list(FOLDER_LABELS)
    assert np.array(scores["confusion"]).shape == (3, 3)
    assert scores["per_file"] == {} and scores["store_changed"] == []  # one clip a file
    assert 0 <= scores["accuracy"] <= 1

    # a stereo 44.1 kHz FLAC, a 30 s WAV, and a file of no split, by their paths
    wanted = [root / "cello" / "p04_take1.wav",
              next(root / n for n, (_, _, sr, ch) in files.items()
                   if n.endswith(".flac") and sr == 44100 and ch == 2),
              write(tmp_path / "new recording.flac", "kettle", 12.0, 22050, 2)]
    assert files["cello/p04_take1.wav"][1] == 30.0
    out = timbremap("predict", model, *wanted, "--top", "2").stdout.splitlines()
    assert len(out) == len(wanted)
    for line, path in zip(out, wanted):
        assert line.startswith(f"{path}: "), line
        answer = line[len(f"{path}: "):].split("  (")[0]
        top = [item.rsplit(" ", 1) for item in answer.split(", ")]
        assert len(top) == 2 and {name for name, _ in top} <= set(FOLDER_LABELS), line
        assert float(top[0][1]) >= float(top[1][1])
    assert "downmixed 2 channels; resampled 22050 Hz -> 16000 Hz" in out[2]
    # a folder stands for the audio files below it, in sorted order
    below = sorted(p for p in (root / "cello").rglob("*") if p.suffix in (".wav", ".flac"))
    out = timbremap("predict", model, root / "cello", "--top", "1").stdout.splitlines()
    assert [line.split(": ", 1)[0] for line in out] == [str(p) for p in below]
    (tmp_path / "no audio").mkdir()
    result = timbremap("predict", model, wanted[0], tmp_path / "no audio", ok=False)
    assert one_error(result).startswith(f"{tmp_path / 'no audio'}: a folder with no audio "
                                        f"file below it")  # refused before any work

    out = timbremap("embed", store, model, "-q").stdout
    assert "labels: (cello, dog_bark, kettle)" in out
    with h5py.File(store / "train.h5", "r") as f:
        n_train = len(f["names"])
        assert f["embeddings"].shape[0] == n_train
        assert f["probabilities"].shape == (n_train, 3)
        assert [str(n) for n in f["probabilities"].attrs["names"]] == list(FOLDER_LABELS)

    out = timbremap("tsne", store, "--split", "train", "--perplexity", "3").stdout
    assert out.startswith(f"train: /tsne ({n_train}, 2)"), out
    with h5py.File(store / "train.h5", "r") as f:
        assert f["tsne"].shape == (n_train, 2) and np.isfinite(f["tsne"][:]).all()

    png = tmp_path / "map.png"
    assert timbremap("plot", store, png).stdout.strip() == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    page = Path(timbremap("map", store, tmp_path / "map").stdout.strip())
    assert page == tmp_path / "map" / "index.html"
    data = json.loads(page.read_text().split("const DATA = ", 1)[1].split(";\n", 1)[0])
    assert data["families"] == list(FOLDER_LABELS) and len(data["colors"]) == 3
    assert list(data["splits"]) == ["train"]  # the splits with a map
    train = data["splits"]["train"]
    with h5py.File(store / "train.h5", "r") as f:
        assert train["name"] == text(f, "names")
        assert train["family"] == f["labels"][:].tolist()
    for name, link in zip(train["name"], train["audio"]):  # click to listen: the file itself
        file, _, clip = link.partition("#")  # the clip a note kept of a longer recording
        assert (page.parent / file).resolve() == (root / name).resolve()
        assert clip in ("", "t=0,4")


# ---- a CSV manifest, cut into clips ----

#: ``(path, label, split, group, mic, seconds, sample rate, channels)``
MANIFEST = [
    ("audio/siren_a.wav", "siren", "train", "take0", "far", 10.0, 16000, 1),
    ("audio/siren_b.flac", "siren", "train", "take1", "near", 6.0, 22050, 2),
    ("audio/siren_c.wav", "siren", "train", "take2", "far", 3.0, 44100, 1),
    ("audio/siren_d.wav", "siren", "valid", "take3", "near", 7.0, 16000, 1),
    ("audio/tabla_a.wav", "tabla", "train", "take0", "far", 9.0, 44100, 2),
    ("audio/tabla_b.flac", "tabla", "train", "take1", "near", 1.5, 16000, 1),
    ("audio/tabla_c.wav", "tabla", "train", "take2", "far", 5.0, 22050, 1),
    ("audio/tabla_d.flac", "tabla", "valid", "take3", "near", 8.0, 16000, 1),
    ("audio/whistle_a.wav", "whistle", "train", "take0", "far", 8.0, 16000, 1),
    ("audio/whistle_b.wav", "whistle", "train", "take1", "near", 4.0, 22050, 1),
    ("audio/whistle_c.wav", "whistle", "train", "", "far", 2.0, 16000, 2),
    ("audio/whistle_d.wav", "whistle", "valid", "take3", "near", 6.0, 44100, 1),
]
#: A 12 s recording silent from 4 to 8 s: its clip at 4 s is all zeros.
GAP = ("audio/tabla_gap.wav", "tabla", "train", "", "near")
#: Rows that cannot be used, and the reason each is given in /skipped.
BAD_ROWS = [
    ("audio/missing.wav,cowbell,train,,far", "no such file"),
    ("audio/unlabelled.wav,,train,,far", "empty label"),
    ("audio/odd_split.wav,gong,holdout,,near", "unknown split 'holdout'"),
]


def gap_recording(seed: int = 50) -> np.ndarray:
    y = sound("tabla", 12.0, seed=seed)
    y[4 * 16000:8 * 16000] = 0
    return y


@pytest.fixture(scope="module")
def manifest_set(tmp_path_factory):
    """``(manifest, store, build's stdout)``: a manifest built into a store by the CLI, each
    recording cut into clips 2 s apart."""
    base = tmp_path_factory.mktemp("own_manifest")
    root = base / "recordings"
    lines = ["path,label,split,group,mic"]
    for i, (path, label, split, group, mic, seconds, sr, channels) in enumerate(MANIFEST):
        write(root / path, label, seconds, sr, channels, seed=100 + i)
        lines.append(f"{path},{label},{split},{group},{mic}")
    write(root / GAP[0], "tabla", 12.0, audio=gap_recording())
    lines.append(",".join(GAP))
    write(root / "audio" / "unlabelled.wav", "siren", 3.0)
    write(root / "audio" / "odd_split.wav", "whistle", 3.0)
    lines += [row for row, _ in BAD_ROWS]
    manifest = root / "sounds.csv"
    manifest.write_text("\n".join(lines) + "\n")
    store = base / "store"
    result = timbremap("build", "--manifest", manifest, store, "--windows", "2", "-q")
    return manifest, store, result.stdout


@pytest.fixture(scope="module")
def manifest_model(manifest_set):
    manifest, store, _ = manifest_set
    model = store.parent / "model"
    timbremap("train", store, model, *QUICK)
    return model


def expected_offsets(seconds: float) -> list:
    """Clips of 4 s starting 2 s apart while they fit, and one more for the rest."""
    offsets = [0.0]
    while offsets[-1] + 4 < seconds - 1e-9:
        offsets.append(offsets[-1] + 2)
    return offsets


def test_a_manifest_with_metadata_bad_rows_and_long_recordings(manifest_set):
    manifest, store, stdout = manifest_set
    rows = {path: (label, split, group, mic, seconds)
            for path, label, split, group, mic, seconds, _, _ in MANIFEST}
    rows[GAP[0]] = (*GAP[1:], 12.0)
    skipped, held = {}, set()
    for split in ("train", "valid"):
        with h5py.File(store / f"{split}.h5", "r") as f:
            assert label_names(f) == ["siren", "tabla", "whistle"]  # not the bad rows' labels
            names, files = text(f, "names"), text(f, "file")
            offsets = f["offset"][:].tolist()
            labels = [label_names(f)[k] for k in f["labels"][:]]
            mic, group = text(f, "metadata/mic"), text(f, "group")
            for i, name in enumerate(names):
                label, want_split, want_group, want_mic, _ = rows[files[i]]
                assert name == f"{files[i]}@{offsets[i]:.3f}"
                assert (labels[i], want_split, mic[i]) == (label, split, want_mic), name
                assert group[i] == (want_group or files[i]), name
            for path in sorted(set(files)):
                got = [o for o, f_ in zip(offsets, files) if f_ == path]
                want = expected_offsets(rows[path][4])
                if path == GAP[0]:
                    want.remove(4.0)  # its silent clip: skipped, the others kept
                assert got == want, path
                held.add(path)
            skipped.update(f["skipped"].asstr()[:].tolist())
    assert held == set(rows)
    assert len(expected_offsets(10.0)) == 4 and len(expected_offsets(1.5)) == 1
    for row, reason in BAD_ROWS:
        path = row.split(",")[0]
        assert reason in skipped.pop(path), path
    assert list(skipped) == [f"{GAP[0]}@4.000"] and "silent" in skipped[f"{GAP[0]}@4.000"]
    assert re.search(r"^train\s+built\s+\d+\s+4\s", stdout, re.M), stdout
    assert "unknown split 'holdout'" in stdout

    out = timbremap("inspect", store).stdout
    assert re.search(r"^  inputs    .*\blayout=manifest\b.*\bwindows=2\.0\b", out, re.M), out
    assert re.search(r"^  metadata  /?metadata/mic$", out, re.M), out
    assert "  labels    siren 3  tabla 3  whistle 2" in out  # valid: 7, 8 and 6 s
    line = 2 + len(MANIFEST) + 1  # the header, the rows, the gap; then the bad rows
    assert f"audio/missing.wav: line {line}: no such file" in out


@pytest.mark.full
def test_windowed_manifest_train_evaluate_by_recording_and_predict_a_timeline(
        manifest_set, manifest_model, tmp_path):
    manifest, store, _ = manifest_set
    model = manifest_model
    assert json.loads((model / "config.json").read_text())["labels"] == \
        ["siren", "tabla", "whistle"]

    out = timbremap("evaluate", store, model, "--split", "valid").stdout
    with h5py.File(store / "valid.h5", "r") as f:
        n, recordings = len(f["names"]), len(set(text(f, "file")))
    assert out.startswith(f"valid split of {store}: {n} notes\n"), out
    assert re.search(r"^by recording \(its clips' probabilities averaged\): accuracy [01]\.\d{3},"
                     rf" balanced [01]\.\d{{3}} \({recordings} files\)$", out, re.M), out
    assert recordings == 3 < n

    long = write(tmp_path / "field recording.flac", "whistle", 25.0, 44100, 2, seed=7)
    gap = write(tmp_path / "gap.wav", "tabla", 12.0, audio=gap_recording(seed=51))
    result = timbremap("predict", model, long, gap, "--windows", "2", "--json", "--top", "3")
    first, second = json.loads(result.stdout)
    assert first["path"] == str(long) and second["path"] == str(gap)
    for entry, seconds in ((first, 25.0), (second, 12.0)):
        clips = entry["clips"]
        assert [c["offset"] for c in clips] == expected_offsets(seconds)
        # a clip each, the last ending with the recording: the whole of it, and no more
        assert [c["end"] for c in clips] == pytest.approx([min(c["offset"] + 4, seconds)
                                                           for c in clips])
        assert clips[0]["offset"] == 0 and clips[-1]["end"] == pytest.approx(seconds)
        assert {name for name, _ in entry["top"]} == {"siren", "tabla", "whistle"}
        answered = [c for c in clips if "error" not in c]
        mean = np.mean([[dict(c["top"])[k] for k in ("siren", "tabla", "whistle")]
                        for c in answered], axis=0)  # the file's answer: its clips' mean
        np.testing.assert_allclose([dict(entry["top"])[k] for k in ("siren", "tabla", "whistle")],
                                   mean, atol=1e-5)
    assert len(first["clips"]) == 12 and "downmixed 2 channels" in first["adjustments"]
    assert all("top" in c for c in first["clips"])
    silent = [c for c in second["clips"] if "error" in c]
    assert [c["offset"] for c in silent] == [4.0] and "silent" in silent[0]["error"]
    assert len(second["clips"]) - len(silent) == 4

    out = timbremap("predict", model, gap, "--windows", "2", "--top", "1").stdout.splitlines()
    assert out[0].startswith(f"{gap}: ") and out[0].endswith("(mean of 4 clips)"), out
    assert len(out) == 1 + 5
    assert re.fullmatch(r"\s+4\.00-8\.00 s\s+not used: silent.*", out[3]), out
    assert all(re.fullmatch(r"\s+\d+\.00-\d+\.00 s\s+(siren|tabla|whistle) [01]\.\d{3}", line)
               for line in out[1:3] + out[4:]), out


# ---- build --add: a store grows under its model ----

@pytest.mark.full
def test_build_add_grows_the_store_and_evaluate_says_what_changed(folder_set, tmp_path):
    root = shutil.copytree(folder_set[0], tmp_path / "sounds")
    store, model = tmp_path / "store", tmp_path / "model"
    timbremap("build", root, store, *DRAWN, "-q")
    timbremap("train", store, model, *QUICK)

    def held():
        out = {}
        for split in ("train", "valid", "test"):
            with h5py.File(store / f"{split}.h5", "r") as f:
                out[split] = (label_names(f), text(f, "names"),
                              [label_names(f)[k] for k in f["labels"][:]])
        return out

    # nothing new: every split kept
    out = timbremap("build", root, store, "--add", *DRAWN, "-q").stdout
    assert all(re.search(rf"^{s}\s+kept\s", out, re.M) for s in ("train", "valid", "test")), out

    # new takes of known labels (a new player, 6 s, 22.05 kHz stereo FLAC)
    before = held()
    write(root / "cello" / "p20_take1.flac", "cello", 6.0, 22050, 2, seed=200)
    write(root / "kettle" / "p20_take1.wav", "kettle", 2.0, seed=201)
    timbremap("build", root, store, "--add", *DRAWN, "-q")
    after = held()
    grown = [s for s in after if after[s][1] != before[s][1]]
    assert len(grown) == 1, grown  # a player's takes go to one split
    (split,) = grown
    labels, names, of = after[split]
    n = len(before[split][1])
    assert labels == list(FOLDER_LABELS)
    assert names[:n] == before[split][1] and of[:n] == before[split][2]  # held rows kept
    assert sorted(names[n:]) == ["cello/p20_take1.flac", "kettle/p20_take1.wav"]
    result = timbremap("evaluate", store, model, "--split", "valid", "--json")
    assert json.loads(result.stdout)["store_changed"] == [split]
    warnings = [line for line in messages(result.stderr) if "changed since the model" in line]
    assert len(warnings) == 1 and f"{store / split}.h5" in warnings[0], result.stderr

    # takes of a new label: appended to the label set of every split, the old order kept
    # (bassoon sorts first: a fresh build would put it there)
    write(root / "bassoon" / "p04_take1.wav", "bassoon", 5.0, seed=202)
    write(root / "bassoon" / "p02_take1.flac", "bassoon", 3.0, 44100, seed=203)
    result = timbremap("build", root, store, "--add", *DRAWN, "-q")
    grown = held()
    for s in ("train", "valid", "test"):
        assert grown[s][0] == [*FOLDER_LABELS, "bassoon"], s
        n = len(after[s][1])
        assert grown[s][1][:n] == after[s][1] and grown[s][2][:n] == after[s][2], s
        assert all(name.startswith("bassoon/") for name in grown[s][1][n:]), s
    assert sum(len(grown[s][1]) - len(after[s][1]) for s in grown) == 2
    out = timbremap("inspect", store).stdout
    assert re.search(r"^  labels    cello \d+  dog_bark \d+  kettle \d+  bassoon \d+$", out,
                     re.M), out

    # the model knows three labels: it scores a split without bassoon notes (the test split,
    # which no bassoon take went to) and refuses one with them, naming the label
    assert not any(name.startswith("bassoon/") for name in grown["test"][1])
    scored = json.loads(timbremap("evaluate", store, model, "--split", "test", "--json").stdout)
    assert list(scored["per_family"]) == list(FOLDER_LABELS)
    assert scored["n"] == len(grown["test"][1])
    split = next(s for s in grown if any(name.startswith("bassoon/") for name in grown[s][1]))
    error = one_error(timbremap("evaluate", store, model, "--split", split, ok=False))
    assert error == (f"{store / split}.h5 holds notes of (bassoon), which the model in "
                     f"{model} was not trained on: it knows (cello, dog_bark, kettle); a model "
                     f"scores only its labels")


# ---- bad command lines: one line each, no traceback ----

def test_bad_command_lines_are_one_line_each(tmp_path):
    write(tmp_path / "a.wav", "cello", 2.0)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na.wav,cello\n")
    error = one_error(timbremap("build", "--manifest", manifest, tmp_path / "notes",
                                tmp_path / "store", ok=False))
    assert error == f"{tmp_path / 'notes'}: with --manifest, give only the STORE folder"
    assert not (tmp_path / "store").exists()

    no_label = tmp_path / "no_label.csv"
    no_label.write_text("path,kind\na.wav,cello\n")
    error = one_error(timbremap("build", "--manifest", no_label, tmp_path / "store", ok=False))
    assert error.startswith(f"{no_label}: no label column") and "found: path, kind" in error
    assert not list((tmp_path / "store").glob("*.h5"))
    for k in range(4):  # --columns names what the manifest's columns give, for --add too
        write(tmp_path / f"b{k}.wav", ("cello", "kettle")[k % 2], 1.0)
    no_label.write_text("path,kind\n" + "".join(f"b{k}.wav,{'cf'[k % 2]}\n" for k in range(4)))
    timbremap("build", "--manifest", no_label, tmp_path / "store", "--columns", "label=kind",
              "--valid-fraction", "0", "--test-fraction", "0")
    with h5py.File(tmp_path / "store" / "train.h5") as f:
        assert f.attrs["input_columns"] == "label=kind" and f["labels"].attrs["names"].size == 2
    error = one_error(timbremap("build", "--manifest", no_label, tmp_path / "store", "--add",
                                "--columns", "label=path", ok=False))
    assert error.endswith("its inputs were read with --columns label=kind; --add reads the new "
                          "ones the same way (now --columns label=path): leave out the input "
                          "options, or give the store's")

    error = one_error(timbremap("build", "--manifest", manifest, tmp_path / "store",
                                "--windows", "0", ok=False))
    assert error.startswith("--windows: ") and "at least 0.01, got 0.0" in error

    error = one_error(timbremap("build", "--manifest", tmp_path / "none.csv", tmp_path / "store",
                                ok=False))
    assert error == f"{tmp_path / 'none.csv'}: no such file"


@pytest.mark.full
def test_predict_refuses_a_hop_that_is_no_hop(folder_set, folder_model):
    wav = folder_set[0] / "cello" / "p04_take1.wav"
    for hop in ("0", "-2", "inf", "0.001"):
        error = one_error(timbremap("predict", folder_model, wav, "--windows", hop, ok=False))
        assert error == (f"--windows: the windows' hop must be a number of seconds, at least "
                         f"0.01, got {float(hop)!r}")
