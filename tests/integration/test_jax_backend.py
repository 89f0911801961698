"""The JAX backend: exactness under `keras.distribution`, parity with TensorFlow, device choice.

Most tests here need the JAX backend and run in the JAX pass of the suite
(`KERAS_BACKEND=jax python -m pytest -m "not tensorflow_only"`); the device-choice logic
runs in both passes. Device splits and process groups must exist before JAX starts, so those
runs happen in fresh interpreters (`run_python`, `subprocess`), which import the helpers
below from this file.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
from helpers import run_python

import keras_barlow
from keras_barlow import distribute

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(TESTS))
ON_JAX = keras.backend.backend() == "jax"
jax_only = pytest.mark.skipif(not ON_JAX, reason="runs in the JAX pass (KERAS_BACKEND=jax)")

IMAGE_SHAPE = (6, 6, 2)
SAMPLES, BATCH, EPOCHS = 64, 16, 2
EXACT = 1e-5  # max |Δweight| allowed between one device and a data-parallel run


# --- helpers, also imported by the subprocesses ---------------------------------------


def make_views(n=SAMPLES, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, *IMAGE_SHAPE)).astype("float32")
    b = (a + 0.3 * rng.normal(size=a.shape)).astype("float32")
    return a, b


def tiny_model(cls=keras_barlow.BarlowTwins, learning_rate=0.05):
    """Conv → BN → ReLU encoder and a 16-16 projector: BN and C both need the global batch."""
    encoder = keras.Sequential(
        [
            keras.Input(IMAGE_SHAPE),
            keras.layers.Conv2D(8, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9),
            keras.layers.ReLU(),
        ],
        name="encoder",
    )
    model = cls(encoder, projector_dims=(16, 16))
    # Plain SGD: momentum would amplify float rounding differences between the runs.
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate))
    return model


def seeded_weights(model, seed=0):
    """Deterministic initial weights from NumPy alone (same on every backend and process)."""
    rng = np.random.default_rng(seed)
    weights = []
    for variable in model.weights:
        shape, name = tuple(variable.shape), variable.path
        if name.endswith("kernel"):
            value = rng.normal(scale=1.0 / np.sqrt(np.prod(shape[:-1])), size=shape)
        elif name.endswith("gamma"):
            value = 1.0 + 0.1 * rng.normal(size=shape)
        elif name.endswith("beta"):
            value = 0.1 * rng.normal(size=shape)
        elif name.endswith("moving_variance"):
            value = np.ones(shape)
        elif name.endswith("moving_mean"):
            value = np.zeros(shape)
        else:
            raise AssertionError(f"unexpected variable {name}")
        weights.append(value.astype("float32"))
    return weights


def train(model, data=None, epochs=EPOCHS):
    """Sets the seeded weights, fits and returns `(weights, loss per epoch)`."""
    model.set_weights(seeded_weights(model))
    data = make_views() if data is None else data
    if isinstance(data, tuple):
        history = model.fit(data, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0)
    else:  # a batched tf.data.Dataset
        history = model.fit(data, epochs=epochs, verbose=0)
    return [np.asarray(w) for w in model.get_weights()], history.history["loss"]


def max_abs_diff(weights_a, weights_b):
    return max(float(np.max(np.abs(a - b))) for a, b in zip(weights_a, weights_b))


class PerHalfStatistics(keras_barlow.BarlowTwins):
    """Deliberately wrong: C and every batch norm over each half of the batch, the two
    losses averaged — what two devices that do not share statistics would compute."""

    def compute_terms(self, view_a, view_b, **kwargs):
        half = view_a.shape[0] // 2
        first = super().compute_terms(view_a[:half], view_b[:half], **kwargs)
        second = super().compute_terms(view_a[half:], view_b[half:], **kwargs)
        return {key: 0.5 * (first[key] + second[key]) for key in first}


def _subprocess_prelude(block_tensorflow=False):
    """Code that makes the helpers of this file importable in a fresh interpreter and,
    optionally, makes TensorFlow unimportable there (as on a JAX-only machine)."""
    code = f"import sys; sys.path[:0] = [{TESTS!r}, {os.path.dirname(TESTS)!r}]\n"
    if block_tensorflow:
        code += textwrap.dedent(
            """
            import importlib.abc

            class _NoTensorFlow(importlib.abc.MetaPathFinder):
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] in ("tensorflow", "tensorflow_datasets", "tensorflow_text"):
                        raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
                    return None

            sys.meta_path.insert(0, _NoTensorFlow())
            """
        )
    return code


def _jax_env(**extra):
    return {"KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


@pytest.fixture(scope="module")
def one_device_run():
    """The reference: the tiny model fitted on this process's single JAX device."""
    if not ON_JAX:
        pytest.skip("needs the JAX backend")
    assert keras.distribution.distribution() is None
    return train(tiny_model())


# --- device choice (mocked device lists; no accelerator is pretended to have run) ------


def fake_devices(**counts):
    """A stand-in for `keras.distribution.list_devices` on a machine with `counts`."""

    def list_devices(device_type):
        if not counts.get(device_type):
            raise RuntimeError(f"Unknown backend: '{device_type}' requested")  # as JAX says
        return [f"{device_type}:{i}" for i in range(counts[device_type])]

    return list_devices


@pytest.mark.parametrize(
    "counts, kind, expected",
    [
        ({"tpu": 8, "cpu": 1}, "auto", ("tpu", [f"tpu:{i}" for i in range(8)])),
        ({"gpu": 2, "cpu": 1}, "auto", ("gpu", ["gpu:0", "gpu:1"])),
        ({"cpu": 1}, "auto", ("cpu", ["cpu:0"])),
        ({"gpu": 4, "cpu": 2}, "cpu", ("cpu", ["cpu:0", "cpu:1"])),
        ({"tpu": 4, "gpu": 1, "cpu": 1}, "gpu", ("gpu", ["gpu:0"])),
    ],
)
def test_device_choice(counts, kind, expected):
    assert distribute.select_jax_devices(kind, list_devices=fake_devices(**counts)) == expected


def test_device_choice_can_use_fewer_devices():
    chosen = distribute.select_jax_devices("auto", num_devices=2, list_devices=fake_devices(tpu=8, cpu=1))
    assert chosen == ("tpu", ["tpu:0", "tpu:1"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "tpu"}, r"no TPU devices \(it sees: 2 gpu, 1 cpu\)"),
        ({"kind": "cuda"}, r"kind must be one of"),
        ({"num_devices": 3}, r"num_devices=3 but only 2 gpu devices"),
        ({"num_devices": 0}, r"positive integer"),
        ({"num_devices": 1.5}, r"positive integer"),
    ],
)
def test_device_choice_errors_say_what_to_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        distribute.select_jax_devices(list_devices=fake_devices(gpu=2, cpu=1), **kwargs)


@pytest.mark.parametrize(
    "multiprocess, args, environ, expected",
    [
        ("auto", {}, {}, False),
        ("auto", {}, {"KERAS_DISTRIBUTION_NUM_PROCESSES": "4"}, True),
        ("auto", {}, {"KERAS_DISTRIBUTION_NUM_PROCESSES": "1"}, False),
        ("auto", {"num_processes": 2}, {}, True),
        ("auto", {"num_processes": 1}, {"KERAS_DISTRIBUTION_NUM_PROCESSES": "4"}, False),
        ("auto", {"job_addresses": "10.0.0.1:1234"}, {}, True),
        ("auto", {}, {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234"}, True),
        (True, {}, {}, True),  # Cloud TPU pods: JAX discovers the job
        (False, {"num_processes": 2}, {}, False),
    ],
)
def test_when_processes_are_joined(multiprocess, args, environ, expected):
    args = {"job_addresses": None, "num_processes": None, **args}
    assert (
        distribute.jax_processes_requested(
            multiprocess, args["job_addresses"], args["num_processes"], environ
        )
        is expected
    )


@pytest.mark.skipif(ON_JAX, reason="checks the error on the other backends")
def test_jax_helpers_refuse_other_backends():
    with pytest.raises(RuntimeError, match="KERAS_BACKEND=jax"):
        distribute.jax_distribution()
    with pytest.raises(RuntimeError, match="KERAS_BACKEND=jax"):
        distribute.initialize_jax_processes("127.0.0.1:1", 2, 0)


@jax_only
def test_jax_distribution_logs_and_sets_its_choice(monkeypatch, caplog):
    monkeypatch.setattr(keras.distribution, "list_devices", fake_devices(tpu=8, cpu=1))
    hidden = []
    monkeypatch.setattr(distribute.jax, "hide_accelerators_from_tensorflow", lambda: hidden.append(True))
    try:
        with caplog.at_level("INFO", logger="keras_barlow.distribute"):
            distribution = distribute.jax_distribution()
        assert hidden == [True]  # tf.data must not take the accelerator's memory
        assert isinstance(distribution, keras.distribution.DataParallel)
        assert list(distribution.device_mesh.devices) == [f"tpu:{i}" for i in range(8)]
        assert keras.distribution.distribution() is distribution
        assert "DataParallel over 8 tpu device(s) [tpu:0 … tpu:7] in 1 process(es)" in caplog.text
        assert "no TPU or GPU found" not in caplog.text
    finally:
        keras.distribution.set_distribution(None)


@jax_only
def test_jax_distribution_on_this_cpu(monkeypatch, caplog):
    hidden = []
    monkeypatch.setattr(distribute.jax, "hide_accelerators_from_tensorflow", lambda: hidden.append(True))
    with caplog.at_level("INFO", logger="keras_barlow.distribute"):
        distribution = distribute.jax_distribution(set_global=False)
    assert hidden == []  # TensorFlow may keep the CPU
    assert keras.distribution.distribution() is None
    assert list(distribution.device_mesh.devices) == keras.distribution.list_devices("cpu")
    assert "no TPU or GPU found" in caplog.text  # the CPU fallback is a warning


# --- exactness of data parallelism ------------------------------------------------------


@jax_only
@pytest.mark.slow
def test_data_parallel_on_two_devices_equals_one_device(one_device_run):
    """DataParallel over 2 host devices, same global batch, == one device; a per-device C
    (statistics over half batches) would differ by orders of magnitude more. TensorFlow is
    unimportable in that run: the JAX path with NumPy input needs none."""
    code = _subprocess_prelude(block_tensorflow=True) + textwrap.dedent(
        """
        import json
        import keras
        from keras_barlow import distribute
        from test_jax_backend import tiny_model, train

        distribution = distribute.jax_distribution()  # auto: the 2 forced CPU devices
        model = tiny_model()  # built after the distribution is set: replicated variables
        weights, losses = train(model)
        print(json.dumps({
            "devices": [str(d) for d in distribution.device_mesh.devices],
            "variable_devices": len(model.trainable_variables[0].value.sharding.device_set),
            "weights": [w.tolist() for w in weights],
            "losses": losses,
        }))
        """
    )
    out = run_python(code, env=_jax_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"), timeout=300)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["devices"] == ["cpu:0", "cpu:1"] and result["variable_devices"] == 2

    reference, reference_losses = one_device_run
    distributed = [np.asarray(w, dtype="float32") for w in result["weights"]]
    trained = max_abs_diff(reference, seeded_weights(tiny_model()))
    exact = max_abs_diff(reference, distributed)
    wrong, _ = train(tiny_model(PerHalfStatistics))
    per_device = max_abs_diff(reference, wrong)
    print(
        f"weights moved {trained:.3g}; 2 devices vs 1: {exact:.3g}; per-device statistics: {per_device:.3g}"
    )
    assert trained > 0.1  # training changed the weights
    assert exact < EXACT
    assert per_device > 1000 * EXACT
    np.testing.assert_allclose(result["losses"], reference_losses, rtol=1e-5)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_WORKER = textwrap.dedent(
    """
    import json, os, sys
    port, process_id, out_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    sys.path[:0] = [sys.argv[4], os.path.dirname(sys.argv[4])]
    import keras
    import numpy as np
    from keras_barlow import distribute

    distribution = distribute.jax_distribution(
        "cpu", job_addresses=f"127.0.0.1:{port}", num_processes=2, process_id=process_id
    )
    import tensorflow as tf
    from test_jax_backend import BATCH, make_views, tiny_model, train

    # The *global*-batch dataset: Keras gives each process its half of every batch.
    dataset = tf.data.Dataset.from_tensor_slices(make_views()).batch(BATCH)
    model = tiny_model()
    weights, losses = train(model, dataset)
    np.savez(out_path, *weights)
    with open(out_path + ".json", "w") as f:
        json.dump({"losses": losses, "processes": distribution.num_processes,
                   "devices": [str(d) for d in distribution.device_mesh.devices]}, f)
    """
)


@jax_only
@pytest.mark.slow
def test_two_processes_equal_one_device(one_device_run, tmp_path):
    """`keras.distribution.initialize` over 127.0.0.1 (gloo collectives), 2 processes of 1
    CPU device each, fed the global-batch dataset: == one device."""
    pytest.importorskip("tensorflow")  # Keras shards only tf.data input across processes
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": REPO, **_jax_env()}
    env.pop("XLA_FLAGS", None)
    outputs = [str(tmp_path / f"process{i}.npz") for i in range(2)]
    logs = [open(tmp_path / f"process{i}.log", "w+") for i in range(2)]  # noqa: SIM115 (closed below)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(port), str(i), outputs[i], TESTS],
            env=env,
            stdout=logs[i],
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 300
    try:
        # Stop at once if either fails: its peer would wait for it until JAX's own timeout.
        while any(w.poll() is None for w in workers) and not any(w.poll() for w in workers):
            if time.monotonic() > deadline:
                pytest.fail("the two JAX processes did not finish within 300 s")
            time.sleep(0.5)
    finally:
        for worker in workers:  # never leave a worker behind
            if worker.poll() is None:
                worker.kill()
            worker.wait()
    for i, worker in enumerate(workers):
        logs[i].seek(0)
        output = logs[i].read()
        logs[i].close()
        assert worker.returncode == 0, f"process {i} failed ({worker.returncode}):\n{output[-6000:]}"

    reference, reference_losses = one_device_run
    for path in outputs:
        with open(path + ".json") as f:
            info = json.load(f)
        assert info["processes"] == 2 and len(info["devices"]) == 2
        with np.load(path) as saved:
            weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        print(f"{os.path.basename(path)} vs one device: {max_abs_diff(reference, weights):.3g}")
        assert max_abs_diff(reference, weights) < EXACT
        np.testing.assert_allclose(info["losses"], reference_losses, rtol=1e-5)


# --- parity with TensorFlow -------------------------------------------------------------


@jax_only
@pytest.mark.slow
def test_same_loss_and_step_as_tensorflow(tmp_path):
    """Weights saved by the TF backend (`.weights.h5`), loaded on JAX: the same loss terms
    on the same batch, and the same weights after one SGD step, to 1e-5 relative."""
    pytest.importorskip("tensorflow")
    code = _subprocess_prelude() + textwrap.dedent(
        f"""
        import json
        import numpy as np
        from keras import ops
        from test_jax_backend import make_views, seeded_weights, tiny_model

        a, b = make_views(32, seed=1)
        model = tiny_model()
        model.set_weights(seeded_weights(model, seed=3))
        model.save_weights({str(tmp_path / "init.weights.h5")!r})
        terms = model.compute_terms(a, b, training=True)
        model.load_weights({str(tmp_path / "init.weights.h5")!r})  # training=True moved BN stats
        model.fit((a, b), batch_size=32, epochs=1, shuffle=False, verbose=0)
        np.savez({str(tmp_path / "tf_step.npz")!r}, *model.get_weights())
        print(json.dumps({{k: float(ops.convert_to_numpy(v)) for k, v in terms.items()}}))
        """
    )
    out = run_python(code, env={"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    tf_terms = json.loads(out.strip().splitlines()[-1])

    a, b = make_views(32, seed=1)
    model = tiny_model()
    model.load_weights(str(tmp_path / "init.weights.h5"))
    for w, expected in zip(model.get_weights(), seeded_weights(model, seed=3)):
        np.testing.assert_array_equal(w, expected)
    jax_terms = {k: float(v) for k, v in model.compute_terms(a, b, training=True).items()}
    assert set(jax_terms) == set(tf_terms) == {"loss", "on_diag", "off_diag", "embedding_std"}
    relative = {key: abs(jax_terms[key] - value) / abs(value) for key, value in tf_terms.items()}
    print(f"TF vs JAX, relative differences: {relative}")
    for key, value in tf_terms.items():
        assert jax_terms[key] == pytest.approx(value, rel=1e-5), key
    assert tf_terms["loss"] > 0.1  # not a trivially zero loss

    model.load_weights(str(tmp_path / "init.weights.h5"))  # compute_terms(training) moved BN stats
    model.fit((a, b), batch_size=32, epochs=1, shuffle=False, verbose=0)
    with np.load(tmp_path / "tf_step.npz") as saved:
        tf_step = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    initial = seeded_weights(model, seed=3)
    for w_jax, w_tf, w0 in zip(model.get_weights(), tf_step, initial):
        step = np.max(np.abs(w_tf - w0))
        np.testing.assert_allclose(w_jax, w_tf, rtol=1e-5, atol=1e-5 * max(step, 1e-3))
    print(
        f"TF vs JAX after one step: max |Δw| {max_abs_diff(model.get_weights(), tf_step):.3g}, "
        f"step size {max_abs_diff(tf_step, initial):.3g}"
    )


# --- errors and precision on JAX --------------------------------------------------------


BAD_INPUTS = [
    (
        lambda a, b: (a,),
        r"expected a dataset of \(view_a, view_b\) pairs of image batches, got a single tensor",
    ),
    (lambda a, b: (a, np.zeros(len(a), "int32")), r"Barlow Twins is self-supervised"),
    (lambda a, b: ((a, b[:, :4, :4]),), r"the two views must have the same shape"),
    (lambda a, b: ({"view_a": a, "b": b},), r"missing \['view_b'\]"),
    (lambda a, b: ((a.reshape(len(a), -1), b.reshape(len(b), -1)),), r"batch of images \(batch, height"),
]


def test_bad_input_errors_leave_the_model_usable():
    """The same ValueErrors on both backends (this runs in both passes), and afterwards the
    model trains exactly as if they never happened. (Keras 3.15's JAX loops detach the
    variables before the first step and left them empty when it failed.)"""
    a, b = make_views(8)
    model = tiny_model()
    model.set_weights(seeded_weights(model))
    for make_input, message in BAD_INPUTS:
        with pytest.raises(ValueError, match=message):
            model.fit(*make_input(a, b), batch_size=4, epochs=1, verbose=0)
    make_input, message = BAD_INPUTS[0]
    with pytest.raises(ValueError, match=message):
        model.evaluate(*make_input(a, b), batch_size=4, verbose=0)
    # Untouched: same weights, optimizer at step 0 with empty slots; and it still works.
    assert max_abs_diff(model.get_weights(), seeded_weights(model)) == 0.0
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0
    np.testing.assert_allclose(
        model.predict(a, verbose=0), keras.ops.convert_to_numpy(model(a)), rtol=1e-5, atol=1e-6
    )
    history = model.fit((a, b), batch_size=4, epochs=1, verbose=0).history
    assert (
        np.isfinite(history["loss"][0]) and int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2
    )


@jax_only
def test_mixed_bfloat16_trains_on_jax():
    a, b = make_views(32)
    full = tiny_model()
    full.set_weights(seeded_weights(full))
    full_loss = float(full.compute_terms(a, b, training=False)["loss"])
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = tiny_model()
        assert model.encoder.layers[0].compute_dtype == "bfloat16"
        assert all(w.dtype == "float32" for w in model.weights)  # float32 master weights
        model.set_weights(seeded_weights(model))
        terms = model.compute_terms(a, b, training=False)
        half_loss = float(terms["loss"])
        assert terms["loss"].dtype == "float32"
        history = model.fit((a, b), batch_size=16, epochs=1, shuffle=False, verbose=0).history
    finally:
        keras.config.set_dtype_policy("float32")
    # bfloat16 really ran (the loss differs a little), and C stayed float32 (it differs only a little).
    assert half_loss != full_loss and half_loss == pytest.approx(full_loss, rel=0.05)
    assert np.isfinite(history["loss"][0])
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert max_abs_diff(model.get_weights(), seeded_weights(model)) > 1e-3  # it trained
