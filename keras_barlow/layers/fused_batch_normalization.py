"""Batch norm of image feature maps through TensorFlow's fused kernel.

Keras 3's `BatchNormalization` computes its moments, the normalisation and their gradients as
a chain of separate tensor operations, in float32 even for bfloat16 / float16 inputs, so the
activations are cast and read several times in each direction. TensorFlow's
`FusedBatchNormV3` (oneDNN on CPUs, cuDNN on GPUs) does the same computation — float32
statistics, input-dtype output — in one pass forward and one backward. In a bfloat16
ResNet-50 step on a CPU with AMX, the unfused batch norm took 60 % of the op time and the
convolutions 21 %.

`BarlowTwins(..., fused_batchnorm=...)` runs its encoder inside
`fused_batch_normalizations(encoder)`: while the block is active, every plain
`keras.layers.BatchNormalization` of the encoder that normalises the last axis of 4-D maps
computes with `fused_batch_normalization_call`. It keeps Keras' semantics exactly: batch
statistics in training (biased variance in the moving average, Keras' momentum), the moving
statistics otherwise, `center` / `scale`, `trainable=False`. Layers it cannot serve in one
kernel (masks, renorm, other axes, `synchronized=True` across replicas, the JAX backend) keep
Keras' own `call`. Leaving the block restores the layers exactly (no attribute is left on
them), so the encoder's config, weights and saved files never change.
"""

import contextlib
import functools

import keras

from keras_barlow.layers.forward_pass_overrides import layers_with_own, overriding

_PLAIN_CALL = keras.layers.BatchNormalization.call


def fuses(layer, inputs, mask=None):
    """Whether `fused_batch_normalization_call` serves `layer` on `inputs` in one fused kernel.

    Args:
        layer: a `keras.layers.BatchNormalization`.
        inputs: its input batch.
        mask: the call's mask.

    Returns:
        `True` on the TensorFlow backend for 4-D inputs normalised over their last axis, without
        mask, renorm or cross-replica synchronisation.
    """
    rank = len(inputs.shape)
    return (
        keras.backend.backend() == "tensorflow"
        and mask is None
        and rank == 4
        and layer.axis in (-1, rank - 1)
        and not layer.renorm
        and not layer.synchronized
    )


def fused_batch_normalization_call(layer, inputs, training=None, mask=None):
    """`layer.call(inputs, training, mask)` through TensorFlow's `FusedBatchNormV3`.

    Args:
        layer: a `keras.layers.BatchNormalization`.
        inputs: its input batch (float32, bfloat16 or float16).
        training: batch statistics (and moving-average updates) when true and the layer is
            trainable; the moving statistics otherwise.
        mask: as for Keras' `call`; a mask takes Keras' own path.

    Returns:
        The normalised batch in the layer's compute dtype: Keras' result up to float rounding.

    Example:
    >>> import numpy as np
    >>> layer = keras.layers.BatchNormalization()
    >>> x = np.random.default_rng(0).normal(2.0, 3.0, size=(4, 5, 5, 3)).astype("float32")
    >>> _ = layer(x)
    >>> fused = keras.ops.convert_to_numpy(fused_batch_normalization_call(layer, x, training=True))
    >>> bool(np.allclose(fused, keras.ops.convert_to_numpy(layer(x, training=True)), atol=1e-5))
    True
    """
    if not fuses(layer, inputs, mask):
        return _PLAIN_CALL(layer, inputs, training=training, mask=mask)
    import tensorflow as tf

    channels = inputs.shape[-1]
    scale = tf.cast(layer.gamma, tf.float32) if layer.scale else tf.ones((channels,), tf.float32)
    offset = tf.cast(layer.beta, tf.float32) if layer.center else tf.zeros((channels,), tf.float32)
    batch_statistics = bool(training) and layer.trainable
    if batch_statistics:
        empty = tf.constant([], tf.float32)
        outputs, mean, unbiased_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=scale, offset=offset, mean=empty, variance=empty,
            epsilon=layer.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=True,
        )  # fmt: skip
        # The kernel returns the variance with Bessel's correction n / max(n - 1, 1);
        # Keras' moving average takes the biased one.
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
        variance = unbiased_variance * (tf.maximum(count - 1.0, 1.0) / count)
        momentum = layer.momentum
        layer.moving_mean.assign(tf.cast(layer.moving_mean, tf.float32) * momentum + mean * (1.0 - momentum))
        layer.moving_variance.assign(
            tf.cast(layer.moving_variance, tf.float32) * momentum + variance * (1.0 - momentum)
        )
    else:
        outputs, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=scale, offset=offset,
            mean=tf.cast(layer.moving_mean, tf.float32), variance=tf.cast(layer.moving_variance, tf.float32),
            epsilon=layer.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=False,
        )  # fmt: skip
    return tf.cast(outputs, layer.compute_dtype)


def plain_batch_normalizations(model):
    """The `keras.layers.BatchNormalization` layers of `model` (nested ones too) with Keras' own `call`.

    Args:
        model: a Keras layer or model.

    Returns:
        A list of layers.
    """
    return layers_with_own(model, keras.layers.BatchNormalization, "call")


@contextlib.contextmanager
def fused_batch_normalizations(model):
    """A block in which the plain `BatchNormalization` layers of `model` use the fused kernel.

    Inside the block each such layer computes with `fused_batch_normalization_call` (which
    falls back to Keras' own `call` where it cannot fuse); on leaving it the layers are exactly
    as before (`vars(layer)` unchanged). Traced functions (`fit`'s step, `predict`) keep the
    computation they were traced with.

    Args:
        model: a Keras layer or model.

    Yields:
        The names of the layers that compute this way inside the block.

    Example:
    >>> import numpy as np
    >>> inputs = keras.Input((3, 3, 2))
    >>> model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(inputs))
    >>> before = dict(vars(model.layers[1]))
    >>> with fused_batch_normalizations(model) as names:
    ...     _ = model(np.ones((2, 3, 3, 2), "float32"), training=True)
    >>> names, vars(model.layers[1]) == before
    (['bn'], True)
    """
    layers = plain_batch_normalizations(model)
    with overriding(
        layers, "call", lambda layer: functools.partial(fused_batch_normalization_call, layer)
    ) as names:
        yield names
