"""Weighted kNN against a straightforward per-query reference."""

import numpy as np
import pytest

from keras_barlow.evaluation import Features, knn_accuracy, knn_scores, nearest_neighbours


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


@pytest.mark.parametrize("k", [1, 5, 200])
def test_knn_scores_match_reference(k, blobs):
    train, train_labels = blobs(seed=1)
    queries, _ = blobs(n_per_class=5, seed=2)
    expected = reference_knn_scores(train, train_labels, queries, min(k, len(train)), 0.1, 4)
    # Small query and training chunks exercise the running top-k merge.
    got = knn_scores(train, train_labels, queries, k=k, temperature=0.1, batch_size=7, train_batch_size=13)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    unchunked = knn_scores(train, train_labels, queries, k=k, temperature=0.1)
    np.testing.assert_allclose(unchunked, expected, rtol=1e-5)


def test_nearest_neighbours_sorted_and_chunking_invariant(blobs):
    train, _ = blobs(seed=1)
    queries, _ = blobs(n_per_class=5, seed=2)
    sims, idx = nearest_neighbours(train, queries, 9, batch_size=3, train_batch_size=11)
    assert np.all(np.diff(sims, axis=1) <= 0)
    normalised = train / np.linalg.norm(train, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    np.testing.assert_allclose(sims, np.take_along_axis(q @ normalised.T, idx, 1), rtol=1e-5)
    np.testing.assert_allclose(sims, -np.sort(-(q @ normalised.T), axis=1)[:, :9], rtol=1e-5)


def test_knn_accuracy_on_raw_pixels_matches_reference(image_blobs):
    images, labels = image_blobs()
    test_images, test_labels = image_blobs(n_per_class=4, seed=3)
    result = knn_accuracy(None, (images, labels), (test_images, test_labels), k=10, temperature=0.5)
    ref = reference_knn_scores(
        images.reshape(len(images), -1), labels, test_images.reshape(len(test_images), -1), 10, 0.5, 3
    )
    assert result["top1"] == pytest.approx(np.mean(ref.argmax(1) == test_labels))
    assert result["top5"] == 1.0  # 3 classes


def test_knn_accuracy_reports_several_k_from_one_search(blobs):
    train, train_labels = blobs(n_per_class=60, spread=1.5, seed=4)
    test, test_labels = blobs(n_per_class=20, spread=1.5, seed=5)
    train, test = Features(train, train_labels), Features(test, test_labels)
    both = knn_accuracy(None, train, test)  # default: k = 200 and 20
    assert set(both) == {"top1", "top5", "k200", "k20"}
    for k in (20, 200):
        alone = knn_accuracy(None, train, test, k=k)
        assert both[f"k{k}"] == {"top1": alone["top1"], "top5": alone["top5"]}
        ref = reference_knn_scores(train.features, train_labels, test.features, k, 0.1, 4)
        assert both[f"k{k}"]["top1"] == pytest.approx(np.mean(ref.argmax(1) == test_labels))
    assert (both["top1"], both["top5"]) == (both["k200"]["top1"], both["k200"]["top5"])
    with pytest.raises(ValueError, match="k must be"):
        knn_accuracy(None, train, test, k=(20, 0))
