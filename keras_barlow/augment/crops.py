"""Random resized crops (torchvision's `RandomResizedCrop`, vectorised), the evaluation centre
crop, and the crop + flip augmentation of linear evaluation and fine-tuning.

Interpolation: bilinear, through `tf.image.crop_and_resize` (one vectorised op for all
windows; half-pixel sample centres, clamped to the image; no antialiasing). The official
code uses bicubic; bilinear is the other choice the paper's recipe allows.

One image at a time (`image_views`, for images of varying size), the window is drawn in
whole pixels as torchvision does (`sample_crop_pixels`) and resized on its own
(`resize_window`: one `ResizeBilinear` of the slice, half-pixel centres clamped to the
window, as torchvision's crop-then-resize).

Example:
```python
images = tf.random.uniform([8, 40, 60, 3])
augmented = random_crop_flip(images, seed=0, size=(32, 32), scale=(0.2, 1.0))
evaluation = center_crop_resize(images, (32, 32), fraction=0.875)
```
"""

import math

import tensorflow as tf

from keras_barlow.augment.ops import random_flip, static_batch_size
from keras_barlow.augment.seeds import seed_tensor, split_seed, uniform

PAPER_CROP_SCALE = (0.08, 1.0)
PAPER_CROP_RATIO = (3 / 4, 4 / 3)


def sample_crop_boxes(seed, heights, widths, scale, ratio, attempts=10):
    """Per-image crop windows as torchvision's `RandomResizedCrop.get_params`, vectorised.

    Ten candidate (area, log-ratio) draws per image; the first that fits is used, else a
    centre crop with the ratio clamped.

    Args:
        seed: `[2]` integer tensor.
        heights, widths: `(n,)` sizes of the images.
        scale: (min, max) fraction of the image area.
        ratio: (min, max) aspect ratio (width / height).
        attempts: candidate draws per image before the fallback.

    Returns:
        float32 `(top, left, height, width)`, each `(n,)`, in pixels.
    """
    heights = tf.cast(heights, tf.float32)
    widths = tf.cast(widths, tf.float32)
    n = static_batch_size(heights)
    s_area, s_ratio, s_offset = split_seed(seed, 3)
    area = (heights * widths)[:, None] * uniform(s_area, [n, attempts], scale[0], scale[1])
    aspect = tf.exp(uniform(s_ratio, [n, attempts], math.log(ratio[0]), math.log(ratio[1])))
    w = tf.sqrt(area * aspect)
    h = tf.sqrt(area / aspect)
    fits = (w <= widths[:, None]) & (h <= heights[:, None])
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
    found = tf.reduce_any(fits, axis=1)
    w = tf.gather(w, first, batch_dims=1)
    h = tf.gather(h, first, batch_dims=1)
    image_ratio = widths / heights
    fallback_w = tf.where(image_ratio > ratio[1], heights * ratio[1], widths)
    fallback_h = tf.where(image_ratio < ratio[0], widths / ratio[0], heights)
    w = tf.where(found, w, fallback_w)
    h = tf.where(found, h, fallback_h)
    offset = uniform(s_offset, [n, 2])
    offset = tf.where(found[:, None], offset, 0.5)
    top = offset[:, 0] * (heights - h)
    left = offset[:, 1] * (widths - w)
    return top, left, h, w


def _boxes(top, left, h, w, heights, widths, size):
    """Pixel windows → `crop_and_resize` boxes on the image padded by one edge pixel.

    Output pixel `o` samples input position `top - 0.5 + (o + 0.5) * h / out` (half-pixel
    centres, as `tf.image.resize` and PIL); the one-pixel edge padding makes positions in
    [-0.5, 0) read the edge value, as `tf.image.resize` clamps.
    """
    heights = tf.cast(heights, tf.float32)
    widths = tf.cast(widths, tf.float32)
    out_h, out_w = float(size[0]), float(size[1])
    y1 = (top + 0.5 * h / out_h + 0.5) / (heights + 1.0)
    y2 = (top + h - 0.5 * h / out_h + 0.5) / (heights + 1.0)
    x1 = (left + 0.5 * w / out_w + 0.5) / (widths + 1.0)
    x2 = (left + w - 0.5 * w / out_w + 0.5) / (widths + 1.0)
    return tf.clip_by_value(tf.stack([y1, x1, y2, x2], axis=1), 0.0, 1.0)


def crop_resize(images, top, left, h, w, size, box_indices=None):
    """Bilinear resize of pixel windows `(top, left, h, w)` (float, one per box) to `size`.

    Args:
        images: `(n, H, W, c)` images (any dtype `crop_and_resize` takes).
        top, left, h, w: float32 `(boxes,)` windows in pixels of `images`.
        size: `(height, width)` of the output.
        box_indices: image of each box; default `range(boxes)`.

    Returns:
        float32 `(boxes, *size, c)`, in the input's value range.
    """
    shape = tf.shape(images)
    if box_indices is None:
        box_indices = tf.range(tf.shape(top)[0])
    boxes = _boxes(top, left, h, w, tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32), size)
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    return tf.image.crop_and_resize(padded, boxes, box_indices, size, method="bilinear")


def sample_crop_pixels(seed, height, width, scale, ratio, attempts=10):
    """One crop window in whole pixels, exactly as torchvision's `RandomResizedCrop.get_params`.

    The draws of `sample_crop_boxes` (same seed: same area, ratio and offset draws), with
    the window's size rounded to whole pixels (`round(sqrt(area · ratio))`, half to even,
    as Python's `round`) and its offset a whole pixel drawn uniformly from the positions
    that fit (`(height - h) // 2` in the fallback). For `resize_window`, whose window is a
    slice of the image.

    Args:
        seed: `[2]` integer tensor.
        height, width: int32 scalars, the image's size.
        scale, ratio: as in `sample_crop_boxes`.
        attempts: candidate draws before the fallback.

    Returns:
        int32 scalars `(top, left, h, w)`.
    """
    heights = tf.cast(height, tf.float32)[None]
    widths = tf.cast(width, tf.float32)[None]
    s_area, s_ratio, s_offset = split_seed(seed, 3)
    area = (heights * widths)[:, None] * uniform(s_area, [1, attempts], scale[0], scale[1])
    aspect = tf.exp(uniform(s_ratio, [1, attempts], math.log(ratio[0]), math.log(ratio[1])))
    w = tf.round(tf.sqrt(area * aspect))
    h = tf.round(tf.sqrt(area / aspect))
    fits = (w > 0) & (w <= widths[:, None]) & (h > 0) & (h <= heights[:, None])
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
    found = tf.reduce_any(fits, axis=1)
    image_ratio = widths / heights
    fallback_w = tf.where(image_ratio > ratio[1], tf.round(heights * ratio[1]), widths)
    fallback_h = tf.where(image_ratio < ratio[0], tf.round(widths / ratio[0]), heights)
    w = tf.where(found, tf.gather(w, first, batch_dims=1), fallback_w)[0]
    h = tf.where(found, tf.gather(h, first, batch_dims=1), fallback_h)[0]
    offset = uniform(s_offset, [2])
    top = tf.where(found[0], tf.floor(offset[0] * (heights[0] - h + 1)), tf.floor((heights[0] - h) / 2))
    left = tf.where(found[0], tf.floor(offset[1] * (widths[0] - w + 1)), tf.floor((widths[0] - w) / 2))
    top = tf.minimum(top, heights[0] - h)  # offset < 1, but float rounding
    left = tf.minimum(left, widths[0] - w)
    return tuple(tf.cast(t, tf.int32) for t in (top, left, h, w))


def resize_window(image, top, left, h, w, size, flip=None):
    """The window `image[top:top + h, left:left + w]` resized to `size`, bilinear, flipped
    horizontally on request: the per-image crop of `image_views`.

    One `ResizeBilinear` (half-pixel centres, clamped to the window's edge: torchvision's
    crop-then-resize) of the window sliced from the uint8 image, so neither the image nor
    the window is converted to float first; about 3× faster on CPU than `crop_resize` of a
    window in fractional pixels (`crop_and_resize` of the edge-padded float image).

    Args:
        image: `(H, W, c)` uint8 [0, 255] or float [0, 1].
        top, left, h, w: int32 scalars (`sample_crop_pixels`).
        size: `(height, width)` of the output.
        flip: None, or a bool scalar.

    Returns:
        float32 `(*size, c)` in [0, 1].
    """
    window = tf.slice(image, tf.stack([top, left, 0]), tf.stack([h, w, -1]))
    out = tf.raw_ops.ResizeBilinear(images=window[None], size=size, half_pixel_centers=True)[0]
    if image.dtype == tf.uint8:
        out = out * (1.0 / 255.0)
    if flip is not None:
        out = tf.cond(flip, lambda: tf.reverse(out, [1]), lambda: out)
    out.set_shape([size[0], size[1], image.shape[-1]])
    return out


def center_crop_resize(images, size, fraction=1.0):
    """Deterministic evaluation transform: centre crop, then bilinear resize.

    Args:
        images: `(n, H, W, c)` images.
        size: `(height, width)` of the output.
        fraction: of the shorter side kept, at the output's aspect ratio.

    Returns:
        float32 `(n, *size, c)`, with the same sampler as the training crops.
    """
    shape = tf.shape(images)
    n = shape[0]
    height = tf.cast(shape[1], tf.float32)
    width = tf.cast(shape[2], tf.float32)
    target_ratio = size[1] / size[0]
    h = tf.minimum(height, width / target_ratio) * fraction
    w = h * target_ratio
    ones = tf.ones([n], tf.float32)
    return crop_resize(images, ones * (height - h) / 2, ones * (width - w) / 2, ones * h, ones * w, size)


def random_crop_flip(
    images, seed, *, size=None, scale=PAPER_CROP_SCALE, ratio=PAPER_CROP_RATIO, flip_prob=0.5
):
    """Random resized crop + horizontal flip, per image: the augmentation of linear
    evaluation and fine-tuning (the pretraining views add colour on top, see `two_views`).

    Args:
        images: a batch `(n, h, w, c)`, any value range (already normalised images too);
            the crop is geometric only.
        seed: an int or a `[2]` integer tensor; same seed → same crops and flips.
        size: output `(height, width)`; default: the images' own (static) size.
        scale: (min, max) fraction of the image area kept.
        ratio: (min, max) aspect ratio (width / height) of the crop window.
        flip_prob: probability of a horizontal flip (0 for chiral data such as digits).

    Returns:
        float32 `(n, *size, c)`, in the input's value range.
    """
    images = tf.convert_to_tensor(images)
    if size is None:
        size = (images.shape[1], images.shape[2])
        if None in size:
            raise ValueError(
                f"random_crop_flip: images of shape {images.shape} have no static size; pass size=(h, w)"
            )
    # int64: stateless ops draw differently from an int32 seed of the same value, and the
    # evaluation crop + flip this function replaced always cast its seeds to int64.
    seed_crop, seed_flip = split_seed(tf.cast(seed_tensor(seed), tf.int64), 2)
    shape = tf.shape(images)
    n = static_batch_size(images)
    window = sample_crop_boxes(seed_crop, tf.fill([n], shape[1]), tf.fill([n], shape[2]), scale, ratio)
    return random_flip(crop_resize(images, *window, size), seed_flip, flip_prob)
