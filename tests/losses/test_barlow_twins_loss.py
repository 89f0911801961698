"""The Barlow Twins loss against an independent NumPy reference."""

import numpy as np
import pytest
from keras import ops

from keras_barlow import losses


def numpy_loss(z_a, z_b, lambd, scale_loss=1.0, eps=1e-5):
    """Straight from the paper / official code, in float64."""
    z_a, z_b = np.asarray(z_a, np.float64), np.asarray(z_b, np.float64)
    n = z_a.shape[0]
    za = (z_a - z_a.mean(0)) / np.sqrt(z_a.var(0) + eps)  # np.var is biased (ddof=0)
    zb = (z_b - z_b.mean(0)) / np.sqrt(z_b.var(0) + eps)
    c = za.T @ zb / n
    on = ((1 - np.diag(c)) ** 2).sum()
    off = (c**2).sum() - (np.diag(c) ** 2).sum()
    return c, scale_loss * (on + lambd * off), on, off


@pytest.mark.parametrize("n,d", [(8, 4), (32, 16), (100, 7), (5, 64)])
@pytest.mark.parametrize("lambd", [0.0, 0.0051, 0.1])
def test_loss_matches_numpy(n, d, lambd):
    rng = np.random.default_rng(n * d)
    z_a = rng.normal(size=(n, d)).astype("float32") * rng.uniform(0.5, 3, size=d).astype("float32")
    z_b = (0.7 * z_a + rng.normal(size=(n, d)) + 2.0).astype("float32")
    c_ref, loss_ref, on_ref, off_ref = numpy_loss(z_a, z_b, lambd, scale_loss=0.024)
    terms = losses.barlow_twins_terms(z_a, z_b, lambd=lambd, scale_loss=0.024)
    np.testing.assert_allclose(
        ops.convert_to_numpy(losses.cross_correlation(z_a, z_b)), c_ref, rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(float(terms["loss"]), loss_ref, rtol=1e-4)
    np.testing.assert_allclose(float(terms["on_diag"]), on_ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(terms["off_diag"]), off_ref, rtol=1e-4)
    np.testing.assert_allclose(
        float(losses.barlow_twins_loss(z_a, z_b, lambd=lambd, scale_loss=0.024)), loss_ref, rtol=1e-4
    )


def test_identical_whitened_views_have_no_invariance_loss():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(512, 8))
    z = (z - z.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(z.T, bias=True))).T  # whiten
    terms = losses.barlow_twins_terms(z.astype("float32"), z.astype("float32"))
    assert float(terms["on_diag"]) < 1e-6
    assert float(terms["off_diag"]) < 1e-6


def test_loss_is_invariant_to_batch_permutation_and_per_view_affine_maps():
    rng = np.random.default_rng(1)
    z_a = rng.normal(size=(64, 10)).astype("float32")
    z_b = (z_a + 0.5 * rng.normal(size=(64, 10))).astype("float32")
    base = float(losses.barlow_twins_loss(z_a, z_b))
    perm = rng.permutation(64)
    assert float(losses.barlow_twins_loss(z_a[perm], z_b[perm])) == pytest.approx(base, rel=1e-5)
    # Per-view standardisation: scaling/shifting one view's dimensions changes nothing.
    scale, shift = rng.uniform(0.5, 4, 10).astype("float32"), rng.normal(size=10).astype("float32")
    assert float(losses.barlow_twins_loss(z_a * scale + shift, z_b)) == pytest.approx(base, rel=1e-4)


def test_joint_standardisation_would_differ():
    """Guards the per-view choice: standardising both views together gives another loss."""
    rng = np.random.default_rng(2)
    z_a = rng.normal(size=(64, 6))
    z_b = 3.0 * z_a + 5.0 + rng.normal(size=(64, 6))
    both = np.concatenate([z_a, z_b])
    mean, std = both.mean(0), np.sqrt(both.var(0) + 1e-5)
    c_joint = ((z_a - mean) / std).T @ ((z_b - mean) / std) / 64
    joint = ((1 - np.diag(c_joint)) ** 2).sum()
    ours = float(losses.barlow_twins_terms(z_a.astype("float32"), z_b.astype("float32"))["on_diag"])
    assert abs(joint - ours) > 0.1


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_inputs_give_float32_loss(dtype):
    rng = np.random.default_rng(3)
    z_a = rng.normal(size=(64, 16)).astype("float32")
    z_b = (z_a + 0.3 * rng.normal(size=(64, 16))).astype("float32")
    loss32 = float(losses.barlow_twins_loss(z_a, z_b))
    loss_half = losses.barlow_twins_loss(ops.cast(z_a, dtype), ops.cast(z_b, dtype))
    assert ops.convert_to_numpy(loss_half).dtype == np.float32
    assert float(loss_half) == pytest.approx(loss32, rel=2e-2)


def test_gradient_exists_and_is_finite():
    import keras

    rng = np.random.default_rng(4)
    z_a = keras.Variable(rng.normal(size=(16, 8)).astype("float32"))
    z_b = rng.normal(size=(16, 8)).astype("float32")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = losses.barlow_twins_loss(z_a.value, z_b)
        grad = tape.gradient(loss, z_a.value)
    else:
        import jax

        grad = jax.grad(lambda z: losses.barlow_twins_loss(z, z_b))(z_a.value)
    grad = ops.convert_to_numpy(grad)
    assert grad.shape == (16, 8)
    assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0


def test_constant_dimension_stays_finite():
    """A dead embedding dimension (zero variance) is why the epsilon exists."""
    z_a = np.ones((8, 3), "float32")
    z_a[:, 1:] = np.random.default_rng(5).normal(size=(8, 2))
    loss = float(losses.barlow_twins_loss(z_a, z_a))
    assert np.isfinite(loss) and loss == pytest.approx(1.0, abs=1e-3)  # (1 - 0)^2 for the dead dim


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="same embedding size"):
        losses.cross_correlation(np.zeros((4, 3), "float32"), np.zeros((4, 5), "float32"))
    with pytest.raises(ValueError, match=r"\(batch, dim\)"):
        losses.cross_correlation(np.zeros((4, 3, 1), "float32"), np.zeros((4, 3, 1), "float32"))


def test_loss_class_serialises():
    import keras

    loss = losses.BarlowTwinsLoss(lambd=0.01, scale_loss=0.5)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert (clone.lambd, clone.scale_loss) == (0.01, 0.5)
    rng = np.random.default_rng(6)
    z_a, z_b = rng.normal(size=(2, 16, 4)).astype("float32")
    assert float(clone(z_a, z_b)) == pytest.approx(numpy_loss(z_a, z_b, 0.01, 0.5)[1], rel=1e-4)
