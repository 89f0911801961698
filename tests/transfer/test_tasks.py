"""Detector and segmenter construction on KerasCV and KerasHub: argument errors, frozen
encoders, saving, and training on JAX."""

import keras
import numpy as np
import pytest

import keras_barlow  # noqa: F401  (registers the classes saved models name)
from keras_barlow import _compat, transfer

BACKEND = keras.backend.backend()
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def relative_error(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30))


def test_argument_errors(encoder_dir):
    with pytest.raises(ValueError, match="YOLOv8 exists only in KerasCV"):
        transfer.detector(encoder_dir, 3, kind="yolov8", library="keras_hub")
    with pytest.raises(ValueError, match="kind must be one of"):
        transfer.detector(encoder_dir, 3, kind="ssd")
    with pytest.raises(ValueError, match="library must be one of"):
        transfer.segmenter(encoder_dir, 3, library="torchvision")
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        transfer.detector(encoder_dir, 0)
    with pytest.raises(ValueError, match="at least 2"):
        transfer.segmenter(encoder_dir, 1)
    with pytest.raises(ValueError, match="head_conv_layers applies to RetinaNet"):
        transfer.detector(encoder_dir, 3, kind="yolov8", head_conv_layers=1)
    inputs = keras.Input((32, 32, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match="no `pyramid_outputs`"):
        transfer.detector(plain, 3, preprocessing="imagenet")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        transfer.detector("/nonexistent/encoder", 3)


@pytest.mark.parametrize("library", ["keras_cv", "keras_hub"])
def test_freeze_encoder_keeps_pretrained_weights_out_of_training(encoder_dir, library):
    model = transfer.segmenter(encoder_dir, 3, library=library, freeze_encoder=True)
    trainable = {id(v) for v in model.trainable_weights}
    backbone = _transfer_backbone_of(model)
    assert backbone.encoder.weights and not {id(v) for v in backbone.encoder.weights} & trainable
    assert len(model.trainable_weights) > 0  # the decoder trains


def _transfer_backbone_of(model):
    for layer in _compat.flatten_layers(model):
        if isinstance(layer, transfer.TransferBackbone):
            return layer
    raise AssertionError("no TransferBackbone inside the model")


def test_segmenter_round_trips_through_keras_file(encoder_dir, tmp_path):
    model = transfer.segmenter(encoder_dir, 3, library="keras_hub")
    images = np.random.default_rng(1).uniform(0, 255, size=(2, 64, 64, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(images))
    model.save(tmp_path / "segmenter.keras")
    loaded = keras.models.load_model(tmp_path / "segmenter.keras", safe_mode=True)
    assert relative_error(keras.ops.convert_to_numpy(loaded(images)), expected) <= 1e-5
    backbone = _transfer_backbone_of(loaded)
    assert backbone.mean == MEAN and backbone.max_pixel_value == 255.0


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "jax", reason="the TensorFlow pass trains these end to end below")
def test_keras_hub_detector_and_segmenter_train_on_jax(encoder_dir):
    data = transfer.shapes_dataset(4, image_size=64, max_objects=1, size_range=(0.4, 0.7))
    detector = transfer.detector(encoder_dir, 3, library="keras_hub", head_conv_layers=1)
    transfer.compile_detector(detector, keras.optimizers.Adam(1e-3))
    targets = transfer.detection_targets(data["boxes"], data["classes"], "keras_hub")
    # `fit`, not `train_on_batch`: KerasHub 0.32's PipelineModel.train_on_batch converts a
    # dict of targets with ops.convert_to_tensor, which fails on JAX.
    losses = detector.fit(data["images"], targets, batch_size=4, epochs=2, verbose=0).history["loss"]
    assert len(losses) == 2 and all(np.isfinite(losses))
    segmenter = transfer.compile_segmenter(
        transfer.segmenter(encoder_dir, 4, library="keras_hub"), keras.optimizers.Adam(1e-3)
    )
    logs = segmenter.train_on_batch(data["images"], data["masks"], return_dict=True)
    assert np.isfinite(float(logs["loss"]))
