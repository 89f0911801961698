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
            A pass that yields no batch raises an error (no later pass would yield one, and
            the epoch could never be filled); at most `steps_per_epoch` passes are read.

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
        # Each pass holds at least one batch (an empty one raises), so this many always suffice.
        passes = tf.data.Dataset.range(steps_per_epoch)
        return passes.flat_map(lambda k: _checked_pass(epoch_dataset, epoch, k, steps_per_epoch)).take(
            steps_per_epoch
        )

    first_epoch, skip = divmod(start_step, steps_per_epoch)
    return tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch).skip(skip)


def _checked_pass(epoch_dataset, epoch, k, steps_per_epoch):
    """Refill pass `k` of `epoch`, ending in an error if it held no batch (dense batches only)."""
    import tensorflow as tf

    dataset = epoch_dataset(epoch + k * REFILL_STRIDE)
    spec = dataset.element_spec
    if not all(isinstance(s, tf.TensorSpec) and s.shape.rank is not None for s in tf.nest.flatten(spec)):
        return dataset  # no end marker for composite tensors: the bounded passes end the epoch short
    end = tf.nest.map_structure(lambda s: tf.zeros([d or 0 for d in s.shape], s.dtype), spec)
    marked = tf.data.Dataset.zip(dataset, tf.data.Dataset.from_tensors(False).repeat())
    marked = marked.concatenate(tf.data.Dataset.from_tensors((end, True))).enumerate()
    message = tf.strings.format(
        "resumable_dataset: pass {} of epoch {} (epoch_dataset({})) yielded no batch, so no later pass "
        f"will either, and the epoch can never reach its {steps_per_epoch} batches: the data holds fewer "
        "examples than one batch (or none are left after dropping unreadable ones). Add data, lower the "
        "batch size, or fix the inputs epoch_dataset reads",
        (k, epoch, epoch + k * REFILL_STRIDE),
    )

    @tf.autograph.experimental.do_not_convert
    def keep(count, element):
        _, is_end = element
        checked = tf.debugging.Assert(tf.logical_or(tf.logical_not(is_end), count > 0), [message])
        with tf.control_dependencies([checked]):
            return tf.logical_not(is_end)

    return marked.filter(keep).map(
        tf.autograph.experimental.do_not_convert(lambda count, element: element[0])
    )
