"""Shared helpers of the data tests."""

import numpy as np

from keras_barlow import augment as aug
from keras_barlow.data import pretraining_dataset


def pixels(views, config="cifar"):
    """Normalised views back to RGB in [0, 1]."""
    config = aug.as_config(config)
    return views.numpy() * np.array(config.std) + np.array(config.mean)


def first(dataset, n=1):
    """The first `n` elements of `dataset` as tuples of NumPy arrays."""
    return [tuple(t.numpy() for t in element) for element in dataset.take(n)]


def first_batch(source, **kwargs):
    """The first `(view_a, view_b)` batch of `pretraining_dataset(source)`: 8 images of 16 px
    with the cifar preset and seed 0, unless `kwargs` say otherwise."""
    kwargs = {
        "batch_size": 8,
        "augment": aug.AugmentationConfig.preset("cifar", image_size=16),
        "seed": 0,
        **kwargs,
    }
    return next(iter(pretraining_dataset(source, **kwargs)))
