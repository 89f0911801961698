"""Encoders that carry their pretraining normalisation and image size in their config.

An exported encoder takes *normalised* images, `(rgb / max_pixel_value - mean) / std`,
exactly as during pretraining. Which `mean`, `std`, pixel scale and image size that was
is part of the encoder's config, so `keras.models.load_model("encoder.keras")` alone is
enough to feed it raw pixels (`keras_barlow.detector`, `segmenter`, evaluation helpers,
your own code):

```python
encoder = keras.models.load_model("savedmodels/digits/encoder.keras")
spec = keras_barlow.export.pretraining_preprocessing(encoder)
normalised = (images_0_255 / 255.0 * spec["max_pixel_value"] - spec["mean"]) / spec["std"]
features = encoder(normalised)
```

Two registered classes hold it, and they change nothing else: the graph, layer names and
weights are those of the encoder they were made from, so outputs on normalised inputs are
identical.

- `PretrainedResNetBackbone`: a `keras_barlow.backbones.BarlowResNetBackbone` (same class
  hierarchy, same config plus `pretraining_preprocessing`), so everything that accepts a
  `BarlowResNetBackbone` accepts it.
- `PretrainedEncoder`: any other functional encoder, as a KerasHub `FeaturePyramidBackbone`
  over the *same* layers (not nested), keeping `pyramid_outputs` if the encoder has them.
"""

import keras
import keras_hub
import numpy as np

from keras_barlow import _compat
from keras_barlow.backbones import BarlowResNetBackbone
from keras_barlow.export.loading import model_card
from keras_barlow.layers.projector import unsynchronized_batchnorm

CONFIG_KEY = "pretraining_preprocessing"
PIXEL_SCALE = 1.0  # the value of a white pixel that `mean` and `std` refer to


def check_pretraining_preprocessing(spec):
    """Validates a normalisation record and returns it in canonical form.

    Args:
        spec: dict with `mean` and `std` (3 numbers each, for RGB scaled so that white is
            `max_pixel_value`), optional `max_pixel_value` (default 1.0) and `image_size`
            (`(height, width)` or `None`).

    Returns:
        `{"mean": [r, g, b], "std": [r, g, b], "max_pixel_value": float,
        "image_size": [h, w] | None}` (plain Python numbers, JSON-ready).

    Example:
    ```python
    check_pretraining_preprocessing({"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)})
    # {'mean': [0.5, 0.5, 0.5], 'std': [0.25, 0.25, 0.25], 'max_pixel_value': 1.0, 'image_size': None}
    ```
    """
    if not isinstance(spec, dict) or "mean" not in spec or "std" not in spec:
        raise ValueError(f"pretraining_preprocessing must be a dict with 'mean' and 'std', got {spec!r}")
    try:
        mean = [float(v) for v in spec["mean"]]
        std = [float(v) for v in spec["std"]]
        max_pixel_value = float(spec.get("max_pixel_value", PIXEL_SCALE))
    except (TypeError, ValueError):
        raise ValueError(f"mean, std and max_pixel_value must be numbers, got {spec!r}") from None
    if len(mean) != 3 or len(std) != 3 or not min(std) > 0 or not np.all(np.isfinite(mean + std)):
        raise ValueError(
            f"the normalisation needs 3 finite means and 3 positive stds (RGB), got mean={mean}, std={std}"
        )
    if not (max_pixel_value > 0 and np.isfinite(max_pixel_value)):
        raise ValueError(f"max_pixel_value must be positive (1.0 for [0, 1] pixels), got {max_pixel_value}")
    image_size = spec.get("image_size")
    if image_size is not None:
        image_size = [int(s) for s in image_size]
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"image_size must be (height, width), got {spec['image_size']!r}")
    return {"mean": mean, "std": std, "max_pixel_value": max_pixel_value, "image_size": image_size}


def pretraining_preprocessing(encoder):
    """The normalisation and image size `encoder` was pretrained with, or `None`.

    Reads the encoder's config (`PretrainedResNetBackbone`, `PretrainedEncoder`: what
    `export_encoder` writes and `keras.models.load_model` returns), or, for an encoder
    that `keras_barlow.load_encoder` read from an older export, its model card.

    Args:
        encoder: a Keras model.

    Returns:
        A dict as returned by `check_pretraining_preprocessing`, or `None` when the encoder
        does not say (e.g. a freshly built `keras_barlow.resnet(...)`).
    """
    spec = getattr(encoder, CONFIG_KEY, None)
    if spec is not None:
        return check_pretraining_preprocessing(spec)
    card = model_card(encoder)
    if not card or "preprocessing" not in card:
        return None
    image_shape = (card.get("input") or {}).get("image_shape")
    return check_pretraining_preprocessing(
        {**card["preprocessing"], "image_size": image_shape[:2] if image_shape else None}
    )


def trained_class_name(encoder):
    """The registered name of the class the encoder was trained as (before any record was added)."""
    if isinstance(encoder, PretrainedResNetBackbone):
        return keras.saving.get_registered_name(BarlowResNetBackbone)
    if isinstance(encoder, PretrainedEncoder):
        return encoder.encoder_config.get("registered_name") or encoder.encoder_config.get("class_name")
    return keras.saving.get_registered_name(type(encoder))


def with_pretraining_preprocessing(encoder, spec, dtype_policy=None):
    """A copy of `encoder` (same graph, layer names and weights) whose config holds `spec`.

    Args:
        encoder: a `BarlowResNetBackbone`, a `PretrainedResNetBackbone`/`PretrainedEncoder`
            (its record is replaced) or any functional Keras encoder.
        spec: the normalisation record (see `check_pretraining_preprocessing`).
        dtype_policy: the copy's dtype policy for every layer (e.g. `"float32"` for an
            encoder trained under `mixed_bfloat16`); None keeps each layer's own.

    Returns:
        A `PretrainedResNetBackbone` for ResNet backbones, else a `PretrainedEncoder`.
    """
    spec = check_pretraining_preprocessing(spec)
    if isinstance(encoder, BarlowResNetBackbone):
        config = encoder.get_config()
        config[CONFIG_KEY] = spec
        if dtype_policy is not None:
            config = with_dtype_policy(config, dtype_policy)
            config["dtype"] = dtype_policy
        cls = type(encoder) if isinstance(encoder, PretrainedResNetBackbone) else PretrainedResNetBackbone
        copy = cls.from_config(config)
        copy.set_weights(encoder.get_weights())
        return copy
    config = encoder.encoder_config if isinstance(encoder, PretrainedEncoder) else serialize_encoder(encoder)
    if dtype_policy is not None:
        config = with_dtype_policy(config, dtype_policy)
    copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(encoder.get_weights())
    return PretrainedEncoder(copy, spec, dtype=dtype_policy)


def with_dtype_policy(config, dtype_policy):
    """A copy of a serialised Keras config with every layer's dtype policy set to `dtype_policy`.

    Args:
        config: a config dict (nested layer configs included).
        dtype_policy: a policy name, e.g. `"float32"`.

    Returns:
        The new config (the input is not modified).

    Example:
    >>> layer = keras.layers.Dense(2, dtype="mixed_bfloat16")
    >>> config = with_dtype_policy(keras.saving.serialize_keras_object(layer), "float32")
    >>> keras.saving.deserialize_keras_object(config).dtype_policy.name
    'float32'
    """
    if isinstance(config, list):
        return [with_dtype_policy(item, dtype_policy) for item in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
        return {**config, "config": {**config["config"], "name": dtype_policy}}
    return {key: with_dtype_policy(value, dtype_policy) for key, value in config.items()}


def serialize_encoder(encoder):
    """`keras.saving.serialize_keras_object(encoder)` with batch norms written unsynchronised.

    Training on several TF replicas sets `synchronized=True` on batch norms; saved configs
    must not carry it, or the JAX backend could not load them.
    """
    with unsynchronized_batchnorm(_compat.batch_norm_layers(encoder)):
        return keras.saving.serialize_keras_object(encoder)


@keras.saving.register_keras_serializable(package="keras_barlow")
class PretrainedResNetBackbone(BarlowResNetBackbone):
    """A `BarlowResNetBackbone` that records its pretraining normalisation in its config.

    Args:
        pretraining_preprocessing: the record (see `check_pretraining_preprocessing`).
        **kwargs: `BarlowResNetBackbone` arguments.
    """

    def __init__(self, pretraining_preprocessing=None, **kwargs):
        super().__init__(**kwargs)
        self.pretraining_preprocessing = (
            None
            if pretraining_preprocessing is None
            else check_pretraining_preprocessing(pretraining_preprocessing)
        )

    def get_config(self):
        return {**super().get_config(), CONFIG_KEY: self.pretraining_preprocessing}


@keras.saving.register_keras_serializable(package="keras_barlow")
class PretrainedEncoder(keras_hub.models.FeaturePyramidBackbone):
    """Any functional encoder, with its pretraining normalisation in its config.

    The model is built over the encoder's own layers and tensors (not nested), so its
    layer names, weights, outputs and `pyramid_outputs` are the encoder's.

    Args:
        encoder: a functional Keras model (or its serialized config).
        pretraining_preprocessing: the record (see `check_pretraining_preprocessing`).
        **kwargs: `keras_hub.models.Backbone` arguments (`name`, `dtype`, `trainable`).
    """

    def __init__(self, encoder, pretraining_preprocessing=None, dtype=None, **kwargs):
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if not isinstance(encoder, keras.Model) or not getattr(encoder, "inputs", None):
            raise ValueError(
                "PretrainedEncoder needs a functional Keras model (built from keras.Input), "
                f"got {type(encoder).__name__}"
            )
        encoder_config = serialize_encoder(encoder)
        pyramid = dict(getattr(encoder, "pyramid_outputs", None) or {})
        super().__init__(inputs=encoder.inputs, outputs=encoder.output, dtype=dtype, **kwargs)
        self.encoder_config = encoder_config
        self.pretraining_preprocessing = (
            None
            if pretraining_preprocessing is None
            else check_pretraining_preprocessing(pretraining_preprocessing)
        )
        self.pyramid_outputs = pyramid

    @property
    def pyramid_level_inputs(self):
        """KerasCV's view of `pyramid_outputs`: `{"P2": layer name, ...}`."""
        return _compat.pyramid_level_names(self)

    def get_config(self):
        return {
            **keras_hub.models.Backbone.get_config(self),
            "encoder": self.encoder_config,
            CONFIG_KEY: self.pretraining_preprocessing,
        }
