"""load_encoder / read_model_card: clear errors, the remembered card, fresh processes, TF ↔ JAX."""

import os
import shutil
import textwrap

import keras
import numpy as np
import pytest
from helpers import relative_error

from keras_barlow import export
from keras_barlow.backbones import resnet
from tests.conftest import run_python
from tests.export.export_helpers import REL_TOL, helper_source


def test_load_encoder_remembers_the_card(exported):
    encoder = export.load_encoder(exported["dir"])
    assert export.model_card(encoder) == exported["card"]
    assert encoder.pyramid_level_inputs["P3"] == "stack3_block1_out"
    assert export.model_card(resnet(18, (32, 32, 3), width=4)) is None


def test_cross_backend_and_fresh_process(exported, tmp_path):
    """This process's export loads in a fresh process on the other backend with equal
    features; that process trains and exports its own encoder, which loads here."""
    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    np.save(tmp_path / "images.npy", exported["images"])
    np.save(tmp_path / "expected.npy", exported["features"])
    code = (
        textwrap.dedent(
            """
            import json, numpy as np, keras
            import keras_barlow.export   # registers the classes: plain load_model works from here on
            from keras_barlow import export
            """
        )
        + helper_source()
        + textwrap.dedent(
            f"""
            assert keras.backend.backend() == {other!r}
            images = np.load({str(tmp_path / "images.npy")!r})
            card = json.load(open({exported["dir"]!r} + "/model_card.json"))
            encoder = keras.models.load_model({exported["dir"]!r} + "/encoder.keras", safe_mode=True)
            mean, std = np.float32(card["preprocessing"]["mean"]), np.float32(card["preprocessing"]["std"])
            got = keras.ops.convert_to_numpy(keras.ops.mean(encoder((images - mean) / std), axis=(1, 2)))
            print("LOADED_REL", relative_error(got, np.load({str(tmp_path / "expected.npy")!r})))
            model, history = tiny_trained_model()
            metadata = {{"augmentation": "digits", "history": history}}
            export.export_encoder(model, {str(tmp_path / "other")!r}, metadata=metadata)
            np.save({str(tmp_path / "other_features.npy")!r}, reference_features(model, images, card))
            """
        )
    )
    out = run_python(code, env={"KERAS_BACKEND": other})
    loaded_rel = float(out.split("LOADED_REL")[1].split()[0])
    assert loaded_rel <= REL_TOL

    card = export.read_model_card(tmp_path / "other")
    assert card["training"]["backend"] == other
    expected = np.load(tmp_path / "other_features.npy")
    encoder = keras.models.load_model(str(tmp_path / "other" / "encoder.keras"), safe_mode=True)
    images = exported["images"]
    normalized = (images - np.float32(card["preprocessing"]["mean"])) / np.float32(
        card["preprocessing"]["std"]
    )
    got = keras.ops.convert_to_numpy(keras.ops.mean(encoder(normalized), axis=(1, 2)))
    assert relative_error(got, expected) <= REL_TOL
    import tensorflow as tf

    serving = tf.saved_model.load(str(tmp_path / "other" / "saved_model")).signatures["serving_default"]
    assert relative_error(serving(images=tf.constant(images))["features"].numpy(), expected) <= REL_TOL


def test_missing_directory_and_missing_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export.load_encoder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no encoder\.keras"):
        export.load_encoder(tmp_path / "empty")


def test_model_card_of_a_non_export_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no model_card.json in .*not an encoder export"):
        export.read_model_card(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"has no encoder.keras \(found nothing\).*export_encoder"):
        export.load_encoder(tmp_path)
    assert os.listdir(tmp_path) == []


def test_truncated_encoder_gives_a_clear_error(exported, tmp_path):
    copy = shutil.copytree(exported["dir"], tmp_path / "copy")
    keras_file = copy / "encoder.keras"
    data = keras_file.read_bytes()
    keras_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        export.load_encoder(copy)
    # Without the card's checksum the archive check still catches it.
    os.remove(copy / "model_card.json")
    with pytest.raises(ValueError, match=r"not a valid \.keras archive"):
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
    with pytest.raises(ValueError, match=r"damaged|could not load"):
        export.load_encoder(copy)


def test_corrupt_card_gives_a_clear_error(exported, tmp_path):
    copy = shutil.copytree(exported["dir"], tmp_path / "copy")
    (copy / "model_card.json").write_text('{"preprocessing": ')
    with pytest.raises(ValueError, match="not valid JSON"):
        export.load_encoder(copy)
