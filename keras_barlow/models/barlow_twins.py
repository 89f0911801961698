"""`BarlowTwins`: the self-supervised model, backend-neutral.

The model owns the encoder, the projector, the metrics and the loss terms. The training
step itself is the only backend-specific piece: `keras_barlow.trainers.select_trainer()`
picks a `Trainer` (`trainers/tensorflow.py` or `trainers/jax.py`), whose steps both call
`BarlowTwins.compute_terms`, so the maths exists once.
"""

import contextlib
import functools
import math
import numbers

import keras

from keras_barlow import _compat, losses
from keras_barlow.callbacks.non_finite_loss_guard import NonFiniteLossGuard
from keras_barlow.layers.feature_pooling import FeaturePooling
from keras_barlow.layers.fused_batch_normalization import fused_batch_normalizations
from keras_barlow.layers.one_by_one_map_convolution import matmul_convolutions
from keras_barlow.layers.projector import build_projector, check_projector_dims, unsynchronized_batchnorm
from keras_barlow.losses.barlow_twins_loss import embedding_std
from keras_barlow.models.view_pairs import check_last_batch
from keras_barlow.trainers import select_trainer

__all__ = ["BarlowTwins"]


@keras.saving.register_keras_serializable(package="keras_barlow")
class BarlowTwins(_compat.SkippableSymbolicBuild, keras.Model):
    """Barlow Twins (Zbontar et al., 2021) as a `keras.Model` you `fit`.

    Both views go through the shared `encoder` and projector; each view's embedding is
    standardised over the batch; the loss drives their cross-correlation matrix to the
    identity. Under `tf.distribute` the standardisation, `C` and every batch norm are over
    the global batch, and gradients are those of the global-batch loss, so N replicas
    give the same result as one device (see the docs, "Training at scale").

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
        matmul_on_1x1_maps: compute the encoder's `Conv2D` layers that have a 1×1 map on
            either side as the matrix product they are: stride-1 `"same"` convolutions of 1×1
            maps (the other taps only ever meet padding zeros) and `"valid"` convolutions
            whose kernel fits the input once (a 1×1 output). E.g. ResNet's last stage at
            ≤ 32 px with the ImageNet stem. Exact up to float rounding, and faster (1×1
            outputs since 0.2.0). Applied inside the model's own forward pass only
            (`keras_barlow.layers.one_by_one_map_convolution`): the encoder's layers, configs
            and saved files are never changed. `False` runs the plain convolution.
        pointwise_matmul: compute the encoder's pointwise `Conv2D` layers (1×1 kernel, stride
            1, channels last) as the matrix products they are, in the model's own forward pass
            only, exact up to float rounding. `"auto"` (the default): for bfloat16 layers on a
            TensorFlow without GPU, where oneDNN's bfloat16 1×1 filter gradient is slow (a
            ResNet-50 224 px step 1.045× faster; none in float32, and ResNet-18/34 have no
            pointwise convolution of stride 1). `True`: in every precision and on every
            backend. `False`: never.
        fused_batchnorm: compute the encoder's batch norms of 4-D maps with TensorFlow's fused
            kernel (`keras_barlow.layers.fused_batch_normalization`): one pass instead of a
            chain of float32 ops, the same result up to float rounding, in the model's own
            forward pass only (the layers and saved files are never changed). `"auto"` (the
            default) and `True` fuse in every precision: a ResNet-50 step on a CPU is 1.8× faster
            in bfloat16 and 1.5× in float32. `False` runs Keras' own layer (the float32 results
            of keras-barlow 0.1.0 repeat to the last digit only this way). No effect on JAX
            (XLA fuses by itself) or on batch norms synchronised across replicas.
        **kwargs: `keras.Model` arguments such as `name`.

    Example:

    ```python
    import keras_barlow

    encoder = keras_barlow.resnet(18, (32, 32, 3), small_images=True)
    model = keras_barlow.BarlowTwins(encoder, projector_dims=(512, 512, 512))
    model.compile(optimizer=keras_barlow.LARS(0.2))
    views = keras_barlow.AugmentationConfig.preset("digits", image_size=32)
    model.fit(keras_barlow.pretraining_dataset("digits", batch_size=128, augment=views))
    features = model.predict(images)  # the encoder's pooled features
    ```
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
        matmul_on_1x1_maps=True,
        fused_batchnorm="auto",
        pointwise_matmul="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.layers.Layer):
            raise ValueError(f"encoder must be a Keras model or layer, got {type(encoder).__name__}")
        self.encoder = encoder
        self.projector_dims = check_projector_dims(projector_dims)
        self.lambd = _check_loss_weight(
            "lambd", lambd, allow_zero=True, hint=f"the official value is {losses.DEFAULT_LAMBD}"
        )
        self.scale_loss = _check_loss_weight(
            "scale_loss",
            scale_loss,
            allow_zero=False,
            hint="1.0 by default, 0.024 in the first official release",
        )
        self.pooling = FeaturePooling(pooling, name="pooling")
        self.projector = build_projector(self.projector_dims)
        self.sync_batchnorm = bool(sync_batchnorm)
        self.matmul_on_1x1_maps = bool(matmul_on_1x1_maps)
        if fused_batchnorm not in ("auto", True, False):
            raise ValueError(f'fused_batchnorm must be "auto", True or False, got {fused_batchnorm!r}')
        self.fused_batchnorm = fused_batchnorm
        if pointwise_matmul not in ("auto", True, False):
            raise ValueError(f'pointwise_matmul must be "auto", True or False, got {pointwise_matmul!r}')
        self.pointwise_matmul = pointwise_matmul
        if image_shape is not None and len(tuple(image_shape)) != 3:
            raise ValueError(
                f"image_shape must be (height, width, channels), got {tuple(image_shape)}; "
                "e.g. (32, 32, 3) for RGB images"
            )
        self.image_shape = tuple(image_shape) if image_shape is not None else self._encoder_image_shape()
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.on_diag_tracker = keras.metrics.Mean(name="on_diag")
        self.off_diag_tracker = keras.metrics.Mean(name="off_diag")
        self.embedding_std_tracker = keras.metrics.Mean(name="embedding_std")
        self._trainer = select_trainer()
        if self.image_shape is not None:
            # Built now, not lazily inside the (possibly distributed) first step: a batch norm
            # first built inside `strategy.run` makes `fit` fail ("You must feed a value for
            # placeholder tensor ...").
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
        _check_single_output(self.encoder, feature_shape)
        features = self.pooling.compute_output_shape(feature_shape)
        if features[-1] is None:
            raise ValueError(
                f"could not infer the encoder's feature size from its output shape {feature_shape}: "
                "the encoder must output (batch, dim), (batch, tokens, dim) or (batch, height, width, "
                "channels) features with a known last dimension"
            )
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
        if isinstance(images, (tuple, list, dict)):
            raise ValueError(
                f"BarlowTwins maps one batch of images to features, got a {type(images).__name__} of "
                f"{len(images)} inputs: call predict(images) on plain images (e.g. predict(view_a)), "
                "not on (view_a, view_b) pairs"
            )
        with contextlib.ExitStack() as blocks:
            pointwise = _pointwise_matmul_auto if self.pointwise_matmul == "auto" else self.pointwise_matmul
            if self.matmul_on_1x1_maps or pointwise:
                on_1x1_maps = self.matmul_on_1x1_maps
                blocks.enter_context(matmul_convolutions(self.encoder, on_1x1_maps, pointwise=pointwise))
            if self._fuses_batchnorm():
                blocks.enter_context(fused_batch_normalizations(self.encoder))
            return self.pooling(self.encoder(images, training=training))

    def _fuses_batchnorm(self):
        return self.fused_batchnorm in ("auto", True)

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
        return _compat.batch_norm_layers(self)

    def train_step(self, *args):
        # TF calls train_step(data); JAX calls train_step(state, data).
        return self._trainer.train_step(self, *args)

    def test_step(self, *args):
        return self._trainer.test_step(self, *args)

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """`keras.Model.compile` without `loss` or `metrics`: the model computes its own.

        Raises:
            ValueError: when `loss`, `metrics`, `loss_weights` or `weighted_metrics` is given,
                which Keras would otherwise ignore silently.
        """
        given = {"loss": loss, "metrics": metrics}
        given.update({name: kwargs.get(name) for name in ("loss_weights", "weighted_metrics")})
        given = ", ".join(f"{name}={value!r}" for name, value in given.items() if value is not None)
        if given:
            raise ValueError(
                f"BarlowTwins computes its own loss and reports loss, on_diag, off_diag and "
                f"embedding_std; compile() does not take {given}. "
                "Pass only the optimizer (and e.g. steps_per_execution), and set the loss weights "
                "with BarlowTwins(lambd=..., scale_loss=...)."
            )
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        # Keras (3.15) skips this, with a warning, for models that override `compile`; ours
        # takes the same arguments, so loading restores the optimizer as for any model.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if hasattr(self, "optimizer") and self.built:
            self.optimizer.build(self.trainable_variables)

    def make_train_function(self, force=False):
        if self.built and not self.encoder.trainable_weights:
            raise ValueError(
                f"the encoder {self.encoder.name!r} has no trainable weights (encoder.trainable is "
                f"{self.encoder.trainable}), so pretraining would only train the projector, whose "
                "output is discarded: set encoder.trainable = True, or give an encoder with weights"
            )
        self._trainer.prepare_train_function(self)
        return super().make_train_function(force=force)

    def skip_symbolic_build(self):
        # Keras 3 `fit` under MultiWorkerMirroredStrategy (keras-team/keras#20585): the TF
        # trainer skips the symbolic build there (the model is built in its constructor).
        return self._trainer.skip_symbolic_build(self)

    def fit(self, x=None, y=None, batch_size=None, *args, callbacks=None, **kwargs):
        """`keras.Model.fit`, plus a guard that stops at the first non-finite loss.

        The guard runs before every other callback, so a checkpoint callback never writes
        the weights of a diverged step; the error names the step. Arrays of views whose last
        batch would hold one image are refused before training (see `check_last_batch`).
        """
        # `fit(view_a, view_b)` is accepted: Keras passes `(x, y)` on as the pair of views.
        views = x if y is None else (x, y)
        check_last_batch(views, batch_size, validation_split=kwargs.get("validation_split") or 0.0)
        callbacks = [NonFiniteLossGuard(), *(callbacks or [])]
        with self._keep_variables_on_failure(build_optimizer=True), self._trainer.explain_step_errors():
            return super().fit(x, y, batch_size, *args, callbacks=callbacks, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, *args, **kwargs):
        check_last_batch(x if y is None else (x, y), batch_size)
        with self._keep_variables_on_failure(), self._trainer.explain_step_errors():
            return super().evaluate(x, y, batch_size, *args, **kwargs)

    def predict(self, *args, **kwargs):
        with self._keep_variables_on_failure():
            return super().predict(*args, **kwargs)

    def _keep_variables_on_failure(self, build_optimizer=False):
        # JAX: a failing first step (e.g. bad input) must not leave the variables empty.
        return self._trainer.keep_variables_on_failure(self, build_optimizer=build_optimizer)

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
                "matmul_on_1x1_maps": self.matmul_on_1x1_maps,
                "fused_batchnorm": self.fused_batchnorm,
                "pointwise_matmul": self.pointwise_matmul,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"), custom_objects=custom_objects)
        return cls(encoder=encoder, **config)


def _pointwise_matmul_auto(layer):
    # `pointwise_matmul="auto"`: measured faster only for bfloat16 on TensorFlow's CPU kernels.
    return layer.compute_dtype == "bfloat16" and _tensorflow_without_gpu()


@functools.cache
def _tensorflow_without_gpu():
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.config.list_physical_devices("GPU")


def _check_loss_weight(name, value, *, allow_zero, hint):
    # A negative λ maximises the off-diagonal correlation and NaN/inf surface only at step 1,
    # as a non-finite loss that reads like a learning-rate problem: refuse them here.
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    valid = is_number and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not valid:
        valid_range = "a finite number ≥ 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"BarlowTwins {name} must be {valid_range}, got {value!r}; {hint}")
    return float(value)


def _check_single_output(encoder, output_shape):
    # A dict or list of outputs would fail deep in pooling ("KeyError: 0", "int() ... 'tuple'").
    if isinstance(output_shape, dict):
        pick, structure = (
            f"encoder.output[{next(iter(output_shape))!r}]",
            f"a dict with keys {sorted(output_shape)}",
        )
    elif isinstance(output_shape, (list, tuple)) and any(isinstance(s, (list, tuple)) for s in output_shape):
        pick, structure = "encoder.outputs[-1]", f"a list of {len(output_shape)} outputs"
    else:
        return
    raise ValueError(
        f"the encoder {encoder.name!r} returns {structure}; BarlowTwins needs an encoder that returns one "
        f"tensor (the representation). Pick one output, e.g. keras.Model(encoder.inputs, {pick})"
    )
