"""Sources: the digits split, NumPy arrays, TFDS (mocked), tf.data inputs, bad inputs."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_barlow import data
from keras_barlow.augment import AugmentationConfig
from tests.data.helpers import first, pixels

pytestmark = pytest.mark.tensorflow_only


def test_digits_arrays_fixed_stratified_split():
    train_x, train_y = data.load_digits_arrays("train")
    test_x, test_y = data.load_digits_arrays("test")
    all_x, all_y = data.load_digits_arrays("all")
    assert train_x.shape == (1347, 8, 8, 1) and test_x.shape == (450, 8, 8, 1)
    assert train_x.dtype == np.uint8 and train_x.max() == 255 and train_x.min() == 0
    assert np.abs(np.bincount(test_y) / np.bincount(all_y) - 0.25).max() < 0.01  # stratified

    # a partition of the 1,797 images, and the same every call
    def rows(x, y):
        return sorted(map(bytes, np.concatenate([x.reshape(len(x), -1), y[:, None].astype(np.uint8)], 1)))

    assert rows(np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])) == rows(all_x, all_y)
    np.testing.assert_array_equal(data.load_digits_arrays("test")[0], test_x)
    with pytest.raises(ValueError, match="splits"):
        data.load_digits_arrays("validation")


def test_numpy_sources_grey_and_float():
    grey = np.random.default_rng(0).integers(0, 256, [20, 12, 12], dtype=np.uint8)
    ds = data.pretraining_dataset(
        grey, batch_size=8, augment=AugmentationConfig.preset("cifar", image_size=16), seed=0
    )
    ((view_a, _),) = first(ds)
    assert view_a.shape == (8, 16, 16, 3)
    rgb = np.random.default_rng(1).uniform(size=[10, 9, 9, 3]).astype(np.float32)
    labels = np.arange(10)
    ds = data.labeled_dataset(
        (rgb, labels),
        batch_size=4,
        augment=AugmentationConfig.preset("cifar", image_size=9),
    )
    images, got = zip(*first(ds, 5))
    np.testing.assert_array_equal(np.concatenate(got), labels)
    np.testing.assert_allclose(
        pixels(tf.constant(np.concatenate(images))), rgb, atol=1e-5
    )  # same size: identity


@pytest.mark.parametrize(
    "source, kwargs, match",
    [
        (np.zeros([10, 8, 8, 2], np.uint8), {}, "1 or 3"),
        (np.zeros([10, 8, 8, 4], np.uint8), {}, "alpha"),
        (np.zeros([10], np.uint8), {}, r"\(n, h, w\)"),
        (np.full([4, 8, 8, 3], "a.png"), {}, "strings"),
        (np.zeros([10, 8, 8, 3], np.int64), {}, "dtype int64"),
        (np.zeros([10, 8, 8, 3], np.uint8), {"batch_size": 16}, "fewer than one batch"),
        (np.zeros([10, 8, 8, 3], np.uint8), {"batch_size": 1}, "at least 2"),
        ((np.zeros([10, 8, 8, 3], np.uint8), np.zeros(9)), {}, "10 images but 9 labels"),
        ({"images": 1}, {}, "unsupported source"),
        ("digits", {"augment": 3}, "augment"),
    ],
)
def test_bad_sources_raise(source, kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.pretraining_dataset(source, **{"batch_size": 4, "augment": "cifar", **kwargs})


def test_tfds_cifar10_with_mock_data():
    with tfds.testing.mock_data(num_examples=24):
        ds = data.pretraining_dataset("cifar10", batch_size=8, augment="cifar", seed=0)
        batches = first(ds, 10)
        labeled = data.labeled_dataset(
            "cifar10",
            split="test",
            batch_size=10,
            augment="cifar",
        )
        labels = np.concatenate([y for _, y in first(labeled, 10)])
    assert len(batches) == 3 and batches[0][0].shape == (8, 32, 32, 3)
    assert len(labels) == 24 and labels.min() >= 0 and labels.max() < 10


def test_tfds_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="not a TFDS dataset name"):
        data.pretraining_dataset("no_such_dataset_xyz", batch_size=4)
    with pytest.raises(ValueError, match="not prepared"):
        data.pretraining_dataset("cifar10", batch_size=4, data_dir=str(tmp_path))


# ---------------------------------------------------------------------------- tf.data


def test_tf_dataset_sources():
    images = np.random.default_rng(0).integers(0, 256, [12, 10, 10, 3], dtype=np.uint8)
    labels = np.arange(12)
    batched = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels}).batch(5)
    ds = data.labeled_dataset(
        batched,
        batch_size=6,
        augment=AugmentationConfig.preset("cifar", image_size=10),
    )
    got = np.concatenate([y for _, y in first(ds, 5)])
    np.testing.assert_array_equal(got, labels)

    def varying():  # images of different sizes: the per-image crop path
        for i in range(6):
            yield np.full((8 + i, 12 - i, 3), 20 * i, np.uint8)

    source = tf.data.Dataset.from_generator(
        varying, output_signature=tf.TensorSpec((None, None, 3), tf.uint8)
    )
    ds = data.pretraining_dataset(
        source, batch_size=3, augment=AugmentationConfig.preset("cifar", image_size=8), seed=0
    )
    assert [b[0].shape for b in first(ds, 5)] == [(3, 8, 8, 3)] * 2


@pytest.mark.parametrize(
    "dataset, match",
    [
        (tf.data.Dataset.from_tensor_slices(np.zeros([4, 8, 8, 2], np.uint8)), "1 or 3"),
        (tf.data.Dataset.from_tensor_slices(tf.constant(["a", "b"])), "strings"),
        (tf.data.Dataset.from_tensor_slices({"pixels": np.zeros([4, 8, 8, 3])}), "'image' key"),
    ],
)
def test_bad_tf_datasets_raise(dataset, match):
    with pytest.raises(ValueError, match=match):
        data.pretraining_dataset(dataset, batch_size=2)
