"""Classification accuracy from class scores (NumPy), shared by every protocol."""

import numpy as np


def top_k_accuracy(scores, labels, k):
    """Fraction of rows whose label is among the `k` highest scores (ties: lowest index).

    Example:

    >>> top_k_accuracy([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], [1, 2], k=1)
    0.5
    """
    scores = np.asarray(scores)
    k = min(int(k), scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=1)))


def accuracies(scores, labels):
    """`{"top1", "top5"}` of class `scores` `(n, classes)` against int `labels` `(n,)`."""
    return {"top1": top_k_accuracy(scores, labels, 1), "top5": top_k_accuracy(scores, labels, 5)}


def count_classes(*label_sets):
    """Number of classes: one more than the largest label in any non-empty set.

    Example:

    >>> count_classes(np.array([0, 3]), np.array([1]))
    4
    """
    return int(max(int(np.max(labels)) for labels in label_sets if len(labels)) + 1)
