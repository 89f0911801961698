"""Shared helpers of the data tests."""

import numpy as np

from keras_barlow import augment as aug


def pixels(views, config="cifar"):
    """Normalised views back to RGB in [0, 1]."""
    config = aug.as_config(config)
    return views.numpy() * np.array(config.std) + np.array(config.mean)


def first(dataset, n=1):
    """The first `n` elements of `dataset` as tuples of NumPy arrays."""
    return [tuple(t.numpy() for t in element) for element in dataset.take(n)]
