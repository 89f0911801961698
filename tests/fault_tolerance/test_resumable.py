"""resumable_dataset: the input stream that starts at any step of the same epochs."""

import threading

import numpy as np
import pytest
import tensorflow as tf

from keras_barlow.fault_tolerance import resumable_dataset
from tests.fault_tolerance.helpers import EPOCHS, STEPS, data, epoch_data


def test_resumable_dataset_starts_anywhere_in_the_same_stream():
    full = [a.numpy() for a, _ in data(0)]
    assert len(full) == EPOCHS * STEPS
    for start in (1, STEPS, STEPS + 2, EPOCHS * STEPS):
        tail = [a.numpy() for a, _ in data(start)]
        assert len(tail) == len(full) - start
        for got, want in zip(tail, full[start:]):
            np.testing.assert_array_equal(got, want)
    assert not np.array_equal(full[0], full[STEPS])  # epochs differ
    with pytest.raises(ValueError, match="start_step"):
        data(EPOCHS * STEPS + 1)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        resumable_dataset(epoch_data, epochs=1, steps_per_epoch=0)


def test_resumable_dataset_refills_short_epochs_with_fresh_passes():
    import tensorflow as tf

    def short(epoch):  # 2 batches per pass, each batch the pass number
        return tf.data.Dataset.from_tensors(epoch).repeat(2)

    stream = resumable_dataset(short, epochs=2, steps_per_epoch=5, refill=True)
    refill = 2**32
    first, second = [0, 0, refill, refill, 2 * refill], [1, 1, 1 + refill, 1 + refill, 1 + 2 * refill]
    assert [int(b) for b in stream] == first + second
    tail = resumable_dataset(short, epochs=2, steps_per_epoch=5, start_step=3, refill=True)
    assert [int(b) for b in tail] == [refill, 2 * refill, 1, 1, 1 + refill, 1 + refill, 1 + 2 * refill]
    assert len(list(resumable_dataset(short, epochs=2, steps_per_epoch=5))) == 4  # without refill: short


STRIDE = 2**32


def _collect(dataset, timeout=60):
    """(elements delivered, error raised or None); fails instead of hanging after `timeout` s."""
    out = {"elements": [], "error": None}

    def run():
        try:
            for element in dataset:
                out["elements"].append(element)
        except tf.errors.OpError as error:
            out["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the dataset did not end: it hangs"
    return out["elements"], out["error"]


def test_an_empty_pass_is_an_error_instead_of_an_endless_refill():
    def empty(epoch):  # batches of shape (4, 3), all filtered out (e.g. every file dropped)
        batches = tf.data.Dataset.from_tensors(tf.fill([4, 3], tf.cast(epoch, tf.float32))).repeat(2)
        return batches.filter(lambda batch: batch[0, 0] < 0)

    elements, error = _collect(resumable_dataset(empty, epochs=2, steps_per_epoch=5, refill=True))
    assert elements == []
    assert isinstance(error, tf.errors.InvalidArgumentError)
    assert (
        "resumable_dataset: pass 0 of epoch 0 (epoch_dataset(0)) yielded no batch, so no later pass "
        "will either, and the epoch can never reach its 5 batches: the data holds fewer examples than one "
        "batch (or none are left after dropping unreadable ones). Add data, lower the batch size, or fix "
        "the inputs epoch_dataset reads"
    ) in error.message


def test_an_empty_refill_pass_is_an_error_after_the_batches_before_it():
    def first_pass_only(epoch):  # 2 batches on an epoch's first pass, none on its refills
        return tf.data.Dataset.from_tensors(epoch).repeat(
            tf.where(epoch < STRIDE, tf.constant(2, tf.int64), 0)
        )

    stream = resumable_dataset(first_pass_only, epochs=2, steps_per_epoch=3, refill=True)
    elements, error = _collect(stream)
    assert [int(e) for e in elements] == [0, 0]
    assert f"pass 1 of epoch 0 (epoch_dataset({STRIDE})) yielded no batch" in error.message


def test_refill_reads_at_most_steps_per_epoch_passes_of_composite_batches():
    def ragged(epoch):  # one ragged batch per pass (no end marker for those), or none at all
        batch = tf.RaggedTensor.from_row_lengths(tf.fill([3], epoch), [1, 2])
        return tf.data.Dataset.from_tensors(batch).take(
            tf.where(epoch % STRIDE == 0, tf.constant(1, tf.int64), 0)
        )

    elements, error = _collect(resumable_dataset(ragged, epochs=2, steps_per_epoch=3, refill=True))
    assert error is None
    assert [int(e.flat_values[0]) for e in elements] == [0, STRIDE, 2 * STRIDE]

    def none(epoch):
        return ragged(epoch + 1)  # every pass empty: the epoch ends short instead of hanging

    elements, error = _collect(resumable_dataset(none, epochs=2, steps_per_epoch=3, refill=True))
    assert elements == [] and error is None
