"""Input pipelines: any source (see `keras_barlow.data.sources`) → `tf.data` of
`(view_a, view_b)` for pretraining or `(image, label)` for evaluation.

Same-size images are batched first and augmented a batch at a time; images of varying size
(folders, ImageNet) get both views finished one image at a time (`augment.image_views`: crop
from the decoded uint8 image, colour, blur, normalisation), then batched. Every random
draw comes from a seed stream derived from `seed` and the input pipeline, so a seeded
pipeline is reproducible, and each input pipeline of a distributed run draws its own.
With `epoch=` (or `pretraining_epochs`) the draws are a function of (seed, epoch, step).

Slightly over 400 lines: both pipelines share one head (shard, decode, cache, shuffle), and
splitting the head from its two users would scatter one role over modules.
"""

import dataclasses
import os
import time

import numpy as np
import tensorflow as tf

from keras_barlow import augment as aug
from keras_barlow.augment.config import default_preset
from keras_barlow.augment.seeds import INT32_MAX, derive_seed, epoch_seed, seed_stream, step_seeds
from keras_barlow.data.folders import skip_undecodable, skip_undecodable_batches
from keras_barlow.data.sources import AUTOTUNE, Source, parallel_map, resolve_source

DEFAULT_SHUFFLE_BUFFER = 10_000
AUTO_CACHE_BYTES = 2 * 1024**3

# Seed streams of one input pipeline (`derive_seed(seed, pipeline, stream)`): one per use,
# fixed so that a seeded pipeline gives the same batches in every release. (2 and 3 drew the
# crops per image and the rest per batch for images of varying size, before `image_views`.)
_SHUFFLE, _VIEWS_BATCHED, _LABELED_BATCHED, _LABELED_PER_IMAGE, _VIEWS_PER_IMAGE = 0, 1, 4, 5, 6


@dataclasses.dataclass
class _Head:
    """The shared head of both pipelines: shard, decode (+cache), then per pass: shuffle."""

    config: aug.AugmentationConfig
    dataset: tf.data.Dataset  # elements (image, label), not shuffled; images decoded iff `decoded`
    source: Source
    batch: int  # per-replica batch size
    decoded: bool
    num_examples: int  # of this input pipeline, None when unknown
    pipeline: int  # input pipeline id
    seed: int
    shuffle_buffer: int  # 0: no shuffle
    min_images: int = 1  # fewest images a pass must keep (undecodable files are dropped)

    @property
    def fixed_size(self):  # `elements` decodes these before batching
        return self.source.image_shape is not None

    @property
    def decodes_files(self):  # `_map_images` decodes files that may fail: `_batch` skips and counts them
        return self.source.may_fail and not self.decoded

    def seeds(self, stream, epoch=None):
        seed = derive_seed(self.seed, self.pipeline, stream)
        return seed_stream(seed) if epoch is None else step_seeds(seed, epoch)

    def elements(self, epoch=None):
        """The shuffled (image, label) elements of one pass. `epoch=None`: a new order on every
        iteration; else the order is a function of (seed, epoch) only."""
        if epoch is None:
            dataset = self.dataset
            if self.shuffle_buffer > 1:
                shuffle_seed = derive_seed(self.seed, self.pipeline, _SHUFFLE)
                dataset = dataset.shuffle(
                    self.shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=True
                )
            return self._decode_fixed_size(dataset)
        # Traced (also for an int epoch), so that an int and a tensor epoch give one order.
        return tf.data.Dataset.from_tensors(tf.cast(epoch, tf.int64)).flat_map(self._elements_of_epoch)

    def _elements_of_epoch(self, epoch):
        dataset = self.dataset
        if self.shuffle_buffer > 1:
            seed = tf.math.floormod(
                epoch_seed(derive_seed(self.seed, self.pipeline, _SHUFFLE), epoch)[0], INT32_MAX
            )
            # Dataset.shuffle mixes the graph-level seed into its seed (and, when that is 0, fails
            # on a tensor seed): without it the order is a function of (seed, epoch) alone.
            graph = tf.compat.v1.get_default_graph()
            graph_seed, graph.seed = graph.seed, None
            try:
                dataset = dataset.shuffle(self.shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
            finally:
                graph.seed = graph_seed
        return self._decode_fixed_size(dataset)

    def _decode_fixed_size(self, dataset):
        if not self.decoded and self.source.image_shape is not None:  # fixed-size: decode before batching
            return _decode(dataset, self.source, self.num_examples, self.min_images, self.batch)
        return dataset


def _augmentation_config(augment, source):
    if augment is None:
        return aug.AugmentationConfig.preset(default_preset(source))
    if isinstance(augment, str):
        return aug.AugmentationConfig.preset(augment)
    if isinstance(augment, aug.AugmentationConfig):
        return augment
    raise ValueError(
        f"augment must be a preset name ({', '.join(map(repr, sorted(aug.PRESETS)))}), an "
        f"AugmentationConfig or None (the source's default preset), got {type(augment).__name__}; "
        'to change the output size or another setting: AugmentationConfig.preset("imagenet", image_size=96)'
    )


def _decode(dataset, src, expected, min_images, batch):
    """Decodes the images of one pass; files that fail to decode are skipped, counted at the
    end of the pass (`skip_undecodable`)."""
    dataset = parallel_map(dataset, lambda image, label: (src.decode(image), label))
    if not src.may_fail:
        return dataset
    return skip_undecodable(
        dataset, expected=expected, at_least=min_images, batch=batch, scan_skipped=src.skipped
    )


def _pipeline_head(
    source, *, batch_size, augment, split, shuffle_buffer, seed, input_context, cache, data_dir, shuffle,
    min_batch, full_batches,
):  # fmt: skip
    """Resolves the augmentation config and the source, then shards and decodes (+caches);
    `_Head.elements` shuffles. `full_batches`: a pass keeping fewer images than one batch
    (files that fail to decode) is an error."""
    config = _augmentation_config(augment, source)
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
            src.cacheable
            and src.image_shape is not None
            and num is not None
            and num * int(np.prod(src.image_shape)) <= AUTO_CACHE_BYTES
        )
    decoded = src.decode is None
    min_images = batch if full_batches else 1
    if cache:
        if not decoded:
            dataset = _decode(dataset, src, num, min_images, batch)
            decoded = True
        dataset = dataset.cache() if cache is True else dataset.cache(os.fspath(cache))
    buffer = 0
    if shuffle:
        buffer = shuffle_buffer
        if buffer is None:
            buffer = min(num or DEFAULT_SHUFFLE_BUFFER, DEFAULT_SHUFFLE_BUFFER)
    return _Head(config, dataset, src, batch, decoded, num, pipeline, seed, int(buffer), min_images)


def _batch(head, dataset, drop_remainder, *, may_fail=False):
    """`dataset.batch(head.batch)`; `may_fail`: skipping the elements whose file fails to
    decode, counted per pass (`skip_undecodable_batches`)."""
    if not may_fail:
        return dataset.batch(head.batch, drop_remainder=drop_remainder)
    return skip_undecodable_batches(
        dataset, batch_size=head.batch, drop_remainder=drop_remainder, expected=head.num_examples,
        at_least=head.min_images, scan_skipped=head.source.skipped,
    )  # fmt: skip


def _map_batches(head, dataset, fn, stream, *, drop_remainder, epoch=None, may_fail=False):
    """Batches `dataset` (see `_batch`), then `fn(batch, seed)` with a fresh seed per batch."""
    dataset = _batch(head, dataset, drop_remainder, may_fail=may_fail)
    return parallel_map(tf.data.Dataset.zip(dataset, head.seeds(stream, epoch)), fn)


def _map_images(head, fn, stream, epoch=None):
    """`fn(image, label, seed)` on each decoded element of one pass, a fresh seed each.
    With `head.decodes_files`, the elements of files that fail to decode raise an error:
    batch them with `_batch(..., may_fail=True)`, which skips and counts them."""

    def one(element, seed):
        image, label = element
        if not head.decoded:
            image = head.source.decode(image)
        return fn(image, label, seed)

    return parallel_map(tf.data.Dataset.zip(head.elements(epoch), head.seeds(stream, epoch)), one)


def pretraining_dataset(
    source, *, batch_size, augment=None, split="train", shuffle_buffer=None, seed=None, input_context=None,
    cache=None, data_dir=None, epoch=None,
):  # fmt: skip
    """A `tf.data.Dataset` of `(view_a, view_b)` batches for `BarlowTwins.fit`.

    Args:
        source: `"digits"`, a TFDS name, a directory, an `ImageFolder`, a NumPy array (or
            `(images, labels)`), or a `tf.data.Dataset` of images (see
            `keras_barlow.data.sources`).
        batch_size: the global batch size (per replica when `input_context` is None).
        augment: the views: a preset name (`"imagenet"`, `"cifar"`, `"digits"`, `"mnist5k"`)
            or an `AugmentationConfig` (e.g. `AugmentationConfig.preset("imagenet",
            image_size=96)` for another output size or any other setting). None: the
            source's default preset (`default_preset`: `"digits"` / `"mnist5k"` for those
            data, `"cifar"` for TFDS `cifar*`, else `"imagenet"`).
        split: split of `"digits"` / TFDS sources (e.g. `"train"`, `"unlabelled"`, `"train[:10%]"`).
        shuffle_buffer: default min(examples, 10,000); 0 or 1 disables shuffling.
        seed: int for reproducible batches (shuffle, crops, every coin); None: random.
        input_context: a `tf.distribute.InputContext` (from `distribute_datasets_from_function`):
            per-replica batch and one shard per input pipeline.
        cache: cache decoded images in memory (True), in a file (a path), not (False); None:
            automatically for TFDS/folder sources of fixed-size images under 2 GiB.
        data_dir: TFDS data directory (local or `gs://`).
        epoch: None: one pass per iteration, reshuffled with new draws on every iteration.
            An int or integer scalar tensor: one pass whose shuffle order is a function of
            (seed, epoch) and whose batch `k` is augmented from (seed, epoch, k) — the same
            on every iteration and in every process (needs an int `seed`). For many epochs,
            `pretraining_epochs` builds (and caches) the source once.

    Returns:
        Batches `(view_a, view_b)`, float32 `(batch, h, w, 3)`, normalised; the last partial
        batch is dropped (static shapes for TPUs); prefetched.

    Example:
    ```python
    ds = pretraining_dataset("digits", batch_size=128, seed=0)  # preset "digits"
    views = AugmentationConfig.preset("digits", image_size=32)
    ds = pretraining_dataset("digits", batch_size=128, augment=views, seed=0)  # 32 px
    model.fit(ds, epochs=10)
    ```
    """
    epochs = pretraining_epochs(
        source, batch_size=batch_size, augment=augment, split=split, shuffle_buffer=shuffle_buffer,
        seed=seed, input_context=input_context, cache=cache, data_dir=data_dir,
    )  # fmt: skip
    return epochs(epoch).prefetch(AUTOTUNE)


def _check_epoch(epoch, seed):
    is_int = isinstance(epoch, int) and not isinstance(epoch, bool)
    if (is_int and epoch < 0) or not (is_int or tf.as_dtype(getattr(epoch, "dtype", tf.string)).is_integer):
        raise ValueError(f"epoch must be a non-negative int or an integer scalar tensor, got {epoch!r}")
    if seed is None:
        raise ValueError(
            "epoch= makes the batches a function of (seed, epoch, step), which needs an int seed "
            "(got seed=None): pass seed=..."
        )


class PretrainingEpochs:
    """`epoch -> tf.data.Dataset` of one pass of `(view_a, view_b)` batches, over a source
    built (decoded, cached) once: the function `resumable_dataset` needs.

    Made by `pretraining_epochs`. Calling it with an epoch (int or integer scalar tensor)
    gives that pass, shuffled from (seed, epoch) and augmented from (seed, epoch, batch);
    with None, today's reshuffling pass (see `pretraining_dataset`).

    Attributes:
        steps_per_epoch: full batches in one pass (None when the source's size is unknown).
        config: the `AugmentationConfig`.
    """

    def __init__(self, head):
        self._head = head
        num = head.num_examples
        self.steps_per_epoch = None if num is None else num // head.batch
        self.config = head.config

    def __call__(self, epoch=None):
        head, config = self._head, self.config
        if epoch is not None:
            _check_epoch(epoch, head.seed)
        if head.fixed_size:
            images = parallel_map(head.elements(epoch), lambda image, label: image)
            return _map_batches(
                head,
                images,
                lambda images, s: aug.two_views(images, config, seed=s),
                _VIEWS_BATCHED,
                drop_remainder=True,
                epoch=epoch,
            )
        # Images of varying size: both views finished per image (`image_views`), then batched.
        views = _map_images(
            head, lambda image, label, s: aug.image_views(image, config, seed=s), _VIEWS_PER_IMAGE, epoch
        )
        return _batch(head, views, drop_remainder=True, may_fail=head.decodes_files)


def pretraining_epochs(
    source, *, batch_size, augment=None, split="train", shuffle_buffer=None, seed=None, input_context=None,
    cache=None, data_dir=None,
):  # fmt: skip
    """The pretraining input as a function of the epoch, for exact resumes.

    Args: as in `pretraining_dataset` (without `epoch`).

    Returns:
        A `PretrainingEpochs`: `epoch -> tf.data.Dataset` of one pass (not prefetched), with
        `steps_per_epoch`. The source is resolved, decoded and cached once, here.

    Example:
    ```python
    epochs = pretraining_epochs("digits", batch_size=128, seed=0)
    data = resumable_dataset(epochs, epochs=10, steps_per_epoch=epochs.steps_per_epoch,
                             start_step=backup.resume_step())
    ```
    """
    head = _pipeline_head(
        source, batch_size=batch_size, augment=augment, split=split, shuffle_buffer=shuffle_buffer,
        seed=seed, input_context=input_context, cache=cache, data_dir=data_dir, shuffle=True, min_batch=2,
        full_batches=True,
    )  # fmt: skip
    if head.num_examples is not None and head.num_examples < head.batch:
        raise ValueError(
            f"the source has {head.num_examples} images per input pipeline, "
            f"fewer than one batch of {head.batch}"
        )
    return PretrainingEpochs(head)


def labeled_dataset(
    source, *, batch_size, augment=None, split="train", shuffle=False, shuffle_buffer=None, seed=None,
    input_context=None, cache=None, data_dir=None, train_augment=False, drop_remainder=False,
):  # fmt: skip
    """A `tf.data.Dataset` of `(image, label)` batches for evaluation (linear probe, kNN,
    fine-tuning), normalised exactly like the pretraining views.

    Images are centre-cropped (`eval_crop_fraction` of the shorter side: 0.875 for
    `"imagenet"`, the whole image for the small presets) and resized with the pretraining
    sampler. `train_augment=True` instead takes a random resized crop (view A's scale and
    ratio) and flips with view A's probability — the usual fine-tuning augmentation
    (`keras_barlow.augment.random_crop_flip`).

    Args:
        source, batch_size, augment, split, shuffle_buffer, seed, input_context, cache,
            data_dir: as in `pretraining_dataset` (`augment` gives the output size, the
            normalisation and, with `train_augment`, view A's crop and flip).
        shuffle: shuffle the examples (default False: a fixed order for evaluation).
        train_augment: random crop + flip (see above).
        drop_remainder: drop the last partial batch.

    Returns:
        Batches `(images, labels)`: float32 `(batch, h, w, 3)` and int64 `(batch,)`.

    Example:
    ```python
    test = labeled_dataset("digits", batch_size=256, split="test")
    ```
    """
    head = _pipeline_head(
        source, batch_size=batch_size, augment=augment, split=split, shuffle_buffer=shuffle_buffer,
        seed=seed, input_context=input_context, cache=cache, data_dir=data_dir, shuffle=shuffle, min_batch=1,
        full_batches=drop_remainder,
    )  # fmt: skip
    if not head.source.has_labels:
        raise ValueError(
            "labeled_dataset needs labels: this source has none (a flat folder, a list of files, a bare "
            "array or a dataset of images); use class sub-folders, (images, labels), or (image, label) "
            "elements"
        )
    config = head.config
    view = config.view_a

    def crop(images, s):  # batched (n, h, w, c) images → float RGB [0, 1] of the output size
        images = aug.to_float_rgb(images)
        if not train_augment:
            return aug.center_crop_resize(images, config.image_size, config.eval_crop_fraction)
        return aug.random_crop_flip(
            images,
            s,
            size=config.image_size,
            scale=view.crop_scale,
            ratio=view.crop_ratio,
            flip_prob=view.flip_prob,
        )

    if head.fixed_size:
        dataset = _map_batches(
            head,
            head.elements(),
            lambda b, s: (aug.normalize(crop(b[0], s), config), b[1]),
            _LABELED_BATCHED,
            drop_remainder=drop_remainder,
        )
    else:
        dataset = _map_images(
            head, lambda image, label, s: (crop(image[None], s)[0], label), _LABELED_PER_IMAGE
        )
        dataset = _batch(head, dataset, drop_remainder, may_fail=head.decodes_files)
        dataset = parallel_map(dataset, lambda images, labels: (aug.normalize(images, config), labels))
    return dataset.prefetch(AUTOTUNE)


def throughput(dataset, *, batches=20, warmup=2):
    """Measures how many examples per second a dataset delivers (e.g. `(view_a, view_b)`
    pairs of `pretraining_dataset`), to check the input pipeline keeps up with training.

    Args:
        dataset: a batched `tf.data.Dataset` (it is repeated as needed).
        batches: batches timed after `warmup` untimed ones (tracing, buffers filling).
        warmup: untimed batches first.

    Returns:
        Examples (first-axis rows of the first component) per second.

    Example:
    ```python
    throughput(pretraining_dataset("digits", batch_size=256, augment="digits"))
    ```
    """
    iterator = iter(dataset.repeat())
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    count = 0
    for _ in range(batches):
        element = next(iterator)
        count += int(tf.shape(tf.nest.flatten(element)[0])[0])
    return count / (time.perf_counter() - start)
