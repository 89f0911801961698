"""Monitors: real PNG files, TensorBoard events, statistics against NumPy."""

import glob
import os
import struct
import zlib

import keras
import numpy as np
import pytest

from keras_barlow import evaluation
from keras_barlow.callbacks import monitors as cb


def view_pairs(n=16, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(size=(n, 8, 8, 3)).astype("float32")
    return base + 0.05 * rng.normal(size=base.shape).astype("float32"), base


def read_events(directory):
    import tensorflow as tf

    scalars, images = {}, {}
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor) if value.HasField("tensor") else None
                if value.metadata.plugin_data.plugin_name == "images":
                    images.setdefault(value.tag, []).append((event.step, tensor))
                elif tensor is not None:
                    scalars.setdefault(value.tag, []).append((event.step, float(tensor)))
    return scalars, images


def read_png(path):
    """A minimal, independent PNG reader (8-bit RGB, non-interlaced): chunks, zlib, filters."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert (depth, color, interlace) == (8, 2, 0), header
    raw = zlib.decompress(idat)
    stride, bpp = width * 3, 3
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = previous[x]
            c = previous[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        previous = line
    return np.frombuffer(b"".join(rows), np.uint8).reshape(height, width, 3)


def test_colormap_and_heatmap():
    rgb = cb.diverging_colormap(np.array([-1.0, 0.0, 1.0, 5.0, np.nan]))
    assert rgb.dtype == np.uint8 and rgb.shape == (5, 3)
    assert rgb[0, 2] > rgb[0, 0]  # −1 is blue
    assert rgb[1].tolist() == [247, 247, 247]  # 0 is white
    assert rgb[2, 0] > rgb[2, 2]  # +1 is red
    assert rgb[3].tolist() == rgb[2].tolist()  # clipped
    assert rgb[4].tolist() == [0, 0, 0]  # NaN is black
    image = cb.correlation_heatmap(np.eye(300), max_dims=64, cell_pixels=3)
    assert image.shape == (192, 192, 3)
    assert image[0, 0].tolist() == rgb[2].tolist() and image[0, 5].tolist() == [247, 247, 247]
    with pytest.raises(ValueError, match="square"):
        cb.correlation_heatmap(np.zeros((3, 4)))


def test_effective_rank_and_stats():
    rng = np.random.default_rng(0)
    isotropic = rng.normal(size=(4000, 8))
    assert 7.5 < cb.effective_rank(isotropic) <= 8.0
    line = np.outer(rng.normal(size=100), rng.normal(size=5))
    assert cb.effective_rank(line) == pytest.approx(1.0, abs=1e-6)
    assert cb.effective_rank(np.ones((10, 4))) == 0.0  # collapsed to a point
    # Reference: exp(entropy) of the normalised singular values.
    x = rng.normal(size=(50, 6)) * np.array([5, 3, 1, 1, 0.5, 0.1])
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    p = s / s.sum()
    assert cb.effective_rank(x) == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    c = np.array([[1.0, 0.2], [-0.4, 0.8]])
    stats = cb.correlation_stats(c)
    assert stats["on_diag_mean"] == pytest.approx(0.9)
    assert stats["off_diag_rms"] == pytest.approx(np.sqrt((0.04 + 0.16) / 2))
    assert stats["off_diag_abs_mean"] == pytest.approx(0.3)


@pytest.mark.tensorflow_only
def test_cross_correlation_monitor_writes_png_and_tensorboard(tmp_path, tiny_encoder, tiny_model):
    model = tiny_model(tiny_encoder(seed=0))
    view_a, view_b = view_pairs()
    monitor = cb.CrossCorrelationMonitor((view_a, view_b), tmp_path, every=2, max_dims=16)
    history = model.fit(_views_dataset(view_a, view_b), epochs=3, verbose=0, callbacks=[monitor])

    pngs = sorted(os.listdir(tmp_path / "cross_correlation"))
    assert pngs == ["epoch_0002.png", "epoch_0003.png"]  # every 2 epochs, and the last
    assert monitor.last_png == str(tmp_path / "cross_correlation" / "epoch_0003.png")
    pixels = read_png(monitor.last_png)
    cell = 512 // 16
    assert pixels.shape == (16 * cell, 16 * cell, 3)

    # C recomputed independently in NumPy from the projector outputs.
    def embed(x):
        return keras.ops.convert_to_numpy(model.embed(x, training=False)).astype(np.float64)

    za, zb = embed(view_a), embed(view_b)
    za = (za - za.mean(0)) / np.sqrt(za.var(0) + 1e-5)
    zb = (zb - zb.mean(0)) / np.sqrt(zb.var(0) + 1e-5)
    c = za.T @ zb / len(za)
    c_picture, stats = monitor.compute()
    np.testing.assert_allclose(c_picture, c, atol=1e-4)
    np.testing.assert_array_equal(pixels[::cell, ::cell], cb.diverging_colormap(c_picture))
    assert stats["cc_on_diag_mean"] == pytest.approx(np.mean(np.diag(c)), abs=1e-4)
    assert stats["effective_rank"] == pytest.approx(cb.effective_rank(embed(view_a)), rel=1e-3)
    for key in ("cc_on_diag_mean", "cc_off_diag_rms", "effective_rank", "feature_effective_rank"):
        assert len(history.history[key]) == 2  # logged at epochs 2 and 3 only

    scalars, images = read_events(tmp_path / "monitors")
    assert [step for step, _ in images["cross_correlation"]] == [2, 3]
    _, encoded = images["cross_correlation"][-1]
    import tensorflow as tf

    decoded = tf.io.decode_png(encoded[2]).numpy()  # [width, height, png bytes]
    np.testing.assert_array_equal(decoded, pixels)
    assert [s for s, _ in scalars["cc_on_diag_mean"]] == [2, 3]
    assert scalars["effective_rank"][-1][1] == pytest.approx(monitor.last_stats["effective_rank"], rel=1e-5)


def _views_dataset(view_a, view_b, batch=8):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((view_a, view_b)).batch(batch, drop_remainder=True)


@pytest.mark.tensorflow_only
def test_cross_correlation_monitor_makes_views_from_images(tmp_path, tiny_encoder, tiny_model):
    model = tiny_model(tiny_encoder(seed=0))
    images = np.random.default_rng(0).uniform(size=(12, 8, 8, 1)).astype("float32")
    monitor = cb.CrossCorrelationMonitor(images, tmp_path, augmentation="digits", tensorboard=False)
    monitor.set_model(model)
    view_a, view_b = monitor._probe_views()
    assert view_a.shape == (12, 8, 8, 3) and not np.allclose(view_a, view_b)
    monitor.on_epoch_end(0, {})
    assert os.path.exists(monitor.last_png) and not os.path.exists(tmp_path / "monitors")
    with pytest.raises(ValueError, match="probe"):
        bad = cb.CrossCorrelationMonitor(np.zeros((4, 8, 8)), tmp_path)
        bad.set_model(model)
        bad.on_epoch_end(0, {})


@pytest.mark.tensorflow_only
def test_knn_monitor_logs_match_knn_accuracy(tmp_path, tiny_encoder, tiny_model):
    model = tiny_model(tiny_encoder(seed=0))
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 10)
    images = rng.uniform(0, 0.3, size=(30, 8, 8, 3)).astype("float32")
    images[np.arange(30), :, :, labels] += 0.6
    view_a, view_b = view_pairs()
    monitor = cb.KNNMonitor((images, labels), (images, labels), k=5, every=2, log_dir=tmp_path)
    history = model.fit(_views_dataset(view_a, view_b), epochs=2, verbose=0, callbacks=[monitor])
    assert "knn_top1" in history.history
    expected = evaluation.knn_accuracy(model, (images, labels), (images, labels), k=5)["top1"]
    assert history.history["knn_top1"][-1] == pytest.approx(expected)
    assert monitor.history == [(1, expected)]
    scalars, _ = read_events(tmp_path / "monitors")
    assert scalars["knn_top1"] == [(2, pytest.approx(expected))]
    with pytest.raises(ValueError, match="every"):
        cb.KNNMonitor((images, labels), (images, labels), every=0)
