"""Random resized crop + rotation + shear as ONE affine warp per image (batched).

A crop window `(top, left, h, w)` (from `sample_crop_boxes`), a rotation angle θ and a
shear factor `k`, per image, make the map from output pixel `o = (x, y)` to input pixel

    input = centre + R(θ) · Shear(k) · diag(w / out_w, h / out_h) · (o - (out - 1) / 2)

(pixel-index coordinates, half-pixel centres as `crop_resize`), applied by one
`ImageProjectiveTransformV3` with bilinear sampling; positions outside the image read the
nearest edge pixel, as `crop_resize` does. With θ = 0 and k = 0 it samples exactly the
positions `crop_resize` samples, so its output equals the crop path's to float rounding.
Warping once (not crop, then rotate) interpolates once and never rotates empty corners
into a small crop.

Example:
```python
images = tf.random.uniform([8, 28, 28, 3])
seed = tf.constant([1, 2], tf.int64)
views = random_affine_crops(images, seed, ViewConfig(rotation=15.0, shear=0.15), (16, 16))
```
"""

import math

import tensorflow as tf

from keras_barlow.augment.crops import sample_crop_boxes
from keras_barlow.augment.ops import static_batch_size
from keras_barlow.augment.seeds import split_seed, uniform


def affine_transforms(top, left, h, w, angle, shear, size):
    """Per-image projective transforms (output → input pixel coordinates).

    Args:
        top, left, h, w: float32 `(n,)` crop windows in input pixels.
        angle: float32 `(n,)` rotations in radians (counter-clockwise on screen is negative,
            as image rows grow downwards).
        shear: float32 `(n,)` horizontal shear factors (x += shear · y before rotating).
        size: `(height, width)` of the output.

    Returns:
        float32 `(n, 8)`, rows `[a0, a1, a2, b0, b1, b2, 0, 0]` as
        `tf.raw_ops.ImageProjectiveTransformV3` takes them.
    """
    out_h, out_w = float(size[0]), float(size[1])
    scale_x, scale_y = w / out_w, h / out_h
    cos, sin = tf.cos(angle), tf.sin(angle)
    a0, a1 = cos * scale_x, (cos * shear - sin) * scale_y
    b0, b1 = sin * scale_x, (sin * shear + cos) * scale_y
    half_x, half_y = (out_w - 1.0) / 2.0, (out_h - 1.0) / 2.0
    centre_x = left + w / 2.0 - 0.5
    centre_y = top + h / 2.0 - 0.5
    a2 = centre_x - a0 * half_x - a1 * half_y
    b2 = centre_y - b0 * half_x - b1 * half_y
    zeros = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def warp(images, transforms, size):
    """Bilinear projective warp of each image by its transform; edges extended.

    Args:
        images: float32 `(n, H, W, c)`.
        transforms: float32 `(n, 8)` (see `affine_transforms`).
        size: `(height, width)` of the output.

    Returns:
        float32 `(n, *size, c)`.
    """
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(images, tf.float32),
        transforms=tf.cast(transforms, tf.float32),
        output_shape=tf.constant(size, tf.int32),
        fill_value=tf.constant(0.0, tf.float32),
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )


def sample_rotation_shear(seed, n, view):
    """Per-image angle (radians) U(±`view.rotation`°) and shear U(±`view.shear`), `(n,)` each."""
    s_angle, s_shear = split_seed(seed, 2)
    limit = view.rotation * math.pi / 180.0
    return uniform(s_angle, [n], -limit, limit), uniform(s_shear, [n], -view.shear, view.shear)


def random_affine_crops(images, seed, view, size):
    """One view's random resized crop + rotation + shear of a batch, one warp per image.

    Args:
        images: float32 `(n, H, W, c)`, all of one size.
        seed: `[2]` integer tensor.
        view: a `ViewConfig` (its crop scale/ratio, rotation and shear are used).
        size: `(height, width)` of the output.

    Returns:
        float32 `(n, *size, c)`.
    """
    n = static_batch_size(images)
    shape = tf.shape(images)
    s_crop, s_affine = split_seed(seed, 2)
    window = sample_crop_boxes(
        s_crop, tf.fill([n], shape[1]), tf.fill([n], shape[2]), view.crop_scale, view.crop_ratio
    )
    angle, shear = sample_rotation_shear(s_affine, n, view)
    return warp(images, affine_transforms(*window, angle, shear, size), size)
