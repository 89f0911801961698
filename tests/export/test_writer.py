"""export_encoder: the files it writes, the card, the SavedModel, atomicity, bad inputs."""

import hashlib
import json
import os
import shutil
import zipfile

import keras
import numpy as np
import pytest
from helpers import relative_error

import keras_barlow
from keras_barlow import export
from keras_barlow.backbones import resnet
from keras_barlow.export import writer
from tests.export.export_helpers import IMAGE_SIZE, REL_TOL, hidden_entries, tree_digest


def test_export_writes_the_four_artefacts_and_a_complete_card(exported):
    directory, card, model = exported["dir"], exported["card"], exported["model"]
    assert sorted(os.listdir(directory)) == [
        "encoder.keras",
        "keras_hub_preset",
        "model_card.json",
        "saved_model",
    ]
    assert card["architecture"]["class"] == "keras_barlow>BarlowResNetBackbone"
    assert card["architecture"]["exported_class"] == "keras_barlow>PretrainedResNetBackbone"
    assert card["architecture"]["config"] == {
        "depth": 18,
        "width": 4,
        "small_images": True,
        "zero_init_residual": True,
        "grayscale": False,
    }
    assert card["architecture"]["feature_dim"] == model.feature_dim == 32
    assert card["architecture"]["parameters"] == model.encoder.count_params()
    assert card["input"]["image_shape"] == [IMAGE_SIZE, IMAGE_SIZE, 3]
    from keras_barlow import augment

    digits = augment.AugmentationConfig.preset("digits")
    assert card["preprocessing"]["mean"] == list(digits.mean) and card["preprocessing"]["std"] == list(
        digits.std
    )
    assert card["augmentation"] == digits.get_config()
    assert card["training"]["backend"] == keras.backend.backend()
    assert card["training"]["epochs"] == 1 and card["training"]["batch_size"] == 8
    # The model's tracker holds the mean loss of the last (only) epoch, as the History does.
    expected_loss = float(keras.ops.convert_to_numpy(model.loss_tracker.result()))
    assert card["training"]["final_loss"] == pytest.approx(expected_loss)
    assert card["training"]["training_data"] == "random test images"
    assert card["pretraining"]["projector_dims"] == [32, 32] and card["pretraining"]["steps"] == 2
    assert card["evaluation"] == {"knn_accuracy": 0.5} and card["name"] == "tiny"
    assert card["versions"]["keras"] == keras.__version__
    with open(os.path.join(directory, "encoder.keras"), "rb") as f:
        assert card["files"]["encoder.keras"]["sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert card["files"]["saved_model"]["inputs"]["images"]["shape"] == [None, IMAGE_SIZE, IMAGE_SIZE, 3]
    preset_files = card["files"]["keras_hub_preset"]["files"]
    assert sorted(preset_files) == sorted(os.listdir(os.path.join(directory, "keras_hub_preset")))
    assert {
        "config.json",
        "model.weights.h5",
        "metadata.json",
        "preprocessor.json",
        "image_converter.json",
    } <= set(preset_files)
    assert not hidden_entries(os.path.dirname(directory)), "temporary directories left"
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(directory).st_mode & 0o777 == 0o777 & ~mask  # not mkdtemp's private 0700


def test_keras_file_and_saved_model_reproduce_the_features(exported):
    directory, images, expected = exported["dir"], exported["images"], exported["features"]
    encoder = keras.models.load_model(os.path.join(directory, "encoder.keras"), safe_mode=True)
    card = exported["card"]
    normalized = (images - np.float32(card["preprocessing"]["mean"])) / np.float32(
        card["preprocessing"]["std"]
    )
    from_keras = keras.ops.convert_to_numpy(keras.ops.mean(encoder(normalized, training=False), axis=(1, 2)))
    assert relative_error(from_keras, expected) <= REL_TOL

    import tensorflow as tf

    serving = tf.saved_model.load(os.path.join(directory, "saved_model")).signatures["serving_default"]
    from_saved_model = serving(images=tf.constant(images))["features"].numpy()
    assert from_saved_model.shape == (len(images), 32)
    assert relative_error(from_saved_model, expected) <= REL_TOL
    if keras.backend.backend() == "tensorflow":  # TFSMLayer is TensorFlow-only
        layer = keras.layers.TFSMLayer(
            os.path.join(directory, "saved_model"), call_endpoint="serving_default"
        )
        assert relative_error(keras.ops.convert_to_numpy(layer(images)["features"]), expected) <= REL_TOL


def test_synchronized_batchnorm_is_exported_unsynchronized(tmp_path):
    """An encoder trained under MirroredStrategy has `synchronized=True` batch norms (set by
    the TF trainer); the export must not carry the flag (JAX cannot load it), and must
    leave the live model as it was."""
    keras.utils.set_random_seed(0)
    encoder = resnet(18, (IMAGE_SIZE, IMAGE_SIZE, 3), small_images=True, width=4)
    norms = [
        layer for layer in encoder._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)
    ]
    for layer in norms:
        layer.synchronized = True
    export.save_keras(encoder, tmp_path / "encoder.keras")  # what export_encoder writes encoder.keras with
    assert all(layer.synchronized for layer in norms)
    with zipfile.ZipFile(tmp_path / "encoder.keras") as archive:
        config = archive.read("config.json").decode()
    assert '"synchronized": true' not in config
    export.export_encoder(encoder, tmp_path / "full", metadata={"augmentation": "digits"})
    assert all(layer.synchronized for layer in norms)
    for name in ("encoder.keras",):
        with zipfile.ZipFile(tmp_path / "full" / name) as archive:
            assert '"synchronized": true' not in archive.read("config.json").decode()
    assert '"synchronized": true' not in (tmp_path / "full" / "keras_hub_preset" / "config.json").read_text()


def test_uncompiled_model_exports_without_optimizer_settings(tmp_path):
    """An uncompiled BarlowTwins has no `optimizer` attribute: nothing to record, no AttributeError."""
    encoder = resnet(18, (IMAGE_SIZE, IMAGE_SIZE, 3), small_images=True, width=4)
    model = keras_barlow.BarlowTwins(encoder, projector_dims=(32, 32))
    export.export_encoder(model, tmp_path / "enc", metadata={"augmentation": "digits"})
    card = export.read_model_card(tmp_path / "enc")
    assert card["pretraining"]["projector_dims"] == [32, 32]
    assert "steps" not in card["pretraining"] and "optimizer" not in card["pretraining"]
    assert "final_loss" not in card["training"]


def test_bad_metadata_and_inputs(tmp_path):
    encoder = resnet(18, (None, None, 3), small_images=True, width=4)
    with pytest.raises(ValueError, match="image_size"):
        export.export_encoder(
            encoder, tmp_path / "a", metadata={"preprocessing": {"mean": [0] * 3, "std": [1] * 3}}
        )
    with pytest.raises(ValueError, match="JSON-serialisable"):
        export.export_encoder(
            encoder,
            tmp_path / "b",
            metadata={"image_size": 32, "preprocessing": {"mean": [0] * 3, "std": [1] * 3}, "x": object()},
        )
    with pytest.raises(ValueError, match="positive stds"):
        export.export_encoder(
            encoder,
            tmp_path / "c",
            metadata={"image_size": 32, "preprocessing": {"mean": [0] * 3, "std": [0, 1, 1]}},
        )
    with pytest.raises(ValueError, match="BarlowTwins model or a functional"):
        export.export_encoder("not a model", tmp_path / "d")
    (tmp_path / "user_data").mkdir()
    (tmp_path / "user_data" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="refusing to replace"):
        export.export_encoder(
            encoder, tmp_path / "user_data", metadata={"image_size": 32, "augmentation": "cifar"}
        )
    assert (tmp_path / "user_data" / "notes.txt").read_text() == "keep me"
    assert not hidden_entries(tmp_path)


@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_interrupted_export_leaves_the_previous_artefact_intact(exported, tmp_path, monkeypatch, failure):
    target = shutil.copytree(exported["dir"], tmp_path / "encoder")
    before = tree_digest(target)

    def crash(*args, **kwargs):
        raise failure

    # encoder.keras and the preset are already in the staging directory when the SavedModel fails.
    monkeypatch.setattr(writer, "write_saved_model", crash)
    with pytest.raises(type(failure)):
        export.export_encoder(exported["model"], target, metadata={"augmentation": "digits"})
    assert tree_digest(target) == before
    assert not hidden_entries(tmp_path), "staging directory left behind"
    assert export.model_card(export.load_encoder(target)) == exported["card"]


def test_failed_swap_restores_the_previous_artefact(exported, tmp_path, monkeypatch):
    target = shutil.copytree(exported["dir"], tmp_path / "encoder")
    before = tree_digest(target)
    real_rename = os.rename
    calls = []

    def flaky_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # old export moved aside, new one about to move in
            raise OSError("simulated crash between the two renames")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", flaky_rename)
    with pytest.raises(OSError, match="simulated"):
        export.export_encoder(exported["model"], target, metadata={"augmentation": "digits"})
    assert tree_digest(target) == before
    assert not hidden_entries(tmp_path)


@pytest.mark.tensorflow_only  # reads the SavedModel with TensorFlow
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_exports_of_mixed_precision_training_serve_and_load_float32(tmp_path, policy):
    import tensorflow as tf

    from keras_barlow import BarlowTwins, export_encoder, resnet

    keras.mixed_precision.set_global_policy(policy)
    try:
        model = BarlowTwins(resnet(18, (16, 16, 3), small_images=True, width=4), projector_dims=(16, 16))
        export_encoder(model, tmp_path / "export", metadata={"augmentation": "digits", "image_size": 16})
        assert keras.config.dtype_policy().name == policy  # restored after the export
        kept = export_encoder(
            model, tmp_path / "kept", metadata={"augmentation": "digits", "image_size": 16}, dtype_policy=None
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    card = json.loads((tmp_path / "export" / "model_card.json").read_text())
    assert card["architecture"]["dtype_policy"] == {
        "trained": policy,
        "exported": "float32",
        "compute_dtype": "float32",
    }
    assert card["files"]["saved_model"]["outputs"]["features"]["dtype"] == "float32"
    loaded = keras.models.load_model(tmp_path / "export" / "encoder.keras")
    assert loaded.dtype_policy.name == "float32"
    assert {layer.dtype_policy.name for layer in loaded.layers} == {"float32"}
    serve = tf.saved_model.load(str(tmp_path / "export" / "saved_model")).signatures["serving_default"]
    assert serve(images=tf.zeros((2, 16, 16, 3)))["features"].dtype == tf.float32
    with open(os.path.join(kept, "model_card.json")) as f:
        kept_card = json.load(f)
    assert kept_card["architecture"]["dtype_policy"]["exported"] == policy
    assert keras.models.load_model(os.path.join(kept, "encoder.keras")).dtype_policy.name == policy
