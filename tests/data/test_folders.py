"""Image folders: class sub-folders, flat folders, corrupt files counted and skipped."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_barlow import data
from keras_barlow.augment import AugmentationConfig
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
    corrupt = bytearray(_png(98, (16, 16, 3)))  # complete, with a damaged byte in its pixel data
    corrupt[len(corrupt) // 2] ^= 0xFF
    _write(str(tmp_path / "dog" / "corrupt.png"), bytes(corrupt))
    _write(str(tmp_path / "dog" / "notes.txt"), b"ignored: not an image extension")
    return tmp_path


def test_scan_counts_corrupt_files(image_folder, caplog):
    with caplog.at_level(logging.WARNING):
        folder = data.scan_image_folder(str(image_folder))
    assert folder.class_names == ["cat", "dog"]
    assert len(folder.files) == 13 and sorted(set(folder.labels)) == [0, 1]
    reasons = {os.path.basename(p): r.split(":")[0] for p, r in folder.skipped}
    assert reasons == {
        "empty.jpg": "empty file",
        "garbage.png": "not a JPEG, PNG, GIF or BMP file",
        "truncated.png": "truncated",
    }
    assert "skipped 3" in caplog.text
    decoded = data.scan_image_folder(str(image_folder), validate="decode")
    assert len(decoded.skipped) == 4 and len(decoded.files) == 12
    assert {os.path.basename(p): r.split(":")[0] for p, r in decoded.skipped} == {
        **reasons,
        "corrupt.png": "corrupt",
    }


@pytest.mark.parametrize("kind", ["png", "jpeg", "gif", "bmp"])
def test_header_scan_counts_truncated_files_and_keeps_trailing_data(tmp_path, kind):
    pixels = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    if kind in ("png", "jpeg"):
        image = getattr(tf.io, f"encode_{kind}")(pixels).numpy()
    else:  # TF writes no GIF or BMP; Pillow (pycocotools needs matplotlib, which needs it) does
        import io

        image_module = pytest.importorskip("PIL.Image")
        buffer = io.BytesIO()
        image_module.fromarray(pixels).save(buffer, format=kind.upper())
        image = buffer.getvalue()
    _write(str(tmp_path / f"whole.{kind}"), image)
    _write(str(tmp_path / f"trailing.{kind}"), image + b"\0" * 64)  # still decodes: kept
    _write(str(tmp_path / f"cut.{kind}"), image[: len(image) * 2 // 3])
    folder = data.scan_image_folder(str(tmp_path))
    assert sorted(os.path.basename(p) for p in folder.files) == [f"trailing.{kind}", f"whole.{kind}"]
    assert [(os.path.basename(p), r.split(":")[0]) for p, r in folder.skipped] == [
        (f"cut.{kind}", "truncated")
    ]


def test_a_png_with_a_damaged_header_is_counted_as_corrupt(tmp_path):
    image = bytearray(_png(0, (8, 8, 3)))
    image[20] ^= 0x01  # the IHDR chunk: width/height bits, its CRC no longer matches
    _write(str(tmp_path / "a.png"), bytes(image))
    _write(str(tmp_path / "b.png"), _png(1, (8, 8, 3)))
    folder = data.scan_image_folder(str(tmp_path))
    assert [(os.path.basename(p), r.split(":")[0]) for p, r in folder.skipped] == [("a.png", "corrupt")]


def test_folder_pipelines_skip_undecodable_files_without_crashing(image_folder):
    # corrupt.png passes the header check and fails to decode inside the pipeline.
    ds = data.labeled_dataset(
        str(image_folder),
        batch_size=5,
        augment=AugmentationConfig.preset("cifar", image_size=16),
    )
    labels = np.concatenate([labels for _, labels in first(ds, 10)])
    assert sorted(labels.tolist()) == [0] * 6 + [1] * 6
    ds = data.pretraining_dataset(
        str(image_folder), batch_size=4, augment=AugmentationConfig.preset("imagenet", image_size=16), seed=0
    )
    assert [s.shape.as_list() for s in ds.element_spec] == [[4, 16, 16, 3]] * 2
    batches = first(ds, 10)
    assert len(batches) == 3
    assert all(np.isfinite(v).all() for batch in batches for v in batch)


def test_flat_folder_pretrains_but_has_no_labels(tmp_path):
    for i in range(4):
        _write(str(tmp_path / f"{i}.png"), _png(i, (10, 12, 3)))
    ds = data.pretraining_dataset(
        data.scan_image_folder(str(tmp_path)),
        batch_size=2,
        augment=AugmentationConfig.preset("cifar", image_size=8),
        seed=0,
    )
    assert len(first(ds, 5)) == 2
    with pytest.raises(ValueError, match="needs labels"):
        data.labeled_dataset(
            str(tmp_path),
            batch_size=2,
            augment="cifar",
        )
    with pytest.raises(ValueError, match="does not exist"):
        data.pretraining_dataset(str(tmp_path / "missing"), batch_size=2)
