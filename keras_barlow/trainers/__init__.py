"""The backend-specific training steps of `BarlowTwins`, behind one interface.

`tensorflow.py` runs under `tf.distribute` (all-reduced statistics, synchronised batch
norm, loss divided by the replica count); `jax.py` is a stateless step whose global
statistics come from `keras.distribution` compiling one global program. Both implement
`keras_barlow.trainers.base.Trainer`; `select_trainer` picks one for the Keras backend.
"""

import keras

from keras_barlow.trainers.base import Trainer

BACKENDS = ("tensorflow", "jax")


def select_trainer(backend=None):
    """The `Trainer` for a Keras backend.

    Args:
        backend: `"tensorflow"` or `"jax"` (default: the active Keras backend).

    Returns:
        A `keras_barlow.trainers.base.Trainer`.
    """
    backend = backend or keras.backend.backend()
    # Imported here: each backend's module imports its framework (TensorFlow or JAX).
    if backend == "tensorflow":
        from keras_barlow.trainers.tensorflow import TensorFlowTrainer

        return TensorFlowTrainer()
    if backend == "jax":
        from keras_barlow.trainers.jax import JaxTrainer

        return JaxTrainer()
    raise RuntimeError(
        f"BarlowTwins trains on the {' and '.join(map(repr, BACKENDS))} Keras backends, not {backend!r}. "
        "Set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax before importing keras."
    )


__all__ = ["BACKENDS", "Trainer", "select_trainer"]
