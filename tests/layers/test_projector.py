"""FeaturePooling, build_projector and unsynchronized_batchnorm."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_barlow.layers import FeaturePooling, build_projector, unsynchronized_batchnorm


def test_projector_follows_the_paper():
    projector = build_projector((32, 32, 16), input_dim=8)
    kinds = [type(layer).__name__ for layer in projector.layers]
    assert kinds == ["Dense", "BatchNormalization", "ReLU"] * 2 + ["Dense"]
    assert all(not layer.use_bias for layer in projector.layers if isinstance(layer, keras.layers.Dense))
    for bn in projector.layers[1::3]:
        assert (bn.epsilon, bn.momentum) == (1e-5, 0.9)
    assert projector.output_shape == (None, 16)
    with pytest.raises(ValueError, match="projector_dims"):
        build_projector(())


@pytest.mark.parametrize(
    "shape, mode, expected",
    [
        ((2, 3, 3, 4), "auto", lambda x: x.mean(axis=(1, 2))),
        ((2, 5, 4), "auto", lambda x: x[:, 0]),
        ((2, 5, 4), "mean_tokens", lambda x: x.mean(axis=1)),
        ((2, 4), "auto", lambda x: x),
    ],
)
def test_feature_pooling(shape, mode, expected):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    np.testing.assert_allclose(ops.convert_to_numpy(FeaturePooling(mode)(x)), expected(x), rtol=1e-6)


def test_feature_pooling_rejects_unknown_modes_and_ranks():
    with pytest.raises(ValueError, match="pooling mode"):
        FeaturePooling("max")
    with pytest.raises(ValueError, match="got shape"):
        FeaturePooling()(np.zeros((2, 3, 3, 3, 4), "float32"))


@pytest.mark.tensorflow_only  # Keras accepts synchronized=True only on TensorFlow
def test_unsynchronized_batchnorm_only_touches_synchronized_batch_norms():
    synced = keras.layers.BatchNormalization(synchronized=True)
    plain = keras.layers.BatchNormalization()
    dense = keras.layers.Dense(2)
    with unsynchronized_batchnorm([synced, plain, dense]):
        assert not synced.synchronized and not plain.synchronized
    assert synced.synchronized and not plain.synchronized
