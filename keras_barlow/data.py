"""Input pipelines: image sources → `tf.data` of `(view_a, view_b)` or `(image, label)`.

Sources, all read with TF graph ops (so the pipeline runs on a TPU host and inside
`strategy.distribute_datasets_from_function`):

- `"digits"`: scikit-learn's bundled handwritten digits (1,797 real 8×8 grey images,
  10 classes), fixed stratified split (25 % test, `random_state=0`). Nothing is downloaded.
- a TFDS name (`"cifar10"`, `"stl10"`, `"imagenet2012"`, …) read from `data_dir` (a local
  folder or a `gs://` bucket where it was prepared; nothing is downloaded);
- a directory of image files: class sub-folders or flat. Files that are not images are
  skipped and counted when scanned; files that fail to decode later are skipped too;
- a NumPy array `(n, h, w[, c])`, or a tuple `(images, labels)`;
- a `tf.data.Dataset` of images, `(image, label)` tuples or `{"image", "label"}` dicts.

Same-size images are batched first and augmented a batch at a time; images of varying size
(folders, ImageNet) are cropped per image to the output size, then batched.
"""

import dataclasses
import logging
import os

import numpy as np
import tensorflow as tf

from keras_barlow import augment as aug

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
DIGITS_TEST_FRACTION = 0.25
DEFAULT_SHUFFLE_BUFFER = 10_000
AUTO_CACHE_BYTES = 2 * 1024**3


def load_digits_arrays(split="train"):
    """scikit-learn's digits as arrays, with the package's fixed split.

    Args:
        split: `"train"` (1,347 images), `"test"` (450; stratified 25 %,
            `train_test_split(random_state=0)`) or `"all"` (1,797).

    Returns:
        `(images, labels)`: uint8 `(n, 8, 8, 1)` in [0, 255] (sklearn's 0–16 scaled), int64 `(n,)`.

    Example:
    >>> images, labels = load_digits_arrays("test")
    >>> images.shape
    (450, 8, 8, 1)
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
class ImageFolder:
    """A scanned directory of images (see `scan_image_folder`); also accepted as a source.

    Attributes:
        directory: the scanned directory.
        files, labels: usable image files and their class indices (-1 for a flat folder).
        class_names: sorted sub-folder names (empty for a flat folder).
        skipped: `(path, reason)` for every file left out.
    """

    directory: str
    files: list
    labels: list
    class_names: list
    skipped: list


def _check_file(path, validate):
    if validate == "none":
        return None
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            head = f.read(8) if validate == "header" else f.read()
    except (OSError, tf.errors.OpError) as error:
        return f"unreadable: {error}"
    if not head:
        return "empty file"
    if not head.startswith(_MAGIC):
        return "not a JPEG, PNG, GIF or BMP file"
    if validate == "decode":
        try:
            tf.io.decode_image(head, channels=3, expand_animations=False)
        except tf.errors.OpError as error:
            return f"does not decode: {error.message.splitlines()[0]}"
    return None


def scan_image_folder(directory, *, validate="header"):
    """Lists the images of a directory, with labels from class sub-folders.

    With sub-folders, each first-level sub-folder is a class (images found recursively
    below it); files directly in `directory` are then skipped. Without, all image files of
    `directory` are used, with label -1.

    Args:
        directory: a local path or any `tf.io.gfile` URL (`gs://...`).
        validate: `"header"` (default: reads 8 bytes per file and skips empty files and
            files that are not JPEG/PNG/GIF/BMP), `"decode"` (decodes every file: slow, but
            also catches truncated images), or `"none"`.

    Returns:
        An `ImageFolder`; `len(folder.skipped)` counts the files left out.
    """
    if validate not in ("header", "decode", "none"):
        raise ValueError(f"validate must be 'header', 'decode' or 'none', got {validate!r}")
    directory = os.fspath(directory)
    if not tf.io.gfile.isdir(directory):
        raise ValueError(f"image directory {directory!r} does not exist or is not a directory")

    def images_under(root):
        found = []
        for path, _, names in tf.io.gfile.walk(root):
            found += [os.path.join(path, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
        return sorted(found)

    entries = sorted(tf.io.gfile.listdir(directory))
    subdirs = [e.rstrip("/") for e in entries if tf.io.gfile.isdir(os.path.join(directory, e))]
    classes = [(name, images_under(os.path.join(directory, name))) for name in subdirs]
    classes = [(name, files) for name, files in classes if files]
    loose = sorted(
        os.path.join(directory, e) for e in entries if e.lower().endswith(IMAGE_EXTENSIONS)
        and not tf.io.gfile.isdir(os.path.join(directory, e))
    )
    skipped = []
    if classes:
        candidates = [(f, i) for i, (_, files) in enumerate(classes) for f in files]
        skipped += [(f, "outside the class sub-folders") for f in loose]
        class_names = [name for name, _ in classes]
    else:
        candidates = [(f, -1) for f in loose]
        class_names = []
    files, labels = [], []
    for path, label in candidates:
        reason = _check_file(path, validate)
        if reason is None:
            files.append(path)
            labels.append(label)
        else:
            skipped.append((path, reason))
    if skipped:
        shown = "; ".join(f"{p} ({r})" for p, r in skipped[:5])
        logger.warning("%s: skipped %d of %d files: %s%s", directory, len(skipped), len(candidates) + len(loose) * bool(classes), shown, " …" if len(skipped) > 5 else "")
    if not files:
        raise ValueError(f"no readable images ({', '.join(IMAGE_EXTENSIONS)}) found in {directory!r}")
    return ImageFolder(directory, files, labels, class_names, skipped)


@dataclasses.dataclass
class _Source:
    dataset: tf.data.Dataset  # elements (image or encoded image, int64 label)
    decode: object = None  # element → (h, w, c) image, or None when already decoded
    image_shape: tuple = None  # static (h, w, c) after decoding, None when sizes vary
    num_examples: int = None
    may_fail: bool = False  # decoding files may fail: skip those elements
    cacheable: bool = False  # worth caching decoded (TFDS / folders)
    has_labels: bool = True


def _check_image_spec(shape, dtype, what):
    shape = tf.TensorShape(shape)
    if dtype == tf.string:
        raise ValueError(f"{what}: expected decoded images, got strings; decode them first (tf.io.decode_image)")
    if not (dtype == tf.uint8 or dtype.is_floating):
        raise ValueError(f"{what}: expected uint8 [0, 255] or float [0, 1] images, got dtype {dtype.name}")
    if shape.rank != 3 or shape[-1] not in (1, 3):
        raise ValueError(
            f"{what}: expected images of shape (height, width, 1 or 3), got {shape}; "
            "add a channel axis to grey images, drop alpha with [..., :3]"
        )


def _from_arrays(images, labels=None):
    images = np.asarray(images)
    if images.ndim == 3:  # (n, h, w) grey
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"expected an array of images (n, h, w) or (n, h, w, c), got shape {images.shape}")
    if images.dtype.kind in "USOb":
        raise ValueError(f"array source: expected uint8 [0, 255] or float [0, 1] pixels, got dtype {images.dtype} (strings or objects? decode files first)")
    _check_image_spec(images.shape[1:], tf.as_dtype(images.dtype), "array source")
    if labels is None:
        labels = np.full([len(images)], -1, np.int64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(labels) != len(images):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels")
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    return _Source(dataset, image_shape=images.shape[1:], num_examples=len(images))


def _from_tf_dataset(dataset):
    spec = dataset.element_spec
    if isinstance(spec, dict):
        if "image" not in spec:
            raise ValueError(f"a dataset of dicts needs an 'image' key, got keys {sorted(spec)}")
        has_labels = "label" in spec
        dataset = _map(dataset, lambda e: (e["image"], e["label"] if has_labels else tf.constant(-1, tf.int64)))
    elif isinstance(spec, tuple):
        if len(spec) != 2:
            raise ValueError(f"expected dataset elements image or (image, label), got a tuple of {len(spec)}")
        has_labels = True
    elif isinstance(spec, tf.TensorSpec):
        has_labels = False
        dataset = _map(dataset, lambda image: (image, tf.constant(-1, tf.int64)))
    else:
        raise ValueError(f"expected dataset elements image, (image, label) or a dict, got {spec}")
    image_spec = dataset.element_spec[0]
    if image_spec.shape.rank == 4:  # batched: unbatch, this pipeline batches itself
        dataset = dataset.unbatch()
        image_spec = dataset.element_spec[0]
    if image_spec.shape.rank == 2:
        dataset = _map(dataset, lambda image, label: (image[..., None], label))
        image_spec = dataset.element_spec[0]
    _check_image_spec(image_spec.shape, image_spec.dtype, "dataset source")
    dataset = _map(dataset, lambda image, label: (image, tf.cast(label, tf.int64)))
    shape = tuple(image_spec.shape) if image_spec.shape.is_fully_defined() else None
    cardinality = int(dataset.cardinality())
    return _Source(dataset, image_shape=shape, num_examples=cardinality if cardinality >= 0 else None, has_labels=has_labels)


def _from_folder(folder):
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(folder.files, tf.string), tf.constant(folder.labels, tf.int64))
    )

    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.ensure_shape(image, [None, None, 3])

    return _Source(dataset, decode=decode, num_examples=len(folder.files), may_fail=True, cacheable=True, has_labels=bool(folder.class_names))


def _from_tfds(name, split, data_dir, seed):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"unknown source {name!r}: not 'digits', not an existing directory, and not a TFDS dataset name"
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
    dataset = _map(dataset, 
        lambda e: (e[image_key], tf.cast(e[label_key], tf.int64) if label_key else tf.constant(-1, tf.int64))
    )
    image_feature = features[image_key]
    shape = tuple(image_feature.shape)
    try:
        num_examples = builder.info.splits[split].num_examples
    except (KeyError, ValueError, TypeError):
        num_examples = None
    return _Source(
        dataset,
        decode=image_feature.decode_example,
        image_shape=shape if None not in shape else None,
        num_examples=num_examples,
        cacheable=True,
        has_labels=label_key is not None,
    )


def resolve_source(source, *, split="train", data_dir=None, seed=None):
    """Turns any supported source into an internal `_Source` (see the module docstring)."""
    if isinstance(source, ImageFolder):
        return _from_folder(source)
    if isinstance(source, tf.data.Dataset):
        return _from_tf_dataset(source)
    if isinstance(source, (str, os.PathLike)):
        source = os.fspath(source)
        if source == "digits":
            return _from_arrays(*load_digits_arrays(split))
        looks_like_path = source.startswith(("/", ".", "~")) or "://" in source or os.sep + os.sep in source
        if tf.io.gfile.isdir(source) or looks_like_path:
            return _from_folder(scan_image_folder(os.path.expanduser(source)))
        return _from_tfds(source, split, data_dir, seed)
    if isinstance(source, tuple) and len(source) == 2:
        return _from_arrays(*source)
    if isinstance(source, (np.ndarray, list)) or hasattr(source, "__array__"):
        return _from_arrays(source)
    raise ValueError(
        f"unsupported source {type(source).__name__}: use 'digits', a TFDS name, a directory, "
        "a NumPy array, (images, labels), or a tf.data.Dataset of images"
    )


def _map(dataset, fn):
    """`dataset.map(fn)` in parallel (order kept), traced without AutoGraph: the functions
    here have no data-dependent Python control flow, and conversion made tracing ~10× slower."""
    return dataset.map(tf.autograph.experimental.do_not_convert(fn), num_parallel_calls=AUTOTUNE)


def _derive(seed, *parts):
    if seed is None:
        return None
    value = int(seed)
    for part in parts:
        value = (value * 1_000_003 + int(part) + 1) % (2**62)
    return value


def _seeds(seed):
    """An endless dataset of `[2]` int64 seeds: deterministic given `seed`, and a new
    sequence on every iteration (epoch)."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2, drop_remainder=True)


def default_preset(source):
    """The augmentation preset used when `preset=None`: `"digits"` for the digits source,
    `"cifar"` for TFDS names starting with "cifar", `"imagenet"` otherwise."""
    if isinstance(source, str):
        if source == "digits":
            return "digits"
        if source.lower().startswith("cifar"):
            return "cifar"
    return "imagenet"


def _config(preset, augment, image_size, source=None):
    if preset is None:
        preset = default_preset(source)
    if isinstance(augment, aug.AugmentationConfig):
        config = augment
    elif augment is None or isinstance(augment, dict):
        config = aug.AugmentationConfig.preset(preset, **(augment or {}))
    else:
        raise ValueError(f"augment must be an AugmentationConfig, a dict of overrides or None, got {type(augment).__name__}")
    return config.replace(image_size=image_size) if image_size is not None else config


def _prepare(source, *, split, data_dir, seed, input_context, batch_size, shuffle, shuffle_buffer, cache, min_batch):
    """Shared head of both pipelines: shard, decode (+cache), shuffle. Returns (dataset, source, batch)."""
    src = resolve_source(source, split=split, data_dir=data_dir, seed=seed)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size}")
    batch = int(batch_size)
    pipelines, pipeline = 1, 0
    if input_context is not None:
        batch = input_context.get_per_replica_batch_size(batch)
        pipelines, pipeline = input_context.num_input_pipelines, input_context.input_pipeline_id
    if batch < min_batch:
        raise ValueError(
            f"the per-replica batch is {batch}; Barlow Twins needs at least {min_batch} images per replica "
            "(batch statistics), in practice 32 or more"
        )
    dataset = src.dataset
    if pipelines > 1:
        dataset = dataset.shard(pipelines, pipeline)
    num = None if src.num_examples is None else len(range(pipeline, src.num_examples, pipelines))
    if cache is None:
        cache = bool(
            src.cacheable and src.image_shape is not None and num is not None
            and num * int(np.prod(src.image_shape)) <= AUTO_CACHE_BYTES
        )
    decoded = src.decode is None
    if cache:
        dataset = _decode(dataset, src)
        decoded = True
        dataset = dataset.cache() if cache is True else dataset.cache(os.fspath(cache))
    if shuffle:
        buffer = shuffle_buffer if shuffle_buffer is not None else min(num or DEFAULT_SHUFFLE_BUFFER, DEFAULT_SHUFFLE_BUFFER)
        if buffer > 1:
            dataset = dataset.shuffle(int(buffer), seed=_derive(seed, pipeline, 0), reshuffle_each_iteration=True)
    if not decoded and src.image_shape is not None:  # fixed-size: decode before batching
        dataset = _decode(dataset, src)
        decoded = True
    return dataset, src, batch, decoded, num


def _decode(dataset, src):
    dataset = _map(dataset, lambda image, label: (src.decode(image), label))
    return dataset.ignore_errors(log_warning=True) if src.may_fail else dataset


def pretraining_dataset(
    source,
    *,
    batch_size,
    image_size=None,
    preset=None,
    split="train",
    shuffle_buffer=None,
    seed=None,
    input_context=None,
    cache=None,
    data_dir=None,
    augment=None,
):
    """A `tf.data.Dataset` of `(view_a, view_b)` batches for `BarlowTwins.fit`.

    Args:
        source: `"digits"`, a TFDS name, a directory, an `ImageFolder`, a NumPy array (or
            `(images, labels)`), or a `tf.data.Dataset` of images (see the module docstring).
        batch_size: the global batch size (per replica when `input_context` is None).
        image_size: output size (int or `(h, w)`); default: the preset's.
        preset: augmentation preset, `"imagenet"`, `"cifar"` or `"digits"`; None: `"digits"`
            for the digits, `"cifar"` for TFDS `cifar*`, else `"imagenet"` (`default_preset`).
        split: split of `"digits"` / TFDS sources (e.g. `"train"`, `"unlabelled"`, `"train[:10%]"`).
        shuffle_buffer: default min(examples, 10,000); 0 or 1 disables shuffling.
        seed: int for reproducible batches (shuffle, crops, every coin); None: random.
        input_context: a `tf.distribute.InputContext` (from `distribute_datasets_from_function`):
            per-replica batch and one shard per input pipeline.
        cache: cache decoded images in memory (True), in a file (a path), not (False); None:
            automatically for TFDS/folder sources of fixed-size images under 2 GiB.
        data_dir: TFDS data directory (local or `gs://`).
        augment: an `AugmentationConfig`, or a dict of overrides of `preset`.

    Returns:
        Batches `(view_a, view_b)`, float32 `(batch, h, w, 3)`, normalised; the last partial
        batch is dropped (static shapes for TPUs); prefetched.

    Example:
    >>> ds = pretraining_dataset("digits", batch_size=128, seed=0)  # preset "digits", 32 px
    >>> model.fit(ds, epochs=10)
    """
    config = _config(preset, augment, image_size, source)
    dataset, src, batch, decoded, num = _prepare(
        source, split=split, data_dir=data_dir, seed=seed, input_context=input_context, batch_size=batch_size,
        shuffle=True, shuffle_buffer=shuffle_buffer, cache=cache, min_batch=2,
    )
    if num is not None and num < batch:
        raise ValueError(f"the source has {num} images per input pipeline, fewer than one batch of {batch}")
    pipeline = input_context.input_pipeline_id if input_context is not None else 0
    dataset = _map(dataset, lambda image, label: image)
    if decoded and src.image_shape is not None:
        dataset = dataset.batch(batch, drop_remainder=True)
        dataset = tf.data.Dataset.zip(dataset, _seeds(_derive(seed, pipeline, 1)))
        dataset = _map(dataset, lambda images, s: aug.two_views(images, config, seed=s))
    else:  # images of varying size: two crops per image, then the batched rest
        def crops(image, s):
            if not decoded:
                image = src.decode(image)
            return aug.crop_pair(image, config, seed=s)

        dataset = tf.data.Dataset.zip(dataset, _seeds(_derive(seed, pipeline, 2)))
        dataset = _map(dataset, crops)
        if src.may_fail and not decoded:
            dataset = dataset.ignore_errors(log_warning=True)
        dataset = dataset.batch(batch, drop_remainder=True)
        dataset = tf.data.Dataset.zip(dataset, _seeds(_derive(seed, pipeline, 3)))
        dataset = _map(dataset, 
            lambda views, s: aug.finish_views(views[0], views[1], config, seed=s)
        )
    return dataset.prefetch(AUTOTUNE)


def labeled_dataset(
    source,
    *,
    batch_size,
    image_size=None,
    preset=None,
    split="train",
    shuffle=False,
    shuffle_buffer=None,
    seed=None,
    input_context=None,
    cache=None,
    data_dir=None,
    augment=None,
    train_augment=False,
    drop_remainder=False,
):
    """A `tf.data.Dataset` of `(image, label)` batches for evaluation (linear probe, kNN,
    fine-tuning), normalised exactly like the pretraining views.

    Images are centre-cropped (`eval_crop_fraction` of the shorter side: 0.875 for
    `"imagenet"`, the whole image for the small presets) and resized with the pretraining
    sampler. `train_augment=True` instead takes a random resized crop (view A's scale and
    ratio) and flips with view A's probability — the usual fine-tuning augmentation.

    Args:
        source, batch_size, image_size, preset, split, shuffle_buffer, seed, input_context,
        cache, data_dir, augment: as in `pretraining_dataset`.
        shuffle: shuffle the examples (default False: a fixed order for evaluation).
        train_augment: random crop + flip (see above).
        drop_remainder: drop the last partial batch.

    Returns:
        Batches `(images, labels)`: float32 `(batch, h, w, 3)` and int64 `(batch,)`.

    Example:
    >>> test = labeled_dataset("digits", batch_size=256, split="test")
    """
    config = _config(preset, augment, image_size, source)
    dataset, src, batch, decoded, _ = _prepare(
        source, split=split, data_dir=data_dir, seed=seed, input_context=input_context, batch_size=batch_size,
        shuffle=shuffle, shuffle_buffer=shuffle_buffer, cache=cache, min_batch=1,
    )
    if not src.has_labels:
        raise ValueError(
            "labeled_dataset needs labels: this source has none (a flat folder, a bare array or a dataset "
            "of images); use class sub-folders, (images, labels), or (image, label) elements"
        )
    view = config.view_a
    size = config.image_size
    pipeline = input_context.input_pipeline_id if input_context is not None else 0

    def crop(images, s):  # batched (n, h, w, c) images → float RGB [0, 1] of `size`
        images = aug.to_float_rgb(images)
        if not train_augment:
            return aug.center_crop_resize(images, size, config.eval_crop_fraction)
        shape = tf.shape(images)
        n = shape[0]
        s_crop, s_flip = tf.unstack(tf.random.experimental.stateless_split(s, 2))
        window = aug.sample_crop_boxes(s_crop, tf.fill([n], shape[1]), tf.fill([n], shape[2]), view.crop_scale, view.crop_ratio)
        out = aug.crop_resize(images, *window, size)
        flip = tf.random.stateless_uniform([n], s_flip) < view.flip_prob
        return tf.where(flip[:, None, None, None], tf.reverse(out, axis=[2]), out)

    if decoded and src.image_shape is not None:
        dataset = dataset.batch(batch, drop_remainder=drop_remainder)
        dataset = tf.data.Dataset.zip(dataset, _seeds(_derive(seed, pipeline, 4)))
        dataset = _map(dataset, 
            lambda b, s: (aug.normalize(crop(b[0], s), config), b[1])
        )
    else:
        def one(element, s):
            image, label = element
            if not decoded:
                image = src.decode(image)
            return crop(image[None], s)[0], label

        dataset = tf.data.Dataset.zip(dataset, _seeds(_derive(seed, pipeline, 5)))
        dataset = _map(dataset, one)
        if src.may_fail and not decoded:
            dataset = dataset.ignore_errors(log_warning=True)
        dataset = dataset.batch(batch, drop_remainder=drop_remainder)
        dataset = _map(dataset, lambda images, labels: (aug.normalize(images, config), labels))
    return dataset.prefetch(AUTOTUNE)


def throughput(dataset, *, batches=20, warmup=2):
    """Measures how many examples per second a dataset delivers (e.g. `(view_a, view_b)`
    pairs of `pretraining_dataset`), to check the input pipeline keeps up with training.

    Args:
        dataset: a batched `tf.data.Dataset` (it is repeated as needed).
        batches: batches timed after `warmup` untimed ones (tracing, buffers filling).

    Returns:
        Examples (first-axis rows of the first component) per second.

    Example:
    >>> throughput(pretraining_dataset("digits", batch_size=256, preset="digits"))
    """
    import time

    iterator = iter(dataset.repeat())
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    count = 0
    for _ in range(batches):
        element = next(iterator)
        count += int(tf.shape(tf.nest.flatten(element)[0])[0])
    return count / (time.perf_counter() - start)
