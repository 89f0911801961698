"""The backbone that detection and segmentation heads see: `TransferBackbone`.

`transfer_backbone` puts a pretrained encoder (an export directory, a `BarlowTwins` model
or an encoder) behind a `TransferBackbone`, which

- applies the normalisation the encoder was pretrained with (read from the export's
  `model_card.json`, so images go in as plain pixels and no mean/std can silently differ
  from pretraining);
- exposes the feature pyramid `P2`–`P5` both ways: KerasHub's `pyramid_outputs` and
  KerasCV's `pyramid_level_inputs`. Levels deeper than the encoder's last one (a
  CIFAR-stem ResNet stops at `P3`) are max-pooled from it, parameter-free, so every head
  finds the levels it expects at their true strides.
"""

import os

import keras
import keras_hub
import numpy as np

from keras_barlow import _compat
from keras_barlow.backbones.normalization import check_mean_std, check_unit_scale_statistics
from keras_barlow.layers.projector import unsynchronized_batchnorm
from keras_barlow.models.view_pairs import encoder_of

PYRAMID_LEVELS = ("P2", "P3", "P4", "P5")
PYRAMID_STRIDE = 32  # of P5, the deepest level every head uses


def _nearest_valid_sizes(size):
    below = size // PYRAMID_STRIDE * PYRAMID_STRIDE
    return " or ".join(str(s) for s in (below, below + PYRAMID_STRIDE) if s > 0)


def check_task_image_shape(image_shape):
    """Refuses image sizes the detection and segmentation heads cannot take.

    Their deepest level `P5` is 32× smaller than the image and the heads add or concatenate
    levels upsampled 2× from it, so a height or width that is not a multiple of 32 builds
    but fails at `predict` ("Dimensions must be equal", a `Concatenate` mismatch).

    Args:
        image_shape: `(height, width, channels)`; `None` sizes are checked when called.

    Returns:
        `image_shape` as a tuple.

    Example:
    ```python
    check_task_image_shape((100, 128, 3))  # ValueError: height 100 is not a multiple of 32; ... 96 or 128
    ```
    """
    try:
        shape = tuple(image_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3:
        raise ValueError(f"image_shape must be (height, width, 3), got {image_shape!r}")
    for name, size in zip(("height", "width"), shape[:2]):
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"image_shape {name} must be a positive integer or None, got {size!r}")
        if size % PYRAMID_STRIDE:
            raise ValueError(
                f"image_shape {shape}: {name} {size} is not a multiple of 32, which the detection and "
                "segmentation heads need (their deepest level is 32× smaller); resize or pad to "
                f"{_nearest_valid_sizes(int(size))}"
            )
    return shape


@keras.saving.register_keras_serializable(package="keras_barlow")
class ImageSizeCheck(keras.layers.Layer):
    """Passes images through; refuses, when called, sizes the detection/segmentation heads cannot take.

    With `image_shape=(None, None, 3)` a task model builds for any size, and a size that is
    not a multiple of 32 would fail deep inside the heads ("Dimensions must be equal");
    this layer raises `check_task_image_shape`'s error instead, at the first call.

    Args:
        **kwargs: `keras.layers.Layer` arguments.
    """

    def call(self, images):
        check_task_image_shape(tuple(images.shape[1:]))
        return images

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="keras_barlow")
class TransferBackbone(keras_hub.models.FeaturePyramidBackbone):
    """An encoder behind its pretraining normalisation, with the pyramid `P2`–`P5`.

    Input: images `(batch, height, width, 3)`, RGB, pixel values in
    `[0, max_pixel_value]`. They are normalised as in pretraining,
    `(x / max_pixel_value - mean) / std`, then run through the encoder. Output: the dict
    of feature maps `{"P2": ..., "P5": ...}` (`P`n is 2^n times smaller than the image).
    `pyramid_outputs` (KerasHub) holds these tensors and `pyramid_level_inputs` (KerasCV)
    their layer names; levels the encoder lacks beyond its
    deepest are 2×2 max-pools of the previous level.

    The encoder's weights are shared, not copied: training the backbone trains the encoder
    (`transfer_backbone` copies them only when a fixed-size encoder must be rebuilt for
    another input size).

    Args:
        encoder: a Keras backbone with `pyramid_outputs` (e.g. `keras_barlow.resnet(...)`).
        mean, std: per-channel normalisation of pretraining, for RGB in `[0, 1]`.
        max_pixel_value: the value of a white pixel in the images you feed (255 for
            uint8-style pixels, 1.0 for `[0, 1]` floats).
        image_shape: input shape; `None` sizes accept any size (multiples of 32 for
            the detection and segmentation heads).
        size_multiple: `32` to refuse, at build time and at the first call, image sizes
            that are not multiples of 32 (what the detection and segmentation heads need);
            `None` to accept any size.
        **kwargs: `keras_hub.models.Backbone` arguments (`name`, `dtype`, `trainable`).

    Example:

    ```python
    encoder = keras_barlow.resnet(18, (None, None, 3))
    backbone = TransferBackbone(encoder, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    sorted(backbone.pyramid_outputs)  # ['P2', 'P3', 'P4', 'P5']
    ```
    """

    def __init__(
        self,
        encoder,
        mean,
        std,
        max_pixel_value=255.0,
        image_shape=(None, None, 3),
        size_multiple=None,
        dtype=None,
        **kwargs,
    ):
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        mean, std = check_mean_std(mean, std)
        max_pixel_value = float(max_pixel_value)
        if not max_pixel_value > 0:
            raise ValueError(f"max_pixel_value must be positive (255 or 1.0), got {max_pixel_value}")
        image_shape = tuple(image_shape)
        if len(image_shape) != 3 or image_shape[-1] != 3:
            raise ValueError(f"image_shape must be (height, width, 3), got {image_shape}")
        if size_multiple not in (None, PYRAMID_STRIDE):
            raise ValueError(f"size_multiple must be None or {PYRAMID_STRIDE}, got {size_multiple!r}")
        if size_multiple:
            check_task_image_shape(image_shape)
        encoder = _encoder_for_shape(encoder, image_shape)
        levels = _pyramid_of(encoder)

        inputs = keras.layers.Input(image_shape, name="images")
        x = ImageSizeCheck(name="image_size_check")(inputs) if size_multiple else inputs
        x = keras.layers.Rescaling(
            scale=[1.0 / (max_pixel_value * s) for s in std],
            offset=[-m / s for m, s in zip(mean, std)],
            name="pretraining_normalization",
        )(x)
        features = keras.Model(encoder.inputs, levels, name="encoder_pyramid")(x)
        pyramid = {}
        for level in PYRAMID_LEVELS:
            n = int(level[1:])
            if level in features:
                tensor = features[level]
            else:
                # Deeper than the encoder goes: a parameter-free 2x downsampling, so the
                # level keeps its stride 2^n (anchors and upsampling rely on it).
                tensor = keras.layers.MaxPooling2D(2, padding="same", name=f"{level}_pool")(
                    pyramid[f"P{n - 1}"]
                )
            pyramid[level] = keras.layers.Identity(name=level)(tensor)
        super().__init__(inputs=inputs, outputs=dict(pyramid), dtype=dtype, **kwargs)

        self.encoder = encoder
        self.mean = mean
        self.std = std
        self.max_pixel_value = max_pixel_value
        self.image_shape = image_shape
        self.size_multiple = size_multiple
        self.pyramid_outputs = pyramid

    @property
    def pyramid_level_inputs(self):
        """KerasCV's view of the pyramid: `{"P2": "P2", ..., "P5": "P5"}` (layer names)."""
        return _compat.pyramid_level_names(self)

    def get_config(self):
        config = super().get_config()
        with unsynchronized_batchnorm(_compat.batch_norm_layers(self.encoder)):
            encoder_config = keras.saving.serialize_keras_object(self.encoder)
        config.update(
            {
                "encoder": encoder_config,
                "mean": list(self.mean),
                "std": list(self.std),
                "max_pixel_value": self.max_pixel_value,
                "image_shape": list(self.image_shape),
                "size_multiple": self.size_multiple,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.get(config["dtype"])
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)


def _pyramid_of(encoder):
    levels = dict(getattr(encoder, "pyramid_outputs", None) or {})
    if not levels:
        raise ValueError(
            f"the encoder {encoder.name!r} ({type(encoder).__name__}) has no `pyramid_outputs`: "
            "detection and "
            "segmentation heads need a feature pyramid. Pretrain a pyramid backbone such as "
            "keras_barlow.resnet(18, ...), or any keras_hub FeaturePyramidBackbone."
        )
    levels = {k: v for k, v in levels.items() if int(k[1:]) <= 5}
    missing = [level for level in ("P2",) if level not in levels]
    if missing:
        raise ValueError(
            f"the encoder's pyramid has levels {sorted(levels)}, but the heads need {missing} (stride 4) and "
            "deeper; its first stage downsamples too much for detection/segmentation heads"
        )
    return levels


def _encoder_for_shape(encoder, image_shape):
    """The encoder itself if it accepts `image_shape`, else a copy built for it (same weights).

    An encoder built for one size (e.g. an export's pretraining size) is rebuilt from its
    config at `image_shape`, `None` sizes included, so a task accepts any image size.
    """
    if not isinstance(encoder, keras.Model) or not encoder.inputs:
        raise ValueError(
            "encoder must be a functional Keras backbone (e.g. keras_barlow.resnet(...)), "
            f"got {type(encoder).__name__}"
        )
    declared = tuple(encoder.inputs[0].shape[1:])
    if all(d is None or d == w for d, w in zip(declared, image_shape)):
        return encoder
    config = encoder.get_config()
    if "image_shape" not in config:
        raise ValueError(
            f"the encoder takes images of shape {declared} and cannot be rebuilt for {image_shape}; "
            "build it with image_shape=(None, None, 3)"
        )
    with unsynchronized_batchnorm(_compat.batch_norm_layers(encoder)):
        config = encoder.get_config()
    config["image_shape"] = list(image_shape)
    rebuilt = type(encoder).from_config(config)
    rebuilt.set_weights(encoder.get_weights())
    rebuilt.trainable = encoder.trainable
    return rebuilt


# ---------------------------------------------------------------------------------------
# Encoder + preprocessing from an export or an object


def resolve_encoder(encoder, preprocessing=None):
    """`(encoder, {"mean": ..., "std": ...})` from an export directory or an encoder.

    The preprocessing is the one the encoder records (`export.pretraining_preprocessing`:
    an exported encoder keeps it in its config, so `keras.models.load_model(".../encoder.keras")`
    is enough). An explicit `preprocessing` must agree with it; for an encoder that records
    none it is required.

    Args:
        encoder: an export directory (`export_encoder`'s output), a `keras_barlow.BarlowTwins`
            model, or an encoder.
        preprocessing: `None`, a dict with `mean` and `std`, an
            `keras_barlow.augment.AugmentationConfig`, or a preset name (`"imagenet"`,
            `"cifar"`, `"digits"`).

    Returns:
        `(encoder, {"mean": (r, g, b), "std": (r, g, b)})`.
    """
    from keras_barlow import export

    if isinstance(encoder, (str, os.PathLike)):
        encoder = export.load_encoder(encoder)
    else:
        encoder = encoder_of(encoder)
    recorded = export.pretraining_preprocessing(encoder)
    recorded_stats = None if recorded is None else (tuple(recorded["mean"]), tuple(recorded["std"]))
    given = _mean_std(preprocessing)
    if given is None and recorded_stats is None:
        raise ValueError(
            "no preprocessing is known for this encoder: pass the normalisation it was pretrained with, e.g. "
            "preprocessing='imagenet' (keras_barlow's presets all normalise with ImageNet mean/std) or "
            "preprocessing={'mean': (...), 'std': (...)}, or load it with "
            "keras.models.load_model('<export>/encoder.keras') or keras_barlow.load_encoder(directory), "
            "which record it"
        )
    if (
        given is not None
        and recorded_stats is not None
        and not np.allclose(given[0] + given[1], recorded_stats[0] + recorded_stats[1])
    ):
        raise ValueError(
            f"preprocessing {dict(mean=given[0], std=given[1])} differs from the normalisation the encoder "
            f"was pretrained with, {dict(mean=recorded_stats[0], std=recorded_stats[1])} (recorded in its "
            "config by export_encoder). Leave preprocessing=None to use the recorded one."
        )
    mean, std = given or recorded_stats
    return encoder, {"mean": mean, "std": std}


def _mean_std(spec):
    if spec is None:
        return None
    if isinstance(spec, str) or hasattr(spec, "view_a"):
        from keras_barlow import augment

        config = augment.as_config(spec)
        return tuple(config.mean), tuple(config.std)
    if isinstance(spec, dict):
        if "mean" not in spec or "std" not in spec:
            raise ValueError(f"preprocessing needs 'mean' and 'std', got keys {sorted(spec)}")
        return check_unit_scale_statistics(spec["mean"], spec["std"])
    raise ValueError(
        "preprocessing must be None, a preset name, an AugmentationConfig or a dict with mean/std, "
        f"got {type(spec).__name__}"
    )


def transfer_backbone(
    encoder,
    *,
    preprocessing=None,
    freeze_encoder=False,
    max_pixel_value=255.0,
    image_shape=(None, None, 3),
    size_multiple=None,
):
    """A `TransferBackbone` for an export directory or encoder (see `resolve_encoder`).

    Args:
        encoder: export directory, `BarlowTwins` model or encoder.
        preprocessing: see `resolve_encoder`.
        freeze_encoder: keep the pretrained weights fixed (batch norms then run in
            inference mode); the heads still train.
        max_pixel_value: value of a white pixel in your images (255 or 1.0).
        image_shape: input shape of the detector/segmenter.
        size_multiple: see `TransferBackbone`.

    Returns:
        A `TransferBackbone`.
    """
    encoder, spec = resolve_encoder(encoder, preprocessing)
    _pyramid_of(encoder)  # a clear error for encoders without a pyramid, before any rebuild
    encoder = _encoder_for_shape(encoder, tuple(image_shape))
    if freeze_encoder:
        encoder.trainable = False
    return TransferBackbone(
        encoder,
        mean=spec["mean"],
        std=spec["std"],
        max_pixel_value=max_pixel_value,
        image_shape=image_shape,
        size_multiple=size_multiple,
    )
