"""Helpers shared by the tests: fresh-interpreter runs, the serialisation round trip, the
tiny encoder and model most tests train, and `relative_error`.

Importable as `helpers` from any test (tests/conftest.py puts this folder on `sys.path`);
`tests/conftest.py` also offers `tiny_encoder` and `tiny_model` as fixtures.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code, *, env=None, timeout=600):
    """Runs `code` in a fresh interpreter (for device splits and backends that must be
    chosen before TF/JAX start) and returns its stdout; fails with its stderr."""
    full_env = {**os.environ, "PYTHONPATH": REPO, **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(
            f"subprocess failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-6000:]}"
        )
    return result.stdout


def relative_error(actual, expected):
    """max |actual - expected| / max |expected|, in float64 (features can be large)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30))


def uniform_images(n=40, size=16, channels=3, dtype="float32", scale=1.0, offset=0.0):
    """`n` random images, uniform in [offset, offset + scale), as `dtype` (NumPy seed 0)."""
    rng = np.random.default_rng(0)
    return (rng.random((n, size, size, channels)) * scale + offset).astype(dtype)


def tiny_encoder(
    image_size=8,
    *,
    channels=3,
    filters=8,
    batchnorm=True,
    relu=True,
    pooled=False,
    seed=None,
    name="tiny_encoder",
):
    """The tests' small functional encoder: a 3×3 "same" `Conv2D` → `BatchNormalization` →
    ReLU, giving a `(batch, image_size, image_size, filters)` map that `BarlowTwins` pools.

    Args:
        image_size: height and width of the input.
        channels: channels of the input.
        filters: channels of the output (the feature size after pooling).
        batchnorm: True: Keras' default `BatchNormalization`; a dict: its arguments (e.g.
            `{"epsilon": 1e-5, "momentum": 0.9}`); False: none.
        relu: end with a ReLU.
        pooled: end with global average pooling: `(batch, filters)` features.
        seed: `keras.utils.set_random_seed(seed)` first (None: the global state as it is).
        name: the model's name.
    """
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input((image_size, image_size, channels))
    x = keras.layers.Conv2D(filters, 3, padding="same")(inputs)
    if batchnorm:
        x = keras.layers.BatchNormalization(**(batchnorm if isinstance(batchnorm, dict) else {}))(x)
    if relu:
        x = keras.layers.ReLU()(x)
    if pooled:
        x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name=name)


def tiny_model(
    encoder=None, *, projector_dims=(16, 16), optimizer=None, compile=True, compile_kwargs=None, **kwargs
):
    """A `BarlowTwins` on `encoder` (default `tiny_encoder()`), compiled with `optimizer`
    (default `SGD(0.01)`) and `compile_kwargs` unless `compile=False`; `kwargs` go to
    `BarlowTwins`."""
    from keras_barlow import BarlowTwins

    model = BarlowTwins(
        tiny_encoder() if encoder is None else encoder, projector_dims=projector_dims, **kwargs
    )
    if compile:
        model.compile(optimizer=optimizer or keras.optimizers.SGD(0.01), **(compile_kwargs or {}))
    return model


def as_json(config):
    """`config` as `.keras` files store it (tuples become lists)."""
    return json.loads(json.dumps(config, default=str))


def _as_numpy(value):
    """One array of every output (dict outputs flattened in key order)."""
    leaves = keras.tree.flatten(value)
    return np.concatenate([np.ravel(keras.ops.convert_to_numpy(leaf)) for leaf in leaves])


def round_trip(obj, *, tmp_path=None, inputs=None):
    """Serialises `obj` and checks the copy is the same object.

    - `keras.saving.serialize_keras_object` + `deserialize_keras_object`: same class and
      same `get_config()`;
    - for layers and models, with `tmp_path`: a `.keras` save and `load_model` of a model
      holding it (the object itself when it is a model), with the same weights;
    - with `inputs`: the copies give the same outputs.

    Args:
        obj: a registered Keras object (layer, model, loss, optimizer, schedule, ...).
        tmp_path: folder for the `.keras` file.
        inputs: a batch for layers and models, or `(y_true, y_pred)` for losses, or a step
            for schedules.

    Returns:
        The deserialised copy.
    """
    config = keras.saving.serialize_keras_object(obj)
    copy = keras.saving.deserialize_keras_object(config)
    assert type(copy) is type(obj)
    assert as_json(copy.get_config()) == as_json(obj.get_config())
    copies = [copy]
    if isinstance(obj, keras.layers.Layer) and tmp_path is not None:
        path = os.path.join(tmp_path, f"{type(obj).__name__}.keras")
        if isinstance(obj, keras.Model):
            obj.save(path)
            loaded = keras.models.load_model(path)
        else:
            holder = keras.Sequential([keras.Input(tuple(inputs.shape[1:])), obj])
            holder.save(path)
            loaded = keras.models.load_model(path).layers[-1]
        assert type(loaded) is type(obj)
        assert as_json(loaded.get_config()) == as_json(obj.get_config())
        for expected, actual in zip(obj.get_weights(), loaded.get_weights()):
            np.testing.assert_array_equal(expected, actual)
        copies.append(loaded)
    if inputs is not None:
        expected = _outputs(obj, inputs)
        if isinstance(obj, keras.layers.Layer):  # deserialised layers start from a fresh init
            copy.set_weights(obj.get_weights())
        for other in copies:
            np.testing.assert_allclose(_outputs(other, inputs), expected, rtol=1e-6, atol=1e-6)
    return copy


def _outputs(obj, inputs):
    if isinstance(obj, keras.losses.Loss):
        return _as_numpy(obj(*inputs))
    if isinstance(obj, keras.layers.Layer):
        return _as_numpy(obj(inputs, training=False))
    return _as_numpy(obj(inputs))  # schedules: a step
