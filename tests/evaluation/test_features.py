"""Evaluation protocols: kNN against a NumPy reference, subsets, linear probe, fine-tuning."""

import keras
import numpy as np
import pytest

from keras_barlow import evaluation
from keras_barlow.evaluation import (
    Features,
    FineTuneSGD,
    balanced_subset,
    extract_features,
    fine_tune,
    knn_accuracy,
    knn_scores,
    linear_probe,
    top_k_accuracy,
)


def reference_knn_scores(train, train_labels, queries, k, temperature, num_classes):
    """Straightforward per-query weighted kNN (independent of the batched implementation)."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = np.zeros((len(queries), num_classes))
    for i, q in enumerate(queries):
        sims = np.array([float(np.dot(q, t)) for t in train])
        order = sorted(range(len(train)), key=lambda j: -sims[j])[:k]
        for j in order:
            scores[i, train_labels[j]] += np.exp(sims[j] / temperature)
    return scores


def blobs(n_per_class=30, classes=4, dim=6, spread=0.6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 2
    labels = np.repeat(np.arange(classes), n_per_class)
    return (centres[labels] + spread * rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def tiny_encoder(image_size=8, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    return keras.Model(inputs, x, name="tiny")


def image_blobs(n_per_class=12, classes=3, seed=0):
    """Images whose class sets the mean brightness of one channel: easy, but not trivial."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    images = rng.uniform(0, 0.3, size=(len(labels), 8, 8, 3)).astype(np.float32)
    images[np.arange(len(labels)), :, :, labels] += 0.6
    return images, labels


@pytest.mark.parametrize("k", [1, 5, 200])
def test_knn_scores_match_reference(k):
    train, train_labels = blobs(seed=1)
    queries, _ = blobs(n_per_class=5, seed=2)
    expected = reference_knn_scores(train, train_labels, queries, min(k, len(train)), 0.1, 4)
    # Small query and training chunks exercise the running top-k merge.
    got = knn_scores(train, train_labels, queries, k=k, temperature=0.1, batch_size=7, train_batch_size=13)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    unchunked = knn_scores(train, train_labels, queries, k=k, temperature=0.1)
    np.testing.assert_allclose(unchunked, expected, rtol=1e-5)


def test_knn_accuracy_on_raw_pixels_matches_reference():
    images, labels = image_blobs()
    test_images, test_labels = image_blobs(n_per_class=4, seed=3)
    result = knn_accuracy(None, (images, labels), (test_images, test_labels), k=10, temperature=0.5)
    ref = reference_knn_scores(images.reshape(len(images), -1), labels, test_images.reshape(len(test_images), -1), 10, 0.5, 3)
    assert result["top1"] == pytest.approx(np.mean(ref.argmax(1) == test_labels))
    assert result["top5"] == 1.0  # 3 classes


def test_top_k_accuracy():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = np.array([1, 1, 0])
    assert top_k_accuracy(scores, labels, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(scores, labels, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(scores, labels, 5) == 1.0


def test_balanced_subset_is_deterministic_and_balanced():
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(10), 135))
    one = balanced_subset(labels, 0.01, seed=3)
    assert np.array_equal(one, balanced_subset(labels, 0.01, seed=3))
    assert not np.array_equal(one, balanced_subset(labels, 0.01, seed=4))
    assert np.bincount(labels[one]).tolist() == [1] * 10  # round(1.35) = 1 per class
    ten = balanced_subset(labels, 0.1, seed=3)
    assert np.bincount(labels[ten]).tolist() == [14] * 10  # round(13.5) = 14 (banker's)
    assert len(np.unique(ten)) == len(ten) and np.all(np.diff(ten) > 0)
    five = balanced_subset(labels, shots=5, seed=0)
    assert np.bincount(labels[five]).tolist() == [5] * 10
    with pytest.raises(ValueError, match="exactly one"):
        balanced_subset(labels, 0.1, shots=5)
    with pytest.raises(ValueError, match="fewer than"):
        balanced_subset(labels, shots=200)
    with pytest.raises(ValueError, match="fraction"):
        balanced_subset(labels, 1.5)


@pytest.mark.tensorflow_only
def test_extract_features_same_from_arrays_and_datasets():
    import tensorflow as tf

    images, labels = image_blobs()
    encoder = tiny_encoder()
    # Give batch norm non-trivial moving statistics: inference mode must use them.
    bn = [layer for layer in encoder.layers if isinstance(layer, keras.layers.BatchNormalization)][0]
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


def test_bad_inputs_explain_themselves():
    images, labels = image_blobs()
    with pytest.raises(ValueError, match="labels"):
        extract_features(None, (images, labels[:-1]))
    with pytest.raises(ValueError, match=r"\(n, h, w, c\)"):
        extract_features(None, (images[0], labels))
    with pytest.raises(ValueError, match="expected"):
        extract_features(None, images)
    with pytest.raises(ValueError, match="precomputed Features"):
        linear_probe(None, Features(images.reshape(len(images), -1), labels), (images, labels), augmentations=2)


@pytest.mark.tensorflow_only
def test_dataset_without_labels_is_rejected():
    import tensorflow as tf

    images, _ = image_blobs()
    with pytest.raises(ValueError, match="labels"):
        extract_features(None, tf.data.Dataset.from_tensor_slices(images).batch(4))


def test_linear_probe_separates_blobs_and_leaves_encoder_frozen():
    all_features, all_labels = blobs(n_per_class=50, spread=0.3)
    test = np.arange(len(all_labels)) % 5 == 0
    features, labels = all_features[~test], all_labels[~test]
    test_features, test_labels = all_features[test], all_labels[test]
    result, classifier = linear_probe(
        None, Features(features, labels), Features(test_features, test_labels), epochs=30, return_classifier=True
    )
    assert result["top1"] >= 0.95
    # The returned classifier reproduces the reported accuracy.
    scores = classifier.predict(evaluation.l2_normalize(test_features), verbose=0)
    assert result["top1"] == pytest.approx(top_k_accuracy(scores, test_labels, 1))

    images, image_labels = image_blobs()
    encoder = tiny_encoder()
    before = [w.copy() for w in encoder.get_weights()]
    probe = linear_probe(encoder, (images, image_labels), (images, image_labels), epochs=20)
    assert probe["top1"] > 0.6  # chance is 1/3
    for a, b in zip(before, encoder.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.tensorflow_only
def test_linear_probe_augmented_copies_are_cached_once():
    images, labels = image_blobs()
    calls = []
    augment = evaluation.crop_flip_augmentation(scale=(0.5, 1.0), flip_prob=0.5)

    def counting(batch, seed):
        calls.append(len(batch))
        return augment(batch, seed)

    result = linear_probe(None, (images, labels), (images, labels), epochs=5, augmentations=3, augment=counting)
    assert sum(calls) == 3 * len(images)  # 3 copies, computed once, not once per epoch
    assert 0 <= result["top1"] <= 1
    a = np.asarray(augment(images, [0, 1]))
    assert a.shape == images.shape and not np.allclose(a, images)
    np.testing.assert_array_equal(a, np.asarray(augment(images, [0, 1])))


def test_fine_tune_sgd_uses_two_learning_rates():
    keras.utils.set_random_seed(0)
    encoder_var = keras.Variable(np.ones((2, 2), "float32"), name="enc_kernel")
    head_var = keras.Variable(np.ones((2,), "float32"), name="head_bias")
    optimizer = FineTuneSGD(0.5, encoder_lr_multiplier=0.1, encoder_paths=[encoder_var.path], momentum=0.9)
    g_enc, g_head = np.full((2, 2), 0.2, "float32"), np.full((2,), -1.0, "float32")
    for _ in range(2):
        optimizer.apply_gradients([(g_enc, encoder_var), (g_head, head_var)])
    # Momentum buffer after two equal gradients: g, then 0.9 g + g; updates lr·buffer each.
    expected_enc = 1 - 0.05 * (0.2 + 1.9 * 0.2)
    expected_head = 1 - 0.5 * (-1.0 - 1.9)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(encoder_var), np.full((2, 2), expected_enc), rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(head_var), np.full((2,), expected_head), rtol=1e-6)
    restored = FineTuneSGD.from_config(optimizer.get_config())
    assert restored.encoder_paths == optimizer.encoder_paths and restored.encoder_lr_multiplier == 0.1


@pytest.mark.tensorflow_only
def test_fine_tune_subset_is_deterministic_and_encoder_copied():
    import tensorflow as tf

    images, labels = image_blobs(n_per_class=20)
    encoder = tiny_encoder()
    before = [w.copy() for w in encoder.get_weights()]
    result, model = fine_tune(encoder, (images, labels), 0.1, test_data=(images, labels), epochs=3, seed=1,
                              batch_size=8, return_model=True)
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
    again = fine_tune(encoder, dataset, 0.1, epochs=1, seed=1,
                      augment=evaluation.crop_flip_augmentation(flip_prob=0.0))
    assert again["indices"] == result["indices"]  # same subset from a dataset, same seed
    other = fine_tune(encoder, (images, labels), 0.1, epochs=1, seed=2)
    assert other["indices"] != result["indices"]


def test_frozen_encoder_learning_rate_zero_keeps_encoder():
    images, labels = image_blobs(n_per_class=10)
    encoder = tiny_encoder()
    before = [keras.ops.convert_to_numpy(w).copy() for w in encoder.trainable_weights]
    _, model = fine_tune(encoder, (images, labels), 0.5, epochs=2, encoder_learning_rate=0.0, batch_size=8,
                         return_model=True)
    encoder_vars = [v for v in model.trainable_variables if v.path in model.optimizer.encoder_paths]
    assert len(encoder_vars) == len(before)
    for v, w in zip(encoder_vars, before):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), w)


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_barlow_twins_encoder_beats_random_init_on_digits():
    """The quality bar at reduced scale: 8-px digits, a narrow ResNet-18, 150 steps."""
    from keras_barlow import BarlowTwins, data
    from keras_barlow.backbones import resnet
    from keras_barlow.optimizers import LARS, WarmupCosine

    size, epochs, batch = 8, 15, 128

    def encoder():
        return resnet(18, (size, size, 3), small_images=True, width=8)

    keras.utils.set_random_seed(0)
    model = BarlowTwins(encoder(), projector_dims=(256, 256, 256))
    steps = epochs * (1347 // batch)
    model.compile(optimizer=LARS(WarmupCosine(0.3, total_steps=steps, warmup_steps=steps // 10)))
    model.fit(data.pretraining_dataset("digits", batch_size=batch, preset="digits", image_size=size, seed=0),
              epochs=epochs, verbose=0)
    keras.utils.set_random_seed(1)
    random_init = encoder()

    def scores(net):
        train = extract_features(net, data.labeled_dataset("digits", batch_size=512, preset="digits", image_size=size))
        test = extract_features(
            net, data.labeled_dataset("digits", split="test", batch_size=512, preset="digits", image_size=size)
        )
        return linear_probe(None, train, test)["top1"], knn_accuracy(None, train, test)["top1"]

    bt_linear, bt_knn = scores(model)
    random_linear, random_knn = scores(random_init)
    print(f"linear {bt_linear:.3f} vs {random_linear:.3f}, kNN {bt_knn:.3f} vs {random_knn:.3f}")
    assert bt_linear > random_linear + 0.1 and bt_knn > random_knn + 0.1
    assert bt_linear > 0.8


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_evaluation_recipes_smoke(tmp_path):
    import json
    import os
    import sys

    recipes = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes")
    sys.path.insert(0, recipes)
    try:
        import linear_eval
        import quickstart
    finally:
        sys.path.remove(recipes)

    metrics = quickstart.main(["--smoke", "--output-dir", str(tmp_path / "qs"), "--verbose", "0"])
    saved = json.loads((tmp_path / "qs" / "metrics.json").read_text())
    assert set(saved["evaluation"]) == {"barlow_twins", "random_init", "raw_pixels"}
    assert saved["evaluation"]["raw_pixels"]["linear_top1"] > 0.9  # 8×8 pixels: ~0.967
    card = json.loads((tmp_path / "qs" / "encoder" / "model_card.json").read_text())
    assert card["evaluation"] == saved["evaluation"] == metrics["evaluation"]
    with open(tmp_path / "qs" / "cross_correlation.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    # The evaluation recipes on that export: loading rules from the model card.
    out = tmp_path / "linear.json"
    result = linear_eval.main(["--encoder", str(tmp_path / "qs" / "encoder"), "--epochs", "2", "--knn",
                               "--output", str(out)])
    assert result["feature_dim"] == 32 and json.loads(out.read_text())["linear"] == result["linear"]
    # (recipes/semi_supervised.py --smoke runs fine_tune, tested above; kept out of CI for time.)
