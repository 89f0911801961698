"""Detection and segmentation task models on a pretrained encoder, and their compilation.

`detector` builds KerasCV's `RetinaNet` or `YOLOV8Detector`, or KerasHub's
`RetinaNetObjectDetector`; `segmenter` builds KerasCV's `DeepLabV3Plus` or KerasHub's
`DeepLabV3ImageSegmenter`. Both put the encoder behind a `TransferBackbone`
(`keras_barlow.transfer.backbone`). KerasCV (frozen since 2024) has YOLOv8 and runs on
TensorFlow; KerasHub is its maintained successor and the one to prefer on JAX.

Example:

```python
model = keras_barlow.transfer.detector("savedmodels/digits", num_classes=20)  # KerasCV RetinaNet
keras_barlow.transfer.compile_detector(model, "adam")
model.fit(images_0_255, {"boxes": boxes, "classes": classes})
```
"""

import keras
import keras_hub
import numpy as np

from keras_barlow import _compat
from keras_barlow.transfer.backbone import PYRAMID_STRIDE, check_task_image_shape, transfer_backbone

LIBRARIES = ("keras_cv", "keras_hub")
DETECTOR_KINDS = ("retinanet", "yolov8")
# The box formats KerasCV and KerasHub both convert (`bounding_box.convert_format`).
BOUNDING_BOX_FORMATS = (
    "xywh",
    "xyxy",
    "yxyx",
    "center_xywh",
    "center_yxhw",
    "rel_xywh",
    "rel_xyxy",
    "rel_yxyx",
)


def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_num_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return int(num_classes)


def _task_backbone(encoder, preprocessing, freeze_encoder, max_pixel_value, image_shape):
    """The `TransferBackbone` under a detector or a segmenter (see `transfer_backbone`)."""
    image_shape = check_task_image_shape(image_shape)
    return transfer_backbone(
        encoder,
        preprocessing=preprocessing,
        freeze_encoder=freeze_encoder,
        max_pixel_value=max_pixel_value,
        image_shape=image_shape,
        size_multiple=PYRAMID_STRIDE,
    )


def detector(
    encoder,
    num_classes,
    *,
    kind="retinanet",
    library="keras_cv",
    bounding_box_format="xywh",
    freeze_encoder=False,
    preprocessing=None,
    max_pixel_value=255.0,
    image_shape=(None, None, 3),
    head_conv_layers=None,
    **task_kwargs,
):
    """An object detector on a pretrained encoder.

    Args:
        encoder: an export directory, a `BarlowTwins` model or an encoder with
            `pyramid_outputs`.
        num_classes: number of object classes (no background class).
        kind: `"retinanet"` or `"yolov8"` (KerasCV only).
        library: `"keras_cv"` (`RetinaNet`, `YOLOV8Detector`) or `"keras_hub"`
            (`RetinaNetObjectDetector`).
        bounding_box_format: format of your boxes, e.g. `"xywh"`, `"xyxy"`, `"yxyx"`.
        freeze_encoder: keep the pretrained weights fixed.
        preprocessing: see `resolve_encoder` (default: the model card's).
        max_pixel_value: value of a white pixel in the images you feed (255 or 1.0).
        image_shape: input shape; sizes must be multiples of 32 (see `check_task_image_shape`).
        head_conv_layers: RetinaNet only: 3×3 convolutions in each prediction head before
            its output (default: the library's, 3 in KerasCV and 4 in KerasHub); 1 makes a
            light detector for small images or CPUs.
        **task_kwargs: passed to the task class (e.g. `fpn_depth` for YOLOv8).

    Returns:
        An uncompiled task model. Targets: KerasCV `{"boxes", "classes"}`, KerasHub
        `{"boxes", "labels"}` (pad with class -1; `detection_targets` builds either).

    Example:

    ```python
    model = detector("savedmodels/digits", num_classes=20, library="keras_hub")
    model.compile(optimizer="adam")  # KerasHub: focal + Huber losses by default
    ```
    """
    _check_choice(kind, "kind", DETECTOR_KINDS)
    _check_choice(library, "library", LIBRARIES)
    _check_choice(bounding_box_format, "bounding_box_format", BOUNDING_BOX_FORMATS)
    num_classes = _check_num_classes(num_classes)
    if kind == "yolov8" and library == "keras_hub":
        raise ValueError(
            "YOLOv8 exists only in KerasCV (KerasHub has no YOLOv8 detector): use library='keras_cv' with "
            "kind='yolov8', or kind='retinanet' with library='keras_hub'"
        )
    backbone = _task_backbone(encoder, preprocessing, freeze_encoder, max_pixel_value, image_shape)
    if head_conv_layers is not None:
        if kind != "retinanet":
            raise ValueError("head_conv_layers applies to RetinaNet heads only; for YOLOv8 use fpn_depth")
        if (
            isinstance(head_conv_layers, bool)
            or not isinstance(head_conv_layers, int)
            or head_conv_layers < 0
        ):
            raise ValueError(f"head_conv_layers must be a non-negative integer, got {head_conv_layers!r}")
    if library == "keras_cv":
        import keras_cv

        if kind == "yolov8":
            return keras_cv.models.YOLOV8Detector(
                backbone=backbone,
                num_classes=num_classes,
                bounding_box_format=bounding_box_format,
                **task_kwargs,
            )
        if head_conv_layers is not None:
            # KerasCV's defaults, with the number of convolutions changed.
            prior = keras.initializers.Constant(-np.log((1 - 0.01) / 0.01))
            task_kwargs.setdefault(
                "classification_head",
                keras_cv.models.retinanet.PredictionHead(
                    output_filters=9 * num_classes, bias_initializer=prior, num_conv_layers=head_conv_layers
                ),
            )
            task_kwargs.setdefault(
                "box_head",
                keras_cv.models.retinanet.PredictionHead(
                    output_filters=9 * 4,
                    bias_initializer=keras.initializers.Zeros(),
                    num_conv_layers=head_conv_layers,
                ),
            )
        return keras_cv.models.RetinaNet(
            backbone=backbone, num_classes=num_classes, bounding_box_format=bounding_box_format, **task_kwargs
        )
    if head_conv_layers is not None:
        task_kwargs.setdefault("pre_logits_num_conv_layers", head_conv_layers)
    fpn = keras_hub.models.RetinaNetBackbone(
        image_encoder=backbone, min_level=3, max_level=7, use_p5=False, image_shape=tuple(image_shape)
    )
    model = keras_hub.models.RetinaNetObjectDetector(
        backbone=fpn, num_classes=num_classes, bounding_box_format=bounding_box_format, **task_kwargs
    )
    _compat.fix_keras_hub_retinanet_head_bias(model)
    return model


def segmenter(
    encoder,
    num_classes,
    *,
    library="keras_cv",
    freeze_encoder=False,
    preprocessing=None,
    max_pixel_value=255.0,
    image_shape=(None, None, 3),
    **task_kwargs,
):
    """A semantic segmenter (DeepLabV3+) on a pretrained encoder.

    Both libraries give per-pixel class probabilities (softmax), `(batch, h, w, num_classes)`:
    train with `SparseCategoricalCrossentropy()` on integer masks `(batch, h, w, 1)`, and
    name the metrics (KerasHub's default `compile` metric expects one-hot masks), e.g.
    `compile_segmenter(model)`.

    Args:
        encoder: an export directory, a `BarlowTwins` model or an encoder.
        num_classes: number of classes, background included.
        library: `"keras_cv"` (`DeepLabV3Plus`) or `"keras_hub"` (`DeepLabV3ImageSegmenter`).
        freeze_encoder: keep the pretrained weights fixed.
        preprocessing: see `resolve_encoder` (default: the model card's).
        max_pixel_value: value of a white pixel in the images you feed (255 or 1.0).
        image_shape: input shape; sizes must be multiples of 32 (see `check_task_image_shape`).
        **task_kwargs: passed to the task class.

    Returns:
        An uncompiled task model.

    Example:

    ```python
    model = segmenter("savedmodels/digits", num_classes=21)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy())
    ```
    """
    _check_choice(library, "library", LIBRARIES)
    num_classes = _check_num_classes(num_classes)
    if num_classes < 2:
        raise ValueError(
            f"num_classes counts the background too, so it must be at least 2, got {num_classes}"
        )
    backbone = _task_backbone(encoder, preprocessing, freeze_encoder, max_pixel_value, image_shape)
    if library == "keras_cv":
        import keras_cv

        return keras_cv.models.DeepLabV3Plus(backbone=backbone, num_classes=num_classes, **task_kwargs)
    deeplab = keras_hub.models.DeepLabV3Backbone(
        image_encoder=backbone,
        spatial_pyramid_pooling_key="P5",
        upsampling_size=8,
        dilation_rates=[6, 12, 18],
        low_level_feature_key="P2",
        image_shape=tuple(image_shape),
    )
    task_kwargs.setdefault("activation", "softmax")
    return keras_hub.models.DeepLabV3ImageSegmenter(backbone=deeplab, num_classes=num_classes, **task_kwargs)


def compile_detector(model, optimizer="adam", **kwargs):
    """Compiles a detector from `detector(...)` with its library's standard losses.

    KerasCV RetinaNet: focal + smooth L1; KerasCV YOLOv8: binary cross-entropy + CIoU;
    KerasHub RetinaNet: its defaults (focal + Huber).

    Args:
        model: the detector.
        optimizer: a Keras optimizer or its name.
        **kwargs: more `compile` arguments.

    Returns:
        The model, compiled.
    """
    import keras_cv

    if isinstance(model, keras_cv.models.YOLOV8Detector):
        kwargs.setdefault("classification_loss", "binary_crossentropy")
        kwargs.setdefault("box_loss", "ciou")
    elif isinstance(model, keras_cv.models.RetinaNet):
        kwargs.setdefault("classification_loss", "focal")
        kwargs.setdefault("box_loss", "smoothl1")
    elif not isinstance(model, keras_hub.models.RetinaNetObjectDetector):
        raise ValueError(f"expected a detector from keras_barlow.detector(...), got {type(model).__name__}")
    model.compile(optimizer=optimizer, **kwargs)
    return model


def compile_segmenter(model, optimizer="adam", **kwargs):
    """Compiles a segmenter from `segmenter(...)`: sparse cross-entropy on `(batch, h, w, 1)` masks.

    Args:
        model: the segmenter.
        optimizer: a Keras optimizer or its name.
        **kwargs: more `compile` arguments (`metrics` defaults to pixel accuracy).

    Returns:
        The model, compiled.
    """
    kwargs.setdefault("loss", keras.losses.SparseCategoricalCrossentropy())
    kwargs.setdefault("metrics", [keras.metrics.SparseCategoricalAccuracy(name="pixel_accuracy")])
    model.compile(optimizer=optimizer, **kwargs)
    return model


def detection_targets(boxes, classes, library="keras_cv"):
    """The target dict each library's detectors train on.

    Args:
        boxes: `(batch, max_objects, 4)`, padded with -1.
        classes: `(batch, max_objects)`, padded with -1.
        library: `"keras_cv"` (`{"boxes", "classes"}`) or `"keras_hub"` (`{"boxes", "labels"}`).

    Returns:
        A dict of float32 arrays (or tensors, as given).
    """
    _check_choice(library, "library", LIBRARIES)
    key = "classes" if library == "keras_cv" else "labels"
    return {"boxes": boxes, key: classes}
