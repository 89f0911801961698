"""Image folders: class sub-folders, flat folders, corrupt files counted and skipped."""

import logging
import os
import threading

import numpy as np
import pytest
import tensorflow as tf
from helpers import uniform_images

from keras_barlow import data
from keras_barlow.augment import AugmentationConfig
from keras_barlow.data.folders import UNSUPPORTED_IMAGE_EXTENSIONS
from keras_barlow.fault_tolerance import resumable_dataset
from tests.data.helpers import first

pytestmark = pytest.mark.tensorflow_only


def _write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)


def _png_pixels(seed, shape):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _png(seed, shape):
    return tf.io.encode_png(_png_pixels(seed, shape)).numpy()


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


# --- bad input, as a new user gives it: an error naming the problem and the fix -------------


def test_a_truncated_image_in_a_folder_is_skipped_and_counted(tmp_path):
    png = tf.io.encode_png(uniform_images(1, dtype="uint8", scale=255.0)[0]).numpy()
    for index in range(4):
        (tmp_path / f"{index}.png").write_bytes(png if index else png[:40])
    folder = data.scan_image_folder(tmp_path)
    assert [(os.path.basename(path), "truncated" in reason) for path, reason in folder.skipped] == [
        ("0.png", True)
    ]
    assert len(folder.files) == 3


def test_missing_image_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"does not exist or is not a directory"):
        data.scan_image_folder(tmp_path / "nope")


@pytest.mark.parametrize(("name", "content"), [("notes.txt", "hi"), ("photo.jpg", "not a jpeg")])
def test_folder_without_real_images_is_refused(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=r"no readable images \(\.jpg.*found in"):
        data.scan_image_folder(tmp_path)


def test_a_folder_whose_only_image_is_truncated_is_refused(tmp_path):
    jpeg = tf.io.encode_jpeg(uniform_images(1, dtype="uint8", scale=255.0)[0]).numpy()
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    with pytest.raises(ValueError, match=r"no readable images"):
        data.scan_image_folder(tmp_path)


SMALL = AugmentationConfig.preset("imagenet", image_size=8)


def _png_new(seed, corrupt=False):
    """A 16×16 PNG; `corrupt`: complete (signature, header and end marker intact) with a
    damaged byte in its pixel data, so that only decoding finds it."""
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    image = bytearray(tf.io.encode_png(pixels).numpy())
    if corrupt:
        image[len(image) // 2] ^= 0xFF
    return bytes(image)


def _folder(root, good, corrupt):
    root.mkdir(exist_ok=True)
    for i in range(good + corrupt):
        (root / f"{i:02d}.png").write_bytes(_png_new(i, corrupt=i >= good))
    return str(root)


def _collect(dataset, timeout=120):
    """The batches of `dataset`, or the error it raised; fails (instead of hanging) after `timeout` s."""
    out = {}

    def run():
        try:
            out["batches"] = [tuple(t.numpy() for t in b) for b in dataset]
        except tf.errors.OpError as error:
            out["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the dataset did not end: it hangs"
    return out


def test_unsupported_image_formats_are_skipped_and_counted(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog").mkdir()
    for name in ("cat/a.png", "dog/b.png"):
        (tmp_path / name).write_bytes(_png_new(0))
    for name in ("cat/c.webp", "dog/d.TIFF", "dog/e.tif", "dog/f.heic", "dog/g.avif", "loose.webp"):
        (tmp_path / name).write_bytes(b"RIFF\0\0\0\0WEBPVP8 ")
    (tmp_path / "dog" / "notes.txt").write_text("not an image: not listed")
    folder = data.scan_image_folder(tmp_path)
    assert [os.path.relpath(p, tmp_path) for p in folder.files] == ["cat/a.png", "dog/b.png"]
    skipped = {os.path.relpath(p, tmp_path): reason for p, reason in folder.skipped}
    assert sorted(skipped) == [
        "cat/c.webp",
        "dog/d.TIFF",
        "dog/e.tif",
        "dog/f.heic",
        "dog/g.avif",
        "loose.webp",
    ]
    assert skipped["cat/c.webp"].startswith(
        "unsupported image format .webp: only JPEG, PNG, GIF and BMP files are read; convert it"
    )
    assert skipped["dog/d.TIFF"].startswith("unsupported image format .tiff:")
    assert {".webp", ".tif", ".tiff", ".heic", ".avif"} <= set(UNSUPPORTED_IMAGE_EXTENSIONS)


def test_a_folder_of_webp_files_only_says_why_it_has_no_images(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.webp").write_bytes(b"RIFF\0\0\0\0WEBPVP8 ")
    with pytest.raises(
        ValueError, match=r"no readable images .* skipped 3 files, e\.g\. .*0\.webp \(unsupported"
    ):
        data.scan_image_folder(tmp_path)


def test_corrupt_image_data_passes_the_scan_and_is_counted_when_decoded(tmp_path, capfd):
    folder = _folder(tmp_path / "f", good=5, corrupt=2)
    scanned = data.scan_image_folder(folder)
    assert len(scanned.files) == 7 and scanned.skipped == []  # header and end marker intact
    dataset = data.pretraining_dataset(folder, batch_size=2, augment=SMALL, seed=0)
    capfd.readouterr()
    for _ in range(2):  # two passes: one count each
        assert len(_collect(dataset)["batches"]) == 2  # 5 decodable images, full batches of 2
    warning = "2 of 7 image files failed to decode in this pass over the data and were skipped"
    assert capfd.readouterr().err.count(warning) == 2
    with pytest.raises(ValueError, match=r"needs labels: .*a flat folder"):
        data.labeled_dataset(data.scan_image_folder(folder), batch_size=3, augment="cifar")
    # With class sub-folders, the labelled pipeline keeps every decodable image, in order.
    os.makedirs(tmp_path / "c" / "x")
    os.rename(folder, tmp_path / "c" / "x" / "f")
    labeled = data.labeled_dataset(str(tmp_path / "c"), batch_size=3, augment=SMALL)
    assert [len(labels) for _, labels in _collect(labeled)["batches"]] == [3, 2]
    assert warning in capfd.readouterr().err


@pytest.mark.parametrize("cache", [False, True])
def test_fewer_decodable_images_than_one_batch_is_an_error_not_an_empty_pass(tmp_path, cache):
    folder = _folder(tmp_path / "f", good=2, corrupt=4)
    dataset = data.pretraining_dataset(folder, batch_size=4, augment=SMALL, seed=0, cache=cache)
    error = _collect(dataset)["error"]
    assert isinstance(error, tf.errors.InvalidArgumentError)
    assert (
        "only 2 of 6 image files decode (4 failed: corrupt image data), fewer than one batch of 4: every "
        "pass over the data would come out short. scan_image_folder (or scan_image_files) with validate "
        "set to decode lists them: remove or replace them, add images, or lower batch_size"
    ) in error.message


def test_the_error_counts_the_files_the_scan_skipped_too(tmp_path):
    folder = _folder(tmp_path / "f", good=1, corrupt=3)
    (tmp_path / "f" / "x.webp").write_bytes(b"RIFF")
    error = _collect(data.pretraining_dataset(folder, batch_size=2, augment=SMALL, seed=0))["error"]
    assert (
        "only 1 of 4 image files decode (3 failed: corrupt image data) (the folder scan skipped 1 more"
        in (error.message)
    )


def test_a_labelled_folder_whose_files_all_fail_to_decode_is_an_error(tmp_path):
    _folder(tmp_path / "a", good=0, corrupt=3)
    error = _collect(data.labeled_dataset(str(tmp_path), batch_size=2, augment=SMALL))["error"]
    assert "only 0 of 3 image files decode (3 failed: corrupt image data), fewer than 1:" in error.message


def test_refilled_epochs_of_a_folder_with_too_few_decodable_images_fail_instead_of_hanging(tmp_path):
    folder = _folder(tmp_path / "f", good=3, corrupt=3)
    passes = data.pretraining_epochs(folder, batch_size=4, augment=SMALL, seed=0)
    assert passes.steps_per_epoch == 1  # 6 files scanned: the scan cannot tell
    stream = resumable_dataset(passes, epochs=2, steps_per_epoch=3, refill=True)
    error = _collect(stream)["error"]
    assert "only 3 of 6 image files decode (3 failed: corrupt image data), fewer than one batch of 4" in (
        error.message
    )


def test_decode_drops_keep_batches_a_function_of_seed_epoch_and_step(tmp_path):
    folder = _folder(tmp_path / "f", good=9, corrupt=2)  # 9 decodable: 4 batches of 2 per pass
    passes = data.pretraining_epochs(folder, batch_size=2, augment=SMALL, seed=3)
    full = _collect(resumable_dataset(passes, epochs=2, steps_per_epoch=6, refill=True))["batches"]
    assert len(full) == 12
    again = data.pretraining_epochs(folder, batch_size=2, augment=SMALL, seed=3)
    tail = _collect(resumable_dataset(again, epochs=2, steps_per_epoch=6, start_step=5, refill=True))[
        "batches"
    ]
    assert len(tail) == 7
    for got, want in zip(tail, full[5:]):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_folder_views_are_each_files_per_image_views(tmp_path):
    """Images of varying size: each element's two views are `image_views` of its decoded
    file with its own seed, (seed, epoch, element) → seed, then batched (no batch-level draws)."""
    from keras_barlow.augment import image_views
    from keras_barlow.augment.seeds import derive_seed, step_seeds
    from keras_barlow.data.pipelines import _VIEWS_PER_IMAGE

    for i in range(4):
        _write(
            str(tmp_path / f"{i}.jpg"), tf.io.encode_jpeg(_png_pixels(i, (30 + 3 * i, 41 - 2 * i, 3))).numpy()
        )
    config = AugmentationConfig.preset("imagenet", image_size=16)
    folder = data.scan_image_folder(str(tmp_path))
    (view_a, view_b), = first(
        data.pretraining_dataset(folder, batch_size=4, augment=config, seed=5, epoch=1, shuffle_buffer=0)
    )  # fmt: skip
    seeds = list(step_seeds(derive_seed(5, 0, _VIEWS_PER_IMAGE), 1).take(4))
    for k, path in enumerate(folder.files):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        expected_a, expected_b = image_views(image, config, seed=seeds[k])
        np.testing.assert_allclose(view_a[k], expected_a, atol=1e-5)
        np.testing.assert_allclose(view_b[k], expected_b, atol=1e-5)
    assert np.abs(view_a - view_b).max() > 0.1
