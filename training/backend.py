"""What training needs from the Keras backend in use: TensorFlow by default, JAX or PyTorch
with ``KERAS_BACKEND=jax`` / ``torch`` (set before anything imports Keras).

The models, their augmentation layers and the input pipeline are written in ``keras.ops`` and
``keras.utils.PyDataset`` and run unchanged on any of them; a ``.keras`` file saved by one
loads in the others. What differs is here: making kernels deterministic, finding the GPUs, and
spreading a batch over several of them.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import List

__all__ = ["name", "gpus", "replicas", "make_deterministic", "data_parallel", "precision",
           "out_of_memory", "import_tensorflow_quietly", "check_installed", "requested",
           "keras_home"]

log = logging.getLogger(__name__)


def keras_home() -> Path:
    """The folder of Keras's ``keras.json``, found as Keras finds it: ``KERAS_HOME``, else
    ``~/.keras``, else ``/tmp/.keras`` where the home folder is not writable."""
    if "KERAS_HOME" in os.environ:
        return Path(os.path.expanduser(os.environ["KERAS_HOME"]))
    home = os.path.expanduser("~")  # never raises, as Path.expanduser does without a home
    return Path(home if os.access(home, os.W_OK) else "/tmp", ".keras")


def requested() -> str:
    """The backend Keras will use, found as Keras finds it, without importing it:
    ``KERAS_BACKEND``, else the ``backend`` of Keras's ``keras.json`` (in :func:`keras_home`),
    else tensorflow."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    try:
        return json.loads((keras_home() / "keras.json").read_text())["backend"] or "tensorflow"
    except (OSError, ValueError, KeyError, TypeError):  # none, or not what Keras writes
        return "tensorflow"


def check_installed():
    """Raise :class:`~featurestore.errors.NeedsPackage` where ``KERAS_BACKEND`` names a backend
    whose package is not installed, and :class:`~featurestore.errors.InputError` where it names
    none timbremap runs on: Keras would end in a traceback as it is imported, or, under its
    numpy and openvino backends, which cannot train, in the middle of a command."""
    from featurestore.errors import InputError, NeedsPackage, install_hint
    backend = requested()
    if backend not in ("tensorflow", "jax", "torch"):
        what = ("a backend of Keras's that cannot train" if backend in ("numpy", "openvino")
                else "not one of Keras's backends")
        raise InputError(f"KERAS_BACKEND={backend}: {what} (timbremap runs on tensorflow, jax, "
                         f"torch; unset, tensorflow)")
    if importlib.util.find_spec(backend) is None:
        how = (install_hint(name="tensorflow") if backend == "tensorflow" else
               install_hint("jax") if backend == "jax" else "pip install torch")
        raise NeedsPackage(f"KERAS_BACKEND={backend}: {backend} is not installed ({how})")


def name() -> str:
    """``'tensorflow'``, ``'jax'`` or ``'torch'``."""
    import keras
    return keras.backend.backend()


def gpus() -> List[str]:
    """The GPUs the backend sees, by name."""
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf
        return [d.name for d in tf.config.list_logical_devices("GPU")]
    if backend == "jax":
        import jax
        return [str(d) for d in jax.devices() if d.platform == "gpu"]
    if backend == "torch":
        import torch
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return []


def _parallel_devices() -> List[str]:
    """The devices a batch is split over: every GPU; without one, the CPU's logical devices
    where more than one were configured (TensorFlow only: how tests run the parallel path)."""
    devices = gpus()
    if not devices and name() == "tensorflow":
        import tensorflow as tf
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    return devices if len(devices) > 1 and name() in ("tensorflow", "jax") else []


def replicas() -> int:
    """How many devices each batch is split over (1: no data parallelism)."""
    return max(1, len(_parallel_devices()))


@contextlib.contextmanager
def precision(mode: str = "auto"):
    """A scope for building a model: mixed float16 (float32 variables, float16 arithmetic)
    for ``mode='mixed'``, and for ``'auto'`` when a GPU is present; float32 otherwise. Layers
    that must stay exact (the gain, the normalisation, the output and so the loss) are float32
    in any case."""
    import keras
    previous = keras.config.dtype_policy()
    if mode == "mixed" or (mode == "auto" and gpus()):
        keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def make_deterministic():
    """Ask the backend for kernels that give the same bits on every run (with the seeds
    ``keras.utils.set_random_seed`` sets). On a CPU, JAX's are already; on a GPU JAX needs
    ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` in the environment before it starts."""
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif backend == "jax" and gpus() and "xla_gpu_deterministic_ops" not in os.environ.get(
            "XLA_FLAGS", ""):
        log.warning("JAX on a GPU: set XLA_FLAGS=--xla_gpu_deterministic_ops=true before "
                    "starting for a run that repeats bit for bit")


@contextlib.contextmanager
def data_parallel():
    """A scope in which a model is built and trained with each batch split over
    :func:`replicas` devices (TensorFlow's ``MirroredStrategy``, JAX's
    ``keras.distribution.DataParallel``); with one device, or with PyTorch, the model runs
    where it is. Batches given to training are global: ``replicas()`` times the batch size
    each device computes."""
    backend, devices = name(), _parallel_devices()
    if backend == "tensorflow":
        import tensorflow as tf
        strategy = (tf.distribute.MirroredStrategy(devices) if devices
                    else tf.distribute.get_strategy())
        with strategy.scope():
            yield
        return
    if backend == "jax" and devices:
        import keras
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel())
        try:
            yield
        finally:
            keras.distribution.set_distribution(previous)
        return
    yield


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says the machine or the device ran out of memory: numpy's
    :class:`MemoryError`, TensorFlow's ``ResourceExhaustedError``, PyTorch's
    ``OutOfMemoryError``, XLA's ``RESOURCE_EXHAUSTED``."""
    return isinstance(err, MemoryError) or type(err).__name__ in (
        "ResourceExhaustedError", "OutOfMemoryError") or "RESOURCE_EXHAUSTED" in str(err)


#: TensorFlow's start-up lines on stderr that say nothing to a user, whatever
#: TF_CPP_MIN_LOG_LEVEL says: two printed as it is imported, and one printed the first time a
#: float16 tensor is cast on a CPU whose AVX-512 lacks float16 (a store's spectra are float16).
_BANNERS = re.compile(rb"All log messages before absl::InitializeLog\(\) is called are written "
                      rb"to STDERR|port\.cc:\d+\] oneDNN custom operations are on|"
                      rb"util\.cc:\d+\] oneDNN supports DT_HALF only on platforms with")


def import_tensorflow_quietly(*, any_backend: bool = False):
    """Import TensorFlow, where it is Keras's backend and not imported yet, with its start-up
    banners (:data:`_BANNERS`) left out of stderr; anything else it writes there is passed
    on. The banners come from C++ before any logging is set up, so they are taken from the
    file descriptor while the import runs, and while a float16 tensor is cast once
    (TensorFlow says what its CPU kernels lack for float16 the first time, then never again).
    That cast starts TensorFlow's runtime: a caller who configures its devices
    (``tf.config.set_visible_devices``, memory growth) imports TensorFlow and does so first,
    and then nothing here runs.

    ``any_backend`` imports it, where it is installed, under any backend too, without the
    cast: for what imports it whatever the backend (Keras's ``set_random_seed``). Keras and
    its backend are imported first: TensorFlow imported before PyTorch's triton ends the
    process in a segmentation fault."""
    is_backend = requested() == "tensorflow"
    if not (is_backend or any_backend) or \
            "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
        return
    if not is_backend:
        import keras  # noqa: F401 - imports its backend
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            try:
                import tensorflow
            except ImportError:  # broken beside another backend: Keras's seeding skips it too
                if is_backend:
                    raise
                return
            if is_backend:
                tensorflow.cast(tensorflow.zeros([1], tensorflow.float16), tensorflow.float32)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured if not _BANNERS.search(line)]
            sys.stderr.buffer.write(b"".join(kept))
            sys.stderr.flush()
