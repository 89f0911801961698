"""Linear evaluation of frozen features: a converged logistic regression, or the paper's SGD.

`protocol="logistic"` (default) is the transfer protocol of SimCLR / BYOL: an
L2-regularised multinomial logistic regression (scikit-learn `LogisticRegression`,
L-BFGS) trained to convergence on cached, L2-normalised features, its inverse
regularisation strength `C` chosen by top-1 accuracy on a stratified validation split of
the training set, then refit on all training data. `protocol="sgd"` is the Barlow Twins
paper's ImageNet protocol (`train_linear_classifier`): meant for ImageNet-scale features.
On small data SGD stops short of the optimum: on scikit-learn's digits, the 100-epoch SGD
probe reported 0.598 top-1 for a randomly initialised ResNet-18 where the converged
probe reaches 0.827.
"""

import warnings

import numpy as np

from keras_barlow.evaluation import linear_sgd
from keras_barlow.evaluation.augmentation import augmented_features
from keras_barlow.evaluation.features import extract_features
from keras_barlow.evaluation.metrics import accuracies, count_classes
from keras_barlow.evaluation.subsets import stratified_split

PROTOCOLS = ("logistic", "sgd")
LOGISTIC_CS = tuple(float(c) for c in np.logspace(-2, 4, 7))  # 0.01, 0.1, ..., 10000
LOGISTIC_VALIDATION_FRACTION = 0.2
LOGISTIC_MAX_ITER = 10000
LOGISTIC_TOL = 1e-4


def _logistic_regression(C, max_iter, tol):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, tol=tol)


def _fit(train, C, max_iter, tol):
    """A fitted `LogisticRegression` and whether L-BFGS converged within `max_iter`."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator = _logistic_regression(C, max_iter, tol).fit(train.features, train.labels)
    return estimator, bool(np.all(estimator.n_iter_ < max_iter))


def class_scores(estimator, features, num_classes):
    """Log-probabilities `(n, num_classes)` of a scikit-learn classifier; classes it never
    saw get -inf (so they are never predicted)."""
    scores = np.full((len(features), num_classes), -np.inf)
    scores[:, estimator.classes_] = estimator.predict_log_proba(features)
    return scores


def train_logistic_regression(
    train,
    *,
    C=None,
    Cs=LOGISTIC_CS,
    validation_fraction=LOGISTIC_VALIDATION_FRACTION,
    max_iter=LOGISTIC_MAX_ITER,
    tol=LOGISTIC_TOL,
    seed=0,
):
    """An L2-regularised multinomial logistic regression fitted to convergence on `Features`.

    With `C=None`, each `C` of `Cs` is fitted on a stratified split of `train`
    (`stratified_split(labels, validation_fraction, seed=seed)`) and scored by top-1
    accuracy on the held-out part; the best (ties: the smallest, most regularised `C`) is
    refit on all of `train`.

    Args:
        train: `Features` (L2-normalised for the standard protocol).
        C: a fixed inverse regularisation strength (no validation), or None to choose.
        Cs: the grid to choose from (default 10^-2 … 10^4, one per decade).
        validation_fraction: share of each class held out for choosing `C`.
        max_iter, tol: L-BFGS limits (scikit-learn's meaning).
        seed: validation split seed.

    Returns:
        `(estimator, info)`: the fitted scikit-learn `LogisticRegression`, and a JSON-able
        dict with `"C"`, `"validation"` (`{"C": [...], "top1": [...], "num_examples"}`, or
        None for a fixed `C`), `"converged"` (every fit within `max_iter`) and `"iterations"`.

    Example:

    >>> from keras_barlow.evaluation.features import Features
    >>> train = Features([[1.0, 0.1], [0.9, 0.0], [1.0, -0.1], [0.0, 1.0], [0.1, 0.9], [-0.1, 1.0]],
    ...                  [0, 0, 0, 1, 1, 1])
    >>> estimator, info = train_logistic_regression(train, Cs=(0.01, 1.0), validation_fraction=0.34)
    >>> info["C"], info["validation"]["top1"], estimator.predict([[0.8, 0.3]]).tolist()
    (0.01, [1.0, 1.0], [0])
    """
    converged = True
    validation = None
    if C is None:
        grid = sorted(float(c) for c in Cs)
        if not grid or grid[0] <= 0:
            raise ValueError(f"Cs must be positive inverse regularisation strengths, got {Cs}")
        fit_indices, held_out = stratified_split(train.labels, validation_fraction, seed=seed)
        fit_part, held_out_part = train.subset(fit_indices), train.subset(held_out)
        scores = []
        for value in grid:
            estimator, ok = _fit(fit_part, value, max_iter, tol)
            converged &= ok
            scores.append(float(np.mean(estimator.predict(held_out_part.features) == held_out_part.labels)))
        C = grid[int(np.argmax(scores))]  # argmax: the first best, i.e. the smallest C
        validation = {"C": grid, "top1": scores, "num_examples": len(held_out)}
    elif C <= 0:
        raise ValueError(f"C must be > 0 (inverse regularisation strength), got {C}")
    estimator, ok = _fit(train, float(C), max_iter, tol)
    converged &= ok
    if not converged:
        warnings.warn(
            f"L-BFGS did not converge within max_iter={max_iter} for some C; raise max_iter", stacklevel=2
        )
    info = {
        "C": float(C),
        "validation": validation,
        "converged": converged,
        "iterations": int(estimator.n_iter_.max()),
    }
    return estimator, info


def _check_protocol_options(protocol, sgd_options, logistic_options):
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    given, other = (sgd_options, "sgd") if protocol == "logistic" else (logistic_options, "logistic")
    stray = sorted(name for name, value in given.items() if value is not None)
    if stray:
        raise ValueError(f"{', '.join(stray)} only apply to protocol={other!r}; got protocol={protocol!r}")


def linear_probe(
    encoder,
    train_data,
    test_data,
    *,
    protocol="logistic",
    C=None,
    Cs=None,
    validation_fraction=None,
    epochs=None,
    batch_size=linear_sgd.LINEAR_BATCH_SIZE,
    learning_rate=None,
    weight_decay=None,
    normalize=True,
    augmentations=0,
    augment=None,
    preprocess=None,
    seed=0,
    return_classifier=False,
    verbose=0,
):
    """Linear evaluation: a classifier on frozen features.

    The encoder is frozen and runs in inference mode; features are computed once and
    cached. `protocol="logistic"` (default) fits a converged, L2-regularised multinomial
    logistic regression with `C` chosen on a validation split and refit on all training
    data (`train_logistic_regression`, the SimCLR/BYOL transfer protocol).
    `protocol="sgd"` is the paper's: SGD, momentum 0.9, cosine decay, weight decay 1e-6,
    100 epochs, batch 256 (`train_linear_classifier`, the official `evaluate.py`), for
    ImageNet-scale features. The official code also augments the training images with a
    random resized crop and a flip every epoch; here `augmentations=n` computes features
    of `n` augmented copies of the training set once (`augment`, default
    `crop_flip_augmentation()`) and fits on them (either protocol). The default (0) uses
    the clean images, the usual choice for small data.

    Args:
        encoder: Keras model/layer, or None for raw pixels (unused for `Features` inputs).
        train_data, test_data: arrays, datasets of `(image, label)`, or `Features`.
        protocol: `"logistic"` or `"sgd"`.
        C, Cs, validation_fraction: logistic only: a fixed `C`, or the grid to choose
            from (default 10^-2 … 10^4) on a held-out share of each class (default 0.2).
        epochs, learning_rate, weight_decay: sgd only (defaults 100, 3.0 for L2-normalised
            features or the official 0.3 for raw ones, 1e-6).
        batch_size: images per forward pass, and the SGD batch (capped at the set size).
        normalize: L2-normalise the features.
        augmentations: number of augmented copies of the training set (needs images).
        augment: `(images, seed) -> images` for those copies.
        preprocess: optional callable applied to image batches before the encoder.
        seed: validation split (logistic); initialisation and shuffling (sgd); augmentation.
        return_classifier: also return the classifier (a scikit-learn `LogisticRegression`
            or a `keras.Sequential` giving logits).
        verbose: `fit` verbosity (sgd).

    Returns:
        `{"top1", "top5", "protocol", ...}` on `test_data`: for logistic also `"C"`,
        `"validation"`, `"converged"`, `"iterations"`; for sgd `"epochs"`, `"learning_rate"`,
        `"weight_decay"`. And the classifier when asked.

    Example:

    >>> from keras_barlow.evaluation.features import Features
    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat([0, 1, 2], 20)
    >>> points = np.eye(3)[labels] + 0.3 * rng.normal(size=(60, 3))
    >>> result = linear_probe(None, Features(points[::2], labels[::2]), Features(points[1::2], labels[1::2]))
    >>> result["protocol"], result["top1"] > 0.9, result["C"] in result["validation"]["C"]
    ('logistic', True, True)
    """
    _check_protocol_options(
        protocol,
        {"epochs": epochs, "learning_rate": learning_rate, "weight_decay": weight_decay},
        {"C": C, "Cs": Cs, "validation_fraction": validation_fraction},
    )
    features = {"batch_size": batch_size, "normalize": normalize, "preprocess": preprocess}
    if augmentations:
        train = augmented_features(encoder, train_data, augmentations, augment=augment, seed=seed, **features)
    else:
        train = extract_features(encoder, train_data, **features)
    test = extract_features(encoder, test_data, **features)
    if train.features.shape[1] != test.features.shape[1]:
        raise ValueError(
            f"train and test features differ in size: {train.features.shape} vs {test.features.shape}"
        )
    num_classes = count_classes(train.labels, test.labels)
    if protocol == "logistic":
        classifier, info = train_logistic_regression(
            train,
            C=C,
            Cs=LOGISTIC_CS if Cs is None else Cs,
            seed=seed,
            validation_fraction=validation_fraction or LOGISTIC_VALIDATION_FRACTION,
        )
        scores = class_scores(classifier, test.features, num_classes)
    else:
        if learning_rate is None:
            learning_rate = (
                linear_sgd.LINEAR_LEARNING_RATE_NORMALIZED if normalize else linear_sgd.LINEAR_LEARNING_RATE
            )
        info = {
            "epochs": linear_sgd.LINEAR_EPOCHS if epochs is None else int(epochs),
            "learning_rate": float(learning_rate),
            "weight_decay": linear_sgd.LINEAR_WEIGHT_DECAY if weight_decay is None else float(weight_decay),
        }
        classifier = linear_sgd.train_linear_classifier(
            train, num_classes, batch_size=batch_size, seed=seed, verbose=verbose, **info
        )
        scores = classifier.predict(test.features, batch_size=4096, verbose=0)
    result = {**accuracies(scores, test.labels), "protocol": protocol, **info}
    return (result, classifier) if return_classifier else result
