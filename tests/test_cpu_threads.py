"""keras_barlow._cpu_threads: every branch with an injected environment, CPU count and
TensorFlow state, and, in fresh interpreters, that TensorFlow sizes its pool from it."""

import os
import subprocess
import sys

import pytest

from keras_barlow import _cpu_threads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOT_STARTED = lambda: (False, False)  # noqa: E731


def _never_called():
    raise AssertionError("TensorFlow must not be asked in this branch")


@pytest.mark.parametrize(
    "environ",
    [{"TF_NUM_INTRAOP_THREADS": "2"}, {"TF_NUM_INTRAOP_THREADS": "0"}, {"TF_NUM_INTEROP_THREADS": "4"}],
)
def test_explicit_environment_is_respected(environ):
    before = dict(environ)
    result = _cpu_threads.limit_intra_op_threads(environ, cpu_count=2, tensorflow_state=_never_called)
    assert result == "explicit" and environ == before


@pytest.mark.parametrize("cpus", [1, 3, 4, 16])
def test_other_cpu_counts_keep_tensorflows_default(cpus):
    environ = {}
    result = _cpu_threads.limit_intra_op_threads(environ, cpu_count=cpus, tensorflow_state=_never_called)
    assert result == "unchanged" and environ == {}


def test_two_cpus_get_one_intra_op_thread():
    environ = {"OTHER": "x"}
    assert (
        _cpu_threads.limit_intra_op_threads(environ, cpu_count=2, tensorflow_state=NOT_STARTED) == "limited"
    )
    assert environ == {"OTHER": "x", "TF_NUM_INTRAOP_THREADS": "1"}


@pytest.mark.parametrize(
    "state, expected", [((False, True), "explicit"), ((True, True), "explicit"), ((True, False), "too late")]
)
def test_threads_configured_in_tensorflow_or_runtime_started(state, expected):
    environ = {}
    result = _cpu_threads.limit_intra_op_threads(environ, cpu_count=2, tensorflow_state=lambda: state)
    assert result == expected and environ == {}


def test_schedulable_cpu_count_follows_the_affinity_mask():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no os.sched_getaffinity on this platform: os.cpu_count() is used")
    assert _cpu_threads.schedulable_cpu_count() == len(os.sched_getaffinity(0))


def _fresh_python(code, **env):
    """`code` in a fresh interpreter pinned to 2 CPUs, without the thread variables."""
    full_env = {
        k: v for k, v in os.environ.items() if k not in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
    }
    full_env.update(PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", **env)
    pin = "import os\nos.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])\n"
    proc = subprocess.run(
        [sys.executable, "-c", pin + code], env=full_env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout.split()


THREADS_AFTER_ONE_OP = (
    "import tensorflow as tf\nfloat(tf.reduce_sum(tf.ones([4, 4]) @ tf.ones([4, 4])))\n"
    "print(os.environ.get('TF_NUM_INTRAOP_THREADS'), len(os.listdir('/proc/self/task')))\n"
)


@pytest.mark.slow
@pytest.mark.tensorflow_only  # TensorFlow in fresh processes: once is enough
def test_real_tensorflow_sizes_its_pool_from_the_variable():
    """On 2 CPUs `import keras_barlow` (after `import keras`, before any op) gives TensorFlow
    the pool of an explicit `TF_NUM_INTRAOP_THREADS=1`: one thread fewer than with 2."""
    if (
        not hasattr(os, "sched_setaffinity")
        or len(os.sched_getaffinity(0)) < 2
        or not os.path.isdir("/proc/self/task")
    ):
        pytest.skip("needs Linux with at least 2 CPUs (affinity mask and /proc/self/task)")
    automatic = _fresh_python("import keras, keras_barlow\n" + THREADS_AFTER_ONE_OP)
    one = _fresh_python(THREADS_AFTER_ONE_OP, TF_NUM_INTRAOP_THREADS="1")
    two = _fresh_python(THREADS_AFTER_ONE_OP, TF_NUM_INTRAOP_THREADS="2")
    assert automatic[0] == "1"
    assert int(automatic[1]) == int(one[1]) == int(two[1]) - 1
    started = _fresh_python(
        "import tensorflow as tf\nfloat(tf.constant(1.0))\nimport keras_barlow\n"
        "print(os.environ.get('TF_NUM_INTRAOP_THREADS'), keras_barlow._cpu_threads.limit_intra_op_threads())"
    )
    assert started == ["None", "too", "late"]
