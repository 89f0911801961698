"""Random resized crop + flip for evaluation, and cached features of augmented copies.

`crop_flip_augmentation` is a second copy of the augment package's crop+flip (it calls
`keras_barlow.augment.sample_crop_boxes` / `crop_resize`, then flips): kept here until the
augment package exposes a public per-image crop+flip for batches, which should replace it.
"""

import numpy as np

from keras_barlow.evaluation.features import Features, encode_batch, iterate_batches, l2_normalize


def crop_flip_augmentation(scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip_prob=0.5):
    """The linear-evaluation augmentation: random resized crop + horizontal flip, per image.

    Returns a TensorFlow function `(images, seed) -> images` (`seed`: int or `[2]` integer
    tensor) that crops each image of a batch and resizes the crop back to the batch's size
    (bilinear), so it applies to images already resized and normalised for the encoder.
    Use `flip_prob=0` for chiral data such as digits.

    Example:

    ```python
    augment = crop_flip_augmentation(scale=(0.4, 1.0), flip_prob=0.0)
    linear_probe(encoder, train, test, augmentations=4, augment=augment)
    ```
    """
    from keras_barlow import augment as aug

    def apply(images, seed):
        import tensorflow as tf

        images = tf.convert_to_tensor(images, tf.float32)
        seed = tf.constant([seed, 0], tf.int64) if isinstance(seed, int) else tf.cast(seed, tf.int64)
        shape = tf.shape(images)
        n = shape[0]
        seed_crop, seed_flip = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        window = aug.sample_crop_boxes(
            seed_crop, tf.fill([n], shape[1]), tf.fill([n], shape[2]), scale, ratio
        )
        out = aug.crop_resize(images, *window, (images.shape[1], images.shape[2]))
        flip = tf.random.stateless_uniform([n], seed_flip) < flip_prob
        return tf.where(flip[:, None, None, None], tf.reverse(out, axis=[2]), out)

    return apply


def augmented_features(
    encoder, data, augmentations, *, augment=None, batch_size=256, normalize=True, preprocess=None, seed=0
):
    """Features of `augmentations` augmented copies of `data`, computed once.

    Args:
        encoder: Keras model/layer, or None for raw pixels.
        data: `(images, labels)` arrays or a dataset of `(image, label)` (not `Features`).
        augmentations: number of copies.
        augment: `(images, seed) -> images` (default `crop_flip_augmentation()`).
        batch_size, normalize, preprocess: as `extract_features`.
        seed: augmentation seed (copy `c`, batch `b` use `[seed, c · 1000003 + b]`).

    Returns:
        `Features` of all copies, one after the other.
    """
    if isinstance(data, Features):
        raise ValueError("augmentations need training images, not precomputed Features")
    augment = augment or crop_flip_augmentation()
    features, labels = [], []
    for copy in range(int(augmentations)):
        copy_features = []
        for batch, (images, batch_labels) in enumerate(iterate_batches(data, batch_size)):
            if preprocess is not None:
                images = preprocess(images)
            images = np.asarray(augment(np.asarray(images, np.float32), [seed, copy * 1_000_003 + batch]))
            copy_features.append(encode_batch(encoder, images.astype(np.float32)))
            labels.append(batch_labels)
        copy_features = np.concatenate(copy_features)
        features.append(l2_normalize(copy_features) if normalize else copy_features)
    return Features(np.concatenate(features), np.concatenate(labels))
