"""The TensorFlow training step: exact under any `tf.distribute` strategy.

Per replica: both views through encoder and projector with *synchronised* batch norm; the
per-view standardisation sums and `z_aᵀ z_b` are all-reduced (SUM) across replicas, so
`C` is over the global batch; every replica then holds the same global loss `L`.
`ReplicaContext.all_reduce` is differentiable (its gradient is again an all-reduce), so
each replica's gradient of `L` is `num_replicas ×` its share of the true gradient; dividing
`L` by `num_replicas` inside the tape and letting the optimizer sum the replicas' gradients
yields exactly `∇L` — whatever the number of replicas.
"""

import re

import keras
import tensorflow as tf
from keras import ops

from keras_barlow.model import unpack_views


def _replica_context():
    context = tf.distribute.get_replica_context()
    num_replicas = context.num_replicas_in_sync if context is not None else 1
    return context, num_replicas


def prepare_train_function(model):
    """Synchronises every batch norm of `model` when it trains on several replicas.

    Done once, in the main thread, before the step is traced: `MirroredStrategy` traces
    the replicas concurrently in threads, so toggling the flag per trace would race.
    Keras reads `BatchNormalization.synchronized` at call time; `BarlowTwins.get_config`
    leaves the flag out of saved configs (JAX cannot load `synchronized=True`).
    """
    strategy = model.distribute_strategy
    replicas = strategy.num_replicas_in_sync
    mirrored = isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy))
    if mirrored and replicas > 1 and model.steps_per_execution > 1 and _keras_in(STEPS_PER_EXECUTION_BROKEN_KERAS):
        raise ValueError(
            f"steps_per_execution={model.steps_per_execution} does not work with Keras "
            f"{keras.version()} under (MultiWorker)MirroredStrategy with several replicas (here "
            f"{replicas}): Keras' multi-step loop fails with 'You must feed a value for "
            "placeholder tensor ...' for any model (keras-team/keras#19246). Compile with "
            "steps_per_execution=1 on TensorFlow, or use the JAX backend, where it works."
        )
    if model.sync_batchnorm and replicas > 1:
        for layer in model.batchnorm_layers():
            layer.synchronized = True


def _global_reducers(view_a):
    context, num_replicas = _replica_context()
    local_batch = tf.cast(tf.shape(view_a)[0], tf.float32)
    if num_replicas == 1:
        return None, None, 1

    def sum_over_global_batch(x):
        return context.all_reduce(tf.distribute.ReduceOp.SUM, ops.sum(x, axis=0))

    # Summed rather than `local × replicas`: replicas may hold unequal shares of a batch.
    global_batch = context.all_reduce(tf.distribute.ReduceOp.SUM, local_batch)
    return sum_over_global_batch, global_batch, num_replicas


def _check_batch(view_a):
    tf.debugging.assert_greater_equal(
        tf.shape(view_a)[0],
        2,
        message="a per-replica batch of 1 leaves the Barlow Twins batch statistics undefined; "
        "use a per-replica batch of at least 2",
    )


def _forward(model, data, training):
    view_a, view_b = unpack_views(data)
    _check_batch(view_a)
    sum_over_batch, global_batch, num_replicas = _global_reducers(view_a)
    terms = model.compute_terms(
        view_a, view_b, training=training, sum_over_batch=sum_over_batch, batch_size=global_batch
    )
    return terms, num_replicas


def train_step(model, data):
    with tf.GradientTape() as tape:
        terms, num_replicas = _forward(model, data, training=True)
        objective = terms["loss"]
        if model.losses:  # weight regularisers: identical on every replica
            objective = objective + ops.cast(ops.sum(model.losses), "float32")
        # Inside the tape (../shared/NOTES.md §2): see the module docstring for why.
        objective = model.optimizer.scale_loss(objective / num_replicas)
    variables = model.trainable_variables
    gradients = tape.gradient(objective, variables)
    model.optimizer.apply_gradients(zip(gradients, variables))
    return _multi_worker_logs(model, model.update_trackers(terms))


def test_step(model, data):
    terms, _ = _forward(model, data, training=False)
    return _multi_worker_logs(model, model.update_trackers(terms))


# --- MultiWorkerMirroredStrategy + Keras 3 `fit` (keras-team/keras#20585, NOTES §7) -------
# Keras 3 `fit`/`evaluate` fail in two places when the strategy spans several workers:
#  1. `_maybe_symbolic_build` calls `strategy.reduce("MEAN", batch)` on the whole
#     `(view_a, view_b)` structure of per-replica values, which the collective strategy
#     cannot convert ("Attempt to convert a value (PerReplica...)").
#  2. `reduce_per_replica` reduces every log with `strategy.reduce("MEAN", v, axis=0)`,
#     which fails on scalar logs ("Invalid reduction dimension 0 for input with 0
#     dimensions").
# The workaround: (1) `BarlowTwins` is built in its constructor, so the symbolic build is
# skipped and only the optimizer is built, under the strategy's scope; (2) the steps return
# each log with shape `(1,)`: Keras' `axis=0` MEAN then averages the replicas' identical
# values into a scalar. Everything else — callbacks, the iterator protocol — stays Keras'
# own. Checked broken on Keras 3.15.1; the workaround is harmless
# should upstream fix either point, and is limited to the Keras versions below.
# `steps_per_execution > 1` is refused under several replicas, see below.
MULTI_WORKER_WORKAROUND_KERAS = ((3, 0), (4, 0))  # [from, to) Keras versions


# Keras' `steps_per_execution > 1` loop (tf.while_loop + tf.cond around `strategy.run`)
# fails under MirroredStrategy and MultiWorkerMirroredStrategy, even for a plain
# `Sequential` model (measured on Keras 3.15.1 / TF 2.21; keras-team/keras#19246, open).
# `prepare_train_function` turns the obscure graph error into a clear one.
STEPS_PER_EXECUTION_BROKEN_KERAS = ((3, 0), (4, 0))  # [from, to) Keras versions


def _keras_version():
    return tuple(int(part) for part in re.findall(r"\d+", keras.version())[:2])


def _keras_in(versions):
    low, high = versions
    return low <= _keras_version() < high


def needs_multi_worker_workaround(strategy):
    """Whether `strategy` spans several workers under a Keras 3 whose `fit` needs help."""
    if not _keras_in(MULTI_WORKER_WORKAROUND_KERAS):
        return False
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    # Several workers ⇔ more replicas than local devices (public equivalent of Keras'
    # `strategy.extended._in_multi_worker_mode()` test).
    return strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)


def skip_symbolic_build(model):
    """Replaces Keras' `_maybe_symbolic_build` under several workers (failure point 1).

    Returns True when the symbolic build must be skipped; the optimizer variables are then
    created here, under the strategy's scope, as the symbolic build would have done.
    """
    strategy = model.distribute_strategy
    if not needs_multi_worker_workaround(strategy):
        return False
    if not model.built:
        raise ValueError(
            "under MultiWorkerMirroredStrategy, BarlowTwins must be built before fit: give "
            "an encoder with a known input shape, or pass image_shape=(height, width, channels)"
        )
    if model.optimizer is not None and not model.optimizer.built:
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
    return True


def _multi_worker_logs(model, logs):
    """Scalar logs become shape `(1,)` under several workers (failure point 2)."""
    if not needs_multi_worker_workaround(model.distribute_strategy):
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}
