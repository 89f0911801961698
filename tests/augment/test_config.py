"""The augmentation config: the paper's presets, overrides per view, validation, round trip."""

import pytest

from keras_barlow import augment as aug
from keras_barlow.backbones import normalization


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
    assert config.mean == normalization.IMAGENET_MEAN and config.std == normalization.IMAGENET_STD


def test_small_presets():
    cifar = aug.AugmentationConfig.preset("cifar")
    assert cifar.image_size == (32, 32) and cifar.view_a.blur_prob == cifar.view_b.blur_prob == 0.0
    assert cifar.view_b.solarize_prob == 0.2 and cifar.view_a.crop_scale == (0.08, 1.0)
    digits = aug.AugmentationConfig.preset("digits")
    assert digits.view_a.crop_scale == (0.4, 1.0) and digits.view_a.hue == 0 and digits.view_a.blur_prob == 0


def test_replace_both_views_one_view_and_round_trip():
    config = aug.AugmentationConfig.preset(
        "imagenet", image_size=64, blur_prob=0.5, view_b={"solarize_prob": 0.7}
    )
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


# --- bad input, as a new user gives it: an error naming the problem and the fix -------------


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, r"0"),
        (-5, r"-5"),
        ("32", r"'32'"),
        (True, r"True \(bool\)"),
        ((32, 32, 3), r"\(32, 32, 3\) \(tuple\)"),
        (16.5, r"16\.5 \(float\)"),
    ],
    ids=["image-size-0", "negative-image-size", "string", "bool", "three-numbers", "fraction"],
)
def test_image_sizes_that_are_not_sizes_are_named_with_their_type(size, shown):
    with pytest.raises(
        ValueError, match=rf"image_size must be a positive int or \(height, width\), got {shown}"
    ):
        aug.AugmentationConfig.preset("cifar", image_size=size)


def test_a_scalar_crop_scale_is_refused_as_not_a_pair():
    with pytest.raises(ValueError, match=r"crop_scale must be a \(min, max\) pair of numbers, got 0\.5"):
        aug.AugmentationConfig.preset("cifar", crop_scale=0.5)
