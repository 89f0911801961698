"""Batched in-graph image ops: input checks, normalisation, flip, colour jitter, grayscale,
Gaussian blur and solarisation, each with its parameters drawn per image.

Every op takes a batch `(n, h, w, 3)` of float32 RGB in [0, 1] and per-image parameters, so
one call is a few vectorised TensorFlow ops (no Python loop, no `map_fn`). They follow
torchvision's definitions (which the official Barlow Twins code uses) and are tested against
NumPy references.

Why not the Keras / KerasCV layers: `RandomColorJitter` has no probability, random order or
per-image hue in torchvision's sense, `RandomGaussianBlur` draws one σ per batch, and
`RandomCrop` one window per batch; KerasCV's `RandomCropAndResize` is per image but loops
with `map_fn`. Keras layers also follow the Keras backend (JAX arrays under JAX), while a
`tf.data` pipeline needs TF ops whatever the backend.

Example:
```python
images = tf.random.uniform([8, 32, 32, 3])
seed = tf.constant([1, 2])
jittered = color_jitter(images, ViewConfig(), seed)
blurred = gaussian_blur(images, tf.fill([8], 1.5), max_sigma=2.0)
```
"""

import math

import numpy as np
import tensorflow as tf

from keras_barlow.augment.config import as_config
from keras_barlow.augment.seeds import coin, split_seed, uniform

# torchvision's rgb_to_grayscale weights (ITU-R 601-2 luma).
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def checked_images(images):
    """Checks images as `to_float_rgb` does, without converting them: the tensor, any dtype
    it accepts (uint8 or float), 1 or 3 channels. A `ValueError` says how to fix anything else."""
    if isinstance(images, (str, bytes)):
        raise ValueError("expected image pixels, got a string; decode files first (e.g. tf.io.decode_image)")
    images = tf.convert_to_tensor(images)
    if images.dtype == tf.string:
        raise ValueError(
            "expected image pixels, got a tf.string tensor (encoded files?); decode them first, "
            "e.g. tf.io.decode_image(data, channels=3, expand_animations=False)"
        )
    rank = images.shape.rank
    if rank not in (3, 4):
        raise ValueError(
            f"expected an image (height, width, channels) or a batch (batch, height, width, channels), "
            f"got shape {images.shape} (rank {rank}); add a channel axis to grey images with [..., None]"
        )
    channels = images.shape[-1]
    if channels not in (1, 3):
        hint = " (RGBA? drop alpha with images[..., :3])" if channels == 4 else ""
        raise ValueError(
            f"expected 1 (grey) or 3 (RGB) channels, got {channels} in shape {images.shape}{hint}"
        )
    if images.dtype != tf.uint8 and not images.dtype.is_floating:
        raise ValueError(
            f"expected uint8 images in [0, 255] or float images in [0, 1], got dtype {images.dtype.name}; "
            "convert them, e.g. tf.cast(images, tf.float32) / max_value"
        )
    return images


def to_float_rgb(images):
    """Checks images and returns float32 RGB in [0, 1], same rank.

    Args:
        images: uint8 in [0, 255] or floats in [0, 1]; rank 3 `(h, w, c)` or 4
            `(n, h, w, c)`; 1 channel (repeated to 3) or 3 channels.

    Returns:
        float32 RGB in [0, 1]. Anything else raises a `ValueError` saying how to convert it.
    """
    images = checked_images(images)
    channels = images.shape[-1]
    if images.dtype == tf.uint8:
        images = tf.cast(images, tf.float32) / 255.0
    else:
        images = tf.cast(images, tf.float32)
    if channels == 1:
        images = tf.repeat(images, 3, axis=-1)
    return images


def normalize(images, config):
    """`(x - mean) / std` with the config's per-channel statistics (x: RGB in [0, 1])."""
    config = as_config(config)
    return (images - tf.constant(config.mean, tf.float32)) / tf.constant(config.std, tf.float32)


def normalize_image(image, config):
    """`normalize` of one image `(h, w, c)` (static shape) as `x · (1 / std) + (-mean / std)`
    with the statistics tiled to the image's shape: same-shape element-wise ops, 1.6× faster
    on CPU than broadcasting `(c,)` vectors (equal to `normalize` to float rounding)."""
    config = as_config(config)
    height, width, _ = image.shape
    scale = [1.0 / s for s in config.std]
    shift = [-m / s for m, s in zip(config.mean, config.std)]
    tile = lambda v: tf.constant(np.tile(np.float32(v), (height, width, 1)))  # noqa: E731
    return image * tile(scale) + tile(shift)


def static_batch_size(tensor):
    """The static batch size when known (static shapes all the way: TPUs, cost models), else dynamic."""
    return tensor.shape[0] if tensor.shape[0] is not None else tf.shape(tensor)[0]


def per_image(values):
    """(n,) → (n, 1, 1, 1), to broadcast one value per image (a reshape: fewer graph ops than
    `[:, None, None, None]`, which matters for tracing time)."""
    return tf.reshape(values, [-1, 1, 1, 1])


def luma(images):
    """(…, 3) → (…, 1) luma with torchvision's weights."""
    # Three slices, not reduce_sum over the size-3 channel axis: 4-20x faster on CPU
    # (32x224x224x3: 9-46 ms vs 180-205 ms, same values; recipes/benchmark.py).
    r, g, b = GRAY_WEIGHTS
    return images[..., 0:1] * r + images[..., 1:2] * g + images[..., 2:3] * b


def random_flip(images, seed, prob):
    """Flips each image of `(n, h, w, c)` horizontally with probability `prob` (`[2]` seed)."""
    flip = coin(seed, static_batch_size(images), prob)
    return tf.where(per_image(flip), tf.reverse(images, axis=[2]), images)


def _blend(images, other, factor):
    factor = per_image(factor)
    return tf.clip_by_value(factor * images + (1.0 - factor) * other, 0.0, 1.0)


def adjust_brightness(images, factor):
    """torchvision's `adjust_brightness` with one factor per image (`(n,)`)."""
    return tf.clip_by_value(images * per_image(factor), 0.0, 1.0)


def adjust_contrast(images, factor):
    """torchvision's `adjust_contrast` (blend with the mean luma) with one factor per image."""
    mean = tf.reduce_mean(luma(images), axis=[1, 2, 3], keepdims=True)
    return _blend(images, mean, factor)


def adjust_saturation(images, factor):
    """torchvision's `adjust_saturation` (blend with the luma) with one factor per image."""
    return _blend(images, luma(images), factor)


def adjust_hue(images, delta):
    """Shifts the HSV hue by `delta` (fraction of the circle) per image, as torchvision.

    Computed without a full RGB→HSV→RGB round trip: a hue shift keeps each pixel's max and
    min, so RGB is rebuilt from (max, chroma, shifted hue) directly, channel `k` as
    `max - chroma * clip(2 - e_k, 0, 1)`, `e_k` the distance on the hue circle (of 6)
    between the shifted hue plus the channel's offset and 2. The shift and the offsets are
    wrapped once per image (scalars), so no pixel needs a modulo: equal to
    `hsv_to_rgb(rgb_to_hsv(x) + delta)` to 1e-6, and 2-3× faster on CPU than wrapping
    each pixel's hue (`floormod`), which it replaced (the results differ by float rounding,
    < 2e-6).
    """
    r, g, b = tf.unstack(images, axis=-1)
    high = tf.maximum(tf.maximum(r, g), b)
    chroma = high - tf.minimum(tf.minimum(r, g), b)
    safe = tf.maximum(chroma, 1e-12)  # chroma 0: every difference is 0, and so is the hue
    hue = tf.where(  # in [-1, 5]
        high == r, (g - b) / safe, tf.where(high == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)
    )
    shift = 6.0 * tf.reshape(tf.cast(delta, tf.float32), [-1, 1, 1])
    channels = []
    for offset in (5.0, 3.0, 1.0):  # R, G, B in the standard HSV → RGB formula
        # The channel's offset, shift and -2, wrapped into [-2, 4): then t is in [-3, 9), and
        # its distance to 0 on the circle is min(|t|, |t - 6|).
        t = hue + (tf.math.floormod(shift + offset, 6.0) - 2.0)
        distance = tf.minimum(tf.abs(t), tf.abs(t - 6.0))
        channels.append(high - chroma * tf.clip_by_value(2.0 - distance, 0.0, 1.0))
    # Each channel lies in [min, max] of its pixel, so no clip is needed.
    return tf.stack(channels, axis=-1)


# The four jitter ops in the order of `jitter_params`' factors: 0 brightness, 1 contrast,
# 2 saturation, 3 hue.
JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def apply_where(images, mask, fn, *params):
    """`fn(images, *params)` on the images where `mask` holds, others unchanged; only those
    are computed (`params`: per-image `(n, ...)` tensors, partitioned alike)."""
    mask = tf.cast(mask, tf.int32)
    index = tf.range(tf.shape(images)[0])
    keep, change = tf.dynamic_partition(images, mask, 2)
    keep_i, change_i = tf.dynamic_partition(index, mask, 2)
    params = [tf.dynamic_partition(p, mask, 2)[1] for p in params]
    return tf.dynamic_stitch([keep_i, change_i], [keep, fn(change, *params)])


def jitter_params(seed, n, view):
    """Per-image colour-jitter draws: `(apply, factors, order)`.

    Args:
        seed: `[2]` integer tensor.
        n: number of images.
        view: a `ViewConfig`.

    Returns:
        `apply`: bool `(n,)` with probability `view.jitter_prob`; `factors`: float32 `(n, 4)`
        brightness, contrast, saturation factors from U[max(0, 1 - s), 1 + s] and the hue
        shift from U[-hue, hue]; `order`: int32 `(n, 4)`, a permutation of (0 brightness,
        1 contrast, 2 saturation, 3 hue) per image (identity when `jitter_random_order` is False).
    """
    s_apply, s_factors, s_order = split_seed(seed, 3)
    apply = coin(s_apply, n, view.jitter_prob)
    low = tf.constant(
        [max(0.0, 1 - view.brightness), max(0.0, 1 - view.contrast), max(0.0, 1 - view.saturation), -view.hue]
    )
    high = tf.constant([1 + view.brightness, 1 + view.contrast, 1 + view.saturation, view.hue])
    factors = low + (high - low) * uniform(s_factors, [n, 4])
    if view.jitter_random_order:
        order = tf.cast(tf.argsort(uniform(s_order, [n, 4]), axis=1), tf.int32)
    else:
        order = tf.tile(tf.range(4)[None], [n, 1])
    return apply, factors, order


def apply_jitter(images, apply, factors, order, active=(True, True, True, True)):
    """Applies drawn jitter: image `i`, if `apply[i]`, gets ops `order[i]` with `factors[i]`.

    At each of the four slots the batch is partitioned by which op each image applies there
    (partition 4: none), so every op runs once per slot on its own images: random order per
    image at the cost of a fixed order. `active[k]` False skips op k (strength 0).
    """
    index = tf.range(tf.shape(images)[0])
    columns = tf.unstack(factors, num=4, axis=1)
    for slot in range(4):
        op = tf.where(apply, order[:, slot], 4)
        op = tf.where(tf.gather(tf.constant((*active, False)), op), op, 4)
        parts = tf.dynamic_partition(images, op, 5)
        indices = tf.dynamic_partition(index, op, 5)
        outputs = [
            JITTER_OPS[k](parts[k], tf.dynamic_partition(columns[k], op, 5)[k]) if active[k] else parts[k]
            for k in range(4)
        ]
        images = tf.dynamic_stitch(indices, [*outputs, parts[4]])
    return images


def color_jitter(images, view, seed):
    """torchvision's `RandomApply([ColorJitter(b, c, s, h)], p)` per image, vectorised.

    Images not selected pass unchanged; see `jitter_params` and `apply_jitter`.
    """
    active = (view.brightness > 0, view.contrast > 0, view.saturation > 0, view.hue > 0)
    if view.jitter_prob == 0 or not any(active):
        return images
    apply, factors, order = jitter_params(seed, tf.shape(images)[0], view)
    return apply_jitter(images, apply, factors, order, active)


def _reflect_indices(size, radius):
    index = list(range(radius, 0, -1)) + list(range(size)) + list(range(size - 2, size - 2 - radius, -1))
    return tf.constant(index, tf.int32)


def gaussian_blur(images, sigma, max_sigma):
    """Blurs each image with its own σ: a separable Gaussian, reflect padding.

    The batch is folded into the channels of one depthwise convolution (kernel radius
    ceil(3·max σ)), so every image has its own kernel in a single op.

    Args:
        images: float32 `(n, h, w, 3)` with static `h`, `w`.
        sigma: float32 `(n,)`, one σ per image (pixels).
        max_sigma: the largest σ that will be drawn (sets the kernel size).

    Returns:
        The blurred images, same shape.
    """
    # An empty batch (no image drawn for blurring) would give a zero-element kernel, which
    # oneDNN's depthwise convolution rejects ("filter must not have zero elements"; TF 2.21 on
    # CPUs with AVX-512, where oneDNN is on by default); the plain kernel accepts it.
    return tf.cond(tf.shape(images)[0] > 0, lambda: _blur_nonempty(images, sigma, max_sigma), lambda: images)


def blur_image(image, sigma, max_sigma):
    """`gaussian_blur` of one image `(h, w, c)` (static `h`, `w`, `c`) with σ `(1,)`: the
    same kernel and reflect padding, the same values (to float rounding).

    Each 1-D pass is a depthwise convolution with the image's other axis folded into the
    channels (`w · c` channels down the rows, then `h · c` along the columns, through one
    transpose): 1.7× faster on CPU than 3 channels, which leave most of a vector register
    empty.
    """
    height, width, channels = image.shape
    radius = max(1, min(math.ceil(3.0 * max_sigma), height - 1, width - 1))
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / sigma[0]))
    kernel = kernel / tf.reduce_sum(kernel)

    def down_rows(x, rows, folded):  # (rows, n, c) → blurred along the rows
        padded = tf.gather(x, _reflect_indices(rows, radius), axis=0)
        padded = tf.reshape(padded, [1, rows + 2 * radius, 1, folded])
        taps = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, folded, 1])
        return tf.nn.depthwise_conv2d(padded, taps, [1, 1, 1, 1], "VALID")

    out = tf.reshape(down_rows(image, height, width * channels), [height, width, channels])
    out = tf.transpose(out, [1, 0, 2])
    out = tf.reshape(down_rows(out, width, height * channels), [width, height, channels])
    return tf.transpose(out, [1, 0, 2])


def _blur_nonempty(images, sigma, max_sigma):
    height, width = images.shape[1], images.shape[2]
    radius = math.ceil(3.0 * max_sigma)
    radius = max(1, min(radius, height - 1, width - 1))
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps[None, :] / sigma[:, None]))
    kernel = kernel / tf.reduce_sum(kernel, axis=1, keepdims=True)  # (n, taps)
    kernel = tf.transpose(tf.repeat(kernel, 3, axis=0))  # (taps, n * 3): one per image channel
    # -1, not n: shapes taken from dynamic_partition outputs can be mis-folded by grappler's
    # constant folding when the partition is constant (seen with TF 2.21).
    folded = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [1, height, width, -1])
    # Reflect padding by gathering (tf.pad's MirrorPad rejects an empty batch).
    padded = tf.gather(folded, _reflect_indices(height, radius), axis=1)
    padded = tf.gather(padded, _reflect_indices(width, radius), axis=2)
    out = tf.nn.depthwise_conv2d(padded, kernel[:, None, :, None], [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, kernel[None, :, :, None], [1, 1, 1, 1], "VALID")
    return tf.transpose(tf.reshape(out, [height, width, -1, 3]), [2, 0, 1, 3])


def solarize(images, threshold=0.5):
    """PIL's `ImageOps.solarize`: pixels ≥ threshold become `1 - x`."""
    return tf.where(images >= threshold, 1.0 - images, images)
