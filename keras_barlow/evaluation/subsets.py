"""Deterministic labelled subsets (NumPy): class-balanced draws and stratified splits."""

import numpy as np

from keras_barlow.evaluation.features import as_int_labels


def balanced_subset(labels, fraction=None, *, shots=None, seed=0):
    """Deterministic class-balanced subset: the same indices for the same labels and seed.

    Each class contributes `max(1, round(fraction · n_class))` examples (the semi-supervised
    1 % / 10 % protocols), or exactly `shots` (few-shot), drawn without replacement by a
    `numpy.random.default_rng(seed)` permutation within the class.

    Args:
        labels: int labels `(n,)`.
        fraction: fraction of each class in (0, 1]; or
        shots: examples per class (mutually exclusive with `fraction`).
        seed: int seed.

    Returns:
        Sorted int64 indices into `labels`.

    Example:

    >>> labels = np.repeat([0, 1, 2], 10)
    >>> np.bincount(labels[balanced_subset(labels, shots=2, seed=0)]).tolist()
    [2, 2, 2]
    >>> len(balanced_subset(labels, 0.3, seed=1))
    9
    """
    labels = as_int_labels(labels)
    if (fraction is None) == (shots is None):
        raise ValueError("give exactly one of fraction= (e.g. 0.01) or shots= (examples per class)")
    if fraction is not None and not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if shots is not None and (int(shots) != shots or shots < 1):
        raise ValueError(f"shots must be a positive integer, got {shots}")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = int(shots) if shots is not None else max(1, int(np.round(fraction * len(members))))
        if count > len(members):
            raise ValueError(f"class {label} has {len(members)} examples, fewer than the {count} requested")
        chosen.append(members[rng.permutation(len(members))[:count]])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def stratified_split(labels, validation_fraction=0.2, *, seed=0):
    """A held-out validation split with every class in both parts, in proportion.

    Each class puts `max(1, round(validation_fraction · n_class))` examples (at most
    `n_class - 1`) into validation, drawn by a `numpy.random.default_rng(seed)`
    permutation within the class; the rest stay for training.

    Args:
        labels: int labels `(n,)`; every class needs at least 2 examples.
        validation_fraction: share of each class held out, in (0, 1).
        seed: int seed.

    Returns:
        `(train_indices, validation_indices)`, sorted int64, disjoint, covering `labels`.

    Example:

    >>> labels = np.repeat([0, 1], [5, 10])
    >>> train, validation = stratified_split(labels, 0.2, seed=0)
    >>> np.bincount(labels[validation]).tolist(), len(train)
    ([1, 2], 12)
    """
    labels = as_int_labels(labels)
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) and counts.min() < 2:
        raise ValueError(
            f"class {classes[counts.argmin()]} has {counts.min()} example(s): a validation split needs at "
            "least 2 per class; give a fixed regularisation strength instead (e.g. C=1.0)"
        )
    rng = np.random.default_rng(seed)
    held_out = []
    for label, count in zip(classes, counts):
        members = np.flatnonzero(labels == label)
        size = min(count - 1, max(1, int(np.round(validation_fraction * count))))
        held_out.append(members[rng.permutation(count)[:size]])
    validation = np.sort(np.concatenate(held_out)).astype(np.int64) if held_out else np.zeros(0, np.int64)
    train = np.setdiff1d(np.arange(len(labels)), validation).astype(np.int64)
    return train, validation
