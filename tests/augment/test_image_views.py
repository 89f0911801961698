"""The per-image views (`image_views`, the pipelines' path for images of varying size): its
crop windows are torchvision's, its crop is the window resized, every probability holds,
and its ops are the batched ones."""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_barlow import augment as aug
from keras_barlow.augment.seeds import split_seed, uniform
from tests.augment.helpers import N_STAT, TOL, identity_config, random_images, unnormalize

pytestmark = pytest.mark.tensorflow_only  # tf ops; the backend is irrelevant but TF is needed

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


def _torchvision_get_params(height, width, area_draws, log_ratio_draws, offset_draws, ratio=RATIO):
    """torchvision's `RandomResizedCrop.get_params` (v0.19), its random numbers given:
    `area_draws` and `log_ratio_draws` (one per attempt) and two offsets in [0, 1)."""
    area = height * width
    for target_fraction, log_ratio in zip(area_draws, log_ratio_draws):
        aspect_ratio = math.exp(log_ratio)
        w = round(math.sqrt(area * target_fraction * aspect_ratio))
        h = round(math.sqrt(area * target_fraction / aspect_ratio))
        if 0 < w <= width and 0 < h <= height:
            # torch.randint(0, height - h + 1) from a uniform draw
            return int(offset_draws[0] * (height - h + 1)), int(offset_draws[1] * (width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _draws(seed, attempts=10):
    """The random numbers `sample_crop_pixels` draws from `seed`."""
    s_area, s_ratio, s_offset = split_seed(seed, 3)
    area = uniform(s_area, [1, attempts], *SCALE).numpy()[0]
    log_ratio = uniform(s_ratio, [1, attempts], math.log(RATIO[0]), math.log(RATIO[1])).numpy()[0]
    return area, log_ratio, uniform(s_offset, [2]).numpy()


@pytest.mark.parametrize("shape", [(375, 500), (32, 32), (4, 400), (300, 7)])
def test_crop_pixels_are_torchvisions_get_params(shape):
    """Given the same random numbers, the windows are torchvision's (whole pixels; the
    fallback centred for shapes no draw fits)."""
    height, width = shape
    matches = 0
    for k in range(200):
        seed = tf.constant([k, 17], tf.int64)
        got = tuple(int(t) for t in aug.sample_crop_pixels(seed, height, width, SCALE, RATIO))
        expected = _torchvision_get_params(height, width, *_draws(seed))
        top, left, h, w = got
        assert 0 <= top <= height - h and 0 <= left <= width - w and h > 0 and w > 0
        # float32 here, float64 there: a size just at .5 may round the other way
        assert np.abs(np.subtract(got, expected)).max() <= 1
        matches += got == expected
    assert matches >= 196


@pytest.mark.parametrize("shape", [(375, 500), (60, 20)])
def test_crop_pixels_keep_the_area_and_aspect_distribution(shape):
    """The whole-pixel windows are the fractional windows of `sample_crop_boxes` (same
    seeds) rounded: the same area and aspect-ratio distribution, offsets uniform."""
    height, width = shape
    seeds = tf.data.Dataset.range(N_STAT // 2).map(lambda k: tf.stack([k, 3]))
    pixels, boxes = next(
        iter(
            seeds.map(
                lambda seed: (
                    tf.stack(aug.sample_crop_pixels(seed, height, width, SCALE, RATIO)),
                    tf.stack([t[0] for t in aug.sample_crop_boxes(seed, [height], [width], SCALE, RATIO)]),
                )
            ).batch(N_STAT)
        )
    )
    top, _, h, w = pixels.numpy().astype(np.float64).T
    _, _, box_h, box_w = boxes.numpy().astype(np.float64).T
    area, box_area = h * w / (height * width), box_h * box_w / (height * width)
    assert abs(area.mean() - box_area.mean()) < 0.01 and abs(area.std() - box_area.std()) < 0.01
    assert abs(np.median(w / h) - np.median(box_w / box_h)) < 0.03
    # the same draw, rounded; a window just wider or taller than the image after rounding
    # falls to the next draw (narrow images)
    rounded = (np.abs(h - box_h) <= 0.5 + 1e-3) & (np.abs(w - box_w) <= 0.5 + 1e-3)
    assert rounded.mean() > 0.9
    free = height - h
    assert abs((top[free > 2] / free[free > 2]).mean() - 0.5) < 0.05


@pytest.mark.parametrize("window", [(0, 0, 37, 53), (3, 7, 20, 11), (10, 40, 27, 13), (36, 52, 1, 1)])
def test_resize_window_is_the_window_resized(window):
    image = np.random.default_rng(0).integers(0, 256, [37, 53, 3], dtype=np.uint8)
    top, left, h, w = window
    expected = tf.image.resize(image[top : top + h, left : left + w], (16, 24)).numpy() / 255.0
    got = aug.resize_window(tf.constant(image), *window, (16, 24))
    assert got.shape == (16, 24, 3) and got.dtype == tf.float32
    np.testing.assert_allclose(got, expected, atol=1e-6)
    flipped = aug.resize_window(tf.constant(image), *window, (16, 24), flip=tf.constant(True))
    np.testing.assert_allclose(flipped, expected[:, ::-1], atol=1e-6)
    as_float = aug.resize_window(tf.constant(image / 255.0, tf.float32), *window, (16, 24))
    np.testing.assert_allclose(as_float, expected, atol=1e-6)


def test_blur_image_and_normalize_image_equal_the_batched_ops():
    images = random_images(3, 40)
    for image, sigma, max_sigma in zip(images, (0.1, 1.3, 2.0), (2.0, 2.0, 1.0)):
        np.testing.assert_allclose(
            aug.blur_image(tf.constant(image), tf.constant([sigma]), max_sigma),
            aug.gaussian_blur(tf.constant(image[None]), tf.constant([sigma]), max_sigma)[0],
            atol=1e-6,
        )
        for preset in ("imagenet", "mnist5k"):
            np.testing.assert_allclose(
                aug.normalize_image(tf.constant(image), preset), aug.normalize(image, preset), atol=1e-5
            )


def _views(images, config, seed=11):
    """`image_views` of each image, with its own seed (as the pipelines give), in a graph."""
    seeds = tf.random.stateless_uniform([len(images), 2], [seed, 0], maxval=2**31 - 1, dtype=tf.int64)
    views = tf.data.Dataset.from_tensor_slices((images, seeds)).map(
        lambda image, s: aug.image_views(image, config, seed=s)
    )
    view_a, view_b = next(iter(views.batch(len(images))))
    return unnormalize(view_a, config), unnormalize(view_b, config)


def _changed(out, images):
    return np.abs(out - images).reshape(len(images), -1).max(1) > 1e-4


def _equal(out, expected):
    return np.abs(out - expected).reshape(len(out), -1).max(1) < 1e-5


def _flipped(out, images):
    return _equal(out, images[:, :, ::-1])


def _grey(out, _):
    return _equal(out, out.mean(-1, keepdims=True) + 0 * out)


def _solarized(out, images):
    return _equal(out, np.where(images >= 0.5, 1 - images, images))


@pytest.mark.parametrize(
    "option, value, detect, expected",
    [
        ("flip_prob", 0.5, _flipped, (0.5, 0.5)),
        ("grayscale_prob", 0.2, _grey, (0.2, 0.2)),
        ("jitter_prob", 0.8, _changed, (0.8, 0.8)),
        ("preset", None, _changed, (1.0, 0.1)),  # blur, σ ≥ 1 so that it visibly changes every image
        ("preset", None, _solarized, (0.0, 0.2)),
    ],
    ids=["flip", "grayscale", "jitter", "blur", "solarize"],
)  # fmt: skip
def test_every_probability_per_view(option, value, detect, expected):
    preset = aug.AugmentationConfig.preset("imagenet")
    if option != "preset":
        config = identity_config(8, **{option: value})
    elif expected == (1.0, 0.1):
        config = identity_config(
            16, blur_sigma=(1.0, 2.0), view_a={"blur_prob": preset.view_a.blur_prob},
            view_b={"blur_prob": preset.view_b.blur_prob},
        )  # fmt: skip
    else:
        config = identity_config(
            8, view_a={"solarize_prob": preset.view_a.solarize_prob},
            view_b={"solarize_prob": preset.view_b.solarize_prob},
        )  # fmt: skip
    images = random_images(N_STAT, config.image_size[0])
    for out, probability in zip(_views(images, config), expected):
        assert detect(out, images).mean() == pytest.approx(probability, abs=TOL)


def test_the_ops_and_their_order_are_the_batched_views():
    """With every draw forced (whole-image crop, grayscale, blur σ 1.5, solarisation), the
    per-image views are `two_views`' to float rounding."""
    config = identity_config(
        24,
        grayscale_prob=1.0,
        blur_prob=1.0,
        blur_sigma=(1.5, 1.5),
        solarize_prob=1.0,
        solarize_threshold=0.4,
    )
    image = random_images(1, 24)[0]
    per_image = aug.image_views(image, config, seed=1)
    batched = aug.two_views(image[None], config, seed=2)
    for got, expected in zip(per_image, batched):
        np.testing.assert_allclose(got, expected[0], atol=2e-5)


def test_deterministic_per_seed_any_input_and_the_affine_preset():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, [45, 61, 3]).astype(np.uint8)
    config = aug.AugmentationConfig.preset("imagenet", image_size=16)
    a1, b1 = aug.image_views(image, config, seed=7)
    a2, b2 = aug.image_views(image, config, seed=7)
    a3, _ = aug.image_views(image, config, seed=8)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    assert np.abs(a1 - a3).max() > 0.1 and np.abs(a1 - b1).max() > 0.1
    assert a1.shape == (16, 16, 3) and a1.dtype == tf.float32
    as_float = aug.image_views(image.astype(np.float32) / 255.0, config, seed=7)
    np.testing.assert_allclose(as_float[0], a1, atol=1e-4)
    grey = aug.image_views(image[..., :1], config, seed=7)[0]
    assert grey.shape == (16, 16, 3)
    mnist = aug.image_views(image[..., :1], "mnist5k", seed=3)  # rotation and shear: the batched warp
    assert [v.shape for v in mnist] == [(16, 16, 3)] * 2
    with pytest.raises(ValueError, match="one image"):
        aug.image_views(image[None], config, seed=0)
    with pytest.raises(ValueError, match="string"):
        aug.image_views(tf.constant("a.jpg"), config, seed=0)
