"""Helpers shared by the export tests (also sent as source to fresh processes)."""

import hashlib
import inspect
import os

import keras
import numpy as np
from helpers import relative_error

import keras_barlow
from keras_barlow.backbones import resnet

IMAGE_SIZE = 32
REL_TOL = 1e-5  # relative: inference-mode BN after a few steps can give large features


def probe_images(n=6, seed=3):
    return np.random.default_rng(seed).uniform(size=(n, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")


def reference_features(model, images, card):
    """Pooled features computed by hand: NumPy normalisation, then the in-memory model."""
    mean = np.asarray(card["preprocessing"]["mean"], np.float32)
    std = np.asarray(card["preprocessing"]["std"], np.float32)
    return keras.ops.convert_to_numpy(model((images - mean) / std, training=False))


def tiny_trained_model(steps=2):
    keras.utils.set_random_seed(0)
    encoder = resnet(18, (IMAGE_SIZE, IMAGE_SIZE, 3), small_images=True, width=4)
    model = keras_barlow.BarlowTwins(encoder, projector_dims=(32, 32))
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    rng = np.random.default_rng(0)
    views = rng.uniform(size=(2, 8 * steps, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    history = model.fit((views[0], views[1]), batch_size=8, epochs=1, verbose=0, shuffle=False)
    return model, history


def helper_source():
    """These helpers as source, for the fresh processes of the cross-backend tests."""
    functions = (relative_error, probe_images, reference_features, tiny_trained_model)
    header = (
        "import keras\nimport numpy as np\nimport keras_barlow\nimport keras_barlow.export\n"
        "from keras_barlow.backbones import resnet\n"
    )
    return header + f"IMAGE_SIZE = {IMAGE_SIZE}\n" + "\n".join(inspect.getsource(f) for f in functions)


def tree_digest(directory):
    digest = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digest[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return digest


def hidden_entries(directory):
    return [n for n in os.listdir(directory) if n.startswith(".")]
