"""Class-balanced subsets and stratified validation splits."""

import numpy as np
import pytest

from keras_barlow.evaluation import balanced_subset, stratified_split


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


def test_stratified_split_keeps_class_proportions():
    rng = np.random.default_rng(1)
    labels = rng.permutation(np.repeat(np.arange(3), [50, 20, 5]))
    train, validation = stratified_split(labels, 0.2, seed=7)
    assert np.bincount(labels[validation]).tolist() == [10, 4, 1]
    assert np.bincount(labels[train]).tolist() == [40, 16, 4]
    assert np.array_equal(np.sort(np.concatenate([train, validation])), np.arange(len(labels)))
    again = stratified_split(labels, 0.2, seed=7)
    assert np.array_equal(again[1], validation)
    assert not np.array_equal(stratified_split(labels, 0.2, seed=8)[1], validation)
    # Two examples of a class: one each side, whatever the fraction.
    assert np.bincount(np.array([0, 0, 1, 1])[stratified_split([0, 0, 1, 1], 0.9)[0]]).tolist() == [1, 1]
    with pytest.raises(ValueError, match="at least 2 per class"):
        stratified_split([0, 0, 1], 0.5)
    with pytest.raises(ValueError, match="validation_fraction"):
        stratified_split(labels, 1.0)
