"""Shared helpers of the augmentation tests: identity configs, random images, un-normalising."""

import numpy as np

from keras_barlow import augment as aug

N_STAT = 2000  # images per probability test
TOL = 0.03


def identity_config(size=16, **view):
    """A config whose views are the identity (full crop, no ops) except `view` overrides."""
    off = dict(
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        flip_prob=0.0,
        jitter_prob=0.0,
        grayscale_prob=0.0,
        blur_prob=0.0,
        solarize_prob=0.0,
    )
    return aug.AugmentationConfig.preset("imagenet", image_size=size, **{**off, **view})


def unnormalize(views, config):
    return views.numpy() * np.array(config.std) + np.array(config.mean)


def random_images(n, size=16, seed=0):
    return np.random.default_rng(seed).uniform(0.05, 0.95, (n, size, size, 3)).astype(np.float32)
