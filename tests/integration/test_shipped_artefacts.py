"""Shipped artefacts (savedmodels/): they load, agree with themselves and reproduce their kNN."""

import os
import sys

import keras
import numpy as np
import pytest
from helpers import relative_error

from keras_barlow import export
from tests.export.export_helpers import REL_TOL

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_TOOLS = os.path.join(REPO, "recipes")
# Point the check at artefacts elsewhere (e.g. a candidate before it is committed).
SAVEDMODELS = os.environ.get("KERAS_BARLOW_SAVEDMODELS", os.path.join(REPO, "savedmodels"))
SHIPPED = (
    sorted(
        name
        for name in os.listdir(SAVEDMODELS)
        if os.path.isfile(os.path.join(SAVEDMODELS, name, "model_card.json"))
    )
    if os.path.isdir(SAVEDMODELS)
    else []
)
NO_ARTEFACT = [pytest.param(None, marks=pytest.mark.skip(reason="no artefact in savedmodels/ yet"))]


@pytest.mark.parametrize("name", SHIPPED or NO_ARTEFACT)
def test_shipped_artefacts_describe_themselves(name):
    """The encoder's config and the preset carry the card's normalisation and input size."""
    directory = os.path.join(SAVEDMODELS, name)
    card = export.read_model_card(directory)
    assert {"encoder.keras", "saved_model", "keras_hub_preset", "model_card.json", "README.md"} <= set(
        os.listdir(directory)
    )
    encoder = keras.models.load_model(os.path.join(directory, "encoder.keras"))
    record = export.pretraining_preprocessing(encoder)
    assert record["mean"] == card["preprocessing"]["mean"] and record["std"] == card["preprocessing"]["std"]
    assert record["image_size"] == card["input"]["image_shape"][:2]
    for file_name, recorded in card["files"]["keras_hub_preset"]["files"].items():
        assert os.path.getsize(os.path.join(directory, "keras_hub_preset", file_name)) == recorded["bytes"]


@pytest.mark.parametrize("name", SHIPPED or NO_ARTEFACT)
def test_shipped_artefacts_hold_their_pictures(name):
    """The C heat-map, the t-SNE and the training curves, as PNG images that the README names."""
    from PIL import Image

    directory = os.path.join(SAVEDMODELS, name)
    with open(os.path.join(directory, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for picture in ("cross_correlation.png", "embedding.png", "training.png"):
        with Image.open(os.path.join(directory, picture)) as image:
            assert image.format == "PNG" and min(image.size) >= 100, picture
        assert f"`{picture}`" in readme, picture


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED or NO_ARTEFACT)
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
    assert build_digits.knn_on_digits(encoder, card) == pytest.approx(
        recorded, abs=build_digits.KNN_TOLERANCE
    )

    import tensorflow as tf

    images = np.random.default_rng(7).uniform(size=(4, *card["input"]["image_shape"])).astype("float32")
    serving = tf.saved_model.load(os.path.join(directory, "saved_model")).signatures["serving_default"]
    mean, std = np.float32(card["preprocessing"]["mean"]), np.float32(card["preprocessing"]["std"])
    from_keras = keras.ops.convert_to_numpy(keras.ops.mean(encoder((images - mean) / std), axis=(1, 2)))
    assert relative_error(serving(images=tf.constant(images))["features"].numpy(), from_keras) <= REL_TOL


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("name", SHIPPED or NO_ARTEFACT)
def test_detector_on_a_loaded_shipped_encoder_uses_its_recorded_normalisation(name):
    """`detector(keras.models.load_model(".../encoder.keras"))` needs no `preprocessing=`, and its
    backbone normalises raw 0–255 pixels exactly as the SavedModel does for [0, 1] pixels."""
    import tensorflow as tf

    import keras_barlow

    directory = os.path.join(SAVEDMODELS, name)
    encoder = keras.models.load_model(os.path.join(directory, "encoder.keras"))
    model = keras_barlow.detector(encoder, num_classes=3, image_shape=(64, 64, 3), library="keras_hub")
    assert model.backbone.image_encoder is not None
    image_shape = tuple(export.read_model_card(directory)["input"]["image_shape"])
    backbone = keras_barlow.transfer_backbone(encoder, image_shape=image_shape)
    pixels = np.random.default_rng(3).uniform(0, 255, size=(2, *image_shape)).astype("float32")
    levels = {name: keras.ops.convert_to_numpy(v) for name, v in backbone(pixels).items()}
    # The level the encoder's own output feeds (a small-image stem ends at P3 at 16 px).
    last_stage = [v for v in levels.values() if v.shape[1:] == tuple(backbone.encoder.output.shape[1:])]
    features = last_stage[0].mean(axis=(1, 2))
    serving = tf.saved_model.load(os.path.join(directory, "saved_model")).signatures["serving_default"]
    expected = serving(images=tf.constant(pixels / 255.0))["features"].numpy()
    assert relative_error(features, expected) <= REL_TOL
    with pytest.raises(ValueError, match="differs from the normalisation"):
        keras_barlow.detector(encoder, num_classes=3, preprocessing={"mean": (0.5,) * 3, "std": (0.5,) * 3})
