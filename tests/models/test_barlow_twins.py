"""BarlowTwins: construction, training, metrics, input errors through `fit`, serialisation."""

import os

import keras
import numpy as np
import pytest
from helpers import tiny_encoder, tiny_model, uniform_images
from keras import ops

from keras_barlow import losses
from keras_barlow.layers.projector import unsynchronized_batchnorm
from keras_barlow.models.barlow_twins import BarlowTwins

BATCHNORM = {"epsilon": 1e-5, "momentum": 0.9}  # PyTorch's defaults


def encoder():
    """The shared tiny encoder (8 px, 8 features) with PyTorch's batch-norm settings."""
    return tiny_encoder(batchnorm=BATCHNORM)


def views(n=32, size=8, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, size, size, 3)).astype("float32")
    b = (a + 0.3 * rng.normal(size=a.shape)).astype("float32")
    return a, b


def compiled_model(**kwargs):
    return tiny_model(encoder(), projector_dims=(16, 16), optimizer=keras.optimizers.SGD(0.05), **kwargs)


def test_model_is_built_at_construction():
    model = BarlowTwins(encoder(), projector_dims=(16, 16))
    assert model.built and model.projector.built and model.feature_dim == 8
    # encoder conv+bn, projector dense+bn+dense: all variables exist before fit.
    assert len(model.trainable_variables) == 2 + 2 + 1 + 2 + 1


def test_fit_trains_and_reports_metrics():
    a, b = views(64)
    model = compiled_model()
    history = model.fit(a, b, batch_size=16, epochs=4, shuffle=False, verbose=0).history
    assert set(history) == {"loss", "on_diag", "off_diag", "embedding_std"}
    assert history["loss"][-1] < history["loss"][0]
    assert all(v > 0 for v in history["loss"])  # trackers, not the 0.0 of a raw tensor (NOTES §2)
    assert 0.05 < history["embedding_std"][-1] < 1.0
    logs = model.evaluate(a, b, batch_size=16, verbose=0, return_dict=True)
    assert set(logs) == set(history) and np.isfinite(logs["loss"])


def test_reported_loss_matches_the_loss_of_the_embeddings():
    a, b = views(16)
    model = compiled_model(lambd=0.02, scale_loss=0.5)
    terms = model.compute_terms(a, b, training=False)
    z_a = ops.convert_to_numpy(model.embed(a))
    z_b = ops.convert_to_numpy(model.embed(b))
    ref = losses.barlow_twins_terms(z_a, z_b, lambd=0.02, scale_loss=0.5)
    for key in ("loss", "on_diag", "off_diag"):
        assert float(terms[key]) == pytest.approx(float(ref[key]), rel=1e-5)
    logs = model.evaluate(a, b, batch_size=16, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(float(terms["loss"]), rel=1e-5)


def test_predict_returns_pooled_encoder_features():
    a, _ = views(8)
    model = compiled_model()
    features = model.predict(a, verbose=0)
    expected = ops.convert_to_numpy(ops.mean(model.encoder(a), axis=(1, 2)))
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


def test_dict_views_are_accepted():
    a, b = views(32)
    model = compiled_model()
    history = model.fit({"view_a": a, "view_b": b}, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])


@pytest.mark.parametrize(
    "make_data, message",
    [
        (lambda a, b: ((a,), {}), "expected a dataset of \\(view_a, view_b\\) pairs"),
        (lambda a, b: ((a, np.arange(len(a)) % 10), {}), "labels"),
        (lambda a, b: ((a, b[:, :4, :4]), {}), "same shape"),
        (lambda a, b: (({"view_a": a, "other": b},), {}), "missing"),
        (lambda a, b: ((a, b), {"batch_size": 1}), "batch of 1"),
    ],
    ids=["single-images", "labels", "different-shapes", "missing-key", "batch-of-one"],
)
def test_bad_input_says_what_was_wrong(make_data, message):
    a, b = views(8)
    model = compiled_model()
    args, kwargs = make_data(a, b)
    with pytest.raises(ValueError, match=message):
        model.fit(*args, epochs=1, verbose=0, **{"batch_size": 4, **kwargs})


def test_non_finite_loss_stops_before_checkpoints(tmp_path):
    a, b = views(32)
    a[20:] = np.nan  # the second batch of 16 is poisoned
    # No ReLU on the path: XLA on CPU may turn max(NaN, 0) into 0 and hide the NaN.
    inputs = keras.Input((8, 8, 3))
    encoder = keras.Model(inputs, keras.layers.Conv2D(8, 3)(inputs))
    model = BarlowTwins(encoder, projector_dims=(16,))
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    saved = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            saved.append(batch)

    with pytest.raises(FloatingPointError, match=r"at step 2 \(epoch 0, batch 1\)"):
        model.fit(a, b, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[Spy()])
    assert saved == [0]  # the callback after the guard never saw the NaN batch


def test_save_load_round_trip_and_continue_training(tmp_path):
    a, b = views(32)
    model = compiled_model(lambd=0.01, scale_loss=0.1)
    model.fit(a, b, batch_size=16, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "bt.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, BarlowTwins)
    assert (loaded.lambd, loaded.scale_loss, loaded.projector_dims) == (0.01, 0.1, (16, 16))
    for w0, w1 in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    np.testing.assert_allclose(loaded.predict(a, verbose=0), model.predict(a, verbose=0), rtol=1e-6)
    history = loaded.fit(a, b, batch_size=16, epochs=1, verbose=0).history  # optimizer state restored
    assert np.isfinite(history["loss"][0])


def test_synchronized_flag_never_reaches_saved_configs():
    model = compiled_model()
    bns = model.batchnorm_layers()
    assert len(bns) == 2  # encoder + projector
    for bn in bns:
        bn.synchronized = True  # as multi-replica training sets it
    config = model.get_config()
    assert "'synchronized': True" not in str(config)
    assert all(bn.synchronized for bn in bns)  # restored after serialising
    with unsynchronized_batchnorm(bns):
        assert not any(bn.synchronized for bn in bns)


def test_encoder_must_be_a_keras_layer():
    with pytest.raises(ValueError, match="Keras model or layer"):
        BarlowTwins(lambda x: x)
    with pytest.raises(ValueError, match=r"encoder must be a Keras model or layer, got str"):
        BarlowTwins("resnet18")


# --- bad input, as a new user gives it: an error naming the problem and the fix -------------
# 16-px images, 4 features, an 8-wide projector.


def model_16px(**kwargs):
    return tiny_model(tiny_encoder(16, filters=4), projector_dims=(8,), **kwargs)


def test_negative_lambd_is_refused():
    with pytest.raises(ValueError, match=r"lambd.*-1\.0.*0\.0051"):
        model_16px(lambd=-1.0)


def test_nan_lambd_is_refused_at_construction():
    with pytest.raises(ValueError, match=r"lambd.*nan"):
        model_16px(lambd=float("nan"))


@pytest.mark.parametrize(
    "kwargs",
    [{"lambd": float("inf")}, {"scale_loss": float("nan")}, {"scale_loss": -1.0}, {"scale_loss": 0.0}],
)
def test_non_finite_or_non_positive_loss_weights_are_refused(kwargs):
    ((name, value),) = kwargs.items()
    with pytest.raises(ValueError, match=rf"{name}.*{value}"):
        model_16px(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lambd": "0.005"}, r"lambd must be a finite number ≥ 0, got '0.005'"),
        ({"image_shape": (16, 16)}, r"image_shape must be \(height, width, channels\), got \(16, 16\)"),
    ],
    ids=["lambd-string", "image-shape-2d"],
)
def test_barlow_twins_refuses_bad_arguments_when_built(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BarlowTwins(keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.Flatten()]), **kwargs)


def test_zero_lambd_is_accepted_as_the_on_diagonal_only_ablation():
    assert model_16px(lambd=0, compile=False).lambd == 0.0


def test_fit_on_images_of_another_size_names_both_shapes():
    x = uniform_images(32, size=20)
    with pytest.raises(
        ValueError, match=r"expected shape=\(None, 16, 16, 3\), found shape=\(16, 20, 20, 3\)"
    ):
        model_16px().fit((x, x), batch_size=16, epochs=1, verbose=0)


def test_fit_on_views_of_different_lengths_is_refused():
    x = uniform_images(32)
    with pytest.raises(ValueError, match=r"cardinality.*32, 16"):
        model_16px().fit((x, x[:16]), batch_size=16, epochs=1, verbose=0)


def test_fit_before_compile_says_compile():
    x = uniform_images(32)
    with pytest.raises(ValueError, match=r"compile\(\)"):
        model_16px(compile=False).fit((x, x), batch_size=16, epochs=1, verbose=0)


def test_compile_with_a_loss_or_metrics_is_refused():
    model = model_16px(compile=False)
    with pytest.raises(ValueError, match=r"computes its own loss.*loss='mse'.*lambd=\.\.\., scale_loss"):
        model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"does not take metrics=\['accuracy'\]"):
        model.compile(optimizer="sgd", metrics=["accuracy"])


def test_predict_on_a_pair_of_views_says_to_pass_images():
    x = uniform_images(8)
    with pytest.raises(ValueError, match=r"got a tuple of 2 inputs: call predict\(images\)"):
        model_16px().predict((x, x), verbose=0)
    assert model_16px().predict(x, verbose=0).shape == (8, 4)


def test_an_encoder_without_trainable_weights_is_refused_at_fit():
    frozen = tiny_encoder(16, filters=4)
    frozen.trainable = False
    x = uniform_images(32)
    with pytest.raises(ValueError, match=r"has no trainable weights.*encoder.trainable = True"):
        tiny_model(frozen, projector_dims=(8,)).fit((x, x), batch_size=16, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "outputs, match",
    [
        (lambda x: {"a": x, "b": x}, r"returns a dict with keys \['a', 'b'\].*encoder.output\['a'\]"),
        (lambda x: [x, x], r"returns a list of 2 outputs.*encoder.outputs\[-1\]"),
    ],
    ids=["dict", "list"],
)
def test_an_encoder_with_several_outputs_is_refused_with_the_fix(outputs, match):
    inputs = keras.Input((8, 8, 3))
    encoder = keras.Model(inputs, outputs(keras.layers.Conv2D(4, 3)(inputs)))
    with pytest.raises(ValueError, match=match):
        BarlowTwins(encoder, projector_dims=(8, 8))
