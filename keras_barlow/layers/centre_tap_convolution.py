"""Convolutions on 1×1 maps computed as the matrix product they are.

A stride-1 `"same"` convolution with an odd kernel on a 1×1 map multiplies every tap but
the centre one by padding zeros, so its output is exactly `x @ kernel[centre]` — 1/9 of a
3×3 convolution's multiply-adds, with matrix products for both gradients. ResNet's last
stage works on 1×1 maps for inputs of ≤ 32 px with the ImageNet stem, and there
TensorFlow's oneDNN convolutions spend most of the step's largest single item (the last
stage's filter gradients) on those zeros.

`BarlowTwins(..., matmul_on_1x1_maps=True)` (the default) runs its encoder inside
`centre_tap_convolutions(encoder)`: while the block is active, every plain
`keras.layers.Conv2D` of the encoder computes with `centre_tap_convolution_op`, which
takes the matrix-product path only when the map is 1×1 when traced. Leaving the block
restores the layers exactly (no attribute is left on them), so the encoder you passed in,
its config, weights and saved files are never changed; subclasses that define their own
`convolution_op` (e.g. weight standardisation) are left alone.
"""

import contextlib
import functools

import keras
from keras import ops

from keras_barlow import _compat
from keras_barlow.layers.forward_pass_overrides import overriding

_PLAIN_CONVOLUTION_OP = keras.layers.Conv2D.convolution_op


def takes_centre_tap_only(layer, input_shape):
    """Whether `layer` (a `Conv2D`) on inputs of `input_shape` only ever uses its centre tap."""
    spatial = input_shape[1:-1] if layer.data_format == "channels_last" else input_shape[2:]
    return (
        layer.padding == "same"
        and layer.groups == 1
        and all(s == 1 for s in layer.strides)
        and all(k % 2 == 1 for k in layer.kernel_size)
        and len(spatial) == 2
        and all(size == 1 for size in spatial)
    )


def centre_tap_convolution_op(layer, inputs, kernel):
    """`layer.convolution_op(inputs, kernel)`, as a matrix product on 1×1 maps.

    Args:
        layer: a `keras.layers.Conv2D`.
        inputs: its input batch.
        kernel: its kernel `(rows, cols, in, out)`.

    Returns:
        The convolution's output, exactly (up to float summation order).

    Example:
    >>> import numpy as np
    >>> conv = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)
    >>> x = np.random.default_rng(0).normal(size=(2, 1, 1, 3)).astype("float32")
    >>> _ = conv(x)
    >>> ours = keras.ops.convert_to_numpy(centre_tap_convolution_op(conv, x, conv.kernel))
    >>> bool(np.allclose(ours, keras.ops.convert_to_numpy(conv(x)), atol=1e-6))
    True
    """
    if not takes_centre_tap_only(layer, tuple(inputs.shape)):
        return _PLAIN_CONVOLUTION_OP(layer, inputs, kernel)
    rows, cols = layer.kernel_size
    channels_last = layer.data_format == "channels_last"
    channels = inputs.shape[-1] if channels_last else inputs.shape[1]
    flat = ops.matmul(ops.reshape(inputs, (-1, channels)), kernel[rows // 2, cols // 2])
    return ops.reshape(flat, (-1, 1, 1, layer.filters) if channels_last else (-1, layer.filters, 1, 1))


def plain_convolutions(model):
    """The `keras.layers.Conv2D` layers of `model` (nested ones too) that use Keras' own `convolution_op`.

    Args:
        model: a Keras layer or model.

    Returns:
        A list of layers.
    """
    if not isinstance(model, keras.layers.Layer):
        return []
    return [
        layer
        for layer in [model, *_compat.flatten_layers(model)]
        if isinstance(layer, keras.layers.Conv2D) and type(layer).convolution_op is _PLAIN_CONVOLUTION_OP
    ]


@contextlib.contextmanager
def centre_tap_convolutions(model):
    """A block in which the plain `Conv2D` layers of `model` compute 1×1 maps as matrix products.

    Inside the block each such layer uses `centre_tap_convolution_op`; on leaving it the
    layers are exactly as before (`vars(layer)` unchanged). Traced functions (`fit`'s step,
    `predict`) keep the computation they were traced with.

    Args:
        model: a Keras layer or model.

    Yields:
        The names of the layers that compute this way inside the block.

    Example:
    >>> import numpy as np
    >>> inputs = keras.Input((1, 1, 3))
    >>> model = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same", name="c")(inputs))
    >>> before = dict(vars(model.layers[1]))
    >>> with centre_tap_convolutions(model) as names:
    ...     _ = model(np.ones((2, 1, 1, 3), "float32"))
    >>> names, vars(model.layers[1]) == before
    (['c'], True)
    """
    layers = plain_convolutions(model)
    with overriding(
        layers, "convolution_op", lambda layer: functools.partial(centre_tap_convolution_op, layer)
    ) as names:
        yield names
