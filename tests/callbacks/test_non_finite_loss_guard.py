"""`NonFiniteLossGuard`: it stops `fit` at a non-finite loss and names the step, counting the
steps itself (a float16 loss scaler skips updates, so `optimizer.iterations` lags behind).
The float16 overflow that the loss scaler skips is tested in tests/integration/test_mixed_precision.py."""

import keras
import numpy as np
import pytest

from keras_barlow import BarlowTwins
from keras_barlow.callbacks import NonFiniteLossGuard


@pytest.fixture(autouse=True)
def _restore_float32():
    yield
    keras.config.set_dtype_policy("float32")


def _poisoned_views(n=32, first_nan=20):
    rng = np.random.default_rng(0)
    a = rng.random((n, 8, 8, 3), dtype="float32")
    b = np.clip(a + 0.1 * rng.normal(size=a.shape), 0, 1).astype("float32")
    a[first_nan:] = np.nan  # the second batch of 16 is poisoned
    return a, b


def _model(policy="float32"):
    keras.config.set_dtype_policy(policy)
    # No ReLU on the path: XLA on CPU may turn max(NaN, 0) into 0 and hide the NaN.
    inputs = keras.Input((8, 8, 3))
    encoder = keras.Model(inputs, keras.layers.Conv2D(8, 3)(inputs))
    model = BarlowTwins(encoder, projector_dims=(16,))
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    return model


def test_a_float32_nan_loss_stops_fit_with_the_step():
    a, b = _poisoned_views()
    model = _model()
    with pytest.raises(FloatingPointError) as error:
        model.fit(a, b, batch_size=16, epochs=1, shuffle=False, verbose=0)
    message = str(error.value)
    assert "the Barlow Twins loss became nan at step 2 (epoch 0, batch 1)" in message
    assert "Lower the learning rate or check the input for NaNs." in message
    assert "loss scaler" not in message and "float16" not in message


def test_a_float16_nan_loss_still_stops_fit_and_says_why_scaling_did_not_help():
    """A NaN *loss* is not an overflow of the scaled gradients: the guard stops fit, and says
    that the loss scaler skipped that step's update."""
    a, b = _poisoned_views()
    model = _model("mixed_float16")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    with pytest.raises(FloatingPointError) as error:
        model.fit(a, b, batch_size=16, epochs=1, shuffle=False, verbose=0)
    message = str(error.value)
    assert "at step 2 (epoch 0, batch 1)" in message
    assert "applied the updates of 1 of this fit's 2 steps" in message
    assert "the forward pass itself left float16's range" in message


def test_float16_without_loss_scaling_is_named():
    a, b = _poisoned_views()
    keras.config.set_dtype_policy("mixed_float16")
    inputs = keras.Input((8, 8, 3))
    encoder = keras.Model(inputs, keras.layers.Conv2D(8, 3)(inputs))
    keras.config.set_dtype_policy("float32")  # the model's own policy: compile does not wrap
    model = BarlowTwins(encoder, projector_dims=(16,))
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    with pytest.raises(FloatingPointError, match="computes in float16 without loss scaling"):
        model.fit(a, b, batch_size=16, epochs=1, shuffle=False, verbose=0)


def test_steps_are_counted_across_epochs_and_executions():
    """With steps_per_execution = 2, Keras calls the batch hook with the execution's last batch;
    the step is the fit's own count (here epoch 1's batch 3, after 4 steps in epoch 0)."""
    model = _model()
    model.optimizer.build(model.trainable_variables)
    guard = NonFiniteLossGuard()
    guard.set_model(model)
    guard.on_train_begin()
    guard.on_epoch_begin(0)
    for batch in (1, 3):
        guard.on_train_batch_end(batch, {"loss": 1.0})
    guard.on_epoch_begin(1)
    guard.on_train_batch_end(1, {"loss": 1.0})
    with pytest.raises(FloatingPointError, match=r"became inf at step 8 \(epoch 1, batch 3\)"):
        guard.on_train_batch_end(3, {"loss": float("inf")})
    assert model.stop_training
