"""The pretraining normalisation lives in the exported encoder's config."""

import os

import keras
import keras_hub
import numpy as np
import pytest

from keras_barlow import export
from keras_barlow.backbones import resnet

SPEC = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "image_size": (32, 32)}


def normalised_images(seed=0):
    return np.random.default_rng(seed).normal(size=(2, 32, 32, 3)).astype("float32")


def test_loaded_encoder_alone_gives_the_normalisation(exported):
    encoder = keras.models.load_model(os.path.join(exported["dir"], "encoder.keras"))
    card = exported["card"]
    assert export.pretraining_preprocessing(encoder) == {
        "mean": card["preprocessing"]["mean"],
        "std": card["preprocessing"]["std"],
        "max_pixel_value": 1.0,
        "image_size": card["input"]["image_shape"][:2],
    }
    assert isinstance(encoder, export.PretrainedResNetBackbone)
    assert export.model_card(encoder) is None  # nothing remembered: it is all in the config


def test_resnet_copy_is_exact_and_round_trips_its_config(tmp_path):
    encoder = resnet(18, (32, 32, 3), small_images=True, width=4)
    x = normalised_images()
    pretrained = export.with_pretraining_preprocessing(encoder, SPEC)
    assert isinstance(pretrained, export.PretrainedResNetBackbone)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(pretrained(x)), keras.ops.convert_to_numpy(encoder(x))
    )
    assert pretrained.pyramid_level_inputs == encoder.pyramid_level_inputs
    rebuilt = export.PretrainedResNetBackbone.from_config(pretrained.get_config())
    assert export.pretraining_preprocessing(rebuilt) == export.pretraining_preprocessing(pretrained)
    # A rebuild for another input size (what transfer does for fixed-size encoders) keeps it.
    config = {**pretrained.get_config(), "image_shape": [None, None, 3]}
    assert export.pretraining_preprocessing(export.PretrainedResNetBackbone.from_config(config))[
        "std"
    ] == list(SPEC["std"])
    pretrained.save(tmp_path / "e.keras")
    loaded = keras.models.load_model(tmp_path / "e.keras")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(encoder(x))
    )
    # Recording another normalisation replaces the record, not the weights.
    replaced = export.with_pretraining_preprocessing(loaded, {**SPEC, "mean": (0.5, 0.5, 0.5)})
    assert export.pretraining_preprocessing(replaced)["mean"] == [0.5, 0.5, 0.5]
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(replaced(x)), keras.ops.convert_to_numpy(encoder(x))
    )


def test_any_functional_encoder_is_wrapped_without_nesting(tmp_path):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    outputs = keras.layers.BatchNormalization(name="bn")(x)
    encoder = keras.Model(inputs, outputs)
    images = normalised_images()
    wrapped = export.with_pretraining_preprocessing(encoder, SPEC)
    assert isinstance(wrapped, export.PretrainedEncoder)
    assert [layer.name for layer in wrapped.layers][1:] == ["conv", "bn"]
    assert len(wrapped.weights) == len(encoder.weights)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(wrapped(images)), keras.ops.convert_to_numpy(encoder(images))
    )
    wrapped.save(tmp_path / "w.keras")
    loaded = keras.models.load_model(tmp_path / "w.keras")
    assert export.pretraining_preprocessing(loaded)["image_size"] == [32, 32]
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(images)), keras.ops.convert_to_numpy(encoder(images))
    )


def test_keras_hub_backbone_keeps_its_pyramid(tmp_path):
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 64, 64, 64],
        stackwise_num_blocks=[1, 1, 1, 1],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
        image_shape=(32, 32, 3),
    )
    wrapped = export.with_pretraining_preprocessing(backbone, SPEC)
    wrapped.save(tmp_path / "k.keras")
    loaded = keras.models.load_model(tmp_path / "k.keras")
    assert sorted(loaded.pyramid_outputs) == sorted(backbone.pyramid_outputs)
    x = normalised_images()
    levels = keras.Model(loaded.inputs, loaded.pyramid_outputs)(x)
    expected = keras.Model(backbone.inputs, backbone.pyramid_outputs)(x)
    for level in expected:
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(levels[level]), keras.ops.convert_to_numpy(expected[level])
        )


def test_encoders_without_a_record():
    assert export.pretraining_preprocessing(resnet(18, (32, 32, 3), width=4)) is None


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"mean": (0, 0, 0)}, "'mean' and 'std'"),
        ({"mean": (0, 0), "std": (1, 1)}, "3 finite means"),
        ({"mean": (0, 0, 0), "std": (1, 0, 1)}, "positive stds"),
        ({"mean": (0, 0, float("nan")), "std": (1, 1, 1)}, "3 finite means"),
        ({"mean": (0, 0, 0), "std": (1, 1, 1), "max_pixel_value": 0}, "max_pixel_value"),
        ({"mean": (0, 0, 0), "std": (1, 1, 1), "image_size": (32,)}, "image_size"),
        ({"mean": "abc", "std": (1, 1, 1)}, "must be numbers"),
    ],
)
def test_bad_records_are_refused(spec, match):
    with pytest.raises(ValueError, match=match):
        export.check_pretraining_preprocessing(spec)
