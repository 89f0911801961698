"""Choosing the hardware a Barlow Twins run trains on, for the active Keras backend.

- TensorFlow backend: `get_strategy(...)` returns a `tf.distribute` strategy.
- JAX backend: `jax_distribution(...)` returns a `keras.distribution.DataParallel` over the
  TPU cores, GPUs or CPU devices (optionally across processes, `initialize_jax_processes`).
  JAX compiles one program over the global batch, so `C` and every batch-norm statistic
  are global by construction (`keras_barlow/trainers/jax.py`).
"""

import contextlib
import dataclasses
import json
import logging
import os

import keras

# ======================================================================================
# JAX backend: keras.distribution (issue #12). TensorFlow is not imported in this block.
# ======================================================================================

_jax_log = logging.getLogger(__name__)

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
    >>> select_jax_devices("auto")
    ('cpu', ['cpu:0'])
    """
    if kind not in JAX_DEVICE_KINDS:
        raise ValueError(f"kind must be one of {JAX_DEVICE_KINDS}, got {kind!r}")
    if num_devices is not None and (isinstance(num_devices, bool) or int(num_devices) != num_devices or num_devices < 1):
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


def _jax_processes_requested(multiprocess, job_addresses, num_processes, environ):
    """Whether `jax_distribution` must join a multi-process job first."""
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


def initialize_jax_processes(job_addresses=None, num_processes=None, process_id=None, *, cpu_collectives="gloo"):
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
    >>> initialize_jax_processes("10.0.0.1:1234", num_processes=2, process_id=0)
    (0, 2)
    """
    _require_jax_backend("initialize_jax_processes")
    import jax

    if jax.distributed.is_initialized():
        _jax_log.info("JAX processes already initialised: process %d of %d", jax.process_index(), jax.process_count())
        return jax.process_index(), jax.process_count()
    if cpu_collectives is not None:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    keras.distribution.initialize(job_addresses=job_addresses, num_processes=num_processes, process_id=process_id)
    _jax_log.info(
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
        _jax_log.warning(
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
    >>> os.environ["KERAS_BACKEND"] = "jax"  # before importing keras
    >>> distribution = keras_barlow.jax_distribution()  # e.g. 8 TPU cores on a Colab TPU VM
    >>> model = keras_barlow.BarlowTwins(encoder)  # built after: variables are replicated
    """
    _require_jax_backend("jax_distribution")
    joined = _jax_processes_requested(multiprocess, job_addresses, num_processes, os.environ)
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
    _jax_log.info(
        "JAX DataParallel over %d %s device(s) [%s] in %d process(es); each device gets 1/%d of "
        "the global batch",
        len(devices),
        device_type,
        shown,
        processes,
        len(devices),
    )
    if kind == "auto" and device_type == "cpu":
        _jax_log.warning(
            "no TPU or GPU found: JAX trains on %d CPU device(s). On CPU the TensorFlow backend "
            "is several times faster (README, Backends).",
            len(devices),
        )
    if set_global:
        keras.distribution.set_distribution(distribution)
    return distribution


# ============================ end of the JAX block =====================================


# ======================================================================================
# TensorFlow backend: tf.distribute (issue #13), and `setup_hardware`, the one entry point
# of the recipes on both backends. TensorFlow is imported inside the functions only.
# ======================================================================================

_tf_log = logging.getLogger(__name__)

HARDWARE_CHOICES = ("auto", "tpu", "gpu", "multiworker", "cpu")
_TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}'
)
# One strategy object per process and choice: two MirroredStrategy objects in one process
# made their collectives clash ("Shape mismatch in the collective instance").
_STRATEGIES = {}


def _check_choice(hardware):
    if hardware not in HARDWARE_CHOICES:
        raise ValueError(f"hardware must be one of {HARDWARE_CHOICES}, got {hardware!r}")


def cluster_from_tf_config(environ=None):
    """The cluster `TF_CONFIG` names, when it has more than one task.

    Args:
        environ: mapping to read `TF_CONFIG` from (default `os.environ`).

    Returns:
        The `cluster` dict (e.g. `{"worker": ["host0:port", "host1:port"]}`), or `None`
        when `TF_CONFIG` is unset or names a single task.

    Example:
    >>> cluster_from_tf_config({"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:2"]}}'})
    {'worker': ['a:1', 'b:2']}
    """
    environ = os.environ if environ is None else environ
    raw = environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}); expected e.g. {_TF_CONFIG_EXAMPLE}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict):
        raise ValueError(f"TF_CONFIG has no 'cluster' dict; expected e.g. {_TF_CONFIG_EXAMPLE}")
    tasks = sum(len(addresses) for job, addresses in cluster.items() if job in ("chief", "worker"))
    return cluster if tasks > 1 else None


def tpu_address_from_environment(environ=None, path_exists=os.path.exists):
    """Where a TPU would be, judged from the environment only (no network probe).

    `COLAB_TPU_ADDR` (Colab TPU nodes) → `grpc://…`; `TPU_NAME` (Cloud TPU) → that
    name; a TPU VM (`/dev/accel0` or `/dev/vfio/0`, e.g. Colab's TPU VM runtimes) →
    `"local"`; else `None`.
    """
    environ = os.environ if environ is None else environ
    if environ.get("COLAB_TPU_ADDR"):
        return "grpc://" + environ["COLAB_TPU_ADDR"]
    if environ.get("TPU_NAME"):
        return environ["TPU_NAME"]
    if path_exists("/dev/accel0") or path_exists("/dev/vfio/0"):
        return "local"
    return None


def choose_tf_hardware(hardware="auto", *, tpu_reachable, num_gpus, cluster):
    """The decision of `get_strategy`, without side effects (tested with fakes).

    Order for `"auto"`: a reachable TPU; else several workers when `TF_CONFIG` names a
    cluster (each worker then uses all its local GPUs); else all local GPUs; else the
    default strategy. The cluster is checked before the GPUs so that machines of a
    multi-worker job do not each train alone.

    Args:
        hardware: one of `HARDWARE_CHOICES`.
        tpu_reachable: `() -> bool`, called only when a TPU is considered.
        num_gpus: number of visible GPUs.
        cluster: `cluster_from_tf_config()`.

    Returns:
        `"tpu"`, `"multiworker"`, `"gpu"`, `"cpu"` or `"default"`.
    """
    _check_choice(hardware)
    if hardware != "auto":
        if hardware == "gpu" and num_gpus == 0:
            raise ValueError("hardware='gpu' but TensorFlow sees no GPU; use hardware='auto' or 'cpu'")
        if hardware == "multiworker" and cluster is None:
            raise ValueError(
                "hardware='multiworker' needs TF_CONFIG naming at least two workers, set in "
                f"every worker's environment, e.g. TF_CONFIG='{_TF_CONFIG_EXAMPLE}'"
            )
        return hardware
    if tpu_reachable():
        return "tpu"
    if cluster is not None:
        return "multiworker"
    if num_gpus > 0:
        return "gpu"
    return "default"


def _tpu_resolver(tpu_address):
    import tensorflow as tf

    return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)


def _tpu_strategy(resolver):
    import tensorflow as tf

    if resolver.master() and not resolver.master().startswith("local"):  # a TPU node: remote
        tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def get_strategy(hardware="auto", *, tpu_address=None):
    """A `tf.distribute` strategy for the chosen hardware (TensorFlow backend).

    - `"auto"`: a TPU when one is reachable (`tpu_address`, or the environment:
      Colab/Cloud TPU, see `tpu_address_from_environment`), else
      `MultiWorkerMirroredStrategy` when `TF_CONFIG` names a cluster, else
      `MirroredStrategy` over all GPUs, else the default strategy.
    - `"tpu"`: `TPUStrategy` (connects and initialises the TPU system).
    - `"gpu"`: `MirroredStrategy` over all visible GPUs.
    - `"multiworker"`: `MultiWorkerMirroredStrategy` (needs `TF_CONFIG` in every worker).
    - `"cpu"`: `OneDeviceStrategy("/cpu:0")`, even where GPUs exist.

    Every choice is exact for `BarlowTwins` (global `C`, synchronised batch norm). The
    choice is logged. One strategy object is kept per process and choice (a second
    `MirroredStrategy` in one process makes collectives clash): calling again returns it.
    Build the model and optimizer inside `strategy.scope()`, and batch the dataset with
    the *global* batch size.

    Args:
        hardware: one of `HARDWARE_CHOICES`.
        tpu_address: TPU name or `grpc://host:port` (`"local"` on a TPU VM); `None`
            looks at the environment.

    Returns:
        A `tf.distribute.Strategy`.

    Example:
    >>> strategy = keras_barlow.get_strategy("auto")
    >>> with strategy.scope():
    ...     model = keras_barlow.BarlowTwins(encoder)
    ...     model.compile(optimizer=keras_barlow.LARS(0.2))
    """
    _check_choice(hardware)
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"get_strategy configures tf.distribute, but Keras runs on {keras.backend.backend()!r}; "
            "use setup_hardware() (both backends) or jax_distribution() on JAX"
        )
    key = (hardware, tpu_address)
    if key in _STRATEGIES:
        return _STRATEGIES[key]
    import tensorflow as tf

    resolver = {}

    def tpu_reachable():
        address = tpu_address or tpu_address_from_environment()
        if address is None and hardware == "auto":
            return False
        try:
            resolver["tpu"] = _tpu_resolver(address)
            return True
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            if hardware == "tpu":
                raise ValueError(
                    f"hardware='tpu' but no TPU is reachable at {address or '(auto-detected)'}: {error}. "
                    "On Colab choose a TPU runtime; on Colab TPU VMs TensorFlow-TPU is not "
                    "preinstalled, so run with KERAS_BACKEND=jax (README, Scaling out)."
                ) from error
            _tf_log.info("no TPU reachable at %s (%s); looking for GPUs", address, error)
            return False

    num_gpus = len(tf.config.list_physical_devices("GPU"))
    cluster = cluster_from_tf_config()
    if hardware == "tpu":
        tpu_reachable()
        kind = "tpu"
    else:
        kind = choose_tf_hardware(hardware, tpu_reachable=tpu_reachable, num_gpus=num_gpus, cluster=cluster)
    if kind == "tpu":
        strategy = _tpu_strategy(resolver["tpu"])
        _tf_log.info("TPUStrategy on %s: %d TPU cores", resolver["tpu"].master() or "local", strategy.num_replicas_in_sync)
    elif kind == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        workers = sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))
        _tf_log.info(
            "MultiWorkerMirroredStrategy: %d workers, %d replicas in sync (this worker: %s %s, %d local device(s))",
            workers,
            strategy.num_replicas_in_sync,
            strategy.cluster_resolver.task_type,
            strategy.cluster_resolver.task_id,
            len(strategy.extended.worker_devices),
        )
    elif kind == "gpu":
        strategy = tf.distribute.MirroredStrategy()
        _tf_log.info("MirroredStrategy over %d GPU(s): %s", strategy.num_replicas_in_sync, strategy.extended.worker_devices)
    elif kind == "cpu":
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        _tf_log.info("OneDeviceStrategy on /cpu:0")
    else:
        strategy = tf.distribute.get_strategy()
        _tf_log.info("no TPU, cluster or GPU found: the default strategy (one device, %s)", "CPU")
    _STRATEGIES[key] = strategy
    return strategy


@dataclasses.dataclass
class Hardware:
    """What `setup_hardware` chose, on either backend.

    Attributes:
        backend: `"tensorflow"` or `"jax"`.
        kind: `"tpu"`, `"gpu"`, `"multiworker"`, `"cpu"` or `"default"`.
        num_replicas: devices that share the global batch.
        num_workers: processes (machines) in the job.
        worker_index: this process's index; 0 is the chief, which writes exports.
        strategy: the `tf.distribute.Strategy` (TensorFlow), else `None`.
        distribution: the `keras.distribution.DataParallel` (JAX), else `None`.
    """

    backend: str
    kind: str
    num_replicas: int
    num_workers: int = 1
    worker_index: int = 0
    strategy: object = None
    distribution: object = None

    @property
    def is_chief(self):
        return self.worker_index == 0

    def scope(self):
        """Context in which to build the model and the optimizer."""
        if self.strategy is not None:
            return self.strategy.scope()
        if self.distribution is not None:
            return self.distribution.scope()
        return contextlib.nullcontext()


def _tf_worker_index(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 0, 1
    cluster = resolver.cluster_spec().as_dict()
    chiefs = len(cluster.get("chief", []))
    workers = chiefs + len(cluster.get("worker", []))
    index = resolver.task_id if resolver.task_type == "chief" else chiefs + resolver.task_id
    return index, max(workers, 1)


def setup_hardware(hardware="auto", *, tpu_address=None, **jax_options):
    """Chooses the hardware for the active Keras backend: the recipes' one entry point.

    TensorFlow: `get_strategy(hardware, tpu_address=...)`. JAX: `jax_distribution`
    (`keras.distribution.DataParallel` over the TPU cores / GPUs / CPU devices;
    `"multiworker"` first joins the processes with `keras.distribution.initialize`,
    configured by `KERAS_DISTRIBUTION_*` variables or `jax_options`). Logs the choice.

    Args:
        hardware: one of `HARDWARE_CHOICES`.
        tpu_address: TensorFlow only (JAX finds its TPU cores itself).
        **jax_options: more `jax_distribution` arguments (`num_devices`, `job_addresses`,
            `num_processes`, `process_id`).

    Returns:
        A `Hardware`; build the model inside `hardware.scope()`.

    Example:
    >>> hardware = keras_barlow.setup_hardware("auto")
    >>> with hardware.scope():
    ...     model = keras_barlow.BarlowTwins(encoder)
    >>> global_batch = per_replica_batch * hardware.num_replicas
    """
    _check_choice(hardware)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        if jax_options:
            raise ValueError(f"{sorted(jax_options)} are JAX options; Keras runs on TensorFlow")
        strategy = get_strategy(hardware, tpu_address=tpu_address)
        kind = _strategy_kind(strategy)
        index, workers = _tf_worker_index(strategy)
        return Hardware(backend, kind, strategy.num_replicas_in_sync, workers, index, strategy=strategy)
    if backend == "jax":
        if tpu_address is not None:
            _tf_log.warning("tpu_address is ignored on JAX: JAX finds the TPU cores of this host itself")
        if hardware == "multiworker":
            jax_options.setdefault("multiprocess", True)
            kind_arg = "auto"
        else:
            kind_arg = "auto" if hardware == "auto" else hardware
        distribution = jax_distribution(kind_arg, **jax_options)
        import jax

        devices = distribution.device_mesh.devices.flatten().tolist()
        platform = str(getattr(devices[0], "platform", devices[0])).split(":")[0]  # "tpu:0" → "tpu"
        kind = "multiworker" if jax.process_count() > 1 else platform
        return Hardware(
            backend, kind, len(devices), jax.process_count(), jax.process_index(), distribution=distribution
        )
    raise RuntimeError(f"keras_barlow trains on the 'tensorflow' and 'jax' backends, not {backend!r}")


def _strategy_kind(strategy):
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multiworker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "gpu" if any("GPU" in d.upper() for d in strategy.extended.worker_devices) else "cpu"
    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        return "cpu"
    return "default"


# ========================== end of the TensorFlow block ================================
