"""The Barlow Twins objective, written in `keras.ops` only (backend-agnostic).

The embeddings of the two views are standardised *per view* over the batch, their
cross-correlation matrix `C = z_aᵀ z_b / N` is formed, and the loss pushes `C` towards
the identity:

    loss = scale_loss · (Σᵢ (1 − Cᵢᵢ)²  +  λ · Σᵢ≠ⱼ Cᵢⱼ²)

Every function takes an optional `sum_over_batch` reducer. By default it sums over the
local batch; under `tf.distribute` the model passes one that also all-reduces across
replicas (differentiably), so the statistics and `C` are over the *global* batch.
"""

import keras
from keras import ops

DEFAULT_LAMBD = 0.0051
STANDARDIZE_EPSILON = 1e-5


def _local_sum(x):
    return ops.sum(x, axis=0)


def _batch_size(z, batch_size):
    if batch_size is not None:
        return ops.cast(batch_size, "float32")
    return ops.cast(ops.shape(z)[0], "float32")


def standardize(z, *, epsilon=STANDARDIZE_EPSILON, sum_over_batch=None, batch_size=None):
    """Standardises each dimension of `z` over the batch (mean 0, biased variance 1).

    This is the official implementation's `BatchNorm1d(affine=False)` in training mode:
    the *biased* variance (divide by N, not N − 1) and `epsilon` inside the square root.

    Args:
        z: `(batch, dim)` embeddings of one view.
        epsilon: added to the variance before the square root.
        sum_over_batch: reducer `x -> Σ_batch x` (default: the local batch).
        batch_size: the number of rows `sum_over_batch` sums over (default: `z`'s rows).

    Returns:
        float32 `(batch, dim)` standardised embeddings.
    """
    sum_over_batch = sum_over_batch or _local_sum
    z = ops.cast(z, "float32")
    n = _batch_size(z, batch_size)
    mean = sum_over_batch(z) / n
    centered = z - mean
    variance = sum_over_batch(ops.square(centered)) / n
    return centered / ops.sqrt(variance + epsilon)


def cross_correlation(z_a, z_b, *, epsilon=STANDARDIZE_EPSILON, sum_over_batch=None, batch_size=None):
    """The `(dim, dim)` cross-correlation matrix of two batches of embeddings.

    Each view is standardised on its own (standardising both views jointly would break
    the loss's invariance to per-view affine transformations). The result is computed in
    float32 even for float16/bfloat16 inputs: `C` sums `N` products whose diagonal must
    resolve `1 − Cᵢᵢ` near 0, which half precision cannot.

    Args:
        z_a: `(batch, dim)` embeddings of the first view.
        z_b: `(batch, dim)` embeddings of the second view.
        epsilon: variance epsilon of the standardisation.
        sum_over_batch: reducer `x -> Σ_batch x` (default: the local batch).
        batch_size: global number of rows (default: `z_a`'s rows).

    Returns:
        float32 `(dim, dim)` matrix `C`, `Cᵢⱼ = mean_n(ẑ_a[n, i] · ẑ_b[n, j])`.

    Example:
    >>> import numpy as np
    >>> z = np.random.default_rng(0).normal(size=(16, 4))
    >>> c = ops.convert_to_numpy(cross_correlation(z, z))
    >>> c.shape, np.round(np.diag(c), 4).tolist()
    ((4, 4), [1.0, 1.0, 1.0, 1.0])
    """
    if len(z_a.shape) != 2 or len(z_b.shape) != 2:
        raise ValueError(
            f"expected (batch, dim) embeddings, got shapes {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    if z_a.shape[-1] is not None and z_b.shape[-1] is not None and z_a.shape[-1] != z_b.shape[-1]:
        raise ValueError(
            f"the two views must have the same embedding size, got {z_a.shape[-1]} and {z_b.shape[-1]}"
        )
    sum_over_batch = sum_over_batch or _local_sum
    kwargs = dict(epsilon=epsilon, sum_over_batch=sum_over_batch, batch_size=batch_size)
    za = standardize(z_a, **kwargs)
    zb = standardize(z_b, **kwargs)
    n = _batch_size(za, batch_size)
    # z_aᵀ z_b is a sum over the batch: the matrix product computes it locally and the
    # reducer (an all-reduce under tf.distribute) completes it over the global batch.
    local = ops.matmul(ops.transpose(za), zb)
    if sum_over_batch is _local_sum:
        return local / n
    return sum_over_batch(ops.expand_dims(local, 0)) / n


def loss_terms_from_correlation(c, *, lambd=DEFAULT_LAMBD, scale_loss=1.0):
    """Splits the loss on a cross-correlation matrix into its two terms.

    Args:
        c: `(dim, dim)` cross-correlation matrix.
        lambd: weight λ of the redundancy-reduction (off-diagonal) term.
        scale_loss: overall factor (the official best model used 0.024).

    Returns:
        dict with float32 scalars: `loss` (scaled total), `on_diag` = Σᵢ(1 − Cᵢᵢ)²
        and `off_diag` = Σᵢ≠ⱼ Cᵢⱼ² (both unscaled, without λ).
    """
    c = ops.cast(c, "float32")
    diagonal = ops.diagonal(c)
    on_diag = ops.sum(ops.square(1.0 - diagonal))
    off_diag = ops.sum(ops.square(c)) - ops.sum(ops.square(diagonal))
    loss = scale_loss * (on_diag + lambd * off_diag)
    return {"loss": loss, "on_diag": on_diag, "off_diag": off_diag}


def barlow_twins_terms(z_a, z_b, *, lambd=DEFAULT_LAMBD, scale_loss=1.0, **correlation_kwargs):
    """Loss and its two terms for two batches of embeddings (see `loss_terms_from_correlation`)."""
    c = cross_correlation(z_a, z_b, **correlation_kwargs)
    return loss_terms_from_correlation(c, lambd=lambd, scale_loss=scale_loss)


def barlow_twins_loss(z_a, z_b, lambd=DEFAULT_LAMBD, scale_loss=1.0, **correlation_kwargs):
    """The Barlow Twins loss of two batches of embeddings.

    Args:
        z_a: `(batch, dim)` projector outputs of the first view.
        z_b: `(batch, dim)` projector outputs of the second view.
        lambd: weight of the off-diagonal term (official code 0.0051; the paper says 5e-3).
        scale_loss: overall factor on the loss.
        **correlation_kwargs: `epsilon`, `sum_over_batch`, `batch_size` of `cross_correlation`.

    Returns:
        float32 scalar `scale_loss · (Σᵢ(1 − Cᵢᵢ)² + λ Σᵢ≠ⱼ Cᵢⱼ²)`.

    Example:
    >>> import numpy as np
    >>> z_a = np.random.default_rng(1).normal(size=(32, 8))
    >>> same = float(barlow_twins_loss(z_a, z_a))  # Cᵢᵢ = 1: only the off-diagonal term
    >>> opposite = float(barlow_twins_loss(z_a, -z_a))  # Cᵢᵢ = −1: each (1 − Cᵢᵢ)² is 4
    >>> round(opposite - same, 3)
    32.0
    """
    return barlow_twins_terms(z_a, z_b, lambd=lambd, scale_loss=scale_loss, **correlation_kwargs)["loss"]


@keras.saving.register_keras_serializable(package="keras_barlow")
class BarlowTwinsLoss(keras.losses.Loss):
    """`barlow_twins_loss` as a `keras.losses.Loss` taking `(z_a, z_b)` as `(y_true, y_pred)`.

    Useful for custom training loops; `BarlowTwins` computes the loss itself.
    """

    def __init__(self, lambd=DEFAULT_LAMBD, scale_loss=1.0, name="barlow_twins_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.lambd = lambd
        self.scale_loss = scale_loss

    def call(self, y_true, y_pred):
        return barlow_twins_loss(y_true, y_pred, lambd=self.lambd, scale_loss=self.scale_loss)

    def get_config(self):
        config = super().get_config()
        config.update({"lambd": self.lambd, "scale_loss": self.scale_loss})
        return config


def embedding_std(z, *, sum_over_batch=None, batch_size=None):
    """Collapse indicator: mean per-dimension std of the L2-normalised embeddings.

    About `1/sqrt(dim)` for embeddings spread over the sphere, 0 when they collapse to a
    point. Computed over the same (global) batch as the loss.

    Args:
        z: `(batch, dim)` embeddings.
        sum_over_batch: reducer `x -> Σ_batch x` (default: the local batch).
        batch_size: the number of rows `sum_over_batch` sums over (default: `z`'s rows).

    Returns:
        float32 scalar.

    Example:
    >>> import numpy as np
    >>> float(embedding_std(np.ones((8, 4))))  # collapsed: every embedding the same
    0.0
    >>> float(embedding_std(np.concatenate([np.eye(4), -np.eye(4)])))  # ±unit vectors
    0.5
    """
    sum_over_batch = sum_over_batch or _local_sum
    z = ops.cast(z, "float32")
    z = z / ops.maximum(ops.sqrt(ops.sum(ops.square(z), axis=1, keepdims=True)), 1e-12)
    n = _batch_size(z, batch_size)
    mean = sum_over_batch(z) / n
    variance = sum_over_batch(ops.square(z - mean)) / n
    return ops.mean(ops.sqrt(variance))
