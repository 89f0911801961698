"""Image folders: class sub-folders, flat folders, corrupt files counted and skipped."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_barlow import data
from tests.data.helpers import first

pytestmark = pytest.mark.tensorflow_only


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
        _write(
            str(tmp_path / "dog" / "nested" / f"{i}.jpg"),
            tf.io.encode_jpeg(np.full((24, 18 + i, 1), 40 * i, np.uint8)).numpy(),
        )
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
    labels = np.concatenate([labels for _, labels in first(ds, 10)])
    assert sorted(labels.tolist()) == [0] * 6 + [1] * 6
    ds = data.pretraining_dataset(str(image_folder), batch_size=4, preset="imagenet", image_size=16, seed=0)
    assert [s.shape.as_list() for s in ds.element_spec] == [[4, 16, 16, 3]] * 2
    batches = first(ds, 10)
    assert len(batches) == 3
    assert all(np.isfinite(v).all() for batch in batches for v in batch)


def test_flat_folder_pretrains_but_has_no_labels(tmp_path):
    for i in range(4):
        _write(str(tmp_path / f"{i}.png"), _png(i, (10, 12, 3)))
    ds = data.pretraining_dataset(
        data.scan_image_folder(str(tmp_path)), batch_size=2, preset="cifar", image_size=8, seed=0
    )
    assert len(first(ds, 5)) == 2
    with pytest.raises(ValueError, match="needs labels"):
        data.labeled_dataset(str(tmp_path), batch_size=2, preset="cifar")
    with pytest.raises(ValueError, match="does not exist"):
        data.pretraining_dataset(str(tmp_path / "missing"), batch_size=2)
