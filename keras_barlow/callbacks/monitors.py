"""Training monitors: kNN accuracy and the cross-correlation matrix `C`.

- `KNNMonitor` puts the kNN accuracy of the encoder's features into the epoch logs (so
  `History`, `CSVLogger`, `TensorBoard` and early stopping see it), every `every` epochs.
- `CrossCorrelationMonitor` computes `C` on a fixed probe batch of two views, writes it as
  a heat-map PNG (blue −1, white 0, red +1 — the paper's Figure 1 for your run) and a
  TensorBoard image, and logs the mean of its diagonal, the RMS of its off-diagonal, and
  the effective rank of the embeddings and of the encoder features. A collapsing run shows
  a diagonal drifting from 1 or an effective rank falling towards 1.

Both work on the TensorFlow and JAX backends (features come from the model's inference
mode; PNG and TensorBoard writing use `tf.io` / `tf.summary`).
"""

import os

import keras
import numpy as np
from keras import ops

from keras_barlow import losses

# `keras_barlow.evaluation` is imported where `KNNMonitor` uses it, not here: evaluation
# imports the model, and the model imports this package for `NonFiniteLossGuard`.

# A diverging blue–white–red colour map (ColorBrewer RdBu, reversed): value → RGB anchors.
_DIVERGING = np.array(
    [
        [-1.0, 5, 48, 97],
        [-0.75, 33, 102, 172],
        [-0.5, 67, 147, 195],
        [-0.25, 146, 197, 222],
        [0.0, 247, 247, 247],
        [0.25, 244, 165, 130],
        [0.5, 214, 96, 77],
        [0.75, 178, 24, 43],
        [1.0, 103, 0, 31],
    ],
    np.float64,
)


def diverging_colormap(values, vmin=-1.0, vmax=1.0):
    """Maps values to uint8 RGB with a blue (vmin) – white (centre) – red (vmax) scale.

    Args:
        values: array of any shape; values outside `[vmin, vmax]` are clipped, NaNs are black.
        vmin, vmax: the ends of the scale.

    Returns:
        uint8 array of shape `values.shape + (3,)`.
    """
    values = np.asarray(values, np.float64)
    if not vmax > vmin:
        raise ValueError(f"vmax must be greater than vmin, got {vmin}, {vmax}")
    scaled = np.clip(2.0 * (values - vmin) / (vmax - vmin) - 1.0, -1.0, 1.0)
    rgb = np.stack([np.interp(scaled, _DIVERGING[:, 0], _DIVERGING[:, i]) for i in (1, 2, 3)], axis=-1)
    rgb = np.where(np.isnan(values)[..., None], 0.0, rgb)
    return np.round(rgb).astype(np.uint8)


def correlation_heatmap(c, *, max_dims=128, cell_pixels=None, target_pixels=512):
    """`C` as an RGB heat map (uint8 `(h, w, 3)`), one square of pixels per entry.

    Args:
        c: `(d, d)` matrix with entries in [−1, 1].
        max_dims: show the top-left `max_dims × max_dims` block (the whole `C` of a large
            projector is too many pixels to read).
        cell_pixels: pixels per entry; default: about `target_pixels` wide in total.
    """
    c = np.asarray(c, np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"expected a square (d, d) matrix, got shape {c.shape}")
    c = c[:max_dims, :max_dims]
    cell = cell_pixels or max(1, target_pixels // c.shape[0])
    image = diverging_colormap(c)
    return np.repeat(np.repeat(image, cell, axis=0), cell, axis=1)


def write_png(path, image):
    """Writes a uint8 `(h, w, 3)` (or `(h, w)`) array to `path` as PNG (via `tf.io`)."""
    import tensorflow as tf

    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tf.io.write_file(path, tf.io.encode_png(image))
    return path


def effective_rank(x, epsilon=1e-12):
    """Effective rank (Roy & Vetterli, 2007) of the rows of `x`, centred.

    `exp(H(p))` with `p` the singular values normalised to sum 1: `d` for isotropic
    `d`-dimensional data, 1 for data on a line, and between for anything else.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected (n, dim) embeddings, got shape {x.shape}")
    singular = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    total = singular.sum()
    if total <= epsilon:
        return 0.0
    p = singular / total
    p = p[p > epsilon]
    return float(np.exp(-np.sum(p * np.log(p))))


def correlation_stats(c):
    """`{"on_diag_mean", "off_diag_rms", "off_diag_abs_mean"}` of a square matrix `C`."""
    c = np.asarray(c, np.float64)
    d = c.shape[0]
    off = c[~np.eye(d, dtype=bool)]
    return {
        "on_diag_mean": float(np.mean(np.diag(c))),
        "off_diag_rms": float(np.sqrt(np.mean(off**2))) if off.size else 0.0,
        "off_diag_abs_mean": float(np.mean(np.abs(off))) if off.size else 0.0,
    }


def is_due(epoch, every, params):
    """Whether a monitor evaluating every `every` epochs runs at the end of `epoch` (the last one always)."""
    last = (params or {}).get("epochs")
    return (epoch + 1) % every == 0 or (last is not None and epoch + 1 == last)


def check_every(every):
    """Validates a monitor's `every` (a positive number of epochs) and returns it as an int."""
    if int(every) != every or every < 1:
        raise ValueError(f"every must be a positive integer (epochs), got {every}")
    return int(every)


class ScalarWriter:
    """Writes scalars/images to a TensorBoard event file under `log_dir/subdir`."""

    def __init__(self, log_dir, subdir):
        self.path = os.path.join(log_dir, subdir)
        self._writer = None

    def write(self, step, scalars=(), images=()):
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.path)
        with self._writer.as_default():
            for name, value in dict(scalars).items():
                tf.summary.scalar(name, float(value), step=step)
            for name, image in dict(images).items():
                tf.summary.image(name, np.asarray(image)[None], step=step)
        self._writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class KNNMonitor(keras.callbacks.Callback):
    """Weighted-kNN accuracy of the model's features every `every` epochs.

    Adds `knn_top1` and `knn_top5` to the epoch logs (place it before `TensorBoard` /
    `CSVLogger` / `EarlyStopping` in the callback list so they see them) and, with
    `log_dir`, writes them to TensorBoard under `log_dir/monitors`.

    Args:
        train_data, test_data: `(images, labels)` arrays or `tf.data` datasets of
            `(image, label)`, prepared as the model's input (e.g. `labeled_dataset`).
        every: epochs between evaluations (the last epoch is always evaluated).
        k, temperature: kNN settings (default: `keras_barlow.evaluation`'s, 200 and 0.1).
        batch_size: images per forward pass.
        log_dir: TensorBoard directory (optional).
        preprocess: callable applied to image batches.

    Attributes:
        history: list of `(epoch, top1)`.

    Example:

    ```python
    monitor = KNNMonitor((x_train, y_train), (x_test, y_test), every=5)
    model.fit(views, epochs=50, callbacks=[monitor])
    ```
    """

    def __init__(
        self,
        train_data,
        test_data,
        *,
        every=1,
        k=None,
        temperature=None,
        batch_size=256,
        log_dir=None,
        preprocess=None,
    ):
        super().__init__()
        self.train_data = train_data
        self.test_data = test_data
        self.every = check_every(every)
        from keras_barlow import evaluation

        self.k = evaluation.KNN_K if k is None else k
        self.temperature = evaluation.KNN_TEMPERATURE if temperature is None else temperature
        self.batch_size = batch_size
        self.preprocess = preprocess
        self.history = []
        self._writer = ScalarWriter(log_dir, "monitors") if log_dir else None

    def on_epoch_end(self, epoch, logs=None):
        if not is_due(epoch, self.every, self.params):
            return
        from keras_barlow import evaluation

        result = evaluation.knn_accuracy(
            self.model,
            self.train_data,
            self.test_data,
            k=self.k,
            temperature=self.temperature,
            batch_size=self.batch_size,
            preprocess=self.preprocess,
        )
        self.history.append((epoch, result["top1"]))
        if logs is not None:
            logs["knn_top1"] = result["top1"]
            logs["knn_top5"] = result["top5"]
        if self._writer is not None:
            self._writer.write(epoch + 1, scalars={"knn_top1": result["top1"], "knn_top5": result["top5"]})

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


class CrossCorrelationMonitor(keras.callbacks.Callback):
    """Writes the cross-correlation matrix `C` of a fixed probe batch, every `every` epochs.

    For a `BarlowTwins` model: both fixed views go through encoder and projector in
    inference mode, `C` is computed as in the loss (each view standardised over the probe
    batch), and

    - `log_dir/cross_correlation/epoch_NNNN.png`: the top-left `max_dims` block of `C`
      as a heat map (blue −1, white 0, red +1); `last_png` holds the newest path;
    - TensorBoard (`log_dir/monitors`): that image and the statistics below;
    - epoch logs: `cc_on_diag_mean` (→ 1), `cc_off_diag_rms` (→ 0), `effective_rank`
      of the projector embeddings and `feature_effective_rank` of the encoder features.

    Args:
        probe: `(view_a, view_b)` arrays of the same images under two augmentations, or
            an array of images (as the model's input) turned into two fixed views once
            with `augmentation`.
        log_dir: output directory.
        augmentation: `AugmentationConfig` / preset name for image probes (its image size
            is used; default: the model's input size with the `"digits"` preset).
        every: epochs between snapshots (the last epoch is always written).
        max_dims: size of the block of `C` drawn.
        seed: seed of the probe views.
        tensorboard: also write TensorBoard events.

    Example:

    ```python
    views = next(iter(pretraining_dataset("digits", batch_size=256, augment="digits", seed=1)))
    monitor = CrossCorrelationMonitor(views, "logs/")
    model.fit(dataset, epochs=30, callbacks=[monitor])
    monitor.last_png  # 'logs/cross_correlation/epoch_0030.png'
    ```
    """

    def __init__(self, probe, log_dir, *, augmentation=None, every=1, max_dims=128, seed=0, tensorboard=True):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.every = check_every(every)
        self.max_dims = int(max_dims)
        self.seed = seed
        self.augmentation = augmentation
        self._probe = probe
        self._views = None
        self.last_png = None
        self.last_stats = None
        self._writer = ScalarWriter(self.log_dir, "monitors") if tensorboard else None

    def _probe_views(self):
        if self._views is not None:
            return self._views
        probe = self._probe
        if isinstance(probe, (tuple, list)) and len(probe) == 2:
            view_a, view_b = (np.asarray(ops.convert_to_numpy(v), np.float32) for v in probe)
            if view_a.shape != view_b.shape or view_a.ndim != 4:
                raise ValueError(
                    "probe views must be two image batches of the same shape, got "
                    f"{view_a.shape} and {view_b.shape}"
                )
        else:
            from keras_barlow import augment

            images = np.asarray(ops.convert_to_numpy(probe))
            if images.ndim != 4:
                raise ValueError(
                    "probe must be (view_a, view_b) or a batch of images (n, h, w, c), got shape "
                    f"{images.shape}"
                )
            config = self.augmentation or "digits"
            size = getattr(self.model, "image_shape", None)
            config = augment.as_config(config)
            if size and size[0]:
                config = config.replace(image_size=tuple(size[:2]))
            view_a, view_b = (v.numpy() for v in augment.two_views(images, config, seed=self.seed))
        if len(view_a) < 2:
            raise ValueError("the probe batch needs at least 2 images (C standardises over the batch)")
        self._views = (view_a, view_b)
        return self._views

    def compute(self):
        """`(C, stats)` for the current model: C as NumPy `(d, d)`, stats a dict."""
        view_a, view_b = self._probe_views()
        features_a = self.model(view_a, training=False)
        z_a = self.model.projector(features_a, training=False)
        z_b = self.model.projector(self.model(view_b, training=False), training=False)
        c = ops.convert_to_numpy(losses.cross_correlation(z_a, z_b))
        z_a, features_a = ops.convert_to_numpy(z_a), ops.convert_to_numpy(features_a)
        stats = {f"cc_{k}": v for k, v in correlation_stats(c).items()}
        stats["effective_rank"] = effective_rank(z_a)
        stats["feature_effective_rank"] = effective_rank(features_a)
        return c, stats

    def on_epoch_end(self, epoch, logs=None):
        if not is_due(epoch, self.every, self.params):
            return
        c, stats = self.compute()
        image = correlation_heatmap(c, max_dims=self.max_dims)
        self.last_png = write_png(
            os.path.join(self.log_dir, "cross_correlation", f"epoch_{epoch + 1:04d}.png"), image
        )
        self.last_stats = stats
        if logs is not None:
            logs.update(stats)
        if self._writer is not None:
            self._writer.write(epoch + 1, scalars=stats, images={"cross_correlation": image})

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
