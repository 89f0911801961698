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

# Export: KerasHub looks up a preset's task class by the *exact* backbone class named in the
# preset's config.json (`keras_hub.src.utils.preset_utils.find_subclass` compares
# `subclass.backbone_cls == backbone_cls`, not `issubclass`), so
# `ImageClassifier.from_preset` on a `BarlowResNetBackbone` preset does not fall back to
# `ResNetImageClassifier`. `keras_barlow.export.preset` therefore registers an ImageClassifier
# and a preprocessor for each encoder class an export writes. No upstream issue filed.
# Verified on KerasHub 0.32 (Keras 3.15.1, TF 2.21, jax 0.10); tests/test_compat_export.py
# fails when a KerasHub release changes the lookup (then the per-class task classes may go).
KERAS_HUB_EXACT_TASK_LOOKUP_VERIFIED = ((0, 32), (0, 33))


def keras_hub_version():
    """The installed KerasHub version as a `(major, minor)` tuple."""
    import keras_hub

    return tuple(int(part) for part in re.findall(r"\d+", keras_hub.__version__)[:2])


# --- fault tolerance and distribution -------------------------------------------------------


def set_initial_epoch(model, epoch):
    """Makes `fit` start at `epoch`, as `keras.callbacks.BackupAndRestore` does on restore.

    Keras has no public way for a callback to move the first epoch of a running `fit`: its
    own `BackupAndRestore.on_train_begin` sets the private `Model._initial_epoch`, which
    `fit` reads after `on_train_begin` (verified on Keras 3.15.1, TF and JAX backends).
    """
    model._initial_epoch = epoch


# --- transfer -------------------------------------------------------------------------------


def fix_keras_hub_retinanet_head_bias(model):
    """Initialises a KerasHub RetinaNet's output biases as the RetinaNet paper (and torchvision) do.

    KerasHub 0.32 gives the *box* head's output the focal-loss prior bias
    `-log((1 - p) / p)` and the classification head's output zeros: every anchor starts at
    50 % confidence for every class (initial loss ~19 instead of ~1 on the shapes data)
    and every box at a scale of e^-4.6. Here the classification head gets the prior and
    the box head zeros. No upstream issue is filed; verified on KerasHub 0.32.0. Harmless
    once fixed upstream (it writes the values a fixed release would).

    Args:
        model: a `keras_hub.models.RetinaNetObjectDetector`.
    """
    import numpy as np

    prior = float(model.box_head.prior_probability)  # the classification_head_prior_probability argument
    cls_bias = model.classification_head.prediction_layer.bias
    box_bias = model.box_head.prediction_layer.bias
    cls_bias.assign(np.full(cls_bias.shape, -np.log((1 - prior) / prior), dtype="float32"))
    box_bias.assign(np.zeros(box_bias.shape, dtype="float32"))


# --- evaluation -----------------------------------------------------------------------------

OPTIMIZER_VARIABLE_INDEX_VERIFIED = ((3, 10), (3, 16))


def optimizer_variable_index(optimizer, variable):
    """The position of `variable` in the list `optimizer.build` received.

    A custom `keras.optimizers.Optimizer` finds its per-variable slots (momentum buffers)
    with the protected `Optimizer._get_variable_index`, as Keras's own `SGD` and the
    subclassing guide do: there is no public equivalent, and backends key variables
    differently (`id` on JAX, distributed-variable handles under `tf.distribute`).
    Verified on Keras 3.10 – 3.15.1.
    """
    return optimizer._get_variable_index(variable)
