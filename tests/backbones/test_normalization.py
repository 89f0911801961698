"""The [0, 1] normalisation statistics: what `check_mean_std` and
`check_unit_scale_statistics` accept, and what they refuse wherever statistics are given."""

import pytest

import keras_barlow
from keras_barlow import augment as aug
from keras_barlow.backbones import normalization, resnet


@pytest.mark.parametrize(
    "mean, std, match",
    [
        ((0.5, 0.5), (1, 1, 1), "mean needs one value per RGB channel"),
        ((0, 0, 0), (1, 1), "std needs one value per RGB channel"),
        ((0, 0, 0), (0, 1, 1), "positive stds"),
        (None, (1, 1, 1), "3 numbers each"),
        (("a", 0, 0), (1, 1, 1), "3 numbers each"),
    ],
)
def test_check_mean_std_rejects_bad_statistics(mean, std, match):
    with pytest.raises(ValueError, match=match):
        normalization.check_mean_std(mean, std)


def test_check_mean_std_returns_float_tuples():
    assert normalization.check_mean_std([0, 1, 2], (1, 2, 3)) == ((0.0, 1.0, 2.0), (1.0, 2.0, 3.0))
    assert normalization.check_mean_std(normalization.IMAGENET_MEAN, normalization.IMAGENET_STD) == (
        normalization.IMAGENET_MEAN,
        normalization.IMAGENET_STD,
    )


# --- bad input, as a new user gives it: an error naming the problem and the fix -------------


@pytest.mark.parametrize(
    "statistics",
    [
        {"mean": (123.7, 116.3, 103.5), "std": (58.4, 57.1, 57.4)},
        {"mean": (0.5,) * 3, "std": (58.4, 57.1, 57.4)},
    ],
    ids=["0-255-mean", "0-255-std"],
)
def test_normalisation_statistics_on_the_0_255_scale_are_refused(statistics):
    with pytest.raises(
        ValueError, match=r"statistics of RGB pixels in \[0, 1\].*divide 0-255 statistics by 255"
    ):
        aug.AugmentationConfig.preset("cifar", **statistics)
    with pytest.raises(ValueError, match=r"divide 0-255 statistics by 255"):
        keras_barlow.detector(resnet(18, width=4), num_classes=3, preprocessing=statistics)
