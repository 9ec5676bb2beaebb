"""Training, saving, loading, predicting and embedding under Keras's other backends."""
import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.full

RUN = """
import json, sys
from pathlib import Path
import keras
import numpy as np
from analysis.embed import embed_store
from training.config import TrainConfig
from training.evaluate import evaluate
from training.modeldir import load_trained
from training.predict import predict_files
from training.train import train
store, model, wav = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
config = TrainConfig(epochs=2, steps_per_epoch=3, batch_size=8, width=8, budget_minutes=None,
                     seed=1)
result = train(store, model, config, verbose=0)
(prediction,) = predict_files(model, [wav])
again = predict_files(load_trained(model), [wav])[0]
shapes = embed_store(store, model, progress=False)
print(json.dumps({"backend": keras.backend.backend(), "epochs": result.epochs,
                  "probabilities": prediction.probabilities.tolist(),
                  "reloaded": again.probabilities.tolist(),
                  "accuracy": evaluate(store, model, "test").accuracy,
                  "embeddings": {k: list(v) for k, v in shapes.items()}}))
"""


#: JAX always (make test installs it), PyTorch where it is installed.
BACKENDS = ["jax"] + (["torch"] if importlib.util.find_spec("torch") else [])


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_save_load_predict_embed_under_another_backend(backend, tone_root, tone_store,
                                                             tmp_path):
    assert importlib.util.find_spec(backend), f"{backend} missing: make test installs it"
    store = tmp_path / "store"
    shutil.copytree(tone_store, store)  # embed writes into it
    wav = next((tone_root / "test" / "audio").glob("*.wav"))
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", RUN, str(store), str(tmp_path / "m"), str(wav)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # Keras's set_random_seed imports TensorFlow on any backend: quietly
    assert "oneDNN" not in done.stderr and "absl" not in done.stderr, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["backend"] == backend and out["epochs"] == 2
    assert np.allclose(out["probabilities"], out["reloaded"], atol=1e-6)
    assert sum(out["probabilities"]) == pytest.approx(1, abs=1e-5)
    assert out["embeddings"]["test"][0] == 11 and 0 <= out["accuracy"] <= 1
    # the model file it wrote loads under TensorFlow, the default, and predicts the same
    from training.modeldir import load_trained
    from training.predict import predict_files
    ours = predict_files(load_trained(tmp_path / "m"), [wav])[0].probabilities
    assert np.allclose(ours, out["probabilities"], atol=1e-4)


def test_tensorflow_is_imported_after_another_backend():
    """TensorFlow imported before PyTorch's triton ends the process in a segmentation fault,
    with nothing said (its banners' stderr is taken while it is imported)."""
    done = subprocess.run([sys.executable, "-c", IMPORTS], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "KERAS_BACKEND": "jax"}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["jax._src", "tensorflow.python"]


#: The order in which the backend's and TensorFlow's modules begin to load (their packages'
#: names are looked up before, to see whether they are installed).
IMPORTS = """
import sys
loaded = []

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name in ("jax._src", "tensorflow.python") and name not in loaded:
            loaded.append(name)

sys.meta_path.insert(0, Watch())
from training.backend import import_tensorflow_quietly
import_tensorflow_quietly(any_backend=True)
print(*loaded)
"""


TWO_DEVICES = """
import json, sys
from pathlib import Path
import keras
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from training import backend
from training.config import TrainConfig
from training.train import train

class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        assert self.model.distribute_strategy.num_replicas_in_sync == 2
        if epoch == 0:
            raise KeyboardInterrupt

store, model = Path(sys.argv[1]), Path(sys.argv[2])
config = TrainConfig(epochs=2, steps_per_epoch=4, batch_size=4, width=8, budget_minutes=None,
                     seed=1)
try:
    train(store, model, config, verbose=0, callbacks=[Interrupt()])
except KeyboardInterrupt:
    pass
result = train(store, model, resume=True, verbose=0, callbacks=[Interrupt()])
print(json.dumps({"replicas": backend.replicas(), "epochs": result.epochs}))
"""


def test_data_parallel_training_over_two_devices_trains_and_resumes(tone_store, tmp_path):
    """The MirroredStrategy path, on two logical CPU devices: batches of 2 x 4 notes."""
    done = subprocess.run([sys.executable, "-c", TWO_DEVICES, str(tone_store), str(tmp_path / "m")],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"replicas": 2, "epochs": 2}
    with (tmp_path / "m" / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    # 11 validation notes in a batch of 16 (2 devices x 8): the 5 repeated to fill it count 0
    assert all(round(float(row["val_accuracy"]) * 11, 4).is_integer() for row in rows)
