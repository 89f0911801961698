"""Every private Keras / KerasHub name and every upstream workaround, in one place.

Nothing else in `keras_barlow` touches a private attribute of Keras, KerasHub or
TensorFlow. Each entry names the upstream issue (where there is one), the versions it was
verified on, and has a test in `tests/test_compat_<area>.py` (one per section below) that
fails when an upgrade makes it
broken or unnecessary, so that the workaround can then be removed.

Verified on: Keras 3.15.1, KerasHub 0.32, TensorFlow 2.21, jax 0.10.
"""

import re

import keras

VERIFIED_KERAS = "3.15.1"


def parse_version(version):
    """`"3.15.1"` → `(3, 15)`: the `(major, minor)` of a version string.

    Example:
    >>> parse_version("3.15.1"), parse_version("3.16.0.dev2026")
    ((3, 15), (3, 16))
    """
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def keras_version():
    """The installed Keras version as a `(major, minor)` tuple."""
    return parse_version(keras.version())


def keras_version_in(versions, version=None):
    """Whether a Keras version is in `[low, high)`, each a `(major, minor)` tuple.

    Args:
        versions: `(low, high)`.
        version: `(major, minor)` (default: the installed Keras).

    Example:
    >>> keras_version_in(((3, 10), (3, 16)), (3, 15)), keras_version_in(((3, 10), (3, 16)), (3, 16))
    (True, False)
    """
    low, high = versions
    return low <= (version or keras_version()) < high


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


class SkippableSymbolicBuild:
    """`keras.Model` mixin: `fit`/`evaluate` skip Keras' symbolic build when asked to.

    Keras 3 `fit`/`evaluate` call the private `Model._maybe_symbolic_build` before the
    first step. Under MultiWorkerMirroredStrategy it runs `strategy.reduce("MEAN", batch)`
    on the whole `(view_a, view_b)` structure of per-replica values, which fails with
    "Attempt to convert a value (PerReplica:{...}) with an unsupported type"
    (keras-team/keras#20585, tensorflow/tensorflow#72388; verified on Keras 3.15.1,
    TF 2.21). A model that is built in its constructor does not need that build: it
    overrides `skip_symbolic_build` to say so.
    """

    def skip_symbolic_build(self):
        """Whether to skip Keras' symbolic build (default: never)."""
        return False

    def _maybe_symbolic_build(self, *args, **kwargs):
        if self.skip_symbolic_build():
            return None
        return super()._maybe_symbolic_build(*args, **kwargs)


# Keras 3 `fit`/`evaluate` under a MultiWorkerMirroredStrategy spanning several workers fail
# in two places (keras-team/keras#20585): (1) the symbolic build above; (2)
# `reduce_per_replica` reduces every log with `strategy.reduce("MEAN", v, axis=0)`, which
# fails on scalar logs ("Invalid reduction dimension 0 for input with 0 dimensions").
# Verified broken on Keras 3.15.1 / TF 2.21 (`tests/test_compat_core.py` reproduces both on a
# plain Keras model). The range names only the versions verified: the package requires
# Keras 3.15, and `tests/test_compat_core.py` fails on a newer Keras until it is re-verified.
MULTI_WORKER_FIT_BROKEN_KERAS = ((3, 15), (3, 16))  # [from, to) Keras versions

# Keras' `steps_per_execution > 1` loop (tf.while_loop + tf.cond around `strategy.run`) fails
# under MirroredStrategy and MultiWorkerMirroredStrategy with several replicas, even for a
# plain `Sequential` model: "You must feed a value for placeholder tensor ..."
# (keras-team/keras#19246, open; verified broken on Keras 3.15.1 / TF 2.21).
STEPS_PER_EXECUTION_BROKEN_KERAS = ((3, 15), (3, 16))  # [from, to) Keras versions


def needs_multi_worker_workaround(strategy):
    """Whether `strategy` spans several workers under a Keras whose `fit` needs help.

    Args:
        strategy: a `tf.distribute.Strategy`.

    Returns:
        bool.
    """
    import tensorflow as tf  # only the TensorFlow trainer calls this

    if not keras_version_in(MULTI_WORKER_FIT_BROKEN_KERAS):
        return False
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    # Several workers ⇔ more replicas than local devices (the public equivalent of Keras'
    # `strategy.extended._in_multi_worker_mode()` test).
    return strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)


def multi_worker_logs(strategy, logs):
    """Failure point (2): scalar logs become shape `(1,)` under several workers.

    Keras' `axis=0` MEAN then averages the replicas' identical values into a scalar.

    Args:
        strategy: the model's `tf.distribute.Strategy`.
        logs: dict of scalar tensors returned by a step.

    Returns:
        `logs`, reshaped where the workaround applies.
    """
    import tensorflow as tf

    if not needs_multi_worker_workaround(strategy):
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}


def check_steps_per_execution(strategy, steps_per_execution):
    """Refuses `steps_per_execution > 1` where Keras' multi-step loop is broken.

    Turns the obscure graph error of keras-team/keras#19246 into a clear one.

    Args:
        strategy: the model's `tf.distribute.Strategy`.
        steps_per_execution: the compiled value.

    Raises:
        ValueError: under (MultiWorker)MirroredStrategy with several replicas, on the Keras
            versions in `STEPS_PER_EXECUTION_BROKEN_KERAS`.
    """
    import tensorflow as tf

    mirrored = isinstance(
        strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)
    )
    replicas = strategy.num_replicas_in_sync
    if (
        mirrored
        and replicas > 1
        and steps_per_execution > 1
        and keras_version_in(STEPS_PER_EXECUTION_BROKEN_KERAS)
    ):
        raise ValueError(
            f"steps_per_execution={steps_per_execution} does not work with Keras "
            f"{keras.version()} under (MultiWorker)MirroredStrategy with several replicas (here "
            f"{replicas}): Keras' multi-step loop fails with 'You must feed a value for "
            "placeholder tensor ...' for any model (keras-team/keras#19246). Compile with "
            "steps_per_execution=1 on TensorFlow, or use the JAX backend, where it works."
        )


def variable_values(variables):
    """The backend values behind `variables` (JAX arrays), read without copying.

    Keras' JAX `fit`/`evaluate`/`predict` detach every value (`Variable._value` becomes
    None) before the first step and reattach them only after a step has returned; a
    failing first step leaves them detached (verified on Keras 3.15.1, jax 0.10). Reading
    the private `Variable._value` is the only way to keep them; `Variable.value` raises once
    they are gone.
    """
    return [variable._value for variable in variables]


def restore_detached_values(variables, values):
    """Puts back the values `variable_values` read, where Keras left them detached.

    Args:
        variables: the variables given to `variable_values`.
        values: what it returned; deleted (donated) arrays are skipped.
    """
    for variable, value in zip(variables, values):
        if variable._value is None and value is not None and not value.is_deleted():
            variable._value = value


# --- backbones ---------------------------------------------------------------------------


def init_functional_backbone(backbone, *, inputs, outputs, dtype=None, **kwargs):
    """Initialises a `keras_hub.models.ResNetBackbone` subclass from its own graph.

    KerasHub's `ResNetBackbone.__init__` cannot express a CIFAR-scale stem (3×3 stride-1
    convolution, no max-pool), a width or zero-initialised residual branches, so the
    subclass builds its graph itself and skips that constructor: `Backbone.__init__` makes
    the functional model as `ResNetBackbone.__init__` would (verified on KerasHub 0.32).

    Args:
        backbone: the instance being constructed.
        inputs, outputs: its functional graph.
        dtype: dtype policy.
        **kwargs: `keras_hub.models.Backbone` arguments such as `name`.
    """
    import keras_hub

    keras_hub.models.Backbone.__init__(backbone, inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)


def backbone_base_config(backbone):
    """`keras_hub.models.Backbone.get_config` of a subclass that skipped `ResNetBackbone`'s.

    `ResNetBackbone.get_config` would write its own constructor's arguments, which the
    subclass does not take (see `init_functional_backbone`).
    """
    import keras_hub

    return keras_hub.models.Backbone.get_config(backbone)


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

OPTIMIZER_VARIABLE_INDEX_VERIFIED = ((3, 15), (3, 16))


def optimizer_variable_index(optimizer, variable):
    """The position of `variable` in the list `optimizer.build` received.

    A custom `keras.optimizers.Optimizer` finds its per-variable slots (momentum buffers)
    with the protected `Optimizer._get_variable_index`, as Keras's own `SGD` and the
    subclassing guide do: there is no public equivalent, and backends key variables
    differently (`id` on JAX, distributed-variable handles under `tf.distribute`).
    Verified on Keras 3.15.1.
    """
    return optimizer._get_variable_index(variable)


# --- performance (oneDNN, benchmarking) -----------------------------------------------------


def tensorflow_onednn_enabled():
    """Whether the running TensorFlow executes its oneDNN CPU kernels.

    TensorFlow has no public query: `tensorflow.python.util._pywrap_util_port.IsMklEnabled()`
    reports the decision TensorFlow made at import (from `TF_ENABLE_ONEDNN_OPTS` and the
    CPU's features). No upstream issue; verified on TF 2.21.0. Imports TensorFlow.
    """
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def tensorflow_xspace(path):
    """Parses a TensorFlow profiler `.xplane.pb` file into its `XSpace` message.

    The profiler writes its trace as an `XSpace` protobuf; TensorFlow ships the message
    class only under the private `tensorflow.tsl.profiler.protobuf.xplane_pb2` (the public
    readers are TensorBoard's profile plugin, not installed with TensorFlow). No upstream
    issue; verified on TF 2.21.0.

    Args:
        path: the `.xplane.pb` file.

    Returns:
        `xplane_pb2.XSpace`.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    xspace = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        xspace.ParseFromString(f.read())
    return xspace
