"""A pretrained music tagger's features on the cross-bank protocol: does a network that learnt
from a great deal of recorded music hear OPL-3's families better than one trained on the
protocol's banks alone?

    pip install --no-deps musicnn==0.1.0
    python benchmarks/pretrained.py --workdir bench-out/quality

The features are musicnn's (Pons and Serra 2019; ISC licence): its MagnaTagATune model
(``MTT_musicnn``, shipped in the wheel as a TensorFlow 1 checkpoint), fed the first 3 s of each
note on musicnn's scale (96 mel bands of a 512-point STFT, hop 256, ``log10(1 + 10000 m)``;
musicnn also rounds the bands to float16 first), and max- and mean-pooled over time at the
input of its back-end: the front-end's 561 channels and the mid-end's 3 x 64, 1,506 values a
note. A logistic regression (standardised features, classes weighed equally) learns the
families from the protocol's train split; its regularisation ``C`` is chosen on the selection
split, and the reported banks are printed beside it. Reads the first form's stores that
``benchmarks/quality.py`` left in --workdir (run it first) and the audio files they were built
from.

Then, with the chosen ``C`` and no choice made: OPL-3's families learnt from OPL-3's own other
programs, five folds by program (every note of a program in one fold).
"""
from __future__ import annotations

import argparse
import os
import shlex
import importlib.util
from pathlib import Path

import numpy as np

#: musicnn's input: 3 s of 16 kHz audio, as its models were trained.
SAMPLE_RATE, N_FFT, HOP, N_MELS, FRAMES = 16000, 512, 256, 96, 187
#: The splits read: (name, store in --workdir, split); the first trains, the second chooses.
SPLITS = (("train", "store", "train"), ("selection", "store", "valid"),
          ("OPL-3", "store", "test"), ("Merlin (unheard)", "store-test-merlin", "test"))


class Tagger:
    """musicnn's model as a frozen TensorFlow graph: ``tagger(x)`` maps log-mel patches
    ``(B, 187, 96)`` to the pooled features ``(B, 1506)``, each channel's max then its mean
    (``[max_0, mean_0, max_1, mean_1, ...]``).

    The wheel holds a TensorFlow 1 checkpoint whose meta graph (training ops included) today's
    TensorFlow does not import; the inference subgraph is taken out of it and each variable
    replaced by its checkpoint value.

    Parameters
    ----------
    model : str
        A model folder of the musicnn package (``MTT_musicnn``, ``MSD_musicnn``).
    """

    INPUT, TRAINING, POOLED = "model/Placeholder:0", "model/Placeholder_2:0", "model/concat_2"

    def __init__(self, *, model: str = "MTT_musicnn"):
        import tensorflow as tf
        from tensorflow.core.protobuf import meta_graph_pb2
        spec = importlib.util.find_spec("musicnn")
        if spec is None:
            raise ImportError("musicnn is not installed: pip install --no-deps musicnn==0.1.0")
        prefix = str(Path(spec.origin).parent / model) + "/"
        meta = meta_graph_pb2.MetaGraphDef()
        meta.ParseFromString(Path(prefix, ".meta").read_bytes())
        needed = tf.compat.v1.graph_util.extract_sub_graph(meta.graph_def, [self.POOLED])
        values = tf.compat.v1.train.NewCheckpointReader(prefix)
        frozen = tf.compat.v1.GraphDef()
        frozen.versions.CopyFrom(meta.graph_def.versions)
        for node in needed.node:
            node.attr.pop("_output_shapes", None)  # the old graph's; today's ops disagree
            if node.op in ("VariableV2", "Variable"):
                const = frozen.node.add(name=node.name, op="Const")
                const.attr["dtype"].type = node.attr["dtype"].type
                const.attr["value"].tensor.CopyFrom(
                    tf.make_tensor_proto(values.get_tensor(node.name)))
            else:
                frozen.node.append(node)
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(frozen, name="")
        self.session = tf.compat.v1.Session(graph=graph)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run(self.POOLED + ":0", {self.INPUT: x, self.TRAINING: False})
        return out.reshape(len(x), -1)

    def close(self):
        self.session.close()


def log_mel(path: Path, offset: float = 0.0) -> np.ndarray:
    """musicnn's input for the note starting ``offset`` seconds into ``path``.

    Returns
    -------
    np.ndarray, float32, shape ``(187, 96)``
        Its first :data:`FRAMES` frames, zero-padded when the note is shorter.
    """
    import librosa
    y, _ = librosa.load(path, sr=SAMPLE_RATE, offset=offset, duration=FRAMES * HOP / SAMPLE_RATE)
    mel = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP,
                                         n_mels=N_MELS).T[:FRAMES]
    mel = np.log10(1 + 10000 * mel)
    return np.pad(mel, ((0, FRAMES - len(mel)), (0, 0))).astype(np.float32)


def notes(split_file: Path):
    """Where each note of a split is and what it is.

    Returns
    -------
    paths : list of pathlib.Path, ``N``
        The audio file each note was built from (``/source_folder`` and ``/file``).
    offsets : np.ndarray, float64, shape ``(N,)``
        Where each note starts in its file, seconds.
    families : np.ndarray of str, shape ``(N,)``
    instruments : np.ndarray, shape ``(N,)``
        Instrument ids (a SoundFont's program).
    """
    import h5py
    from featurestore import schema
    with h5py.File(split_file, "r") as f:
        paths = schema.read_audio_paths(f)
        offsets = f[schema.OFFSET][:]
        families = np.asarray(schema.read_label_names(f))[f[schema.LABELS][:]]
        instruments = f[schema.INSTRUMENT][:]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{split_file}: {len(missing)} of its {len(paths)} notes' audio "
                                f"files are missing, {missing[0]} first")
    return paths, offsets, families, instruments


def features(tagger: Tagger, paths, offsets, *, batch_size: int = 64) -> np.ndarray:
    """Pooled musicnn features of every note, float32 ``(N, 1506)``."""
    from tqdm import tqdm
    out = []
    for start in tqdm(range(0, len(paths), batch_size), unit="batch", leave=False):
        part = slice(start, start + batch_size)
        out.append(tagger(np.stack([log_mel(p, o) for p, o in zip(paths[part], offsets[part])])))
    return np.concatenate(out)


def classifier(C: float):
    """Standardised features and a logistic regression weighing the classes equally."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(),
                         LogisticRegression(C=C, max_iter=2000, class_weight="balanced"))


def main(argv=None):
    """Features of every split, the classifier for each ``C``, then OPL-3 by folds."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--workdir", type=Path, default=Path("bench-out/quality"))
    parser.add_argument("--C", type=float, nargs="+",
                        default=[0.001, 0.01, 0.1, 1.0, 10.0, 100.0],
                        help="regularisation strengths tried (chosen on the selection split)")
    args = parser.parse_args(argv)
    found = {}  # every split and its audio checked before minutes of features
    for name, store, split in SPLITS:
        path = args.workdir / store / f"{split}.h5"
        if not path.is_file():
            raise SystemExit(f"{path}: missing; run benchmarks/quality.py first")
        found[name] = (path, notes(path))
    try:
        tagger = Tagger()
    except ImportError as err:
        raise SystemExit(str(err))
    print(f"musicnn's features of each split's notes, a logistic regression learnt from "
          f"{found['train'][0]}; {os.cpu_count()} cores\n", flush=True)
    data = {}
    for name, (path, (paths, offsets, families, instruments)) in found.items():
        data[name] = (features(tagger, paths, offsets), families, instruments)
        print(f"{name}: {len(paths)} notes ({path})", flush=True)
    tagger.close()

    x, y, _ = data["train"]
    scored = [name for name, *_ in SPLITS[1:]]
    print("\n| C | " + " | ".join(scored) + " |\n|---:|" + "---:|" * len(scored))
    best = None
    for C in args.C:
        model = classifier(C).fit(x, y)
        acc = {n: float(np.mean(model.predict(data[n][0]) == data[n][1])) for n in scored}
        print(f"| {C:g} | " + " | ".join(f"{acc[n]:.3f}" for n in scored) + " |", flush=True)
        if best is None or acc["selection"] > best[1]["selection"]:
            best = (C, acc)
    print(f"\nchosen on the selection split: C = {best[0]:g}: "
          + ", ".join(f"{n} {a:.3f}" for n, a in best[1].items()))

    from sklearn.model_selection import GroupKFold, cross_val_predict
    x, y, groups = data["OPL-3"]
    predicted = cross_val_predict(classifier(best[0]), x, y, groups=groups, cv=GroupKFold(5))
    print(f"OPL-3 learnt from its own other programs (5 folds by program, "
          f"{len(np.unique(groups))} programs): {np.mean(predicted == y):.3f}")
    for family in np.unique(y):
        print(f"  {family}: recall {np.mean(predicted[y == family] == family):.2f}")
    print(f"\nrerun: python benchmarks/pretrained.py --workdir "
          f"{shlex.quote(str(args.workdir))} --C " + " ".join(f"{C:g}" for C in args.C))


if __name__ == "__main__":
    main()
