"""The Barlow Twins projector: Linear → BN → ReLU blocks, then a last Linear."""

import keras

# The official PyTorch code uses BatchNorm1d defaults: eps 1e-5 and momentum 0.1, which is
# Keras momentum 0.9. Keras' own defaults (1e-3, 0.99) measurably drift from it (NOTES §11).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


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
    >>> projector = build_projector((2048, 2048, 2048), input_dim=512)
    >>> projector.output_shape
    (None, 2048)
    """
    dims = tuple(int(d) for d in dims)
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"projector_dims must be a non-empty list of positive sizes, got {dims}")
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
