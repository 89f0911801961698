"""The whole evaluation protocol in one call, as a JSON-able record and a table with spread.

`evaluate_representation` runs, on features computed once: the converged linear probe,
the k-shot probe over seeds (mean ± std) and weighted kNN at k = 20 and 200. Its result
(with the protocol spelled out) goes into model cards and results tables
(`summary_row`, `format_table`).
"""

import keras
import numpy as np

from keras_barlow.evaluation.features import extract_features
from keras_barlow.evaluation.few_shot import SEEDS, SHOTS, few_shot_probe
from keras_barlow.evaluation.knn import KNN_TEMPERATURE, knn_accuracy
from keras_barlow.evaluation.linear import LOGISTIC_CS, LOGISTIC_VALIDATION_FRACTION, linear_probe

REPORT_KNN_KS = (20, 200)


def protocol_text(
    *,
    shots=SHOTS,
    seeds=SEEDS,
    knn_k=REPORT_KNN_KS,
    temperature=KNN_TEMPERATURE,
    Cs=LOGISTIC_CS,
    validation_fraction=LOGISTIC_VALIDATION_FRACTION,
):
    """One paragraph stating the protocol `evaluate_representation` ran with these settings.

    Example:

    >>> text = protocol_text(seeds=range(3))
    >>> "5-shot" in text, "mean ± sample std over 3 seeds (0 … 2)" in text, "k = 20 and 200" in text
    (True, True, True)
    """
    seeds = list(seeds)
    grid = ", ".join(f"{c:g}" for c in sorted(Cs))
    return (
        "Frozen encoder (inference mode), features L2-normalised. Linear: L2-regularised multinomial "
        "logistic regression (scikit-learn, L-BFGS, to convergence), C from "
        f"{{{grid}}} chosen by top-1 on a stratified {validation_fraction:.0%} validation split of the "
        f"training set, then refit on all of it; {shots}-shot: the same probe on {shots} labelled examples "
        "per class, a new class-balanced draw per seed, mean ± sample std over "
        f"{len(seeds)} seeds ({seeds[0]} … {seeds[-1]}); kNN: cosine similarity, the k nearest vote "
        f"exp(similarity / {temperature:g}), k = {' and '.join(str(k) for k in knn_k)}."
    )


def evaluate_representation(
    encoder,
    train_data,
    test_data,
    *,
    shots=SHOTS,
    seeds=SEEDS,
    knn_k=REPORT_KNN_KS,
    temperature=KNN_TEMPERATURE,
    Cs=LOGISTIC_CS,
    batch_size=256,
    preprocess=None,
):
    """Linear probe, k-shot probe over seeds and kNN of one encoder, as a JSON-able dict.

    Args:
        encoder: Keras model/layer, or None for raw pixels (unused for `Features` inputs).
        train_data, test_data: arrays, datasets of `(image, label)`, or `Features`.
        shots: labelled examples per class of the few-shot probe.
        seeds: few-shot seeds (default 0 … 9; at least 10 for a trustworthy spread).
        knn_k: kNN neighbour counts (default 20 and 200).
        temperature: kNN vote temperature.
        Cs: the logistic regression's grid of inverse regularisation strengths.
        batch_size, preprocess: feature extraction.

    Returns:
        `{"linear": linear_probe(...), "few_shot": few_shot_probe(...), "knn": {"k20": {...},
        "k200": {...}}, "num_train", "num_test", "feature_dim", "protocol"}`.

    Example:

    >>> from keras_barlow.evaluation.features import Features
    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat([0, 1, 2], 20)
    >>> points = np.eye(3)[labels] + 0.3 * rng.normal(size=(60, 3))
    >>> train, test = Features(points[::2], labels[::2]), Features(points[1::2], labels[1::2])
    >>> result = evaluate_representation(None, train, test, shots=3, seeds=range(3), knn_k=(5,),
    ...                                  Cs=(0.1, 10.0))
    >>> sorted(result), sorted(result["knn"]), len(result["few_shot"]["top1"]["per_seed"])
    (['feature_dim', 'few_shot', 'knn', 'linear', 'num_test', 'num_train', 'protocol'], ['k5'], 3)
    """
    knn_k = tuple(int(k) for k in knn_k)
    train = extract_features(encoder, train_data, batch_size=batch_size, preprocess=preprocess)
    test = extract_features(encoder, test_data, batch_size=batch_size, preprocess=preprocess)
    knn = knn_accuracy(None, train, test, k=knn_k, temperature=temperature)
    return {
        "linear": linear_probe(None, train, test, Cs=Cs),
        "few_shot": few_shot_probe(None, train, test, shots=shots, seeds=seeds, Cs=Cs),
        "knn": {f"k{k}": knn[f"k{k}"] for k in knn_k},
        "num_train": len(train),
        "num_test": len(test),
        "feature_dim": int(train.features.shape[1]),
        "protocol": protocol_text(shots=shots, seeds=seeds, knn_k=knn_k, temperature=temperature, Cs=Cs),
    }


def random_init_copy(encoder, seed=0):
    """The same architecture as `encoder` (a Keras model), freshly initialised with `seed`:
    the random-init baseline."""
    if not isinstance(encoder, keras.Model):
        raise ValueError(f"a random-init copy needs a keras.Model, got {type(encoder).__name__}")
    keras.utils.set_random_seed(seed)
    return keras.models.clone_model(encoder)


def summary_row(result):
    """The headline numbers of an `evaluate_representation` result, flat (for tables).

    Returns:
        `{"linear_top1", "linear_C", "fewshot_top1_mean", "fewshot_top1_std", "knn<k>_top1"...}`.
    """
    row = {
        "linear_top1": result["linear"]["top1"],
        "linear_C": result["linear"].get("C"),
        "fewshot_top1_mean": result["few_shot"]["top1"]["mean"],
        "fewshot_top1_std": result["few_shot"]["top1"]["std"],
    }
    row.update({f"knn{name[1:]}_top1": scores["top1"] for name, scores in result["knn"].items()})
    return row


def format_table(results):
    """A plain-text table, one row per encoder, few-shot as mean ± std.

    Args:
        results: dict name → `evaluate_representation` result.

    Returns:
        The table as a string.
    """
    first = next(iter(results.values()))
    shots, num_seeds = first["few_shot"]["shots"], len(first["few_shot"]["seeds"])
    knn_names = list(first["knn"])
    header = f"{'encoder':<16}{'linear top-1':>13}{'(C)':>8}{f'{shots}-shot top-1 ({num_seeds} seeds)':>28}"
    header += "".join(f"{f'kNN-{name[1:]}':>10}" for name in knn_names)
    lines = [header, "-" * len(header)]
    for name, result in results.items():
        few = result["few_shot"]["top1"]
        line = f"{name:<16}{result['linear']['top1']:>13.3f}{result['linear'].get('C', np.nan):>8g}"
        spread = f"{few['mean']:.3f} ± {few['std']:.3f}"
        line += f"{spread:>28}"
        line += "".join(f"{result['knn'][k]['top1']:>10.3f}" for k in knn_names)
        lines.append(line)
    return "\n".join(lines)
