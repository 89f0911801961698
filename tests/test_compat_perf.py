"""The performance section of keras_barlow._compat: fails when a TensorFlow upgrade moves
or removes the private oneDNN query."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
@pytest.mark.parametrize("setting, expected", [("0", "False"), ("1", "True")])
def test_tensorflow_onednn_enabled_reports_the_setting_tensorflow_started_with(setting, expected):
    code = "from keras_barlow._compat import tensorflow_onednn_enabled\nprint(tensorflow_onednn_enabled())"
    env = {**os.environ, "PYTHONPATH": REPO, "TF_ENABLE_ONEDNN_OPTS": setting, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.split()[-1] == expected


@pytest.mark.slow
@pytest.mark.tensorflow_only  # TensorFlow in a fresh process: once is enough
def test_tensorflow_runtime_started_turns_true_at_the_first_op():
    code = (
        "import keras\nfrom keras_barlow._compat import tensorflow_runtime_started\n"
        "import tensorflow as tf\nbefore = tensorflow_runtime_started()\n"
        "float(tf.constant(1.0) + 1.0)\nprint(before, tensorflow_runtime_started())"
    )
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.split()[-2:] == ["False", "True"]
