"""The crop + rotation + shear warp against a NumPy sampler, the crop path and `np.rot90`;
the `"mnist5k"` preset's views."""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_barlow import augment as aug
from keras_barlow.augment.affine import affine_transforms, random_affine_crops, warp

pytestmark = pytest.mark.tensorflow_only  # tf ops; the backend is irrelevant but TF is needed


def _np_affine(image, top, left, h, w, angle, shear, out):
    """Independent reference: each output pixel's input position from the docstring's formula
    (rotation · shear · scale about the window centre), bilinear with edge clamping."""
    height, width = image.shape[:2]
    oy, ox = np.meshgrid(np.arange(out, dtype=np.float64), np.arange(out, dtype=np.float64), indexing="ij")
    u = (ox - (out - 1) / 2) * w / out
    v = (oy - (out - 1) / 2) * h / out
    u = u + shear * v
    xs = math.cos(angle) * u - math.sin(angle) * v + left + w / 2 - 0.5
    ys = math.sin(angle) * u + math.cos(angle) * v + top + h / 2 - 0.5
    xs, ys = np.clip(xs, 0, width - 1), np.clip(ys, 0, height - 1)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    wx, wy = (xs - x0)[..., None], (ys - y0)[..., None]
    top_row = image[y0, x0] * (1 - wx) + image[y0, x1] * wx
    bottom_row = image[y1, x0] * (1 - wx) + image[y1, x1] * wx
    return top_row * (1 - wy) + bottom_row * wy


def _warp_one(image, window, angle, shear, out):
    columns = [tf.constant([v], tf.float32) for v in (*window, angle, shear)]
    return warp(image[None], affine_transforms(*columns, (out, out)), (out, out))[0].numpy()


@pytest.mark.parametrize(
    "window, angle, shear",
    [
        ((2.0, 3.0, 20.0, 16.0), 0.3, 0.15),
        ((0.0, 0.0, 28.0, 28.0), -0.25, -0.1),
        ((5.5, 1.25, 9.0, 14.0), 1.0, 0.0),
    ],
)
def test_warp_matches_numpy_reference(window, angle, shear):
    image = np.random.default_rng(0).uniform(size=(28, 28, 3)).astype(np.float32)
    expected = _np_affine(image.astype(np.float64), *window, angle, shear, 16)
    np.testing.assert_allclose(_warp_one(image, window, angle, shear, 16), expected, atol=1e-4)


def test_zero_rotation_and_shear_equal_the_crop_path():
    images = tf.random.stateless_uniform([16, 28, 28, 3], [3, 4])
    n = tf.fill([16], 28)
    window = aug.sample_crop_boxes(tf.constant([1, 2], tf.int64), n, n, (0.2, 1.0), (3 / 4, 4 / 3))
    crops = aug.crop_resize(images, *window, (16, 16))
    zeros = tf.zeros([16])
    warped = warp(images, affine_transforms(*window, zeros, zeros, (16, 16)), (16, 16))
    np.testing.assert_allclose(warped.numpy(), crops.numpy(), atol=2e-5)


def test_quarter_turn_of_a_pattern_is_rot90():
    image = np.arange(12 * 12, dtype=np.float32).reshape(12, 12, 1) / 144.0
    turned = _warp_one(image, (0.0, 0.0, 12.0, 12.0), math.pi / 2, 0.0, 12)
    np.testing.assert_allclose(turned, np.rot90(image, 1), atol=1e-5)


def test_random_affine_crops_follow_the_view_and_the_seed():
    images = tf.random.stateless_uniform([8, 28, 28, 3], [5, 6])
    view = aug.ViewConfig(crop_scale=(0.4, 1.0), rotation=15.0, shear=0.15)
    seed = tf.constant([7, 8], tf.int64)
    first = random_affine_crops(images, seed, view, (16, 16))
    assert first.shape == (8, 16, 16, 3)
    np.testing.assert_array_equal(first.numpy(), random_affine_crops(images, seed, view, (16, 16)).numpy())
    plain = random_affine_crops(images, seed, aug.ViewConfig(crop_scale=(0.4, 1.0)), (16, 16))
    assert not np.allclose(first.numpy(), plain.numpy())


def test_rotation_and_shear_are_validated_and_default_to_zero():
    assert aug.ViewConfig().rotation == 0.0 and aug.ViewConfig().shear == 0.0
    assert not aug.AugmentationConfig.preset("digits").view_a.is_affine
    with pytest.raises(ValueError, match=r"rotation .* got -5"):
        aug.ViewConfig(rotation=-5)
    with pytest.raises(ValueError, match=r"shear .* got 2"):
        aug.ViewConfig(shear=2)


def test_mnist5k_preset_views():
    config = aug.AugmentationConfig.preset("mnist5k")
    assert config.image_size == (16, 16) and config.view_a.rotation == 15.0 and config.view_b.shear == 0.15
    assert config.mean == (0.1307,) * 3 and config.view_a.flip_prob == 0.0
    assert aug.AugmentationConfig.from_config(config.get_config()) == config
    images = tf.cast(
        tf.random.stateless_uniform([4, 28, 28, 1], [1, 1], maxval=256, dtype=tf.int32), tf.uint8
    )
    view_a, view_b = aug.two_views(images, config, seed=3)
    assert view_a.shape == view_b.shape == (4, 16, 16, 3)
    again_a, _ = aug.two_views(images, config, seed=3)
    np.testing.assert_array_equal(view_a.numpy(), again_a.numpy())
    crop_a, crop_b = aug.crop_pair(images[0], config, seed=3)
    assert crop_a.shape == crop_b.shape == (16, 16, 3)
