"""Weighted k-nearest-neighbour classification of frozen features (cosine, temperature).

The standard self-supervised monitor (Wu et al. 2018, DINO): the `k` training features
most similar to a query vote for their class with weight `exp(cosine / temperature)`.
"""

import numpy as np

from keras_barlow.evaluation.features import as_int_labels, extract_features, l2_normalize
from keras_barlow.evaluation.metrics import accuracies, count_classes

KNN_K = 200
KNN_KS = (200, 20)  # reported by default; the first also gives the top-level top1/top5
KNN_TEMPERATURE = 0.1


def nearest_neighbours(train_features, query_features, k, *, batch_size=256, train_batch_size=65536):
    """The `k` most cosine-similar training rows of every query, most similar first.

    Memory stays bounded: queries go `batch_size` at a time, and the training features
    `train_batch_size` at a time with a running top-k.

    Args:
        train_features: `(n_train, dim)`; query_features: `(n_queries, dim)` (normalised here).
        k: neighbours (capped at `n_train`).

    Returns:
        `(similarities, indices)`, each `(n_queries, k)`, sorted by decreasing similarity.

    Example:

    >>> sims, idx = nearest_neighbours([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[1.0, 0.1]], k=2)
    >>> idx.tolist(), sims.astype(float).round(3).tolist()
    ([[0, 2]], [[0.995, 0.774]])
    """
    train = l2_normalize(train_features)
    queries = l2_normalize(query_features)
    if train.shape[1] != queries.shape[1]:
        raise ValueError(f"train and query features differ in size: {train.shape[1]} vs {queries.shape[1]}")
    k = min(int(k), len(train))
    all_sims = np.zeros((len(queries), k), np.float32)
    all_idx = np.zeros((len(queries), k), np.int64)
    for q0 in range(0, len(queries), batch_size):
        q = queries[q0 : q0 + batch_size]
        best_sim = np.full((len(q), 0), -np.inf, np.float32)
        best_idx = np.zeros((len(q), 0), np.int64)
        for t0 in range(0, len(train), train_batch_size):
            chunk = train[t0 : t0 + train_batch_size]
            chunk_idx = np.broadcast_to(np.arange(t0, t0 + len(chunk)), (len(q), len(chunk)))
            sim = np.concatenate([best_sim, q @ chunk.T], axis=1)
            idx = np.concatenate([best_idx, chunk_idx], axis=1)
            if sim.shape[1] > k:
                keep = np.argpartition(-sim, k - 1, axis=1)[:, :k]
                sim, idx = np.take_along_axis(sim, keep, 1), np.take_along_axis(idx, keep, 1)
            best_sim, best_idx = sim, idx
        order = np.argsort(-best_sim, axis=1, kind="stable")
        all_sims[q0 : q0 + len(q)] = np.take_along_axis(best_sim, order, 1)
        all_idx[q0 : q0 + len(q)] = np.take_along_axis(best_idx, order, 1)
    return all_sims, all_idx


def neighbour_votes(similarities, neighbour_labels, num_classes, temperature=KNN_TEMPERATURE):
    """Class totals of the votes `exp(similarity / temperature)` of each query's neighbours.

    Example:

    >>> votes = neighbour_votes([[0.9, 0.5]], [[1, 0]], num_classes=2, temperature=0.1)
    >>> int(votes.argmax()), bool(votes[0, 1] > votes[0, 0])
    (1, True)
    """
    similarities = np.asarray(similarities)
    neighbour_labels = np.asarray(neighbour_labels)
    weights = np.exp(similarities.astype(np.float64) / temperature)
    votes = np.zeros((len(similarities), num_classes))
    np.add.at(votes, (np.arange(len(similarities))[:, None], neighbour_labels), weights)
    return votes.astype(np.float32)


def _check_knn_settings(ks, temperature):
    if not ks or any(int(k) != k or k < 1 for k in ks) or temperature <= 0:
        raise ValueError(
            f"k must be one or more integers >= 1 and temperature > 0, got k={ks}, temperature={temperature}"
        )


def knn_scores(
    train_features,
    train_labels,
    query_features,
    *,
    k=KNN_K,
    temperature=KNN_TEMPERATURE,
    num_classes=None,
    batch_size=256,
    train_batch_size=65536,
):
    """Class scores of the weighted kNN classifier (Wu et al. 2018; DINO's monitor).

    For each query, the `k` training features with the highest cosine similarity `s` vote
    for their class with weight `exp(s / temperature)`. Features are L2-normalised here.

    Args:
        train_features, train_labels: the labelled neighbours.
        query_features: the rows to classify.
        k, temperature: neighbours (200) and vote temperature (0.1).
        num_classes: columns of the result (default: from `train_labels`).
        batch_size, train_batch_size: memory bounds (`nearest_neighbours`).

    Returns:
        float32 `(n_queries, num_classes)` vote totals.

    Example:

    >>> train = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]
    >>> knn_scores(train, [0, 0, 1], [[0.2, 1.0], [1.0, 0.2]], k=2).argmax(axis=1).tolist()
    [1, 0]
    """
    _check_knn_settings((k,), temperature)
    train_labels = as_int_labels(train_labels)
    num_classes = num_classes or count_classes(train_labels)
    sims, idx = nearest_neighbours(
        train_features, query_features, k, batch_size=batch_size, train_batch_size=train_batch_size
    )
    return neighbour_votes(sims, train_labels[idx], num_classes, temperature)


def knn_accuracy(
    encoder, train_data, test_data, *, k=KNN_KS, temperature=KNN_TEMPERATURE, batch_size=256, preprocess=None
):
    """Weighted kNN accuracy of frozen, L2-normalised features (the standard SSL monitor).

    Args:
        encoder: Keras model/layer, or None for raw pixels (unused for `Features` inputs).
        train_data, test_data: arrays, datasets of `(image, label)`, or `Features`.
        k: neighbours: an int, or several (default `(200, 20)`), all from one search.
        temperature: vote weight `exp(cosine / temperature)` (default 0.1).
        batch_size: queries (and images per forward pass) at a time.
        preprocess: optional callable applied to image batches.

    Returns:
        `{"top1", "top5"}` of the (first) `k`, and `"k<k>": {"top1", "top5"}` for each `k`
        (e.g. `"k20"`, `"k200"`).

    Example:

    >>> from keras_barlow.evaluation.features import Features
    >>> train = Features([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], [0, 0, 1, 1])
    >>> test = Features([[1.0, 0.2], [0.3, 1.0]], [0, 1])
    >>> result = knn_accuracy(None, train, test, k=(3, 1))
    >>> result["top1"], result["k1"]["top1"], sorted(result)
    (1.0, 1.0, ['k1', 'k3', 'top1', 'top5'])
    """
    ks = tuple(int(v) for v in np.atleast_1d(k))
    _check_knn_settings(ks, temperature)
    train = extract_features(encoder, train_data, batch_size=batch_size, preprocess=preprocess)
    test = extract_features(encoder, test_data, batch_size=batch_size, preprocess=preprocess)
    num_classes = count_classes(train.labels, test.labels)
    sims, idx = nearest_neighbours(train.features, test.features, max(ks), batch_size=batch_size)
    neighbour_labels = train.labels[idx]
    result = {}
    for value in ks:
        votes = neighbour_votes(sims[:, :value], neighbour_labels[:, :value], num_classes, temperature)
        result[f"k{value}"] = accuracies(votes, test.labels)
    return {**result[f"k{ks[0]}"], **result}
