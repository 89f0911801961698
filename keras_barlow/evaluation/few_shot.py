"""Label-scarce evaluation over many seeds: k-shot linear probes and fine-tuning runs.

One draw of a few labelled images is noisy: on the digits quick start, one 5-shot seed had
Barlow Twins ahead of raw pixels (0.880 vs 0.864) and the 10-seed mean behind (0.857 vs
0.867). So every label-scarce result here is a mean ± standard deviation over seeds, each
seed drawing its own class-balanced subset (`balanced_subset`).
"""

import numpy as np

from keras_barlow.evaluation.features import extract_features
from keras_barlow.evaluation.finetune import fine_tune
from keras_barlow.evaluation.linear import linear_probe
from keras_barlow.evaluation.subsets import balanced_subset

SEEDS = tuple(range(10))
SHOTS = 5


def summarize(values):
    """Mean, sample standard deviation (ddof 1; 0 for one value) and the values themselves.

    Example:

    >>> summarize([0.8, 0.9, 1.0])
    {'mean': 0.9, 'std': 0.1, 'per_seed': [0.8, 0.9, 1.0]}
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("nothing to summarise: give at least one seed")
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": round(float(np.mean(values)), 10), "std": round(std, 10), "per_seed": values}


def _check_seeds(seeds):
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, at least one, got {seeds}")
    return seeds


def few_shot_probe(
    encoder,
    train_data,
    test_data,
    *,
    shots=SHOTS,
    seeds=SEEDS,
    batch_size=256,
    preprocess=None,
    **probe_options,
):
    """`shots`-per-class linear probe, repeated over `seeds`, as mean ± std.

    Features are computed and L2-normalised once (frozen encoder); each seed draws
    `balanced_subset(train.labels, shots=shots, seed=seed)` and fits `linear_probe` on it
    (default protocol: converged logistic regression, `C` chosen on a stratified split of
    the subset itself, so `shots >= 2` unless a fixed `C=` is given).

    Args:
        encoder: Keras model/layer, or None for raw pixels (unused for `Features` inputs).
        train_data, test_data: arrays, datasets of `(image, label)`, or `Features`.
        shots: labelled examples per class.
        seeds: one subset (and probe seed) per entry (default 0 … 9).
        batch_size, preprocess: feature extraction.
        **probe_options: passed to `linear_probe` (e.g. `protocol`, `C`, `Cs`).

    Returns:
        `{"shots", "seeds", "protocol", "top1": summarize(...), "top5": summarize(...)}` and,
        for the logistic protocol, `"C_per_seed"`.

    Example:

    >>> from keras_barlow.evaluation.features import Features
    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat([0, 1], 30)
    >>> points = np.eye(2)[labels] + 0.2 * rng.normal(size=(60, 2))
    >>> train, test = Features(points[:40], labels[:40]), Features(points[40:], labels[40:])
    >>> result = few_shot_probe(None, train, test, shots=3, seeds=range(4), Cs=(1.0,))
    >>> result["seeds"], len(result["top1"]["per_seed"]), result["top1"]["mean"] > 0.8
    ([0, 1, 2, 3], 4, True)
    """
    seeds = _check_seeds(seeds)
    train = extract_features(encoder, train_data, batch_size=batch_size, preprocess=preprocess)
    test = extract_features(encoder, test_data, batch_size=batch_size, preprocess=preprocess)
    runs = []
    for seed in seeds:
        subset = train.subset(balanced_subset(train.labels, shots=shots, seed=seed))
        runs.append(linear_probe(None, subset, test, seed=seed, normalize=False, **probe_options))
    result = {
        "shots": int(shots),
        "seeds": seeds,
        "protocol": runs[0]["protocol"],
        "top1": summarize(run["top1"] for run in runs),
        "top5": summarize(run["top5"] for run in runs),
    }
    if "C" in runs[0]:
        result["C_per_seed"] = [run["C"] for run in runs]
    return result


def fine_tune_over_seeds(
    encoder, labeled_data, fraction=None, *, shots=None, test_data=None, seeds=SEEDS, **fine_tune_options
):
    """`fine_tune` once per seed (each with its own balanced subset), as mean ± std.

    Args:
        encoder: Keras model (backbone or `BarlowTwins`), copied for every run.
        labeled_data: `(images, labels)` arrays or a dataset of `(image, label)`.
        fraction, shots: labelled share or examples per class (default: 1 %).
        test_data: arrays or dataset to report accuracy on (required).
        seeds: one run per entry (default 0 … 9).
        **fine_tune_options: passed to `fine_tune` (epochs, learning rates, augment, ...).

    Returns:
        `{"fraction", "shots", "seeds", "num_labeled", "top1": summarize(...),
        "top5": summarize(...)}`.

    Example:

    ```python
    fine_tune_over_seeds(encoder, (x_train, y_train), 0.1, test_data=(x_test, y_test))["top1"]["mean"]
    ```
    """
    if test_data is None:
        raise ValueError("fine_tune_over_seeds reports test accuracy: give test_data=")
    if fine_tune_options.get("copy_encoder") is False or fine_tune_options.get("return_model"):
        raise ValueError(
            "every seed fine-tunes a fresh copy: copy_encoder=False / return_model are not supported"
        )
    seeds = _check_seeds(seeds)
    runs = [
        fine_tune(
            encoder, labeled_data, fraction, shots=shots, test_data=test_data, seed=seed, **fine_tune_options
        )
        for seed in seeds
    ]
    return {
        "fraction": fraction if fraction is not None or shots is not None else 0.01,
        "shots": shots,
        "seeds": seeds,
        "num_labeled": runs[0]["num_labeled"],
        "top1": summarize(run["top1"] for run in runs),
        "top5": summarize(run["top5"] for run in runs),
    }
