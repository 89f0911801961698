"""The TensorFlow trainer outside a strategy (the distributed runs are in tests/integration)."""

import contextlib
from unittest import mock

import keras
import numpy as np
import pytest
from helpers import tiny_encoder, tiny_model

pytestmark = pytest.mark.tensorflow_only


def tensorflow_trainer():
    from keras_barlow.trainers.tensorflow import TensorFlowTrainer

    return TensorFlowTrainer()


def model_with_steps_per_execution():
    """The shared tiny model (4 features, an 8-wide projector), 2 steps per execution."""
    return tiny_model(tiny_encoder(filters=4), projector_dims=(8,), compile_kwargs={"steps_per_execution": 2})


def test_one_device_needs_no_collectives_and_no_workaround():
    trainer = tensorflow_trainer()
    model = model_with_steps_per_execution()
    assert trainer.global_reducers(np.zeros((4, 8, 8, 3))) == (None, None, 1)
    assert trainer.skip_symbolic_build(model) is False
    assert isinstance(trainer.keep_variables_on_failure(model, build_optimizer=True), contextlib.nullcontext)
    trainer.prepare_train_function(model)  # steps_per_execution > 1 is fine on one replica
    assert not any(layer.synchronized for layer in model.batchnorm_layers())


def test_the_trainer_class_is_the_only_way_in():
    from keras_barlow.trainers import tensorflow

    for name in ("TRAINER", "prepare_train_function", "train_step", "test_step", "skip_symbolic_build"):
        assert not hasattr(tensorflow, name), f"a module-level alias {name} is back"


def test_steps_per_execution_under_mirrored_strategy_fails_clearly():
    import tensorflow as tf

    from keras_barlow import BarlowTwins

    trainer = tensorflow_trainer()
    model = mock.Mock(steps_per_execution=4, sync_batchnorm=True)
    model.distribute_strategy = mock.Mock(spec=tf.distribute.MirroredStrategy, num_replicas_in_sync=2)
    with pytest.raises(ValueError, match=r"steps_per_execution=4.*keras-team/keras#19246"):
        trainer.prepare_train_function(model)
    encoder = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten()])
    single = BarlowTwins(encoder, projector_dims=(4,))
    single.compile(optimizer="sgd", steps_per_execution=4)
    trainer.prepare_train_function(single)  # one replica: allowed
