"""The KerasHub preset of an export loads in a fresh process, on TensorFlow and on JAX."""

import json
import os
import textwrap

import keras
import numpy as np
import pytest

from keras_barlow import export
from tests.conftest import run_python
from tests.export.export_helpers import REL_TOL, relative_error


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
