"""Linear probe: the converged logistic regression against scikit-learn and its optimality
conditions, C selection on the validation split, and the paper's SGD protocol."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from keras_barlow import evaluation
from keras_barlow.evaluation import (
    LOGISTIC_CS,
    Features,
    l2_normalize,
    linear_probe,
    stratified_split,
    top_k_accuracy,
)


def split(features, labels, every=4):
    test = np.arange(len(labels)) % every == 0
    return Features(features[~test], labels[~test]), Features(features[test], labels[test])


def separable(blobs):
    return blobs(n_per_class=40, classes=3, dim=5, spread=0.05, seed=0)


def overlapping(blobs):
    return blobs(n_per_class=60, classes=4, dim=5, spread=1.6, seed=3)


def regularised_gradient(estimator, features, labels, C):
    """Gradient of ½‖W‖² + C · Σ cross-entropy (scikit-learn's objective, bias not
    penalised) at the fitted weights: ~0 at the optimum."""
    logits = features @ estimator.coef_.T + estimator.intercept_
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    residual = probabilities - np.eye(estimator.coef_.shape[0])[labels]
    return estimator.coef_ + C * residual.T @ features, C * residual.sum(axis=0)


@pytest.mark.parametrize("make_data", [separable, overlapping], ids=["separable", "overlapping"])
def test_logistic_probe_equals_scikit_learn_at_the_chosen_C(make_data, blobs):
    train, test = split(*make_data(blobs))
    result, estimator = linear_probe(None, train, test, return_classifier=True)
    assert result["protocol"] == "logistic" and result["converged"]
    assert result["C"] in LOGISTIC_CS
    features, test_features = l2_normalize(train.features), l2_normalize(test.features)
    reference = LogisticRegression(C=result["C"], max_iter=10000).fit(features, train.labels)
    np.testing.assert_array_equal(estimator.predict(test_features), reference.predict(test_features))
    np.testing.assert_allclose(
        estimator.predict_proba(test_features), reference.predict_proba(test_features), atol=1e-6
    )
    assert result["top1"] == np.mean(reference.predict(test_features) == test.labels)
    # Independently of scikit-learn: the solution is the optimum of the L2-regularised loss.
    grad_weights, grad_bias = regularised_gradient(estimator, features, train.labels, result["C"])
    # scikit-learn stops at a max-abs gradient of its per-example objective of tol = 1e-4
    # (measured 7e-5 here); ten L-BFGS iterations leave 2e-3.
    scale = result["C"] * len(train)
    assert np.abs(grad_weights).max() / scale < 2e-4 and np.abs(grad_bias).max() / scale < 2e-4


def test_separable_data_is_classified_perfectly_and_overlapping_is_not(blobs):
    train, test = split(*separable(blobs))
    assert linear_probe(None, train, test)["top1"] == 1.0
    train, test = split(*overlapping(blobs))
    assert 0.4 < linear_probe(None, train, test)["top1"] < 1.0


def test_C_is_the_best_on_the_stratified_validation_split(blobs):
    train, test = split(*overlapping(blobs))
    grid = (0.001, 0.03, 1.0, 30.0, 1000.0)
    result = linear_probe(None, train, test, Cs=grid, validation_fraction=0.25, seed=5)
    fit_part, held_out = stratified_split(train.labels, 0.25, seed=5)
    features = l2_normalize(train.features)
    expected = []
    for C in grid:
        model = LogisticRegression(C=C, max_iter=10000).fit(features[fit_part], train.labels[fit_part])
        expected.append(np.mean(model.predict(features[held_out]) == train.labels[held_out]))
    assert result["validation"]["C"] == list(grid) and result["validation"]["num_examples"] == len(held_out)
    np.testing.assert_allclose(result["validation"]["top1"], expected)
    assert len(set(expected)) > 1  # the choice matters on this data
    assert result["C"] == grid[int(np.argmax(expected))]
    # A fixed C skips the validation and refits with it.
    fixed = linear_probe(None, train, test, C=0.03)
    assert fixed["C"] == 0.03 and fixed["validation"] is None
    reference = LogisticRegression(C=0.03, max_iter=10000).fit(features, train.labels)
    assert fixed["top1"] == np.mean(reference.predict(l2_normalize(test.features)) == test.labels)


def test_protocol_options_are_checked(blobs):
    train, test = split(*separable(blobs))
    with pytest.raises(ValueError, match="epochs only apply to protocol='sgd'"):
        linear_probe(None, train, test, epochs=3)
    with pytest.raises(ValueError, match="C, Cs only apply to protocol='logistic'"):
        linear_probe(None, train, test, protocol="sgd", C=1.0, Cs=(1.0,))
    with pytest.raises(ValueError, match="protocol must be one of"):
        linear_probe(None, train, test, protocol="lbfgs")
    with pytest.raises(ValueError, match="at least 2 per class"):
        linear_probe(None, train.subset([0, 40, 80]), test)


def test_sgd_probe_separates_blobs_and_leaves_encoder_frozen(blobs, image_blobs, tiny_encoder):
    all_features, all_labels = blobs(n_per_class=50, spread=0.3)
    test = np.arange(len(all_labels)) % 5 == 0
    features, labels = all_features[~test], all_labels[~test]
    test_features, test_labels = all_features[test], all_labels[test]
    result, classifier = linear_probe(
        None,
        Features(features, labels),
        Features(test_features, test_labels),
        protocol="sgd",
        epochs=30,
        return_classifier=True,
    )
    assert result["top1"] >= 0.95 and result["protocol"] == "sgd" and result["epochs"] == 30
    # The returned classifier reproduces the reported accuracy.
    scores = classifier.predict(l2_normalize(test_features), verbose=0)
    assert result["top1"] == pytest.approx(top_k_accuracy(scores, test_labels, 1))

    images, image_labels = image_blobs()
    encoder = tiny_encoder(seed=0)
    before = [w.copy() for w in encoder.get_weights()]
    probe = linear_probe(encoder, (images, image_labels), (images, image_labels), protocol="sgd", epochs=20)
    assert probe["top1"] > 0.6  # chance is 1/3
    for a, b in zip(before, encoder.get_weights()):
        np.testing.assert_array_equal(a, b)
    converged = linear_probe(encoder, (images, image_labels), (images, image_labels))
    assert converged["top1"] > 0.6
    for a, b in zip(before, encoder.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.tensorflow_only
def test_linear_probe_augmented_copies_are_cached_once(image_blobs):
    images, labels = image_blobs()
    calls = []
    augment = evaluation.crop_flip_augmentation(scale=(0.5, 1.0), flip_prob=0.5)

    def counting(batch, seed):
        calls.append(len(batch))
        return augment(batch, seed)

    result = linear_probe(
        None, (images, labels), (images, labels), protocol="sgd", epochs=5, augmentations=3, augment=counting
    )
    assert sum(calls) == 3 * len(images)  # 3 copies, computed once, not once per epoch
    assert 0 <= result["top1"] <= 1
    logistic = linear_probe(None, (images, labels), (images, labels), augmentations=2, augment=counting)
    assert sum(calls) == 5 * len(images) and 0 <= logistic["top1"] <= 1
    a = np.asarray(augment(images, [0, 1]))
    assert a.shape == images.shape and not np.allclose(a, images)
    np.testing.assert_array_equal(a, np.asarray(augment(images, [0, 1])))
