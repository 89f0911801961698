"""Fine-tuning: deterministic subsets, the encoder copied, a zero encoder rate freezes it."""

import keras
import numpy as np
import pytest

from keras_barlow import evaluation
from keras_barlow.evaluation import fine_tune


@pytest.mark.tensorflow_only
def test_fine_tune_subset_is_deterministic_and_encoder_copied(image_blobs, tiny_encoder):
    import tensorflow as tf

    images, labels = image_blobs(n_per_class=20)
    encoder = tiny_encoder(seed=0)
    before = [w.copy() for w in encoder.get_weights()]
    result, model = fine_tune(
        encoder,
        (images, labels),
        0.1,
        test_data=(images, labels),
        epochs=3,
        seed=1,
        batch_size=8,
        return_model=True,
    )
    assert result["num_labeled"] == 6 and len(result["indices"]) == 6  # 2 of each of 3 classes
    assert np.bincount(labels[result["indices"]]).tolist() == [2, 2, 2]
    assert 0 <= result["top1"] <= 1 and result["top5"] == 1.0
    for a, b in zip(before, encoder.get_weights()):
        np.testing.assert_array_equal(a, b)  # copy_encoder=True leaves the original alone
    tuned = [v for v in model.trainable_variables if v.path in model.optimizer.encoder_paths]
    assert tuned and not all(
        np.array_equal(keras.ops.convert_to_numpy(v), w) for v, w in zip(tuned, encoder.get_weights())
    )
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    again = fine_tune(
        encoder, dataset, 0.1, epochs=1, seed=1, augment=evaluation.crop_flip_augmentation(flip_prob=0.0)
    )
    assert again["indices"] == result["indices"]  # same subset from a dataset, same seed
    other = fine_tune(encoder, (images, labels), 0.1, epochs=1, seed=2)
    assert other["indices"] != result["indices"]
    shots = fine_tune(encoder, (images, labels), shots=3, epochs=1, seed=1)
    assert np.bincount(labels[shots["indices"]]).tolist() == [3, 3, 3]


def test_frozen_encoder_learning_rate_zero_keeps_encoder(image_blobs, tiny_encoder):
    images, labels = image_blobs(n_per_class=10)
    encoder = tiny_encoder(seed=0)
    before = [keras.ops.convert_to_numpy(w).copy() for w in encoder.trainable_weights]
    _, model = fine_tune(
        encoder, (images, labels), 0.5, epochs=2, encoder_learning_rate=0.0, batch_size=8, return_model=True
    )
    encoder_vars = [v for v in model.trainable_variables if v.path in model.optimizer.encoder_paths]
    assert len(encoder_vars) == len(before)
    for v, w in zip(encoder_vars, before):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), w)
