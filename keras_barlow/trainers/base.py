"""The interface between `BarlowTwins` and a backend's training step.

`BarlowTwins` (model.py) calls exactly these hooks, and nothing else, on the trainer that
`keras_barlow.trainers.select_trainer()` picks for the Keras backend. A trainer receives the
model as an argument and never imports `keras_barlow.models.barlow_twins`: it relies only on the model
attributes listed in `Trainer`'s docstring.
"""

import abc
import contextlib


class Trainer(abc.ABC):
    """One backend's training step for `BarlowTwins`, and the hooks around Keras' loops.

    The model attributes a trainer may use: `compute_terms(view_a, view_b, training=...,
    sum_over_batch=..., batch_size=...)`, `update_trackers(terms)`, `batchnorm_layers()`,
    `sync_batchnorm`, `losses`, `optimizer`, `built`, the variable lists and
    `distribute_strategy` / `steps_per_execution` (TensorFlow).
    """

    @abc.abstractmethod
    def prepare_train_function(self, model):
        """Called by `make_train_function`, before Keras traces the step."""

    @abc.abstractmethod
    def train_step(self, model, *step_args):
        """Keras' `train_step`: `(data)` on TensorFlow, `(state, data)` on JAX.

        Returns:
            The logs (TensorFlow), or `(logs, new_state)` (JAX).
        """

    @abc.abstractmethod
    def test_step(self, model, *step_args):
        """Keras' `test_step`, with the same arguments and results as `train_step`."""

    @abc.abstractmethod
    def skip_symbolic_build(self, model):
        """Whether `fit`/`evaluate` must skip Keras' symbolic build of `model`.

        Returns:
            bool; when True, the trainer has done what the build would have (e.g. built
            the optimizer).
        """

    @abc.abstractmethod
    def keep_variables_on_failure(self, model, *, build_optimizer=False):
        """A context manager around `fit`/`evaluate`/`predict`.

        It keeps the model usable when Keras' loop fails before its first step.

        Args:
            model: the `BarlowTwins` model.
            build_optimizer: (`fit`) build the optimizer first, so that its variables
                are kept as well.

        Returns:
            A context manager (`contextlib.nullcontext()` where nothing is needed).
        """

    def explain_step_errors(self):
        """A context manager around `fit`/`evaluate` that turns run-time input checks into errors.

        The default does nothing; the TensorFlow trainer re-raises its in-graph checks (e.g. a
        batch of one image at the end of an epoch) as a `ValueError` with their message.

        Returns:
            A context manager.
        """
        return contextlib.nullcontext()
