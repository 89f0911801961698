"""Turns TensorFlow's oneDNN CPU kernels on where TensorFlow leaves them off.

TensorFlow 2.21 on Linux x86 enables its oneDNN kernels by default only on CPUs with
neural-network instructions (AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX; TensorFlow's
`DefaultOneDnnPolicy` in `tensorflow/core/util/port.cc`). Elsewhere — e.g. an AMD EPYC with
AVX2/FMA only — the fallback `Conv2DBackpropInput` kernel is pathologically slow for many
channels at small spatial sizes (the documentation's Performance page gives the figures).

TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it is imported. So this module must
run before anything imports TensorFlow (and before `keras`, which imports it on the
TensorFlow backend); it imports neither itself. `keras_barlow/__init__.py` calls
`enable_onednn()` first thing. With oneDNN on, TensorFlow prints that results may differ
slightly through floating-point round-off (a different summation order); the package's
exactness tests pass either way.
"""

import os
import sys
import warnings

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"

# CPU flags (as /proc/cpuinfo spells them) with which TF 2.21 turns oneDNN on by itself.
TENSORFLOW_ONEDNN_DEFAULT_FLAGS = frozenset(
    {"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"}
)

SLOW_WITHOUT_ONEDNN = (
    "ResNet-18 forward+backward on 256 images of 32 px took 8.7 s instead of 1.09 s on 2 AMD EPYC "
    "(AVX2) cores with TF 2.21"
)

_warned = False


def read_cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags, from the first `flags` line of `/proc/cpuinfo`.

    Args:
        path: the cpuinfo file to read.

    Returns:
        A frozenset of lower-case flag names, or `None` where the file is missing or has no
        `flags` line (not Linux, or not x86).
    """
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.lower().split())
    except OSError:
        return None
    return None


def tensorflow_enables_onednn_by_default(cpu_flags):
    """Whether TF 2.21 on Linux x86 turns oneDNN on by itself on a CPU with `cpu_flags`.

    Args:
        cpu_flags: a set of `/proc/cpuinfo` flag names.

    Returns:
        bool.
    """
    return bool(TENSORFLOW_ONEDNN_DEFAULT_FLAGS & set(cpu_flags))


def enable_onednn(environ=None, imported_modules=None, cpu_flags=None, onednn_active=None):
    """Sets `TF_ENABLE_ONEDNN_OPTS=1` unless the user chose, or TensorFlow already started.

    - `TF_ENABLE_ONEDNN_OPTS` already set (to anything, `0` included): left as it is.
    - TensorFlow not imported yet: sets it to `1` (harmless where TF would enable oneDNN
      anyway).
    - TensorFlow imported first with oneDNN off on an x86 CPU where TF leaves it off by
      default: warns once, with the measured cost and the fix.

    Args:
        environ: the environment to read and update (default `os.environ`).
        imported_modules: the imported modules (default `sys.modules`).
        cpu_flags: the CPU's flags (default: read from `/proc/cpuinfo`).
        onednn_active: callable telling whether the running TensorFlow uses oneDNN
            (default: asks TensorFlow).

    Returns:
        What was done: `"explicit"`, `"enabled"`, `"warned"` or `"unchanged"`.
    """
    global _warned
    environ = os.environ if environ is None else environ
    imported_modules = sys.modules if imported_modules is None else imported_modules
    if ONEDNN_ENV in environ:
        return "explicit"
    if "tensorflow" not in imported_modules:
        environ[ONEDNN_ENV] = "1"
        return "enabled"
    cpu_flags = read_cpu_flags() if cpu_flags is None else cpu_flags
    if cpu_flags is None or "avx2" not in cpu_flags or tensorflow_enables_onednn_by_default(cpu_flags):
        return "unchanged"
    if onednn_active is None:
        from keras_barlow._compat import tensorflow_onednn_enabled as onednn_active
    if onednn_active() or _warned:
        return "unchanged"
    _warned = True
    warnings.warn(
        "TensorFlow was imported before keras_barlow, with its oneDNN kernels off: this CPU has "
        "none of AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX, so TensorFlow leaves them off by "
        f"default, and convolution gradients run several times slower ({SLOW_WITHOUT_ONEDNN}). "
        "Fix: `import keras_barlow` before keras/tensorflow, or set TF_ENABLE_ONEDNN_OPTS=1 in the "
        "environment before starting Python. Set TF_ENABLE_ONEDNN_OPTS=0 to keep them off without "
        "this warning.",
        RuntimeWarning,
        stacklevel=2,
    )
    return "warned"
