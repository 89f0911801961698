"""The input contract of `BarlowTwins`: one training element is two batches of views.

`unpack_views` is called by the model and by both backend trainers, so it lives below
them; it only reads shapes, so it works on NumPy arrays, TF tensors and JAX arrays alike.
"""

VIEW_KEYS = ("view_a", "view_b")


def unpack_views(data):
    """Checks one training element and returns `(view_a, view_b)`.

    Accepts `(view_a, view_b)` or `{"view_a": ..., "view_b": ...}` (also wrapped in a
    1-tuple, as Keras passes `x` alone); anything else — single images, `(images, labels)`
    pairs, views of different shapes, a batch of 1 — raises a `ValueError` that says what
    was received and what to do.

    Args:
        data: one element of the training dataset.

    Returns:
        `(view_a, view_b)`, two `(batch, height, width, channels)` image batches.

    Example:
    >>> import numpy as np
    >>> view_a, view_b = unpack_views({"view_a": np.zeros((4, 8, 8, 3)), "view_b": np.ones((4, 8, 8, 3))})
    >>> view_b.shape
    (4, 8, 8, 3)
    >>> unpack_views((np.zeros((4, 8, 8, 3)), np.zeros((4,))))
    Traceback (most recent call last):
    ...
    ValueError: expected a dataset of (view_a, view_b) pairs, got (images (4, 8, 8, 3), labels (4,)): \
Barlow Twins is self-supervised. Drop the labels and make two augmented views, e.g. with \
keras_barlow.pretraining_dataset(...).
    """
    if isinstance(data, (tuple, list)) and len(data) == 1:
        data = data[0]
    if isinstance(data, dict):
        missing = [k for k in VIEW_KEYS if k not in data]
        if missing:
            raise ValueError(
                f"expected a dataset of {{'view_a': ..., 'view_b': ...}} dicts, got keys "
                f"{sorted(data)} (missing {missing})"
            )
        views = (data["view_a"], data["view_b"])
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        views = tuple(data)
    else:
        raise ValueError(
            "expected a dataset of (view_a, view_b) pairs of image batches, got "
            f"{_describe(data)}. Build one with keras_barlow.pretraining_dataset(...)."
        )
    view_a, view_b = views
    shape_a, shape_b = tuple(view_a.shape), tuple(view_b.shape)
    if len(shape_b) < 3 and len(shape_a) == 4:
        raise ValueError(
            f"expected a dataset of (view_a, view_b) pairs, got (images {shape_a}, labels "
            f"{shape_b}): Barlow Twins is self-supervised. Drop the labels and make two "
            "augmented views, e.g. with keras_barlow.pretraining_dataset(...)."
        )
    if len(shape_a) != 4 or len(shape_b) != 4:
        raise ValueError(
            f"expected each view to be a batch of images (batch, height, width, channels), "
            f"got shapes {shape_a} and {shape_b}"
        )
    if any(a is not None and b is not None and a != b for a, b in zip(shape_a, shape_b)):
        raise ValueError(
            f"the two views must have the same shape, got {shape_a} and {shape_b}; "
            "crop both views to the same image size"
        )
    if shape_a[0] == 1:
        raise ValueError(
            "a per-replica batch of 1 leaves the batch statistics of Barlow Twins undefined; "
            "use a per-replica batch of at least 2 (in practice ≥ 32)"
        )
    return view_a, view_b


def _describe(data):
    if isinstance(data, dict):
        return f"a dict with keys {sorted(data)}"
    if isinstance(data, (tuple, list)):
        inner = ", ".join(_describe(d) for d in data)
        return f"a {type(data).__name__} of {len(data)} ({inner})"
    shape = getattr(data, "shape", None)
    if shape is not None:
        return f"a single tensor of shape {tuple(shape)}"
    return repr(type(data))


def encoder_of(model_or_encoder):
    """The encoder inside a `BarlowTwins` model, or the argument itself.

    Recognises the model by its `encoder` and `projector` attributes, so that evaluation and
    transfer code need not import `keras_barlow.model` (which would close an import cycle
    through the callbacks).

    Args:
        model_or_encoder: a `BarlowTwins` model, or any encoder.

    Returns:
        `model_or_encoder.encoder` for a `BarlowTwins` model, else `model_or_encoder`.

    Example:
    >>> class Model:
    ...     encoder, projector = "the encoder", "the projector"
    >>> encoder_of(Model())
    'the encoder'
    >>> encoder_of("an encoder")
    'an encoder'
    """
    if hasattr(model_or_encoder, "encoder") and hasattr(model_or_encoder, "projector"):
        return model_or_encoder.encoder
    return model_or_encoder
