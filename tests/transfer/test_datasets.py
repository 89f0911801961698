"""The recipes' TFDS loading (VOC boxes, Pets trimaps) on mock data."""

import numpy as np
import pytest

import keras_barlow  # noqa: F401
from keras_barlow import transfer
from keras_barlow.transfer import datasets


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("bounding_box_format", ["xywh", "xyxy", "yxyx"])
def test_voc_example_converts_relative_boxes_to_pixels(bounding_box_format):
    import tensorflow as tf

    bbox = np.array(
        [[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.75, 1.0]], np.float32
    )  # ymin xmin ymax xmax
    example = {
        "image": tf.constant(np.random.default_rng(0).integers(0, 256, size=(40, 30, 3)), tf.uint8),
        "objects": {"bbox": tf.constant(bbox), "label": tf.constant([3, 7, 19], tf.int64)},
    }
    image, targets = datasets.voc_example(
        example, image_size=64, bounding_box_format=bounding_box_format, max_boxes=2
    )
    assert image.shape == (64, 64, 3) and image.dtype == tf.float32
    ymin, xmin, ymax, xmax = (bbox[:2] * 64).T
    expected = {
        "xywh": np.stack([xmin, ymin, xmax - xmin, ymax - ymin], -1),
        "xyxy": np.stack([xmin, ymin, xmax, ymax], -1),
        "yxyx": np.stack([ymin, xmin, ymax, xmax], -1),
    }[bounding_box_format]
    np.testing.assert_allclose(targets["boxes"].numpy(), expected, rtol=1e-6)  # truncated to max_boxes=2
    np.testing.assert_array_equal(targets["classes"].numpy(), [3, 7])
    _, padded = datasets.voc_example(
        example, image_size=64, bounding_box_format=bounding_box_format, max_boxes=5
    )
    np.testing.assert_array_equal(padded["classes"].numpy(), [3, 7, 19, -1, -1])
    np.testing.assert_array_equal(padded["boxes"].numpy()[3:], -1)


@pytest.mark.tensorflow_only
def test_voc_loading_with_mock_tfds_feeds_a_yolov8_detector(encoder_dir):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        dataset = datasets.voc_dataset("train", image_size=64, batch_size=2, max_boxes=6, seed=0)
        images, targets = next(iter(dataset))
    assert (
        images.shape == (2, 64, 64, 3)
        and targets["boxes"].shape == (2, 6, 4)
        and targets["classes"].shape == (2, 6)
    )
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
    _, mask = datasets.pets_example(example, image_size=4)
    expected = np.kron(np.array([[1, 0], [2, 0]]), np.ones((2, 2), int))[
        ..., None
    ]  # pet 1, background 0, border 2
    np.testing.assert_array_equal(mask.numpy(), expected)
    with tfds.testing.mock_data(num_examples=3):
        images, masks = next(iter(datasets.pets_dataset("train", image_size=32, batch_size=2)))
    assert images.shape == (2, 32, 32, 3) and masks.shape == (2, 32, 32, 1) and masks.dtype == tf.int32
    assert set(np.unique(masks.numpy())) <= {0, 1, 2}
