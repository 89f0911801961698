"""The two-view augmentation: every op against NumPy references, every probability
statistically, per-image/per-step randomness, determinism and input checks."""

import colorsys
import dataclasses
import itertools
import math

import numpy as np
import pytest
import tensorflow as tf

from keras_barlow import augment as aug

pytestmark = pytest.mark.tensorflow_only  # tf.data / tf ops; the backend is irrelevant but TF is needed

N_STAT = 2000  # images per probability test
TOL = 0.03


def _identity(size=16, **view):
    """A config whose views are the identity (full crop, no ops) except `view` overrides."""
    off = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_prob=0.0, jitter_prob=0.0,
               grayscale_prob=0.0, blur_prob=0.0, solarize_prob=0.0)
    return aug.AugmentationConfig.preset("imagenet", image_size=size, **{**off, **view})


def _unnormalize(views, config):
    return views.numpy() * np.array(config.std) + np.array(config.mean)


def _random_images(n, size=16, seed=0):
    return np.random.default_rng(seed).uniform(0.05, 0.95, (n, size, size, 3)).astype(np.float32)


# ---------------------------------------------------------------------------- config


def test_imagenet_preset_is_the_paper_recipe():
    config = aug.AugmentationConfig.preset("imagenet")
    assert config.image_size == (224, 224)
    for view in (config.view_a, config.view_b):
        assert view.crop_scale == (0.08, 1.0) and view.crop_ratio == pytest.approx((3 / 4, 4 / 3))
        assert (view.flip_prob, view.jitter_prob, view.grayscale_prob) == (0.5, 0.8, 0.2)
        assert (view.brightness, view.contrast, view.saturation, view.hue) == (0.4, 0.4, 0.2, 0.1)
        assert view.blur_sigma == (0.1, 2.0)
    assert (config.view_a.blur_prob, config.view_b.blur_prob) == (1.0, 0.1)
    assert (config.view_a.solarize_prob, config.view_b.solarize_prob) == (0.0, 0.2)
    assert config.mean == aug.IMAGENET_MEAN and config.std == aug.IMAGENET_STD


def test_small_presets():
    cifar = aug.AugmentationConfig.preset("cifar")
    assert cifar.image_size == (32, 32) and cifar.view_a.blur_prob == cifar.view_b.blur_prob == 0.0
    assert cifar.view_b.solarize_prob == 0.2 and cifar.view_a.crop_scale == (0.08, 1.0)
    digits = aug.AugmentationConfig.preset("digits")
    assert digits.view_a.crop_scale == (0.4, 1.0) and digits.view_a.hue == 0 and digits.view_a.blur_prob == 0


def test_replace_both_views_one_view_and_round_trip():
    config = aug.AugmentationConfig.preset("imagenet", image_size=64, blur_prob=0.5, view_b={"solarize_prob": 0.7})
    assert config.image_size == (64, 64)
    assert config.view_a.blur_prob == config.view_b.blur_prob == 0.5
    assert (config.view_a.solarize_prob, config.view_b.solarize_prob) == (0.0, 0.7)
    assert aug.AugmentationConfig.from_config(config.get_config()) == config


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"flip_prob": 1.5}, "probability"),
        ({"crop_scale": (0.9, 0.1)}, "crop_scale"),
        ({"hue": 0.7}, "hue"),
        ({"brightness": -1}, "brightness"),
        ({"image_size": 0}, "image_size"),
        ({"mean": (0.5, 0.5)}, "mean"),
        ({"blur": 1.0}, "unknown"),
    ],
)
def test_bad_config_values_raise(overrides, match):
    with pytest.raises(ValueError, match=match):
        aug.AugmentationConfig.preset("imagenet", **overrides)


def test_unknown_preset_raises():
    with pytest.raises(ValueError, match="preset"):
        aug.AugmentationConfig.preset("mnist")


# ---------------------------------------------------------------------------- inputs


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
    a_float, b_float = aug.two_views(rgb.astype(np.float32) / 255.0, "cifar", seed=3)
    a_grey, b_grey = aug.two_views(grey, "cifar", seed=3)
    np.testing.assert_allclose(a_uint8, a_float, atol=1e-5)
    np.testing.assert_allclose(b_uint8, b_grey, atol=1e-5)
    assert a_uint8.shape == (4, 32, 32, 3) and a_uint8.dtype == tf.float32


def test_single_image_gives_single_views():
    a, b = aug.two_views(np.zeros([20, 30, 3], np.uint8), "cifar", seed=0)
    assert a.shape == b.shape == (32, 32, 3)


def test_deterministic_per_seed_and_different_across_seeds():
    images = _random_images(8, 24)
    a1, b1 = aug.two_views(images, "imagenet", seed=7)
    a2, b2 = aug.two_views(images, "imagenet", seed=7)
    a3, b3 = aug.two_views(images, "imagenet", seed=8)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    assert np.abs(a1 - a3).max() > 0.1 and np.abs(b1 - b3).max() > 0.1
    assert np.abs(a1 - b1).max() > 0.1  # the two views differ


def test_graph_mode_seed_tensor_matches_eager():
    images = _random_images(4)
    fn = tf.function(lambda x, s: aug.two_views(x, "cifar", seed=s))
    seed = tf.constant([5, 6], tf.int64)
    # same draws; graph rewrites may reorder float ops (last-bit differences)
    np.testing.assert_allclose(fn(images, seed)[0], aug.two_views(images, "cifar", seed=seed)[0], atol=1e-5)


# ---------------------------------------------------------------------------- crops


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
    image = _random_images(1, 16)[0]
    got = aug.crop_resize(image[None], *[tf.constant([v]) for v in window], (12, 12))[0]
    np.testing.assert_allclose(got, _np_bilinear(image, *window, 12), atol=1e-5)


def test_full_window_resize_equals_tf_image_resize():
    image = _random_images(2, 8)
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
    top, left, h, w = (t.numpy() for t in aug.sample_crop_boxes(tf.constant([1, 2]), tf.fill([n], height), tf.fill([n], width), scale, ratio))
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
    top, left, h, w = (t.numpy() for t in aug.sample_crop_boxes(tf.constant([0, 0]), tf.fill([50], 4), tf.fill([50], 400), (0.9, 1.0), (3 / 4, 4 / 3)))
    np.testing.assert_allclose(h, 4.0)
    np.testing.assert_allclose(w, 4 * 4 / 3, rtol=1e-5)
    np.testing.assert_allclose(left, (400 - w) / 2, rtol=1e-5)


def test_crop_pair_any_size_and_views_use_their_own_windows():
    image = np.arange(40 * 70 * 3, dtype=np.float32).reshape(40, 70, 3) / (40 * 70 * 3)
    crop_a, crop_b = aug.crop_pair(image, "cifar", seed=4)
    assert crop_a.shape == crop_b.shape == (32, 32, 3)
    assert np.abs(crop_a - crop_b).max() > 1e-3


# ---------------------------------------------------------------------------- colour ops vs NumPy


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
    images = _random_images(2, 6, seed=k)
    got = aug._JITTER_OPS[k](tf.constant(images), tf.constant(factors, tf.float32)).numpy()
    for i, factor in enumerate(factors):
        np.testing.assert_allclose(got[i], _np_jitter_op(images[i], k, factor), atol=2e-5)


def test_random_order_jitter_matches_numpy_sequence():
    view = aug.ViewConfig(jitter_prob=0.7)
    n = 12
    images = _random_images(n, 5, seed=3)
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
    config = _identity(16, solarize_prob=1.0)
    images = _random_images(4, 16)
    view_a, _ = aug.two_views(images, config, seed=0)
    np.testing.assert_allclose(_unnormalize(view_a, config), np.where(images >= 0.5, 1 - images, images), atol=1e-5)
    assert (images >= 0.5).mean() > 0.3  # the test image really had pixels to invert


def _np_blur(image, sigma, radius):
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(image, [(radius, radius), (radius, radius), (0, 0)], mode="reflect")
    rows = sum(kernel[i] * padded[i : i + image.shape[0]] for i in range(len(taps)))
    return sum(kernel[i] * rows[:, i : i + image.shape[1]] for i in range(len(taps)))


def test_gaussian_blur_matches_numpy_per_image_sigma():
    images = _random_images(3, 20)
    sigma = np.array([0.3, 1.0, 2.0], np.float32)
    got = aug.gaussian_blur(tf.constant(images), tf.constant(sigma), 2.0).numpy()
    for i in range(3):
        np.testing.assert_allclose(got[i], _np_blur(images[i], sigma[i], 6), atol=1e-5)


def _recovered_sigmas(view_images, size):
    """σ of each blurred impulse: invert the (monotonic) discrete kernel variance."""
    centre = size // 2
    profile = view_images[:, centre, :, 0]  # the row through the impulse
    profile = profile / profile.sum(1, keepdims=True)
    offsets = np.arange(size) - centre
    variance = (profile * offsets**2).sum(1)
    grid = np.linspace(0.05, 2.1, 2000)
    taps = np.arange(-6, 7)
    grid_var = np.array([(np.exp(-0.5 * (taps / s) ** 2) / np.exp(-0.5 * (taps / s) ** 2).sum() * taps**2).sum() for s in grid])
    return np.interp(variance, grid_var, grid)


def test_blur_sigma_is_drawn_per_image_and_per_step():
    size = 33
    config = _identity(size, blur_prob=1.0, blur_sigma=(0.5, 2.0))
    impulse = np.zeros([64, size, size, 3], np.float32)
    impulse[:, size // 2, size // 2] = 1.0
    step1 = _recovered_sigmas(_unnormalize(aug.two_views(impulse, config, seed=1)[0], config), size)
    step2 = _recovered_sigmas(_unnormalize(aug.two_views(impulse, config, seed=2)[0], config), size)
    assert step1.min() >= 0.5 - 0.02 and step1.max() <= 2.0 + 0.02
    assert np.std(step1) > 0.3  # U[0.5, 2] has std 0.43; one σ per batch would give 0
    assert len(np.unique(np.round(step1, 3))) > 50
    assert np.abs(step1 - step2).mean() > 0.2  # a new σ every step
    assert abs(step1.mean() - 1.25) < 0.15


# ---------------------------------------------------------------------------- probabilities


def _fraction(detect, config, images, view):
    views = aug.two_views(images, config, seed=11)
    out = _unnormalize(views[0 if view == "a" else 1], config)
    return detect(out, images).mean()


def _changed(out, images):
    return np.abs(out - images).reshape(len(images), -1).max(1) > 1e-4


@pytest.mark.parametrize("view", ["a", "b"])
def test_grayscale_probability(view):
    config = _identity(8, grayscale_prob=0.2)
    images = _random_images(N_STAT, 8)
    is_gray = lambda out, _: np.abs(out - out.mean(-1, keepdims=True)).reshape(len(out), -1).max(1) < 1e-5  # noqa: E731
    assert _fraction(is_gray, config, images, view) == pytest.approx(0.2, abs=TOL)


@pytest.mark.parametrize("view", ["a", "b"])
def test_flip_probability(view):
    config = _identity(8, flip_prob=0.5)
    images = _random_images(N_STAT, 8)
    flipped = lambda out, x: np.abs(out - x[:, :, ::-1]).reshape(len(x), -1).max(1) < 1e-5  # noqa: E731
    assert _fraction(flipped, config, images, view) == pytest.approx(0.5, abs=TOL)


@pytest.mark.parametrize("view", ["a", "b"])
def test_jitter_probability(view):
    config = _identity(8, jitter_prob=0.8)
    images = _random_images(N_STAT, 8)
    assert _fraction(_changed, config, images, view) == pytest.approx(0.8, abs=TOL)


@pytest.mark.parametrize("view, expected", [("a", 1.0), ("b", 0.1)])
def test_blur_probability_is_asymmetric(view, expected):
    preset = aug.AugmentationConfig.preset("imagenet")
    blur_prob = getattr(preset, f"view_{view}").blur_prob
    assert blur_prob == expected
    # σ ≥ 1 so that every blurred image visibly changes (σ = 0.1 is numerically the identity)
    config = _identity(16, blur_sigma=(1.0, 2.0), view_a={"blur_prob": preset.view_a.blur_prob}, view_b={"blur_prob": preset.view_b.blur_prob})
    images = _random_images(N_STAT, 16)
    assert _fraction(_changed, config, images, view) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("view, expected", [("a", 0.0), ("b", 0.2)])
def test_solarize_probability_is_asymmetric(view, expected):
    preset = aug.AugmentationConfig.preset("imagenet")
    config = _identity(8, view_a={"solarize_prob": preset.view_a.solarize_prob}, view_b={"solarize_prob": preset.view_b.solarize_prob})
    images = _random_images(N_STAT, 8)
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
        pixels = _unnormalize(view, config)
        assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
        np.testing.assert_allclose(view, eager, atol=1e-4)
