"""Export a pretrained encoder: `.keras` + TF SavedModel + model card, atomically.

`export_encoder(model, "savedmodels/digits")` writes a directory

```
digits/
  encoder.keras      the backbone (a KerasHub backbone with KerasCV's pyramid_level_inputs);
                     keras.models.load_model(path) loads it (safe_mode=True) on TensorFlow
                     or JAX once keras_barlow is imported
  saved_model/       TF SavedModel, signature "serving_default":
                       images: float32 (batch, H, W, 3), RGB in [0, 1]
                       -> features: float32 (batch, feature_dim), the pooled representation
                     (the card's normalisation is applied inside; H, W are the card's input size)
  model_card.json    architecture, input size, preprocessing (mean/std), training data,
                     epochs, batch size, backend, final loss, evaluation results, versions,
                     and the checksum of encoder.keras
```

The directory is written under a temporary name next to the target and renamed into place,
so an export that fails or is interrupted never leaves a half-written artefact where a good
one was. `load_encoder(directory)` loads it back with clear errors for missing, truncated
or modified files.

TensorFlow is imported only to write the SavedModel (also when exporting from JAX, through
Keras' `jax2tf` export); loading `encoder.keras` needs no TensorFlow.
"""

import datetime
import importlib.metadata
import json
import math
import os
import platform
import shutil
import tempfile
import uuid
import warnings
import weakref
import zipfile

import keras
import numpy as np

from keras_barlow._io import sha256_file
from keras_barlow.model import FeaturePooling, unsynchronized_batchnorm

ENCODER_FILE = "encoder.keras"
SAVED_MODEL_DIR = "saved_model"
CARD_FILE = "model_card.json"
SERVING_ENDPOINT = "serving_default"
CARD_FORMAT_VERSION = 1
# Until a caller says otherwise: the normalisation of every keras_barlow.augment preset.
DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)

# encoder -> model card, for encoders returned by load_encoder (see model_card()).
_CARDS = weakref.WeakKeyDictionary()


def export_encoder(model_or_encoder, directory, *, metadata=None):
    """Writes `encoder.keras`, `saved_model/` and `model_card.json` to `directory`, atomically.

    Args:
        model_or_encoder: a `keras_barlow.BarlowTwins` model (its `encoder` is exported and
            its settings recorded) or an encoder (a functional Keras model/backbone).
        directory: target directory. An existing export there is replaced only once the new
            one is complete; a directory that is not an export is never overwritten.
        metadata: optional dict recorded in the model card. Recognised keys:
            `augmentation` (an `AugmentationConfig`, preset name or dict: gives the
            preprocessing) or `preprocessing` (`{"mean": ..., "std": ...}`);
            `image_size` (int or `(h, w)`; needed when the encoder accepts any size);
            `training_data`, `epochs`, `batch_size`, `final_loss`, `history` (a Keras
            `History` or its `.history` dict: gives epochs and final loss), `backend` (the
            one that trained, default: the current one), `evaluation` (dict of results),
            `name`, `description`, `recipe`. Other JSON-serialisable keys go to `extra`.

    Returns:
        The absolute path of the export.

    Example:
    >>> history = model.fit(dataset, epochs=100)
    >>> export_encoder(model, "savedmodels/digits",
    ...                metadata={"augmentation": "digits", "training_data": "digits", "history": history})
    """
    encoder, pretraining = _split(model_or_encoder)
    metadata = dict(metadata or {})
    image_shape = _image_shape(encoder, pretraining, metadata.pop("image_size", None))
    preprocessing = _preprocessing(metadata)
    pooling = pretraining.get("pooling", "auto")
    card = _card(encoder, pretraining, metadata, image_shape, preprocessing)

    directory = os.path.abspath(os.fspath(directory))
    parent, base = os.path.split(directory)
    _check_replaceable(directory)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{base}.partial-", dir=parent)
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would make the export private
        keras_path = os.path.join(staging, ENCODER_FILE)
        save_keras(encoder, keras_path)
        card["files"] = {
            ENCODER_FILE: {"bytes": os.path.getsize(keras_path), "sha256": sha256_file(keras_path)},
            SAVED_MODEL_DIR: serving_signature(image_shape, card["architecture"]["feature_dim"]),
        }
        write_saved_model(encoder, os.path.join(staging, SAVED_MODEL_DIR), image_shape, preprocessing, pooling)
        with open(os.path.join(staging, CARD_FILE), "w") as f:
            json.dump(card, f, indent=2)
            f.write("\n")
        _replace_directory(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def save_keras(encoder, path):
    """`encoder.save(path)` with `synchronized` batch norms written unsynchronised (for JAX)."""
    with unsynchronized_batchnorm(_batchnorms(encoder)):
        encoder.save(path)


def serving_model(encoder, image_shape, preprocessing, pooling="auto"):
    """The functional model behind the SavedModel: `[0, 1]` RGB → normalise → encoder → pool.

    Returns:
        A `keras.Model` mapping `images` to `{"features": (batch, feature_dim)}`.
    """
    mean, std = preprocessing["mean"], preprocessing["std"]
    images = keras.Input(tuple(image_shape), name="images")
    x = keras.layers.Rescaling(
        scale=[1.0 / s for s in std], offset=[-m / s for m, s in zip(mean, std)], name="pretraining_normalization"
    )(images)
    features = FeaturePooling(pooling, name="pooling")(encoder(x, training=False))
    return keras.Model(images, {"features": features}, name="serving")


def write_saved_model(encoder, path, image_shape, preprocessing, pooling="auto"):
    """Writes a TF SavedModel with the `serving_default` signature (see the module docstring)."""
    model = serving_model(encoder, image_shape, preprocessing, pooling)
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(images):
        return model(images, training=False)

    archive.add_endpoint(
        SERVING_ENDPOINT,
        serve,
        input_signature=[keras.InputSpec(shape=(None, *image_shape), dtype="float32")],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        archive.write_out(path, verbose=False)


def serving_signature(image_shape, feature_dim):
    """The SavedModel's signature as recorded in the model card."""
    return {
        "signature": SERVING_ENDPOINT,
        "inputs": {"images": {"dtype": "float32", "shape": [None, *image_shape], "range": "RGB in [0, 1]"}},
        "outputs": {"features": {"dtype": "float32", "shape": [None, feature_dim]}},
        "normalization": "applied inside: (images - mean) / std with the card's preprocessing",
        "load": f"tf.saved_model.load(path).signatures['{SERVING_ENDPOINT}'](images=x)['features'] or "
        f"keras.layers.TFSMLayer(path, call_endpoint='{SERVING_ENDPOINT}')",
    }


# ---------------------------------------------------------------------------------------
# Loading


def load_encoder(directory):
    """Loads `encoder.keras` from an export, checking it first.

    The returned encoder remembers its model card (`model_card(encoder)`), so
    `keras_barlow.detector(encoder, ...)` applies the pretraining preprocessing.

    Args:
        directory: an export directory (or the `encoder.keras` file in one).

    Returns:
        The encoder (e.g. a `keras_barlow.backbones.BarlowResNetBackbone`).

    Raises:
        FileNotFoundError: the directory or its `encoder.keras` does not exist.
        ValueError: the file is truncated, corrupt or differs from the card's checksum, or
            the card is not valid JSON.

    Example:
    >>> encoder = load_encoder("savedmodels/digits")
    >>> model_card(encoder)["preprocessing"]["mean"]
    [0.485, 0.456, 0.406]
    """
    path = os.path.abspath(os.fspath(directory))
    if os.path.isfile(path) and path.endswith(".keras"):
        path = os.path.dirname(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"no exported encoder at {path}: the directory does not exist. "
            "Write one with keras_barlow.export_encoder(model, directory)."
        )
    if not os.path.isdir(path):
        raise ValueError(f"{path} is a file, not an export directory (expected {ENCODER_FILE} and {CARD_FILE} in it)")
    keras_path = os.path.join(path, ENCODER_FILE)
    if not os.path.isfile(keras_path):
        raise FileNotFoundError(
            f"{path} is not an encoder export: it has no {ENCODER_FILE} (found {sorted(os.listdir(path)) or 'nothing'}). "
            "Write one with keras_barlow.export_encoder(model, directory)."
        )
    card = read_model_card(path) if os.path.exists(os.path.join(path, CARD_FILE)) else None
    _check_archive(keras_path, card)
    import keras_barlow.backbones  # noqa: F401  (registers the backbone classes)

    try:
        encoder = keras.models.load_model(keras_path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for bad archives
        raise ValueError(
            f"could not load {keras_path}: {type(err).__name__}: {_first_line(err)}. "
            "If it holds custom layers, import the module that registers them first; otherwise the file is "
            "damaged: export the encoder again."
        ) from None
    if card is not None:
        _CARDS[encoder] = card
    return encoder


def read_model_card(directory):
    """The model card (`model_card.json`) of an export directory, as a dict."""
    path = os.path.join(os.fspath(directory), CARD_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {CARD_FILE} in {directory}: not an encoder export (or an incomplete copy of one)")
    try:
        with open(path) as f:
            card = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}): the card is damaged; export the encoder again") from None
    if not isinstance(card, dict) or "preprocessing" not in card:
        raise ValueError(f"{path} is not a keras_barlow model card (no 'preprocessing' entry)")
    return card


def model_card(encoder_or_directory):
    """The model card of an export directory, or of an encoder returned by `load_encoder`.

    Returns:
        The card as a dict, or `None` for an encoder that was not loaded from an export.
    """
    if isinstance(encoder_or_directory, (str, os.PathLike)):
        return read_model_card(encoder_or_directory)
    try:
        return _CARDS.get(encoder_or_directory)
    except TypeError:  # not weak-referenceable
        return None


def _check_archive(keras_path, card):
    size = os.path.getsize(keras_path)
    if not zipfile.is_zipfile(keras_path):
        raise ValueError(
            f"{keras_path} is not a valid .keras archive ({size} bytes; truncated or corrupt). "
            "Export the encoder again with keras_barlow.export_encoder."
        )
    expected = ((card or {}).get("files") or {}).get(ENCODER_FILE) or {}
    if expected.get("bytes") is not None and expected["bytes"] != size:
        raise ValueError(
            f"{keras_path} has {size} bytes but the model card recorded {expected['bytes']}: the file is "
            "truncated or was replaced. Export the encoder again."
        )
    if expected.get("sha256") and expected["sha256"] != sha256_file(keras_path):
        raise ValueError(
            f"{keras_path} does not match the checksum in {CARD_FILE}: the file is corrupt or was modified. "
            "Export the encoder again."
        )
    try:
        with zipfile.ZipFile(keras_path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"{keras_path} is a damaged .keras archive ({err}). Export the encoder again.") from None
    if bad is not None:
        raise ValueError(f"{keras_path} is a damaged .keras archive ({bad} fails its CRC check). Export the encoder again.")


def _first_line(err):
    text = str(err).strip().splitlines()
    return text[0] if text else ""


# ---------------------------------------------------------------------------------------
# Atomic replacement


def _check_replaceable(directory):
    if os.path.isfile(directory):
        raise ValueError(f"{directory} is a file; export_encoder writes a directory")
    if os.path.isdir(directory):
        entries = set(os.listdir(directory))
        if entries and not entries & {CARD_FILE, ENCODER_FILE}:
            raise ValueError(
                f"{directory} exists and is not an encoder export (it holds {sorted(entries)[:5]}); "
                "refusing to replace it. Choose a new or empty directory."
            )


def _replace_directory(staging, directory):
    """Moves the complete `staging` directory to `directory`, replacing an old export.

    Each step is an atomic `rename`; if the second fails, the old export is put back.
    """
    if not os.path.exists(directory):
        os.rename(staging, directory)
        return
    parent, base = os.path.split(directory)
    backup = os.path.join(parent, f".{base}.previous-{uuid.uuid4().hex[:8]}")
    os.rename(directory, backup)
    try:
        os.rename(staging, directory)
    except BaseException:
        os.rename(backup, directory)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask



# ---------------------------------------------------------------------------------------
# Model card


def _split(model_or_encoder):
    """`(encoder, pretraining settings)` from a BarlowTwins model or an encoder."""
    from keras_barlow.model import BarlowTwins

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
        optimizer = model.optimizer
        steps = int(keras.ops.convert_to_numpy(optimizer.iterations)) if optimizer is not None else 0
        if steps:
            settings["steps"] = steps
            settings["optimizer"] = type(optimizer).__name__
            last_epoch_loss = float(keras.ops.convert_to_numpy(model.loss_tracker.result()))
            if math.isfinite(last_epoch_loss) and float(keras.ops.convert_to_numpy(model.loss_tracker.count)) > 0:
                settings["last_epoch_loss"] = last_epoch_loss
        return model.encoder, settings
    if not isinstance(model_or_encoder, keras.Model) or not getattr(model_or_encoder, "inputs", None):
        raise ValueError(
            "export_encoder needs a keras_barlow.BarlowTwins model or a functional Keras encoder (e.g. "
            f"keras_barlow.resnet(...)), got {type(model_or_encoder).__name__}"
        )
    return model_or_encoder, {}


def _batchnorms(model):
    return [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, keras.layers.BatchNormalization)]


def _image_shape(encoder, pretraining, image_size):
    declared = tuple(encoder.inputs[0].shape[1:])
    if image_size is not None:
        size = (int(image_size), int(image_size)) if np.ndim(image_size) == 0 else tuple(int(s) for s in image_size)
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


def _preprocessing(metadata):
    augmentation = metadata.pop("augmentation", None)
    preprocessing = metadata.pop("preprocessing", None)
    if augmentation is not None and preprocessing is not None:
        raise ValueError("give metadata 'augmentation' or 'preprocessing', not both (the first implies the second)")
    if augmentation is not None:
        from keras_barlow import augment

        config = augment.as_config(augmentation)
        metadata["augmentation_config"] = config.get_config()
        return {"mean": list(config.mean), "std": list(config.std), "source": "augmentation config"}
    if preprocessing is None:
        warnings.warn(
            "export_encoder: no 'augmentation' or 'preprocessing' in metadata; recording the ImageNet mean/std "
            "that every keras_barlow augmentation preset uses. Pass metadata={'augmentation': config} to be exact.",
            stacklevel=3,
        )
        return {"mean": list(DEFAULT_MEAN), "std": list(DEFAULT_STD), "source": "default (ImageNet mean/std)"}
    if not isinstance(preprocessing, dict) or "mean" not in preprocessing or "std" not in preprocessing:
        raise ValueError(f"metadata['preprocessing'] must be a dict with 'mean' and 'std', got {preprocessing!r}")
    mean = [float(v) for v in preprocessing["mean"]]
    std = [float(v) for v in preprocessing["std"]]
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"preprocessing needs 3 means and 3 positive stds (RGB), got mean={mean}, std={std}")
    return {"mean": mean, "std": std, "source": "given"}


def _architecture(encoder):
    config = encoder.get_config() if hasattr(encoder, "get_config") else {}
    summary = {
        k: config[k]
        for k in ("depth", "width", "small_images", "zero_init_residual", "block_type", "stackwise_num_filters")
        if k in config
    }
    registered = keras.saving.get_registered_name(type(encoder))
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
    versions = {"python": platform.python_version()}
    for package in ("keras_barlow", "keras", "keras-hub", "keras-cv", "tensorflow", "jax", "numpy"):
        if package == "keras_barlow":
            from keras_barlow import __version__

            versions[package] = __version__
            continue
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed (e.g. jax on a TF-only machine): nothing to record
    return versions


def _card(encoder, pretraining, metadata, image_shape, preprocessing):
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
        raise ValueError(f"metadata must be JSON-serialisable (numbers, strings, lists, dicts): {err}") from None


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
