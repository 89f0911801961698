"""The KerasHub preset of an export loads in a fresh process, on TensorFlow and on JAX."""

import json
import os
import textwrap

import keras
import numpy as np
import pytest
from helpers import relative_error

from keras_barlow import export
from tests.conftest import run_python
from tests.export.export_helpers import REL_TOL


@pytest.mark.tensorflow_only  # both backends in fresh processes: once is enough
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_backbone_and_classifier_from_preset_in_a_fresh_process(exported, tmp_path, backend):
    preset = os.path.join(exported["dir"], export.PRESET_DIR)
    card = exported["card"]
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 256, size=(4, *card["input"]["image_shape"])).astype("float32")
    normalized = (raw / 255.0 - np.float32(card["preprocessing"]["mean"])) / np.float32(
        card["preprocessing"]["std"]
    )
    np.save(tmp_path / "raw.npy", raw)
    np.save(tmp_path / "normalized.npy", normalized.astype("float32"))
    code = textwrap.dedent(
        f"""
        import json, numpy as np, keras, keras_hub
        import keras_barlow.export  # registers the classes the preset names
        assert keras.backend.backend() == {backend!r}
        preset, out = {preset!r}, {str(tmp_path)!r}
        backbone = keras_hub.models.Backbone.from_preset(preset)
        np.save(out + "/backbone.npy", keras.ops.convert_to_numpy(backbone(np.load(out + "/normalized.npy"))))
        classifier = keras_hub.models.ImageClassifier.from_preset(preset, num_classes=10)
        raw = np.load(out + "/raw.npy")
        features = classifier.pooler(classifier.backbone(classifier.preprocessor(raw)))
        np.save(out + "/classifier_features.npy", keras.ops.convert_to_numpy(features))
        print("INFO", json.dumps({{
            "backbone": type(backbone).__name__,
            "classifier": type(classifier).__name__,
            "record": keras_barlow.export.pretraining_preprocessing(backbone),
            "logits": list(classifier.predict(raw, verbose=0).shape),
        }}))
        """
    )
    info = json.loads(run_python(code, env={"KERAS_BACKEND": backend}).split("INFO", 1)[1])
    assert info["backbone"] == "PretrainedResNetBackbone"
    assert info["classifier"] == "PretrainedResNetImageClassifier"
    assert info["record"]["mean"] == card["preprocessing"]["mean"]
    assert info["logits"] == [len(raw), 10]

    # The backbone equals our encoder on the same normalised input ...
    expected_map = keras.ops.convert_to_numpy(exported["model"].encoder(normalized, training=False))
    assert relative_error(np.load(tmp_path / "backbone.npy"), expected_map) <= REL_TOL
    # ... and the classifier's preprocessing of raw 0-255 pixels gives the SavedModel's features.
    import tensorflow as tf

    serving = tf.saved_model.load(os.path.join(exported["dir"], "saved_model")).signatures["serving_default"]
    from_saved_model = serving(images=tf.constant(raw / 255.0, tf.float32))["features"].numpy()
    assert relative_error(np.load(tmp_path / "classifier_features.npy"), from_saved_model) <= REL_TOL


def test_image_converter_normalises_raw_pixels(exported):
    encoder = keras.models.load_model(os.path.join(exported["dir"], "encoder.keras"))
    converter = export.image_converter(encoder)
    raw = np.full((1, 32, 32, 3), 255.0, np.float32)
    white = (1.0 - np.float32(exported["card"]["preprocessing"]["mean"])) / np.float32(
        exported["card"]["preprocessing"]["std"]
    )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(converter(raw))[0, 0, 0], white, rtol=1e-6)
    with pytest.raises(ValueError, match="no pretraining normalisation"):
        from keras_barlow.backbones import resnet

        export.image_converter(resnet(18, (32, 32, 3), width=4))


# --- Stock KerasHub presets -------------------------------------------------------------

_BLOCKED_KERAS_BARLOW = "import sys\nsys.modules['keras_barlow'] = None  # `import keras_barlow` now fails\n"


def _randomised_statistics(encoder, seed):
    rng = np.random.default_rng(seed)
    for layer in encoder.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape).astype("float32"))


@pytest.mark.slow
@pytest.mark.parametrize("grayscale", [False, True], ids=["rgb", "grey"])
def test_imagenet_stem_resnet_preset_loads_with_stock_keras_hub_alone(tmp_path, grayscale):
    from keras_barlow import export_encoder, resnet
    from keras_barlow.export import pretraining_preprocessing
    from keras_barlow.export.preset import preset_needs_keras_barlow

    keras.utils.set_random_seed(0)
    encoder = resnet(18, (64, 64, 3), small_images=False, grayscale=grayscale)
    _randomised_statistics(encoder, seed=1)
    directory = tmp_path / "export"
    export_encoder(encoder, directory, metadata={"augmentation": "imagenet", "image_size": 64})
    preset = directory / "keras_hub_preset"
    assert not preset_needs_keras_barlow(preset)
    config = json.loads((preset / "config.json").read_text())
    assert config["registered_name"] == "keras_hub>ResNetBackbone"
    card = json.loads((directory / "model_card.json").read_text())
    assert card["files"]["keras_hub_preset"]["needs_keras_barlow"] is False

    images = np.random.default_rng(2).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    loaded = keras.models.load_model(directory / "encoder.keras")
    spec = pretraining_preprocessing(loaded)
    normalised = ((images / 255.0 - np.array(spec["mean"])) / np.array(spec["std"])).astype("float32")
    expected = keras.ops.convert_to_numpy(loaded(normalised))
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "normalised.npy", normalised)
    code = _BLOCKED_KERAS_BARLOW + textwrap.dedent(
        f"""
        import numpy as np, keras, keras_hub
        preset = {str(preset)!r}
        backbone = keras_hub.models.Backbone.from_preset(preset)
        classifier = keras_hub.models.ImageClassifier.from_preset(preset, num_classes=3)
        features = backbone(np.load({str(tmp_path / "normalised.npy")!r}))
        raw = np.load({str(tmp_path / "images.npy")!r})
        through_preprocessor = classifier.backbone(classifier.preprocessor(raw))
        np.save({str(tmp_path / "features.npy")!r}, keras.ops.convert_to_numpy(features))
        np.save({str(tmp_path / "preprocessed.npy")!r}, keras.ops.convert_to_numpy(through_preprocessor))
        print(type(backbone).__name__, type(classifier).__name__, sys.modules.get("keras_barlow"))
        """
    )
    out = run_python(code)
    assert "ResNetBackbone ResNetImageClassifier None" in out
    scale = np.abs(expected).max()
    assert np.abs(np.load(tmp_path / "features.npy") - expected).max() <= 1e-5 * scale
    assert np.abs(np.load(tmp_path / "preprocessed.npy") - expected).max() <= 1e-5 * scale


def test_small_image_presets_say_they_need_keras_barlow(tmp_path):
    from keras_barlow import export_encoder, resnet
    from keras_barlow.export.preset import preset_needs_keras_barlow

    encoder = resnet(18, (16, 16, 3), small_images=True, width=4)
    directory = tmp_path / "export"
    export_encoder(encoder, directory, metadata={"augmentation": "digits", "image_size": 16})
    preset = directory / "keras_hub_preset"
    assert preset_needs_keras_barlow(preset)
    metadata = json.loads((preset / "metadata.json").read_text())["keras_barlow"]
    assert metadata["load"].startswith("pip install keras-barlow; import keras_barlow;")
    card = json.loads((directory / "model_card.json").read_text())
    assert card["files"]["keras_hub_preset"]["needs_keras_barlow"] is True
    code = _BLOCKED_KERAS_BARLOW + textwrap.dedent(
        f"""
        import keras_hub
        try:
            keras_hub.models.Backbone.from_preset({str(preset)!r})
        except Exception as error:
            print("refused:", error)
        """
    )
    assert "refused:" in run_python(code) and "PretrainedResNetBackbone" in run_python(code)
