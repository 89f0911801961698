"""Detector and segmenter construction on KerasCV and KerasHub: argument errors, frozen
encoders, saving, and training on JAX."""

import os

import keras
import numpy as np
import pytest
from helpers import REPO, relative_error

import keras_barlow  # (also registers the classes saved models name)
from keras_barlow import _compat, transfer
from keras_barlow.backbones import resnet

BACKEND = keras.backend.backend()
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


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


# --- bad input, as a new user gives it: an error naming the problem and the fix -------------

IDENTITY = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}


@pytest.mark.parametrize(("library", "size"), [("keras_cv", 64), ("keras_hub", 32)])
def test_detector_on_a_small_images_encoder_predicts(library, size):
    model = keras_barlow.detector(
        resnet(18, width=4, small_images=True),
        num_classes=3,
        library=library,
        image_shape=(size, size, 3),
        preprocessing=IDENTITY,
    )
    predictions = model.predict(np.zeros((1, size, size, 3), "float32"), verbose=0)
    assert predictions


@pytest.mark.parametrize("library", ["keras_cv", "keras_hub"])
def test_a_bounding_box_format_typo_is_refused_when_built(library):
    with pytest.raises(ValueError, match=r"bounding_box_format must be one of \(.*'xywh'.*\), got 'xywhh'"):
        keras_barlow.detector(
            resnet(18, width=4),
            num_classes=3,
            library=library,
            bounding_box_format="xywhh",
            preprocessing=IDENTITY,
        )


def test_every_accepted_bounding_box_format_is_one_the_libraries_convert():
    import keras_cv

    from keras_barlow.transfer.tasks import BOUNDING_BOX_FORMATS

    boxes = np.array([[[2.0, 4.0, 10.0, 12.0]]], "float32")
    for box_format in BOUNDING_BOX_FORMATS:  # KerasCV's converter, and Keras's (which KerasHub uses)
        by_keras_cv = keras_cv.bounding_box.convert_format(
            boxes, source="xyxy", target=box_format, images=np.zeros((1, 16, 16, 3), "float32")
        )
        by_keras = keras.utils.bounding_boxes.convert_format(
            boxes, source="xyxy", target=box_format, height=16, width=16
        )
        np.testing.assert_allclose(np.asarray(by_keras_cv), np.asarray(by_keras), err_msg=box_format)


@pytest.mark.parametrize("num_classes", [0, 2.5, True, "3"])
def test_detector_num_classes_must_be_a_positive_integer(num_classes):
    with pytest.raises(ValueError, match=r"num_classes must be a positive integer, got"):
        keras_barlow.detector(resnet(18, width=4), num_classes=num_classes, preprocessing=IDENTITY)


def test_a_one_class_segmenter_is_refused():
    with pytest.raises(ValueError, match=r"num_classes counts the background too.*at least 2, got 1"):
        keras_barlow.segmenter(resnet(18, width=4), num_classes=1, preprocessing=IDENTITY)


# --- Any image size from a loaded export -------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "library",
    [pytest.param("keras_cv", marks=pytest.mark.tensorflow_only), "keras_hub"],
)
@pytest.mark.parametrize("make", ["detector", "segmenter"])
@pytest.mark.parametrize("size", [64, 128])
def test_tasks_from_a_loaded_export_predict_at_any_multiple_of_32(library, make, size):
    import keras_barlow

    encoder = keras.models.load_model(os.path.join(REPO, "savedmodels", "digits", "encoder.keras"))
    assert tuple(encoder.inputs[0].shape[1:]) == (16, 16, 3)  # pinned to the pretraining size
    model = getattr(keras_barlow, make)(encoder, num_classes=3, library=library)
    images = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")
    out = model.predict(images, verbose=0)
    if make == "segmenter":
        assert out.shape == (1, size, size, 3)
    else:
        assert out["boxes"].shape[:2] == (1, 100)


@pytest.mark.parametrize(
    "library", [pytest.param("keras_cv", marks=pytest.mark.tensorflow_only), "keras_hub"]
)
def test_sizes_that_are_not_multiples_of_32_are_refused_at_the_first_call(library):
    import keras_barlow

    encoder = keras.models.load_model(os.path.join(REPO, "savedmodels", "digits", "encoder.keras"))
    model = keras_barlow.segmenter(encoder, num_classes=3, library=library)
    with pytest.raises(ValueError, match=r"width 50 is not a multiple of 32.*resize or pad to 32 or 64"):
        model.predict(np.zeros((1, 64, 50, 3), "float32"), verbose=0)
