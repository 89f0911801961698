"""LARS, WarmupCosine and the paper's settings, against independent NumPy references."""

import json
import math

import keras
import numpy as np
import pytest
from conftest import run_python

from keras_barlow.optimizers import LARS, WarmupCosine, paper_optimizer, paper_schedule, trust_ratio

only_in_tensorflow_pass = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="starts its own subprocess; run once, in the TensorFlow pass of the suite",
)


# --- NumPy references, written from the official PyTorch code (facebookresearch/barlowtwins
# main.py: LARS.step and adjust_learning_rate), in float64. -----------------------------------
def numpy_lars_step(params, grads, mus, lr_weights, lr_biases, *, wd, momentum, eta, exclude=True):
    """One official LARS step; params with ndim == 1 are the "biases" parameter group."""
    new_params, new_mus = [], []
    for p, g, mu in zip(params, grads, mus):
        is_bias = p.ndim == 1
        dp = g.copy()
        if not (exclude and is_bias):
            dp = dp + wd * p
            param_norm, update_norm = np.linalg.norm(p), np.linalg.norm(dp)
            q = eta * param_norm / update_norm if param_norm > 0 and update_norm > 0 else 1.0
            dp = dp * q
        mu = momentum * mu + dp
        new_mus.append(mu)
        new_params.append(p - (lr_biases if is_bias else lr_weights) * mu)
    return new_params, new_mus


def official_lr(step, *, batch_size, epochs, steps_per_epoch, warmup_epochs=10):
    max_steps = epochs * steps_per_epoch
    warmup_steps = warmup_epochs * steps_per_epoch
    base_lr = batch_size / 256
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    step -= warmup_steps
    max_steps -= warmup_steps
    q = 0.5 * (1 + math.cos(math.pi * step / max_steps))
    return base_lr * q + base_lr * 0.001 * (1 - q)


def _variables(rng):
    shapes = [(3, 4), (2, 2, 3, 5), (4,), (5,)]
    values = [rng.normal(size=s).astype("float32") for s in shapes]
    values[3] = np.ones(5, "float32")  # a batch-norm γ
    return [keras.Variable(v, name=f"v{i}") for i, v in enumerate(values)]


def _to_numpy(variables):
    return [np.asarray(keras.ops.convert_to_numpy(v), dtype="float64") for v in variables]


@pytest.mark.parametrize("exclude", [True, False])
def test_lars_matches_the_official_update_over_several_steps(exclude):
    rng = np.random.default_rng(0)
    variables = _variables(rng)
    schedule = WarmupCosine(0.8, total_steps=6, warmup_steps=2)
    kwargs = dict(momentum=0.9, weight_decay=1e-2, eta=1e-3)  # a large decay, so it shows
    optimizer = LARS(schedule, bias_lr_multiplier=0.024, exclude_bias_and_norm=exclude, **kwargs)
    params = _to_numpy(variables)
    mus = [np.zeros_like(p) for p in params]
    for step in range(5):
        grads = [rng.normal(size=p.shape).astype("float32") for p in params]
        optimizer.apply(grads, variables)
        lr = official_lr(step, batch_size=1024, epochs=6, steps_per_epoch=1, warmup_epochs=2) * 0.2
        params, mus = numpy_lars_step(
            params,
            [g.astype("float64") for g in grads],
            mus,
            lr,
            lr * 0.024,
            wd=kwargs["weight_decay"],
            momentum=0.9,
            eta=1e-3,
            exclude=exclude,
        )
        for got, want in zip(_to_numpy(variables), params):
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7)
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 5
    # Weight decay lives in the LARS update only: Keras' decoupled decay stays off.
    assert optimizer.weight_decay is None
    assert optimizer.get_config()["weight_decay"] == 1e-2


def test_trust_ratio_is_one_when_a_norm_is_zero():
    ones, zeros = np.ones((2, 3), "float32"), np.zeros((2, 3), "float32")
    ratio = lambda p, u: float(keras.ops.convert_to_numpy(trust_ratio(p, u, 1e-3)))  # noqa: E731
    assert ratio(zeros, ones) == 1.0
    assert ratio(ones, zeros) == 1.0
    assert ratio(zeros, zeros) == 1.0
    assert ratio(ones, 2 * ones) == pytest.approx(1e-3 / 2)


def test_zero_weights_and_zero_gradients_stay_finite():
    # A zero kernel (zero norm) with a zero gradient, and a zero kernel with a gradient:
    # no 0/0, and the zero-norm kernel takes a plain momentum-SGD step (ratio 1).
    kernel_still = keras.Variable(np.zeros((3, 3), "float32"))
    kernel_moving = keras.Variable(np.zeros((3, 3), "float32"))
    bias = keras.Variable(np.zeros(3, "float32"))
    optimizer = LARS(0.5, weight_decay=1e-6, bias_lr_multiplier=0.1)
    grad = np.full((3, 3), 0.25, "float32")
    optimizer.apply(
        [np.zeros((3, 3), "float32"), grad, np.zeros(3, "float32")], [kernel_still, kernel_moving, bias]
    )
    values = _to_numpy([kernel_still, kernel_moving, bias])
    assert all(np.isfinite(v).all() for v in values)
    np.testing.assert_array_equal(values[0], 0.0)
    np.testing.assert_allclose(values[1], -0.5 * 0.25, rtol=1e-6)
    np.testing.assert_array_equal(values[2], 0.0)


def test_schedule_matches_the_official_formula_at_every_step():
    batch, epochs, steps_per_epoch = 512, 20, 3
    schedule = WarmupCosine(
        0.2 * batch / 256, total_steps=epochs * steps_per_epoch, warmup_steps=10 * steps_per_epoch
    )
    got = keras.ops.convert_to_numpy(schedule(np.arange(epochs * steps_per_epoch)))
    want = [
        0.2 * official_lr(s, batch_size=batch, epochs=epochs, steps_per_epoch=steps_per_epoch)
        for s in range(60)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)


def test_schedule_boundaries():
    value = lambda schedule, step: float(keras.ops.convert_to_numpy(schedule(step)))  # noqa: E731
    s = WarmupCosine(0.4, total_steps=1000, warmup_steps=100)
    assert value(s, 0) == 0.0
    assert value(s, 50) == pytest.approx(0.2)
    assert value(s, 100) == pytest.approx(0.4)
    assert value(s, 550) == pytest.approx(0.4 * (1 + 0.001) / 2)
    assert value(s, 1000) == pytest.approx(0.4 * 0.001)
    assert value(s, 5000) == pytest.approx(0.4 * 0.001)  # stays at the end value
    no_warmup = WarmupCosine(1.0, total_steps=10, warmup_steps=0, end_fraction=0.0)
    assert value(no_warmup, 0) == pytest.approx(1.0)
    assert value(no_warmup, 10) == pytest.approx(0.0, abs=1e-7)
    all_warmup = WarmupCosine(1.0, total_steps=4, warmup_steps=4)
    assert [round(value(all_warmup, i), 6) for i in range(6)] == [0.0, 0.25, 0.5, 0.75, 0.001, 0.001]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(peak_learning_rate=0.0, total_steps=10, warmup_steps=1), "peak_learning_rate"),
        (dict(peak_learning_rate=0.1, total_steps=0, warmup_steps=0), "total_steps"),
        (dict(peak_learning_rate=0.1, total_steps=10, warmup_steps=11), "warmup_steps"),
        (dict(peak_learning_rate=0.1, total_steps=10, warmup_steps=1, end_fraction=2.0), "end_fraction"),
    ],
)
def test_schedule_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WarmupCosine(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(momentum=1.0), "momentum"), (dict(weight_decay=-1e-6), "weight_decay"), (dict(eta=-1.0), "eta")],
)
def test_lars_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LARS(0.1, **kwargs)


def test_paper_settings_for_the_paper_run():
    optimizer = paper_optimizer(2048, epochs=1000, steps_per_epoch=625)
    schedule = optimizer._learning_rate
    assert isinstance(optimizer, LARS) and isinstance(schedule, WarmupCosine)
    assert schedule.peak_learning_rate == pytest.approx(1.6)  # 0.2 × 2048 / 256
    assert schedule.total_steps == 625_000 and schedule.warmup_steps == 6_250  # 10 epochs
    assert schedule.end_fraction == 0.001
    assert schedule.peak_learning_rate * optimizer.bias_lr_multiplier == pytest.approx(0.0048 * 8)
    assert (optimizer.momentum, optimizer.eta, optimizer.lars_weight_decay) == (0.9, 1e-3, 1e-6)
    assert optimizer.exclude_bias_and_norm


def test_paper_schedule_scales_with_the_batch_and_caps_the_warmup():
    assert paper_schedule(256, 100, 50).peak_learning_rate == pytest.approx(0.2)
    assert paper_schedule(256, 100, 50).warmup_steps == 500  # 10 epochs = a tenth of the run
    assert paper_schedule(64, 20, 50).warmup_steps == 100  # capped at a tenth: 2 epochs
    assert paper_schedule(64, 20, 50).peak_learning_rate == pytest.approx(0.05)
    assert paper_schedule(128, 1, 7).warmup_steps == 0


@pytest.mark.parametrize(
    "args, message",
    [((0, 10, 10), "global_batch_size"), ((256, 0, 10), "epochs"), ((256, 10, None), "steps_per_epoch")],
)
def test_paper_settings_reject_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        paper_optimizer(*args)


def test_official_world_size_reproduces_the_official_gradient_scale():
    # The official code's gradient is 1/W of the true gradient; `official_world_size=W`
    # applied to the true gradient must give the official updates.
    world = 4
    rng = np.random.default_rng(1)
    variables = _variables(rng)
    optimizer = paper_optimizer(
        512, epochs=4, steps_per_epoch=2, official_world_size=world, weight_decay=1e-3
    )
    params = _to_numpy(variables)
    mus = [np.zeros_like(p) for p in params]
    for step in range(3):
        grads = [rng.normal(size=p.shape).astype("float32") for p in params]
        optimizer.apply(grads, variables)
        lr = float(keras.ops.convert_to_numpy(optimizer._learning_rate(step)))
        params, mus = numpy_lars_step(
            params,
            [g.astype("float64") / world for g in grads],
            mus,
            lr,
            lr * 0.024,
            wd=1e-3,
            momentum=0.9,
            eta=1e-3,
        )
    for got, want in zip(_to_numpy(variables), params):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7)


def test_config_round_trip():
    optimizer = paper_optimizer(512, epochs=30, steps_per_epoch=4, weight_decay=1.5e-6, clipnorm=3.0)
    config = optimizer.get_config()
    restored = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(optimizer)))
    )
    assert isinstance(restored, LARS) and isinstance(restored._learning_rate, WarmupCosine)
    assert restored.get_config() == config
    assert config["weight_decay"] == 1.5e-6 and config["clipnorm"] == 3.0
    wrapped = keras.optimizers.LossScaleOptimizer(optimizer)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(wrapped))
    assert restored.inner_optimizer.get_config() == config


def test_saved_model_keeps_lars_and_its_state(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=LARS(WarmupCosine(0.1, 10, 2)), loss="mse")
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 2), "float32")
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, LARS)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def _apply_as_in_training(optimizer, grads, variables):
    """`apply` on TensorFlow; on JAX, `stateless_apply` as the JAX train step does (the
    stateful `LossScaleOptimizer.apply` cannot run eagerly on JAX)."""
    if keras.backend.backend() != "jax":
        optimizer.apply(grads, variables)
        return
    if not optimizer.built:
        optimizer.build(variables)
    values = [v.value for v in variables]
    state = [v.value for v in optimizer.variables]
    values, state = optimizer.stateless_apply(state, grads, values)
    for variable, value in zip(list(variables) + optimizer.variables, list(values) + list(state)):
        variable.assign(value)


def test_lars_inside_a_loss_scale_optimizer():
    rng = np.random.default_rng(2)
    plain_vars = _variables(rng)
    wrapped_vars = [keras.Variable(keras.ops.convert_to_numpy(v)) for v in plain_vars]
    plain = LARS(0.3)
    wrapped = keras.optimizers.LossScaleOptimizer(LARS(0.3), initial_scale=1024.0)
    for _ in range(2):
        grads = [rng.normal(size=v.shape).astype("float32") for v in plain_vars]
        _apply_as_in_training(plain, grads, plain_vars)
        _apply_as_in_training(wrapped, [g * 1024.0 for g in grads], wrapped_vars)
    for a, b in zip(_to_numpy(plain_vars), _to_numpy(wrapped_vars)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # A non-finite gradient skips the step and halves the scale.
    before = _to_numpy(wrapped_vars)
    bad = [np.full(v.shape, np.inf, "float32") for v in wrapped_vars]
    _apply_as_in_training(wrapped, bad, wrapped_vars)
    for a, b in zip(before, _to_numpy(wrapped_vars)):
        np.testing.assert_array_equal(a, b)
    assert float(keras.ops.convert_to_numpy(wrapped.dynamic_scale)) == 512.0


def test_barlow_twins_fit_with_the_paper_optimizer(tiny_encoder):
    from keras_barlow import BarlowTwins

    rng = np.random.default_rng(0)
    images = rng.random((32, 8, 8, 3), dtype="float32")
    views = (images, np.clip(images + 0.1 * rng.normal(size=images.shape), 0, 1).astype("float32"))
    model = BarlowTwins(tiny_encoder(), projector_dims=(16, 16))
    optimizer = paper_optimizer(16, epochs=2, steps_per_epoch=2)
    model.compile(optimizer=optimizer)
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    history = model.fit(views, batch_size=16, epochs=2, verbose=0, shuffle=False)
    assert all(np.isfinite(history.history["loss"]))
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 4
    changed = [
        not np.array_equal(a, keras.ops.convert_to_numpy(w)) for a, w in zip(before, model.trainable_weights)
    ]
    assert all(changed)


def _result(out):
    line = next(line for line in out.splitlines() if line.startswith("RESULT"))
    return tuple(float(v) for v in line.split()[1:])


# The encoder and the two views both distributed-LARS scripts train on.
MODEL_AND_VIEWS = """
def encoder():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-5)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(x)
    return keras.Model(inputs, x)

rng = np.random.default_rng(0)
a = rng.random((64, 8, 8, 3), dtype="float32")
b = np.clip(a + 0.1 * rng.normal(size=a.shape), 0, 1).astype("float32")
"""

MIRRORED_SCRIPT = r"""
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_barlow import BarlowTwins
from keras_barlow.optimizers import LARS, paper_optimizer

{MODEL_AND_VIEWS}
def train(strategy):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = BarlowTwins(encoder(), projector_dims=(16, 16))
        # a large weight decay, so that its path through the trust ratio matters
        model.compile(optimizer=paper_optimizer(32, epochs=2, steps_per_epoch=2, weight_decay=1e-3))
    start = model.get_weights()
    data = tf.data.Dataset.from_tensor_slices((a, b)).batch(32)
    history = model.fit(data, epochs=2, verbose=0)
    assert isinstance(model.optimizer, LARS)
    moved = max(float(np.abs(w - w0).max()) for w, w0 in zip(model.get_weights(), start))
    return model.get_weights(), moved

one, moved = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
two, _ = train(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
diff = max(float(np.abs(x - y).max()) for x, y in zip(one, two))
print("RESULT", diff, moved)
""".replace("{MODEL_AND_VIEWS}", MODEL_AND_VIEWS)


@only_in_tensorflow_pass
@pytest.mark.slow
def test_lars_under_mirrored_strategy_equals_one_device():
    out = run_python(MIRRORED_SCRIPT, env={"KERAS_BACKEND": "tensorflow"})
    diff, moved = _result(out)
    assert moved > 1e-3 and diff < 1e-5, (diff, moved)


JAX_SCRIPT = r"""
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import jax, numpy as np, keras
from keras_barlow import BarlowTwins
from keras_barlow.optimizers import LARS, paper_optimizer
assert keras.backend.backend() == "jax" and len(jax.devices()) == 2

{MODEL_AND_VIEWS}
def train():
    keras.utils.set_random_seed(0)
    model = BarlowTwins(encoder(), projector_dims=(16, 16))
    model.compile(optimizer=paper_optimizer(32, epochs=2, steps_per_epoch=2, weight_decay=1e-3))
    start = [np.asarray(w) for w in model.get_weights()]
    history = model.fit((a, b), batch_size=32, epochs=2, verbose=0, shuffle=False)
    assert isinstance(model.optimizer, LARS) and np.isfinite(history.history["loss"]).all()
    end = [np.asarray(w) for w in model.get_weights()]
    return end, max(float(np.abs(w - w0).max()) for w, w0 in zip(end, start))

one, moved = train()
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
two, _ = train()
diff = max(float(np.abs(x - y).max()) for x, y in zip(one, two))
print("RESULT", diff, moved)
""".replace("{MODEL_AND_VIEWS}", MODEL_AND_VIEWS)


@only_in_tensorflow_pass
@pytest.mark.slow
def test_lars_on_jax_data_parallel_equals_one_device():
    out = run_python(JAX_SCRIPT, env={"KERAS_BACKEND": "jax"})
    diff, moved = _result(out)
    assert moved > 1e-3 and diff < 1e-5, (diff, moved)


# --- bad input, as a new user gives it: an error naming the problem and the fix -------------


def test_negative_lars_learning_rate_is_refused():
    with pytest.raises(ValueError, match=r"learning_rate.*-1\.0"):
        LARS(learning_rate=-1.0)


def test_nan_lars_learning_rate_is_refused():
    with pytest.raises(ValueError, match=r"learning_rate.*nan"):
        LARS(learning_rate=float("nan"))


def test_lars_momentum_and_weight_decay_are_checked():
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\), got 1.5"):
        LARS(learning_rate=0.1, momentum=1.5)
    with pytest.raises(ValueError, match=r"weight_decay must be a non-negative number, got -1.0"):
        LARS(learning_rate=0.1, weight_decay=-1.0)


def test_schedules_and_optimizers_refuse_zero_sizes():
    with pytest.raises(ValueError, match=r"total_steps must be a positive integer, got 0"):
        WarmupCosine(0.1, total_steps=0, warmup_steps=10)
    with pytest.raises(
        ValueError, match=r"steps_per_epoch must be a positive integer, got 0 \(use len\(dataset\)"
    ):
        paper_optimizer(256, 10, 0)
    with pytest.raises(ValueError, match=r"global_batch_size must be a positive integer, got 0"):
        paper_optimizer(0, 10, 10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"learning_rate": float("inf")}, r"learning_rate must be a non-negative number, got inf"),
        ({"learning_rate": "0.1"}, r"learning_rate"),
        ({"momentum": float("nan")}, r"momentum must be a non-negative number, got nan"),
    ],
    ids=["lr-inf", "lr-string", "momentum-nan"],
)
def test_lars_refuses_unusable_numbers(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LARS(**kwargs)


def test_lars_still_takes_a_schedule_or_a_numpy_number():
    assert isinstance(
        LARS(WarmupCosine(0.2, total_steps=10, warmup_steps=1)).get_config()["learning_rate"], dict
    )
    assert LARS(np.float32(0.5)).get_config()["learning_rate"] == 0.5


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: WarmupCosine(float("inf"), 10, 1), r"peak_learning_rate must be a finite positive number"),
        (lambda: WarmupCosine(0.1, float("nan"), 1), r"total_steps must be a positive integer, got nan"),
        (lambda: WarmupCosine(0.1, 10, 2.5), r"warmup_steps must be an integer.*got 2.5"),
        (lambda: paper_optimizer(256, 10, 10, bias_learning_rate=float("nan")), r"bias_learning_rate.*nan"),
        (lambda: paper_optimizer(256, float("inf"), 10), r"epochs must be a positive integer, got inf"),
    ],
    ids=["peak-inf", "total-nan", "warmup-fraction", "bias-lr-nan", "epochs-inf"],
)
def test_schedules_refuse_non_finite_numbers(call, message):
    with pytest.raises(ValueError, match=message):
        call()
