"""Every private Keras / KerasHub name and every upstream workaround, in one place.

Nothing else in `keras_barlow` touches a private attribute of Keras, KerasHub or
TensorFlow. Each entry names the upstream issue (where there is one), the versions it was
verified on, and has a test in `tests/test_compat.py` that fails when an upgrade makes it
broken or unnecessary, so that the workaround can then be removed.

Verified on: Keras 3.15.1, KerasHub 0.32, TensorFlow 2.21, jax 0.10.
"""

import re

import keras

VERIFIED_KERAS = "3.15.1"


def keras_version():
    """The installed Keras version as a `(major, minor)` tuple."""
    return tuple(int(part) for part in re.findall(r"\d+", keras.version())[:2])


def keras_version_in(versions):
    """Whether the installed Keras is in `[low, high)`, each a `(major, minor)` tuple."""
    low, high = versions
    return low <= keras_version() < high


# --- layers (shared by model, export, transfer) ---------------------------------------------


def flatten_layers(model, *, recursive=True):
    """Every layer nested in `model` (not `model` itself), depth first.

    Keras has no public recursive layer walk: `Model.layers` lists direct children only.
    Uses `Layer._flatten_layers` (private since Keras 3.0; verified on 3.15.1).
    """
    return list(model._flatten_layers(include_self=False, recursive=recursive))


def batch_norm_layers(model):
    """Every `keras.layers.BatchNormalization` nested in `model`."""
    return [layer for layer in flatten_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


def pyramid_level_names(model):
    """`{"P2": layer name, ...}` for a KerasHub backbone's `pyramid_outputs`.

    KerasCV's task models look feature levels up by layer name
    (`backbone.pyramid_level_inputs`); KerasHub keeps symbolic tensors instead. The layer
    that produced a symbolic tensor is only reachable through the private
    `KerasTensor._keras_history` (verified on Keras 3.15.1, KerasHub 0.32, KerasCV 0.9).
    """
    return {level: tensor._keras_history.operation.name for level, tensor in model.pyramid_outputs.items()}


# --- model and trainers ---------------------------------------------------------------------


# --- backbones, export and transfer ---------------------------------------------------------


# --- fault tolerance and distribution -------------------------------------------------------


# --- performance (oneDNN, benchmarking) -----------------------------------------------------


def tensorflow_onednn_enabled():
    """Whether the running TensorFlow executes its oneDNN CPU kernels.

    TensorFlow has no public query: `tensorflow.python.util._pywrap_util_port.IsMklEnabled()`
    reports the decision TensorFlow made at import (from `TF_ENABLE_ONEDNN_OPTS` and the
    CPU's features). No upstream issue; verified on TF 2.21.0. Imports TensorFlow.
    """
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
