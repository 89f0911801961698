"""The Barlow Twins objective, in `keras.ops` only (backend-agnostic)."""

from keras_barlow.losses.barlow_twins_loss import (
    DEFAULT_LAMBD,
    STANDARDIZE_EPSILON,
    BarlowTwinsLoss,
    barlow_twins_loss,
    barlow_twins_terms,
    cross_correlation,
    embedding_std,
    loss_terms_from_correlation,
    standardize,
)

__all__ = [
    "DEFAULT_LAMBD",
    "STANDARDIZE_EPSILON",
    "BarlowTwinsLoss",
    "barlow_twins_loss",
    "barlow_twins_terms",
    "cross_correlation",
    "embedding_std",
    "loss_terms_from_correlation",
    "standardize",
]
