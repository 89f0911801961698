"""Convolutions with a 1×1 map on either side, computed as the matrix products they are.

Two kinds of `Conv2D` reduce to one matrix product:

- **A 1×1 input map** under a stride-1 `"same"` convolution with an odd kernel: every tap but
  the centre one meets padding zeros, so the output is exactly `x @ kernel[centre]` — 1/9 of a
  3×3 convolution's multiply-adds.
- **A 1×1 output map** of a `"valid"` convolution (the kernel fits the input once, at its
  top-left corner, whatever the stride): the output is the flattened window times the
  flattened kernel. ResNet's first block of a stage on a 2×2 map — the explicitly padded 3×3
  stride-2 convolution and the 1×1 stride-2 shortcut — is of this kind.

ResNet's last stage works on such maps for inputs of ≤ 32 px with the ImageNet stem. There
TensorFlow's oneDNN convolutions run far below their speed on larger maps, most of all for the
filter gradients; the matrix products (and their gradients, which are matrix products too)
do not. Both are exact: the same sums, in a different order.

A third kind is a matrix product whatever the map: a **pointwise** convolution (1×1 kernel,
stride 1, channels last) is `x @ kernel` over every position. ResNet-50's bottleneck blocks
are two thirds pointwise. In bfloat16 TensorFlow's oneDNN (3.7.3, TensorFlow 2.21) computes
their filter gradient 1.5–3.2× slower than the equivalent matrix product (and the forward
pass and input gradient no faster), so `BarlowTwins(pointwise_matmul="auto")` takes the
matrix product there: bfloat16 layers, TensorFlow backend, no GPU.

`BarlowTwins(..., matmul_on_1x1_maps=True)` (the default) runs its encoder inside
`matmul_convolutions(encoder)`: while the block is active, every plain `keras.layers.Conv2D`
of the encoder computes with `matmul_convolution_op`, which takes a matrix product only for
the kinds above that the block was asked for (decided on the shapes when traced). Leaving the
block restores the layers exactly (no attribute is left on them), so the encoder you passed in,
its config, weights and saved files are never changed; subclasses that define their own
`convolution_op` (e.g. weight standardisation) are left alone.
"""

import contextlib

import keras
from keras import ops

from keras_barlow.layers.forward_pass_overrides import layers_with_own, overriding

_PLAIN_CONVOLUTION_OP = keras.layers.Conv2D.convolution_op


def _spatial(layer, input_shape):
    return input_shape[1:-1] if layer.data_format == "channels_last" else input_shape[2:]


def takes_centre_tap_only(layer, input_shape):
    """Whether `layer` (a `Conv2D`) on inputs of `input_shape` only ever uses its centre tap.

    Args:
        layer: a `keras.layers.Conv2D`.
        input_shape: the shape of its input batch.

    Returns:
        `True` for a stride-1 `"same"` convolution with an odd kernel on a 1×1 map.
    """
    spatial = _spatial(layer, input_shape)
    return (
        layer.padding == "same"
        and layer.groups == 1
        and all(s == 1 for s in layer.strides)
        and all(k % 2 == 1 for k in layer.kernel_size)
        and len(spatial) == 2
        and all(size == 1 for size in spatial)
    )


def has_one_output_position(layer, input_shape):
    """Whether `layer` (a `Conv2D`) on inputs of `input_shape` computes a 1×1 map from one window.

    Args:
        layer: a `keras.layers.Conv2D`.
        input_shape: the shape of its input batch.

    Returns:
        `True` for an undilated channels-last `"valid"` convolution whose kernel fits the input
        map exactly once (`kernel ≤ size < kernel + stride` along both axes).
    """
    spatial = _spatial(layer, input_shape)
    return (
        layer.padding == "valid"
        and layer.groups == 1
        and layer.data_format == "channels_last"
        and all(d == 1 for d in layer.dilation_rate)
        and len(spatial) == 2
        and all(
            size is not None and k <= size < k + s
            for size, k, s in zip(spatial, layer.kernel_size, layer.strides)
        )
    )


def is_pointwise(layer, input_shape):
    """Whether `layer` (a `Conv2D`) on inputs of `input_shape` is a pointwise convolution.

    Args:
        layer: a `keras.layers.Conv2D`.
        input_shape: the shape of its input batch.

    Returns:
        `True` for a channels-last 1×1 convolution with stride 1, one group and a known map
        size: `x @ kernel` at every position (padding does not matter for a 1×1 kernel).
    """
    spatial = _spatial(layer, input_shape)
    return (
        tuple(layer.kernel_size) == (1, 1)
        and tuple(layer.strides) == (1, 1)
        and layer.groups == 1
        and layer.data_format == "channels_last"
        and len(spatial) == 2
        and all(size is not None for size in spatial)
    )


def matmul_convolution_op(layer, inputs, kernel, on_1x1_maps=True, pointwise=False):
    """`layer.convolution_op(inputs, kernel)`, as a matrix product where the shapes allow it.

    Args:
        layer: a `keras.layers.Conv2D`.
        inputs: its input batch.
        kernel: its kernel `(rows, cols, in, out)`.
        on_1x1_maps: take the matrix product for a 1×1 input or output map.
        pointwise: take it for pointwise convolutions (`is_pointwise`) too.

    Returns:
        The convolution's output, exactly (up to float summation order).

    Example:
    >>> import numpy as np
    >>> conv = keras.layers.Conv2D(4, 3, strides=2, padding="valid", use_bias=False)
    >>> x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")  # one 3×3 window
    >>> _ = conv(x)
    >>> ours = keras.ops.convert_to_numpy(matmul_convolution_op(conv, x, conv.kernel))
    >>> ours.shape, bool(np.allclose(ours, keras.ops.convert_to_numpy(conv(x)), atol=1e-5))
    ((2, 1, 1, 4), True)
    """
    shape = tuple(inputs.shape)
    rows, cols = layer.kernel_size
    if on_1x1_maps and has_one_output_position(layer, shape):
        window = ops.reshape(inputs[:, :rows, :cols, :], (-1, rows * cols * shape[-1]))
        flat = ops.matmul(window, ops.reshape(kernel, (rows * cols * shape[-1], layer.filters)))
        return ops.reshape(flat, (-1, 1, 1, layer.filters))
    if on_1x1_maps and takes_centre_tap_only(layer, shape):
        channels_last = layer.data_format == "channels_last"
        channels = shape[-1] if channels_last else shape[1]
        flat = ops.matmul(ops.reshape(inputs, (-1, channels)), kernel[rows // 2, cols // 2])
        return ops.reshape(flat, (-1, 1, 1, layer.filters) if channels_last else (-1, layer.filters, 1, 1))
    if pointwise and is_pointwise(layer, shape):
        channels = shape[-1]
        flat = ops.matmul(ops.reshape(inputs, (-1, channels)), ops.reshape(kernel, (channels, layer.filters)))
        return ops.reshape(flat, (-1, shape[1], shape[2], layer.filters))
    return _PLAIN_CONVOLUTION_OP(layer, inputs, kernel)


def plain_convolutions(model):
    """The `keras.layers.Conv2D` layers of `model` (nested ones too) that use Keras' own `convolution_op`.

    Args:
        model: a Keras layer or model.

    Returns:
        A list of layers.
    """
    return layers_with_own(model, keras.layers.Conv2D, "convolution_op")


@contextlib.contextmanager
def matmul_convolutions(model, on_1x1_maps=True, pointwise=False):
    """A block in which the plain `Conv2D` layers of `model` compute 1×1 maps (and, with
    `pointwise`, pointwise convolutions) as matrix products.

    Inside the block each such layer uses `matmul_convolution_op`; on leaving it the
    layers are exactly as before (`vars(layer)` unchanged). Traced functions (`fit`'s step,
    `predict`) keep the computation they were traced with.

    Args:
        model: a Keras layer or model.
        on_1x1_maps: see `matmul_convolution_op`.
        pointwise: `True`, `False`, or a function `layer -> bool` deciding per layer when the
            block is entered (`BarlowTwins`' `"auto"`: bfloat16 layers on a CPU-only TensorFlow).

    Yields:
        The names of the layers that compute this way inside the block.

    Example:
    >>> import numpy as np
    >>> inputs = keras.Input((1, 1, 3))
    >>> model = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same", name="c")(inputs))
    >>> before = dict(vars(model.layers[1]))
    >>> with matmul_convolutions(model) as names:
    ...     _ = model(np.ones((2, 1, 1, 3), "float32"))
    >>> names, vars(model.layers[1]) == before
    (['c'], True)
    """
    decide = pointwise if callable(pointwise) else lambda layer: bool(pointwise)
    convolutions = plain_convolutions(model)
    takes_pointwise = {id(layer): decide(layer) for layer in convolutions}
    layers = [layer for layer in convolutions if on_1x1_maps or takes_pointwise[id(layer)]]

    def override(layer):
        def convolution_op(inputs, kernel):
            return matmul_convolution_op(layer, inputs, kernel, on_1x1_maps, takes_pointwise[id(layer)])

        return convolution_op

    with overriding(layers, "convolution_op", override) as names:
        yield names
