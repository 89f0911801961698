"""The TensorFlow trainer outside a strategy (the distributed runs are in tests/integration)."""

import contextlib

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow_only


def tensorflow_trainer():
    from keras_barlow.trainers.tensorflow import TensorFlowTrainer

    return TensorFlowTrainer()


def tiny_model():
    from keras_barlow.models.barlow_twins import BarlowTwins

    inputs = keras.Input((8, 8, 3))
    encoder = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    model = BarlowTwins(encoder, projector_dims=(8,))
    model.compile(optimizer=keras.optimizers.SGD(0.01), steps_per_execution=2)
    return model


def test_one_device_needs_no_collectives_and_no_workaround():
    trainer = tensorflow_trainer()
    model = tiny_model()
    assert trainer.global_reducers(np.zeros((4, 8, 8, 3))) == (None, None, 1)
    assert trainer.skip_symbolic_build(model) is False
    assert isinstance(trainer.keep_variables_on_failure(model, build_optimizer=True), contextlib.nullcontext)
    trainer.prepare_train_function(model)  # steps_per_execution > 1 is fine on one replica
    assert not any(layer.synchronized for layer in model.batchnorm_layers())


def test_module_level_functions_of_earlier_releases_still_import():
    from keras_barlow.trainers import tensorflow

    for name in ("prepare_train_function", "train_step", "test_step", "skip_symbolic_build"):
        assert callable(getattr(tensorflow, name))
    import tensorflow as tf

    assert tensorflow.needs_multi_worker_workaround(tf.distribute.get_strategy()) is False
