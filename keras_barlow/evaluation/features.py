"""Frozen features of an encoder: input batching, extraction, L2 normalisation.

Every evaluation protocol takes the same inputs:

- `encoder`: a Keras model or layer mapping images to features (a backbone such as
  `keras_barlow.resnet(...)`, or a whole `BarlowTwins` model, whose call gives the pooled
  features), pooled by `FeaturePooling` (feature maps averaged, token sequences reduced to
  the class token); `None` uses the flattened pixels (the "raw pixels" baseline).
- data: `(images, labels)` NumPy arrays, or a `tf.data.Dataset` of `(image, label)`
  elements (batched or not, e.g. `keras_barlow.labeled_dataset(...)`), already resized
  and normalised as the encoder expects (or pass `preprocess=`), or `Features` computed
  once with `extract_features` and reused by several protocols.

The encoder is frozen and in inference mode (batch norm uses its moving statistics);
features are computed once, L2-normalised (default) and cached.
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from keras_barlow.layers import FeaturePooling


@dataclasses.dataclass
class Features:
    """Frozen features and their labels, computed once (`extract_features`).

    Attributes:
        features: float32 `(n, dim)`.
        labels: int64 `(n,)`.

    Example:

    >>> Features(np.ones((3, 2)), [0, 1, 1]).subset([0, 2]).labels.tolist()
    [0, 1]
    """

    features: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        self.features = np.asarray(self.features, np.float32)
        self.labels = np.asarray(self.labels).astype(np.int64).reshape(-1)
        if self.features.ndim != 2 or len(self.features) != len(self.labels):
            raise ValueError(
                f"expected (n, dim) features and n labels, got {self.features.shape} and {self.labels.shape}"
            )

    def __len__(self):
        return len(self.labels)

    def subset(self, indices):
        """The rows `indices` (e.g. from `balanced_subset`)."""
        indices = np.asarray(indices, np.int64)
        return Features(self.features[indices], self.labels[indices])


def is_tf_dataset(data):
    """Whether `data` is a `tf.data.Dataset` (False where TensorFlow is not installed)."""
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - TF is a dependency; JAX-only installs lack tf.data
        return False
    return isinstance(data, tf.data.Dataset)


def as_int_labels(labels):
    """Integer class labels `(n,)` from integer labels or one-hot rows (NumPy).

    Example:

    >>> as_int_labels([[0, 1], [1, 0]]).tolist()
    [1, 0]
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:  # one-hot
        labels = labels.argmax(axis=1)
    if labels.ndim != 1:
        raise ValueError(f"expected integer labels (n,) or one-hot (n, classes), got shape {labels.shape}")
    return labels.astype(np.int64)


def iterate_batches(data, batch_size=256):
    """Yields `(images, labels)` NumPy batches from arrays or a `tf.data.Dataset`.

    Args:
        data: `(images, labels)` arrays or a dataset of `(image, label)` elements
            (batched or not; `{"image", "label"}` dicts are accepted too).
        batch_size: batch size for arrays and unbatched datasets.

    Yields:
        `(images, int64 labels)` NumPy pairs.
    """
    if isinstance(data, Features):
        raise ValueError("got precomputed Features where images are needed (fine_tune / augmentation)")
    if is_tf_dataset(data):
        yield from _iterate_dataset(data, batch_size)
        return
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = np.asarray(data[0]), as_int_labels(np.asarray(data[1]))
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (n, h, w, c), got {images.shape}")
        if len(images) != len(labels):
            raise ValueError(f"got {len(images)} images but {len(labels)} labels")
        for start in range(0, len(images), batch_size):
            yield images[start : start + batch_size], labels[start : start + batch_size]
        return
    raise ValueError(
        "expected (images, labels) arrays, a tf.data.Dataset of (image, label) or Features, "
        f"got {type(data).__name__}"
    )


def _iterate_dataset(data, batch_size):
    spec = data.element_spec
    if isinstance(spec, dict):
        if "image" not in spec or "label" not in spec:
            raise ValueError(f"a dataset of dicts needs 'image' and 'label' keys, got {sorted(spec)}")
        data = data.map(lambda e: (e["image"], e["label"]))
        spec = data.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(
            f"expected a dataset of (image, label) elements, got {spec}; evaluation needs labels "
            "(e.g. keras_barlow.labeled_dataset(...))"
        )
    if spec[0].shape.rank == 3:
        data = data.batch(batch_size)
    elif spec[0].shape.rank != 4:
        raise ValueError(
            f"expected images (h, w, c) or batches (n, h, w, c), got element shape {spec[0].shape}"
        )
    for images, labels in data.as_numpy_iterator():
        yield images, as_int_labels(labels)


def encode_batch(encoder, images, pooling=None):
    """One batch of pooled features, float32 `(n, dim)` (NumPy).

    Args:
        encoder: a Keras model or layer (inference mode), or None for flattened pixels.
        images: a batch of images.
        pooling: the `FeaturePooling` layer to reduce feature maps / tokens with
            (default: a new one, `mode="auto"`).

    Returns:
        float32 NumPy features.
    """
    if encoder is None:
        return np.asarray(images, np.float32).reshape(len(images), -1)
    if isinstance(encoder, keras.Model):
        outputs = encoder.predict_on_batch(images)
    else:
        outputs = encoder(images, training=False)
    pooled = (pooling or FeaturePooling())(ops.convert_to_tensor(outputs))
    return np.asarray(ops.convert_to_numpy(pooled), np.float32)


def l2_normalize(features, epsilon=1e-12):
    """Rows scaled to unit L2 norm (NumPy).

    Example:

    >>> l2_normalize([[3.0, 4.0], [0.0, 0.0]]).astype(float).round(3).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    features = np.asarray(features, np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), epsilon)


def extract_features(encoder, data, *, batch_size=256, normalize=True, preprocess=None):
    """Runs the frozen encoder (inference mode) once over `data`.

    Args:
        encoder: a Keras model or layer (backbone or `BarlowTwins`); `None` uses the
            flattened input pixels as features (the "raw pixels" baseline).
        data: `(images, labels)` arrays or a `tf.data.Dataset` of `(image, label)`;
            `Features` pass through (normalised if asked).
        batch_size: images per forward pass (for arrays and unbatched datasets).
        normalize: L2-normalise each feature vector.
        preprocess: optional callable applied to every image batch before the encoder.

    Returns:
        `Features` (float32 `(n, dim)`, int64 labels).

    Example:

    >>> train = extract_features(None, (np.ones((4, 2, 2, 1)), [0, 1, 0, 1]))
    >>> train.features.shape, round(float(np.linalg.norm(train.features[0])), 6)
    ((4, 4), 1.0)
    """
    if isinstance(data, Features):
        return Features(l2_normalize(data.features), data.labels) if normalize else data
    pooling = FeaturePooling()
    features, labels = [], []
    for images, batch_labels in iterate_batches(data, batch_size):
        if preprocess is not None:
            images = preprocess(images)
        features.append(encode_batch(encoder, images, pooling))
        labels.append(batch_labels)
    if not features:
        raise ValueError("the data is empty: no images to compute features of")
    features = np.concatenate(features)
    if not np.all(np.isfinite(features)):
        raise ValueError(
            "the encoder produced non-finite features; check the inputs' normalisation and that the "
            "encoder's batch-norm moving statistics were trained"
        )
    return Features(l2_normalize(features) if normalize else features, np.concatenate(labels))
