"""The layers between the encoder and the loss."""

from keras_barlow.layers.feature_pooling import FeaturePooling, unsupported_features_error
from keras_barlow.layers.projector import (
    BN_EPSILON,
    BN_MOMENTUM,
    build_projector,
    check_projector_dims,
    unsynchronized_batchnorm,
)

__all__ = [
    "BN_EPSILON",
    "BN_MOMENTUM",
    "FeaturePooling",
    "build_projector",
    "check_projector_dims",
    "unsupported_features_error",
    "unsynchronized_batchnorm",
]
