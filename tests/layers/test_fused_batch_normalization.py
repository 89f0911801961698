"""keras_barlow.layers.fused_batch_normalization: Keras' batch norm through TensorFlow's fused kernel —
the same outputs, gradients and moving statistics, applied only inside `BarlowTwins`' forward pass."""

import keras
import numpy as np
import pytest

from keras_barlow import BarlowTwins
from keras_barlow.layers.fused_batch_normalization import (
    fused_batch_normalization_call,
    fused_batch_normalizations,
    fuses,
    plain_batch_normalizations,
)

pytestmark = pytest.mark.tensorflow_only  # the fused kernel is TensorFlow's; JAX keeps Keras' call


@pytest.fixture(autouse=True)
def _restore_float32():
    yield
    keras.config.set_dtype_policy("float32")


def _pair(shape, dtype="float32", **kwargs):
    """A plain BatchNormalization and a copy with the same (non-trivial) weights."""
    plain = keras.layers.BatchNormalization(dtype=dtype, **kwargs)
    plain.build(shape)
    rng = np.random.default_rng(3)
    plain.set_weights([rng.uniform(0.5, 1.5, size=w.shape).astype("float32") for w in plain.get_weights()])
    fused = keras.layers.BatchNormalization.from_config(plain.get_config() | {"name": "fused"})
    fused.build(shape)
    fused.set_weights(plain.get_weights())
    return plain, fused


def _batch(shape=(6, 5, 4, 3), seed=0):
    return np.random.default_rng(seed).normal(2.0, 3.0, size=shape).astype("float32")


def _gradients(layer, x, upstream, training, fused):
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        if fused:
            with fused_batch_normalizations(layer):
                y = layer(x, training=training)
        else:
            y = layer(x, training=training)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
    variables = [v.value for v in layer.trainable_weights]
    return [tf.cast(y, tf.float32).numpy()] + [g.numpy() for g in tape.gradient(loss, [x, *variables])]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("center, scale", [(True, True), (False, False), (True, False)])
def test_outputs_gradients_and_moving_statistics_equal_keras(training, center, scale):
    x = _batch()
    upstream = np.random.default_rng(1).normal(size=x.shape).astype("float32")
    plain, fused = _pair(x.shape, center=center, scale=scale, momentum=0.9, epsilon=1e-5)
    *_, mean0, variance0 = plain.get_weights()
    expected = _gradients(plain, x, upstream, training, fused=False)
    ours = _gradients(fused, x, upstream, training, fused=True)
    assert len(ours) == 2 + center + scale
    for name, a, b in zip(["outputs", "x", "first weight", "second weight"], ours, expected):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5, err_msg=name)
    # NumPy reference of Keras' update: the moving variance averages the *biased* batch
    # variance, while the kernel returns the unbiased one.
    if training:
        mean0 = 0.9 * mean0 + 0.1 * x.mean(axis=(0, 1, 2))
        variance0 = 0.9 * variance0 + 0.1 * x.var(axis=(0, 1, 2))
    for layer in (plain, fused):
        np.testing.assert_allclose(layer.moving_mean.numpy(), mean0, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.moving_variance.numpy(), variance0, rtol=1e-5, atol=1e-6)


def test_a_frozen_layer_in_training_uses_the_moving_statistics():
    x = _batch()
    plain, fused = _pair(x.shape)
    plain.trainable = fused.trainable = False
    before = fused.get_weights()
    with fused_batch_normalizations(fused):
        ours = keras.ops.convert_to_numpy(fused(x, training=True))
    expected = keras.ops.convert_to_numpy(plain(x, training=True))
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    for w, w0 in zip(fused.get_weights(), before):
        np.testing.assert_array_equal(w, w0)


def test_bfloat16_matches_keras_to_bfloat16_rounding():
    keras.config.set_dtype_policy("mixed_bfloat16")
    x = _batch((8, 7, 7, 16))
    upstream = np.random.default_rng(2).normal(size=x.shape).astype("float32")
    plain, fused = _pair(x.shape, dtype="mixed_bfloat16")
    expected = _gradients(plain, x, upstream, True, fused=False)
    ours = _gradients(fused, x, upstream, True, fused=True)
    for name, a, b in zip(["outputs", "x", "gamma", "beta"], ours, expected):
        scale = np.abs(b).max()
        assert np.abs(a - b).max() <= 1e-2 * scale, name  # bfloat16 keeps 8 bits of mantissa
    # The statistics are computed in float32 on both paths.
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), rtol=1e-2, atol=1e-3)
    assert keras.backend.standardize_dtype(fused.moving_mean.dtype) == "float32"


@pytest.mark.parametrize(
    "shape, kwargs, mask",
    [
        ((6, 3), {}, None),  # 2-D (the projector's batch norms)
        ((6, 3, 4, 4), {"axis": 1}, None),  # channels first
        ((6, 4, 4, 3), {"renorm": True}, None),
        ((6, 4, 4, 3), {}, np.ones((6, 4, 4), bool)),
    ],
)
def test_what_one_kernel_cannot_serve_keeps_keras_call(shape, kwargs, mask):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    plain, fused = _pair(shape, **kwargs)
    assert not fuses(fused, x, mask)
    ours = keras.ops.convert_to_numpy(fused_batch_normalization_call(fused, x, training=True, mask=mask))
    np.testing.assert_array_equal(ours, keras.ops.convert_to_numpy(plain(x, training=True, mask=mask)))


def test_synchronised_layers_keep_keras_call():
    layer = keras.layers.BatchNormalization()
    layer.build((2, 3, 3, 4))
    layer.synchronized = True
    assert not fuses(layer, np.zeros((2, 3, 3, 4), "float32"))


def test_the_block_leaves_the_layers_as_they_were_and_skips_subclasses():
    class Custom(keras.layers.BatchNormalization):
        def call(self, inputs, training=None, mask=None):
            return super().call(inputs, training=training, mask=mask)

    inputs = keras.Input((4, 4, 3))
    x = keras.layers.BatchNormalization(name="plain")(inputs)
    x = Custom(name="custom")(x)
    model = keras.Model(inputs, x)
    assert [layer.name for layer in plain_batch_normalizations(model)] == ["plain"]
    before = {layer.name: dict(vars(layer)) for layer in model.layers}
    with fused_batch_normalizations(model) as names, fused_batch_normalizations(model):
        assert names == ["plain"]
        model(np.ones((2, 4, 4, 3), "float32"), training=True)
    assert {layer.name: dict(vars(layer)) for layer in model.layers} == before


def _tiny_encoder():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="encoder_bn")(x)
    x = keras.layers.ReLU()(x)
    return keras.Model(inputs, x)


def _fused_calls(model, monkeypatch):
    from keras_barlow.layers import fused_batch_normalization as module

    calls = []
    original = module.fused_batch_normalization_call

    def spy(layer, *args, **kwargs):
        calls.append(layer.name)
        return original(layer, *args, **kwargs)

    monkeypatch.setattr(module, "fused_batch_normalization_call", spy)
    model(np.random.default_rng(0).random((4, 8, 8, 3), dtype="float32"), training=True)
    return calls


@pytest.mark.parametrize(
    "policy, option, fused",
    [
        ("float32", "auto", True),
        ("float32", False, False),
        ("mixed_bfloat16", "auto", True),
        ("mixed_float16", "auto", True),
        ("float32", True, True),
        ("mixed_bfloat16", False, False),
    ],
)
def test_barlow_twins_fuses_as_asked(policy, option, fused, monkeypatch):
    keras.config.set_dtype_policy(policy)
    model = BarlowTwins(_tiny_encoder(), projector_dims=(16, 16), fused_batchnorm=option)
    assert (_fused_calls(model, monkeypatch) == ["encoder_bn"]) is fused
    config = model.get_config()
    assert config["fused_batchnorm"] == option
    assert BarlowTwins.from_config(config).fused_batchnorm == option


def test_barlow_twins_refuses_an_unknown_option():
    with pytest.raises(ValueError, match=r'fused_batchnorm must be "auto", True or False, got \'yes\''):
        BarlowTwins(_tiny_encoder(), projector_dims=(16, 16), fused_batchnorm="yes")


def test_fit_with_the_fused_kernel_equals_keras_batch_norm():
    """A few SGD steps at a small learning rate: the fused and the plain model stay together."""
    views = np.random.default_rng(5).random((2, 32, 8, 8, 3), dtype="float32")
    weights = {}
    for option in (False, True):
        keras.utils.set_random_seed(0)
        model = BarlowTwins(_tiny_encoder(), projector_dims=(16, 16), fused_batchnorm=option)
        model.compile(optimizer=keras.optimizers.SGD(0.002))
        model.fit((views[0], views[1]), batch_size=8, epochs=1, shuffle=False, verbose=0)
        weights[option] = model.get_weights()
    for a, b in zip(weights[True], weights[False]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
