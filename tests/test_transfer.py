"""Transfer: the backbone the heads see (normalisation, pyramid), preprocessing from the
model card, detector/segmenter construction on KerasCV and KerasHub, the generated shapes
data, the recipes' TFDS loading (mock data), and end-to-end fine-tuning that improves
mAP / mean IoU."""

import os
import sys

import keras
import numpy as np
import pytest

import keras_barlow  # noqa: F401  (registers the classes saved models name)
from keras_barlow import export, transfer
from keras_barlow.backbones import resnet

RECIPES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes")
sys.path.insert(0, RECIPES)

import transfer_detection  # noqa: E402
import transfer_segmentation  # noqa: E402

BACKEND = keras.backend.backend()
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def relative_error(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30))


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """A tiny random ResNet-18 (ImageNet stem) exported with ImageNet normalisation."""
    keras.utils.set_random_seed(0)
    directory = str(tmp_path_factory.mktemp("transfer") / "encoder")
    export.export_encoder(resnet(18, (None, None, 3), width=4), directory, metadata={"image_size": 64, "augmentation": "imagenet"})
    return directory


def numpy_maxpool2(x):
    n, h, w, c = x.shape
    padded = np.full((n, h + h % 2, w + w % 2, c), -np.inf, x.dtype)
    padded[:, :h, :w] = x
    return padded.reshape(n, padded.shape[1] // 2, 2, padded.shape[2] // 2, 2, c).max(axis=(2, 4))


# ---------------------------------------------------------------------------------------
# TransferBackbone


@pytest.mark.parametrize("small_images", [False, True])
def test_backbone_normalises_as_pretraining_and_exposes_p2_to_p5(small_images):
    keras.utils.set_random_seed(0)
    encoder = resnet(18, (None, None, 3), width=4, small_images=small_images)
    backbone = transfer.TransferBackbone(encoder, mean=MEAN, std=STD, max_pixel_value=255.0)
    images = np.random.default_rng(0).uniform(0, 255, size=(2, 64, 64, 3)).astype("float32")
    got = {k: keras.ops.convert_to_numpy(v) for k, v in backbone(images).items()}

    # Reference: NumPy normalisation, then the encoder's own pyramid; missing deep levels
    # are 2x2 max-pools of the previous one.
    pyramid = keras.Model(encoder.inputs, encoder.pyramid_outputs)
    normalized = (images / 255.0 - np.float32(MEAN)) / np.float32(STD)
    expected = {k: keras.ops.convert_to_numpy(v) for k, v in pyramid(normalized).items()}
    for n in range(2, 6):
        level = f"P{n}"
        if level not in expected:
            expected[level] = numpy_maxpool2(expected[f"P{n - 1}"])
        assert got[level].shape[1:3] == (64 // 2**n, 64 // 2**n), level
        assert relative_error(got[level], expected[level]) <= 1e-5, level
    assert sorted(backbone.pyramid_outputs) == ["P2", "P3", "P4", "P5"]
    assert backbone.pyramid_level_inputs == {f"P{n}": f"P{n}" for n in range(2, 6)}
    # Shared weights: the encoder's variables are the backbone's.
    assert {id(v) for v in encoder.weights} <= {id(v) for v in backbone.weights}


def test_fixed_size_encoder_is_rebuilt_for_the_detection_size():
    keras.utils.set_random_seed(0)
    encoder = resnet(18, (32, 32, 3), width=4)
    backbone = transfer.transfer_backbone(encoder, preprocessing="imagenet", image_shape=(64, 64, 3))
    assert tuple(backbone.encoder.inputs[0].shape[1:]) == (64, 64, 3)
    for a, b in zip(backbone.encoder.get_weights(), encoder.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------
# Preprocessing from the model card


def test_preprocessing_comes_from_the_card_and_mismatches_are_errors(encoder_dir):
    encoder, spec = transfer.resolve_encoder(encoder_dir)
    card = export.read_model_card(encoder_dir)
    assert spec == {"mean": tuple(card["preprocessing"]["mean"]), "std": tuple(card["preprocessing"]["std"])}
    loaded = export.load_encoder(encoder_dir)
    assert transfer.resolve_encoder(loaded)[1] == spec  # load_encoder remembers the card
    assert transfer.resolve_encoder(loaded, preprocessing="imagenet")[1] == spec  # agrees: fine
    with pytest.raises(ValueError, match="differs from the model card"):
        transfer.resolve_encoder(encoder_dir, preprocessing={"mean": (0.5,) * 3, "std": (0.5,) * 3})
    with pytest.raises(ValueError, match="no preprocessing is known"):
        transfer.resolve_encoder(resnet(18, (None, None, 3), width=4))
    backbone = transfer.transfer_backbone(encoder_dir)
    assert backbone.mean == spec["mean"] and backbone.std == spec["std"]


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
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, transfer.TransferBackbone):
            return layer
    raise AssertionError("no TransferBackbone inside the model")


# ---------------------------------------------------------------------------------------
# Generated data and metrics


def test_shapes_dataset_is_deterministic_and_consistent():
    data = transfer.shapes_dataset(12, image_size=64, max_objects=2, seed=5)
    again = transfer.shapes_dataset(12, image_size=64, max_objects=2, seed=5)
    for key in data:
        np.testing.assert_array_equal(data[key], again[key])
    assert data["images"].shape == (12, 64, 64, 3) and data["images"].dtype == np.float32
    assert 0 <= data["images"].min() and data["images"].max() <= 255
    assert data["masks"].shape == (12, 64, 64, 1)
    for i in range(12):
        mask = data["masks"][i, ..., 0]
        objects = data["classes"][i] >= 0
        assert 1 <= objects.sum() <= 2
        assert np.all(data["boxes"][i][~objects] == -1)
        covered = np.zeros_like(mask, bool)
        for (x, y, w, h), cls in zip(data["boxes"][i][objects], data["classes"][i][objects]):
            x, y, w, h = (int(v) for v in (x, y, w, h))
            region = mask[y : y + h, x : x + w] == cls + 1
            # Tight box: the shape touches all four sides of its box.
            assert region[0].any() and region[-1].any() and region[:, 0].any() and region[:, -1].any()
            covered[y : y + h, x : x + w] |= region
        assert np.array_equal(covered, mask > 0)  # every shape pixel lies in its box


def test_mean_iou_matches_a_hand_count():
    truth = np.array([[0, 0, 1, 1], [0, 2, 2, 1]])
    predicted = np.array([[0, 1, 1, 1], [0, 2, 0, 1]])
    # class 0: inter 2 (0,0),(1,0); union 4 -> 0.5. class 1: inter 3, union 4 -> 0.75.
    # class 2: inter 1, union 2 -> 0.5. class 3 absent from both: skipped.
    assert transfer.mean_iou_from_labels(truth, predicted, 4) == pytest.approx((0.5 + 0.75 + 0.5) / 3)


# ---------------------------------------------------------------------------------------
# Saving a transfer model


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
    segmenter = transfer.compile_segmenter(transfer.segmenter(encoder_dir, 4, library="keras_hub"), keras.optimizers.Adam(1e-3))
    logs = segmenter.train_on_batch(data["images"], data["masks"], return_dict=True)
    assert np.isfinite(float(logs["loss"]))


# ---------------------------------------------------------------------------------------
# Recipes: TFDS loading code (mock data), then end-to-end fine-tuning on shapes


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("bounding_box_format", ["xywh", "xyxy", "yxyx"])
def test_voc_example_converts_relative_boxes_to_pixels(bounding_box_format):
    import tensorflow as tf

    bbox = np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.75, 1.0]], np.float32)  # ymin xmin ymax xmax
    example = {
        "image": tf.constant(np.random.default_rng(0).integers(0, 256, size=(40, 30, 3)), tf.uint8),
        "objects": {"bbox": tf.constant(bbox), "label": tf.constant([3, 7, 19], tf.int64)},
    }
    image, targets = transfer_detection.voc_example(example, image_size=64, bounding_box_format=bounding_box_format, max_boxes=2)
    assert image.shape == (64, 64, 3) and image.dtype == tf.float32
    ymin, xmin, ymax, xmax = (bbox[:2] * 64).T
    expected = {
        "xywh": np.stack([xmin, ymin, xmax - xmin, ymax - ymin], -1),
        "xyxy": np.stack([xmin, ymin, xmax, ymax], -1),
        "yxyx": np.stack([ymin, xmin, ymax, xmax], -1),
    }[bounding_box_format]
    np.testing.assert_allclose(targets["boxes"].numpy(), expected, rtol=1e-6)  # truncated to max_boxes=2
    np.testing.assert_array_equal(targets["classes"].numpy(), [3, 7])
    _, padded = transfer_detection.voc_example(example, image_size=64, bounding_box_format=bounding_box_format, max_boxes=5)
    np.testing.assert_array_equal(padded["classes"].numpy(), [3, 7, 19, -1, -1])
    np.testing.assert_array_equal(padded["boxes"].numpy()[3:], -1)


@pytest.mark.tensorflow_only
def test_voc_loading_with_mock_tfds_feeds_a_yolov8_detector(encoder_dir):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        dataset = transfer_detection.voc_dataset("train", image_size=64, batch_size=2, max_boxes=6, seed=0)
        images, targets = next(iter(dataset))
    assert images.shape == (2, 64, 64, 3) and targets["boxes"].shape == (2, 6, 4) and targets["classes"].shape == (2, 6)
    classes = targets["classes"].numpy()
    assert np.all((classes == -1) | ((classes >= 0) & (classes < 20)))
    # A YOLOv8 forward pass on the batch (training YOLOv8 traces for minutes on 2 CPU
    # cores; the RetinaNet recipes below train end to end).
    detector = transfer.detector(encoder_dir, 20, kind="yolov8", fpn_depth=1, image_shape=(64, 64, 3))
    outputs = detector(images)
    anchors = sum((64 // stride) ** 2 for stride in (8, 16, 32))
    assert outputs["boxes"].shape[:2] == (2, anchors) and outputs["classes"].shape == (2, anchors, 20)


@pytest.mark.tensorflow_only
def test_pets_loading_with_mock_tfds_relabels_the_trimap():
    import tensorflow as tf
    import tensorflow_datasets as tfds

    trimap = np.array([[1, 2], [3, 2]], np.uint8)[..., None]
    example = {"image": tf.zeros((2, 2, 3), tf.uint8), "segmentation_mask": tf.constant(trimap)}
    _, mask = transfer_segmentation.pets_example(example, image_size=4)
    expected = np.kron(np.array([[1, 0], [2, 0]]), np.ones((2, 2), int))[..., None]  # pet 1, background 0, border 2
    np.testing.assert_array_equal(mask.numpy(), expected)
    with tfds.testing.mock_data(num_examples=3):
        images, masks = next(iter(transfer_segmentation.pets_dataset("train", image_size=32, batch_size=2)))
    assert images.shape == (2, 32, 32, 3) and masks.shape == (2, 32, 32, 1) and masks.dtype == tf.int32
    assert set(np.unique(masks.numpy())) <= {0, 1, 2}


@pytest.mark.slow
@pytest.mark.tensorflow_only
@pytest.mark.parametrize("library", ["keras_cv", "keras_hub"])
def test_detection_recipe_fine_tunes_on_shapes(encoder_dir, library, tmp_path):
    metrics = transfer_detection.main(
        ["--encoder", encoder_dir, "--smoke", "--library", library, "--epochs", "6", "--output-dir", str(tmp_path), "--verbose", "0"]
    )
    before, after = metrics["before"], metrics["after"]
    assert before["MaP"] < 0.01  # untrained heads: (almost) nothing above the threshold
    assert after["MaP"] > before["MaP"] + 0.03 and after["MaP@[IoU=50]"] > 0.1, metrics
    assert metrics["loss"][-1] < metrics["loss"][0]
    assert (tmp_path / "metrics.json").exists()


@pytest.mark.slow
@pytest.mark.tensorflow_only
@pytest.mark.parametrize("library", ["keras_cv", "keras_hub"])
def test_segmentation_recipe_fine_tunes_on_shapes(encoder_dir, library, tmp_path):
    metrics = transfer_segmentation.main(
        ["--encoder", encoder_dir, "--smoke", "--library", library, "--epochs", "4", "--output-dir", str(tmp_path), "--verbose", "0"]
    )
    assert metrics["after"]["mean_iou"] > metrics["before"]["mean_iou"] + 0.15, metrics
    assert metrics["loss"][-1] < metrics["loss"][0]
