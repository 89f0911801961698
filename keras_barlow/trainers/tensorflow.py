"""The TensorFlow training step: exact under any `tf.distribute` strategy.

Per replica: both views through encoder and projector with *synchronised* batch norm; the
per-view standardisation sums and `z_aᵀ z_b` are all-reduced (SUM) across replicas, so
`C` is over the global batch; every replica then holds the same global loss `L`.
`ReplicaContext.all_reduce` is differentiable (its gradient is again an all-reduce), so
each replica's gradient of `L` is `num_replicas ×` its share of the true gradient; dividing
`L` by `num_replicas` inside the tape and letting the optimizer sum the replicas' gradients
yields exactly `∇L` — whatever the number of replicas.

Under a MultiWorkerMirroredStrategy spanning several workers, Keras 3's `fit` needs two
workarounds (keras-team/keras#20585), both in `keras_barlow._compat`: the symbolic build is
skipped (the model is built in its constructor; the optimizer is built here, under the
strategy's scope) and scalar logs are returned with shape `(1,)`.
"""

import contextlib
import re

import tensorflow as tf
from keras import ops

from keras_barlow import _compat
from keras_barlow._compat import needs_multi_worker_workaround
from keras_barlow.models.view_pairs import BATCH_OF_ONE_ADVICE, unpack_views
from keras_barlow.trainers.base import Trainer

# Starts the message of the step's run-time input checks, so that `explain_step_errors`
# recognises them among TensorFlow's `InvalidArgumentError`s.
INPUT_CHECK_MARKER = "BarlowTwins input check: "


class TensorFlowTrainer(Trainer):
    """`Trainer` for the TensorFlow backend (see the module docstring)."""

    def prepare_train_function(self, model):
        """Synchronises every batch norm of `model` when it trains on several replicas.

        Done once, in the main thread, before the step is traced: `MirroredStrategy` traces
        the replicas concurrently in threads, so toggling the flag per trace would race.
        Keras reads `BatchNormalization.synchronized` at call time; `BarlowTwins.get_config`
        leaves the flag out of saved configs (JAX cannot load `synchronized=True`).
        """
        strategy = model.distribute_strategy
        _compat.check_steps_per_execution(strategy, model.steps_per_execution)
        if model.sync_batchnorm and strategy.num_replicas_in_sync > 1:
            for layer in model.batchnorm_layers():
                layer.synchronized = True

    def global_reducers(self, view_a):
        """`(sum_over_batch, global_batch, num_replicas)` for the current replica context.

        `(None, None, 1)` outside a multi-replica context: the loss then sums over the local
        batch.
        """
        context = tf.distribute.get_replica_context()
        num_replicas = context.num_replicas_in_sync if context is not None else 1
        if num_replicas == 1:
            return None, None, 1
        local_batch = tf.cast(tf.shape(view_a)[0], tf.float32)

        def sum_over_global_batch(x):
            return context.all_reduce(tf.distribute.ReduceOp.SUM, ops.sum(x, axis=0))

        # Summed rather than `local × replicas`: replicas may hold unequal shares of a batch.
        global_batch = context.all_reduce(tf.distribute.ReduceOp.SUM, local_batch)
        return sum_over_global_batch, global_batch, num_replicas

    def _forward(self, model, data, training):
        view_a, view_b = unpack_views(data)
        # `unpack_views` sees only the traced shapes, whose batch size is unknown (None): a
        # last partial batch of 1 image, or views of unequal batch sizes, show only here.
        check_views_at_run_time(view_a, view_b)
        sum_over_batch, global_batch, num_replicas = self.global_reducers(view_a)
        terms = model.compute_terms(
            view_a, view_b, training=training, sum_over_batch=sum_over_batch, batch_size=global_batch
        )
        return terms, num_replicas

    def train_step(self, model, data):
        with tf.GradientTape() as tape:
            terms, num_replicas = self._forward(model, data, training=True)
            objective = terms["loss"]
            if model.losses:  # weight regularisers: identical on every replica
                objective = objective + ops.cast(ops.sum(model.losses), "float32")
            # Inside the tape: divided after it, the tape would see no path to the variables
            # ("No gradients provided for any variable").
            objective = model.optimizer.scale_loss(objective / num_replicas)
        variables = model.trainable_variables
        gradients = tape.gradient(objective, variables)
        model.optimizer.apply_gradients(zip(gradients, variables))
        return _compat.multi_worker_logs(model.distribute_strategy, model.update_trackers(terms))

    def test_step(self, model, data):
        terms, _ = self._forward(model, data, training=False)
        return _compat.multi_worker_logs(model.distribute_strategy, model.update_trackers(terms))

    def skip_symbolic_build(self, model):
        """Skips Keras' symbolic build under several workers (keras-team/keras#20585).

        The optimizer variables are then created here, under the strategy's scope, as the
        symbolic build would have done.
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

    def keep_variables_on_failure(self, model, *, build_optimizer=False):
        """Nothing to keep: TensorFlow's loops never detach the variables."""
        del model, build_optimizer
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def explain_step_errors(self):
        """Re-raises a failed `check_views_at_run_time` as a `ValueError` with its message.

        TensorFlow reports a failed in-graph assertion as `InvalidArgumentError: Graph
        execution error`, with the message buried after the trace of the op.
        """
        try:
            yield
        except tf.errors.InvalidArgumentError as error:
            text = str(error)
            if INPUT_CHECK_MARKER not in text:
                raise
            message = text.split(INPUT_CHECK_MARKER, 1)[1].split("[Condition", 1)[0].strip(" ]\n")
            # tf.debugging appends the compared values as "[x (...) = ] [16] [y (...) = ] [8]".
            received = re.findall(r"= \] \[([^\]]*)\]", text)
            if received:
                message += f" (received {' and '.join(received)})"
            raise ValueError(message) from error


def check_views_at_run_time(view_a, view_b):
    """In-graph checks of a replica's views whose batch sizes are unknown when traced.

    Args:
        view_a, view_b: the replica's image batches.
    """
    batch_a, batch_b = tf.shape(view_a)[0], tf.shape(view_b)[0]
    tf.debugging.assert_equal(
        batch_a,
        batch_b,
        message=f"{INPUT_CHECK_MARKER}the two views of a batch hold different numbers of images; "
        "make both views from the same images (keras_barlow.pretraining_dataset does)",
    )
    tf.debugging.assert_greater_equal(
        batch_a,
        2,
        message=f"{INPUT_CHECK_MARKER}a batch of fewer than 2 images reached a replica (per-replica "
        "batch = batch / replicas), e.g. the last batch of an epoch when the dataset size % "
        f"batch_size == 1. {BATCH_OF_ONE_ADVICE}.",
    )
