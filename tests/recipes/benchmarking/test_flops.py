"""benchmarking.flops: counts against hand counts and ResNet-18's published size."""

import keras
import pytest
from benchmarking import flops

from keras_barlow.backbones import resnet
from keras_barlow.layers import build_projector


def test_tiny_convnet_against_a_hand_count():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)  # 8·8 outputs × 3·3·3·4
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(x)  # 4·4 outputs × 3·3·4·8
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5)(x)  # 8·5
    model = keras.Model(inputs, outputs)
    assert flops.keras_forward_macs(model) == 64 * 108 + 16 * 288 + 40


def test_nested_models_and_the_projector_are_counted():
    projector = build_projector((32, 16), input_dim=8)
    assert flops.keras_forward_macs(projector) == 8 * 32 + 32 * 16
    inputs = keras.Input((8,))
    outer = keras.Model(inputs, projector(inputs))
    assert flops.keras_forward_macs(outer) == 8 * 32 + 32 * 16


def test_resnet18_at_224_px_has_its_published_1_8_gmacs():
    """torchvision lists ResNet-18 at 1.81 GFLOPS, counting multiply-adds (its 512→1000
    classifier included: 0.5 M); our encoder has no classifier."""
    macs = flops.keras_forward_macs(resnet(18, (224, 224, 3)))
    assert macs == pytest.approx(1.814e9 - 512_000, rel=2e-3)


def test_unknown_image_size_is_refused():
    with pytest.raises(ValueError, match="fixed image size"):
        flops.keras_forward_macs(resnet(18, (None, None, 3), small_images=True))


def test_step_flops_rule():
    # 2 views × N × (encoder + projector) MACs × 2 FLOPs, plus C (2·N·D²), all × 3.
    step = flops.barlow_twins_step_flops(1_000_000, 5_000, batch_size=128, embedding_dim=2048)
    forward = 2 * 128 * 2 * 1_005_000 + 2 * 128 * 2048**2
    assert step == pytest.approx(3 * forward)


def test_matmul_rate_is_two_n_cubed_over_the_fastest_call():
    calls = []

    def fake_matmul():
        calls.append(1)

    times = iter([0.0, 0.2, 1.0, 1.1, 2.0, 2.4])  # timed calls of 0.2, 0.1 and 0.4 s
    rate = flops.matmul_flops_per_second(fake_matmul, n=100, repeats=3, clock=lambda: next(times))
    assert len(calls) == 4 and rate == pytest.approx(2 * 100**3 / 0.1)  # 1 untimed warm-up call


def test_matmul_rate_counts_every_product_of_a_call():
    times = iter([1.0, 1.5])  # one timed call of 0.5 s
    rate = flops.matmul_flops_per_second(lambda: None, n=10, repeats=1, clock=lambda: next(times), products=3)
    assert rate == pytest.approx(3 * 2 * 10**3 / 0.5)


@pytest.mark.tensorflow_only
def test_tensorflow_matmul_computes_independent_products():
    import numpy as np
    import tensorflow as tf

    products = flops.tensorflow_matmul(n=8, products=2)()
    assert len(products) == 2
    for i, product in enumerate(products):
        a = tf.random.stateless_normal((8, 8), seed=(i, 1)).numpy()
        b = tf.random.stateless_normal((8, 8), seed=(i, 2)).numpy()
        np.testing.assert_allclose(product, a @ b, rtol=1e-5, atol=1e-5)
