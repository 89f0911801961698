"""`NonFiniteLossGuard`: stops `fit` at the first non-finite loss."""

import math

import keras
from keras import ops


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops `fit` with a `FloatingPointError` naming the step of the first non-finite loss.

    `BarlowTwins.fit` adds it first, before any checkpoint callback, so that no later
    callback sees the weights of the diverged step.

    It reads the logged loss, which is the unscaled float32 loss under every dtype policy.
    Under `mixed_float16`, a step whose *scaled gradients* overflow float16 is skipped by
    `keras.optimizers.LossScaleOptimizer` (which halves its scale): its loss is finite, so the
    guard lets it pass. Steps are counted by the guard itself, not read from
    `optimizer.iterations`, which counts only the updates applied.
    """

    def on_train_begin(self, logs=None):
        self._epoch = 0
        self._steps = 0  # steps of this fit, skipped ones included
        self._steps_before_epoch = 0
        self._start_iterations = self._iterations()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._steps_before_epoch = self._steps

    def _iterations(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return None
        return int(ops.convert_to_numpy(optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the epoch's last step done (with steps_per_execution > 1 too).
        self._steps = self._steps_before_epoch + batch + 1
        value = (logs or {}).get("loss")
        if value is None:
            return
        value = float(value)
        if not math.isfinite(value):
            self.model.stop_training = True
            start = self._start_iterations or 0  # a resumed run's updates before this fit
            applied = self._iterations()
            step = start + self._steps
            message = (
                f"the Barlow Twins loss became {value} at step {step} (epoch {self._epoch}, "
                f"batch {batch}); training stopped before any later callback could save "
                "these weights."
            )
            if applied is not None and applied - start < self._steps:
                message += (
                    f" The optimizer applied the updates of {applied - start} of this fit's "
                    f"{self._steps} steps: the loss scaler skips a step whose scaled gradients are "
                    "not finite (and halves its scale), which alone is expected under "
                    "mixed_float16, not a divergence."
                )
            raise FloatingPointError(f"{message} {self._advice()}")

    def _advice(self):
        model = self.model
        float16 = any(getattr(layer, "compute_dtype", None) == "float16" for layer in _layers(model))
        if not float16:
            return "Lower the learning rate or check the input for NaNs."
        if isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer):
            return (
                "Under mixed_float16 the loss scaler only skips steps whose scaled gradients "
                "overflow; a non-finite loss means the forward pass itself left float16's range "
                "(largest value 65504) or the input holds NaNs: use mixed_bfloat16 (float32's "
                "range) or float32, or lower the learning rate."
            )
        return (
            "The model computes in float16 without loss scaling: compile it under the "
            "mixed_float16 policy (Keras then wraps the optimizer in "
            "keras.optimizers.LossScaleOptimizer) or wrap it yourself, or use mixed_bfloat16."
        )


def _layers(layer):
    """`layer` and every layer nested in it (through the public `layers` of models)."""
    yield layer
    for sublayer in getattr(layer, "layers", None) or ():
        yield from _layers(sublayer)
