"""The projector between the encoder's pooled features and the loss.

Also `unsynchronized_batchnorm`, which keeps the training-time `synchronized` flag of
batch norms out of saved configs.
"""

import contextlib
import numbers
import re

import keras

# The official PyTorch code uses BatchNorm1d defaults: eps 1e-5 and momentum 0.1, which is
# Keras momentum 0.9. Keras' own defaults (1e-3, 0.99) measurably drift from it: 5 LARS steps
# next to the official code gave a loss off by 7.7e-4 relative with Keras' defaults, 3.1e-7
# with these.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def check_projector_dims(dims):
    """Validates projector layer sizes and returns them as a tuple of ints.

    Args:
        dims: a list or tuple of positive integer sizes, e.g. `(8192, 8192, 8192)`.

    Returns:
        `tuple` of `int`.

    Raises:
        ValueError: for a string, a single number, an empty list, or a size that is not a
            positive integer (a fractional size would otherwise be truncated silently).

    Example:
    >>> check_projector_dims([512, 256.0])
    (512, 256)
    >>> check_projector_dims("512")
    Traceback (most recent call last):
    ...
    ValueError: projector_dims must be a tuple of integer layer sizes, got the string '512'; write (512,)
    """
    if isinstance(dims, str):
        sizes = re.findall(r"\d+", dims)
        example = f"({', '.join(sizes)}{',' if len(sizes) == 1 else ''})" if sizes else "(8192, 8192, 8192)"
        raise ValueError(
            f"projector_dims must be a tuple of integer layer sizes, got the string {dims!r}; write {example}"
        )
    if isinstance(dims, numbers.Number):
        raise ValueError(
            f"projector_dims must be a tuple of integer layer sizes, got the single number {dims!r}; "
            f"write ({dims!r},) for one layer"
        )
    dims = tuple(dims)
    for dim in dims:
        is_integral = isinstance(dim, numbers.Integral) or (
            isinstance(dim, numbers.Real) and float(dim).is_integer()
        )
        if isinstance(dim, bool) or not is_integral:
            raise ValueError(f"projector_dims must hold layer sizes, got {dims!r}: {dim!r} is not an integer")
    dims = tuple(int(d) for d in dims)
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"projector_dims must be a non-empty list of positive sizes, got {dims}")
    return dims


def build_projector(dims, *, input_dim=None, name="projector"):
    """Builds the projector of the paper.

    Every hidden block is `Dense(use_bias=False) → BatchNormalization → ReLU`, the last
    layer is a `Dense(use_bias=False)` alone, as in the official implementation.

    Args:
        dims: output sizes of the layers, e.g. `(8192, 8192, 8192)`; at least one.
        input_dim: size of the encoder features; when given, the projector is built.
        name: the model's name.

    Returns:
        A `keras.Sequential` mapping `(batch, input_dim)` to `(batch, dims[-1])`.

    Example:
    >>> projector = build_projector((64, 32), input_dim=16)
    >>> [layer.name for layer in projector.layers]
    ['dense_0', 'bn_0', 'relu_0', 'dense_1']
    >>> projector.output_shape
    (None, 32)
    """
    dims = check_projector_dims(dims)
    layers = []
    for i, dim in enumerate(dims[:-1]):
        layers += [
            keras.layers.Dense(dim, use_bias=False, name=f"dense_{i}"),
            keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"bn_{i}"),
            keras.layers.ReLU(name=f"relu_{i}"),
        ]
    layers.append(keras.layers.Dense(dims[-1], use_bias=False, name=f"dense_{len(dims) - 1}"))
    projector = keras.Sequential(layers, name=name)
    if input_dim is not None:
        projector.build((None, int(input_dim)))
    return projector


@contextlib.contextmanager
def unsynchronized_batchnorm(layers):
    """Clears `synchronized` on batch norms while their configs are written.

    Training on several TF replicas switches it on (see `trainers/tensorflow.py`); saved
    configs must not carry it, or the JAX backend could not load them.

    Args:
        layers: layers; the `BatchNormalization` ones with `synchronized=True` are
            switched off inside the block and back on after it.

    Example (TensorFlow backend: Keras refuses `synchronized=True` on the others):

    ```python
    bn = keras.layers.BatchNormalization(synchronized=True)
    with unsynchronized_batchnorm([bn]):
        assert bn.get_config()["synchronized"] is False
    assert bn.synchronized
    ```
    """
    layers = [
        layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization) and layer.synchronized
    ]
    for layer in layers:
        layer.synchronized = False
    try:
        yield
    finally:
        for layer in layers:
            layer.synchronized = True
