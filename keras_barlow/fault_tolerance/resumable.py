"""`resumable_dataset`: a stream of batches that can start at any step, for exact resumes."""


def resumable_dataset(epoch_dataset, *, epochs, steps_per_epoch, start_step=0):
    """A stream of `epochs × steps_per_epoch` batches that can start at any step.

    The stream is `epoch_dataset(0), epoch_dataset(1), …` (each cut to
    `steps_per_epoch` batches), starting at batch `start_step`. When `epoch_dataset`
    depends only on its epoch argument (seeded shuffles and augmentations, e.g. with a
    seed derived from the epoch), a resumed run sees exactly the batches an uninterrupted
    one would. Skipping into an epoch recomputes its first batches (at most one epoch of
    input work).

    Args:
        epoch_dataset: `epoch (int64 scalar tensor) -> tf.data.Dataset` of at least
            `steps_per_epoch` batches; it is traced once by `flat_map`.
        epochs: epochs of the whole run.
        steps_per_epoch: batches per epoch.
        start_step: batches already trained (`BackupAndRestore.resume_step()`).

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
    first_epoch, skip = divmod(start_step, steps_per_epoch)
    stream = tf.data.Dataset.range(first_epoch, epochs).flat_map(
        lambda epoch: epoch_dataset(epoch).take(steps_per_epoch)
    )
    return stream.skip(skip)
