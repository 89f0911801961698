"""`NonFiniteLossGuard`: stops `fit` at the first non-finite loss."""

import math

import keras
from keras import ops


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops `fit` with a `FloatingPointError` naming the step of the first non-finite loss.

    `BarlowTwins.fit` adds it first, before any checkpoint callback, so that no later
    callback sees the weights of the diverged step.
    """

    def on_train_begin(self, logs=None):
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get("loss")
        if value is None:
            return
        value = float(value)
        if not math.isfinite(value):
            self.model.stop_training = True
            optimizer = self.model.optimizer
            step = int(ops.convert_to_numpy(optimizer.iterations)) if optimizer else batch
            raise FloatingPointError(
                f"the Barlow Twins loss became {value} at step {step} (epoch {self._epoch}, "
                f"batch {batch}); training stopped before any later callback could save "
                "these weights. Lower the learning rate, check the input for NaNs, or use "
                "mixed_float16 only with loss scaling."
            )
