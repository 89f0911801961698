"""benchmarking.worker: TensorFlow thread settings (`recipes/benchmark.py --tf-threads`)."""

import json
import os
import subprocess
import sys

import pytest
from helpers import REPO, run_python

SCRIPT = os.path.join(REPO, "recipes", "benchmark.py")


@pytest.mark.tensorflow_only  # TensorFlow's thread pools, in a fresh process
def test_thread_settings_take_effect_before_the_first_op():
    out = run_python(
        "import keras_barlow, tensorflow as tf\n"
        "from benchmarking.worker import set_tensorflow_threads\n"
        "set_tensorflow_threads(1, 2)\n"
        "tf.reduce_sum(tf.ones((4, 4))).numpy()\n"
        "t = tf.config.threading\n"
        "print('THREADS', t.get_inter_op_parallelism_threads(), t.get_intra_op_parallelism_threads())\n",
        env={
            "KERAS_BACKEND": "tensorflow",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONPATH": os.pathsep.join([os.path.join(REPO, "recipes"), REPO]),
        },
    )
    assert "THREADS 1 2" in out


@pytest.mark.parametrize("value", ["1", "1,x", "-1,2", "1,2,3"])
def test_tf_threads_must_be_two_counts(value):
    # argparse refuses the value before anything heavy is imported
    proc = subprocess.run([sys.executable, SCRIPT, f"--tf-threads={value}"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"expected INTER,INTRA (two integers >= 0, e.g. 1,2), got {value!r}" in proc.stderr


@pytest.mark.tensorflow_only
def test_benchmark_worker_runs_with_the_threads_asked_for(tmp_path):
    path = tmp_path / "bench.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [
        sys.executable,
        SCRIPT,
        "--smoke",
        "--measure",
        "fit",
        "--tf-threads",
        "1,2",
        "--json",
        str(path),
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(path) as f:
        report = json.load(f)
    assert report["spec"]["tf_threads"] == [1, 2]
    assert report["versions"]["tensorflow"]["tf_threads"] == [1, 2]
    assert set(report["versions"]["tensorflow"]["tf_threads_env"]) == {
        "TF_NUM_INTEROP_THREADS",
        "TF_NUM_INTRAOP_THREADS",
    }
    assert report["results"][0]["s_per_step"] > 0


def test_tensorflow_matmul_reference_is_the_faster_of_one_and_concurrent_products(monkeypatch):
    from benchmarking import flops, worker

    monkeypatch.setattr(worker, "schedulable_cpu_count", lambda: 2)
    monkeypatch.setattr(flops, "tensorflow_matmul", lambda n, products, dtype: (products, dtype))
    timed = []

    def rate(matmul, n, products):
        timed.append(matmul)
        return {1: 900e9, 2: 1300e9}[products]

    monkeypatch.setattr(flops, "matmul_flops_per_second", rate)
    assert worker.matmul_rates("tensorflow", 8, "bfloat16") == {"tensorflow": 1300e9}
    assert timed == [(1, "bfloat16"), (2, "bfloat16")]
    monkeypatch.setattr(flops, "matmul_flops_per_second", lambda m, n, products: {1: 2e12, 2: 1e12}[products])
    assert worker.matmul_rates("tensorflow", 8) == {"tensorflow": 2e12}
