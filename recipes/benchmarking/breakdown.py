"""Where one TensorFlow training step spends its time, part by part.

Each part of the `BarlowTwins` step is compiled as its own `tf.function` and timed alone
on the benchmark's synthetic views: the input (`tf.data` iterator), the encoder forward
pass, encoder forward + backward, the projector forward + backward, the standardisation +
`C` + loss forward + backward, and the optimizer update; then the whole step. Parts are
timed in turns (as the worker does), and the median over rounds is reported.
"""

import statistics
import time


def _timed(fn, calls):
    durations = []
    for _ in range(calls):
        start = time.perf_counter()
        out = fn()
        float(out)
        durations.append(time.perf_counter() - start)
    return durations


def step_breakdown(spec, rounds=3, calls=2):
    """Seconds per call of each part of one training step (TensorFlow backend).

    Args:
        spec: a benchmark spec (`recipes/benchmark.py`).
        rounds: timed rounds (all parts in turn per round; the median is reported).
        calls: calls per part and round.

    Returns:
        dict: part name → median seconds per call.
    """
    import tensorflow as tf
    from keras import ops

    from benchmarking.runners import build_model, synthetic_views
    from keras_barlow import losses

    model = build_model(spec)
    view_a, view_b = synthetic_views(spec)
    iterator = iter(tf.data.Dataset.from_tensors((view_a, view_b)).repeat())
    a, b = tf.constant(view_a), tf.constant(view_b)
    encoder_variables = model.encoder.trainable_variables
    projector_variables = model.projector.trainable_variables
    variables = model.trainable_variables
    model.optimizer.build(variables)
    features = ops.concatenate([model(a, training=True), model(b, training=True)], axis=0)
    z_a, z_b = model.embed(a, training=True), model.embed(b, training=True)
    gradients = [ops.zeros_like(v) + 1e-3 for v in variables]

    def encoder_forward():
        return ops.sum(model(a, training=True)) + ops.sum(model(b, training=True))

    def total(tensors):
        # Every gradient feeds the result: returning one would let TensorFlow prune the
        # others (all filter gradients but the first layer's).
        return ops.sum(ops.stack([ops.sum(t) for t in tensors]))

    def encoder_backward():
        with tf.GradientTape() as tape:
            out = ops.sum(model(a, training=True)) + ops.sum(model(b, training=True))
        return total(tape.gradient(out, encoder_variables))

    def projector_backward():
        with tf.GradientTape() as tape:
            out = ops.sum(ops.square(model.projector(features, training=True)))
        return total(tape.gradient(out, projector_variables))

    def loss_backward():
        with tf.GradientTape() as tape:
            tape.watch([z_a, z_b])
            loss = losses.barlow_twins_loss(z_a, z_b, lambd=model.lambd)
        return ops.sum(tape.gradient(loss, z_a))

    def optimizer_update():
        model.optimizer.apply_gradients(zip(gradients, variables))
        return ops.sum(variables[0])

    def input_batch():
        x, _ = next(iterator)
        return ops.sum(x[0, 0, 0])

    def whole_step():
        return model.train_step(next(iterator))["loss"]

    parts = {
        "input (tf.data)": input_batch,
        "encoder forward (2 views)": encoder_forward,
        "encoder forward+backward (2 views)": encoder_backward,
        "projector forward+backward (2N rows)": projector_backward,
        "standardise + C + loss, forward+backward": loss_backward,
        "optimizer update": optimizer_update,
        "whole train_step": whole_step,
    }
    compiled = {name: tf.function(fn) for name, fn in parts.items()}
    for fn in compiled.values():
        _timed(fn, 1)
    seconds = {name: [] for name in parts}
    for _ in range(rounds):
        for name, fn in compiled.items():
            seconds[name].append(statistics.mean(_timed(fn, calls)))
    return {name: statistics.median(values) for name, values in seconds.items()}
