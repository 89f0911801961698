"""BarlowTwins under mixed_float16 and mixed_bfloat16: C and the loss stay float32 (also in
fit's own step), the float16 loss is scaled (LossScaleOptimizer around LARS) and steps whose
scaled gradients overflow float16 are skipped, not reported as divergence, and the loss
matches float32. The quick start under each policy against float32: tests/cli/test_quickstart.py.

These tests run on both backends: the suite's JAX pass (`KERAS_BACKEND=jax`) runs them on
JAX, where `mixed_bfloat16` is the TPU policy.
"""

import keras
import numpy as np
import pytest

from keras_barlow import BarlowTwins, losses
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


@pytest.mark.parametrize("policy", POLICIES)
def test_fit_computes_z_in_half_precision_and_c_and_loss_in_float32(policy, monkeypatch):
    """In `fit`'s own (compiled) step: z in the policy's compute dtype, C and every logged term
    float32; the logs, metrics and history float32 and finite."""
    seen = []
    cross_correlation = losses.cross_correlation

    def spy(z_a, z_b, **kwargs):
        c = cross_correlation(z_a, z_b, **kwargs)
        seen.append([keras.backend.standardize_dtype(t.dtype) for t in (z_a, z_b, c)])
        return c

    monkeypatch.setattr(losses, "cross_correlation", spy)
    model = _model(policy)
    compute_terms = model.compute_terms
    terms_dtypes = []

    def terms_spy(*args, **kwargs):
        terms = compute_terms(*args, **kwargs)
        terms_dtypes.append({k: keras.backend.standardize_dtype(v.dtype) for k, v in terms.items()})
        return terms

    model.compute_terms = terms_spy
    model.compile(optimizer=paper_optimizer(16, epochs=1, steps_per_epoch=4))
    history = model.fit(*_views(n=64), batch_size=16, epochs=1, verbose=0, shuffle=False)
    half = policy.split("_")[1]
    assert seen and all(dtypes == [half, half, "float32"] for dtypes in seen), seen
    assert terms_dtypes and all(set(d.values()) == {"float32"} for d in terms_dtypes), terms_dtypes
    for metric in model.metrics:
        assert keras.backend.standardize_dtype(metric.dtype) == "float32", metric.name
    for name in ("loss", "on_diag", "off_diag", "embedding_std"):
        (value,) = history.history[name]
        assert np.isfinite(value) and np.float32(value) == value, (name, value)


def test_float16_gradient_overflow_is_skipped_by_the_loss_scaler_not_reported_as_divergence():
    """A loss scale of 2^18 makes the scaled float16 gradients overflow: `LossScaleOptimizer`
    skips those steps (LARS does not move, the scale halves each time) until the scale fits;
    the logged loss stays finite, so `NonFiniteLossGuard` never fires and fit completes."""
    initial_scale, steps = 2.0**18, 8
    reference = _model("float32")
    model = _model("mixed_float16", reference.get_weights())
    lars = paper_optimizer(16, epochs=1, steps_per_epoch=steps)
    model.compile(optimizer=keras.optimizers.LossScaleOptimizer(lars, initial_scale=initial_scale))
    batch_losses, applied = [], []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batch_losses.append(float(logs["loss"]))
            # Through `self.model`, which brings JAX's in-flight state back to the variables.
            inner = self.model.optimizer.inner_optimizer
            applied.append(int(keras.ops.convert_to_numpy(inner.iterations)))

    history = model.fit(
        *_views(n=16 * steps), batch_size=16, epochs=1, verbose=0, shuffle=False, callbacks=[Record()]
    )
    assert len(batch_losses) == steps and np.all(np.isfinite(batch_losses))
    assert np.isfinite(history.history["loss"][0])
    updates = applied[-1]
    assert 0 < updates < steps, applied  # the first steps skipped, the later ones applied
    assert applied[0] == 0  # 2^18 × the step-0 gradients overflows float16
    scale = float(keras.ops.convert_to_numpy(model.optimizer.dynamic_scale))
    assert scale == initial_scale / 2 ** (steps - updates)  # halved once per skipped step
    moved = [
        not np.array_equal(keras.ops.convert_to_numpy(w), w0)
        for w, w0 in zip(model.trainable_weights, reference.get_weights())
    ]
    assert all(moved)
