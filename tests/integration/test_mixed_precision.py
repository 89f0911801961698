"""BarlowTwins under mixed_float16 and mixed_bfloat16: C and the loss stay float32, the
float16 loss is scaled (LossScaleOptimizer around LARS), and the loss matches float32.

These tests run on both backends: the suite's JAX pass (`KERAS_BACKEND=jax`) runs them on
JAX, where `mixed_bfloat16` is the TPU policy.
"""

import keras
import numpy as np
import pytest

from keras_barlow import BarlowTwins
from keras_barlow.optimizers import LARS, paper_optimizer

POLICIES = ["mixed_float16", "mixed_bfloat16"]


@pytest.fixture(autouse=True)
def _restore_float32():
    yield
    keras.config.set_dtype_policy("float32")


def _encoder():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-5)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same")(x)
    return keras.Model(inputs, x)


def _views(n=16, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random((n, 8, 8, 3), dtype="float32")
    return a, np.clip(a + 0.1 * rng.normal(size=a.shape), 0, 1).astype("float32")


def _model(policy, weights=None):
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    model = BarlowTwins(_encoder(), projector_dims=(32, 32))
    if weights is not None:
        model.set_weights(weights)
    return model


def _float(x):
    return float(keras.ops.convert_to_numpy(x))


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(
            "mixed_float16",
            marks=pytest.mark.skipif(
                keras.backend.backend() == "jax",
                reason="eager float16 on JAX/CPU compiles op by op (~1 min); the TF pass checks "
                "this backend-neutral loss code, and the fit test below runs float16 on JAX",
            ),
        ),
        "mixed_bfloat16",
    ],
)
def test_loss_is_float32_and_close_to_float32(policy):
    view_a, view_b = _views()
    reference = _model("float32")
    expected = _float(reference.compute_terms(view_a, view_b, training=True)["loss"])
    model = _model(policy, reference.get_weights())
    assert model.encoder.compute_dtype == policy.split("_")[1]
    z = model.embed(view_a, training=True)
    assert keras.backend.standardize_dtype(z.dtype) == policy.split("_")[1]
    terms = model.compute_terms(view_a, view_b, training=True)
    for name in ("loss", "on_diag", "off_diag", "embedding_std"):
        assert keras.backend.standardize_dtype(terms[name].dtype) == "float32", name
    assert _float(terms["loss"]) == pytest.approx(expected, rel=1e-2)


@pytest.mark.parametrize("policy", POLICIES)
def test_fit_one_epoch_with_lars(policy):
    reference = _model("float32")
    model = _model(policy, reference.get_weights())
    model.compile(optimizer=paper_optimizer(16, epochs=1, steps_per_epoch=6))
    if policy == "mixed_float16":  # Keras wraps the optimizer to scale the loss
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        lars = model.optimizer.inner_optimizer
    else:
        lars = model.optimizer
    assert isinstance(lars, LARS)
    view_a, view_b = _views(n=96)
    history = model.fit((view_a, view_b), batch_size=16, epochs=1, verbose=0, shuffle=False)
    loss = history.history["loss"][0]
    assert np.isfinite(loss)
    # A float16 step whose scaled gradients overflow is skipped (and the scale halved);
    # most of the 6 steps must still be applied.
    applied = int(keras.ops.convert_to_numpy(lars.iterations))
    assert applied >= (3 if policy == "mixed_float16" else 6)
    moved = [
        not np.array_equal(keras.ops.convert_to_numpy(w), w0)
        for w, w0 in zip(model.trainable_weights, reference.get_weights())
    ]
    assert all(moved)
    for w in model.trainable_weights:  # master weights stay float32
        assert keras.backend.standardize_dtype(w.dtype) == "float32"
