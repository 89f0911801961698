"""Convolution rates op by op, TensorFlow vs JAX on the CPU: where JAX's CPU step loses.

Times, each compiled alone (`tf.function` on TensorFlow, `jax.jit` on JAX), the forward
pass, the input gradient and the filter gradient of the 3×3 stride-1 convolutions of a
ResNet-18 with the ImageNet stem at 32 px (feature maps 8×8×64, 4×4×128, 2×2×256,
1×1×512), and the whole encoder's forward + backward pass. On JAX it also reads from the
compiled program which XLA:CPU code path each convolution took: a library kernel (YNNPACK,
XNNPACK, oneDNN), Eigen's convolution, or XLA's generic loop emitter.

Rates are *nominal*: 2 × batch × H × W × C_in × C_out × 9 FLOPs for every op, also where
"same" padding leaves kernel taps outside a 2×2 or 1×1 map (both frameworks are charged
alike, so rates compare across frameworks, not across shapes).
"""

import re
import statistics
import time

import numpy as np

# (side, channels) of the 3×3 stride-1 convolutions of ResNet-18 with the ImageNet stem
# (7×7/2 convolution + 3×3/2 max-pool) on 32-pixel images: one per stage.
RESNET18_32PX_SHAPES = ((8, 64), (4, 128), (2, 256), (1, 512))
CONV_OPS = ("forward", "input gradient", "filter gradient")
_LIBRARY_FUSIONS = {"__ynn_fusion": "YNNPACK", "__xnn_fusion": "XNNPACK", "__onednn": "oneDNN"}
_CANONICAL_DIM_LABELS = "b01f_01io->b01f"  # NHWC input, HWIO kernel, NHWC output


def conv3x3_flops(batch, side, channels):
    """Nominal FLOPs of one 3×3 stride-1 "same" convolution, `channels` → `channels`.

    Args:
        batch: images.
        side: height = width of the feature map.
        channels: input and output channels.

    Returns:
        int: 2 × batch × side² × channels² × 9 (one multiply-add = 2 FLOPs).

    Example:
    >>> conv3x3_flops(128, 4, 128) / 1e9
    0.603979776
    """
    return 2 * batch * side * side * channels * channels * 9


def xla_convolution_path(hlo_text):
    """Which XLA:CPU code path the convolutions of a compiled (optimised) HLO module take.

    Args:
        hlo_text: the optimised HLO text, e.g. `jax.jit(f).lower(*args).compile().as_text()`.

    Returns:
        str: `"YNNPACK"`, `"XNNPACK"` or `"oneDNN"` (a library fusion); `"Eigen"` (every
        convolution canonical: NHWC input, HWIO kernel, no window reversal); `"generic loop"`
        (a convolution left in another form, e.g. with its operands swapped, which XLA:CPU
        emits as plain loops); `"none"` when the module has no convolution.

    Example:
    >>> xla_convolution_path('%c = f32[8,2,2,4] convolution(%w, %x), window={size=2x2 '
    ...                      'rhs_reversal=1x1}, dim_labels=01fb_o01i->f01b')
    'generic loop'
    >>> xla_convolution_path('%c = f32[8,4,4,4] convolution(%x, %w), window={size=3x3 '
    ...                      'pad=1_1x1_1}, dim_labels=b01f_01io->b01f')
    'Eigen'
    """
    for marker, library in _LIBRARY_FUSIONS.items():
        if marker in hlo_text:
            return library
    convolutions = [line for line in hlo_text.splitlines() if re.search(r"\bconvolution\(", line)]
    if not convolutions:
        return "none"
    for line in convolutions:
        labels = re.search(r"dim_labels=([^,\s}]+)", line)
        if "rhs_reversal" in line or labels is None or labels.group(1) != _CANONICAL_DIM_LABELS:
            return "generic loop"
    return "Eigen"


def _median_seconds(fn, repeats):
    fn()  # compile / trace
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


def _jax_conv_ops(x, w, g):
    """JAX: (name, callable, XLA path) of each conv op on these arrays."""
    import jax
    from jax import lax

    def conv(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    functions = {
        "forward": (conv, (x, w)),
        "input gradient": (lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0], (x, w, g)),
        "filter gradient": (lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0], (x, w, g)),
    }
    ops = []
    for name, (function, args) in functions.items():
        compiled = jax.jit(function).lower(*args).compile()
        path = xla_convolution_path(compiled.as_text())
        ops.append((name, lambda c=compiled, a=args: c(*a).block_until_ready(), path))
    return ops


def _tensorflow_conv_ops(x, w, g):
    """TensorFlow: (name, callable, kernel library) of each conv op on these arrays."""
    import tensorflow as tf

    from keras_barlow._compat import tensorflow_onednn_enabled

    x, w, g = tf.constant(x), tf.constant(w), tf.constant(g)
    strides = [1, 1, 1, 1]
    forward = tf.function(lambda: tf.nn.conv2d(x, w, 1, "SAME"))
    input_gradient = tf.function(
        lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(x), filter=w, out_backprop=g, strides=strides, padding="SAME"
        )
    )
    filter_gradient = tf.function(
        lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=tf.shape(w), out_backprop=g, strides=strides, padding="SAME"
        )
    )
    path = "oneDNN" if tensorflow_onednn_enabled() else "Eigen"
    functions = zip(CONV_OPS, (forward, input_gradient, filter_gradient))
    return [(name, lambda f=f: f().numpy(), path) for name, f in functions]


def conv_op_rates(backend, batch=128, shapes=RESNET18_32PX_SHAPES, repeats=5, seed=0):
    """Times the forward pass and both gradients of 3×3 convolutions alone, on `backend`.

    Args:
        backend: `"tensorflow"` or `"jax"` (the framework called directly, not through Keras).
        batch: images per call.
        shapes: `(side, channels)` pairs; each convolution maps `channels` to `channels`.
        repeats: timed calls per op after one untimed call (the median is reported).
        seed: seed of the random inputs.

    Returns:
        list of dicts: `shape` ("H×W×C"), `op`, `seconds`, `gflops_per_s` (nominal) and `path`
        (the kernel library or XLA code path).
    """
    if backend not in ("tensorflow", "jax"):
        raise ValueError(f"backend must be 'tensorflow' or 'jax', got {backend!r}")
    make_ops = _jax_conv_ops if backend == "jax" else _tensorflow_conv_ops
    rng = np.random.default_rng(seed)
    rows = []
    for side, channels in shapes:
        x = rng.standard_normal((batch, side, side, channels), dtype=np.float32)
        w = 0.05 * rng.standard_normal((3, 3, channels, channels), dtype=np.float32)
        g = 0.01 * rng.standard_normal((batch, side, side, channels), dtype=np.float32)
        flops = conv3x3_flops(batch, side, channels)
        for name, call, path in make_ops(x, w, g):
            seconds = _median_seconds(call, repeats)
            rows.append(
                {
                    "shape": f"{side}×{side}×{channels}",
                    "op": name,
                    "seconds": seconds,
                    "gflops_per_s": flops / seconds / 1e9,
                    "path": path,
                }
            )
    return rows


def encoder_forward_backward_seconds(batch=128, image_size=32, repeats=3, seed=0):
    """Median seconds of one forward + backward pass of ResNet-18 (ImageNet stem), current backend.

    The loss is the mean square of the pooled features; gradients of every trainable
    weight are computed (`GradientTape` in a `tf.function` on TensorFlow, `jax.jit` of
    `jax.value_and_grad` over `stateless_call` on JAX), with batch norm in training mode.

    Args:
        batch: images per call.
        image_size: image side in pixels.
        repeats: timed calls after two untimed ones.
        seed: seed of the weights and images.

    Returns:
        float: seconds per call.
    """
    import keras

    from keras_barlow.backbones import resnet

    keras.utils.set_random_seed(seed)
    encoder = resnet(18, (image_size, image_size, 3), small_images=False)
    images = np.random.default_rng(seed).standard_normal((batch, image_size, image_size, 3))
    images = images.astype("float32")
    if keras.backend.backend() == "jax":
        import jax
        import jax.numpy as jnp

        trainable = [v.value for v in encoder.trainable_variables]
        non_trainable = [v.value for v in encoder.non_trainable_variables]

        def loss(trainable, non_trainable, x):
            features, _ = encoder.stateless_call(trainable, non_trainable, x, training=True)
            return jnp.mean(features**2)

        step = jax.jit(jax.value_and_grad(loss))
        x = jnp.asarray(images)

        def call():
            jax.block_until_ready(step(trainable, non_trainable, x))

    else:
        import tensorflow as tf

        x = tf.constant(images)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                value = tf.reduce_mean(encoder(x, training=True) ** 2)
            return tape.gradient(value, encoder.trainable_variables)

        def call():
            for gradient in step():
                gradient.numpy()

    call()
    return _median_seconds(call, repeats)


def format_conv_rates(rows_by_label):
    """A Markdown table: one row per (shape, op), one column per labelled run.

    Args:
        rows_by_label: dict label → rows of `conv_op_rates` (the same shapes and ops).

    Returns:
        str: the table; cells are nominal GFLOP/s and the code path.

    Example:
    >>> rows = [{"shape": "2×2×256", "op": "forward", "gflops_per_s": 3.61, "path": "generic loop"}]
    >>> print(format_conv_rates({"jax": rows}))
    | shape | op | jax |
    |---|---|---|
    | 2×2×256 | forward | 3.6 (generic loop) |
    """
    labels = list(rows_by_label)
    lines = ["| shape | op | " + " | ".join(labels) + " |", "|---" * (len(labels) + 2) + "|"]
    first = rows_by_label[labels[0]]
    for index, row in enumerate(first):
        cells = []
        for label in labels:
            other = rows_by_label[label][index]
            cells.append(f"{other['gflops_per_s']:.1f} ({other['path']})")
        lines.append(f"| {row['shape']} | {row['op']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
