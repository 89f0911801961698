"""Export: `.keras` + SavedModel + model card, atomic writes, clear load errors, and
round trips across processes and backends (TF ↔ JAX)."""

import hashlib
import inspect
import os
import shutil
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_barlow
from keras_barlow import export
from keras_barlow.backbones import resnet
from conftest import run_python

IMAGE_SIZE = 32
REL_TOL = 1e-5  # relative: inference-mode BN after a few steps can give large features (NOTES §6)


def relative_error(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30))


def probe_images(n=6, seed=3):
    return np.random.default_rng(seed).uniform(size=(n, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")


def reference_features(model, images, card):
    """Pooled features computed by hand: NumPy normalisation, then the in-memory model."""
    mean = np.asarray(card["preprocessing"]["mean"], np.float32)
    std = np.asarray(card["preprocessing"]["std"], np.float32)
    return keras.ops.convert_to_numpy(model((images - mean) / std, training=False))


def tiny_trained_model(steps=2):
    keras.utils.set_random_seed(0)
    encoder = resnet(18, (IMAGE_SIZE, IMAGE_SIZE, 3), small_images=True, width=4)
    model = keras_barlow.BarlowTwins(encoder, projector_dims=(32, 32))
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    rng = np.random.default_rng(0)
    views = rng.uniform(size=(2, 8 * steps, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    history = model.fit((views[0], views[1]), batch_size=8, epochs=1, verbose=0, shuffle=False)
    return model, history


def helper_source():
    """This module's helpers as source, for the fresh process of the cross-backend test."""
    functions = (relative_error, probe_images, reference_features, tiny_trained_model)
    header = "import keras\nimport numpy as np\nimport keras_barlow\nfrom keras_barlow.backbones import resnet\n"
    return header + f"IMAGE_SIZE = {IMAGE_SIZE}\n" + "\n".join(inspect.getsource(f) for f in functions)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model, history = tiny_trained_model()
    directory = str(tmp_path_factory.mktemp("export") / "encoder")
    export.export_encoder(
        model,
        directory,
        metadata={
            "augmentation": "digits",
            "history": history,
            "training_data": "random test images",
            "batch_size": 8,
            "evaluation": {"knn_accuracy": 0.5},
            "name": "tiny",
        },
    )
    card = export.read_model_card(directory)
    images = probe_images()
    return {"model": model, "dir": directory, "card": card, "images": images, "features": reference_features(model, images, card)}


def _tree_digest(directory):
    digest = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digest[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return digest


def test_export_writes_the_three_artefacts_and_a_complete_card(exported):
    directory, card, model = exported["dir"], exported["card"], exported["model"]
    assert sorted(os.listdir(directory)) == ["encoder.keras", "model_card.json", "saved_model"]
    assert card["architecture"]["class"] == "keras_barlow>BarlowResNetBackbone"
    assert card["architecture"]["config"] == {"depth": 18, "width": 4, "small_images": True, "zero_init_residual": True}
    assert card["architecture"]["feature_dim"] == model.feature_dim == 32
    assert card["architecture"]["parameters"] == model.encoder.count_params()
    assert card["input"]["image_shape"] == [IMAGE_SIZE, IMAGE_SIZE, 3]
    from keras_barlow import augment

    digits = augment.AugmentationConfig.preset("digits")
    assert card["preprocessing"]["mean"] == list(digits.mean) and card["preprocessing"]["std"] == list(digits.std)
    assert card["augmentation"] == digits.get_config()
    assert card["training"]["backend"] == keras.backend.backend()
    assert card["training"]["epochs"] == 1 and card["training"]["batch_size"] == 8
    assert card["training"]["final_loss"] == pytest.approx(exported_history_loss(exported))
    assert card["training"]["training_data"] == "random test images"
    assert card["pretraining"]["projector_dims"] == [32, 32] and card["pretraining"]["steps"] == 2
    assert card["evaluation"] == {"knn_accuracy": 0.5} and card["name"] == "tiny"
    assert card["versions"]["keras"] == keras.__version__
    with open(os.path.join(directory, "encoder.keras"), "rb") as f:
        assert card["files"]["encoder.keras"]["sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert card["files"]["saved_model"]["inputs"]["images"]["shape"] == [None, IMAGE_SIZE, IMAGE_SIZE, 3]
    assert not [n for n in os.listdir(os.path.dirname(directory)) if n.startswith(".")], "temporary directories left"
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(directory).st_mode & 0o777 == 0o777 & ~mask  # not mkdtemp's private 0700


def exported_history_loss(exported):
    # The model's tracker holds the mean loss of the last (only) epoch, as the History does.
    return float(keras.ops.convert_to_numpy(exported["model"].loss_tracker.result()))


def test_keras_file_and_saved_model_reproduce_the_features(exported):
    directory, images, expected = exported["dir"], exported["images"], exported["features"]
    encoder = keras.models.load_model(os.path.join(directory, "encoder.keras"), safe_mode=True)
    card = exported["card"]
    normalized = (images - np.float32(card["preprocessing"]["mean"])) / np.float32(card["preprocessing"]["std"])
    from_keras = keras.ops.convert_to_numpy(keras.ops.mean(encoder(normalized, training=False), axis=(1, 2)))
    assert relative_error(from_keras, expected) <= REL_TOL

    import tensorflow as tf

    serving = tf.saved_model.load(os.path.join(directory, "saved_model")).signatures["serving_default"]
    from_saved_model = serving(images=tf.constant(images))["features"].numpy()
    assert from_saved_model.shape == (len(images), 32)
    assert relative_error(from_saved_model, expected) <= REL_TOL
    if keras.backend.backend() == "tensorflow":  # TFSMLayer is TensorFlow-only
        layer = keras.layers.TFSMLayer(os.path.join(directory, "saved_model"), call_endpoint="serving_default")
        assert relative_error(keras.ops.convert_to_numpy(layer(images)["features"]), expected) <= REL_TOL


def test_load_encoder_remembers_the_card(exported):
    encoder = export.load_encoder(exported["dir"])
    assert export.model_card(encoder) == exported["card"]
    assert encoder.pyramid_level_inputs["P3"] == "stack3_block1_out"
    assert export.model_card(resnet(18, (32, 32, 3), width=4)) is None


def test_synchronized_batchnorm_is_exported_unsynchronized(tmp_path):
    """An encoder trained under MirroredStrategy has `synchronized=True` batch norms (set by
    the TF trainer); the export must not carry the flag (JAX cannot load it), and must
    leave the live model as it was."""
    keras.utils.set_random_seed(0)
    encoder = resnet(18, (IMAGE_SIZE, IMAGE_SIZE, 3), small_images=True, width=4)
    norms = [layer for layer in encoder._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.synchronized = True
    export.save_keras(encoder, tmp_path / "encoder.keras")  # what export_encoder writes encoder.keras with
    assert all(layer.synchronized for layer in norms)
    import zipfile

    with zipfile.ZipFile(tmp_path / "encoder.keras") as archive:
        config = archive.read("config.json").decode()
    assert '"synchronized": true' not in config


def test_cross_backend_and_fresh_process(exported, tmp_path):
    """This process's export loads in a fresh process on the other backend with equal
    features; that process trains and exports its own encoder, which loads here."""
    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    np.save(tmp_path / "images.npy", exported["images"])
    np.save(tmp_path / "expected.npy", exported["features"])
    code = textwrap.dedent(
        f"""
        import json, numpy as np, keras
        import keras_barlow   # registers the classes: plain load_model works from here on
        from keras_barlow import export
        """
    ) + helper_source() + textwrap.dedent(
        f"""
        assert keras.backend.backend() == {other!r}
        images = np.load({str(tmp_path / "images.npy")!r})
        card = json.load(open({exported["dir"]!r} + "/model_card.json"))
        encoder = keras.models.load_model({exported["dir"]!r} + "/encoder.keras", safe_mode=True)
        mean, std = np.float32(card["preprocessing"]["mean"]), np.float32(card["preprocessing"]["std"])
        got = keras.ops.convert_to_numpy(keras.ops.mean(encoder((images - mean) / std), axis=(1, 2)))
        print("LOADED_REL", relative_error(got, np.load({str(tmp_path / "expected.npy")!r})))
        model, history = tiny_trained_model()
        export.export_encoder(model, {str(tmp_path / "other")!r}, metadata={{"augmentation": "digits", "history": history}})
        np.save({str(tmp_path / "other_features.npy")!r}, reference_features(model, images, card))
        """
    )
    out = run_python(code, env={"KERAS_BACKEND": other})
    loaded_rel = float(out.split("LOADED_REL")[1].split()[0])
    assert loaded_rel <= REL_TOL

    card = export.read_model_card(tmp_path / "other")
    assert card["training"]["backend"] == other
    expected = np.load(tmp_path / "other_features.npy")
    encoder = keras.models.load_model(str(tmp_path / "other" / "encoder.keras"), safe_mode=True)
    images = exported["images"]
    normalized = (images - np.float32(card["preprocessing"]["mean"])) / np.float32(card["preprocessing"]["std"])
    got = keras.ops.convert_to_numpy(keras.ops.mean(encoder(normalized), axis=(1, 2)))
    assert relative_error(got, expected) <= REL_TOL
    import tensorflow as tf

    serving = tf.saved_model.load(str(tmp_path / "other" / "saved_model")).signatures["serving_default"]
    assert relative_error(serving(images=tf.constant(images))["features"].numpy(), expected) <= REL_TOL


# ---------------------------------------------------------------------------------------
# Errors


def test_missing_directory_and_missing_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export.load_encoder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no encoder.keras"):
        export.load_encoder(tmp_path / "empty")


def test_truncated_encoder_gives_a_clear_error(exported, tmp_path):
    copy = shutil.copytree(exported["dir"], tmp_path / "copy")
    keras_file = copy / "encoder.keras"
    data = keras_file.read_bytes()
    keras_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        export.load_encoder(copy)
    # Without the card's checksum the archive check still catches it.
    os.remove(copy / "model_card.json")
    with pytest.raises(ValueError, match="not a valid .keras archive"):
        export.load_encoder(copy)


def test_flipped_bytes_fail_the_checksum(exported, tmp_path):
    copy = shutil.copytree(exported["dir"], tmp_path / "copy")
    keras_file = copy / "encoder.keras"
    data = bytearray(keras_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    keras_file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        export.load_encoder(copy)
    os.remove(copy / "model_card.json")  # no checksum: the zip CRC (or the loader) reports it
    with pytest.raises(ValueError, match="damaged|could not load"):
        export.load_encoder(copy)


def test_corrupt_card_gives_a_clear_error(exported, tmp_path):
    copy = shutil.copytree(exported["dir"], tmp_path / "copy")
    (copy / "model_card.json").write_text('{"preprocessing": ')
    with pytest.raises(ValueError, match="not valid JSON"):
        export.load_encoder(copy)


def test_bad_metadata_and_inputs(tmp_path):
    encoder = resnet(18, (None, None, 3), small_images=True, width=4)
    with pytest.raises(ValueError, match="image_size"):
        export.export_encoder(encoder, tmp_path / "a", metadata={"preprocessing": {"mean": [0] * 3, "std": [1] * 3}})
    with pytest.raises(ValueError, match="JSON-serialisable"):
        export.export_encoder(encoder, tmp_path / "b", metadata={"image_size": 32, "preprocessing": {"mean": [0] * 3, "std": [1] * 3}, "x": object()})
    with pytest.raises(ValueError, match="positive stds"):
        export.export_encoder(encoder, tmp_path / "c", metadata={"image_size": 32, "preprocessing": {"mean": [0] * 3, "std": [0, 1, 1]}})
    with pytest.raises(ValueError, match="BarlowTwins model or a functional"):
        export.export_encoder("not a model", tmp_path / "d")
    (tmp_path / "user_data").mkdir()
    (tmp_path / "user_data" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="refusing to replace"):
        export.export_encoder(encoder, tmp_path / "user_data", metadata={"image_size": 32, "augmentation": "cifar"})
    assert (tmp_path / "user_data" / "notes.txt").read_text() == "keep me"
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


# ---------------------------------------------------------------------------------------
# Atomicity


@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_interrupted_export_leaves_the_previous_artefact_intact(exported, tmp_path, monkeypatch, failure):
    target = shutil.copytree(exported["dir"], tmp_path / "encoder")
    before = _tree_digest(target)

    def crash(*args, **kwargs):
        raise failure

    # encoder.keras is already written to the staging directory when the SavedModel fails.
    monkeypatch.setattr(export, "write_saved_model", crash)
    with pytest.raises(type(failure)):
        export.export_encoder(exported["model"], target, metadata={"augmentation": "digits"})
    assert _tree_digest(target) == before
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")], "staging directory left behind"
    assert export.model_card(export.load_encoder(target)) == exported["card"]


def test_failed_swap_restores_the_previous_artefact(exported, tmp_path, monkeypatch):
    target = shutil.copytree(exported["dir"], tmp_path / "encoder")
    before = _tree_digest(target)
    real_rename = os.rename
    calls = []

    def flaky_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # old export moved aside, new one about to move in
            raise OSError("simulated crash between the two renames")
        return real_rename(src, dst)

    monkeypatch.setattr(export.os, "rename", flaky_rename)
    with pytest.raises(OSError, match="simulated"):
        export.export_encoder(exported["model"], target, metadata={"augmentation": "digits"})
    assert _tree_digest(target) == before
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]



# ---------------------------------------------------------------------------------------
# Shipped artefacts (savedmodels/)

SAVEDMODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "savedmodels")
BUILD_TOOLS = os.path.join(os.path.dirname(SAVEDMODELS), "recipes")
# Point the check at artefacts elsewhere (e.g. a candidate before it is committed).
SAVEDMODELS = os.environ.get("KERAS_BARLOW_SAVEDMODELS", SAVEDMODELS)
SHIPPED = sorted(
    name for name in os.listdir(SAVEDMODELS) if os.path.isfile(os.path.join(SAVEDMODELS, name, "model_card.json"))
) if os.path.isdir(SAVEDMODELS) else []


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", SHIPPED or [pytest.param(None, marks=pytest.mark.skip(reason="no artefact in savedmodels/ yet"))]
)
def test_shipped_artefacts_reproduce_their_evaluation(name):
    """Each shipped encoder loads, its SavedModel agrees with its .keras file, it is small,
    and its recorded kNN accuracy on digits is reproduced from the files."""
    sys.path.insert(0, BUILD_TOOLS)
    import ship_digits_encoder as build_digits

    directory = os.path.join(SAVEDMODELS, name)
    card = export.read_model_card(directory)
    size = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(directory) for f in files)
    assert size < 20 * 2**20, f"{name} is {size / 2**20:.1f} MiB: keep the repository lean"
    assert os.path.isfile(os.path.join(directory, "README.md"))
    encoder = export.load_encoder(directory)
    recorded = build_digits.recorded_knn(card)
    assert build_digits.knn_on_digits(encoder, card) == pytest.approx(recorded, abs=build_digits.KNN_TOLERANCE)

    import tensorflow as tf

    images = np.random.default_rng(7).uniform(size=(4, *card["input"]["image_shape"])).astype("float32")
    serving = tf.saved_model.load(os.path.join(directory, "saved_model")).signatures["serving_default"]
    mean, std = np.float32(card["preprocessing"]["mean"]), np.float32(card["preprocessing"]["std"])
    from_keras = keras.ops.convert_to_numpy(keras.ops.mean(encoder((images - mean) / std), axis=(1, 2)))
    assert relative_error(serving(images=tf.constant(images))["features"].numpy(), from_keras) <= REL_TOL
