"""The reason this package exists: N replicas train exactly like one device.

Runs in a subprocess because the CPU must be split into logical devices before TensorFlow
starts. One `MirroredStrategy` object per process: a second one in the same process made
TF's collectives clash.
"""

import json

import pytest
from helpers import run_python

SCRIPT = r"""
import json, os
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from keras_barlow import BarlowTwins
from keras_barlow.trainers import tensorflow as tf_trainer

def encoder():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    return keras.Model(inputs, x)

rng = np.random.default_rng(0)
a = rng.normal(size=(96, 8, 8, 3)).astype("float32")
b = (0.8 * a + 0.4 * rng.normal(size=a.shape)).astype("float32")

def train(strategy, sync_batchnorm=True):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = BarlowTwins(encoder(), projector_dims=(16, 16), sync_batchnorm=sync_batchnorm)
        model.compile(optimizer=keras.optimizers.SGD(0.05))
    data = tf.data.Dataset.from_tensor_slices((a, b)).batch(32, drop_remainder=True)
    history = model.fit(data, epochs=3, verbose=0).history
    return model.get_weights(), history["loss"]

def max_diff(w0, w1):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(w0, w1))

mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert mirrored.num_replicas_in_sync == 2
single_w, single_loss = train(tf.distribute.get_strategy())
exact_w, exact_loss = train(mirrored)
no_sync_w, _ = train(mirrored, sync_batchnorm=False)

# The mistake of other ports: C and the standardisation over the per-replica batch only.
def per_replica_reducers(view_a):
    context = tf.distribute.get_replica_context()
    return None, None, context.num_replicas_in_sync
tf_trainer.TensorFlowTrainer.global_reducers = lambda self, view_a: per_replica_reducers(view_a)
local_c_w, _ = train(mirrored)

print(json.dumps({
    "exact": max_diff(single_w, exact_w),
    "no_sync_batchnorm": max_diff(single_w, no_sync_w),
    "per_replica_c": max_diff(single_w, local_c_w),
    "single_loss": single_loss, "mirrored_loss": exact_loss,
}))
"""


@pytest.mark.tensorflow_only
def test_mirrored_strategy_matches_one_device():
    result = json.loads(run_python(SCRIPT).strip().splitlines()[-1])
    print(result)
    # Same weights after 3 epochs (9 SGD steps) to float32 round-off...
    assert result["exact"] < 1e-5
    # ...and the test has the power to see the usual mistakes.
    assert result["no_sync_batchnorm"] > 100 * max(result["exact"], 1e-6)
    assert result["per_replica_c"] > 100 * max(result["exact"], 1e-6)
    for single, mirrored in zip(result["single_loss"], result["mirrored_loss"]):
        assert mirrored == pytest.approx(single, rel=1e-5)
