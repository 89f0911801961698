"""Small synthetic data shared by the evaluation tests (as fixtures: test modules are
imported with `--import-mode=importlib` and cannot import each other). The tiny encoder is
the `tiny_encoder` fixture of tests/conftest.py."""

import numpy as np
import pytest


def _blobs(n_per_class=30, classes=4, dim=6, spread=0.6, seed=0):
    """Gaussian blobs around random centres: features and labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 2
    labels = np.repeat(np.arange(classes), n_per_class)
    return (centres[labels] + spread * rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def _image_blobs(n_per_class=12, classes=3, seed=0):
    """Images whose class sets the mean brightness of one channel: easy, but not trivial."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    images = rng.uniform(0, 0.3, size=(len(labels), 8, 8, 3)).astype(np.float32)
    images[np.arange(len(labels)), :, :, labels] += 0.6
    return images, labels


@pytest.fixture
def blobs():
    return _blobs


@pytest.fixture
def image_blobs():
    return _image_blobs
