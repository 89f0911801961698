"""`export_encoder`: `.keras` + TF SavedModel + KerasHub preset + model card, atomically.

`export_encoder(model, "savedmodels/digits")` writes the directory described in
`keras_barlow.export.layout`:

- `encoder.keras`: the encoder, as a `PretrainedResNetBackbone` (or `PretrainedEncoder`)
  whose config holds the pretraining normalisation and image size, so
  `keras.models.load_model` alone (after `import keras_barlow`) gives everything needed;
  outputs on normalised images are exactly the trained encoder's.
- `saved_model/`: TF SavedModel, signature `serving_default`: `images` float32
  `(batch, H, W, 3)`, RGB in `[0, 1]` → `features` float32 `(batch, feature_dim)`, the
  pooled representation (normalisation applied inside).
- `keras_hub_preset/`: a KerasHub preset (see `keras_barlow.export.preset`) whose image
  converter normalises raw 0–255 pixels.
- `model_card.json`: see `keras_barlow.export.card`, plus the files' checksums.

The directory is written under a staging name and swapped in (see
`keras_barlow.export.directories`): a failed or killed export never leaves a half-written
artefact where a good one was, and files the package did not write are carried over.

TensorFlow is imported only to write the SavedModel (also from JAX, through Keras'
`jax2tf` export).
"""

import contextlib
import json
import os
import shutil
import warnings

import keras

from keras_barlow import _compat
from keras_barlow._io import sha256_file
from keras_barlow.export import card as cards
from keras_barlow.export import directories
from keras_barlow.export.layout import CARD_FILE, ENCODER_FILE, PRESET_DIR, SAVED_MODEL_DIR, SERVING_ENDPOINT
from keras_barlow.export.preset import loading_instructions, preset_needs_keras_barlow, write_preset
from keras_barlow.export.pretrained import PIXEL_SCALE, with_pretraining_preprocessing
from keras_barlow.layers.feature_pooling import FeaturePooling
from keras_barlow.layers.projector import unsynchronized_batchnorm


def export_encoder(model_or_encoder, directory, *, metadata=None, dtype_policy="float32"):
    """Writes `encoder.keras`, `saved_model/`, `keras_hub_preset/` and `model_card.json`, atomically.

    Args:
        model_or_encoder: a `keras_barlow.BarlowTwins` model (its `encoder` is exported and
            its settings recorded; it need not be compiled) or an encoder (a functional
            Keras model/backbone).
        directory: target directory. An existing export there is replaced only once the new
            one is complete, and the files in it that an export does not write (a README,
            figures, notes) are carried over; a directory that is not an export is never
            overwritten.
        metadata: optional dict recorded in the model card. Recognised keys:
            `augmentation` (an `AugmentationConfig`, preset name or dict: gives the
            preprocessing) or `preprocessing` (`{"mean": ..., "std": ...}`);
            `image_size` (int or `(h, w)`; needed when the encoder accepts any size);
            `training_data`, `epochs`, `batch_size`, `final_loss`, `history` (a Keras
            `History` or its `.history` dict: gives epochs and final loss), `backend` (the
            one that trained, default: the current one), `evaluation` (dict of results),
            `name`, `description`, `recipe`; for re-exports (`card.metadata_from_card`)
            `pretraining` and `augmentation_config`. Other JSON-serialisable keys go to
            `extra`.

        dtype_policy: the dtype policy of every exported layer: by default `"float32"`, so
            an encoder trained under `mixed_bfloat16` / `mixed_float16` serves float32
            features and loads computing in float32; None keeps the training policy. The
            model card records both (`architecture.dtype_policy`).

    Returns:
        The absolute path of the export.

    Example:
    ```python
    history = model.fit(dataset, epochs=100)
    export_encoder(model, "savedmodels/digits",
                   metadata={"augmentation": "digits", "training_data": "digits", "history": history})
    ```
    """
    encoder, pretraining = cards.encoder_and_settings(model_or_encoder)
    metadata = dict(metadata or {})
    image_shape = cards.export_image_shape(encoder, pretraining, metadata.pop("image_size", None))
    preprocessing = cards.preprocessing_from_metadata(metadata)
    pooling = pretraining.get("pooling", "auto")
    card = cards.build_card(encoder, pretraining, metadata, image_shape, preprocessing)
    trained_policy = encoder.dtype_policy.name
    with _global_dtype_policy(dtype_policy or trained_policy):  # the serving model's own layers too
        exported = with_pretraining_preprocessing(
            encoder,
            {**preprocessing, "max_pixel_value": PIXEL_SCALE, "image_size": image_shape[:2]},
            dtype_policy=dtype_policy,
        )
        card["architecture"]["dtype_policy"] = {
            "trained": trained_policy,
            "exported": exported.dtype_policy.name,
            "compute_dtype": exported.dtype_policy.compute_dtype,
        }
        _write_export(exported, directory, card, image_shape, preprocessing, pooling)
    return os.path.abspath(os.fspath(directory))


@contextlib.contextmanager
def _global_dtype_policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _write_export(exported, directory, card, image_shape, preprocessing, pooling):
    card["architecture"]["exported_class"] = keras.saving.get_registered_name(type(exported))

    directory = os.path.abspath(os.fspath(directory))
    directories.check_replaceable(directory)
    directories.clean_stale_directories(directory)
    staging = directories.staging_directory(directory)
    try:
        keras_path = os.path.join(staging, ENCODER_FILE)
        save_keras(exported, keras_path)
        preset_files = write_preset(exported, os.path.join(staging, PRESET_DIR))
        write_saved_model(
            exported, os.path.join(staging, SAVED_MODEL_DIR), image_shape, preprocessing, pooling
        )
        needs_keras_barlow = preset_needs_keras_barlow(os.path.join(staging, PRESET_DIR))
        card["files"] = {
            ENCODER_FILE: _file_record(keras_path),
            SAVED_MODEL_DIR: serving_signature(
                image_shape, card["architecture"]["feature_dim"], exported.dtype_policy.compute_dtype
            ),
            PRESET_DIR: {
                "files": {
                    name: _file_record(os.path.join(staging, PRESET_DIR, name)) for name in preset_files
                },
                "needs_keras_barlow": needs_keras_barlow,
                "load": loading_instructions(needs_keras_barlow),
            },
        }
        with open(os.path.join(staging, CARD_FILE), "w") as f:
            json.dump(card, f, indent=2)
            f.write("\n")
        directories.carry_over_foreign_files(directory, staging)
        directories.replace_directory(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def save_keras(encoder, path):
    """`encoder.save(path)` with `synchronized` batch norms written unsynchronised (for JAX)."""
    with unsynchronized_batchnorm(_compat.batch_norm_layers(encoder)):
        encoder.save(path)


def serving_model(encoder, image_shape, preprocessing, pooling="auto"):
    """The functional model behind the SavedModel: `[0, 1]` RGB → normalise → encoder → pool.

    Returns:
        A `keras.Model` mapping `images` to `{"features": (batch, feature_dim)}`.
    """
    mean, std = preprocessing["mean"], preprocessing["std"]
    images = keras.Input(tuple(image_shape), name="images")
    x = keras.layers.Rescaling(
        scale=[1.0 / s for s in std],
        offset=[-m / s for m, s in zip(mean, std)],
        name="pretraining_normalization",
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


def serving_signature(image_shape, feature_dim, features_dtype="float32"):
    """The SavedModel's signature as recorded in the model card."""
    return {
        "signature": SERVING_ENDPOINT,
        "inputs": {"images": {"dtype": "float32", "shape": [None, *image_shape], "range": "RGB in [0, 1]"}},
        "outputs": {"features": {"dtype": features_dtype, "shape": [None, feature_dim]}},
        "normalization": "applied inside: (images - mean) / std with the card's preprocessing",
        "load": f"tf.saved_model.load(path).signatures['{SERVING_ENDPOINT}'](images=x)['features'] or "
        f"keras.layers.TFSMLayer(path, call_endpoint='{SERVING_ENDPOINT}')",
    }


def _file_record(path):
    return {"bytes": os.path.getsize(path), "sha256": sha256_file(path)}
