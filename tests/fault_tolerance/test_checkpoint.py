"""PeriodicCheckpoint: whole-model `.keras` files every few epochs, written atomically."""

import json
import os

import keras
import numpy as np
import pytest

from keras_barlow.fault_tolerance import PeriodicCheckpoint
from tests.fault_tolerance.helpers import EPOCHS, STEPS, data, small_model


def test_periodic_checkpoints_are_whole_models_written_atomically(tmp_path):
    model = small_model()
    checkpoint = PeriodicCheckpoint(str(tmp_path / "ckpt"), every_epochs=1, keep=1)
    model.fit(data(), epochs=EPOCHS, steps_per_epoch=STEPS, callbacks=[checkpoint], verbose=0)
    assert os.listdir(tmp_path / "ckpt") == ["epoch-0002.keras"]  # keep=1, no temporary left
    restored = keras.models.load_model(tmp_path / "ckpt" / "epoch-0002.keras")
    assert int(keras.ops.convert_to_numpy(restored.optimizer.iterations)) == EPOCHS * STEPS
    for want, got in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))
    with pytest.raises(ValueError, match="every_epochs"):
        PeriodicCheckpoint(str(tmp_path), every_epochs=0)
    config = json.dumps(checkpoint.get_config())
    assert "every_epochs" in config
