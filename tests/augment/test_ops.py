"""The colour, blur and solarisation ops against NumPy references (torchvision's definitions)."""

import colorsys
import dataclasses
import itertools

import numpy as np
import pytest
import tensorflow as tf

from keras_barlow import augment as aug
from tests.augment.helpers import N_STAT, identity_config, random_images, unnormalize

pytestmark = pytest.mark.tensorflow_only  # tf ops; the backend is irrelevant but TF is needed


def _np_gray(x):
    return (x * np.array(aug.GRAY_WEIGHTS)).sum(-1, keepdims=True)


def _np_jitter_op(x, k, factor):
    """torchvision's functional adjust_* on a float image in [0, 1]."""
    if k == 0:
        return np.clip(x * factor, 0, 1)
    if k == 1:
        return np.clip(factor * x + (1 - factor) * _np_gray(x).mean(), 0, 1)
    if k == 2:
        return np.clip(factor * x + (1 - factor) * _np_gray(x), 0, 1)
    out = np.empty_like(x)
    for i, j in itertools.product(range(x.shape[0]), range(x.shape[1])):
        h, s, v = colorsys.rgb_to_hsv(*x[i, j])
        out[i, j] = colorsys.hsv_to_rgb((h + factor) % 1.0, s, v)
    return out


@pytest.mark.parametrize("k, factors", [(0, [0.6, 1.4]), (1, [0.6, 1.4]), (2, [0.0, 1.2]), (3, [-0.1, 0.27])])
def test_each_jitter_op_matches_numpy(k, factors):
    images = random_images(2, 6, seed=k)
    got = aug.JITTER_OPS[k](tf.constant(images), tf.constant(factors, tf.float32)).numpy()
    for i, factor in enumerate(factors):
        np.testing.assert_allclose(got[i], _np_jitter_op(images[i], k, factor), atol=2e-5)


def _floormod_hue(images, delta):
    """The `adjust_hue` of before its per-image wrap (each pixel's hue wrapped by `floormod`)."""
    r, g, b = tf.unstack(images, axis=-1)
    high = tf.maximum(tf.maximum(r, g), b)
    chroma = high - tf.minimum(tf.minimum(r, g), b)
    safe = tf.where(chroma > 0, chroma, 1.0)
    hue = tf.where(
        high == r, (g - b) / safe, tf.where(high == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)
    ) + 6.0 * tf.reshape(delta, [-1, 1, 1])
    channels = []
    for offset in (5.0, 3.0, 1.0):
        k = tf.math.floormod(offset + hue, 6.0)
        channels.append(high - chroma * tf.clip_by_value(tf.minimum(k, 4.0 - k), 0.0, 1.0))
    return tf.clip_by_value(tf.stack(channels, axis=-1), 0.0, 1.0)


def test_hue_wraps_any_shift_and_equals_the_formula_it_replaced():
    """Every shift in [-0.5, 0.5] (wrapping both ways), grey pixels and ties: colorsys' hue
    shift, and the per-pixel `floormod` formula of before to float rounding."""
    images = (np.random.default_rng(5).integers(0, 256, (41, 6, 6, 3)) / 255.0).astype(np.float32)
    images[0] = images[0, ..., :1]  # grey: no hue
    images[1, ..., 1] = images[1, ..., 0]  # ties between the largest channels
    deltas = np.linspace(-0.5, 0.5, 41).astype(np.float32)
    got = aug.adjust_hue(tf.constant(images), tf.constant(deltas)).numpy()
    np.testing.assert_allclose(got, _floormod_hue(tf.constant(images), tf.constant(deltas)), atol=2e-6)
    for i in range(0, 41, 4):
        np.testing.assert_allclose(got[i], _np_jitter_op(images[i], 3, deltas[i]), atol=2e-5)
    assert got.min() >= 0.0 and got.max() <= 1.0


def test_random_order_jitter_matches_numpy_sequence():
    view = aug.ViewConfig(jitter_prob=0.7)
    n = 12
    images = random_images(n, 5, seed=3)
    apply, factors, order = aug.jitter_params(tf.constant([3, 4]), n, view)
    got = aug.apply_jitter(tf.constant(images), apply, factors, order).numpy()
    apply, factors, order = apply.numpy(), factors.numpy(), order.numpy()
    for i in range(n):
        expected = images[i]
        if apply[i]:
            for k in order[i]:
                expected = _np_jitter_op(expected, k, factors[i, k])
        np.testing.assert_allclose(got[i], expected, atol=3e-5)


def test_jitter_orders_and_factors_are_per_image():
    view = aug.ViewConfig()
    _, factors, order = aug.jitter_params(tf.constant([0, 1]), N_STAT, view)
    order, factors = order.numpy(), factors.numpy()
    assert (np.sort(order, axis=1) == np.arange(4)).all()
    counts = np.unique([tuple(o) for o in order], axis=0, return_counts=True)[1]
    assert len(counts) == 24 and counts.min() > N_STAT / 24 * 0.6
    np.testing.assert_allclose(factors.min(0), [0.6, 0.6, 0.8, -0.1], atol=0.01)
    np.testing.assert_allclose(factors.max(0), [1.4, 1.4, 1.2, 0.1], atol=0.01)
    fixed = aug.jitter_params(tf.constant([0, 1]), 5, dataclasses.replace(view, jitter_random_order=False))[2]
    assert (fixed.numpy() == np.arange(4)).all()


def test_solarize_inverts_pixels_above_threshold():
    x = np.linspace(0, 1, 101, dtype=np.float32).reshape(1, 1, 101, 1).repeat(3, -1)
    got = aug.solarize(tf.constant(x), 0.5).numpy()
    np.testing.assert_allclose(got, np.where(x >= 0.5, 1 - x, x))
    # through the whole pipeline: solarisation on, everything else the identity
    config = identity_config(16, solarize_prob=1.0)
    images = random_images(4, 16)
    view_a, _ = aug.two_views(images, config, seed=0)
    np.testing.assert_allclose(
        unnormalize(view_a, config), np.where(images >= 0.5, 1 - images, images), atol=1e-5
    )
    assert (images >= 0.5).mean() > 0.3  # the test image really had pixels to invert


def _np_blur(image, sigma, radius):
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(image, [(radius, radius), (radius, radius), (0, 0)], mode="reflect")
    rows = sum(kernel[i] * padded[i : i + image.shape[0]] for i in range(len(taps)))
    return sum(kernel[i] * rows[:, i : i + image.shape[1]] for i in range(len(taps)))


def test_gaussian_blur_matches_numpy_per_image_sigma():
    images = random_images(3, 20)
    sigma = np.array([0.3, 1.0, 2.0], np.float32)
    got = aug.gaussian_blur(tf.constant(images), tf.constant(sigma), 2.0).numpy()
    for i in range(3):
        np.testing.assert_allclose(got[i], _np_blur(images[i], sigma[i], 6), atol=1e-5)


def test_gaussian_blur_of_an_empty_batch_is_empty():
    # when no image of a batch is drawn for blurring; oneDNN's depthwise convolution (on by
    # default on AVX-512 CPUs) rejected the zero-element kernel this gave.
    empty = tf.zeros([0, 8, 8, 3])
    assert aug.gaussian_blur(empty, tf.zeros([0]), 2.0).shape == (0, 8, 8, 3)
    graph = tf.function(lambda x, s: aug.gaussian_blur(x, s, 2.0))
    assert graph(empty, tf.zeros([0])).shape == (0, 8, 8, 3)


def _recovered_sigmas(view_images, size):
    """σ of each blurred impulse: invert the (monotonic) discrete kernel variance."""
    centre = size // 2
    profile = view_images[:, centre, :, 0]  # the row through the impulse
    profile = profile / profile.sum(1, keepdims=True)
    offsets = np.arange(size) - centre
    variance = (profile * offsets**2).sum(1)
    grid = np.linspace(0.05, 2.1, 2000)
    taps = np.arange(-6, 7)
    grid_var = np.array(
        [
            (np.exp(-0.5 * (taps / s) ** 2) / np.exp(-0.5 * (taps / s) ** 2).sum() * taps**2).sum()
            for s in grid
        ]
    )
    return np.interp(variance, grid_var, grid)


def test_blur_sigma_is_drawn_per_image_and_per_step():
    size = 33
    config = identity_config(size, blur_prob=1.0, blur_sigma=(0.5, 2.0))
    impulse = np.zeros([64, size, size, 3], np.float32)
    impulse[:, size // 2, size // 2] = 1.0
    step1 = _recovered_sigmas(unnormalize(aug.two_views(impulse, config, seed=1)[0], config), size)
    step2 = _recovered_sigmas(unnormalize(aug.two_views(impulse, config, seed=2)[0], config), size)
    assert step1.min() >= 0.5 - 0.02 and step1.max() <= 2.0 + 0.02
    assert np.std(step1) > 0.3  # U[0.5, 2] has std 0.43; one σ per batch would give 0
    assert len(np.unique(np.round(step1, 3))) > 50
    assert np.abs(step1 - step2).mean() > 0.2  # a new σ every step
    assert abs(step1.mean() - 1.25) < 0.15
