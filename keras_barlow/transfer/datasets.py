"""Transfer data sets for the recipes: PASCAL VOC boxes and Oxford-IIIT Pets masks from TFDS,
and the generated shapes (`keras_barlow.transfer.synthetic_shapes.shapes_dataset`) as the same kind of input.

Images come out as float32 pixels in `[0, 255]`: the task models apply the encoder's
pretraining normalisation themselves. TensorFlow and TFDS are imported inside the functions.
"""

import numpy as np

from keras_barlow.transfer.synthetic_shapes import SHAPE_CLASSES, shapes_dataset

BOX_FORMATS = ("xywh", "xyxy", "yxyx")
VOC_NUM_CLASSES = 20
PETS_NUM_CLASSES = 3  # 0 background, 1 pet, 2 border


def convert_boxes(boxes_yxyx, height, width, bounding_box_format):
    """Relative `[ymin, xmin, ymax, xmax]` (TFDS) → absolute pixel boxes in `bounding_box_format`."""
    import tensorflow as tf

    ymin, xmin, ymax, xmax = tf.unstack(tf.cast(boxes_yxyx, tf.float32), axis=-1)
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    ymin, ymax, xmin, xmax = ymin * h, ymax * h, xmin * w, xmax * w
    if bounding_box_format == "xywh":
        return tf.stack([xmin, ymin, xmax - xmin, ymax - ymin], axis=-1)
    if bounding_box_format == "xyxy":
        return tf.stack([xmin, ymin, xmax, ymax], axis=-1)
    if bounding_box_format == "yxyx":
        return tf.stack([ymin, xmin, ymax, xmax], axis=-1)
    raise ValueError(f"bounding_box_format must be one of {BOX_FORMATS}, got {bounding_box_format!r}")


def voc_example(example, *, image_size, bounding_box_format="xywh", max_boxes=50):
    """One TFDS VOC example → `(image, {"boxes", "classes"})`.

    The image is resized to `image_size`² (float32 pixels in [0, 255]); boxes follow it, in
    absolute pixels, padded with -1 (classes too) or truncated to `max_boxes`.
    """
    import tensorflow as tf

    image = tf.image.resize(tf.cast(example["image"], tf.float32), (image_size, image_size))
    image = tf.clip_by_value(image, 0.0, 255.0)
    objects = example["objects"]
    n = tf.minimum(tf.shape(objects["bbox"])[0], tf.shape(objects["label"])[0])
    n = tf.minimum(n, max_boxes)
    boxes = convert_boxes(objects["bbox"][:n], image_size, image_size, bounding_box_format)
    classes = tf.cast(objects["label"][:n], tf.float32)
    pad = max_boxes - n
    boxes = tf.pad(boxes, [[0, pad], [0, 0]], constant_values=-1.0)
    classes = tf.pad(classes, [[0, pad]], constant_values=-1.0)
    boxes = tf.ensure_shape(boxes, (max_boxes, 4))
    classes = tf.ensure_shape(classes, (max_boxes,))
    return image, {"boxes": boxes, "classes": classes}


def pets_example(example, *, image_size):
    """One TFDS Oxford-IIIT Pets example → `(image, mask)`.

    The image is resized to `image_size`² (float32 pixels in [0, 255]); the trimap
    (1 pet, 2 background, 3 border) is resized with nearest neighbours and relabelled
    0 background, 1 pet, 2 border, shape `(image_size, image_size, 1)`, int32.
    """
    import tensorflow as tf

    image = tf.clip_by_value(
        tf.image.resize(tf.cast(example["image"], tf.float32), (image_size, image_size)), 0.0, 255.0
    )
    trimap = tf.image.resize(example["segmentation_mask"], (image_size, image_size), method="nearest")
    relabel = tf.constant([0, 1, 0, 2], tf.int32)  # index: trimap value
    mask = tf.gather(relabel, tf.clip_by_value(tf.cast(trimap, tf.int32), 0, 3))
    return image, tf.ensure_shape(mask, (image_size, image_size, 1))


def tfds_batches(name, split, convert, *, batch_size, data_dir=None, shuffle=True, seed=0, limit=None):
    """A batched TFDS data set, each example mapped by `convert`.

    Args:
        name: TFDS name (e.g. `"voc/2007"`).
        split: TFDS split.
        convert: `example -> (inputs, targets)`.
        batch_size: batch size (the last partial batch is dropped when shuffling).
        data_dir: TFDS data directory.
        shuffle: shuffle files and examples (training).
        seed: shuffle seed.
        limit: take only the first `limit` examples.

    Returns:
        A prefetched `tf.data.Dataset`.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    dataset = tfds.load(name, split=split, data_dir=data_dir, shuffle_files=shuffle)
    if limit:
        dataset = dataset.take(limit)
    if shuffle:
        dataset = dataset.shuffle(1024, seed=seed)
    dataset = dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=shuffle).prefetch(tf.data.AUTOTUNE)


def voc_dataset(
    split,
    *,
    image_size,
    batch_size,
    bounding_box_format="xywh",
    max_boxes=50,
    data_dir=None,
    shuffle=True,
    seed=0,
    limit=None,
    name="voc/2007",
):
    """Batched PASCAL VOC from TFDS: `(images, {"boxes", "classes"})` (KerasCV's target keys).

    Use `keras_barlow.transfer.detection_targets` on the targets for KerasHub's keys.
    """

    def convert(example):
        return voc_example(
            example, image_size=image_size, bounding_box_format=bounding_box_format, max_boxes=max_boxes
        )

    options = dict(batch_size=batch_size, data_dir=data_dir, shuffle=shuffle, seed=seed, limit=limit)
    return tfds_batches(name, split, convert, **options)


def pets_dataset(split, *, image_size, batch_size, data_dir=None, shuffle=True, seed=0, limit=None):
    """Batched Oxford-IIIT Pets from TFDS: `(images, masks)`."""

    def convert(example):
        return pets_example(example, image_size=image_size)

    options = dict(batch_size=batch_size, data_dir=data_dir, shuffle=shuffle, seed=seed, limit=limit)
    return tfds_batches("oxford_iiit_pet", split, convert, **options)


def first_examples(dataset, limit):
    """The first `limit` examples of a batched data set, as NumPy arrays.

    Args:
        dataset: batches of arrays or nested structures of arrays (e.g. `(images, {"boxes", ...})`).
        limit: number of examples.

    Returns:
        The same structure, each leaf concatenated over batches and cut to `limit`.
    """
    import tensorflow as tf

    batches, seen = [], 0
    for batch in dataset:
        batches.append(tf.nest.map_structure(lambda t: t.numpy(), batch))
        seen += len(tf.nest.flatten(batch)[0])
        if seen >= limit:
            break
    return tf.nest.map_structure(lambda *parts: np.concatenate(parts)[:limit], *batches)


def shapes_splits(*, image_size, train_images, eval_images, seed, **shape_options):
    """Train and evaluation sets of `shapes_dataset`, with different seeds.

    Returns:
        `(train, evaluation)`, each a dict of NumPy arrays (see `shapes_dataset`).
    """
    train = shapes_dataset(train_images, image_size=image_size, seed=seed + 1, **shape_options)
    evaluation = shapes_dataset(eval_images, image_size=image_size, seed=seed + 2, **shape_options)
    return train, evaluation


__all__ = [
    "BOX_FORMATS",
    "PETS_NUM_CLASSES",
    "SHAPE_CLASSES",
    "VOC_NUM_CLASSES",
    "convert_boxes",
    "first_examples",
    "pets_dataset",
    "pets_example",
    "shapes_splits",
    "tfds_batches",
    "voc_dataset",
    "voc_example",
]
