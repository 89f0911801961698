"""Evaluation protocols for a pretrained encoder: linear probe, weighted kNN, fine-tuning.

All three take the same inputs:

- `encoder`: a Keras model or layer mapping images to features (a backbone such as
  `keras_barlow.resnet(...)`, or a whole `BarlowTwins` model, whose call gives the pooled
  features). Feature maps are average-pooled, token sequences use the class token.
- data: `(images, labels)` NumPy arrays, or a `tf.data.Dataset` of `(image, label)`
  elements (batched or not, e.g. `keras_barlow.labeled_dataset(...)`), already resized
  and normalised as the encoder expects (or pass `preprocess=`), or `Features` computed
  once with `extract_features` and reused by several protocols.

The encoder is frozen and in inference mode (batch norm uses its moving statistics) for
the linear probe and kNN; features are computed once, L2-normalised (default) and cached.

Example:
>>> train = extract_features(encoder, labeled_dataset("digits", batch_size=256, preset="digits"))
>>> test = extract_features(encoder, labeled_dataset("digits", batch_size=256, preset="digits", split="test"))
>>> linear_probe(None, train, test)["top1"], knn_accuracy(None, train, test)["top1"]
"""

import dataclasses
import math

import keras
import numpy as np
from keras import ops

from keras_barlow.model import BarlowTwins, FeaturePooling

# Paper / official evaluate.py settings (facebookresearch/barlowtwins).
LINEAR_EPOCHS = 100
LINEAR_BATCH_SIZE = 256
LINEAR_LEARNING_RATE = 0.3  # official default (raw ResNet features); its README uses 0.1
# Unit-norm features give far smaller gradients than raw ones: on digits pixels, 0.3 reached
# 0.947 in 100 epochs and 3.0 reached 0.967 (= a converged scikit-learn logistic regression).
LINEAR_LEARNING_RATE_NORMALIZED = 3.0
LINEAR_WEIGHT_DECAY = 1e-6
FINETUNE_EPOCHS = 20
FINETUNE_ENCODER_LR = 0.002
FINETUNE_HEAD_LR = 0.5
KNN_K = 200
KNN_TEMPERATURE = 0.1


@dataclasses.dataclass
class Features:
    """Frozen features and their labels, computed once (`extract_features`).

    Attributes:
        features: float32 `(n, dim)`.
        labels: int64 `(n,)`.
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


# ---------------------------------------------------------------------------------------
# Inputs


def _is_tf_dataset(data):
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - TF is a dependency; JAX-only installs lack tf.data
        return False
    return isinstance(data, tf.data.Dataset)


def iterate_batches(data, batch_size=256):
    """Yields `(images, labels)` NumPy batches from arrays or a `tf.data.Dataset`.

    Args:
        data: `(images, labels)` arrays or a dataset of `(image, label)` elements
            (batched or not; `{"image", "label"}` dicts are accepted too).
        batch_size: batch size for arrays and unbatched datasets.
    """
    if isinstance(data, Features):
        raise ValueError("got precomputed Features where images are needed (fine_tune / augmentation)")
    if _is_tf_dataset(data):
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
            raise ValueError(f"expected images (h, w, c) or batches (n, h, w, c), got element shape {spec[0].shape}")
        for images, labels in data.as_numpy_iterator():
            yield images, _as_int_labels(labels)
        return
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = np.asarray(data[0]), _as_int_labels(np.asarray(data[1]))
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (n, h, w, c), got {images.shape}")
        if len(images) != len(labels):
            raise ValueError(f"got {len(images)} images but {len(labels)} labels")
        for start in range(0, len(images), batch_size):
            yield images[start : start + batch_size], labels[start : start + batch_size]
        return
    raise ValueError(
        f"expected (images, labels) arrays, a tf.data.Dataset of (image, label) or Features, got {type(data).__name__}"
    )


def _as_int_labels(labels):
    labels = np.asarray(labels)
    if labels.ndim == 2:  # one-hot
        labels = labels.argmax(axis=1)
    if labels.ndim != 1:
        raise ValueError(f"expected integer labels (n,) or one-hot (n, classes), got shape {labels.shape}")
    return labels.astype(np.int64)


def _pool(features):
    features = np.asarray(features)
    if features.ndim == 4:
        return features.mean(axis=(1, 2))
    if features.ndim == 3:
        return features[:, 0]
    if features.ndim == 2:
        return features
    raise ValueError(f"the encoder must output (n, dim), (n, tokens, dim) or (n, h, w, c), got {features.shape}")


def _infer(encoder, images):
    if isinstance(encoder, keras.Model):
        return encoder.predict_on_batch(images)
    return ops.convert_to_numpy(encoder(images, training=False))


def l2_normalize(features, epsilon=1e-12):
    """Rows scaled to unit L2 norm (NumPy)."""
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
    >>> train = extract_features(encoder, (x_train, y_train))
    """
    if isinstance(data, Features):
        return Features(l2_normalize(data.features), data.labels) if normalize else data
    features, labels = [], []
    for images, batch_labels in iterate_batches(data, batch_size):
        if preprocess is not None:
            images = preprocess(images)
        if encoder is None:
            out = np.asarray(images, np.float32).reshape(len(batch_labels), -1)
        else:
            out = _pool(_infer(encoder, images))
        features.append(np.asarray(out, np.float32))
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


def _features(encoder, data, batch_size, normalize, preprocess):
    return extract_features(encoder, data, batch_size=batch_size, normalize=normalize, preprocess=preprocess)


# ---------------------------------------------------------------------------------------
# Subsets


def balanced_subset(labels, fraction=None, *, shots=None, seed=0):
    """Deterministic class-balanced subset: the same indices for the same labels and seed.

    Each class contributes `max(1, round(fraction · n_class))` examples (the semi-supervised
    1 % / 10 % protocols), or exactly `shots` (few-shot), drawn without replacement by a
    `numpy.random.default_rng(seed)` permutation within the class.

    Args:
        labels: int labels `(n,)`.
        fraction: fraction of each class in (0, 1]; or
        shots: examples per class (mutually exclusive with `fraction`).
        seed: int seed.

    Returns:
        Sorted int64 indices into `labels`.

    Example:
    >>> balanced_subset(labels, 0.01, seed=0)  # 1 % of every class
    """
    labels = _as_int_labels(labels)
    if (fraction is None) == (shots is None):
        raise ValueError("give exactly one of fraction= (e.g. 0.01) or shots= (examples per class)")
    if fraction is not None and not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if shots is not None and (int(shots) != shots or shots < 1):
        raise ValueError(f"shots must be a positive integer, got {shots}")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = int(shots) if shots is not None else max(1, int(round(fraction * len(members))))
        if count > len(members):
            raise ValueError(f"class {label} has {len(members)} examples, fewer than the {count} requested")
        chosen.append(members[rng.permutation(len(members))[:count]])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


# ---------------------------------------------------------------------------------------
# Metrics


def top_k_accuracy(scores, labels, k):
    """Fraction of rows whose label is among the `k` highest scores (ties: lowest index)."""
    scores = np.asarray(scores)
    k = min(int(k), scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=1)))


def _accuracies(scores, labels):
    return {"top1": top_k_accuracy(scores, labels, 1), "top5": top_k_accuracy(scores, labels, 5)}


def _num_classes(*label_sets):
    return int(max(int(np.max(labels)) for labels in label_sets if len(labels)) + 1)


# ---------------------------------------------------------------------------------------
# kNN


def knn_scores(train_features, train_labels, query_features, *, k=KNN_K, temperature=KNN_TEMPERATURE,
               num_classes=None, batch_size=256, train_batch_size=65536):
    """Class scores of the weighted kNN classifier (Wu et al. 2018; DINO's monitor).

    For each query, the `k` training features with the highest cosine similarity `s` vote
    for their class with weight `exp(s / temperature)`. Features are L2-normalised here.
    Memory stays bounded: queries go `batch_size` at a time, and the training features
    `train_batch_size` at a time with a running top-k.

    Returns:
        float32 `(n_queries, num_classes)` vote totals.
    """
    if k < 1 or temperature <= 0:
        raise ValueError(f"k must be >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    train = l2_normalize(train_features)
    queries = l2_normalize(query_features)
    train_labels = _as_int_labels(train_labels)
    if train.shape[1] != queries.shape[1]:
        raise ValueError(f"train and query features differ in size: {train.shape[1]} vs {queries.shape[1]}")
    num_classes = num_classes or _num_classes(train_labels)
    k = min(int(k), len(train))
    scores = np.zeros((len(queries), num_classes), np.float32)
    for q0 in range(0, len(queries), batch_size):
        q = queries[q0 : q0 + batch_size]
        best_sim = np.full((len(q), 0), -np.inf, np.float32)
        best_idx = np.zeros((len(q), 0), np.int64)
        for t0 in range(0, len(train), train_batch_size):
            chunk = train[t0 : t0 + train_batch_size]
            chunk_idx = np.broadcast_to(np.arange(t0, t0 + len(chunk)), (len(q), len(chunk)))
            sim = np.concatenate([best_sim, q @ chunk.T], axis=1)
            idx = np.concatenate([best_idx, chunk_idx], axis=1)
            if sim.shape[1] > k:
                keep = np.argpartition(-sim, k - 1, axis=1)[:, :k]
                sim, idx = np.take_along_axis(sim, keep, 1), np.take_along_axis(idx, keep, 1)
            best_sim, best_idx = sim, idx
        weights = np.exp(best_sim.astype(np.float64) / temperature)
        votes = np.zeros((len(q), num_classes))
        np.add.at(votes, (np.arange(len(q))[:, None], train_labels[best_idx]), weights)
        scores[q0 : q0 + len(q)] = votes
    return scores


def knn_accuracy(encoder, train_data, test_data, *, k=KNN_K, temperature=KNN_TEMPERATURE, batch_size=256,
                 preprocess=None):
    """Weighted kNN accuracy of frozen, L2-normalised features (the standard SSL monitor).

    Args:
        encoder: Keras model/layer, or None for raw pixels (unused for `Features` inputs).
        train_data, test_data: arrays, datasets of `(image, label)`, or `Features`.
        k: neighbours (default 200).
        temperature: vote weight `exp(cosine / temperature)` (default 0.1).
        batch_size: queries (and images per forward pass) at a time.
        preprocess: optional callable applied to image batches.

    Returns:
        `{"top1": float, "top5": float}`.

    Example:
    >>> knn_accuracy(model, (x_train, y_train), (x_test, y_test))["top1"]
    """
    train = _features(encoder, train_data, batch_size, True, preprocess)
    test = _features(encoder, test_data, batch_size, True, preprocess)
    scores = knn_scores(train.features, train.labels, test.features, k=k, temperature=temperature,
                        num_classes=_num_classes(train.labels, test.labels), batch_size=batch_size)
    return _accuracies(scores, test.labels)


# ---------------------------------------------------------------------------------------
# Linear probe


def crop_flip_augmentation(scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip_prob=0.5):
    """The linear-evaluation augmentation: random resized crop + horizontal flip, per image.

    Returns a TensorFlow function `(images, seed) -> images` (`seed`: int or `[2]` integer
    tensor) that crops each image of a batch and resizes the crop back to the batch's size
    (bilinear), so it applies to images already resized and normalised for the encoder.
    Use `flip_prob=0` for chiral data such as digits.

    Example:
    >>> augment = crop_flip_augmentation(scale=(0.4, 1.0), flip_prob=0.0)
    >>> linear_probe(encoder, train, test, augmentations=4, augment=augment)
    """
    from keras_barlow import augment as aug

    def apply(images, seed):
        import tensorflow as tf

        images = tf.convert_to_tensor(images, tf.float32)
        seed = tf.constant([seed, 0], tf.int64) if isinstance(seed, int) else tf.cast(seed, tf.int64)
        shape = tf.shape(images)
        n = shape[0]
        seed_crop, seed_flip = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        window = aug.sample_crop_boxes(seed_crop, tf.fill([n], shape[1]), tf.fill([n], shape[2]), scale, ratio)
        out = aug.crop_resize(images, *window, (images.shape[1], images.shape[2]))
        flip = tf.random.stateless_uniform([n], seed_flip) < flip_prob
        return tf.where(flip[:, None, None, None], tf.reverse(out, axis=[2]), out)

    return apply


def _augmented_features(encoder, data, augmentations, augment, batch_size, normalize, preprocess, seed):
    augment = augment or crop_flip_augmentation()
    parts = []
    for copy in range(augmentations):
        feats, labels = [], []
        for b, (images, batch_labels) in enumerate(iterate_batches(data, batch_size)):
            if preprocess is not None:
                images = preprocess(images)
            images = np.asarray(augment(np.asarray(images, np.float32), [seed, copy * 1_000_003 + b]), np.float32)
            feats.append(_pool(_infer(encoder, images)) if encoder is not None else images.reshape(len(images), -1))
            labels.append(batch_labels)
        feats = np.concatenate(feats).astype(np.float32)
        parts.append(Features(l2_normalize(feats) if normalize else feats, np.concatenate(labels)))
    return Features(np.concatenate([p.features for p in parts]), np.concatenate([p.labels for p in parts]))


def train_linear_classifier(train, num_classes, *, epochs=LINEAR_EPOCHS, batch_size=LINEAR_BATCH_SIZE,
                            learning_rate=LINEAR_LEARNING_RATE, weight_decay=LINEAR_WEIGHT_DECAY, momentum=0.9,
                            seed=0, verbose=0):
    """A `Dense(num_classes)` softmax classifier fitted on cached `Features`.

    SGD with momentum, cosine decay of the learning rate to 0 over all steps, L2 weight
    decay on weights and bias as PyTorch's `weight_decay`, weights initialised N(0, 0.01²)
    and bias 0 — the official `evaluate.py`. `epochs` passes over the features, each in a
    new random order.

    Returns:
        The trained `keras.Sequential` (logits out).
    """
    keras.utils.set_random_seed(seed)
    batch_size = max(1, min(int(batch_size), len(train)))  # few-shot sets: full batches
    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    classifier = keras.Sequential(
        [
            keras.Input((train.features.shape[1],)),
            keras.layers.Dense(
                num_classes,
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
                bias_initializer="zeros",
                kernel_regularizer=regularizer,
                bias_regularizer=regularizer,
                name="linear",
            ),
        ],
        name="linear_probe",
    )
    import tensorflow as tf

    steps = math.ceil(epochs * len(train) / batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(steps, 1))
    classifier.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=min(steps, 50),  # tiny steps: amortise the per-call overhead
    )
    # All epochs as one stream of batches (reshuffled every pass; a batch may straddle two
    # passes): one `fit` epoch, so the per-epoch overhead is paid once. The features stay
    # one array; batches are gathered by index.
    features = tf.constant(train.features)
    labels = tf.constant(train.labels)
    stream = tf.data.Dataset.range(len(train)).shuffle(len(train), seed=seed, reshuffle_each_iteration=True)
    stream = stream.repeat(epochs).batch(batch_size).map(lambda i: (tf.gather(features, i), tf.gather(labels, i)))
    classifier.fit(stream, epochs=1, steps_per_epoch=steps, verbose=verbose)
    return classifier


def linear_probe(encoder, train_data, test_data, *, epochs=LINEAR_EPOCHS, batch_size=LINEAR_BATCH_SIZE,
                 learning_rate=None, weight_decay=LINEAR_WEIGHT_DECAY, normalize=True,
                 augmentations=0, augment=None, preprocess=None, seed=0, return_classifier=False, verbose=0):
    """Linear evaluation: a softmax classifier on frozen features (the paper's protocol).

    The encoder is frozen and runs in inference mode; features are computed once and
    cached, then a linear classifier is trained on them (`train_linear_classifier`: SGD,
    momentum 0.9, cosine decay, weight decay 1e-6, 100 epochs, batch 256 — the official
    `evaluate.py`). The official code also augments the training images with a random
    resized crop and a flip every epoch; here `augmentations=n` computes features of `n`
    augmented copies of the training set once (`augment`, default
    `crop_flip_augmentation()`) and trains on them, keeping the cache. The default (0)
    trains on the clean images, the usual choice for small data.

    Args:
        encoder: Keras model/layer, or None for raw pixels (unused for `Features` inputs).
        train_data, test_data: arrays, datasets of `(image, label)`, or `Features`.
        epochs, batch_size, learning_rate, weight_decay: classifier training (the batch is
            capped at the training-set size). `learning_rate=None`: 3.0 for L2-normalised
            features, the official 0.3 for raw ones (unit-norm features need a larger step).
        normalize: L2-normalise the features.
        augmentations: number of augmented copies of the training set (needs images).
        augment: `(images, seed) -> images` for those copies.
        preprocess: optional callable applied to image batches before the encoder.
        seed: seed of the classifier's initialisation, shuffling and augmentation.
        return_classifier: also return the trained classifier.
        verbose: `fit` verbosity.

    Returns:
        `{"top1": float, "top5": float}` on `test_data` (and the classifier when asked).

    Example:
    >>> linear_probe(encoder, labeled_dataset("digits", batch_size=256, preset="digits"),
    ...              labeled_dataset("digits", batch_size=256, preset="digits", split="test"))
    {'top1': 0.93, 'top5': 0.99}
    """
    if augmentations:
        if isinstance(train_data, Features):
            raise ValueError("augmentations need training images, not precomputed Features")
        train = _augmented_features(encoder, train_data, int(augmentations), augment, batch_size, normalize,
                                    preprocess, seed)
    else:
        train = _features(encoder, train_data, batch_size, normalize, preprocess)
    test = _features(encoder, test_data, batch_size, normalize, preprocess)
    if train.features.shape[1] != test.features.shape[1]:
        raise ValueError(f"train and test features differ in size: {train.features.shape} vs {test.features.shape}")
    num_classes = _num_classes(train.labels, test.labels)
    if learning_rate is None:
        learning_rate = LINEAR_LEARNING_RATE_NORMALIZED if normalize else LINEAR_LEARNING_RATE
    classifier = train_linear_classifier(train, num_classes, epochs=epochs, batch_size=batch_size,
                                         learning_rate=learning_rate, weight_decay=weight_decay, seed=seed,
                                         verbose=verbose)
    scores = classifier.predict(test.features, batch_size=4096, verbose=0)
    result = _accuracies(scores, test.labels)
    return (result, classifier) if return_classifier else result


# ---------------------------------------------------------------------------------------
# Fine-tuning (semi-supervised)


@keras.saving.register_keras_serializable(package="keras_barlow")
class FineTuneSGD(keras.optimizers.Optimizer):
    """SGD with momentum and two learning rates: one for the encoder, one for the head.

    Variables whose `path` is in `encoder_paths` use `learning_rate · encoder_lr_multiplier`,
    the others `learning_rate` (the official code's two parameter groups; the paper's 1 %
    run: head 0.5, encoder 0.002, so a multiplier of 0.004). Weight decay is coupled L2
    (`g + weight_decay · p`), as PyTorch's SGD.

    Args:
        learning_rate: float or schedule: the head's learning rate.
        encoder_lr_multiplier: encoder learning rate / head learning rate.
        encoder_paths: the `variable.path`s of the encoder's variables.
        momentum: momentum coefficient (0.9).
        weight_decay: coupled L2 coefficient (paper's semi-supervised runs: 0).

    Example:
    >>> opt = FineTuneSGD(0.5, encoder_lr_multiplier=0.004,
    ...                   encoder_paths=[v.path for v in encoder.trainable_variables])
    """

    def __init__(self, learning_rate=FINETUNE_HEAD_LR, encoder_lr_multiplier=FINETUNE_ENCODER_LR / FINETUNE_HEAD_LR,
                 encoder_paths=(), momentum=0.9, weight_decay=0.0, name="fine_tune_sgd", **kwargs):
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, weight_decay=None, name=name, **kwargs)
        if encoder_lr_multiplier < 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(
                "encoder_lr_multiplier and weight_decay must be >= 0 and momentum in [0, 1), got "
                f"{encoder_lr_multiplier}, {weight_decay}, {momentum}"
            )
        self.encoder_lr_multiplier = float(encoder_lr_multiplier)
        self.encoder_paths = tuple(str(p) for p in encoder_paths)
        self.momentum = float(momentum)
        self.sgd_weight_decay = float(weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        paths = set(self.encoder_paths)
        self._multipliers = [self.encoder_lr_multiplier if v.path in paths else 1.0 for v in variables]
        self.momentums = [self.add_variable_from_reference(v, name="momentum") for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        if self.sgd_weight_decay:
            gradient = gradient + ops.cast(self.sgd_weight_decay, dtype) * variable
        learning_rate = ops.cast(learning_rate, dtype) * ops.cast(self._multipliers[index], dtype)
        momentum = self.momentums[index]
        new_momentum = ops.cast(self.momentum, dtype) * momentum + gradient
        self.assign(momentum, new_momentum)
        self.assign_sub(variable, learning_rate * new_momentum)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder_lr_multiplier": self.encoder_lr_multiplier,
                "encoder_paths": list(self.encoder_paths),
                "momentum": self.momentum,
                "weight_decay": self.sgd_weight_decay,
            }
        )
        return config


def _copy_encoder(encoder):
    copy = keras.models.clone_model(encoder) if isinstance(encoder, keras.Model) else encoder.__class__.from_config(
        encoder.get_config()
    )
    if not copy.built:
        copy.build(encoder.inputs[0].shape if getattr(encoder, "inputs", None) else None)
    copy.set_weights(encoder.get_weights())
    return copy


def _subset_arrays(data, fraction, seed, labels=None):
    """The labelled subset as arrays (NumPy inputs) or a filtered dataset."""
    if _is_tf_dataset(data):
        import tensorflow as tf

        if labels is None:
            labels = np.concatenate([batch_labels for _, batch_labels in iterate_batches(data)])
        indices = balanced_subset(labels, fraction, seed=seed)
        keep = np.zeros(len(labels), bool)
        keep[indices] = True
        keep = tf.constant(keep)
        dataset = data
        if dataset.element_spec[0].shape.rank == 4:
            dataset = dataset.unbatch()
        dataset = dataset.enumerate().filter(lambda index, _: keep[index])
        dataset = dataset.map(lambda _, element: element)
        images, subset_labels = zip(*[(x, y) for x, y in dataset.as_numpy_iterator()])
        return np.stack(images), _as_int_labels(np.asarray(subset_labels)), indices, len(labels)
    images, labels_all = next(iterate_batches(data, batch_size=2**62))
    indices = balanced_subset(labels_all, fraction, seed=seed)
    return images[indices], labels_all[indices], indices, len(labels_all)


def fine_tune(encoder, labeled_data, fraction=0.01, *, test_data=None, epochs=FINETUNE_EPOCHS, batch_size=256,
              encoder_learning_rate=FINETUNE_ENCODER_LR, head_learning_rate=FINETUNE_HEAD_LR, weight_decay=0.0,
              momentum=0.9, augment=None, preprocess=None, labels=None, seed=0, copy_encoder=True,
              return_model=False, verbose=0):
    """Semi-supervised evaluation: fine-tune encoder + linear head on a labelled fraction.

    The subset is class-balanced and deterministic (`balanced_subset(labels, fraction,
    seed=seed)`: the same images for the same seed). Encoder and a new `Dense` head are
    trained end to end (batch norm in training mode) with SGD, momentum 0.9 and a cosine
    decay, at two learning rates (`FineTuneSGD`); the paper's 1 % run used 20 epochs, head
    0.5, encoder 0.002, no weight decay (the defaults).

    Args:
        encoder: Keras model (backbone or `BarlowTwins`, whose encoder is used).
        labeled_data: `(images, labels)` arrays or a dataset of `(image, label)`; the subset
            (materialised as arrays, so keep it to what fits in memory) is drawn from it.
        fraction: labelled fraction per class (paper: 0.01 or 0.1).
        test_data: arrays or dataset to report accuracy on (optional).
        epochs, batch_size, encoder_learning_rate, head_learning_rate, weight_decay, momentum:
            training settings.
        augment: TF function `(images, seed) -> images` applied to each training batch, a
            new seed every step (e.g. `crop_flip_augmentation()`); None: no augmentation.
        preprocess: callable applied to image batches (train and test) before the encoder.
        labels: the labels of `labeled_data` in order, to skip a pass over a dataset.
        seed: subset, head initialisation, shuffling and augmentation seed.
        copy_encoder: fine-tune a copy (default) and leave `encoder` untouched.
        return_model: also return the fine-tuned classifier (a `keras.Model`, logits out).
        verbose: `fit` verbosity.

    Returns:
        `{"top1", "top5"}` on `test_data` (when given), `"num_labeled"` and `"indices"`
        (the subset, a list); plus the classifier when `return_model`.

    Example:
    >>> fine_tune(encoder, (x_train, y_train), 0.1, test_data=(x_test, y_test))["top1"]
    """
    import tensorflow as tf

    backbone = encoder.encoder if isinstance(encoder, BarlowTwins) else encoder
    if not isinstance(backbone, keras.Model):
        raise ValueError(f"fine_tune needs a Keras model as encoder, got {type(encoder).__name__}")
    images, subset_labels, indices, total = _subset_arrays(labeled_data, fraction, seed, labels)
    if preprocess is not None:
        images = np.concatenate([np.asarray(preprocess(images[i : i + 256])) for i in range(0, len(images), 256)])
    images = images.astype(np.float32)
    test_batches = list(iterate_batches(test_data, 256)) if test_data is not None else []
    num_classes = _num_classes(subset_labels, *[b[1] for b in test_batches])

    keras.utils.set_random_seed(seed)
    backbone = _copy_encoder(backbone) if copy_encoder else backbone
    inputs = keras.Input(images.shape[1:])
    features = FeaturePooling(name="pool")(backbone(inputs))
    logits = keras.layers.Dense(num_classes, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
                                name="head")(features)
    classifier = keras.Model(inputs, logits, name="fine_tuned")
    steps = epochs * math.ceil(len(images) / batch_size)
    optimizer = FineTuneSGD(
        keras.optimizers.schedules.CosineDecay(head_learning_rate, decay_steps=max(steps, 1)),
        encoder_lr_multiplier=encoder_learning_rate / head_learning_rate,
        encoder_paths=[v.path for v in backbone.trainable_variables],
        momentum=momentum,
        weight_decay=weight_decay,
    )
    classifier.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dataset = tf.data.Dataset.from_tensor_slices((images, subset_labels)).shuffle(len(images), seed=seed)
    dataset = dataset.batch(batch_size)
    if augment is not None:
        augment_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2, drop_remainder=True)
        dataset = tf.data.Dataset.zip(dataset, augment_seeds).map(lambda b, s: (augment(b[0], s), b[1]))
    classifier.fit(dataset, epochs=epochs, shuffle=False, verbose=verbose)
    result = {"num_labeled": int(len(indices)), "indices": indices.tolist(), "num_examples": int(total)}
    if test_batches:
        scores, test_labels = [], []
        for batch_images, batch_labels in test_batches:
            if preprocess is not None:
                batch_images = preprocess(batch_images)
            scores.append(classifier.predict_on_batch(np.asarray(batch_images, np.float32)))
            test_labels.append(batch_labels)
        result.update(_accuracies(np.concatenate(scores), np.concatenate(test_labels)))
    return (result, classifier) if return_model else result
