"""Random resized crop + flip for evaluation, and cached features of augmented copies.

`crop_flip_augmentation` binds the augment package's `random_crop_flip` to the linear
evaluation's parameters.
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
    from keras_barlow.augment import random_crop_flip

    def apply(images, seed):
        return random_crop_flip(images, seed, scale=scale, ratio=ratio, flip_prob=flip_prob)

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
