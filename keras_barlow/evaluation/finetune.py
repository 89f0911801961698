"""Semi-supervised evaluation: fine-tune encoder + linear head on a labelled fraction."""

import math

import keras
import numpy as np

from keras_barlow.evaluation.features import as_int_labels, is_tf_dataset, iterate_batches
from keras_barlow.evaluation.fine_tune_sgd import (
    FINETUNE_ENCODER_LR,
    FINETUNE_EPOCHS,
    FINETUNE_HEAD_LR,
    FineTuneSGD,
)
from keras_barlow.evaluation.metrics import accuracies, count_classes
from keras_barlow.evaluation.subsets import balanced_subset
from keras_barlow.layers import FeaturePooling
from keras_barlow.models.view_pairs import encoder_of


def _copy_encoder(encoder):
    copy = (
        keras.models.clone_model(encoder)
        if isinstance(encoder, keras.Model)
        else encoder.__class__.from_config(encoder.get_config())
    )
    if not copy.built:
        copy.build(encoder.inputs[0].shape if getattr(encoder, "inputs", None) else None)
    copy.set_weights(encoder.get_weights())
    return copy


def _subset_arrays(data, fraction, shots, seed, labels=None):
    """The labelled subset as arrays (NumPy inputs) or a filtered dataset."""
    if is_tf_dataset(data):
        import tensorflow as tf

        if labels is None:
            labels = np.concatenate([batch_labels for _, batch_labels in iterate_batches(data)])
        indices = balanced_subset(labels, fraction, shots=shots, seed=seed)
        keep = np.zeros(len(labels), bool)
        keep[indices] = True
        keep = tf.constant(keep)
        dataset = data
        if dataset.element_spec[0].shape.rank == 4:
            dataset = dataset.unbatch()
        dataset = dataset.enumerate().filter(lambda index, _: keep[index])
        dataset = dataset.map(lambda _, element: element)
        images, subset_labels = zip(*[(x, y) for x, y in dataset.as_numpy_iterator()])
        return np.stack(images), as_int_labels(np.asarray(subset_labels)), indices, len(labels)
    images, labels_all = next(iterate_batches(data, batch_size=2**62))
    indices = balanced_subset(labels_all, fraction, shots=shots, seed=seed)
    return images[indices], labels_all[indices], indices, len(labels_all)


def fine_tune(
    encoder,
    labeled_data,
    fraction=None,
    *,
    shots=None,
    test_data=None,
    epochs=FINETUNE_EPOCHS,
    batch_size=256,
    encoder_learning_rate=FINETUNE_ENCODER_LR,
    head_learning_rate=FINETUNE_HEAD_LR,
    weight_decay=0.0,
    momentum=0.9,
    augment=None,
    preprocess=None,
    labels=None,
    seed=0,
    copy_encoder=True,
    return_model=False,
    verbose=0,
):
    """Semi-supervised evaluation: fine-tune encoder + linear head on a labelled fraction.

    The subset is class-balanced and deterministic (`balanced_subset(labels, fraction,
    shots=shots, seed=seed)`: the same images for the same seed). Encoder and a new `Dense` head are
    trained end to end (batch norm in training mode) with SGD, momentum 0.9 and a cosine
    decay, at two learning rates (`FineTuneSGD`); the paper's 1 % run used 20 epochs, head
    0.5, encoder 0.002, no weight decay (the defaults).

    Args:
        encoder: Keras model (backbone or `BarlowTwins`, whose encoder is used).
        labeled_data: `(images, labels)` arrays or a dataset of `(image, label)`; the subset
            (materialised as arrays, so keep it to what fits in memory) is drawn from it.
        fraction: labelled fraction per class (paper: 0.01 or 0.1; default 0.01); or
        shots: labelled examples per class (exclusive with `fraction`).
        test_data: arrays or dataset to report accuracy on (optional).
        epochs, batch_size, encoder_learning_rate, head_learning_rate, weight_decay, momentum:
            training settings.
        augment: TF function `(images, seed) -> images` applied to each training batch, a
            new seed every step (e.g. `crop_flip_augmentation()`); None: no augmentation.
        preprocess: callable applied to image batches (train and test) before the encoder.
        labels: the labels of `labeled_data` in order, to skip a pass over a dataset.
        seed: subset, head initialisation, shuffling and augmentation seed.
        copy_encoder: fine-tune a copy (default) and leave `encoder` untouched.
        return_model: also return the fine-tuned classifier (a `keras.Model`, logits out).
        verbose: `fit` verbosity.

    Returns:
        `{"top1", "top5"}` on `test_data` (when given), `"num_labeled"` and `"indices"`
        (the subset, a list); plus the classifier when `return_model`.

    Example:

    ```python
    fine_tune(encoder, (x_train, y_train), 0.1, test_data=(x_test, y_test))["top1"]
    ```
    """
    import tensorflow as tf

    backbone = encoder_of(encoder)
    if not isinstance(backbone, keras.Model):
        raise ValueError(f"fine_tune needs a Keras model as encoder, got {type(encoder).__name__}")
    if fraction is None and shots is None:
        fraction = 0.01
    images, subset_labels, indices, total = _subset_arrays(labeled_data, fraction, shots, seed, labels)
    if preprocess is not None:
        images = np.concatenate(
            [np.asarray(preprocess(images[i : i + 256])) for i in range(0, len(images), 256)]
        )
    images = images.astype(np.float32)
    test_batches = list(iterate_batches(test_data, 256)) if test_data is not None else []
    num_classes = count_classes(subset_labels, *[b[1] for b in test_batches])

    keras.utils.set_random_seed(seed)
    backbone = _copy_encoder(backbone) if copy_encoder else backbone
    inputs = keras.Input(images.shape[1:])
    features = FeaturePooling(name="pool")(backbone(inputs))
    logits = keras.layers.Dense(
        num_classes, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed), name="head"
    )(features)
    classifier = keras.Model(inputs, logits, name="fine_tuned")
    steps = epochs * math.ceil(len(images) / batch_size)
    optimizer = FineTuneSGD(
        keras.optimizers.schedules.CosineDecay(head_learning_rate, decay_steps=max(steps, 1)),
        encoder_lr_multiplier=encoder_learning_rate / head_learning_rate,
        encoder_paths=[v.path for v in backbone.trainable_variables],
        momentum=momentum,
        weight_decay=weight_decay,
    )
    classifier.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dataset = tf.data.Dataset.from_tensor_slices((images, subset_labels)).shuffle(len(images), seed=seed)
    dataset = dataset.batch(batch_size)
    if augment is not None:
        from keras_barlow.augment import seed_stream

        dataset = tf.data.Dataset.zip(dataset, seed_stream(seed)).map(lambda b, s: (augment(b[0], s), b[1]))
    classifier.fit(dataset, epochs=epochs, shuffle=False, verbose=verbose)
    result = {"num_labeled": len(indices), "indices": indices.tolist(), "num_examples": int(total)}
    if test_batches:
        scores, test_labels = [], []
        for batch_images, batch_labels in test_batches:
            if preprocess is not None:
                batch_images = preprocess(batch_images)
            scores.append(classifier.predict_on_batch(np.asarray(batch_images, np.float32)))
            test_labels.append(batch_labels)
        result.update(accuracies(np.concatenate(scores), np.concatenate(test_labels)))
    return (result, classifier) if return_model else result
