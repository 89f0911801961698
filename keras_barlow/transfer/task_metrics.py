"""Evaluation of transfer models: COCO box mAP of a detector, mean IoU of a segmenter."""

import keras
import numpy as np


def evaluate_detector(
    model, images, boxes, classes, *, bounding_box_format="xywh", batch_size=8, confidence_threshold=0.05
):
    """COCO box metrics (KerasCV `BoxCOCOMetrics`) of a detector on a labelled set.

    Predictions are decoded with the model's own non-max suppression, its confidence
    threshold lowered to `confidence_threshold` for the evaluation (COCO evaluations keep
    low-confidence detections: they rank below the others and only add recall).

    Args:
        model: a detector from `detector(...)` (either library).
        images: `(n, h, w, 3)` pixels.
        boxes, classes: ground truth, padded with -1.
        bounding_box_format: format of `boxes` and of the model's predictions.
        batch_size: prediction batch size.
        confidence_threshold: lowest confidence of a detection that counts; `None` keeps
            the model's threshold.

    Returns:
        dict of floats: `MaP`, `MaP@[IoU=50]`, `MaP@[IoU=75]`, `Recall@[max_detections=100]`, ...
    """
    import keras_cv

    decoder = model.prediction_decoder
    swap = confidence_threshold is not None and decoder.confidence_threshold != float(confidence_threshold)
    if swap:
        set_confidence_threshold(model, confidence_threshold)
    try:
        predictions = model.predict(images, batch_size=batch_size, verbose=0)
    finally:
        if swap:
            model.prediction_decoder = decoder
    labels = predictions["classes"] if "classes" in predictions else predictions["labels"]
    y_pred = {
        "boxes": np.asarray(keras.ops.convert_to_numpy(predictions["boxes"]), "float32"),
        "classes": np.asarray(keras.ops.convert_to_numpy(labels), "float32"),
        "confidence": np.asarray(keras.ops.convert_to_numpy(predictions["confidence"]), "float32"),
    }
    # Detections beyond num_detections are padding.
    num = np.asarray(keras.ops.convert_to_numpy(predictions["num_detections"])).reshape(-1)
    valid = np.arange(y_pred["classes"].shape[1])[None, :] < num[:, None]
    y_pred["classes"] = np.where(valid, y_pred["classes"], -1.0).astype("float32")
    y_pred["confidence"] = np.where(valid, y_pred["confidence"], -1.0).astype("float32")
    metric = keras_cv.metrics.BoxCOCOMetrics(bounding_box_format=bounding_box_format, evaluate_freq=1)
    metric.update_state(
        {"boxes": np.asarray(boxes, "float32"), "classes": np.asarray(classes, "float32")},
        y_pred,
    )
    return {name: float(value) for name, value in metric.result(force=True).items()}


def set_confidence_threshold(model, confidence_threshold):
    """Gives a detector a copy of its non-max suppression with another confidence threshold.

    Both libraries default to 0.5, which hides every detection of a freshly initialised
    RetinaNet (its scores start at 0.01); evaluations use 0.05. Setting it once before
    repeated evaluations avoids re-tracing the prediction function each time.

    Returns:
        The model.
    """
    config = model.prediction_decoder.get_config()
    config["confidence_threshold"] = float(confidence_threshold)
    model.prediction_decoder = type(model.prediction_decoder).from_config(config)
    return model


def mean_iou(model, images, masks, num_classes, *, batch_size=8):
    """Mean intersection-over-union of a segmenter's argmax prediction.

    The mean runs over the classes present in the masks or the predictions (a class
    absent from both has no defined IoU).

    Args:
        model: a segmenter from `segmenter(...)`.
        images: `(n, h, w, 3)` pixels.
        masks: `(n, h, w)` or `(n, h, w, 1)` integer class ids.
        num_classes: number of classes, background included.
        batch_size: prediction batch size.

    Returns:
        float in [0, 1].
    """
    probabilities = keras.ops.convert_to_numpy(model.predict(images, batch_size=batch_size, verbose=0))
    return mean_iou_from_labels(np.asarray(masks), probabilities.argmax(-1), num_classes)


def mean_iou_from_labels(truth, predicted, num_classes):
    """Mean IoU over the classes present in `truth` or `predicted` (integer arrays).

    Args:
        truth, predicted: integer class ids of the same shape.
        num_classes: number of classes, background included.

    Returns:
        float in [0, 1].

    Example (class 0: IoU 2/4, class 1: 3/4, class 2: 1/2; class 3 is absent):
    >>> truth = [[0, 0, 1, 1], [0, 2, 2, 1]]
    >>> predicted = [[0, 1, 1, 1], [0, 2, 0, 1]]
    >>> round(mean_iou_from_labels(truth, predicted, num_classes=4), 4)
    0.5833
    """
    truth = np.asarray(truth).reshape(-1).astype(np.int64)
    predicted = np.asarray(predicted).reshape(-1).astype(np.int64)
    confusion = np.bincount(truth * num_classes + predicted, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )
    intersection = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = union > 0
    return float(np.mean(intersection[present] / union[present]))
