"""The transfer and fault-tolerance entries of `keras_barlow._compat`: each test fails when an
upgrade breaks the workaround or makes it unnecessary."""

import keras
import keras_hub
import numpy as np
import pytest

from keras_barlow import _compat
from keras_barlow.backbones import resnet
from keras_barlow.transfer import TransferBackbone

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _keras_hub_retinanet():
    backbone = TransferBackbone(resnet(18, (None, None, 3), width=4), mean=MEAN, std=STD)
    fpn = keras_hub.models.RetinaNetBackbone(
        image_encoder=backbone, min_level=3, max_level=7, use_p5=False, image_shape=(64, 64, 3)
    )
    return keras_hub.models.RetinaNetObjectDetector(backbone=fpn, num_classes=3, bounding_box_format="yxyx")


def test_keras_hub_retinanet_head_biases_are_still_swapped_upstream_and_fixed_here():
    model = _keras_hub_retinanet()
    prior = float(model.box_head.prior_probability)
    prior_bias = -np.log((1 - prior) / prior)
    classification = keras.ops.convert_to_numpy(model.classification_head.prediction_layer.bias)
    box = keras.ops.convert_to_numpy(model.box_head.prediction_layer.bias)
    # Upstream (KerasHub 0.32): the prior on the box head, zeros on the classification head.
    # When this fails, KerasHub initialises the heads correctly: drop the workaround.
    np.testing.assert_allclose(classification, 0.0)
    np.testing.assert_allclose(box, prior_bias, rtol=1e-5)
    _compat.fix_keras_hub_retinanet_head_bias(model)
    classification = keras.ops.convert_to_numpy(model.classification_head.prediction_layer.bias)
    box = keras.ops.convert_to_numpy(model.box_head.prediction_layer.bias)
    np.testing.assert_allclose(classification, prior_bias, rtol=1e-5)
    np.testing.assert_allclose(box, 0.0)


def test_pyramid_level_names_of_the_transfer_backbone():
    backbone = TransferBackbone(resnet(18, (None, None, 3), width=4, small_images=True), mean=MEAN, std=STD)
    assert _compat.pyramid_level_names(backbone) == {f"P{n}": f"P{n}" for n in range(2, 6)}


def test_set_initial_epoch_is_what_keras_backup_and_restore_sets(tmp_path):
    """Keras' own callback, restoring a backup taken after epoch 1, sets the same private
    attribute `set_initial_epoch` writes, and `fit` then starts at epoch 1."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((4, 2), "float32"), np.ones((4, 1), "float32")
    backup = keras.callbacks.BackupAndRestore(str(tmp_path), delete_checkpoint=False)
    model.fit(x, y, epochs=1, callbacks=[backup], verbose=0)
    restored = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    restored.compile(optimizer="sgd", loss="mse")
    callback = keras.callbacks.BackupAndRestore(str(tmp_path))
    callback.set_model(restored)
    callback.on_train_begin()
    assert restored._initial_epoch == 1  # private: the attribute _compat.set_initial_epoch writes

    class FirstEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epochs = getattr(self, "epochs", []) + [epoch]

    fresh = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    fresh.compile(optimizer="sgd", loss="mse")
    seen = FirstEpoch()

    class Resume(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            _compat.set_initial_epoch(self.model, 2)

    fresh.fit(x, y, epochs=3, callbacks=[Resume(), seen], verbose=0)
    assert seen.epochs == [2]


@pytest.mark.parametrize("name", ["fix_keras_hub_retinanet_head_bias", "set_initial_epoch"])
def test_entries_are_documented_with_versions(name):
    assert "verified" in getattr(_compat, name).__doc__.lower()
