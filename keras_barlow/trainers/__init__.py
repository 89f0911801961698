"""Backend-specific training steps of `BarlowTwins`; everything else is backend-neutral.

`tensorflow.py` runs under `tf.distribute` (all-reduced statistics, synchronised batch
norm, loss divided by the replica count); `jax.py` is a stateless step whose global
statistics come from `keras.distribution` compiling one global program.
"""
