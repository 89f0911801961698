"""One intra-op thread per TensorFlow op on 2-CPU machines (Colab's runtimes, small VMs).

A Barlow Twins step has two independent branches, one per view, and TensorFlow runs them
at the same time on its inter-op threads (2 on 2 CPUs). With its default of 2 intra-op
threads as well, each of the two concurrent convolutions is split again over both CPUs:
4 busy threads on 2 CPUs, and the many small ops of ResNet's last stages (2×2 and 1×1
maps) pay for the splitting. With 1 intra-op thread each branch keeps one CPU.

Measured on 2 AMD EPYC (Zen 4) cores, TF 2.21 with oneDNN, ResNet-18 ImageNet stem, 32 px,
batch 128, projector 2048³, SGD, `fit`: two warm processes timed in turns, 10 blocks of 3
steps each, 1 intra-op thread was faster in every block (median 1.09×, 1.04–1.19×). The
compute-bound configurations did not change (ResNet-18 small-image stem: 4.62 vs 4.62–4.88
s/step; ResNet-50 224 px batch 16: 5.47–5.66 vs 5.66–5.67 s/step), nor did the `tf.data`
augmentation pipeline measurably. On more than 2 CPUs TensorFlow's own default is kept:
not measured.

TensorFlow sizes its intra-op pool from `TF_NUM_INTRAOP_THREADS` when its runtime starts,
i.e. at the first op, not at import: `keras_barlow/__init__.py` calls
`limit_intra_op_threads()` before importing Keras, and it still takes effect when Keras,
KerasHub or TensorFlow were imported first, as long as no TensorFlow op has run. Set
`TF_NUM_INTRAOP_THREADS` (or `TF_NUM_INTEROP_THREADS`) yourself, or call
`tf.config.threading.set_intra_op_parallelism_threads`, and it is left alone; `0` gives
TensorFlow's default. Imports neither TensorFlow nor Keras.
"""

import os
import sys

INTRA_OP_ENV = "TF_NUM_INTRAOP_THREADS"
INTER_OP_ENV = "TF_NUM_INTEROP_THREADS"
# The only CPU count it was measured on; elsewhere TensorFlow's default stays.
LIMITED_CPU_COUNT = 2


def schedulable_cpu_count():
    """CPUs this process may run on (its affinity mask, e.g. under `taskset` or a cgroup
    cpuset), as TensorFlow counts them; `os.cpu_count()` where the mask is unavailable."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _tensorflow_state():
    """`(runtime_started, threads_configured)` of an imported TensorFlow, else `(False, False)`."""
    if "tensorflow" not in sys.modules:
        return False, False
    import tensorflow as tf

    from keras_barlow._compat import tensorflow_runtime_started

    threading = tf.config.threading
    configured = bool(
        threading.get_intra_op_parallelism_threads() or threading.get_inter_op_parallelism_threads()
    )
    return tensorflow_runtime_started(), configured


def limit_intra_op_threads(environ=None, cpu_count=None, tensorflow_state=None):
    """Sets `TF_NUM_INTRAOP_THREADS=1` on a 2-CPU machine unless the user chose, or it is too late.

    Args:
        environ: the environment to read and update (default `os.environ`).
        cpu_count: schedulable CPUs (default `schedulable_cpu_count()`).
        tensorflow_state: callable returning `(runtime_started, threads_configured)` of
            TensorFlow (default: asks an imported TensorFlow; never imports it).

    Returns:
        What was done: `"explicit"` (the user set the threads), `"limited"`, `"too late"`
        (TensorFlow's runtime already started: its pools are sized) or `"unchanged"`
        (not 2 CPUs).
    """
    environ = os.environ if environ is None else environ
    if INTRA_OP_ENV in environ or INTER_OP_ENV in environ:
        return "explicit"
    cpu_count = schedulable_cpu_count() if cpu_count is None else cpu_count
    if cpu_count != LIMITED_CPU_COUNT:
        return "unchanged"
    runtime_started, configured = (tensorflow_state or _tensorflow_state)()
    if configured:
        return "explicit"
    if runtime_started:
        return "too late"
    environ[INTRA_OP_ENV] = "1"
    return "limited"
