"""recipes/benchmark.py (statistics, CLI, smoke runs on both backends) and the training-step
properties it relies on: `steps_per_execution` and `jit_compile` leave the result unchanged."""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_barlow import BarlowTwins

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "recipes", "benchmark.py")


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


benchmark = _load_benchmark()


# --- statistics --------------------------------------------------------------------------


def test_summarize_matches_numpy():
    rng = np.random.default_rng(0)
    warmup = list(rng.uniform(1.0, 5.0, size=2))
    blocks = [list(rng.uniform(0.1, 1.0, size=4)) for _ in range(3)]  # 4 calls of 2 steps each
    stats = benchmark.summarize(warmup, blocks, steps=8, batch_size=64)
    per_step = np.asarray(blocks).sum(axis=1) / 8
    np.testing.assert_allclose(stats["blocks"], per_step, rtol=1e-12)
    np.testing.assert_allclose(stats["s_per_step"], np.median(per_step), rtol=1e-12)
    np.testing.assert_allclose(stats["pairs_per_s"], 64 / np.median(per_step), rtol=1e-12)
    assert stats["s_per_step_min"] == pytest.approx(per_step.min())
    assert stats["s_per_step_max"] == pytest.approx(per_step.max())
    assert stats["warmup_s"] == pytest.approx(sum(warmup))
    # An even number of blocks: the median is the mean of the middle two.
    stats = benchmark.summarize([], [[4.0], [1.0], [3.0], [2.0]], steps=1, batch_size=1)
    assert stats["s_per_step"] == 2.5


def test_summarize_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty timed block"):
        benchmark.summarize([1.0], [], steps=3, batch_size=8)
    with pytest.raises(ValueError, match="non-empty timed block"):
        benchmark.summarize([1.0], [[1.0], []], steps=3, batch_size=8)
    with pytest.raises(ValueError, match="positive"):
        benchmark.summarize([1.0], [[1.0]], steps=0, batch_size=8)


def test_overhead_is_relative_to_the_bare_step_of_the_same_backend():
    results = [
        {"backend": "tensorflow", "measure": "bare", "s_per_step": 2.0},
        {"backend": "tensorflow", "measure": "fit", "s_per_step": 2.1},
        {"backend": "tensorflow", "measure": "pipeline", "s_per_step": 0.5},
        {"backend": "jax", "measure": "fit", "s_per_step": 9.0},
    ]
    assert benchmark.overhead(results) == pytest.approx({"tensorflow:fit_vs_bare": 0.05})


def test_cli_validation():
    spec = benchmark.build_spec(benchmark.parse_args(["--preset", "resnet18-32", "--batch-size", "64", "--projector", "512,256"]))
    assert (spec["batch_size"], spec["projector"], spec["depth"], spec["small_images"]) == (64, [512, 256], 18, True)
    assert spec["measures"] == list(benchmark.DEFAULT_MEASURES)
    for argv, message in [
        (["--measure", "fit,nonsense"], "unknown --measure"),
        (["--batch-size", "1"], "at least 2"),
        (["--steps", "3", "--steps-per-execution", "2"], "multiple of --steps-per-execution"),
        (["--projector", "512,x"], "comma list of integers"),
        (["--warmup", "0"], "--warmup"),
    ]:
        with pytest.raises(SystemExit, match=message):
            benchmark.build_spec(benchmark.parse_args(argv))


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
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--smoke", "--json", str(path), *args],
        env=env, capture_output=True, text=True, timeout=600,
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


@pytest.mark.slow
@pytest.mark.tensorflow_only  # a subprocess with its own backend: once is enough
def test_smoke_run_tensorflow(tmp_path):
    report, stdout = _run_harness(tmp_path, "--backend", "tensorflow")
    _check_results(report["results"], list(benchmark.DEFAULT_MEASURES), "tensorflow")
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
