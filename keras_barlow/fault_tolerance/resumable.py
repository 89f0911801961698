"""`resumable_dataset`: a stream of batches that can start at any step, for exact resumes."""

# Refill pass k ≥ 1 of epoch e is `epoch_dataset(e + k · REFILL_STRIDE)`: distinct from every
# epoch's first pass (e < REFILL_STRIDE) and from one another.
REFILL_STRIDE = 2**32


def resumable_dataset(epoch_dataset, *, epochs, steps_per_epoch, start_step=0, refill=False):
    """A stream of `epochs × steps_per_epoch` batches that can start at any step.

    The stream is `epoch_dataset(0), epoch_dataset(1), …` (each cut to
    `steps_per_epoch` batches), starting at batch `start_step`. When `epoch_dataset`
    depends only on its epoch argument (seeded shuffles and augmentations, e.g. with a
    seed derived from the epoch), a resumed run sees exactly the batches an uninterrupted
    one would. Skipping into an epoch recomputes its first batches (at most one epoch of
    input work).

    Args:
        epoch_dataset: `epoch (int64 scalar tensor) -> tf.data.Dataset`; it is traced once
            by `flat_map`. Without `refill` it must hold at least `steps_per_epoch` batches.
        epochs: epochs of the whole run.
        steps_per_epoch: batches per epoch.
        start_step: batches already trained (`BackupAndRestore.resume_step()`).
        refill: when epoch `e`'s dataset runs out before `steps_per_epoch` batches, go on
            with `epoch_dataset(e + k · 2**32)` for k = 1, 2, … (fresh passes: a new shuffle
            and new augmentations), so that every epoch has exactly `steps_per_epoch` batches.

    Returns:
        A `tf.data.Dataset`; pass `steps_per_epoch` to `fit` as well.

    Example:

    ```python
    def epoch_data(epoch):
        return images.shuffle(10_000, seed=epoch).batch(256, drop_remainder=True)
    data = resumable_dataset(epoch_data, epochs=100, steps_per_epoch=195,
                             start_step=backup.resume_step())
    ```
    """
    import tensorflow as tf

    for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    total = epochs * steps_per_epoch
    if isinstance(start_step, bool) or not isinstance(start_step, int) or not 0 <= start_step <= total:
        raise ValueError(f"start_step must be an integer in [0, {total}], got {start_step!r}")
    if epochs >= REFILL_STRIDE:
        raise ValueError(f"epochs must be below 2**32, got {epochs}")

    def one_epoch(epoch):
        if not refill:
            return epoch_dataset(epoch).take(steps_per_epoch)
        passes = tf.data.Dataset.counter().map(lambda k: epoch + k * REFILL_STRIDE)
        return passes.flat_map(epoch_dataset).take(steps_per_epoch)

    first_epoch, skip = divmod(start_step, steps_per_epoch)
    return tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch).skip(skip)
