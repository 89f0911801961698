"""The two views: input checks, determinism per seed, every probability statistically, the
full recipe in graph mode."""

import numpy as np
import pytest
import tensorflow as tf

from keras_barlow import augment as aug
from tests.augment.helpers import N_STAT, TOL, identity_config, random_images, unnormalize

pytestmark = pytest.mark.tensorflow_only  # tf ops; the backend is irrelevant but TF is needed


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros([4, 8, 8, 2], np.uint8), "channels"),
        (np.zeros([4, 8, 8, 4], np.uint8), "RGBA"),
        (np.zeros([8, 8], np.uint8), "rank 2"),
        (np.zeros([2, 4, 8, 8, 3], np.uint8), "rank 5"),
        (np.zeros([4, 8, 8, 3], np.int32), "dtype int32"),
        (tf.constant(["a.png"]), "string"),
        ("a.png", "string"),
    ],
)
def test_bad_inputs_raise_clear_errors(images, match):
    with pytest.raises(ValueError, match=match):
        aug.two_views(images, "cifar", seed=0)


def test_uint8_float_and_grey_inputs_agree():
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, [4, 12, 12, 1]).astype(np.uint8)
    rgb = np.repeat(grey, 3, axis=-1)
    a_uint8, b_uint8 = aug.two_views(rgb, "cifar", seed=3)
    a_float, _b_float = aug.two_views(rgb.astype(np.float32) / 255.0, "cifar", seed=3)
    _a_grey, b_grey = aug.two_views(grey, "cifar", seed=3)
    np.testing.assert_allclose(a_uint8, a_float, atol=1e-5)
    np.testing.assert_allclose(b_uint8, b_grey, atol=1e-5)
    assert a_uint8.shape == (4, 32, 32, 3) and a_uint8.dtype == tf.float32


def test_single_image_gives_single_views():
    a, b = aug.two_views(np.zeros([20, 30, 3], np.uint8), "cifar", seed=0)
    assert a.shape == b.shape == (32, 32, 3)


def test_deterministic_per_seed_and_different_across_seeds():
    images = random_images(8, 24)
    a1, b1 = aug.two_views(images, "imagenet", seed=7)
    a2, b2 = aug.two_views(images, "imagenet", seed=7)
    a3, b3 = aug.two_views(images, "imagenet", seed=8)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    assert np.abs(a1 - a3).max() > 0.1 and np.abs(b1 - b3).max() > 0.1
    assert np.abs(a1 - b1).max() > 0.1  # the two views differ


def test_graph_mode_seed_tensor_matches_eager():
    images = random_images(4)
    fn = tf.function(lambda x, s: aug.two_views(x, "cifar", seed=s))
    seed = tf.constant([5, 6], tf.int64)
    # same draws; graph rewrites may reorder float ops (last-bit differences)
    np.testing.assert_allclose(fn(images, seed)[0], aug.two_views(images, "cifar", seed=seed)[0], atol=1e-5)


def test_crop_pair_any_size_and_views_use_their_own_windows():
    image = np.arange(40 * 70 * 3, dtype=np.float32).reshape(40, 70, 3) / (40 * 70 * 3)
    crop_a, crop_b = aug.crop_pair(image, "cifar", seed=4)
    assert crop_a.shape == crop_b.shape == (32, 32, 3)
    assert np.abs(crop_a - crop_b).max() > 1e-3


# ---------------------------------------------------------------------------- probabilities


def _fraction(detect, config, images, view):
    views = aug.two_views(images, config, seed=11)
    out = unnormalize(views[0 if view == "a" else 1], config)
    return detect(out, images).mean()


def _changed(out, images):
    return np.abs(out - images).reshape(len(images), -1).max(1) > 1e-4


@pytest.mark.parametrize("view", ["a", "b"])
def test_grayscale_probability(view):
    config = identity_config(8, grayscale_prob=0.2)
    images = random_images(N_STAT, 8)
    is_gray = lambda out, _: np.abs(out - out.mean(-1, keepdims=True)).reshape(len(out), -1).max(1) < 1e-5  # noqa: E731
    assert _fraction(is_gray, config, images, view) == pytest.approx(0.2, abs=TOL)


@pytest.mark.parametrize("view", ["a", "b"])
def test_flip_probability(view):
    config = identity_config(8, flip_prob=0.5)
    images = random_images(N_STAT, 8)
    flipped = lambda out, x: np.abs(out - x[:, :, ::-1]).reshape(len(x), -1).max(1) < 1e-5  # noqa: E731
    assert _fraction(flipped, config, images, view) == pytest.approx(0.5, abs=TOL)


@pytest.mark.parametrize("view", ["a", "b"])
def test_jitter_probability(view):
    config = identity_config(8, jitter_prob=0.8)
    images = random_images(N_STAT, 8)
    assert _fraction(_changed, config, images, view) == pytest.approx(0.8, abs=TOL)


@pytest.mark.parametrize("view, expected", [("a", 1.0), ("b", 0.1)])
def test_blur_probability_is_asymmetric(view, expected):
    preset = aug.AugmentationConfig.preset("imagenet")
    blur_prob = getattr(preset, f"view_{view}").blur_prob
    assert blur_prob == expected
    # σ ≥ 1 so that every blurred image visibly changes (σ = 0.1 is numerically the identity)
    config = identity_config(
        16,
        blur_sigma=(1.0, 2.0),
        view_a={"blur_prob": preset.view_a.blur_prob},
        view_b={"blur_prob": preset.view_b.blur_prob},
    )
    images = random_images(N_STAT, 16)
    assert _fraction(_changed, config, images, view) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("view, expected", [("a", 0.0), ("b", 0.2)])
def test_solarize_probability_is_asymmetric(view, expected):
    preset = aug.AugmentationConfig.preset("imagenet")
    config = identity_config(
        8,
        view_a={"solarize_prob": preset.view_a.solarize_prob},
        view_b={"solarize_prob": preset.view_b.solarize_prob},
    )
    images = random_images(N_STAT, 8)
    assert _fraction(_changed, config, images, view) == pytest.approx(expected, abs=TOL)


def test_full_imagenet_recipe_output_range_and_static_shape():
    images = (np.random.default_rng(0).uniform(0, 255, [32, 30, 26, 3])).astype(np.uint8)
    config = aug.AugmentationConfig.preset("imagenet", image_size=16)
    # A constant seed inside tf.function lets grappler constant-fold the coins; with view B
    # blurring only some images this once broke (a mis-folded dynamic_partition shape).
    fn = tf.function(lambda x: aug.two_views(x, config, seed=tf.constant([1, 2])))
    concrete = fn.get_concrete_function(tf.TensorSpec([32, 30, 26, 3], tf.uint8))
    assert [o.shape.as_list() for o in concrete.structured_outputs] == [[32, 16, 16, 3]] * 2
    graph_views = fn(images)
    eager_views = aug.two_views(images, config, seed=tf.constant([1, 2]))
    for view, eager in zip(graph_views, eager_views):
        pixels = unnormalize(view, config)
        assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
        np.testing.assert_allclose(view, eager, atol=1e-4)
