"""Top-k accuracy and class counting."""

import numpy as np
import pytest

from keras_barlow.evaluation import accuracies, count_classes, top_k_accuracy


def test_top_k_accuracy():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = np.array([1, 1, 0])
    assert top_k_accuracy(scores, labels, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(scores, labels, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(scores, labels, 5) == 1.0
    assert accuracies(scores, labels) == {"top1": pytest.approx(1 / 3), "top5": 1.0}
    # Classes a classifier never saw score -inf and are never predicted.
    assert top_k_accuracy(np.array([[-np.inf, 0.0, -1.0]]), np.array([0]), 2) == 0.0
    assert count_classes(np.array([0, 2]), np.array([], np.int64), np.array([4])) == 5
