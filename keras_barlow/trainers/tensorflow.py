"""The TensorFlow training step: exact under any `tf.distribute` strategy.

Per replica: both views through encoder and projector with *synchronised* batch norm; the
per-view standardisation sums and `z_aᵀ z_b` are all-reduced (SUM) across replicas, so
`C` is over the global batch; every replica then holds the same global loss `L`.
`ReplicaContext.all_reduce` is differentiable (its gradient is again an all-reduce), so
each replica's gradient of `L` is `num_replicas ×` its share of the true gradient; dividing
`L` by `num_replicas` inside the tape and letting the optimizer sum the replicas' gradients
yields exactly `∇L` — whatever the number of replicas.
"""

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
    if model.sync_batchnorm and model.distribute_strategy.num_replicas_in_sync > 1:
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
    return model.update_trackers(terms)


def test_step(model, data):
    terms, _ = _forward(model, data, training=False)
    return model.update_trackers(terms)
