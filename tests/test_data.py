"""Sources and pipelines: digits, NumPy, folders (with corrupt files), TFDS (mocked),
tf.data inputs, bad shapes, sharding, determinism per seed."""

import logging
import os
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_barlow import augment as aug
from keras_barlow import data
from tests.conftest import run_python

pytestmark = pytest.mark.tensorflow_only


def _pixels(views, config="cifar"):
    config = aug.as_config(config)
    return views.numpy() * np.array(config.std) + np.array(config.mean)


def _first(dataset, n=1):
    return [tuple(t.numpy() for t in element) for element in dataset.take(n)]


# ---------------------------------------------------------------------------- digits


def test_digits_arrays_fixed_stratified_split():
    train_x, train_y = data.load_digits_arrays("train")
    test_x, test_y = data.load_digits_arrays("test")
    all_x, all_y = data.load_digits_arrays("all")
    assert train_x.shape == (1347, 8, 8, 1) and test_x.shape == (450, 8, 8, 1)
    assert train_x.dtype == np.uint8 and train_x.max() == 255 and train_x.min() == 0
    assert np.abs(np.bincount(test_y) / np.bincount(all_y) - 0.25).max() < 0.01  # stratified
    # a partition of the 1,797 images, and the same every call
    rows = lambda x, y: sorted(map(bytes, np.concatenate([x.reshape(len(x), -1), y[:, None].astype(np.uint8)], 1)))  # noqa: E731
    assert rows(np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])) == rows(all_x, all_y)
    np.testing.assert_array_equal(data.load_digits_arrays("test")[0], test_x)
    with pytest.raises(ValueError, match="splits"):
        data.load_digits_arrays("validation")


def test_digits_pretraining_static_batches_and_ranges():
    ds = data.pretraining_dataset("digits", batch_size=128, preset="digits", seed=0)
    assert [s.shape.as_list() for s in ds.element_spec] == [[128, 32, 32, 3]] * 2
    batches = _first(ds, 20)
    assert len(batches) == 1347 // 128  # drop_remainder
    view_a, view_b = batches[0]
    for view in (view_a, view_b):
        pixels = _pixels(tf.constant(view), "digits")
        assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5 and pixels.std() > 0.1
    assert np.abs(view_a - view_b).mean() > 0.05


def test_same_seed_same_batches_new_seed_and_new_epoch_differ():
    make = lambda seed: data.pretraining_dataset("digits", batch_size=64, preset="digits", seed=seed)  # noqa: E731
    first, again, other = make(3), make(3), make(4)
    epoch1 = _first(first, 2)
    for (a1, b1), (a2, b2) in zip(epoch1, _first(again, 2)):
        np.testing.assert_array_equal(a1, a2)
        np.testing.assert_array_equal(b1, b2)
    assert np.abs(epoch1[0][0] - _first(other)[0][0]).max() > 0.5
    epoch2 = _first(first, 1)  # a new iterator: reshuffled, new augmentation draws
    assert np.abs(epoch1[0][0] - epoch2[0][0]).max() > 0.5


def test_labeled_digits_normalised_like_the_views():
    test_x, test_y = data.load_digits_arrays("test")
    ds = data.labeled_dataset("digits", batch_size=100, preset="digits", split="test")
    images, labels = zip(*_first(ds, 10))
    images, labels = np.concatenate(images), np.concatenate(labels)
    np.testing.assert_array_equal(labels, test_y)  # fixed order, no drop
    expected = tf.image.resize(np.repeat(test_x, 3, -1) / 255.0, (32, 32), "bilinear").numpy()
    np.testing.assert_allclose(_pixels(tf.constant(images), "digits"), expected, atol=1e-5)


def test_default_presets():
    assert data.default_preset("digits") == "digits"
    assert data.default_preset("cifar100") == "cifar"
    assert data.default_preset("imagenet2012") == data.default_preset(np.zeros([2, 4, 4, 3])) == "imagenet"


# ---------------------------------------------------------------------------- NumPy


def test_numpy_sources_grey_and_float():
    grey = np.random.default_rng(0).integers(0, 256, [20, 12, 12], dtype=np.uint8)
    ds = data.pretraining_dataset(grey, batch_size=8, preset="cifar", image_size=16, seed=0)
    (view_a, _), = _first(ds)
    assert view_a.shape == (8, 16, 16, 3)
    rgb = np.random.default_rng(1).uniform(size=[10, 9, 9, 3]).astype(np.float32)
    labels = np.arange(10)
    ds = data.labeled_dataset((rgb, labels), batch_size=4, preset="cifar", image_size=9)
    images, got = zip(*_first(ds, 5))
    np.testing.assert_array_equal(np.concatenate(got), labels)
    np.testing.assert_allclose(_pixels(tf.constant(np.concatenate(images))), rgb, atol=1e-5)  # same size: identity


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
        data.pretraining_dataset(source, **{"batch_size": 4, "preset": "cifar", **kwargs})


# ---------------------------------------------------------------------------- folders


def _write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)


def _png(seed, shape):
    return tf.io.encode_png(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).numpy()


@pytest.fixture
def image_folder(tmp_path):
    for i in range(6):  # different sizes, grey and colour
        _write(str(tmp_path / "cat" / f"{i}.png"), _png(i, (20 + i, 30 - i, 3)))
        _write(str(tmp_path / "dog" / "nested" / f"{i}.jpg"), tf.io.encode_jpeg(np.full((24, 18 + i, 1), 40 * i, np.uint8)).numpy())
    _write(str(tmp_path / "cat" / "garbage.png"), b"this is not an image at all")
    _write(str(tmp_path / "dog" / "empty.jpg"), b"")
    truncated = _png(99, (16, 16, 3))
    _write(str(tmp_path / "dog" / "truncated.png"), truncated[: len(truncated) // 2])
    _write(str(tmp_path / "dog" / "notes.txt"), b"ignored: not an image extension")
    return tmp_path


def test_scan_counts_corrupt_files(image_folder, caplog):
    with caplog.at_level(logging.WARNING):
        folder = data.scan_image_folder(str(image_folder))
    assert folder.class_names == ["cat", "dog"]
    assert len(folder.files) == 13 and sorted(set(folder.labels)) == [0, 1]
    assert sorted(os.path.basename(p) for p, _ in folder.skipped) == ["empty.jpg", "garbage.png"]
    assert "skipped 2" in caplog.text
    decoded = data.scan_image_folder(str(image_folder), validate="decode")
    assert len(decoded.skipped) == 3 and len(decoded.files) == 12


def test_folder_pipelines_skip_undecodable_files_without_crashing(image_folder):
    # truncated.png passes the header check and fails to decode inside the pipeline.
    ds = data.labeled_dataset(str(image_folder), batch_size=5, preset="cifar", image_size=16)
    labels = np.concatenate([labels for _, labels in _first(ds, 10)])
    assert sorted(labels.tolist()) == [0] * 6 + [1] * 6
    ds = data.pretraining_dataset(str(image_folder), batch_size=4, preset="imagenet", image_size=16, seed=0)
    assert [s.shape.as_list() for s in ds.element_spec] == [[4, 16, 16, 3]] * 2
    batches = _first(ds, 10)
    assert len(batches) == 3
    assert all(np.isfinite(v).all() for batch in batches for v in batch)


def test_flat_folder_pretrains_but_has_no_labels(tmp_path):
    for i in range(4):
        _write(str(tmp_path / f"{i}.png"), _png(i, (10, 12, 3)))
    ds = data.pretraining_dataset(data.scan_image_folder(str(tmp_path)), batch_size=2, preset="cifar", image_size=8, seed=0)
    assert len(_first(ds, 5)) == 2
    with pytest.raises(ValueError, match="needs labels"):
        data.labeled_dataset(str(tmp_path), batch_size=2, preset="cifar")
    with pytest.raises(ValueError, match="does not exist"):
        data.pretraining_dataset(str(tmp_path / "missing"), batch_size=2)


# ---------------------------------------------------------------------------- TFDS


def test_tfds_cifar10_with_mock_data():
    with tfds.testing.mock_data(num_examples=24):
        ds = data.pretraining_dataset("cifar10", batch_size=8, preset="cifar", seed=0)
        batches = _first(ds, 10)
        labeled = data.labeled_dataset("cifar10", split="test", batch_size=10, preset="cifar")
        labels = np.concatenate([y for _, y in _first(labeled, 10)])
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
    ds = data.labeled_dataset(batched, batch_size=6, preset="cifar", image_size=10)
    got = np.concatenate([y for _, y in _first(ds, 5)])
    np.testing.assert_array_equal(got, labels)

    def varying():  # images of different sizes: the per-image crop path
        for i in range(6):
            yield np.full((8 + i, 12 - i, 3), 20 * i, np.uint8)

    source = tf.data.Dataset.from_generator(varying, output_signature=tf.TensorSpec((None, None, 3), tf.uint8))
    ds = data.pretraining_dataset(source, batch_size=3, preset="cifar", image_size=8, seed=0)
    assert [b[0].shape for b in _first(ds, 5)] == [(3, 8, 8, 3)] * 2


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


# ---------------------------------------------------------------------------- distribution


def test_input_context_shards_and_uses_per_replica_batch():
    images = np.zeros([40, 6, 6, 3], np.uint8)
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2)
        ds = data.labeled_dataset((images, np.arange(40)), batch_size=8, preset="cifar", image_size=6, input_context=context)
        batches = _first(ds, 10)
        assert all(len(labels) == 4 for _, labels in batches)
        seen.append(set(np.concatenate([labels for _, labels in batches]).tolist()))
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(range(40))
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=4)
    ds = data.pretraining_dataset(images, batch_size=16, preset="cifar", image_size=6, input_context=context)
    assert ds.element_spec[0].shape.as_list() == [4, 6, 6, 3]


@pytest.mark.slow
def test_distribute_datasets_from_function_on_two_replicas():
    out = run_python(textwrap.dedent("""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from keras_barlow import data
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        fn = lambda ctx: data.pretraining_dataset("digits", batch_size=32, preset="digits", seed=0, input_context=ctx)
        dist = strategy.distribute_datasets_from_function(fn)
        view_a, view_b = next(iter(dist))
        shapes = [tuple(v.shape) for v in strategy.experimental_local_results(view_a)]
        print("SHAPES", shapes)
    """))
    assert "SHAPES [(16, 32, 32, 3), (16, 32, 32, 3)]" in out
