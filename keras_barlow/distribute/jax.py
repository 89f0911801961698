"""Data parallelism on the JAX backend, via `keras.distribution` (TensorFlow is not imported).

`jax_distribution(...)` returns a `keras.distribution.DataParallel` over the TPU cores,
GPUs or CPU devices (optionally across processes, `initialize_jax_processes`). JAX
compiles one program over the global batch, so `C` and every batch-norm statistic are
global by construction (`keras_barlow/trainers/jax.py`).
"""

import logging
import os

import keras

_log = logging.getLogger(__name__)

JAX_DEVICE_KINDS = ("auto", "tpu", "gpu", "cpu")
_JAX_AUTO_ORDER = ("tpu", "gpu", "cpu")  # what `kind="auto"` prefers, first to last
JAX_PROCESS_ENV = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)


def _require_jax_backend(function):
    backend = keras.backend.backend()
    if backend != "jax":
        raise RuntimeError(
            f"{function} configures the JAX backend, but Keras runs on {backend!r}. Set "
            "KERAS_BACKEND=jax before importing keras, or use get_strategy() on TensorFlow."
        )


def _available_devices(device_type, list_devices):
    try:
        return list(list_devices(device_type))
    except RuntimeError:  # JAX: "Unknown backend" / "Backend 'tpu' failed to initialize"
        return []


def select_jax_devices(kind="auto", *, num_devices=None, list_devices=None):
    """Picks the devices a JAX data-parallel run uses.

    Args:
        kind: `"auto"` (TPU cores if any, else GPUs, else CPU devices), `"tpu"`, `"gpu"`
            or `"cpu"`.
        num_devices: use only the first `num_devices` devices (default: all of that kind;
            in a multi-process job, all devices of every process).
        list_devices: `device_type -> ["tpu:0", ...]` (default
            `keras.distribution.list_devices`, which lists the *global* devices after
            `initialize_jax_processes`); replaceable in tests.

    Returns:
        `(device_type, devices)`: e.g. `("tpu", ["tpu:0", ..., "tpu:7"])`.

    Example:

    ```python
    select_jax_devices("auto")
    # ('cpu', ['cpu:0'])
    ```
    """
    if kind not in JAX_DEVICE_KINDS:
        raise ValueError(f"kind must be one of {JAX_DEVICE_KINDS}, got {kind!r}")
    if num_devices is not None and (
        isinstance(num_devices, bool) or int(num_devices) != num_devices or num_devices < 1
    ):
        raise ValueError(f"num_devices must be a positive integer or None, got {num_devices!r}")
    list_devices = list_devices or keras.distribution.list_devices
    found = {t: _available_devices(t, list_devices) for t in _JAX_AUTO_ORDER}
    if kind == "auto":
        device_type = next((t for t in _JAX_AUTO_ORDER if found[t]), None)
        if device_type is None:
            raise RuntimeError("JAX reports no TPU, GPU or CPU devices")
    else:
        device_type = kind
        if not found[kind]:
            present = ", ".join(f"{len(v)} {t}" for t, v in found.items() if v) or "none"
            raise ValueError(
                f"kind={kind!r} but JAX sees no {kind.upper()} devices (it sees: {present}). "
                "Use kind='auto', or run on a machine with that accelerator (on Colab: "
                "Runtime → Change runtime type)."
            )
    devices = found[device_type]
    if num_devices is not None:
        if num_devices > len(devices):
            raise ValueError(
                f"num_devices={num_devices} but only {len(devices)} {device_type} devices exist: {devices}"
            )
        devices = devices[: int(num_devices)]
    return device_type, devices


def jax_processes_requested(multiprocess, job_addresses, num_processes, environ):
    """Whether `jax_distribution` must join a multi-process job first.

    Args:
        multiprocess: `"auto"`, True or False (see `jax_distribution`).
        job_addresses, num_processes: the arguments given, or `None` to read them from
            `environ` (`KERAS_DISTRIBUTION_*`).
        environ: mapping of environment variables.

    Returns:
        bool.
    """
    if multiprocess not in ("auto", True, False):
        raise ValueError(f"multiprocess must be 'auto', True or False, got {multiprocess!r}")
    if multiprocess != "auto":
        return multiprocess
    if num_processes is None:
        num_processes = environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
    if job_addresses is None:
        job_addresses = environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES")
    return (num_processes is not None and int(num_processes) > 1) or (
        num_processes is None and bool(job_addresses)
    )


def initialize_jax_processes(
    job_addresses=None, num_processes=None, process_id=None, *, cpu_collectives="gloo"
):
    """Joins a multi-process JAX job with `keras.distribution.initialize` (once).

    Call it in every process before any JAX computation (before building a model).
    Arguments left `None` come from `KERAS_DISTRIBUTION_JOB_ADDRESSES`,
    `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`; on a Cloud
    TPU pod all three may stay unset (JAX discovers them). Afterwards
    `keras.distribution.list_devices()` lists every process's devices, and `fit` on a
    `tf.data` dataset of the *global* batch is sharded per process by Keras — do not
    shard it yourself.

    Args:
        job_addresses: `"host:port"` of process 0 (the coordinator), or all processes'
            addresses comma-separated.
        num_processes: number of processes.
        process_id: this process's index, `0 … num_processes − 1`.
        cpu_collectives: collectives implementation for CPU devices (`"gloo"`), needed
            when the processes compute on CPUs; `None` leaves JAX's setting.

    Returns:
        `(process_id, num_processes)` as JAX reports them after joining.

    Example:

    ```python
    initialize_jax_processes("10.0.0.1:1234", num_processes=2, process_id=0)
    # (0, 2)
    ```
    """
    _require_jax_backend("initialize_jax_processes")
    import jax

    if jax.distributed.is_initialized():
        _log.info(
            "JAX processes already initialised: process %d of %d", jax.process_index(), jax.process_count()
        )
        return jax.process_index(), jax.process_count()
    if cpu_collectives is not None:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    keras.distribution.initialize(
        job_addresses=job_addresses, num_processes=num_processes, process_id=process_id
    )
    _log.info(
        "joined a JAX job: process %d of %d (coordinator %s)",
        jax.process_index(),
        jax.process_count(),
        job_addresses or os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "auto-detected"),
    )
    return jax.process_index(), jax.process_count()


def hide_accelerators_from_tensorflow():
    """Keeps TensorFlow (used for `tf.data` only) off the GPUs / TPU that JAX trains on.

    TensorFlow otherwise reserves most of each GPU's memory when it first runs an op, and
    JAX then runs out of memory. Does nothing when TensorFlow is not installed. Call it
    before TensorFlow runs anything (`jax_distribution` does).

    Returns:
        True if TensorFlow is installed and now sees no GPU or TPU, else False.
    """
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return False
    import tensorflow as tf

    try:
        for device_type in ("GPU", "TPU"):
            tf.config.set_visible_devices([], device_type)
    except RuntimeError as error:  # TensorFlow already initialised its devices
        _log.warning(
            "could not hide the accelerators from TensorFlow (%s); it may hold GPU memory that "
            "JAX needs. Call jax_distribution() before any TensorFlow op runs.",
            error,
        )
        return False
    return True


def jax_distribution(
    kind="auto",
    *,
    num_devices=None,
    multiprocess="auto",
    job_addresses=None,
    num_processes=None,
    process_id=None,
    set_global=True,
    auto_shard_dataset=True,
    hide_from_tensorflow=True,
):
    """Data parallelism for `BarlowTwins` on the JAX backend, via `keras.distribution`.

    Joins a multi-process job first when asked (`initialize_jax_processes`), picks the
    devices (`select_jax_devices`), logs the choice and returns a
    `keras.distribution.DataParallel` over them. The batch passed to `fit` is the
    *global* batch; it must be divisible by the number of devices.

    Args:
        kind: `"auto"` (TPU, else GPUs, else CPU), `"tpu"`, `"gpu"` or `"cpu"`.
        num_devices: use only the first `num_devices` devices (single process only).
        multiprocess: `"auto"` joins a job when `num_processes` (argument or
            `KERAS_DISTRIBUTION_NUM_PROCESSES`) is above 1 or only `job_addresses` is
            given; `True` always joins (Cloud TPU pods: everything auto-detected);
            `False` never.
        job_addresses, num_processes, process_id: see `initialize_jax_processes`.
        set_global: also make it the global distribution
            (`keras.distribution.set_distribution`), before the model is built.
        auto_shard_dataset: let Keras shard a `tf.data` input per process (multi-process
            jobs need a `tf.data.Dataset` then; `False` if each process already feeds its
            own shard).
        hide_from_tensorflow: on GPUs / TPUs, keep TensorFlow (the `tf.data` input) off
            them (`hide_accelerators_from_tensorflow`).

    Returns:
        The `keras.distribution.DataParallel`.

    Example:

    ```python
    os.environ["KERAS_BACKEND"] = "jax"  # before importing keras
    distribution = keras_barlow.jax_distribution()  # e.g. 8 TPU cores on a Colab TPU VM
    model = keras_barlow.BarlowTwins(encoder)  # built after: variables are replicated
    ```
    """
    _require_jax_backend("jax_distribution")
    joined = jax_processes_requested(multiprocess, job_addresses, num_processes, os.environ)
    if joined:
        initialize_jax_processes(job_addresses, num_processes, process_id)
    import jax

    processes = jax.process_count()
    if processes > 1 and num_devices is not None:
        raise ValueError(
            f"num_devices={num_devices} cannot be combined with a {processes}-process job: "
            "every process must contribute its devices"
        )
    device_type, devices = select_jax_devices(kind, num_devices=num_devices)
    if hide_from_tensorflow and device_type != "cpu":
        hide_accelerators_from_tensorflow()
    distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=auto_shard_dataset)
    shown = ", ".join(devices) if len(devices) <= 4 else f"{devices[0]} … {devices[-1]}"
    _log.info(
        "JAX DataParallel over %d %s device(s) [%s] in %d process(es); each device gets 1/%d of "
        "the global batch",
        len(devices),
        device_type,
        shown,
        processes,
        len(devices),
    )
    if kind == "auto" and device_type == "cpu":
        _log.warning(
            "no TPU or GPU found: JAX trains on %d CPU device(s). On CPU the TensorFlow backend "
            "is several times faster (docs: 'Training at scale').",
            len(devices),
        )
    if set_global:
        keras.distribution.set_distribution(distribution)
    return distribution
