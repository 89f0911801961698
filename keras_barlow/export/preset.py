"""The KerasHub preset inside an export: `Backbone.from_preset` / `ImageClassifier.from_preset`.

`write_preset(encoder, directory)` writes what `backbone.save_to_preset` writes
(`config.json`, `model.weights.h5`, `metadata.json`) plus `preprocessor.json` and
`image_converter.json`: an image converter that resizes to the pretraining size and
normalises raw 0–255 RGB pixels as in pretraining.

Two kinds of preset, recorded in `metadata.json` under `"keras_barlow"`:

- **Stock KerasHub** (`needs_keras_barlow: false`): every encoder KerasHub's own classes
  express — ResNets with the ImageNet stem and width 64, grey-input ones included (the
  `Grayscale` luma weights are folded into the first convolution, which is exact) — is
  written as `keras_hub.models.ResNetBackbone` with a `ResNetImageConverter`, so
  `from_preset` works in a process with KerasHub alone, and the preset can be shared with
  `keras_hub.upload_preset("kaggle://user/model/keras/variant", directory)` or
  `"hf://user/model"` like any KerasHub backbone.
- **keras-barlow classes** (`needs_keras_barlow: true`): the small-image stem (3×3 stride
  1, no max-pool), other widths and non-ResNet encoders, which KerasHub's `ResNetBackbone`
  cannot express (it always starts with a stride-2 convolution and a max-pool, with 64
  filters). KerasHub finds a preset's classes by the exact class name in `config.json`, so
  these load only after `pip install keras-barlow` and `import keras_barlow`.

```python
import keras_hub
import numpy as np

preset = "savedmodels/digits/keras_hub_preset"  # small-image stem: needs `import keras_barlow`
backbone = keras_hub.models.Backbone.from_preset(preset)
classifier = keras_hub.models.ImageClassifier.from_preset(preset, num_classes=10)
classifier.fit(images_0_255, labels)  # the preprocessor normalises them
```
"""

import json
import os

import keras
import keras_hub
import numpy as np

from keras_barlow.backbones.resnet import LUMA_WEIGHTS, BarlowResNetBackbone
from keras_barlow.export.pretrained import (
    PretrainedEncoder,
    PretrainedResNetBackbone,
    pretraining_preprocessing,
)

RAW_PIXEL_MAX = 255.0  # KerasHub image converters take raw pixels


def _classifier_classes(backbone_cls, converter_cls):
    """Registers KerasHub's ImageClassifier and its preprocessor for `backbone_cls` presets."""
    base = keras_hub.models
    preprocessor = _task_subclass(
        base.ImageClassifierPreprocessor, backbone_cls, image_converter_cls=converter_cls
    )
    return preprocessor, _task_subclass(base.ImageClassifier, backbone_cls, preprocessor_cls=preprocessor)


def _task_subclass(base, backbone_cls, **attributes):
    name = backbone_cls.__name__.replace("Backbone", "") + base.__name__
    doc = f"KerasHub's `{base.__name__}` for `{backbone_cls.__name__}` presets."
    cls = type(
        name, (base,), {"__module__": __name__, "__doc__": doc, "backbone_cls": backbone_cls, **attributes}
    )
    return keras.saving.register_keras_serializable(package="keras_barlow")(cls)


PretrainedResNetImageClassifierPreprocessor, PretrainedResNetImageClassifier = _classifier_classes(
    PretrainedResNetBackbone, keras_hub.layers.ResNetImageConverter
)
PretrainedEncoderImageClassifierPreprocessor, PretrainedEncoderImageClassifier = _classifier_classes(
    PretrainedEncoder, keras_hub.layers.ImageConverter
)
PREPROCESSORS = {
    PretrainedResNetBackbone: PretrainedResNetImageClassifierPreprocessor,
    PretrainedEncoder: PretrainedEncoderImageClassifierPreprocessor,
}


def image_converter(encoder):
    """KerasHub image converter for raw 0–255 RGB: resize, then the pretraining normalisation.

    Args:
        encoder: a `PretrainedResNetBackbone` or `PretrainedEncoder`.

    Returns:
        A `keras_hub.layers.ImageConverter` (the subclass the preset's preprocessor expects)
        computing `(x / 255 * max_pixel_value - mean) / std` at the pretraining image size.
    """
    spec = pretraining_preprocessing(encoder)
    if spec is None:
        raise ValueError(
            f"{type(encoder).__name__} records no pretraining normalisation; make it with "
            "keras_barlow.export.with_pretraining_preprocessing(encoder, {'mean': ..., 'std': ...})"
        )
    preprocessor = PREPROCESSORS[type(encoder)]
    pixel = spec["max_pixel_value"] / RAW_PIXEL_MAX
    return preprocessor.image_converter_cls(
        image_size=None if spec["image_size"] is None else tuple(spec["image_size"]),
        scale=[pixel / s for s in spec["std"]],
        offset=[-m / s for m, s in zip(spec["mean"], spec["std"])],
        interpolation="bilinear",
    )


STOCK_RESNET_WIDTH = 64  # keras_hub.models.ResNetBackbone requires 64 filters in its first stack
METADATA_KEY = "keras_barlow"


def stock_resnet_backbone(encoder):
    """`encoder` as a stock `keras_hub.models.ResNetBackbone` with the same weights and outputs.

    Args:
        encoder: any encoder.

    Returns:
        A float32 `keras_hub.models.ResNetBackbone`, or None where KerasHub's class cannot
        express the encoder (not a `BarlowResNetBackbone`, the small-image stem, or a width
        other than 64). A grey-input encoder's `Grayscale` layer is folded into the first
        convolution: `conv(luma(x), k) == conv(x, k ⊗ luma)`, exact up to float rounding.
    """
    if (
        not isinstance(encoder, BarlowResNetBackbone)
        or encoder.small_images
        or encoder.width != STOCK_RESNET_WIDTH
    ):
        return None
    stock = keras_hub.models.ResNetBackbone(
        input_conv_filters=[STOCK_RESNET_WIDTH],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=list(encoder.stackwise_num_filters),
        stackwise_num_blocks=list(encoder.stackwise_num_blocks),
        stackwise_num_strides=list(encoder.stackwise_num_strides),
        block_type=encoder.block_type,
        use_pre_activation=False,
        image_shape=tuple(encoder.image_shape),
        data_format=encoder.data_format,
        dtype="float32",
        name=encoder.name,
    )
    for layer in stock.layers:
        if not layer.weights:
            continue
        weights = [
            keras.ops.convert_to_numpy(w).astype("float32") for w in encoder.get_layer(layer.name).weights
        ]
        if layer.name == "conv1_conv" and encoder.grayscale:
            in_axis = 2  # kernels are (rows, cols, in, out) in both data formats
            luma = np.asarray(LUMA_WEIGHTS, "float32").reshape(1, 1, 3, 1)
            weights[0] = np.repeat(weights[0], 3, axis=in_axis) * luma
        layer.set_weights(weights)
    return stock


def write_preset(encoder, directory):
    """Writes `encoder` as a KerasHub preset directory with its normalising preprocessor.

    Stock KerasHub classes where they express the encoder (see `stock_resnet_backbone`),
    else the keras-barlow classes; `metadata.json["keras_barlow"]["needs_keras_barlow"]`
    says which.

    Args:
        encoder: a `PretrainedResNetBackbone` or `PretrainedEncoder` (see
            `keras_barlow.export.with_pretraining_preprocessing`).
        directory: the preset directory (created).

    Returns:
        The sorted list of file names written.
    """
    if type(encoder) not in PREPROCESSORS:
        raise ValueError(
            "write_preset needs a PretrainedResNetBackbone or PretrainedEncoder, got "
            f"{type(encoder).__name__}; convert it with keras_barlow.export.with_pretraining_preprocessing"
        )
    converter = image_converter(encoder)
    stock = stock_resnet_backbone(encoder)
    if stock is None:
        encoder.save_to_preset(directory)
        PREPROCESSORS[type(encoder)](image_converter=converter).save_to_preset(directory)
    else:
        stock.save_to_preset(directory)
        keras_hub.models.ResNetImageClassifierPreprocessor(image_converter=converter).save_to_preset(
            directory
        )
    _record_requirement(directory, needs_keras_barlow=stock is None)
    return sorted(os.listdir(directory))


def preset_needs_keras_barlow(directory):
    """Whether the preset at `directory` loads only where `keras_barlow` is imported."""
    with open(os.path.join(directory, "metadata.json")) as f:
        return json.load(f).get(METADATA_KEY, {}).get("needs_keras_barlow", True)


def loading_instructions(needs_keras_barlow):
    """How to load a preset of either kind (recorded in `metadata.json` and the model card)."""
    prefix = "pip install keras-barlow; import keras_barlow; " if needs_keras_barlow else ""
    return (
        f"{prefix}keras_hub.models.Backbone.from_preset(path) or "
        "keras_hub.models.ImageClassifier.from_preset(path, num_classes=...) (raw 0-255 RGB)"
    )


def _record_requirement(directory, *, needs_keras_barlow):
    path = os.path.join(directory, "metadata.json")
    with open(path) as f:
        metadata = json.load(f)
    metadata[METADATA_KEY] = {
        "needs_keras_barlow": needs_keras_barlow,
        "reason": (
            "the encoder uses keras-barlow classes (small-image stem, a width other than 64, or a "
            "non-ResNet encoder) that KerasHub's ResNetBackbone cannot express"
            if needs_keras_barlow
            else "stock KerasHub classes (keras_hub.models.ResNetBackbone, ResNetImageConverter)"
        ),
        "load": loading_instructions(needs_keras_barlow),
    }
    with open(path, "w") as f:
        json.dump(metadata, f, indent=4)
