"""Feature extraction: arrays and datasets agree, inference-mode batch norm, pooling, errors."""

import keras
import numpy as np
import pytest

from keras_barlow.evaluation import Features, encode_batch, extract_features, linear_probe


@pytest.mark.tensorflow_only
def test_extract_features_same_from_arrays_and_datasets(image_blobs, tiny_encoder):
    import tensorflow as tf

    images, labels = image_blobs()
    encoder = tiny_encoder(seed=0)
    # Give batch norm non-trivial moving statistics: inference mode must use them.
    bn = next(layer for layer in encoder.layers if isinstance(layer, keras.layers.BatchNormalization))
    bn.moving_mean.assign(np.linspace(-1, 1, 8).astype("float32"))
    bn.moving_variance.assign(np.linspace(0.5, 2, 8).astype("float32"))
    expected = keras.ops.convert_to_numpy(keras.ops.mean(encoder(images, training=False), axis=(1, 2)))
    expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)

    from_arrays = extract_features(encoder, (images, labels), batch_size=5)
    batched = extract_features(encoder, tf.data.Dataset.from_tensor_slices((images, labels)).batch(7))
    unbatched = extract_features(encoder, tf.data.Dataset.from_tensor_slices((images, labels)), batch_size=16)
    dicts = extract_features(encoder, tf.data.Dataset.from_tensor_slices({"image": images, "label": labels}))
    for features in (from_arrays, batched, unbatched, dicts):
        np.testing.assert_allclose(features.features, expected, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(features.labels, labels)
    raw = extract_features(encoder, (images, labels), normalize=False)
    assert not np.allclose(np.linalg.norm(raw.features, axis=1), 1.0)


def test_encode_batch_pools_like_feature_pooling():
    tokens = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4)

    def token_encoder(images, training=False):
        assert training is False
        return keras.ops.convert_to_tensor(tokens)

    np.testing.assert_array_equal(encode_batch(token_encoder, np.zeros((2, 1, 1, 1))), tokens[:, 0])
    maps = np.arange(2 * 2 * 2 * 3, dtype="float32").reshape(2, 2, 2, 3)
    np.testing.assert_allclose(encode_batch(lambda x, training: x, maps), maps.mean(axis=(1, 2)))
    np.testing.assert_array_equal(encode_batch(None, maps), maps.reshape(2, -1))
    with pytest.raises(ValueError, match="got shape"):
        encode_batch(lambda x, training: x[:, 0, 0, 0], maps)


def test_bad_inputs_explain_themselves(image_blobs):
    images, labels = image_blobs()
    with pytest.raises(ValueError, match="labels"):
        extract_features(None, (images, labels[:-1]))
    with pytest.raises(ValueError, match=r"\(n, h, w, c\)"):
        extract_features(None, (images[0], labels))
    with pytest.raises(ValueError, match="expected"):
        extract_features(None, images)
    with pytest.raises(ValueError, match="precomputed Features"):
        linear_probe(
            None, Features(images.reshape(len(images), -1), labels), (images, labels), augmentations=2
        )


@pytest.mark.tensorflow_only
def test_dataset_without_labels_is_rejected(image_blobs):
    import tensorflow as tf

    images, _ = image_blobs()
    with pytest.raises(ValueError, match="labels"):
        extract_features(None, tf.data.Dataset.from_tensor_slices(images).batch(4))
