"""keras_barlow.layers.one_by_one_map_convolution: convolutions with a 1×1 map on either side, and
pointwise convolutions, as matrix products — exact, and applied only inside `BarlowTwins`' forward
pass, never left on the caller's layers."""

import keras
import numpy as np
import pytest

from keras_barlow import BarlowTwins, resnet
from keras_barlow.layers.one_by_one_map_convolution import (
    has_one_output_position,
    is_pointwise,
    matmul_convolution_op,
    matmul_convolutions,
    plain_convolutions,
    takes_centre_tap_only,
)


def _pair(shape, **kwargs):
    """A plain Conv2D and a copy with the same weights (to run inside `matmul_convolutions`)."""
    plain = keras.layers.Conv2D(**kwargs)
    plain.build(shape)
    centre = keras.layers.Conv2D.from_config(plain.get_config() | {"name": "centre"})
    centre.build(shape)
    centre.set_weights(plain.get_weights())
    return plain, centre


@pytest.mark.parametrize(
    "kernel_size, dilation, data_format",
    [(3, 1, "channels_last"), (5, 2, "channels_last"), (3, 1, "channels_first")],
)
def test_equals_the_full_convolution_on_1x1_maps(kernel_size, dilation, data_format):
    shape = (6, 1, 1, 5) if data_format == "channels_last" else (6, 5, 1, 1)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    plain, centre = _pair(
        shape, filters=7, kernel_size=kernel_size, padding="same", dilation_rate=dilation,
        data_format=data_format, bias_initializer="random_normal",
    )  # fmt: skip
    assert takes_centre_tap_only(centre, shape)
    with matmul_convolutions(centre) as names:
        ours = keras.ops.convert_to_numpy(centre(x))
    assert names == ["centre"]
    np.testing.assert_allclose(ours, keras.ops.convert_to_numpy(plain(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.tensorflow_only  # gradients through tf.GradientTape
def test_gradients_equal_the_full_convolutions():
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(1).normal(size=(8, 1, 1, 6)).astype("float32"))
    plain, centre = _pair(x.shape, filters=4, kernel_size=3, padding="same", use_bias=False)
    with tf.GradientTape(persistent=True) as tape, matmul_convolutions(centre):
        tape.watch(x)
        ours = tf.reduce_sum(tf.square(centre(x)))
        full = tf.reduce_sum(tf.square(plain(x)))
    np.testing.assert_allclose(tape.gradient(ours, x), tape.gradient(full, x), rtol=1e-5, atol=1e-5)
    ours_kernel, full_kernel = tape.gradient(ours, centre.kernel), tape.gradient(full, plain.kernel)
    np.testing.assert_allclose(ours_kernel, full_kernel, rtol=1e-5, atol=1e-5)
    # Only the centre tap has a gradient: the others only ever meet padding zeros.
    assert np.count_nonzero(np.abs(ours_kernel.numpy()).sum(axis=(2, 3))) == 1


@pytest.mark.parametrize(
    "kernel_size, strides, shape",
    [
        (3, 2, (6, 4, 4, 5)),  # ResNet's padded 3×3 stride-2 convolution of a 2×2 map
        (1, 2, (6, 2, 2, 5)),  # its 1×1 stride-2 shortcut
        (3, 1, (6, 3, 3, 5)),
        ((3, 1), (2, 1), (6, 4, 1, 5)),
    ],
)
def test_one_output_position_equals_the_full_convolution(kernel_size, strides, shape):
    x = np.random.default_rng(5).normal(size=shape).astype("float32")
    plain, ours = _pair(
        shape, filters=7, kernel_size=kernel_size, strides=strides, padding="valid",
        bias_initializer="random_normal",
    )  # fmt: skip
    assert has_one_output_position(ours, shape) and not takes_centre_tap_only(ours, shape)
    with matmul_convolutions(ours) as names:
        result = keras.ops.convert_to_numpy(ours(x))
    assert names == ["centre"] and result.shape == (6, 1, 1, 7)
    np.testing.assert_allclose(result, keras.ops.convert_to_numpy(plain(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.tensorflow_only  # gradients through tf.GradientTape
def test_one_output_position_gradients_equal_the_full_convolutions():
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(6).normal(size=(8, 4, 4, 6)).astype("float32"))
    plain, ours = _pair(x.shape, filters=4, kernel_size=3, strides=2, padding="valid", use_bias=False)
    with tf.GradientTape(persistent=True) as tape, matmul_convolutions(ours):
        tape.watch(x)
        loss_ours = tf.reduce_sum(tf.sin(ours(x)))
        loss_full = tf.reduce_sum(tf.sin(plain(x)))
    input_ours, input_full = tape.gradient(loss_ours, x).numpy(), tape.gradient(loss_full, x).numpy()
    np.testing.assert_allclose(input_ours, input_full, rtol=1e-5, atol=1e-5)
    # The window is the top-left 3×3 corner: the last row and column get no gradient.
    assert not input_ours[:, 3, :, :].any() and not input_ours[:, :, 3, :].any()
    np.testing.assert_allclose(
        tape.gradient(loss_ours, ours.kernel), tape.gradient(loss_full, plain.kernel), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({}, (2, 2, 2, 3)),  # a 2×2 map: every tap meets data
        ({"strides": 2}, (2, 1, 1, 3)),
        ({"padding": "valid"}, (2, 4, 4, 3)),  # two output positions per axis
        ({"padding": "valid", "strides": 2}, (2, 5, 5, 3)),
        ({"padding": "valid", "dilation_rate": 2}, (2, 5, 5, 3)),
        ({"padding": "valid", "data_format": "channels_first"}, (2, 3, 3, 3)),
        ({"groups": 3}, (2, 1, 1, 3)),
        ({"kernel_size": 2}, (2, 1, 1, 3)),  # even kernel: no centre
        ({}, (2, None, None, 3)),  # size unknown when traced
        ({"padding": "valid"}, (2, None, None, 3)),
    ],
)
def test_every_other_convolution_is_the_plain_one(kwargs, shape):
    layer = keras.layers.Conv2D(**({"filters": 3, "kernel_size": 3, "padding": "same"} | kwargs))
    assert not takes_centre_tap_only(layer, shape) and not has_one_output_position(layer, shape)
    if None not in shape:
        x = np.random.default_rng(2).normal(size=shape).astype("float32")
        layer.build(shape)
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(matmul_convolution_op(layer, x, layer.kernel)),
            keras.ops.convert_to_numpy(layer.convolution_op(x, layer.kernel)),
        )


def _matmul_layers(encoder):
    return [
        layer.name
        for layer in plain_convolutions(encoder)
        if takes_centre_tap_only(layer, tuple(layer.input.shape))
        or has_one_output_position(layer, tuple(layer.input.shape))
    ]


def test_the_quick_starts_encoders_have_no_1x1_map():
    """The quick start's encoders (16 px, small-image stem: maps of 16 down to 2 px) compute every
    convolution as Keras does, so their float32 runs repeat the shipped results to the digit."""
    for grayscale in (False, True):
        assert _matmul_layers(resnet(18, (16, 16, 3), small_images=True, width=4, grayscale=grayscale)) == []


def test_barlow_twins_leaves_the_callers_encoder_unchanged(tmp_path):
    encoder = resnet(18, (32, 32, 3), small_images=False, width=8)
    reference = resnet(18, (32, 32, 3), small_images=False, width=8)
    reference.set_weights(encoder.get_weights())
    before = {layer.name: dict(vars(layer)) for layer in encoder.layers}
    model = BarlowTwins(encoder, projector_dims=(16, 16))
    assert model.matmul_on_1x1_maps
    x = np.random.default_rng(3).normal(size=(4, 32, 32, 3)).astype("float32")
    features = keras.ops.convert_to_numpy(model(x, training=True))
    # The encoder's last stage works on 1×1 maps at 32 px: these five take the matrix product.
    assert _matmul_layers(encoder) == [
        "stack3_block0_1_conv",
        "stack3_block0_0_conv",
        "stack3_block0_2_conv",
        "stack3_block1_1_conv",
        "stack3_block1_2_conv",
    ]
    after = {layer.name: dict(vars(layer)) for layer in encoder.layers}
    assert after.keys() == before.keys()
    for name, attributes in after.items():
        assert "convolution_op" not in attributes, name
        assert attributes.keys() == before[name].keys(), name
    expected = keras.ops.convert_to_numpy(model.pooling(reference(x, training=True)))
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)
    path = str(tmp_path / "encoder.keras")
    encoder.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_config() == reference.get_config() | {"name": loaded.name}


def test_turned_off_the_model_runs_the_plain_convolution(monkeypatch):
    from keras_barlow.layers import one_by_one_map_convolution

    calls = []
    original = one_by_one_map_convolution.matmul_convolution_op

    def counting(layer, inputs, kernel, *args):
        calls.append(layer.name)
        return original(layer, inputs, kernel, *args)

    monkeypatch.setattr(one_by_one_map_convolution, "matmul_convolution_op", counting)
    x = np.random.default_rng(4).normal(size=(4, 32, 32, 3)).astype("float32")
    encoder = resnet(18, (32, 32, 3), small_images=False, width=8)
    on = BarlowTwins(encoder, projector_dims=(16, 16))
    off = BarlowTwins.from_config(on.get_config() | {"matmul_on_1x1_maps": False})
    assert off.get_config()["matmul_on_1x1_maps"] is False
    off.set_weights(on.get_weights())
    calls.clear()
    plain = keras.ops.convert_to_numpy(off(x, training=True))
    assert calls == []
    ours = keras.ops.convert_to_numpy(on(x, training=True))
    assert len(calls) == 20  # every plain Conv2D of the encoder, through the matrix-product op
    np.testing.assert_allclose(ours, plain, rtol=1e-5, atol=1e-5)


def test_nested_blocks_restore_on_the_last_exit():
    layer = keras.layers.Conv2D(2, 3, padding="same")
    layer.build((1, 1, 1, 3))
    with matmul_convolutions(layer):
        with matmul_convolutions(layer):
            assert "convolution_op" in vars(layer)
        assert "convolution_op" in vars(layer)
    assert "convolution_op" not in vars(layer)


def test_a_conv_with_its_own_convolution_op_is_left_alone():
    class StandardizedConv2D(keras.layers.Conv2D):
        def convolution_op(self, inputs, kernel):
            mean, var = keras.ops.moments(kernel, axes=[0, 1, 2], keepdims=True)
            return super().convolution_op(inputs, (kernel - mean) / keras.ops.sqrt(var + 1e-10))

    inputs = keras.Input((1, 1, 3))
    model = keras.Model(inputs, StandardizedConv2D(4, 3, padding="same", name="ws")(inputs))
    assert plain_convolutions(model) == []
    with matmul_convolutions(model) as names:
        assert names == []


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_pointwise_equals_the_full_convolution(padding):
    shape = (3, 5, 4, 6)
    x = np.random.default_rng(5).normal(size=shape).astype("float32")
    plain, ours = _pair(shape, filters=7, kernel_size=1, padding=padding, bias_initializer="random_normal")
    assert is_pointwise(ours, shape) and not takes_centre_tap_only(ours, shape)
    with matmul_convolutions(ours, on_1x1_maps=False, pointwise=True) as names:
        out = keras.ops.convert_to_numpy(ours(x))
    assert names == ["centre"] and out.shape == (3, 5, 4, 7)
    np.testing.assert_allclose(out, keras.ops.convert_to_numpy(plain(x)), rtol=1e-5, atol=1e-5)
    with matmul_convolutions(ours, on_1x1_maps=True, pointwise=False) as names:
        pass
    assert names == ["centre"]  # overridden, but on a 5×4 map it computes the plain convolution


@pytest.mark.tensorflow_only  # gradients through tf.GradientTape
@pytest.mark.parametrize("policy, tolerance", [("float32", 1e-5), ("mixed_bfloat16", 2e-2)])
def test_pointwise_gradients_equal_the_full_convolutions(policy, tolerance):
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(6).normal(size=(4, 6, 6, 16)).astype("float32"))
    plain, ours = _pair(x.shape, filters=24, kernel_size=1, dtype=policy)
    block = matmul_convolutions(ours, on_1x1_maps=False, pointwise=True)
    with tf.GradientTape(persistent=True) as tape, block:
        tape.watch(x)
        y_ours, y_plain = ours(x), plain(x)
        loss_ours = tf.reduce_sum(tf.square(tf.cast(y_ours, "float32")))
        loss_plain = tf.reduce_sum(tf.square(tf.cast(y_plain, "float32")))
    assert y_ours.dtype == y_plain.dtype == ("bfloat16" if policy == "mixed_bfloat16" else "float32")
    for ours_grad, plain_grad in [
        (tape.gradient(loss_ours, x), tape.gradient(loss_plain, x)),
        (tape.gradient(loss_ours, ours.kernel), tape.gradient(loss_plain, plain.kernel)),
    ]:
        scale = float(tf.reduce_max(tf.abs(plain_grad)))
        np.testing.assert_allclose(ours_grad / scale, plain_grad / scale, atol=tolerance)


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({"strides": 2}, (2, 4, 4, 3)),
        ({"kernel_size": 3}, (2, 4, 4, 3)),
        ({"data_format": "channels_first"}, (2, 3, 4, 4)),
        ({"groups": 3}, (2, 4, 4, 3)),
        ({}, (2, None, None, 3)),  # map size unknown when traced
    ],
)
def test_other_convolutions_are_not_pointwise(kwargs, shape):
    layer = keras.layers.Conv2D(**({"filters": 3, "kernel_size": 1} | kwargs))
    assert not is_pointwise(layer, shape)


def test_auto_takes_the_matrix_product_for_bfloat16_layers_on_a_cpu_tensorflow():
    from keras_barlow.models.barlow_twins import _pointwise_matmul_auto

    cpu_tensorflow = keras.backend.backend() == "tensorflow"
    if cpu_tensorflow:
        import tensorflow as tf

        cpu_tensorflow = not tf.config.list_physical_devices("GPU")
    assert _pointwise_matmul_auto(keras.layers.Conv2D(2, 1, dtype="mixed_bfloat16")) is cpu_tensorflow
    assert _pointwise_matmul_auto(keras.layers.Conv2D(2, 1, dtype="bfloat16")) is cpu_tensorflow
    assert _pointwise_matmul_auto(keras.layers.Conv2D(2, 1)) is False
    assert _pointwise_matmul_auto(keras.layers.Conv2D(2, 1, dtype="mixed_float16")) is False


def _bottleneck_encoder():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = keras.layers.Conv2D(16, 1, use_bias=False, name="expand")(x)  # pointwise
    x = keras.layers.Conv2D(8, 1, strides=2, use_bias=False, name="shortcut")(x)  # stride 2: plain
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, keras.layers.ReLU()(x), name="bottleneck")


@pytest.mark.parametrize("option", ["auto", True, False])
def test_barlow_twins_pointwise_option(option, monkeypatch):
    from keras_barlow.layers import one_by_one_map_convolution

    calls = []
    original = one_by_one_map_convolution.matmul_convolution_op

    def counting(layer, inputs, kernel, on_1x1_maps=True, pointwise=False):
        calls.append((layer.name, pointwise))
        return original(layer, inputs, kernel, on_1x1_maps, pointwise)

    monkeypatch.setattr(one_by_one_map_convolution, "matmul_convolution_op", counting)
    model = BarlowTwins(_bottleneck_encoder(), projector_dims=(16, 16), pointwise_matmul=option)
    config = model.get_config()
    assert config["pointwise_matmul"] == option
    assert BarlowTwins.from_config(config).pointwise_matmul == option
    x = np.random.default_rng(7).normal(size=(4, 8, 8, 3)).astype("float32")
    features = keras.ops.convert_to_numpy(model(x, training=True))
    plain = BarlowTwins(
        model.encoder, projector_dims=(16, 16), matmul_on_1x1_maps=False, pointwise_matmul=False
    )
    expected = keras.ops.convert_to_numpy(plain(x, training=True))
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)
    # float32 layers: "auto" leaves them to the 1×1-map check only; True takes the pointwise product.
    assert calls == [("stem", option is True), ("expand", option is True), ("shortcut", option is True)]


def test_barlow_twins_refuses_an_unknown_pointwise_option():
    with pytest.raises(ValueError, match=r'pointwise_matmul must be "auto", True or False, got \'on\''):
        BarlowTwins(_bottleneck_encoder(), projector_dims=(16, 16), pointwise_matmul="on")
