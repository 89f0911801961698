"""benchmarking.runners, run end to end through `recipes/benchmark.py --smoke`
on both backends, and the training-step properties the runners rely on:
`steps_per_execution` and `jit_compile` leave the result unchanged."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import REPO

from keras_barlow import BarlowTwins

SCRIPT = os.path.join(REPO, "recipes", "benchmark.py")
DEFAULT_MEASURES = ["fit", "step", "bare", "pipeline"]


# --- the training step: steps_per_execution and XLA change nothing -----------------------


def _tiny_model(steps_per_execution=1, jit_compile=False):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    model = BarlowTwins(keras.Model(inputs, x), projector_dims=(16, 16))
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    return model


def _views(n=48, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, 8, 8, 3)).astype("float32")
    return a, (a + 0.3 * rng.normal(size=a.shape)).astype("float32")


def _train(model, epochs=2):
    a, b = _views()
    history = model.fit(a, b, batch_size=8, epochs=epochs, shuffle=False, verbose=0).history
    return [np.asarray(v) for v in model.weights], history


def test_steps_per_execution_gives_the_same_weights():
    weights_1, history_1 = _train(_tiny_model(steps_per_execution=1))
    weights_3, history_3 = _train(_tiny_model(steps_per_execution=3))
    assert len(weights_1) == len(weights_3)
    for w1, w3 in zip(weights_1, weights_3):
        np.testing.assert_allclose(w3, w1, rtol=1e-5, atol=1e-6)
    reference = [np.asarray(v) for v in _tiny_model().weights]
    changed = sum(not np.allclose(w, r) for w, r in zip(weights_1, reference))
    assert changed >= len(reference) // 2  # the comparison is between trained weights
    np.testing.assert_allclose(history_3["loss"], history_1["loss"], rtol=1e-5)


@pytest.mark.tensorflow_only
def test_xla_compiled_step_matches_the_graph_step():
    """GPUs and TPUs compile the TF step with XLA by default (Keras' `jit_compile="auto"`):
    the step must compile and compute the same update. One step only: with a batch of 8
    the loss is so ill-conditioned (per-dimension standardisation over 8 samples) that
    reduction-order differences of 1e-7 grow to 1e-2 within two steps."""
    a, b = _views(8)
    results = []
    for jit_compile in (False, True):
        model = _tiny_model(jit_compile=jit_compile)
        assert model.jit_compile == jit_compile
        loss = model.fit(a, b, batch_size=8, epochs=1, verbose=0).history["loss"]
        results.append((loss, [np.asarray(v) for v in model.weights]))
    (loss_graph, weights_graph), (loss_xla, weights_xla) = results
    np.testing.assert_allclose(loss_xla, loss_graph, rtol=1e-5)
    for wg, wx in zip(weights_graph, weights_xla):
        np.testing.assert_allclose(wx, wg, rtol=1e-5, atol=1e-6)


# --- the harness end to end (subprocesses; their own backend) ---------------------------


def _run_harness(tmp_path, *args):
    path = tmp_path / "bench.json"
    env = {**os.environ}
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--smoke", "--json", str(path), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    with open(path) as f:
        return json.load(f), proc.stdout


def _check_results(results, measures, backend):
    assert [r["measure"] for r in results] == measures
    for r in results:
        assert r["backend"] == backend
        assert 0 < r["s_per_step_min"] <= r["s_per_step"] <= r["s_per_step_max"] < 60
        assert r["pairs_per_s"] == pytest.approx(8 / r["s_per_step"])
        assert r["peak_rss_mib"] > 50 and len(r["load1"]) == 2 and min(r["load1"]) >= 0
        assert len(r["blocks"]) == 2 and r["warmup_s"] > 0
        if r["measure"] != "pipeline":
            assert (
                r["flops_per_s"] == pytest.approx(r["step_flops"] / r["s_per_step"]) and r["matmul_share"] > 0
            )


@pytest.mark.slow
@pytest.mark.tensorflow_only  # a subprocess with its own backend: once is enough
def test_smoke_run_tensorflow(tmp_path):
    report, stdout = _run_harness(tmp_path, "--backend", "tensorflow")
    _check_results(report["results"], DEFAULT_MEASURES, "tensorflow")
    assert "| backend | measure" in stdout and "tensorflow:fit_vs_bare" in stdout
    assert set(report["overhead_vs_bare"]) == {"tensorflow:fit_vs_bare", "tensorflow:step_vs_bare"}
    assert report["versions"]["tensorflow"]["tensorflow"]


@pytest.mark.slow
@pytest.mark.tensorflow_only  # a subprocess with its own backend: once is enough
def test_smoke_run_jax_without_tensorflow(tmp_path):
    """The JAX measurement runs with `import tensorflow` made to fail (as when it is not
    installed); the TF-only pipeline measurement is skipped, not attempted."""
    pytest.importorskip("jax")
    report, _ = _run_harness(tmp_path, "--backend", "jax", "--block-tensorflow", "--measure", "fit,pipeline")
    _check_results(report["results"], ["fit"], "jax")
    assert report["versions"]["jax"]["tensorflow_imported"] is False
