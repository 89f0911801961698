"""keras-barlow: Barlow Twins self-supervised learning for Keras 3 (TensorFlow and JAX).

The model, loss, projector, optimizers and backbones import without TensorFlow (so the
JAX backend needs no TF for them); the `tf.data`, SavedModel and `tf.distribute` parts are
imported on first use.
"""

import importlib

from keras_barlow.losses import (
    BarlowTwinsLoss,
    barlow_twins_loss,
    barlow_twins_terms,
    cross_correlation,
    loss_terms_from_correlation,
    standardize,
)
from keras_barlow.model import BarlowTwins, FeaturePooling, NonFiniteLossGuard, embedding_std, unpack_views
from keras_barlow.projector import build_projector

# Imported eagerly (not lazily) so that `keras.models.load_model` finds the registered
# classes that exported encoders (backbones) and saved transfer models (transfer) name.
from keras_barlow import backbones as _backbones  # noqa: E402,F401
from keras_barlow import transfer as _transfer  # noqa: E402,F401

__version__ = "0.1.0"

# name -> module, imported on first access (these modules need TensorFlow or are heavy).
_LAZY = {}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_barlow' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"keras_barlow.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
