"""`BarlowTwins`: the self-supervised model, backend-neutral.

The model owns the encoder, the projector, the metrics and the input contract. The
training step itself is the only backend-specific piece and lives in
`keras_barlow/trainers/<backend>.py`; both steps call `BarlowTwins.compute_terms`, so the
maths exists once.
"""

import contextlib
import math

import keras
from keras import ops

from keras_barlow import losses
from keras_barlow.projector import build_projector

VIEW_KEYS = ("view_a", "view_b")


def _backend_trainer():
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from keras_barlow.trainers import tensorflow as trainer
    elif backend == "jax":
        from keras_barlow.trainers import jax as trainer
    else:
        raise RuntimeError(
            f"BarlowTwins trains on the 'tensorflow' and 'jax' Keras backends, not {backend!r}. "
            "Set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax before importing keras."
        )
    return trainer


@keras.saving.register_keras_serializable(package="keras_barlow")
class FeaturePooling(keras.layers.Layer):
    """Turns an encoder's output into one feature vector per image.

    - rank 4 `(batch, height, width, channels)` feature maps (ResNets): global average pool;
    - rank 3 `(batch, tokens, dim)` token sequences (ViTs): the class token (`mode="auto"`
      or `"class_token"`) or the mean over tokens (`mode="mean_tokens"`);
    - rank 2 `(batch, dim)` features: unchanged.

    Args:
        mode: `"auto"`, `"class_token"` or `"mean_tokens"` (only used for rank-3 inputs).
    """

    MODES = ("auto", "class_token", "mean_tokens")

    def __init__(self, mode="auto", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"pooling mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode

    def call(self, features):
        rank = len(features.shape)
        if rank == 4:
            return ops.mean(features, axis=(1, 2))
        if rank == 3:
            if self.mode == "mean_tokens":
                return ops.mean(features, axis=1)
            return features[:, 0, :]
        if rank == 2:
            return features
        raise ValueError(
            f"the encoder must output (batch, dim), (batch, tokens, dim) or (batch, h, w, c) "
            f"features, got shape {tuple(features.shape)}"
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def unpack_views(data):
    """Checks one training element and returns `(view_a, view_b)`.

    Accepts `(view_a, view_b)` or `{"view_a": ..., "view_b": ...}`; anything else — single
    images, `(images, labels)` pairs, views of different shapes — raises a `ValueError`
    that says what was received.
    """
    if isinstance(data, (tuple, list)) and len(data) == 1:
        data = data[0]
    if isinstance(data, dict):
        missing = [k for k in VIEW_KEYS if k not in data]
        if missing:
            raise ValueError(
                f"expected a dataset of {{'view_a': ..., 'view_b': ...}} dicts, got keys "
                f"{sorted(data)} (missing {missing})"
            )
        views = (data["view_a"], data["view_b"])
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        views = tuple(data)
    else:
        raise ValueError(
            "expected a dataset of (view_a, view_b) pairs of image batches, got "
            f"{_describe(data)}. Build one with keras_barlow.pretraining_dataset(...)."
        )
    view_a, view_b = views
    shape_a, shape_b = tuple(view_a.shape), tuple(view_b.shape)
    if len(shape_b) < 3 and len(shape_a) == 4:
        raise ValueError(
            f"expected a dataset of (view_a, view_b) pairs, got (images {shape_a}, labels "
            f"{shape_b}): Barlow Twins is self-supervised. Drop the labels and make two "
            "augmented views, e.g. with keras_barlow.pretraining_dataset(...)."
        )
    if len(shape_a) != 4 or len(shape_b) != 4:
        raise ValueError(
            f"expected each view to be a batch of images (batch, height, width, channels), "
            f"got shapes {shape_a} and {shape_b}"
        )
    if any(a is not None and b is not None and a != b for a, b in zip(shape_a, shape_b)):
        raise ValueError(
            f"the two views must have the same shape, got {shape_a} and {shape_b}; "
            "crop both views to the same image size"
        )
    if shape_a[0] == 1:
        raise ValueError(
            "a per-replica batch of 1 leaves the batch statistics of Barlow Twins undefined; "
            "use a per-replica batch of at least 2 (in practice ≥ 32)"
        )
    return view_a, view_b


def _describe(data):
    if isinstance(data, dict):
        return f"a dict with keys {sorted(data)}"
    if isinstance(data, (tuple, list)):
        inner = ", ".join(_describe(d) for d in data)
        return f"a {type(data).__name__} of {len(data)} ({inner})"
    shape = getattr(data, "shape", None)
    if shape is not None:
        return f"a single tensor of shape {tuple(shape)}"
    return repr(type(data))


@keras.saving.register_keras_serializable(package="keras_barlow")
class BarlowTwins(keras.Model):
    """Barlow Twins (Zbontar et al., 2021) as a `keras.Model` you `fit`.

    Both views go through the shared `encoder` and projector; each view's embedding is
    standardised over the batch; the loss drives their cross-correlation matrix to the
    identity. Under `tf.distribute` the standardisation, `C` and every batch norm are over
    the global batch, and gradients are those of the global-batch loss, so N replicas
    give the same result as one device (see README, "Exactness").

    Args:
        encoder: a Keras model or layer mapping images to features. Rank-4 feature maps
            are average-pooled, rank-3 token sequences use the class token.
        projector_dims: sizes of the projector layers (paper: 8192-8192-8192).
        lambd: weight λ of the off-diagonal term (official code: 0.0051).
        scale_loss: overall loss factor. The first official release used 0.024; the current
            official code instead uses a bias learning rate of 0.0048 (= 0.2 × 0.024), which
            `LARS(bias_lr_multiplier=0.024)` reproduces — don't combine both.
        image_shape: `(height, width, channels)`, needed only when the encoder does not
            declare its input shape (subclassed models).
        pooling: `FeaturePooling` mode for token encoders.
        sync_batchnorm: synchronise every batch norm across replicas under `tf.distribute`
            (needed for exactness; has no effect with one replica or on JAX, where
            `keras.distribution` computes global statistics by construction).
        **kwargs: `keras.Model` arguments such as `name`.

    Example:
    >>> encoder = keras_barlow.resnet(18, (32, 32, 3), small_images=True)
    >>> model = BarlowTwins(encoder, projector_dims=(512, 512, 512))
    >>> model.compile(optimizer=keras_barlow.LARS(0.2))
    >>> model.fit(keras_barlow.pretraining_dataset("digits", batch_size=128, image_size=32))
    >>> features = model.predict(images)  # the encoder's pooled features
    """

    def __init__(
        self,
        encoder,
        projector_dims=(8192, 8192, 8192),
        lambd=losses.DEFAULT_LAMBD,
        scale_loss=1.0,
        image_shape=None,
        pooling="auto",
        sync_batchnorm=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.layers.Layer):
            raise ValueError(f"encoder must be a Keras model or layer, got {type(encoder).__name__}")
        self.encoder = encoder
        self.projector_dims = tuple(int(d) for d in projector_dims)
        self.lambd = float(lambd)
        self.scale_loss = float(scale_loss)
        self.pooling = FeaturePooling(pooling, name="pooling")
        self.projector = build_projector(self.projector_dims)
        self.sync_batchnorm = bool(sync_batchnorm)
        self.image_shape = tuple(image_shape) if image_shape is not None else self._encoder_image_shape()
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.on_diag_tracker = keras.metrics.Mean(name="on_diag")
        self.off_diag_tracker = keras.metrics.Mean(name="off_diag")
        self.embedding_std_tracker = keras.metrics.Mean(name="embedding_std")
        self._trainer = _backend_trainer()
        if self.image_shape is not None:
            # Built now, not lazily inside the (possibly distributed) first step: variables
            # created inside `strategy.run` fail (../shared/NOTES.md §2).
            self.build((None, *self.image_shape))

    def _encoder_image_shape(self):
        inputs = getattr(self.encoder, "inputs", None)
        if inputs:
            return tuple(inputs[0].shape[1:])
        return None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if not self.encoder.built:
            self.encoder.build(input_shape)
        feature_shape = self.encoder.compute_output_shape(input_shape)
        features = self.pooling.compute_output_shape(feature_shape)
        if features[-1] is None:
            raise ValueError(f"could not infer the encoder's feature size from {feature_shape}")
        self.feature_dim = int(features[-1])
        self.pooling.build(feature_shape)
        self.projector.build((None, self.feature_dim))
        if self.image_shape is None:
            self.image_shape = input_shape[1:]

    @property
    def metrics(self):
        return [self.loss_tracker, self.on_diag_tracker, self.off_diag_tracker, self.embedding_std_tracker]

    def call(self, images, training=False):
        """Returns the encoder's pooled features: `model.predict` gives representations."""
        return self.pooling(self.encoder(images, training=training))

    def embed(self, images, training=False):
        """Projector outputs `z` for a batch of images."""
        return self.projector(self(images, training=training), training=training)

    def compute_terms(self, view_a, view_b, *, training, sum_over_batch=None, batch_size=None):
        """Loss, its two terms and the collapse indicator for one pair of view batches.

        Args:
            view_a, view_b: image batches.
            training: whether batch norms use (and update) batch statistics.
            sum_over_batch: reducer over the (global) batch, see `losses.cross_correlation`.
            batch_size: global batch size `sum_over_batch` sums over.

        Returns:
            dict of float32 scalars: `loss`, `on_diag`, `off_diag`, `embedding_std`.
        """
        z_a = self.embed(view_a, training=training)
        z_b = self.embed(view_b, training=training)
        reduce_kwargs = dict(sum_over_batch=sum_over_batch, batch_size=batch_size)
        c = losses.cross_correlation(z_a, z_b, **reduce_kwargs)
        terms = losses.loss_terms_from_correlation(c, lambd=self.lambd, scale_loss=self.scale_loss)
        terms["embedding_std"] = 0.5 * (
            embedding_std(z_a, **reduce_kwargs) + embedding_std(z_b, **reduce_kwargs)
        )
        return terms

    def update_trackers(self, terms):
        """Feeds `compute_terms`' output to the metric trackers and returns the logs."""
        self.loss_tracker.update_state(terms["loss"])
        self.on_diag_tracker.update_state(terms["on_diag"])
        self.off_diag_tracker.update_state(terms["off_diag"])
        self.embedding_std_tracker.update_state(terms["embedding_std"])
        return {m.name: m.result() for m in self.metrics}

    def batchnorm_layers(self):
        """Every `BatchNormalization` layer of the encoder and the projector."""
        return [
            layer
            for layer in self._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)
        ]

    def train_step(self, *args):
        # TF calls train_step(data); JAX calls train_step(state, data).
        return self._trainer.train_step(self, *args)

    def test_step(self, *args):
        return self._trainer.test_step(self, *args)

    def make_train_function(self, force=False):
        self._trainer.prepare_train_function(self)
        return super().make_train_function(force=force)

    def _maybe_symbolic_build(self, *args, **kwargs):
        # Keras 3 `fit` under MultiWorkerMirroredStrategy (keras-team/keras#20585): the TF
        # trainer skips this symbolic build there (the model is built in its constructor).
        skip = getattr(self._trainer, "skip_symbolic_build", None)
        if skip is not None and skip(self):
            return None
        return super()._maybe_symbolic_build(*args, **kwargs)

    def fit(self, *args, callbacks=None, **kwargs):
        """`keras.Model.fit`, plus a guard that stops at the first non-finite loss.

        The guard runs before every other callback, so a checkpoint callback never writes
        the weights of a diverged step; the error names the step.
        """
        callbacks = [NonFiniteLossGuard(), *(callbacks or [])]
        with self._keep_variables_on_failure(build_optimizer=True):
            return super().fit(*args, callbacks=callbacks, **kwargs)

    def evaluate(self, *args, **kwargs):
        with self._keep_variables_on_failure():
            return super().evaluate(*args, **kwargs)

    def predict(self, *args, **kwargs):
        with self._keep_variables_on_failure():
            return super().predict(*args, **kwargs)

    def _keep_variables_on_failure(self, build_optimizer=False):
        # JAX: a failing first step (e.g. bad input) must not leave the variables empty.
        guard = getattr(self._trainer, "keep_variables_on_failure", None)
        if guard is None:
            return contextlib.nullcontext()
        return guard(self, build_optimizer=build_optimizer)

    def get_config(self):
        config = super().get_config()
        with unsynchronized_batchnorm(self.batchnorm_layers()):
            encoder_config = keras.saving.serialize_keras_object(self.encoder)
        config.update(
            {
                "encoder": encoder_config,
                "projector_dims": list(self.projector_dims),
                "lambd": self.lambd,
                "scale_loss": self.scale_loss,
                "image_shape": list(self.image_shape) if self.image_shape is not None else None,
                "pooling": self.pooling.mode,
                "sync_batchnorm": self.sync_batchnorm,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"), custom_objects=custom_objects)
        return cls(encoder=encoder, **config)


@contextlib.contextmanager
def unsynchronized_batchnorm(layers):
    """Clears `synchronized` on batch norms while their configs are written.

    Training on several TF replicas switches it on (see `trainers/tensorflow.py`); saved
    configs must not carry it, or the JAX backend could not load them.
    """
    layers = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization) and layer.synchronized]
    for layer in layers:
        layer.synchronized = False
    try:
        yield
    finally:
        for layer in layers:
            layer.synchronized = True


def embedding_std(z, *, sum_over_batch=None, batch_size=None):
    """Collapse indicator: mean per-dimension std of the L2-normalised embeddings.

    About `1/sqrt(dim)` for embeddings spread over the sphere, 0 when they collapse to a
    point. Computed over the same (global) batch as the loss.
    """
    sum_over_batch = sum_over_batch or (lambda x: ops.sum(x, axis=0))
    z = ops.cast(z, "float32")
    z = z / ops.maximum(ops.sqrt(ops.sum(ops.square(z), axis=1, keepdims=True)), 1e-12)
    n = ops.cast(batch_size if batch_size is not None else ops.shape(z)[0], "float32")
    mean = sum_over_batch(z) / n
    variance = sum_over_batch(ops.square(z - mean)) / n
    return ops.mean(ops.sqrt(variance))


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops `fit` with a `FloatingPointError` naming the step of the first non-finite loss.

    `BarlowTwins.fit` adds it first, before any checkpoint callback.
    """

    def on_train_begin(self, logs=None):
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get("loss")
        if value is None:
            return
        value = float(value)
        if not math.isfinite(value):
            self.model.stop_training = True
            optimizer = self.model.optimizer
            step = int(ops.convert_to_numpy(optimizer.iterations)) if optimizer else batch
            raise FloatingPointError(
                f"the Barlow Twins loss became {value} at step {step} (epoch {self._epoch}, "
                f"batch {batch}); training stopped before any later callback could save "
                "these weights. Lower the learning rate, check the input for NaNs, or use "
                "mixed_float16 only with loss scaling."
            )
