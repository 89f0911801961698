"""Upgrade sentinels for the export entries of `keras_barlow._compat`."""

import keras
import keras_hub
import numpy as np
import pytest

from keras_barlow import _compat, export
from keras_barlow.backbones import resnet


def test_keras_hub_finds_preset_tasks_by_exact_backbone_class(tmp_path):
    """If this fails, KerasHub changed its task lookup: re-verify, then drop or keep the
    per-class ImageClassifier registrations of keras_barlow.export.preset."""
    low, high = _compat.KERAS_HUB_EXACT_TASK_LOOKUP_VERIFIED
    assert low <= _compat.keras_hub_version() < high, (
        f"KerasHub {keras_hub.__version__} is outside the verified range {low}..{high}: re-verify the entry"
    )
    plain = resnet(18, (32, 32, 3), small_images=True, width=4)  # a ResNetBackbone subclass
    plain.save_to_preset(str(tmp_path / "plain"))
    with pytest.raises(ValueError, match="Unable to find a subclass"):
        keras_hub.models.ImageClassifier.from_preset(str(tmp_path / "plain"), num_classes=3)
    pretrained = export.with_pretraining_preprocessing(plain, {"mean": (0, 0, 0), "std": (1, 1, 1)})
    export.write_preset(pretrained, str(tmp_path / "pretrained"))
    classifier = keras_hub.models.ImageClassifier.from_preset(str(tmp_path / "pretrained"), num_classes=3)
    assert isinstance(classifier, export.PretrainedResNetImageClassifier)


def test_batch_norm_layers_finds_every_encoder_batch_norm():
    """`save_keras` clears `synchronized` on exactly these layers."""
    encoder = resnet(18, (32, 32, 3), small_images=True, width=4)
    found = _compat.batch_norm_layers(encoder)
    by_name = [layer for layer in encoder.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert {id(layer) for layer in found} == {id(layer) for layer in by_name} and len(found) == 20
    assert np.all([layer.synchronized is False for layer in found])
