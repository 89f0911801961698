"""build_projector, check_projector_dims (what `projector_dims` may be, as `BarlowTwins`
receives it) and unsynchronized_batchnorm."""

import keras
import pytest
from helpers import tiny_encoder

from keras_barlow import BarlowTwins
from keras_barlow.layers import build_projector, unsynchronized_batchnorm


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


@pytest.mark.tensorflow_only  # Keras accepts synchronized=True only on TensorFlow
def test_unsynchronized_batchnorm_only_touches_synchronized_batch_norms():
    synced = keras.layers.BatchNormalization(synchronized=True)
    plain = keras.layers.BatchNormalization()
    dense = keras.layers.Dense(2)
    with unsynchronized_batchnorm([synced, plain, dense]):
        assert not synced.synchronized and not plain.synchronized
    assert synced.synchronized and not plain.synchronized


# --- bad input, as a new user gives it: an error naming the problem and the fix -------------


def test_fractional_projector_size_is_refused():
    with pytest.raises(ValueError, match=r"projector_dims.*32\.7.*integer"):
        BarlowTwins(tiny_encoder(16, filters=4), projector_dims=(32.7,))


@pytest.mark.parametrize("dims", [(0,), (-8,), ()])
def test_non_positive_or_empty_projector_is_refused(dims):
    with pytest.raises(ValueError, match=r"projector_dims must be a non-empty list of positive sizes"):
        BarlowTwins(tiny_encoder(16, filters=4), projector_dims=dims)


def test_a_string_projector_is_refused():
    with pytest.raises(ValueError, match=r"projector_dims.*'512'.*\(512,\)"):
        BarlowTwins(tiny_encoder(16, filters=4), projector_dims="512")


@pytest.mark.parametrize(
    ("dims", "message"),
    [
        (512, r"projector_dims.*single number 512.*\(512,\)"),
        ("8192-8192", r"projector_dims.*'8192-8192'.*\(8192, 8192\)"),
        ((float("nan"),), r"projector_dims.*nan is not an integer"),
    ],
    ids=["projector-int", "projector-dashes", "projector-nan"],
)
def test_barlow_twins_refuses_bad_projector_dims_when_built(dims, message):
    with pytest.raises(ValueError, match=message):
        BarlowTwins(
            keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.Flatten()]), projector_dims=dims
        )
