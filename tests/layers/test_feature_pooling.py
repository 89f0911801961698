"""FeaturePooling: the encoder's output, whatever its rank, to `(batch, dim)` features."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_barlow import BarlowTwins
from keras_barlow.layers import FeaturePooling


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


# --- bad input, as a new user gives it: an error naming the problem and the fix -------------


def encoder_with_output(rank):
    inputs = keras.Input((16, 16, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    if rank == 1:
        return keras.Model(inputs, keras.layers.Lambda(lambda f: keras.ops.mean(f, axis=-1))(features))
    return keras.Model(inputs, keras.layers.Reshape((2, 2, 1, 1))(features))


@pytest.mark.parametrize("rank", [5, 1])
def test_an_encoder_output_that_cannot_be_pooled_is_refused_when_built(rank):
    with pytest.raises(ValueError, match=r"must output \(batch, dim\), \(batch, tokens, dim\).*got.*shape"):
        BarlowTwins(encoder_with_output(rank), projector_dims=(8,))
