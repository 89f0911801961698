"""Per-channel image normalisation statistics and their validation — no TensorFlow.

The augmentation config, the export and the transfer backbones all normalise with these;
keeping them here (and not in the `augment` package, whose `__init__` imports TensorFlow)
lets the JAX path without TensorFlow import the export and transfer code.
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_mean_std(mean, std):
    """Validates per-channel normalisation statistics, `(x - mean) / std` on RGB.

    Args:
        mean: three numbers, one per RGB channel.
        std: three positive numbers.

    Returns:
        `(mean, std)` as tuples of floats.

    Example:
    >>> check_mean_std([0.5, 0.5, 0.5], (0.25, 0.25, 0.25))
    ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    >>> check_mean_std((0.5, 0.5), IMAGENET_STD)
    Traceback (most recent call last):
    ...
    ValueError: mean needs one value per RGB channel (3), got (0.5, 0.5)
    """
    try:
        mean = tuple(float(v) for v in mean)
        std = tuple(float(v) for v in std)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"mean and std must be 3 numbers each (one per RGB channel), got mean={mean!r}, std={std!r}"
        ) from err
    for name, value in (("mean", mean), ("std", std)):
        if len(value) != 3:
            raise ValueError(f"{name} needs one value per RGB channel (3), got {value}")
    if not min(std) > 0:  # also NaN
        raise ValueError(f"std must be 3 positive stds (images are divided by them), got {std}")
    return mean, std


def check_unit_scale_statistics(mean, std):
    """`check_mean_std`, and refuses statistics on the 0-255 scale: the package normalises
    RGB in [0, 1], whose mean lies in [0, 1] and whose std is at most 0.5 (1 allowed, for an
    identity normalisation).

    Args:
        mean, std: as in `check_mean_std`.

    Returns:
        `(mean, std)` as tuples of floats.

    Example:
    >>> check_unit_scale_statistics((123.7, 116.3, 103.5), (58.4, 57.1, 57.4))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: mean and std are statistics of RGB pixels in [0, 1], ...; divide 0-255 statistics by 255 ...
    """
    mean, std = check_mean_std(mean, std)
    if not (all(0.0 <= m <= 1.0 for m in mean) and max(std) <= 1.0):
        raise ValueError(
            f"mean and std are statistics of RGB pixels in [0, 1], got mean={mean}, std={std}; "
            "divide 0-255 statistics by 255 (ImageNet: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225))"
        )
    return mean, std
