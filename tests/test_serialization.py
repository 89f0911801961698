"""Every class registered under the `keras_barlow` package round-trips through serialisation.

The classes are found by importing every module of the package and reading Keras' registry,
so a class added anywhere is tested (or fails `test_every_registered_class_has_a_factory`).
"""

import importlib
import inspect
import pkgutil

import keras
import numpy as np
import pytest
from helpers import round_trip, tiny_encoder

import keras_barlow
from keras_barlow import export

for _module in pkgutil.walk_packages(keras_barlow.__path__, "keras_barlow."):
    if not _module.name.startswith("keras_barlow.trainers."):  # backend-specific steps
        importlib.import_module(_module.name)

REGISTERED = sorted(name for name in keras.saving.get_custom_objects() if name.startswith("keras_barlow>"))


def images(n=4):
    return np.random.default_rng(0).normal(size=(n, 8, 8, 3)).astype("float32")


def embeddings():
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 4)).astype("float32")


RECORD = {"mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3), "image_size": (8, 8)}


def resnet_record():
    return export.PretrainedResNetBackbone(
        pretraining_preprocessing=RECORD, depth=18, image_shape=(8, 8, 3), small_images=True, width=4
    )


def pretrained_preprocessor(encoder):
    return export.preset.PREPROCESSORS[type(encoder)](image_converter=export.preset.image_converter(encoder))


def pretrained_classifier(encoder):
    task = {
        cls.backbone_cls: cls
        for cls in (export.PretrainedResNetImageClassifier, export.PretrainedEncoderImageClassifier)
    }[type(encoder)]
    return task(backbone=encoder, num_classes=3, preprocessor=pretrained_preprocessor(encoder))


# Registered name -> (factory of an instance with non-default arguments, inputs for outputs).
FACTORIES = {
    "keras_barlow>BarlowTwins": (
        lambda: keras_barlow.BarlowTwins(
            tiny_encoder(filters=4),
            projector_dims=(8, 6),
            lambd=0.01,
            scale_loss=0.5,
            pooling="mean_tokens",
            sync_batchnorm=False,
        ),
        images,
    ),
    "keras_barlow>ImageSizeCheck": (
        lambda: keras_barlow.transfer.backbone.ImageSizeCheck(name="size_check"),
        lambda: np.zeros((2, 32, 32, 3), "float32"),
    ),
    "keras_barlow>FeaturePooling": (
        lambda: keras_barlow.FeaturePooling("mean_tokens", name="pool"),
        lambda: np.ones((2, 5, 3), "float32"),
    ),
    "keras_barlow>BarlowTwinsLoss": (
        lambda: keras_barlow.BarlowTwinsLoss(lambd=0.02, scale_loss=0.3),
        embeddings,
    ),
    "keras_barlow>LARS": (
        lambda: keras_barlow.LARS(
            0.3,
            momentum=0.8,
            weight_decay=1e-5,
            eta=2e-3,
            bias_lr_multiplier=0.5,
            exclude_bias_and_norm=False,
        ),
        None,
    ),
    "keras_barlow>WarmupCosine": (
        lambda: keras_barlow.WarmupCosine(0.4, 100, 10, end_fraction=0.01),
        lambda: 20,
    ),
    "keras_barlow>BarlowResNetBackbone": (
        lambda: keras_barlow.BarlowResNetBackbone(
            depth=18,
            image_shape=(8, 8, 3),
            small_images=True,
            zero_init_residual=False,
            width=4,
            grayscale=True,
        ),
        images,
    ),
    "keras_barlow>Grayscale": (
        lambda: keras_barlow.backbones.Grayscale(name="grey"),
        images,
    ),
    "keras_barlow>FineTuneSGD": (
        lambda: keras_barlow.evaluation.FineTuneSGD(0.05, encoder_lr_multiplier=0.2, momentum=0.5),
        None,
    ),
    "keras_barlow>TransferBackbone": (
        lambda: keras_barlow.transfer.TransferBackbone(
            keras_barlow.resnet(18, (8, 8, 3), small_images=True, width=4),
            mean=(0.5, 0.5, 0.5),
            std=(0.2, 0.2, 0.2),
            image_shape=(8, 8, 3),
        ),
        lambda: np.full((2, 8, 8, 3), 128.0, "float32"),
    ),
    "keras_barlow>PretrainedResNetBackbone": (
        lambda: export.PretrainedResNetBackbone(
            pretraining_preprocessing=RECORD, depth=18, image_shape=(8, 8, 3), small_images=True, width=4
        ),
        images,
    ),
    "keras_barlow>PretrainedEncoder": (
        lambda: export.with_pretraining_preprocessing(tiny_encoder(filters=4), RECORD),
        images,
    ),
    "keras_barlow>PretrainedResNetImageClassifierPreprocessor": (
        lambda: pretrained_preprocessor(resnet_record()),
        lambda: np.full((2, 8, 8, 3), 128.0, "float32"),
    ),
    "keras_barlow>PretrainedEncoderImageClassifierPreprocessor": (
        lambda: pretrained_preprocessor(
            export.with_pretraining_preprocessing(tiny_encoder(filters=4), RECORD)
        ),
        lambda: np.full((2, 8, 8, 3), 128.0, "float32"),
    ),
    "keras_barlow>PretrainedResNetImageClassifier": (
        lambda: pretrained_classifier(resnet_record()),
        lambda: np.full((2, 8, 8, 3), 128.0, "float32"),
    ),
    "keras_barlow>PretrainedEncoderImageClassifier": (
        lambda: pretrained_classifier(export.with_pretraining_preprocessing(tiny_encoder(filters=4), RECORD)),
        lambda: np.full((2, 8, 8, 3), 128.0, "float32"),
    ),
}

# Constructor arguments deliberately absent from `get_config` (with the reason).
NOT_IN_CONFIG = {
    "keras_barlow>BarlowResNetBackbone": {"dtype"},  # in the base config, as a dtype policy
}

# The classes of this branch's modules, whose `get_config` must be complete.
CORE_CLASSES = [
    "keras_barlow>BarlowTwins",
    "keras_barlow>FeaturePooling",
    "keras_barlow>BarlowTwinsLoss",
    "keras_barlow>LARS",
    "keras_barlow>WarmupCosine",
    "keras_barlow>BarlowResNetBackbone",
]


def test_every_registered_class_has_a_factory():
    assert REGISTERED, "no keras_barlow class found in the registry"
    assert sorted(set(REGISTERED) - set(FACTORIES)) == []


@pytest.mark.parametrize("name", REGISTERED)
def test_round_trip(name, tmp_path):
    make, make_inputs = FACTORIES[name]
    obj = make()
    assert keras.saving.get_registered_name(type(obj)) == name
    round_trip(obj, tmp_path=tmp_path, inputs=make_inputs() if make_inputs else None)


@pytest.mark.parametrize("name", CORE_CLASSES)
def test_get_config_holds_every_constructor_argument(name):
    cls = keras.saving.get_registered_object(name)
    parameters = inspect.signature(cls.__init__).parameters
    arguments = {
        p
        for p, spec in parameters.items()
        if p != "self" and spec.kind not in (spec.VAR_KEYWORD, spec.VAR_POSITIONAL)
    }
    config = FACTORIES[name][0]().get_config()
    assert sorted(arguments - set(config) - NOT_IN_CONFIG.get(name, set())) == []
