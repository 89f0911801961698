"""ResNet encoders: KerasHub backbones with KerasCV's pyramid_level_inputs, and BarlowTwins
on KerasHub ResNet and ViT backbones."""

import keras
import keras_hub
import numpy as np
import pytest

from keras_barlow import BarlowTwins
from keras_barlow.backbones import BarlowResNetBackbone, Grayscale, resnet

only_in_tensorflow_pass = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="KerasCV models compile for ~40 s under JAX on CPU; NOTES §9 measured them on JAX",
)
# Building a network eagerly on JAX compiles an initialiser per new weight shape (~10-20 s
# of CPU per full-width ResNet here). Architecture facts are the same on every backend (the
# layers are plain Keras layers), so the full-width checks run in the TensorFlow pass, and
# the tests that also run on JAX share one small configuration (same shapes, cached code).
architecture_check = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="backend-independent architecture check at full width; run in the TensorFlow pass",
)
SMALL = dict(depth=18, image_shape=(16, 16, 3), small_images=True, width=4)

# torchvision's resnetN(): parameter count without the final fully connected layer.
TORCHVISION_PARAMETERS = {
    18: 11_689_512 - 513_000,
    34: 21_797_672 - 513_000,
    50: 25_557_032 - 2_049_000,
    101: 44_549_160 - 2_049_000,
    152: 60_192_808 - 2_049_000,
}


def _trainable_parameters(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@architecture_check
@pytest.mark.parametrize(
    "depth",
    [18, 50] + [pytest.param(d, marks=pytest.mark.slow) for d in (34, 152)],
)
def test_parameter_counts_match_torchvision(depth):
    encoder = resnet(depth)
    assert _trainable_parameters(encoder) == TORCHVISION_PARAMETERS[depth]
    # The usual figures: ResNet-18 ≈ 11.2 M, ResNet-50 ≈ 23.5 M without the classifier.
    known = {18: 11.2, 34: 21.3, 50: 23.5, 101: 42.5, 152: 58.1}[depth]
    assert _trainable_parameters(encoder) / 1e6 == pytest.approx(known, abs=0.05)
    assert encoder.output_shape[-1] == (512 if depth < 50 else 2048)
    assert isinstance(encoder, keras_hub.models.ResNetBackbone)


@architecture_check
@pytest.mark.parametrize(
    "depth, block_type, blocks", [(18, "basic_block", [2, 2, 2, 2]), (50, "bottleneck_block", [3, 4, 6, 3])]
)
def test_same_graph_and_outputs_as_keras_hub_resnet(depth, block_type, blocks):
    ours = resnet(depth, (32, 32, 3), zero_init_residual=False)
    hub = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=blocks,
        stackwise_num_strides=[1, 2, 2, 2],
        block_type=block_type,
        image_shape=(32, 32, 3),
    )

    def weighted_layers(model):
        return {
            layer.name: [tuple(w.shape) for w in layer.weights] for layer in model.layers if layer.weights
        }

    assert weighted_layers(ours) == weighted_layers(hub)
    assert [layer.name for layer in ours.layers[1:]] == [layer.name for layer in hub.layers[1:]]
    for layer in hub.layers[1:]:
        ours.get_layer(layer.name).set_weights(layer.get_weights())
    images = np.random.default_rng(0).random((2, 32, 32, 3), dtype="float32")
    np.testing.assert_allclose(_numpy(ours(images)), _numpy(hub(images)), rtol=1e-5, atol=1e-5)
    assert {k: tuple(v.shape) for k, v in ours.pyramid_outputs.items()} == {
        k: tuple(v.shape) for k, v in hub.pyramid_outputs.items()
    }
    assert ours.pyramid_level_inputs == {
        f"P{i + 2}": f"stack{i}_block{n - 1}_out" for i, n in enumerate(blocks)
    }


def test_small_images_stem():
    encoder = resnet(**SMALL)
    names = [layer.name for layer in encoder.layers]
    assert "pool1_pool" not in names and "conv1_pad" not in names
    stem = encoder.get_layer("conv1_conv")
    assert stem.kernel_size == (3, 3) and stem.strides == (1, 1)
    # Pn is 2^n times smaller than the image: the stacks are at strides 1, 2, 4, 8.
    shapes = {k: tuple(v.shape[1:]) for k, v in encoder.pyramid_outputs.items()}
    assert shapes == {"P0": (16, 16, 4), "P1": (8, 8, 8), "P2": (4, 4, 16), "P3": (2, 2, 32)}
    assert encoder.pyramid_level_inputs == {f"P{i}": f"stack{i}_block1_out" for i in range(4)}
    assert encoder.output_shape == (None, 2, 2, 32)


@architecture_check
def test_imagenet_stem_levels_and_width():
    standard = resnet(18, (64, 64, 3), width=8)
    assert {k: tuple(v.shape[1:]) for k, v in standard.pyramid_outputs.items()} == {
        "P2": (16, 16, 8),
        "P3": (8, 8, 16),
        "P4": (4, 4, 32),
        "P5": (2, 2, 64),
    }
    assert resnet(50, width=8).output_shape[-1] == 256  # 32 × width after bottlenecks


@pytest.mark.parametrize(
    "kwargs, last_bn, blocks",
    [(SMALL, "2", 8), pytest.param(dict(depth=50, width=8), "3", 16, marks=architecture_check)],
)
def test_zero_init_residual(kwargs, last_bn, blocks):
    def gammas(model):
        return {
            layer.name: _numpy(layer.gamma)
            for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
        }

    zero = gammas(resnet(**kwargs))
    last = [name for name in zero if name.endswith(f"_{last_bn}_bn") and "block" in name]
    assert len(last) == blocks
    for name, gamma in zero.items():
        np.testing.assert_array_equal(gamma, 0.0 if name in last else 1.0, err_msg=name)
    assert all((g == 1.0).all() for g in gammas(resnet(**kwargs, zero_init_residual=False)).values())


def test_zero_init_blocks_start_as_identity():
    # With zero-initialised residual branches every block is relu(shortcut); stack 0 of
    # ResNet-18 has identity shortcuts, so its output is the (non-negative) stem output.
    encoder = resnet(**SMALL)
    probe = keras.Model(
        encoder.inputs, [encoder.get_layer("conv1_relu").output, encoder.pyramid_outputs["P0"]]
    )
    stem, p0 = probe(np.random.default_rng(0).random((2, 16, 16, 3), dtype="float32"))
    np.testing.assert_allclose(_numpy(p0), _numpy(stem), rtol=1e-6, atol=1e-6)


@architecture_check
def test_pytorch_batchnorm_and_initialisation():
    encoder = resnet(50, width=8)
    for layer in encoder.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert (layer.epsilon, layer.momentum) == (1e-5, 0.9), layer.name
    kernel = _numpy(encoder.get_layer("stack3_block0_2_conv").kernel)  # 3×3, 64 → 64 filters
    fan_out = 3 * 3 * kernel.shape[-1]
    assert kernel.std() == pytest.approx(np.sqrt(2.0 / fan_out), rel=0.05)


def test_keras_round_trip_keeps_pyramid_level_inputs(tmp_path):
    encoder = resnet(**SMALL)
    path = tmp_path / "encoder.keras"
    encoder.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded) is BarlowResNetBackbone
    assert loaded.pyramid_level_inputs == encoder.pyramid_level_inputs
    config = loaded.get_config()
    assert (config["depth"], config["width"], config["small_images"], config["zero_init_residual"]) == (
        18,
        4,
        True,
        True,
    )
    images = np.random.default_rng(1).random((2, 16, 16, 3), dtype="float32")
    np.testing.assert_array_equal(_numpy(loaded(images)), _numpy(encoder(images)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(depth=20), "depth"),
        (dict(depth=18, width=0), "width"),
        (dict(depth=18, image_shape=(32, 32)), "image_shape"),
        (dict(depth=18, image_shape=(16, 16, 1), grayscale=True), r"3 channels, got \(16, 16, 1\)"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        resnet(**kwargs)


def test_grayscale_layer_is_torchvision_luma_scaled_to_sum_one():
    rgb = np.random.default_rng(2).random((2, 5, 4, 3), dtype="float32")
    weights = np.array([0.2989, 0.587, 0.114]) / (0.2989 + 0.587 + 0.114)
    expected = (rgb.astype(np.float64) @ weights)[..., None]
    np.testing.assert_allclose(_numpy(Grayscale()(rgb)), expected, atol=1e-6)
    first = np.moveaxis(rgb, -1, 1)
    np.testing.assert_allclose(
        _numpy(Grayscale("channels_first")(first)), np.moveaxis(expected, -1, 1), atol=1e-6
    )
    grey = np.repeat(rgb[..., :1], 3, axis=-1)  # a grey image maps to itself
    np.testing.assert_allclose(_numpy(Grayscale()(grey)), rgb[..., :1], atol=1e-6)


def test_grayscale_stem_is_a_one_channel_resnet_behind_rgb_input(tmp_path):
    """Same seed: the same weights as a 1-channel ResNet, the same features for grey images
    repeated to RGB; the option survives a .keras round trip and is off by default."""
    small = dict(SMALL, image_shape=(16, 16, 1))
    keras.utils.set_random_seed(5)
    grey = resnet(**dict(SMALL, grayscale=True))
    keras.utils.set_random_seed(5)
    one_channel = resnet(**small)
    assert grey.get_layer("conv1_conv").kernel.shape == (3, 3, 1, 4)
    assert len(grey.weights) == len(one_channel.weights)
    for a, b in zip(grey.get_weights(), one_channel.get_weights()):
        np.testing.assert_array_equal(a, b)
    images = np.random.default_rng(3).random((2, 16, 16, 1), dtype="float32")
    rgb = np.repeat(images, 3, axis=-1)
    np.testing.assert_allclose(_numpy(grey(rgb)), _numpy(one_channel(images)), atol=1e-5)
    path = tmp_path / "grey.keras"
    grey.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded) is BarlowResNetBackbone and loaded.grayscale
    np.testing.assert_array_equal(_numpy(loaded(rgb)), _numpy(grey(rgb)))
    config = resnet(**SMALL).get_config()
    assert config["grayscale"] is False
    del config["grayscale"]  # a config saved before the option existed
    assert not BarlowResNetBackbone.from_config(config).grayscale


def _views(size, n=16, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random((n, size, size, 3), dtype="float32")
    return a, np.clip(a + 0.1 * rng.normal(size=a.shape), 0, 1).astype("float32")


def test_barlow_twins_on_a_resnet():
    encoder = resnet(**SMALL)
    model = BarlowTwins(encoder, projector_dims=(16, 16))
    assert model.feature_dim == 32
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(_views(16), batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"]).all()


def test_barlow_twins_on_a_vit_pools_the_class_token():
    vit = keras_hub.models.ViTBackbone(
        image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16
    )
    model = BarlowTwins(vit, projector_dims=(16, 16))
    assert model.feature_dim == 8
    if keras.backend.backend() == "tensorflow":  # pooling is backend-neutral; JAX compiles slowly
        images = _views(16)[0][:4]
        np.testing.assert_allclose(_numpy(model(images)), _numpy(vit(images))[:, 0, :], rtol=1e-6, atol=1e-6)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(_views(16), batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"]).all()


@only_in_tensorflow_pass
@pytest.mark.slow
def test_trains_inside_keras_cv_deeplab():
    import keras_cv

    encoder = resnet(18, (64, 64, 3), width=8)
    segmenter = keras_cv.models.DeepLabV3Plus(num_classes=3, backbone=encoder)
    segmenter.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy())
    rng = np.random.default_rng(0)
    images = rng.random((4, 64, 64, 3), dtype="float32")
    masks = rng.integers(0, 3, (4, 64, 64, 1))
    before = _numpy(encoder.get_layer("conv1_conv").kernel).copy()
    history = segmenter.fit(images, masks, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert not np.array_equal(before, _numpy(encoder.get_layer("conv1_conv").kernel))


# --- bad input, as a new user gives it: an error naming the problem and the fix -------------


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((19, (32, 32, 3)), {}, r"depth must be one of \[18, 34, 50, 101, 152\], got 19"),
        (
            (18, (32, 32, 3)),
            {"width": 0},
            r"width must be a positive integer \(64 for the standard ResNets\), got 0",
        ),
        ((18, (32, 32)), {}, r"image_shape must be \(height, width, channels\), got \(32, 32\)"),
    ],
    ids=["depth-19", "width-0", "image-shape-without-channels"],
)
def test_resnet_refuses_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        resnet(*args, **kwargs)
