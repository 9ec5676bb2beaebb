"""Small NSynth-layout data sets made on the fly: synthetic tones with a known peak bin; and
the benchmarks as modules."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import h5py
import numpy as np
import soundfile as sf

from featurestore.nsynth import FAMILIES, Example, write_split

SR = 16000


def tone(bin_index: int, seconds: float = 4.0, n_fft: int = 1024, sr: int = SR,
         amplitude: float = 0.5, harmonics: int = 1) -> np.ndarray:
    """A decaying tone whose fundamental sits exactly on STFT bin ``bin_index``."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = bin_index * sr / n_fft
    y = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, harmonics + 1)
            if f0 * h < sr / 2)
    return (amplitude * np.exp(-t) * y).astype(np.float32)


def example(name: str, family: str, pitch: int = 60, velocity: int = 100,
            instrument: int = 0) -> Example:
    return Example(note_str=name, instrument_family=FAMILIES.index(family),
                   instrument_family_str=family, instrument=instrument,
                   instrument_str=f"{family}_synthetic_{instrument:03d}", instrument_source=2,
                   instrument_source_str="synthetic", pitch=pitch, velocity=velocity,
                   sample_rate=SR)


def write_note(split_dir: Path, name: str, audio: np.ndarray, sr: int = SR,
               subtype: str = "PCM_16"):
    (split_dir / "audio").mkdir(parents=True, exist_ok=True)
    sf.write(split_dir / "audio" / f"{name}.wav", audio, sr, subtype=subtype)


def make_tone_split(split_dir: Path, n: int, seed: int, families=FAMILIES,
                    first_instrument: int = 0) -> dict:
    """``n`` tones, family ``i % len(families)``; the bin (and harmonics) depend on the family
    so a classifier can learn them. Returns the examples by name."""
    rng = np.random.default_rng(seed)
    examples = {}
    for i in range(n):
        family = families[i % len(families)]
        k = FAMILIES.index(family)
        name = f"{family}_synthetic_{first_instrument + k:03d}-{60 + i:03d}-100"
        audio = tone(8 + 12 * k + int(rng.integers(0, 3)), harmonics=1 + k % 4,
                     amplitude=float(rng.uniform(0.2, 0.6)))
        write_note(split_dir, name, audio)
        examples[name] = example(name, family, pitch=60 + i, instrument=first_instrument + k)
    write_split(split_dir, examples)
    return examples


def make_tone_root(root: Path, n_train: int = 22, n_valid: int = 11, n_test: int = 11) -> Path:
    for split, n, seed in (("train", n_train, 0), ("valid", n_valid, 1), ("test", n_test, 2)):
        if n:
            make_tone_split(root / split, n, seed, first_instrument={"train": 0, "valid": 100,
                                                                     "test": 200}[split])
    return root


def load_benchmark(name: str):
    """``benchmarks/NAME.py`` as a module (``benchmarks/`` is not a package, and putting it on
    ``sys.path`` would let its ``tsne.py`` and ``loader.py`` shadow other modules)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def readme_block(*words: str) -> str:
    """The one ``python`` block of README.md that holds every one of ``words``."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [part.split("```", 1)[0] for part in text.split("```python\n")[1:]]
    found = [block for block in blocks if all(word in block for word in words)]
    assert len(found) == 1, f"one README block with {words}: {len(found)}"
    return found[0]


def read_in_worker(dataset, index):
    """A worker's read of ``dataset[index]``, and whether the file it read was opened by that
    worker itself (for :class:`featurestore.SplitDataset` in pools)."""
    import os
    value = dataset[index]
    return value, dataset._opened[0] == os.getpid()


def relabel_store(store: Path, names, relabel=None) -> Path:
    """Give every split file of ``store`` another label set, as a build from another layout
    would: ``/labels`` becomes ``relabel(old)`` (default ``old % len(names)``) and its attr
    ``names`` the label set ``names``. Returns ``store``."""
    import h5py
    relabel = relabel or (lambda old: old % len(names))
    for path in sorted(Path(store).glob("*.h5")):
        with h5py.File(path, "r+") as f:
            f["labels"][...] = np.asarray(relabel(f["labels"][:]), dtype=np.int32)
            f["labels"].attrs["names"] = np.array(list(names), dtype=h5py.string_dtype("utf-8"))
    return Path(store)


def kill_at_journal(proc, journal: Path, position: int, timeout: float = 60.0):
    """SIGKILL ``proc``'s process group once the build journal ``journal`` records at least
    ``position`` notes done (or after ``timeout`` seconds), and wait for it."""
    import json
    import os
    import signal
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if json.loads(journal.read_text())["position"] >= position:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=120)


def everything_in(path) -> dict:
    """Every dataset's values and attributes, and the root's attributes (each with its HDF5
    type), of an HDF5 file; the root's ``created`` time left out."""
    def attrs(obj):
        return {k: (obj.attrs.get_id(k).dtype.str, repr(v.tolist() if hasattr(v, "tolist")
                                                         else v)) for k, v in obj.attrs.items()}
    with h5py.File(path, "r") as f:
        found = {"/": attrs(f)}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                value = obj[()]
                found[name] = (obj.dtype.str, obj.shape, attrs(obj), value.tobytes()
                               if value.dtype.kind != "O" else value.tolist())
        f.visititems(visit)
    found["/"].pop("created"), found["/"].pop("computed", None)
    return found
