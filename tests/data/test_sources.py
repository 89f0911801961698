"""Sources: the digits split, NumPy arrays, TFDS (mocked), tf.data inputs, bad inputs."""

import os
import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from helpers import uniform_images

from keras_barlow import data
from keras_barlow.augment import AugmentationConfig
from keras_barlow.data.folders import check_not_a_url, scan_image_files
from tests.data.helpers import first, first_batch, pixels

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


# --- bad input, as a new user gives it: an error naming the problem and the fix -------------


def test_float_images_in_0_255_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\].*(/ ?255|divide)"):
        first_batch(uniform_images(scale=255.0))


def test_negative_float_images_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        first_batch(uniform_images(offset=-1.0))


def test_grey_images_without_channel_axis_become_rgb():
    view_a, view_b = first_batch(uniform_images(channels=3)[..., 0])
    assert view_a.shape == view_b.shape == (8, 16, 16, 3)


def test_uint8_images_are_accepted():
    view_a, _ = first_batch(uniform_images(dtype="uint8", scale=255.0))
    assert view_a.shape == (8, 16, 16, 3) and np.isfinite(view_a).all()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (uniform_images(channels=5), r"\(height, width, 1 or 3\), got \(16, 16, 5\).*\[\.\.\., :3\]"),
        (
            uniform_images(dtype="int64", scale=255.0),
            r"uint8 \[0, 255\] or float \[0, 1\] images, got dtype int64",
        ),
    ],
    ids=["five-channels", "int64"],
)
def test_pretraining_dataset_refuses_unusable_arrays(source, message):
    with pytest.raises(ValueError, match=message):
        first_batch(source)


def test_unknown_source_names_what_was_tried():
    with pytest.raises(
        ValueError,
        match=r"unknown source 'digitz': not 'digits' or 'mnist5k', not an existing directory, "
        r"and not a TFDS",
    ):
        first_batch("digitz")


def test_labels_and_images_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match=r"got 40 images but 30 labels"):
        data.labeled_dataset(
            (uniform_images(), np.arange(30)),
            batch_size=8,
            augment=AugmentationConfig.preset("cifar", image_size=16),
        )


def test_negative_labels_are_refused():
    with pytest.raises(ValueError, match=r"labels.*-5.*non-negative"):
        data.labeled_dataset(
            (uniform_images(), np.arange(40) - 5),
            batch_size=8,
            augment=AugmentationConfig.preset("cifar", image_size=16),
        )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (uniform_images(offset=np.nan), r"NaN or infinite pixels.*nan_to_num"),
        (uniform_images(dtype="uint16", scale=65535.0), r"got dtype uint16.*/ 65535"),
        (uniform_images(1)[0], r"got shape \(16, 16, 3\), one colour image\?.*images\[None\]"),
        (
            [uniform_images(1, size=16)[0], uniform_images(1, size=20)[0]],
            r"different shapes.*tf\.data\.Dataset",
        ),
        ((uniform_images(), np.arange(40) + 0.5), r"labels must be whole class indices, got 0\.5"),
        ((uniform_images(), np.array(["cat", "dog"] * 20)), r"integer class indices.*np\.unique"),
        ((uniform_images(), np.eye(40)), r"labels must have shape \(n,\).*\(40, 40\).*one-hot.*argmax"),
    ],
    ids=["nan-pixels", "uint16", "one-image", "ragged-list", "fractional-labels", "string-labels", "one-hot"],
)
def test_array_sources_refuse_what_they_cannot_use(source, message):
    with pytest.raises(ValueError, match=message):
        first_batch(source)


def test_unlabelled_marker_minus_one_is_accepted_for_pretraining():
    view_a, _ = first_batch((uniform_images(), np.full(40, -1)))
    assert view_a.shape == (8, 16, 16, 3)


@pytest.mark.parametrize(
    ("element", "message"),
    [
        ((uniform_images(scale=255.0), np.arange(40)), r"pixels in \[0, 1\].*divide 0-255 pixels by 255"),
        ((uniform_images(), np.arange(40) - 5), r"class indices must be non-negative"),
    ],
    ids=["float-0-255", "negative-labels"],
)
def test_tf_data_sources_are_checked_in_the_graph(element, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        first_batch(tf.data.Dataset.from_tensor_slices(element))


SMALL = AugmentationConfig.preset("cifar", image_size=8)


def _png(value):
    return tf.io.encode_png(np.full((10, 12, 3), value, np.uint8)).numpy()


@pytest.mark.parametrize(
    "url", ["https://example.com/images.zip", "http://example.com/photos/", "ftp://example.com/x.tar"]
)
def test_a_url_source_says_that_nothing_is_downloaded_and_how_to_pass_files(url):
    expected = re.escape(
        f"{url!r} is a URL, and image sources are not downloaded: download it and unpack it into a local "
        "folder (e.g. keras.utils.get_file(origin=url, extract=True)), then pass that folder; or pass a TFDS "
        "dataset name with data_dir= where it is prepared"
    )
    for call in (
        lambda: data.pretraining_dataset(url, batch_size=2, augment=SMALL),
        lambda: data.scan_image_folder(url),
        lambda: data.pretraining_dataset([url, "b.png"], batch_size=2, augment=SMALL),
    ):
        with pytest.raises(ValueError, match=expected):
            call()


def test_file_system_urls_are_still_read_in_place():
    check_not_a_url("gs://bucket/images")  # a tf.io.gfile path: not refused
    for i in range(4):  # TensorFlow's in-memory file system stands in for gs://
        tf.io.write_file(f"ram://sources-test/{i}.png", _png(i))
    batches = list(data.pretraining_dataset("ram://sources-test", batch_size=2, augment=SMALL, seed=0))
    assert len(batches) == 2
    folder = scan_image_files([f"ram://sources-test/{i}.png" for i in (2, 0)])
    assert folder.directory == "ram://sources-test" and len(folder.files) == 2


def test_a_list_of_files_is_a_flat_folder_of_them(tmp_path):
    for i in range(4):
        (tmp_path / f"{i}.png").write_bytes(_png(40 * i))
    (tmp_path / "cut.png").write_bytes(_png(9)[:30])
    (tmp_path / "photo.webp").write_bytes(b"RIFF\0\0\0\0WEBPVP8 ")
    paths = [
        str(tmp_path / "3.png"),
        tmp_path / "0.png",
        str(tmp_path / "cut.png"),
        str(tmp_path / "photo.webp"),
    ]
    paths += [str(tmp_path / "missing.png"), str(tmp_path / "1.png")]
    folder = scan_image_files(paths)
    assert [os.path.basename(p) for p in folder.files] == ["3.png", "0.png", "1.png"]  # in the order given
    assert folder.labels == [-1, -1, -1] and folder.class_names == [] and folder.directory == str(tmp_path)
    reasons = {os.path.basename(p): r.split(":")[0] for p, r in folder.skipped}
    assert reasons == {
        "photo.webp": "unsupported image format .webp",
        "cut.png": "truncated",
        "missing.png": "unreadable",
    }

    source = data.resolve_source(paths)
    assert source.num_examples == 3 and source.skipped == 3 and not source.has_labels
    batches = list(data.pretraining_dataset(paths, batch_size=2, augment=SMALL, seed=0))
    assert len(batches) == 1 and batches[0][0].shape == (2, 8, 8, 3)
    array = np.array([str(tmp_path / f"{i}.png") for i in range(3)])  # a 1-D string array too
    assert data.resolve_source(array).num_examples == 3
    two = (str(tmp_path / "0.png"), str(tmp_path / "1.png"))  # two paths, not (images, labels)
    assert data.resolve_source(two).num_examples == 2
    with pytest.raises(
        ValueError,
        match=r"labeled_dataset needs labels: .*a list of files.*use class sub-folders, \(images, labels\)",
    ):
        data.labeled_dataset(paths, batch_size=2, augment=SMALL)


def test_a_list_of_unusable_files_is_refused(tmp_path):
    (tmp_path / "a.webp").write_bytes(b"RIFF")
    with pytest.raises(
        ValueError, match=r"no readable images .* found in the list of files; skipped 1 files"
    ):
        data.pretraining_dataset([str(tmp_path / "a.webp")], batch_size=2, augment=SMALL)
    with pytest.raises(ValueError, match="empty list of image files"):
        scan_image_files([])
    with pytest.raises(ValueError, match="a directory: pass a directory alone"):
        scan_image_files([pathlib.Path(tmp_path)])
