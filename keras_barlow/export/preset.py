"""The KerasHub preset inside an export: `Backbone.from_preset` / `ImageClassifier.from_preset`.

`write_preset(encoder, directory)` writes what `backbone.save_to_preset` writes
(`config.json`, `model.weights.h5`, `metadata.json`) plus `preprocessor.json` and
`image_converter.json`: an image converter that resizes to the pretraining size and
normalises raw 0–255 RGB pixels as in pretraining. In a fresh process:

```python
import keras_barlow  # registers the classes named in the preset
import keras_hub

preset = "savedmodels/digits/keras_hub_preset"
backbone = keras_hub.models.Backbone.from_preset(preset)
classifier = keras_hub.models.ImageClassifier.from_preset(preset, num_classes=10)
classifier.fit(images_0_255, labels)  # the preprocessor normalises them
```

KerasHub finds the task class for a preset by the *exact* backbone class in
`config.json` (`keras_hub.src.utils.preset_utils.find_subclass`, verified on KerasHub
0.32), so each encoder class of `keras_barlow.export.pretrained` has its classifier and
preprocessor classes here.
"""

import os

import keras
import keras_hub

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


def write_preset(encoder, directory):
    """Writes `encoder` as a KerasHub preset directory with its normalising preprocessor.

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
    encoder.save_to_preset(directory)
    PREPROCESSORS[type(encoder)](image_converter=image_converter(encoder)).save_to_preset(directory)
    return sorted(os.listdir(directory))
