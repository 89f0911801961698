"""The input contract of `BarlowTwins`: one training element is two batches of views.

`unpack_views` is called by the model and by both backend trainers, so it lives below
them; it only reads shapes and dtypes, so it works on NumPy arrays, TF tensors and JAX
arrays alike. `check_last_batch` does the same for the arrays given to `fit`/`evaluate`.
"""

VIEW_KEYS = ("view_a", "view_b")
# Said by every error about a batch of one image, here and in the TensorFlow step's run-time check.
BATCH_OF_ONE_ADVICE = (
    "Barlow Twins standardises the embeddings over the batch, which needs at least 2 images per "
    "replica. Batch a tf.data.Dataset with drop_remainder=True, or choose a batch size that "
    "does not leave a last batch of 1 (dataset size % batch_size == 1)"
)


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
    if not (hasattr(view_a, "shape") and hasattr(view_b, "shape")):
        raise ValueError(
            f"expected a dataset of (view_a, view_b) pairs of image batches, got {_describe(views)}. "
            "Barlow Twins is self-supervised: pass fit(x=(view_a, view_b)) without y, or build the "
            "views with keras_barlow.pretraining_dataset(...)."
        )
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
            f"use a per-replica batch of at least 2 (in practice ≥ 32). {BATCH_OF_ONE_ADVICE}."
        )
    for name, view in zip(VIEW_KEYS, views):
        dtype = getattr(view, "dtype", None)
        dtype = str(getattr(dtype, "name", dtype))  # NumPy, JAX and TF dtypes all have a name
        if "int" in dtype or "bool" in dtype:
            raise ValueError(
                f"{name} holds {dtype} values: BarlowTwins trains on float images, augmented and "
                "normalised as in pretraining, not on raw pixels. Build the views with "
                "keras_barlow.pretraining_dataset(...), which takes uint8 images."
            )
    return view_a, view_b


def check_last_batch(x, batch_size, *, validation_split=0.0):
    """Refuses arrays of views whose last batch would hold a single image.

    `fit(x, batch_size=...)` on arrays ends each epoch with a batch of `n % batch_size`
    images; with 1 image the batch statistics are undefined, and the step would fail only
    at the end of the first epoch.

    Args:
        x: what `fit`/`evaluate` received as `x`; checked when it is a `(view_a, view_b)`
            pair or a view dict of arrays, ignored otherwise (datasets, generators).
        batch_size: the `batch_size` given to `fit`/`evaluate` (Keras' default 32 if None).
        validation_split: `fit`'s `validation_split`; both parts are checked.

    Raises:
        ValueError: when a last batch holds one image.

    Example:
    >>> import numpy as np
    >>> views = np.zeros((33, 8, 8, 3)), np.zeros((33, 8, 8, 3))
    >>> check_last_batch(views, 32)
    Traceback (most recent call last):
    ...
    ValueError: 33 pairs of views with batch_size=32 leave a last batch of 1 image (33 % 32 == 1). \
Barlow Twins standardises the embeddings over the batch, which needs at least 2 images per replica. \
Batch a tf.data.Dataset with drop_remainder=True, or choose a batch size that does not leave a last \
batch of 1 (dataset size % batch_size == 1): e.g. drop the last image (x[:32]) or use batch_size=31.
    >>> check_last_batch(views, 16)  # 16 + 16 + 1
    Traceback (most recent call last):
    ...
    ValueError: 33 pairs of views with batch_size=16 leave a last batch of 1 image (33 % 16 == 1). \
Barlow Twins standardises the embeddings over the batch, which needs at least 2 images per replica. \
Batch a tf.data.Dataset with drop_remainder=True, or choose a batch size that does not leave a last \
batch of 1 (dataset size % batch_size == 1): e.g. drop the last image (x[:32]) or use batch_size=15.
    >>> check_last_batch(views, 11)  # 3 × 11: fine
    """
    if isinstance(x, dict):
        arrays = [x[key] for key in VIEW_KEYS if key in x]
    elif isinstance(x, (tuple, list)) and len(x) == 2:
        arrays = list(x)
    else:
        return
    shapes = [getattr(array, "shape", None) for array in arrays]
    if not shapes or any(shape is None or len(shape) == 0 or shape[0] is None for shape in shapes):
        return
    batch_size = 32 if batch_size is None else batch_size
    if not isinstance(batch_size, int) or batch_size < 2:
        return  # Keras or `unpack_views` explain these
    total = int(shapes[0][0])
    split_at = int(total * (1.0 - validation_split)) if validation_split else total
    for count in (split_at, total - split_at):
        if count % batch_size == 1:
            alternative = next(b for b in range(batch_size - 1, 1, -1) if count % b != 1)
            raise ValueError(
                f"{count} pairs of views with batch_size={batch_size} leave a last batch of 1 image "
                f"({count} % {batch_size} == 1). {BATCH_OF_ONE_ADVICE}: e.g. drop the last image "
                f"(x[:{count - 1}]) or use batch_size={alternative}."
            )


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
    transfer code need not import `keras_barlow.models.barlow_twins` (which would close an import cycle
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
