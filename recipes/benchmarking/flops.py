"""Training-step FLOPs counted from a model's layer shapes, and the machine's matmul rate.

Only convolutions and dense layers are counted (batch norm, activations, pooling and the
loss's elementwise work are a few per cent of a ResNet's multiply-adds). One multiply-add
(MAC) is 2 FLOPs. The backward pass is counted as twice the forward (the input gradient
and the weight gradient are each one product as large as the forward one), so a training
step is **3 × its forward FLOPs**.
"""

import time

BACKWARD_FACTOR = 2  # backward ≈ input gradient + weight gradient ≈ 2 × forward


def conv2d_macs(kernel_shape, output_shape):
    """Multiply-adds of one image through a 2-D convolution.

    Args:
        kernel_shape: `(kh, kw, in_channels_per_group, out_channels)` (Keras layout).
        output_shape: `(height, width, ...)` of the output feature map, or
            `(batch, height, width, channels)`.

    Returns:
        int.

    Example:
    >>> conv2d_macs((3, 3, 16, 32), (8, 8))  # 3·3·16 MACs per output value, 8·8·32 values
    294912
    """
    kh, kw, cin, cout = (int(d) for d in kernel_shape)
    height, width = (int(d) for d in (output_shape[1:3] if len(output_shape) == 4 else output_shape[:2]))
    return kh * kw * cin * cout * height * width


def dense_macs(kernel_shape):
    """Multiply-adds of one sample through a dense layer with a `(in, out)` kernel.

    Example:
    >>> dense_macs((512, 2048))
    1048576
    """
    fan_in, fan_out = (int(d) for d in kernel_shape)
    return fan_in * fan_out


def keras_forward_macs(model):
    """Multiply-adds of one sample's forward pass: every `Conv2D` and `Dense` inside `model`.

    Args:
        model: a built Keras model whose layers have been called on symbolic inputs
            (functional and built `Sequential` models).

    Returns:
        int.
    """
    import keras

    from keras_barlow import _compat

    layers = _compat.flatten_layers(model)
    total = 0
    for layer in layers:
        if isinstance(layer, keras.layers.Conv2D):
            if layer.data_format == "channels_first":
                output_shape = tuple(layer.output.shape)
                output_shape = (output_shape[0], *output_shape[2:], output_shape[1])
            else:
                output_shape = tuple(layer.output.shape)
            if None in output_shape[1:3]:
                raise ValueError(
                    f"layer {layer.name!r} has output shape {output_shape}: give the model a fixed "
                    "image size to count its FLOPs"
                )
            total += conv2d_macs(layer.kernel.shape, output_shape)
        elif isinstance(layer, keras.layers.Dense):
            total += dense_macs(layer.kernel.shape)
    return total


def barlow_twins_step_flops(encoder_macs, projector_macs, *, batch_size, embedding_dim):
    """FLOPs of one Barlow Twins training step (both views, forward and backward).

    Args:
        encoder_macs: multiply-adds of one image through the encoder.
        projector_macs: multiply-adds of one feature vector through the projector.
        batch_size: image pairs per step.
        embedding_dim: the projector's output size `D` (`C` is `D × D`).

    Returns:
        float: `3 × (2 views · N · 2 · (encoder + projector MACs) + 2 · N · D²)`.

    Example:
    >>> barlow_twins_step_flops(1000, 10, batch_size=4, embedding_dim=2)
    48576.0
    """
    per_view = 2.0 * batch_size * (encoder_macs + projector_macs)
    correlation = 2.0 * batch_size * embedding_dim**2
    return (1 + BACKWARD_FACTOR) * (2 * per_view + correlation)


def matmul_flops_per_second(matmul, n=2048, repeats=5, clock=time.perf_counter, products=1):
    """The best rate of `repeats` calls of `products` `n × n` by `n × n` products.

    Args:
        matmul: a callable that computes the products (in the run's precision) and
            returns when they are finished.
        n: the matrices' side.
        repeats: timed calls (after one untimed warm-up call).
        clock: the timer (seconds).
        products: products per call.

    Returns:
        float: `products · 2 n³ / fastest call` in FLOP/s.
    """
    matmul()
    fastest = float("inf")
    for _ in range(repeats):
        start = clock()
        matmul()
        fastest = min(fastest, clock() - start)
    return products * 2.0 * n**3 / fastest


def tensorflow_matmul(n=2048, products=1, dtype="float32"):
    """A callable computing `products` independent `n × n` products of `dtype` in TensorFlow,
    in one `tf.function` (so that they run at the same time on the inter-op threads)."""
    import tensorflow as tf

    pairs = [
        tuple(tf.cast(tf.random.stateless_normal((n, n), seed=(i, j)), dtype) for j in (1, 2))
        for i in range(products)
    ]
    compute = tf.function(lambda: [tf.linalg.matmul(a, b) for a, b in pairs])
    return lambda: [product.numpy() for product in compute()]


def jax_matmul(n=2048, dtype="float32"):
    """A callable computing one `n × n` product of `dtype` in JAX (`jax.jit`)."""
    import jax

    a = jax.random.normal(jax.random.key(0), (n, n), dtype=dtype)
    product = jax.jit(lambda x: x @ x)
    return lambda: product(a).block_until_ready()
