"""The model card (`model_card.json`) of an export: what was trained, how, and its files.

`build_card(...)` turns an encoder, its pretraining settings and the caller's metadata into
the card; `metadata_from_card(card)` turns a card back into the metadata that reproduces it
(for re-exporting an encoder without retraining):

```python
card = keras_barlow.read_model_card("savedmodels/digits")
keras_barlow.export_encoder(keras_barlow.load_encoder("savedmodels/digits"), "savedmodels/digits",
                            metadata=metadata_from_card(card))
```
"""

import datetime
import importlib.metadata
import json
import math
import platform
import warnings

import keras
import numpy as np

from keras_barlow.backbones.normalization import IMAGENET_MEAN as DEFAULT_MEAN
from keras_barlow.backbones.normalization import IMAGENET_STD as DEFAULT_STD

CARD_FORMAT_VERSION = 1
__all__ = [
    "CARD_FORMAT_VERSION",
    "DEFAULT_MEAN",
    "DEFAULT_STD",
    "build_card",
    "encoder_and_settings",
    "export_image_shape",
    "metadata_from_card",
    "preprocessing_from_metadata",
]


def encoder_and_settings(model_or_encoder):
    """`(encoder, pretraining settings)` from a `BarlowTwins` model or an encoder.

    Args:
        model_or_encoder: a `keras_barlow.BarlowTwins` (compiled or not) or a functional
            Keras encoder.

    Returns:
        The encoder and a dict of the model's settings (empty for a bare encoder; without
        `steps`/`optimizer` for a model that was never compiled or trained).
    """
    from keras_barlow.models.barlow_twins import BarlowTwins

    if isinstance(model_or_encoder, BarlowTwins):
        model = model_or_encoder
        settings = {
            "method": "Barlow Twins",
            "projector_dims": list(model.projector_dims),
            "lambd": model.lambd,
            "scale_loss": model.scale_loss,
            "pooling": model.pooling.mode,
            "image_shape": list(model.image_shape) if model.image_shape is not None else None,
        }
        # An uncompiled model has no `optimizer` attribute at all: nothing to record.
        optimizer = getattr(model, "optimizer", None)
        steps = int(keras.ops.convert_to_numpy(optimizer.iterations)) if optimizer is not None else 0
        if steps:
            settings["steps"] = steps
            settings["optimizer"] = type(optimizer).__name__
            last_epoch_loss = float(keras.ops.convert_to_numpy(model.loss_tracker.result()))
            if (
                math.isfinite(last_epoch_loss)
                and float(keras.ops.convert_to_numpy(model.loss_tracker.count)) > 0
            ):
                settings["last_epoch_loss"] = last_epoch_loss
        return model.encoder, settings
    if not isinstance(model_or_encoder, keras.Model) or not getattr(model_or_encoder, "inputs", None):
        raise ValueError(
            "export_encoder needs a keras_barlow.BarlowTwins model or a functional Keras encoder (e.g. "
            f"keras_barlow.resnet(...)), got {type(model_or_encoder).__name__}"
        )
    return model_or_encoder, {}


def export_image_shape(encoder, pretraining, image_size):
    """The `(height, width, 3)` the export serves: given, declared by the encoder, or the model's."""
    declared = tuple(encoder.inputs[0].shape[1:])
    if image_size is not None:
        size = (
            (int(image_size), int(image_size))
            if np.ndim(image_size) == 0
            else tuple(int(s) for s in image_size)
        )
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"metadata['image_size'] must be an int or (height, width), got {image_size!r}")
        shape = (*size, declared[-1])
    elif all(d is not None for d in declared):
        shape = declared
    elif pretraining.get("image_shape") and all(d is not None for d in pretraining["image_shape"]):
        shape = tuple(pretraining["image_shape"])
    else:
        raise ValueError(
            f"the encoder accepts images of any size {declared}: say which size it was pretrained at with "
            "metadata={'image_size': 32} (the SavedModel's signature and the model card use it)"
        )
    if any(d is not None and s != d for s, d in zip(shape, declared)):
        raise ValueError(f"image_size {shape[:2]} does not fit the encoder's input shape {declared}")
    if shape[-1] != 3:
        raise ValueError(f"exported encoders take RGB images (3 channels), this one takes {shape[-1]}")
    return tuple(int(s) for s in shape)


def preprocessing_from_metadata(metadata):
    """`{"mean", "std", "source"}` from metadata's `augmentation` or `preprocessing` (popped).

    Without either, warns and returns the ImageNet mean/std of every augmentation preset.
    """
    augmentation = metadata.pop("augmentation", None)
    preprocessing = metadata.pop("preprocessing", None)
    if augmentation is not None and preprocessing is not None:
        raise ValueError(
            "give metadata 'augmentation' or 'preprocessing', not both (the first implies the second)"
        )
    if augmentation is not None:
        from keras_barlow import augment

        if isinstance(augmentation, dict):  # a saved `AugmentationConfig.get_config()`
            config = augment.AugmentationConfig.from_config(augmentation)
        else:
            config = augment.as_config(augmentation)
        metadata["augmentation_config"] = config.get_config()
        return {"mean": list(config.mean), "std": list(config.std), "source": "augmentation config"}
    if preprocessing is None:
        warnings.warn(
            "export_encoder: no 'augmentation' or 'preprocessing' in metadata; recording the ImageNet "
            "mean/std that every keras_barlow augmentation preset uses. Pass "
            "metadata={'augmentation': config} to be exact.",
            stacklevel=3,
        )
        return {"mean": list(DEFAULT_MEAN), "std": list(DEFAULT_STD), "source": "default (ImageNet mean/std)"}
    if not isinstance(preprocessing, dict) or "mean" not in preprocessing or "std" not in preprocessing:
        raise ValueError(
            f"metadata['preprocessing'] must be a dict with 'mean' and 'std', got {preprocessing!r}"
        )
    mean = [float(v) for v in preprocessing["mean"]]
    std = [float(v) for v in preprocessing["std"]]
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"preprocessing needs 3 means and 3 positive stds (RGB), got mean={mean}, std={std}")
    return {"mean": mean, "std": std, "source": str(preprocessing.get("source", "given"))}


def metadata_from_card(card):
    """The `export_encoder` metadata that reproduces `card` (for a re-export, no retraining).

    Everything measured or recorded (training, evaluation, pretraining settings,
    augmentation, name, recipe, extra keys) is carried over unchanged; `created`,
    `versions` and `files` describe the new files and are written afresh.

    Args:
        card: a model card dict (`read_model_card(directory)`).

    Returns:
        A metadata dict for `export_encoder`.
    """
    training = dict(card.get("training") or {})
    metadata = {
        **(card.get("extra") or {}),
        "image_size": list(card["input"]["image_shape"][:2]),
        "preprocessing": {
            k: card["preprocessing"][k] for k in ("mean", "std", "source") if k in card["preprocessing"]
        },
        "pretraining": dict(card.get("pretraining") or {}),
        "augmentation_config": card.get("augmentation"),
    }
    for key in ("name", "description", "evaluation", "recipe"):
        metadata[key] = card.get(key)
    for key in ("backend", "training_data", "epochs", "batch_size", "final_loss"):
        if key in training:
            metadata[key] = training[key]
    return metadata


def build_card(encoder, pretraining, metadata, image_shape, preprocessing):
    """The model card dict (JSON-ready) for an export; pops what it uses from `metadata`.

    Args:
        encoder: the encoder as trained (its class is the card's architecture).
        pretraining: settings from `encoder_and_settings`, merged over metadata's
            `pretraining` (a re-export's recorded settings).
        metadata: `export_encoder`'s metadata after `preprocessing_from_metadata`.
        image_shape: from `export_image_shape`.
        preprocessing: from `preprocessing_from_metadata`.

    Returns:
        The card, without its `files` entry (the writer adds it).
    """
    pretraining = {**(metadata.pop("pretraining", None) or {}), **pretraining}
    training = {"backend": metadata.pop("backend", keras.backend.backend())}
    history = metadata.pop("history", None)
    if history is not None:
        history = getattr(history, "history", history)
        losses = list(history.get("loss", []))
        training["epochs"] = len(losses)
        if losses:
            training["final_loss"] = float(losses[-1])
    for key in ("training_data", "epochs", "batch_size", "final_loss"):
        if key in metadata:
            training[key] = metadata.pop(key)
    if "final_loss" not in training and "last_epoch_loss" in pretraining:
        training["final_loss"] = pretraining["last_epoch_loss"]
    augmentation = metadata.pop("augmentation_config", None)
    card = {
        "format_version": CARD_FORMAT_VERSION,
        "name": metadata.pop("name", None),
        "description": metadata.pop("description", None),
        "created": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "architecture": _architecture(encoder),
        "input": {"image_shape": list(image_shape), "dtype": "float32", "channels": "RGB"},
        "preprocessing": {
            **preprocessing,
            "formula": "x = (rgb - mean) / std, rgb in [0, 1], at input size image_shape",
            "in_encoder_config": "keras_barlow.export.pretraining_preprocessing("
            "keras.models.load_model(encoder.keras))",
        },
        "pretraining": pretraining,
        "training": training,
        "augmentation": augmentation,
        "evaluation": metadata.pop("evaluation", None),
        "recipe": metadata.pop("recipe", None),
        "versions": _versions(),
    }
    if metadata:
        card["extra"] = metadata
    try:
        return json.loads(json.dumps(_jsonable(card)))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"metadata must be JSON-serialisable (numbers, strings, lists, dicts): {err}"
        ) from None


def _architecture(encoder):
    config = encoder.get_config() if hasattr(encoder, "get_config") else {}
    summary = {
        k: config[k]
        for k in (
            "depth",
            "width",
            "small_images",
            "zero_init_residual",
            "grayscale",
            "block_type",
            "stackwise_num_filters",
        )
        if k in config
    }
    from keras_barlow.export.pretrained import trained_class_name

    registered = trained_class_name(encoder)
    feature_shape = encoder.compute_output_shape((None, *encoder.inputs[0].shape[1:]))
    pyramid = getattr(encoder, "pyramid_outputs", None) or {}
    return {
        "class": registered,
        "config": _jsonable(summary),
        "feature_dim": int(feature_shape[-1]),
        "feature_map_shape": [None if d is None else int(d) for d in feature_shape[1:]],
        "parameters": int(encoder.count_params()),
        "pyramid_levels": sorted(pyramid),
    }


def _versions():
    from keras_barlow import __version__

    versions = {"python": platform.python_version(), "keras_barlow": __version__}
    for package in ("keras", "keras-hub", "keras-cv", "tensorflow", "jax", "numpy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed (e.g. jax on a TF-only machine): nothing to record
    return versions


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "numpy") or type(value).__module__.startswith(("jax", "jaxlib")):
        return _jsonable(np.asarray(value))
    return value
