"""The classifiers, and the augmentation layers that live inside them.

``default``: our CNN for the store's labels (NSynth's 11 families, or any label set of two or
more), built to generalise to instruments it never heard:

    spectra (frames, bins), the store's own features as stored (float16), unnormalised
    -> [train only] random gain and spectral tilt (exact in the log(1 + c*S) domain)
    -> Normalization with the store's per-bin mean and variance (saved inside the model)
    -> fixed mel-band averaging, 513 STFT bins -> ``config.bands`` (96) bands (skipped when
       the store holds that many bins or fewer, e.g. mel features; a band narrower than a
       bin, which no bin falls in, is left out): early downsampling on a log-frequency axis
    -> [train only] shift by a few bands (about a semitone each), SpecAugment masks (each at
       most a fifth of its axis, the shift a sixteenth of the bands: on small notes too)
    -> average-pool ``config.time_pool`` (4) frames -> Conv 3x3 + BN + ReLU, max-pool 2
    -> 3 x [Conv 3x3 + BN + ReLU, max-pool 2], channels doubling up to 8 x width
    -> Conv 3x3 + BN + ReLU -> global average + global max pooling
    -> Dropout -> Dense 128 ReLU ('embedding') -> Dropout -> Dense C softmax ('family'),
       one unit for each of the store's C labels

``tutorial``: the tutorial's TF1 ``tf.contrib.layers`` network rebuilt in Keras 3, the classic
two-stage CNN of the TF1 tutorials applied to the spectrogram:

    spectra -> Normalization -> Conv 5x5, 32, ReLU -> max-pool 4x4
    -> Conv 5x5, 64, ReLU -> max-pool 4x4 -> Flatten -> Dense 256 ReLU ('embedding')
    -> Dropout 0.4 -> Dense C softmax ('family')

(no batch norm, no global pooling, no augmentation, its batches balanced as the default's
are; its TF1 original pooled 2x2 and had a 1024-unit dense layer, which on 251 x 513 inputs
means 500M weights: the pools are 4x4 and the dense layer 256 wide so it trains on a CPU).

Mixup is a layer too: with it on, training fits :func:`with_mixup`'s model, the classifier
behind a :class:`Mixup` layer, so the batches stay as stored and every cast and mix runs on the
device; the classifier alone is what is saved.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from featurestore.nsynth import FAMILIES
from featurestore.params import FeatureParams

from .config import EMBEDDING_LAYER, TrainConfig

#: A SpecAugment mask of the default model is at most its axis divided by this (a fifth of the
#: bands or frames), and its frequency shift at most a sixteenth of the bands: the settings'
#: widths (12 of 96 bands, 20 of 251 frames, 2 bands) hold for notes of at least 60 bands and
#: 100 frames (the default's), and shrink on smaller notes (8 mel bands, 13 frames), which
#: they would mask whole.
MASK_DIVISOR, SHIFT_DIVISOR = 5, 16

__all__ = ["build_model", "with_mixup", "Mixup", "SpectralGain", "FrequencyShift", "SpecAugment",
           "FramePool", "EMBEDDING_LAYER"]



@keras.saving.register_keras_serializable(package="timbremap")
class SpectralGain(layers.Layer):
    """Random gain and spectral tilt per note (training only), exact for features
    ``log(1 + c * |X|**power)``: a gain ``g(f)`` on bin ``f`` maps ``v`` to
    ``log(1 + g(f)**power * (exp(v) - 1))``.

    ``g`` in dB is a level within +-``max_db`` plus a tilt within +-``tilt_db`` that rises or
    falls linearly in log-frequency from the lowest to the highest bin (brighter or darker
    renderings of the same instrument, as different sample banks and microphones give).
    """

    def __init__(self, max_db: float, power: float = 1.0, tilt_db: float = 0.0, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.max_db, self.power, self.tilt_db, self.seed = (float(max_db), float(power),
                                                            float(tilt_db), seed)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or (self.max_db <= 0 and self.tilt_db <= 0):
            return x
        batch, bins = ops.shape(x)[0], x.shape[-1]
        db = keras.random.uniform((batch, 1, 1), -self.max_db, self.max_db,
                                  seed=self.seed_generator)
        if self.tilt_db > 0:
            position = np.log1p(np.arange(bins)) / np.log1p(max(bins - 1, 1)) * 2 - 1
            tilt = keras.random.uniform((batch, 1, 1), -self.tilt_db, self.tilt_db,
                                        seed=self.seed_generator)
            db = db + tilt * ops.convert_to_tensor(position.astype("float32"))[None, None, :]
        scale = ops.power(10.0, db * (self.power / 20.0))
        return ops.log1p(scale * ops.expm1(x))

    def get_config(self):
        return {**super().get_config(), "max_db": self.max_db, "power": self.power,
                "tilt_db": self.tilt_db, "seed": self.seed}


@keras.saving.register_keras_serializable(package="timbremap")
class FrequencyShift(layers.Layer):
    """Shift each note by a random whole number of bins within +-``max_bins`` (training only);
    bins shifted in repeat the edge."""

    def __init__(self, max_bins: int, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.max_bins, self.seed = int(max_bins), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or self.max_bins <= 0:
            return x
        bins = ops.shape(x)[-1]
        shift = keras.random.randint((ops.shape(x)[0], 1), -self.max_bins, self.max_bins + 1,
                                     seed=self.seed_generator)
        index = ops.clip(ops.arange(bins)[None, :] - shift, 0, bins - 1)
        index = ops.broadcast_to(index[:, None, :], ops.shape(x))
        return ops.take_along_axis(x, ops.cast(index, "int32"), axis=2)

    def get_config(self):
        return {**super().get_config(), "max_bins": self.max_bins, "seed": self.seed}


@keras.saving.register_keras_serializable(package="timbremap")
class SpecAugment(layers.Layer):
    """SpecAugment masks (training only): ``freq_masks`` bands of up to ``freq_width`` bins and
    ``time_masks`` spans of up to ``time_width`` frames set to 0 (the mean, after
    normalisation)."""

    def __init__(self, freq_masks: int, freq_width: int, time_masks: int, time_width: int,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.freq_masks, self.freq_width = int(freq_masks), int(freq_width)
        self.time_masks, self.time_width = int(time_masks), int(time_width)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _masks(self, batch, size, count, width):
        keep = ops.ones((batch, size), dtype="bool")
        positions = ops.arange(size)[None, :]
        for _ in range(count):
            w = keras.random.randint((batch, 1), 0, min(width, size) + 1, seed=self.seed_generator)
            start = ops.floor(keras.random.uniform((batch, 1), seed=self.seed_generator)
                              * ops.cast(size - w + 1, "float32"))
            start = ops.cast(start, "int32")
            keep = ops.logical_and(keep, ops.logical_or(positions < start,
                                                        positions >= start + w))
        return keep

    def call(self, x, training=None):
        if not training:
            return x
        batch, frames, bins = ops.shape(x)[0], x.shape[1], x.shape[2]
        keep = ops.logical_and(
            self._masks(batch, bins, self.freq_masks, self.freq_width)[:, None, :],
            self._masks(batch, frames, self.time_masks, self.time_width)[:, :, None])
        return ops.where(keep, x, ops.zeros_like(x))

    def get_config(self):
        return {**super().get_config(), "freq_masks": self.freq_masks,
                "freq_width": self.freq_width, "time_masks": self.time_masks,
                "time_width": self.time_width, "seed": self.seed}


@keras.saving.register_keras_serializable(package="timbremap")
class FramePool(layers.Layer):
    """The mean of every ``size`` frames of ``(batch, frames, bins, channels)``; frames short
    of a whole window are padded half before, half after, and the windows they touch average
    the frames they hold. That is ``AveragePooling2D((size, 1), padding='same')`` under
    TensorFlow and JAX; Keras's PyTorch backend repeats the edge frames into those windows
    instead, so a model would compute another function there."""

    def __init__(self, size: int, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)

    def call(self, x):
        frames, size = x.shape[1], self.size
        windows = -(-frames // size)
        pad = windows * size - frames
        before = pad // 2
        counts = np.full(windows, size, np.float32)
        counts[0] -= before
        counts[-1] -= pad - before
        x = ops.pad(x, [[0, 0], [before, pad - before], [0, 0], [0, 0]])
        sums = ops.sum(ops.reshape(x, (-1, windows, size) + tuple(x.shape[2:])), axis=2)
        return sums / ops.cast(counts[None, :, None, None], sums.dtype)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


@keras.saving.register_keras_serializable(package="timbremap")
class Mixup(layers.Layer):
    """Mixup (training only): note ``2k`` becomes ``w * x[2k] + (1 - w) * x[2k + 1]`` with its
    own weight ``w`` from ``mix``, and note ``2k + 1`` the other way round; the labels are mixed
    alike by :class:`training.data.StoreBatches`. Partners are neighbours so that a batch split
    over devices keeps its pairs; the notes of a training batch are independent random draws,
    so a neighbour is as random a partner as any. Outside training, ``spectra`` pass as they
    are (cast to the layer's dtype)."""

    def call(self, spectra, mix, training=None):
        x = ops.cast(spectra, self.compute_dtype)
        if not training:
            return x
        pairs = ops.flip(ops.reshape(x, (-1, 2) + tuple(x.shape[1:])), axis=1)
        weight = ops.reshape(ops.cast(mix, x.dtype), (-1,) + (1,) * (len(x.shape) - 1))
        return weight * x + (1 - weight) * ops.reshape(pairs, ops.shape(x))


def with_mixup(classifier: keras.Model) -> keras.Model:
    """The model training fits when mixup is on: inputs ``{'spectra': (B, frames, bins),
    'mix': (B,)}`` -> :class:`Mixup` -> ``classifier``, whose weights it shares. ``B`` must be
    even (notes are mixed in pairs)."""
    spectra = keras.Input(shape=classifier.input_shape[1:], dtype=classifier.inputs[0].dtype,
                          name="spectra")
    mix = keras.Input(shape=(), name="mix")
    x = Mixup(name="mixup", dtype="float32")(spectra, mix)
    return keras.Model({"spectra": spectra, "mix": mix}, classifier(x),
                       name=f"{classifier.name}_mixup")


def _conv(x, channels, kernel, momentum):
    x = layers.Conv2D(channels, kernel, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=momentum)(x)
    return layers.ReLU()(x)


def band_matrix(params: FeatureParams, n_bands: int) -> np.ndarray:
    """``(bins, n_bands)`` weights averaging STFT bins into mel bands (each column sums to 1,
    but that of a band no bin falls in, narrower than a bin at a high sample rate: 0)."""
    import warnings
    import librosa
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa's of empty bands: a column of 0, said above
        bands = librosa.filters.mel(sr=params.sample_rate, n_fft=params.n_fft, n_mels=n_bands,
                                    fmin=params.fmin, fmax=params.fmax, norm=None).T
    return (bands / np.maximum(bands.sum(axis=0, keepdims=True), 1e-12)).astype(np.float32)


def build_model(config: TrainConfig, params: FeatureParams, *, mean, std,
                n_classes: int = len(FAMILIES)) -> keras.Model:
    """An uncompiled Keras model for ``config.model``.

    Parameters
    ----------
    config : TrainConfig
    params : FeatureParams
        The store's features (input shape, power for the gain augmentation, band layout).
    mean, std : np.ndarray, shape ``(bins,)``
        The store's statistics; the model normalises its own input with them.
    n_classes : int
        Units of the softmax output: the store's labels (default: NSynth's families).

    Returns
    -------
    keras.Model
        float16 ``(batch, frames, bins)`` -> float32 ``(batch, n_classes)`` probabilities.
    """
    frames, bins = params.shape
    variance = np.maximum(np.asarray(std, np.float64) ** 2, 1e-8)
    inputs = keras.Input(shape=(frames, bins), dtype="float16", name="spectra")  # as stored
    augment = config.augments()
    seed = config.seed
    x = inputs
    if augment:
        # float32 in any precision: exp() of the features overflows float16
        x = SpectralGain(config.gain_db, params.power, config.tilt_db, seed=seed,
                         name="gain", dtype="float32")(x)
    x = layers.Normalization(axis=-1, mean=np.asarray(mean, np.float64), variance=variance,
                             name="normalize", dtype="float32")(x)
    if config.model == "tutorial":
        x = layers.Reshape((frames, bins, 1))(x)
        x = layers.Conv2D(32, 5, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(4, padding="same")(x)
        x = layers.Conv2D(64, 5, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(4, padding="same")(x)
        x = layers.Flatten()(x)
        x = layers.Dense(256, activation="relu", name=EMBEDDING_LAYER)(x)
        x = layers.Dropout(0.4)(x)
    else:
        if params.kind == "stft" and bins > config.bands:
            matrix = band_matrix(params, config.bands)
            matrix = matrix[:, matrix.sum(axis=0) > 0]  # a band no bin falls in: always 0
            x = layers.Dense(matrix.shape[1], use_bias=False, trainable=False, name="bands",
                             kernel_initializer=keras.initializers.Constant(matrix))(x)
            bins = matrix.shape[1]
        if augment:  # on a small note, a shift or mask of the settings' width would wipe it
            x = FrequencyShift(min(config.shift_bins, bins // SHIFT_DIVISOR), seed=seed + 1,
                               name="shift")(x)
            x = SpecAugment(config.freq_masks, min(config.freq_mask_bins, bins // MASK_DIVISOR),
                            config.time_masks, min(config.time_mask_frames, frames // MASK_DIVISOR),
                            seed=seed + 2, name="specaugment")(x)
        x = layers.Reshape((frames, bins, 1))(x)
        x = FramePool(config.time_pool, name="time_pool")(x)
        w = config.width
        for channels in (w, 2 * w, 4 * w, 8 * w):
            x = _conv(x, channels, 3, config.bn_momentum)
            x = layers.MaxPooling2D(2, padding="same")(x)
        x = _conv(x, 8 * w, 3, config.bn_momentum)
        x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x),
                                  layers.GlobalMaxPooling2D()(x)])
        x = layers.Dropout(config.dropout)(x)
        x = layers.Dense(128, activation="relu", name=EMBEDDING_LAYER)(x)
        x = layers.Dropout(config.dropout)(x)
    # float32 whatever the policy (mixed precision on GPUs): probabilities and loss stay exact
    outputs = layers.Dense(n_classes, activation="softmax", name="family",
                           dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"timbremap_{config.model}")
