"""Transfer a pretrained encoder to detection and segmentation (KerasCV or KerasHub).

Two lines take an exported encoder to a detector or a segmenter:

>>> model = keras_barlow.detector("savedmodels/digits", num_classes=20)   # KerasCV RetinaNet
>>> keras_barlow.compile_detector(model, "adam").fit(images_0_255, {"boxes": ..., "classes": ...})

`detector` builds KerasCV's `RetinaNet` or `YOLOV8Detector`, or KerasHub's
`RetinaNetObjectDetector`; `segmenter` builds KerasCV's `DeepLabV3Plus` or KerasHub's
`DeepLabV3ImageSegmenter`. Both put the encoder behind a `TransferBackbone`, which

- applies the normalisation the encoder was pretrained with (read from the export's
  `model_card.json`, so images go in as plain pixels and no mean/std can silently differ
  from pretraining);
- exposes the feature pyramid `P2`–`P5` both ways: KerasHub's `pyramid_outputs` and
  KerasCV's `pyramid_level_inputs`. Levels deeper than the encoder's last one (a
  CIFAR-stem ResNet stops at `P3`) are max-pooled from it, parameter-free, so every head
  finds the levels it expects at their true strides.

KerasCV (the library the design names, frozen since 2024) has YOLOv8 and runs on
TensorFlow; KerasHub is its maintained successor and the one to prefer on JAX.

`shapes_dataset` generates a small detection/segmentation data set (coloured squares,
circles and triangles with boxes and masks) on which the recipes and tests train.
"""

import json
import os

import keras
import keras_hub
import numpy as np

from keras_barlow.model import unsynchronized_batchnorm

LIBRARIES = ("keras_cv", "keras_hub")
DETECTOR_KINDS = ("retinanet", "yolov8")
PYRAMID_LEVELS = ("P2", "P3", "P4", "P5")
SHAPE_CLASSES = ("square", "circle", "triangle")


# ---------------------------------------------------------------------------------------
# The backbone the heads see


@keras.saving.register_keras_serializable(package="keras_barlow")
class TransferBackbone(keras_hub.models.FeaturePyramidBackbone):
    """An encoder behind its pretraining normalisation, with the pyramid `P2`–`P5`.

    Input: images `(batch, height, width, 3)`, RGB, pixel values in
    `[0, max_pixel_value]`. They are normalised as in pretraining,
    `(x / max_pixel_value - mean) / std`, then run through the encoder. Output: the dict
    of feature maps `{"P2": ..., "P5": ...}` (`P`n is 2^n times smaller than the image).
    `pyramid_outputs` (KerasHub) holds these tensors and `pyramid_level_inputs` (KerasCV)
    their layer names; levels the encoder lacks beyond its
    deepest are 2×2 max-pools of the previous level.

    The encoder's weights are shared, not copied: training the backbone trains the encoder
    (`transfer_backbone` copies them only when a fixed-size encoder must be rebuilt for
    another input size).

    Args:
        encoder: a Keras backbone with `pyramid_outputs` (e.g. `keras_barlow.resnet(...)`).
        mean, std: per-channel normalisation of pretraining, for RGB in `[0, 1]`.
        max_pixel_value: the value of a white pixel in the images you feed (255 for
            uint8-style pixels, 1.0 for `[0, 1]` floats).
        image_shape: input shape; `None` sizes accept any size (multiples of 32 for
            the detection and segmentation heads).
        **kwargs: `keras_hub.models.Backbone` arguments (`name`, `dtype`, `trainable`).

    Example:
    >>> backbone = TransferBackbone(encoder, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    >>> sorted(backbone.pyramid_outputs)
    ['P2', 'P3', 'P4', 'P5']
    """

    def __init__(self, encoder, mean, std, max_pixel_value=255.0, image_shape=(None, None, 3), dtype=None, **kwargs):
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        mean, std = _check_mean_std(mean, std)
        max_pixel_value = float(max_pixel_value)
        if not max_pixel_value > 0:
            raise ValueError(f"max_pixel_value must be positive (255 or 1.0), got {max_pixel_value}")
        image_shape = tuple(image_shape)
        if len(image_shape) != 3 or image_shape[-1] != 3:
            raise ValueError(f"image_shape must be (height, width, 3), got {image_shape}")
        encoder = _encoder_for_shape(encoder, image_shape)
        levels = _pyramid_of(encoder)

        inputs = keras.layers.Input(image_shape, name="images")
        x = keras.layers.Rescaling(
            scale=[1.0 / (max_pixel_value * s) for s in std],
            offset=[-m / s for m, s in zip(mean, std)],
            name="pretraining_normalization",
        )(inputs)
        features = keras.Model(encoder.inputs, levels, name="encoder_pyramid")(x)
        pyramid = {}
        for level in PYRAMID_LEVELS:
            n = int(level[1:])
            if level in features:
                tensor = features[level]
            else:
                # Deeper than the encoder goes: a parameter-free 2x downsampling, so the
                # level keeps its stride 2^n (anchors and upsampling rely on it).
                tensor = keras.layers.MaxPooling2D(2, padding="same", name=f"{level}_pool")(pyramid[f"P{n - 1}"])
            pyramid[level] = keras.layers.Identity(name=level)(tensor)
        super().__init__(inputs=inputs, outputs=dict(pyramid), dtype=dtype, **kwargs)

        self.encoder = encoder
        self.mean = mean
        self.std = std
        self.max_pixel_value = max_pixel_value
        self.image_shape = image_shape
        self.pyramid_outputs = pyramid

    @property
    def pyramid_level_inputs(self):
        """KerasCV's view of the pyramid: `{"P2": "P2", ..., "P5": "P5"}` (layer names)."""
        return {level: tensor._keras_history.operation.name for level, tensor in self.pyramid_outputs.items()}

    def get_config(self):
        config = super().get_config()
        with unsynchronized_batchnorm(_batchnorms(self.encoder)):
            encoder_config = keras.saving.serialize_keras_object(self.encoder)
        config.update(
            {
                "encoder": encoder_config,
                "mean": list(self.mean),
                "std": list(self.std),
                "max_pixel_value": self.max_pixel_value,
                "image_shape": list(self.image_shape),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.get(config["dtype"])
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)


def _batchnorms(model):
    return [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, keras.layers.BatchNormalization)]


def _check_mean_std(mean, std):
    try:
        mean = tuple(float(v) for v in mean)
        std = tuple(float(v) for v in std)
    except TypeError as err:
        raise ValueError(f"mean and std must be 3 numbers each (one per RGB channel), got {mean!r}, {std!r}") from err
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need one value per RGB channel (3), got {mean} and {std}")
    if min(std) <= 0:
        raise ValueError(f"std must be positive, got {std}")
    return mean, std


def _pyramid_of(encoder):
    levels = dict(getattr(encoder, "pyramid_outputs", None) or {})
    if not levels:
        raise ValueError(
            f"the encoder {encoder.name!r} ({type(encoder).__name__}) has no `pyramid_outputs`: detection and "
            "segmentation heads need a feature pyramid. Pretrain a pyramid backbone such as "
            "keras_barlow.resnet(18, ...), or any keras_hub FeaturePyramidBackbone."
        )
    levels = {k: v for k, v in levels.items() if int(k[1:]) <= 5}
    missing = [level for level in ("P2",) if level not in levels]
    if missing:
        raise ValueError(
            f"the encoder's pyramid has levels {sorted(levels)}, but the heads need {missing} (stride 4) and "
            "deeper; its first stage downsamples too much for detection/segmentation heads"
        )
    return levels


def _encoder_for_shape(encoder, image_shape):
    """The encoder itself if it accepts `image_shape`, else a copy built for it (same weights)."""
    if not isinstance(encoder, keras.Model) or not encoder.inputs:
        raise ValueError(
            f"encoder must be a functional Keras backbone (e.g. keras_barlow.resnet(...)), got {type(encoder).__name__}"
        )
    declared = tuple(encoder.inputs[0].shape[1:])
    if all(d is None or w is None or d == w for d, w in zip(declared, image_shape)) and declared[-1] == image_shape[-1]:
        return encoder
    config = encoder.get_config()
    if "image_shape" not in config:
        raise ValueError(
            f"the encoder takes images of shape {declared} and cannot be rebuilt for {image_shape}; "
            "build it with image_shape=(None, None, 3)"
        )
    with unsynchronized_batchnorm(_batchnorms(encoder)):
        config = encoder.get_config()
    config["image_shape"] = list(image_shape)
    rebuilt = type(encoder).from_config(config)
    rebuilt.set_weights(encoder.get_weights())
    rebuilt.trainable = encoder.trainable
    return rebuilt


# ---------------------------------------------------------------------------------------
# Encoder + preprocessing from an export or an object


def resolve_encoder(encoder, preprocessing=None):
    """`(encoder, {"mean": ..., "std": ...})` from an export directory or an encoder.

    The preprocessing comes from the export's model card (`load_encoder` remembers it for
    the encoder it returns). An explicit `preprocessing` must agree with the card; for an
    encoder without a card it is required.

    Args:
        encoder: an export directory (`export_encoder`'s output), a `keras_barlow.BarlowTwins`
            model, or an encoder.
        preprocessing: `None`, a dict with `mean` and `std`, an
            `keras_barlow.augment.AugmentationConfig`, or a preset name (`"imagenet"`,
            `"cifar"`, `"digits"`).

    Returns:
        `(encoder, {"mean": (r, g, b), "std": (r, g, b)})`.
    """
    from keras_barlow import export

    if isinstance(encoder, (str, os.PathLike)):
        encoder = export.load_encoder(encoder)
    elif hasattr(encoder, "encoder") and hasattr(encoder, "projector"):  # a BarlowTwins model
        encoder = encoder.encoder
    card = export.model_card(encoder)
    from_card = _mean_std((card or {}).get("preprocessing"))
    given = _mean_std(preprocessing)
    if given is None and from_card is None:
        raise ValueError(
            "no preprocessing is known for this encoder: pass the normalisation it was pretrained with, e.g. "
            "preprocessing='imagenet' (keras_barlow's presets all normalise with ImageNet mean/std) or "
            "preprocessing={'mean': (...), 'std': (...)}, or load it with keras_barlow.load_encoder(directory), "
            "which reads the model card"
        )
    if given is not None and from_card is not None and not np.allclose(given[0] + given[1], from_card[0] + from_card[1]):
        raise ValueError(
            f"preprocessing {dict(mean=given[0], std=given[1])} differs from the model card's "
            f"{dict(mean=from_card[0], std=from_card[1])}: the encoder was pretrained with the card's values. "
            "Leave preprocessing=None to use them."
        )
    mean, std = given or from_card
    return encoder, {"mean": mean, "std": std}


def _mean_std(spec):
    if spec is None:
        return None
    if isinstance(spec, str) or hasattr(spec, "view_a"):
        from keras_barlow import augment

        config = augment.as_config(spec)
        return tuple(config.mean), tuple(config.std)
    if isinstance(spec, dict):
        if "mean" not in spec or "std" not in spec:
            raise ValueError(f"preprocessing needs 'mean' and 'std', got keys {sorted(spec)}")
        return _check_mean_std(spec["mean"], spec["std"])
    raise ValueError(
        f"preprocessing must be None, a preset name, an AugmentationConfig or a dict with mean/std, got {type(spec).__name__}"
    )


def transfer_backbone(encoder, *, preprocessing=None, freeze_encoder=False, max_pixel_value=255.0, image_shape=(None, None, 3)):
    """A `TransferBackbone` for an export directory or encoder (see `resolve_encoder`).

    Args:
        encoder: export directory, `BarlowTwins` model or encoder.
        preprocessing: see `resolve_encoder`.
        freeze_encoder: keep the pretrained weights fixed (batch norms then run in
            inference mode); the heads still train.
        max_pixel_value: value of a white pixel in your images (255 or 1.0).
        image_shape: input shape of the detector/segmenter.

    Returns:
        A `TransferBackbone`.
    """
    encoder, spec = resolve_encoder(encoder, preprocessing)
    encoder = _encoder_for_shape(encoder, tuple(image_shape))
    if freeze_encoder:
        encoder.trainable = False
    return TransferBackbone(encoder, mean=spec["mean"], std=spec["std"], max_pixel_value=max_pixel_value, image_shape=image_shape)


def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_num_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return int(num_classes)


# ---------------------------------------------------------------------------------------
# Task models


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
        image_shape: input shape; sizes should be multiples of 32.
        head_conv_layers: RetinaNet only: 3×3 convolutions in each prediction head before
            its output (default: the library's, 3 in KerasCV and 4 in KerasHub); 1 makes a
            light detector for small images or CPUs.
        **task_kwargs: passed to the task class (e.g. `fpn_depth` for YOLOv8).

    Returns:
        An uncompiled task model. Targets: KerasCV `{"boxes", "classes"}`, KerasHub
        `{"boxes", "labels"}` (pad with class -1; `detection_targets` builds either).

    Example:
    >>> model = detector("savedmodels/digits", num_classes=20, library="keras_hub")
    >>> model.compile(optimizer="adam")   # KerasHub: focal + Huber losses by default
    """
    _check_choice(kind, "kind", DETECTOR_KINDS)
    _check_choice(library, "library", LIBRARIES)
    num_classes = _check_num_classes(num_classes)
    if kind == "yolov8" and library == "keras_hub":
        raise ValueError(
            "YOLOv8 exists only in KerasCV (KerasHub has no YOLOv8 detector): use library='keras_cv' with "
            "kind='yolov8', or kind='retinanet' with library='keras_hub'"
        )
    backbone = transfer_backbone(
        encoder,
        preprocessing=preprocessing,
        freeze_encoder=freeze_encoder,
        max_pixel_value=max_pixel_value,
        image_shape=image_shape,
    )
    if head_conv_layers is not None:
        if kind != "retinanet":
            raise ValueError("head_conv_layers applies to RetinaNet heads only; for YOLOv8 use fpn_depth")
        if isinstance(head_conv_layers, bool) or not isinstance(head_conv_layers, int) or head_conv_layers < 0:
            raise ValueError(f"head_conv_layers must be a non-negative integer, got {head_conv_layers!r}")
    if library == "keras_cv":
        import keras_cv

        if kind == "yolov8":
            return keras_cv.models.YOLOV8Detector(
                backbone=backbone, num_classes=num_classes, bounding_box_format=bounding_box_format, **task_kwargs
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
                    output_filters=9 * 4, bias_initializer=keras.initializers.Zeros(), num_conv_layers=head_conv_layers
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
    _fix_keras_hub_head_bias(model)
    return model


def _fix_keras_hub_head_bias(model):
    """Initialises the heads' output biases as the RetinaNet paper (and torchvision) do.

    KerasHub 0.32 gives the *box* head's output the focal-loss prior bias
    `-log((1 - p) / p)` and the classification head's output zeros: every anchor starts at
    50 % confidence for every class (initial loss ~19 instead of ~1 on the shapes data)
    and every box at a scale of e^-4.6. Here the classification head gets the prior and
    the box head zeros.
    """
    prior = float(model.box_head.prior_probability)  # the classification_head_prior_probability argument
    cls_bias = model.classification_head.prediction_layer.bias
    box_bias = model.box_head.prediction_layer.bias
    cls_bias.assign(np.full(cls_bias.shape, -np.log((1 - prior) / prior), dtype="float32"))
    box_bias.assign(np.zeros(box_bias.shape, dtype="float32"))


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
        image_shape: input shape; sizes must be multiples of 32.
        **task_kwargs: passed to the task class.

    Returns:
        An uncompiled task model.

    Example:
    >>> model = segmenter("savedmodels/digits", num_classes=21)
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy())
    """
    _check_choice(library, "library", LIBRARIES)
    num_classes = _check_num_classes(num_classes)
    if num_classes < 2:
        raise ValueError(f"num_classes counts the background too, so it must be at least 2, got {num_classes}")
    backbone = transfer_backbone(
        encoder,
        preprocessing=preprocessing,
        freeze_encoder=freeze_encoder,
        max_pixel_value=max_pixel_value,
        image_shape=image_shape,
    )
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


# ---------------------------------------------------------------------------------------
# Targets and evaluation


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


def evaluate_detector(model, images, boxes, classes, *, bounding_box_format="xywh", batch_size=8, confidence_threshold=0.05):
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
    """Mean IoU over the classes present in `truth` or `predicted` (integer arrays)."""
    truth = np.asarray(truth).reshape(-1).astype(np.int64)
    predicted = np.asarray(predicted).reshape(-1).astype(np.int64)
    confusion = np.bincount(truth * num_classes + predicted, minlength=num_classes**2).reshape(num_classes, num_classes)
    intersection = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = union > 0
    return float(np.mean(intersection[present] / union[present]))


# ---------------------------------------------------------------------------------------
# Generated data


def shapes_dataset(num_images, *, image_size=64, max_objects=2, size_range=(0.35, 0.6), seed=0):
    """Coloured squares, circles and triangles on noisy backgrounds, with boxes and masks.

    Each image holds 1 to `max_objects` non-overlapping shapes of random colour; the class
    is the shape (0 square, 1 circle, 2 triangle — `SHAPE_CLASSES`), never the colour.

    Args:
        num_images: number of images.
        image_size: height and width in pixels.
        max_objects: most shapes per image (boxes and classes are padded to it).
        size_range: shape side as a fraction of `image_size`, `(low, high)`.
        seed: NumPy seed; the same seed gives the same data.

    Returns:
        dict of NumPy arrays: `images` float32 `(n, s, s, 3)` in [0, 255]; `boxes` float32
        `(n, max_objects, 4)` tight `xywh` pixel boxes, padded with -1; `classes` float32
        `(n, max_objects)`, padded with -1; `masks` int32 `(n, s, s, 1)` with 0 for background
        and `class + 1` for the shapes.

    Example:
    >>> data = shapes_dataset(8, image_size=64)
    >>> data["images"].shape, data["boxes"].shape, data["masks"].max() <= 3
    ((8, 64, 64, 3), (8, 2, 4), True)
    """
    if int(num_images) < 1 or int(max_objects) < 1:
        raise ValueError(f"num_images and max_objects must be positive, got {num_images} and {max_objects}")
    low, high = size_range
    if not 0 < low <= high < 1:
        raise ValueError(f"size_range must satisfy 0 < low <= high < 1, got {size_range}")
    rng = np.random.default_rng(seed)
    s = int(image_size)
    n = int(num_images)
    images = np.empty((n, s, s, 3), np.float32)
    boxes = np.full((n, max_objects, 4), -1.0, np.float32)
    classes = np.full((n, max_objects), -1.0, np.float32)
    masks = np.zeros((n, s, s, 1), np.int32)
    rows, cols = np.mgrid[0:s, 0:s] + 0.5  # pixel centres
    for i in range(n):
        background = rng.uniform(0, 80, size=3)
        images[i] = np.clip(background + rng.normal(0, 12, size=(s, s, 3)), 0, 255)
        placed = []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            for _attempt in range(50):
                side = int(rng.integers(int(low * s), int(high * s) + 1))
                top, left = (int(v) for v in rng.integers(0, s - side + 1, size=2))
                box = (top, left, top + side, left + side)
                if all(box[0] >= b[2] or box[2] <= b[0] or box[1] >= b[3] or box[3] <= b[1] for b in placed):
                    break
            else:
                continue
            cls = int(rng.integers(len(SHAPE_CLASSES)))
            shape = _shape_mask(cls, rows, cols, top, left, side)
            if not shape.any():
                continue
            placed.append(box)
            colour = rng.uniform(120, 255, size=3)
            images[i][shape] = colour
            masks[i, ..., 0][shape] = cls + 1
            ys, xs = np.nonzero(shape)
            k = len(placed) - 1
            boxes[i, k] = (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())
            classes[i, k] = cls
    return {"images": images, "boxes": boxes, "classes": classes, "masks": masks}


def _shape_mask(cls, rows, cols, top, left, side):
    inside_box = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    if cls == 0:  # square
        return inside_box
    if cls == 1:  # circle inscribed in the box
        radius = side / 2
        return (rows - top - radius) ** 2 + (cols - left - radius) ** 2 <= radius**2
    # triangle: apex at the top centre, base on the bottom edge
    fraction = (rows - top) / side  # 0 at the apex, 1 at the base
    half_width = fraction * side / 2
    return inside_box & (np.abs(cols - left - side / 2) <= half_width)


def save_metrics(path, metrics):
    """Writes a dict of metrics as JSON (used by the recipes' `--output`)."""
    with open(path, "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
