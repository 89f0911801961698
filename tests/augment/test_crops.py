"""Random resized crops against torchvision's distribution and a NumPy bilinear sampler; the
public crop + flip."""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_barlow import augment as aug
from tests.augment.helpers import N_STAT, TOL, random_images

pytestmark = pytest.mark.tensorflow_only  # tf ops; the backend is irrelevant but TF is needed


def _np_bilinear(image, top, left, h, w, out):
    """Half-pixel-centre bilinear sampling of a window with edge clamping (NumPy reference)."""
    height, width = image.shape[:2]
    ys = np.clip(top - 0.5 + (np.arange(out) + 0.5) * h / out, 0, height - 1)
    xs = np.clip(left - 0.5 + (np.arange(out) + 0.5) * w / out, 0, width - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, height - 1), np.minimum(x0 + 1, width - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top_row = image[y0][:, x0] * (1 - wx) + image[y0][:, x1] * wx
    bottom_row = image[y1][:, x0] * (1 - wx) + image[y1][:, x1] * wx
    return top_row * (1 - wy) + bottom_row * wy


@pytest.mark.parametrize("window", [(2.0, 3.0, 8.0, 6.0), (0.0, 0.0, 16.0, 16.0), (5.5, 1.25, 3.0, 10.0)])
def test_crop_resize_matches_numpy_bilinear(window):
    image = random_images(1, 16)[0]
    got = aug.crop_resize(image[None], *[tf.constant([v]) for v in window], (12, 12))[0]
    np.testing.assert_allclose(got, _np_bilinear(image, *window, 12), atol=1e-5)


def test_full_window_resize_equals_tf_image_resize():
    image = random_images(2, 8)
    got = aug.center_crop_resize(tf.constant(image), (32, 32), 1.0)
    np.testing.assert_allclose(got, tf.image.resize(image, (32, 32), "bilinear"), atol=1e-5)


def _np_crop_params(rng, height, width, scale, ratio, attempts=10):
    """torchvision.transforms.RandomResizedCrop.get_params, continuous sizes."""
    area = height * width
    for _ in range(attempts):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = math.sqrt(target * aspect), math.sqrt(target / aspect)
        if w <= width and h <= height:
            return h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        return width / ratio[0], width
    if in_ratio > ratio[1]:
        return height, height * ratio[1]
    return height, width


@pytest.mark.parametrize("shape", [(32, 32), (20, 60)])
def test_crop_windows_follow_torchvision_distribution(shape):
    height, width = shape
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    n = N_STAT
    top, left, h, w = (
        t.numpy()
        for t in aug.sample_crop_boxes(
            tf.constant([1, 2]), tf.fill([n], height), tf.fill([n], width), scale, ratio
        )
    )
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= height + 1e-4).all() and (left + w <= width + 1e-4).all()
    rng = np.random.default_rng(0)
    ref = np.array([_np_crop_params(rng, height, width, scale, ratio) for _ in range(20000)])
    area, ref_area = h * w / (height * width), ref[:, 0] * ref[:, 1] / (height * width)
    assert abs(area.mean() - ref_area.mean()) < 0.02
    assert abs(np.median(w / h) - np.median(ref[:, 1] / ref[:, 0])) < 0.05
    assert area.min() >= scale[0] - 1e-5
    # offsets uniform over the free range
    free = np.maximum(height - h, 1e-6)
    frac = top[height - h > 1] / free[height - h > 1]
    assert abs(frac.mean() - 0.5) < 0.03


def test_crop_fallback_for_extreme_aspect_is_centred():
    _top, left, h, w = (
        t.numpy()
        for t in aug.sample_crop_boxes(
            tf.constant([0, 0]), tf.fill([50], 4), tf.fill([50], 400), (0.9, 1.0), (3 / 4, 4 / 3)
        )
    )
    np.testing.assert_allclose(h, 4.0)
    np.testing.assert_allclose(w, 4 * 4 / 3, rtol=1e-5)
    np.testing.assert_allclose(left, (400 - w) / 2, rtol=1e-5)


def _reference_crop_flip(images, seed, scale, ratio, flip_prob):
    """The crop + flip as `labeled_dataset` and `evaluation.crop_flip_augmentation` wrote it
    before `random_crop_flip` replaced both."""
    images = tf.convert_to_tensor(images, tf.float32)
    seed = tf.constant([seed, 0], tf.int64) if isinstance(seed, int) else tf.cast(seed, tf.int64)
    shape = tf.shape(images)
    n = shape[0]
    seed_crop, seed_flip = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    window = aug.sample_crop_boxes(seed_crop, tf.fill([n], shape[1]), tf.fill([n], shape[2]), scale, ratio)
    out = aug.crop_resize(images, *window, (images.shape[1], images.shape[2]))
    flip = tf.random.stateless_uniform([n], seed_flip) < flip_prob
    return tf.where(flip[:, None, None, None], tf.reverse(out, axis=[2]), out)


@pytest.mark.parametrize("seed", [7, [3, 1_000_004], tf.constant([5, 6], tf.int64)])
def test_random_crop_flip_equals_the_crop_flip_it_replaces(seed):
    images = random_images(16, 12) * 4.0 - 2.0  # normalised values: any range is cropped alike
    scale, ratio = (0.4, 1.0), (3 / 4, 4 / 3)
    got = aug.random_crop_flip(images, seed, scale=scale, ratio=ratio, flip_prob=0.5)
    np.testing.assert_array_equal(got, _reference_crop_flip(images, seed, scale, ratio, 0.5))
    assert got.shape == (16, 12, 12, 3) and got.dtype == tf.float32


def test_random_crop_flip_size_flip_probability_and_determinism():
    images = random_images(N_STAT, 8)
    flipped = aug.random_crop_flip(images, 1, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=0.5).numpy()
    is_flipped = np.abs(flipped - images[:, :, ::-1]).reshape(N_STAT, -1).max(1) < 1e-5
    is_same = np.abs(flipped - images).reshape(N_STAT, -1).max(1) < 1e-5
    assert (is_flipped | is_same).all() and is_flipped.mean() == pytest.approx(0.5, abs=TOL)
    resized = aug.random_crop_flip(images[:4], 2, size=(5, 7), flip_prob=0.0)
    assert resized.shape == (4, 5, 7, 3)
    np.testing.assert_array_equal(resized, aug.random_crop_flip(images[:4], 2, size=(5, 7), flip_prob=0.0))
    assert np.abs(resized - aug.random_crop_flip(images[:4], 3, size=(5, 7), flip_prob=0.0)).max() > 0.05
    with pytest.raises(ValueError, match="no static size"):
        tf.function(lambda x: aug.random_crop_flip(x, 0)).get_concrete_function(
            tf.TensorSpec([None, None, None, 3], tf.float32)
        )
