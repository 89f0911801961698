"""The small resumable training run the fault-tolerance tests share: a tiny eager model,
2 epochs × 3 steps of 4 pairs, each epoch's data a function of the epoch number only."""

import keras
from helpers import tiny_encoder, tiny_model

from keras_barlow.fault_tolerance import BackupAndRestore, resumable_dataset

EPOCHS, STEPS, BATCH = 2, 3, 4


def small_model():
    """SGD with momentum, so that the optimizer state matters on resume."""
    encoder = tiny_encoder(6, filters=2, batchnorm=False, relu=False)
    return tiny_model(
        encoder,
        projector_dims=(8, 8),
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        compile_kwargs={"run_eagerly": True},
    )


def epoch_data(epoch):
    import tensorflow as tf

    images = tf.random.stateless_normal(
        [STEPS * BATCH, 6, 6, 3], seed=tf.stack([tf.constant(1, tf.int64), epoch])
    )
    return tf.data.Dataset.from_tensor_slices((images, images * 0.9)).batch(BATCH, drop_remainder=True)


def data(start=0):
    return resumable_dataset(epoch_data, epochs=EPOCHS, steps_per_epoch=STEPS, start_step=start)


def train(model, backup_dir, callbacks=(), **kwargs):
    backup = BackupAndRestore(str(backup_dir), **kwargs)
    model.fit(
        data(backup.resume_step()),
        epochs=EPOCHS,
        steps_per_epoch=STEPS,
        callbacks=[backup, *callbacks],
        verbose=0,
    )
    return backup
