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


@pytest.mark.tensorflow_only  # the profiler's message class ships with TensorFlow
def test_tensorflow_xspace_reads_what_the_profiler_writes(tmp_path):
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from keras_barlow._compat import tensorflow_xspace

    xspace = xplane_pb2.XSpace()
    xspace.planes.add(name="/host:CPU").lines.add(name="tf_Compute/1").events.add(
        metadata_id=1, duration_ps=5
    )
    path = tmp_path / "host.xplane.pb"
    path.write_bytes(xspace.SerializeToString())
    parsed = tensorflow_xspace(str(path))
    assert parsed.planes[0].lines[0].events[0].duration_ps == 5
