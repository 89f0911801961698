"""The paper's two augmented views: random resized crops of each view, then flip, colour
jitter, grayscale, blur and solarisation with each view's probabilities, then normalisation.

Every random parameter (crop window, flip, jitter factors and order, σ, each coin) is
drawn *per image* with stateless ops from a seed tensor, so one call on a batch is a few
vectorised ops, it runs on a TPU host or in a `tf.distribute` input function, and it is
deterministic given the seed. `keras_barlow.data` feeds a fresh seed to every batch, so
views change every step and every epoch. Images of varying size (folders, ImageNet) are
augmented one at a time instead (`image_views`: the same draws and ops, per image).

Example:
```python
images = tf.zeros([8, 32, 32, 3], tf.uint8)
view_a, view_b = two_views(images, "cifar", seed=0)  # float32 (8, 32, 32, 3), normalised
```
"""

import tensorflow as tf

from keras_barlow.augment.affine import random_affine_crops
from keras_barlow.augment.config import as_config
from keras_barlow.augment.crops import crop_resize, resize_window, sample_crop_boxes, sample_crop_pixels
from keras_barlow.augment.ops import (
    JITTER_OPS,
    apply_where,
    blur_image,
    checked_images,
    color_jitter,
    gaussian_blur,
    jitter_params,
    luma,
    normalize,
    normalize_image,
    per_image,
    random_flip,
    solarize,
    static_batch_size,
    to_float_rgb,
)
from keras_barlow.augment.seeds import coin, seed_tensor, split_seed, uniform


def _crop_windows(seed_a, seed_b, heights, widths, config):
    """Both views' crop windows, view A's boxes first: `(top, left, h, w)`, each `(2n,)`."""
    windows = [
        sample_crop_boxes(seed, heights, widths, view.crop_scale, view.crop_ratio)
        for seed, view in ((seed_a, config.view_a), (seed_b, config.view_b))
    ]
    return tuple(tf.concat([a, b], 0) for a, b in zip(*windows))


def _affine_crops(images, seed_a, seed_b, config):
    """Both views' crops, each view's crop + rotation + shear as one warp per image."""
    return tuple(
        random_affine_crops(images, seed, view, config.image_size)
        for seed, view in ((seed_a, config.view_a), (seed_b, config.view_b))
    )


def crop_pair(image, config, *, seed=None):
    """Two random resized crops (views A and B) of one image of any size.

    For sources whose images differ in size (folders, ImageNet); batched sources use
    `two_views`, which crops the whole batch at once.

    Args:
        image: `(height, width, channels)` uint8 or float image (1 or 3 channels).
        config: an `AugmentationConfig` or preset name.
        seed: int or `[2]` integer tensor.

    Returns:
        `(crop_a, crop_b)`, float32 RGB in [0, 1] of `config.image_size`.
    """
    config = as_config(config)
    image = to_float_rgb(image)
    if image.shape.rank != 3:
        raise ValueError(f"crop_pair takes one image (height, width, channels), got shape {image.shape}")
    seed_a, seed_b = split_seed(seed_tensor(seed), 2)
    if config.view_a.is_affine or config.view_b.is_affine:
        crop_a, crop_b = _affine_crops(image[None], seed_a, seed_b, config)
        return crop_a[0], crop_b[0]
    shape = tf.shape(image)
    windows = _crop_windows(seed_a, seed_b, tf.fill([1], shape[0]), tf.fill([1], shape[1]), config)
    crops = crop_resize(image[None], *windows, config.image_size, box_indices=tf.zeros([2], tf.int32))
    return crops[0], crops[1]


def finish_view(crops, view, seed):
    """Flip, colour jitter, grayscale, blur and solarisation of one view's crops.

    Args:
        crops: float32 RGB in [0, 1], `(batch, height, width, 3)`.
        view: a `ViewConfig`.
        seed: `[2]` integer tensor.

    Returns:
        float32 RGB in [0, 1] (not normalised).
    """
    n = static_batch_size(crops)
    s_flip, s_jitter, s_gray, s_blur, s_sigma, s_solar = split_seed(seed, 6)
    x = crops
    if view.flip_prob > 0:
        x = random_flip(x, s_flip, view.flip_prob)
    x = color_jitter(x, view, s_jitter)
    if view.grayscale_prob > 0:
        gray = tf.repeat(luma(x), 3, axis=-1)
        x = tf.where(per_image(coin(s_gray, n, view.grayscale_prob)), gray, x)
    if view.blur_prob > 0:
        sigma = uniform(s_sigma, [n], view.blur_sigma[0], view.blur_sigma[1])
        blur = lambda images, s: gaussian_blur(images, s, view.blur_sigma[1])  # noqa: E731
        x = apply_where(x, coin(s_blur, n, view.blur_prob), blur, sigma)
    if view.solarize_prob > 0:
        mask = per_image(coin(s_solar, n, view.solarize_prob))
        x = tf.where(mask, solarize(x, view.solarize_threshold), x)
    x.set_shape(crops.shape)  # dynamic_stitch forgets the static batch size (TPUs need it)
    return x


def finish_views(crops_a, crops_b, config, *, seed=None):
    """The per-view colour transforms and normalisation of two batches of crops.

    Args:
        crops_a, crops_b: `crop_pair`'s outputs, batched: float32 RGB in [0, 1].
        config: an `AugmentationConfig`, a preset name, or a dict of overrides.
        seed: int or `[2]` integer tensor; None: a fresh random seed.

    Returns:
        Normalised float32 `(view_a, view_b)`.
    """
    config = as_config(config)
    seed_a, seed_b = split_seed(seed_tensor(seed), 2)
    view_a = finish_view(crops_a, config.view_a, seed_a)
    view_b = finish_view(crops_b, config.view_b, seed_b)
    return normalize(view_a, config), normalize(view_b, config)


def two_views(images, config="imagenet", *, seed=None):
    """The paper's two augmented views of a batch of images.

    Args:
        images: uint8 [0, 255] or float [0, 1] images, `(batch, h, w, c)` or one
            `(h, w, c)` image, c = 1 or 3.
        config: an `AugmentationConfig`, a preset name, or a dict of overrides.
        seed: int or `[2]` integer tensor (e.g. one per batch from `seed_stream`); same
            seed → same views. None: a fresh random seed on every call (not reproducible).

    Returns:
        `(view_a, view_b)`: float32, normalised, `(batch, *config.image_size, 3)` (no batch
        axis for a single image).
    """
    config = as_config(config)
    images = to_float_rgb(images)
    single = images.shape.rank == 3
    if single:
        images = images[None]
    s_crop_a, s_crop_b, s_finish = split_seed(seed_tensor(seed), 3)
    n = static_batch_size(images)
    if config.view_a.is_affine or config.view_b.is_affine:
        crops_a, crops_b = _affine_crops(images, s_crop_a, s_crop_b, config)
        crops_a = tf.ensure_shape(crops_a, [None, *config.image_size, 3])
        crops_b = tf.ensure_shape(crops_b, [None, *config.image_size, 3])
    else:
        shape = tf.shape(images)
        windows = _crop_windows(s_crop_a, s_crop_b, tf.fill([n], shape[1]), tf.fill([n], shape[2]), config)
        index = tf.range(n)
        crops = crop_resize(images, *windows, config.image_size, box_indices=tf.concat([index, index], 0))
        crops = tf.ensure_shape(crops, [None, *config.image_size, 3])
        crops_a, crops_b = crops[:n], crops[n:]
    view_a, view_b = finish_views(crops_a, crops_b, config, seed=s_finish)
    if single:
        return view_a[0], view_b[0]
    return view_a, view_b


def _maybe(seed, prob, fn, x):
    """`fn(x)` with probability `prob` (one coin from `seed`), else `x`; only the chosen
    branch runs."""
    if prob <= 0:
        return x
    if prob >= 1:
        return fn(x)
    return tf.cond(coin(seed, 1, prob)[0], lambda: fn(x), lambda: x)


def _jitter_image(x, view, seed):
    """`color_jitter` of one image: its four ops in its drawn order, each slot a
    `switch_case` (only the drawn op runs)."""
    active = (view.brightness > 0, view.contrast > 0, view.saturation > 0, view.hue > 0)
    if view.jitter_prob == 0 or not any(active):
        return x
    apply, factors, order = jitter_params(seed, 1, view)

    def jitter(x):
        for slot in range(4):
            branches = [
                (lambda k=k, x=x: JITTER_OPS[k](x[None], factors[:, k])[0]) if active[k] else (lambda x=x: x)
                for k in range(4)
            ]
            x = tf.switch_case(order[0, slot], branches)
        return x

    return tf.cond(apply[0], lambda: jitter(x), lambda: x)


def _finish_image(x, view, seed):
    """`finish_view` (without the flip, done by the crop) of one float image `(h, w, 3)`."""
    s_jitter, s_gray, s_blur, s_sigma, s_solar = split_seed(seed, 5)
    x = _jitter_image(x, view, s_jitter)
    if view.grayscale_prob > 0:
        x = _maybe(s_gray, view.grayscale_prob, lambda x: tf.repeat(luma(x), 3, axis=-1), x)
    if view.blur_prob > 0:
        sigma = uniform(s_sigma, [1], view.blur_sigma[0], view.blur_sigma[1])
        x = _maybe(s_blur, view.blur_prob, lambda x: blur_image(x, sigma, view.blur_sigma[1]), x)
    if view.solarize_prob > 0:
        x = _maybe(s_solar, view.solarize_prob, lambda x: solarize(x, view.solarize_threshold), x)
    return x


def image_views(image, config, *, seed=None):
    """Both finished, normalised views of one image of any size, one image at a time.

    The per-image form of `crop_pair` + `finish_views`, for sources whose images differ in
    size (folders, ImageNet): the same draws (crop window, coins, jitter factors and order,
    σ) from the same distributions and the same ops, but each view is cropped straight
    from the uint8 image (`resize_window`, its window in whole pixels as torchvision's
    `RandomResizedCrop`: `sample_crop_pixels`) and finished while it is in the cache,
    running only the ops its coins chose. On 2 CPU cores this made the ImageNet preset on
    500×375 JPEGs 2.3–2.9× as fast as cropping per image and finishing per batch, and
    1.45–1.9× the official PyTorch pipeline (docs/data.md, "Input pipeline").

    Args:
        image: `(height, width, channels)` uint8 or float image (1 or 3 channels).
        config: an `AugmentationConfig` or preset name (its affine views are warped).
        seed: int or `[2]` integer tensor.

    Returns:
        `(view_a, view_b)`: float32 `(*config.image_size, 3)`, normalised.
    """
    config = as_config(config)
    image = checked_images(image)
    if image.shape.rank != 3:
        raise ValueError(f"image_views takes one image (height, width, channels), got shape {image.shape}")
    seed = seed_tensor(seed)
    if config.view_a.is_affine or config.view_b.is_affine:  # rare for such sources: the batch path
        s_crop, s_finish = split_seed(seed, 2)
        crop_a, crop_b = crop_pair(image, config, seed=s_crop)
        view_a, view_b = finish_views(crop_a[None], crop_b[None], config, seed=s_finish)
        return view_a[0], view_b[0]
    shape = tf.shape(image)
    views = []
    for seed_view, view in zip(split_seed(seed, 2), (config.view_a, config.view_b)):
        s_crop, s_flip, s_finish = split_seed(seed_view, 3)
        window = sample_crop_pixels(s_crop, shape[0], shape[1], view.crop_scale, view.crop_ratio)
        flip = coin(s_flip, 1, view.flip_prob)[0] if view.flip_prob > 0 else None
        x = resize_window(image, *window, config.image_size, flip)
        if image.shape[-1] == 1:
            x = tf.repeat(x, 3, axis=-1)
        views.append(normalize_image(_finish_image(x, view, s_finish), config))
    return tuple(views)
