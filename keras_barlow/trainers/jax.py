"""The JAX training step: stateless, exact under `keras.distribution.DataParallel`.

Under `DataParallel` JAX compiles one program over the *global* batch, so the
standardisation, `C` and every batch-norm statistic are global by construction: the step
needs no collective code and is the plain single-device computation.
"""

import contextlib

import jax
import keras
from keras import ops

from keras_barlow import _compat
from keras_barlow.models.view_pairs import unpack_views
from keras_barlow.trainers.base import Trainer


def _stateless_terms(model, trainable, non_trainable, view_a, view_b, training):
    mapping = list(zip(model.trainable_variables, trainable)) + list(
        zip(model.non_trainable_variables, non_trainable)
    )
    with keras.StatelessScope(state_mapping=mapping) as scope:
        terms = model.compute_terms(view_a, view_b, training=training)
        objective = terms["loss"]
        if model.losses:
            objective = objective + ops.cast(ops.sum(model.losses), "float32")
    # Batch-norm moving statistics come back through the scope.
    updated = [scope.get_current_value(v) for v in model.non_trainable_variables]
    non_trainable = [new if new is not None else old for new, old in zip(updated, non_trainable)]
    return objective, terms, non_trainable


def _update_metrics(model, metrics_variables, terms):
    mapping = list(zip(model.metrics_variables, metrics_variables))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        logs = model.update_trackers(terms)
    metrics_variables = [scope.get_current_value(v) for v in model.metrics_variables]
    return logs, metrics_variables


class JaxTrainer(Trainer):
    """`Trainer` for the JAX backend (see the module docstring)."""

    def prepare_train_function(self, model):
        """Nothing to prepare: `keras.distribution` makes batch statistics global."""
        del model

    def train_step(self, model, state, data):
        trainable, non_trainable, optimizer_variables, metrics_variables = state
        view_a, view_b = unpack_views(data)

        def objective_fn(trainable, non_trainable):
            objective, terms, non_trainable = _stateless_terms(
                model, trainable, non_trainable, view_a, view_b, training=True
            )
            # The loss scale (LossScaleOptimizer under mixed_float16) is an optimizer variable:
            # read it from the step's state, as Keras' own JAX trainer does.
            optimizer_mapping = list(zip(model.optimizer.variables, optimizer_variables))
            with keras.StatelessScope(state_mapping=optimizer_mapping):
                scaled = model.optimizer.scale_loss(objective)
            return scaled, (terms, non_trainable)

        (_, (terms, non_trainable)), gradients = jax.value_and_grad(objective_fn, has_aux=True)(
            trainable, non_trainable
        )
        trainable, optimizer_variables = model.optimizer.stateless_apply(
            optimizer_variables, gradients, trainable
        )
        logs, metrics_variables = _update_metrics(model, metrics_variables, terms)
        return logs, (trainable, non_trainable, optimizer_variables, metrics_variables)

    def test_step(self, model, state, data):
        trainable, non_trainable, metrics_variables = state
        view_a, view_b = unpack_views(data)
        _, terms, non_trainable = _stateless_terms(
            model, trainable, non_trainable, view_a, view_b, training=False
        )
        logs, metrics_variables = _update_metrics(model, metrics_variables, terms)
        return logs, (trainable, non_trainable, metrics_variables)

    def skip_symbolic_build(self, model):
        """Never: Keras' symbolic build works on JAX."""
        del model
        return False

    @contextlib.contextmanager
    def keep_variables_on_failure(self, model, *, build_optimizer=False):
        """Reattaches the model's variables when Keras' JAX `fit`/`evaluate`/`predict` fail early.

        Those loops detach every variable's value before the first step (the values travel
        as the step's state) and reattach them only after a step has returned. When the first
        step fails — e.g. with `unpack_views`' `ValueError` for bad input, raised while
        tracing — Keras 3.15 leaves the variables empty, and the next call on the model dies
        with `'NoneType' object is not callable`. This keeps references to the values (the
        same arrays the step receives, so no copy; donated ones are freed as usual) and puts
        back those still missing, so the model stays usable after the error, as on
        TensorFlow.

        Args:
            model: the `BarlowTwins` model.
            build_optimizer: (`fit`) build the optimizer first, as `fit` would a moment
                later, so that its variables are kept as well.
        """
        optimizer = getattr(model, "optimizer", None)  # absent before compile (predict)
        if build_optimizer and model.built and optimizer is not None and not optimizer.built:
            optimizer.build(model.trainable_variables)
        variables = list(model.trainable_variables) + list(model.non_trainable_variables)
        variables += list(model.metrics_variables)
        if optimizer is not None and optimizer.built:
            variables += list(optimizer.variables)
        values = _compat.variable_values(variables)
        try:
            yield
        except BaseException:
            _compat.restore_detached_values(variables, values)
            raise
