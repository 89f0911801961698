"""Hardware on the TensorFlow backend: a `tf.distribute` strategy for TPU, GPUs, workers or CPU.

TensorFlow is imported inside the functions only, so that importing this module stays
cheap on the JAX backend.
"""

import json
import logging
import os

import keras

_log = logging.getLogger(__name__)

HARDWARE_CHOICES = ("auto", "tpu", "gpu", "multiworker", "cpu")
_TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}'
)
# One strategy object per process and choice: two MirroredStrategy objects in one process
# made their collectives clash ("Shape mismatch in the collective instance").
_STRATEGIES = {}


def check_hardware_choice(hardware):
    """Raises a `ValueError` naming `HARDWARE_CHOICES` for any other `hardware`."""
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
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error}); expected e.g. {_TF_CONFIG_EXAMPLE}"
        ) from None
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
    check_hardware_choice(hardware)
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

    ```python
    strategy = keras_barlow.get_strategy("auto")
    with strategy.scope():
        model = keras_barlow.BarlowTwins(encoder)
        model.compile(optimizer=keras_barlow.LARS(0.2))
    ```
    """
    check_hardware_choice(hardware)
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
                    "preinstalled, so run with KERAS_BACKEND=jax (docs: 'Training at scale')."
                ) from error
            _log.info("no TPU reachable at %s (%s); looking for GPUs", address, error)
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
        _log.info(
            "TPUStrategy on %s: %d TPU cores",
            resolver["tpu"].master() or "local",
            strategy.num_replicas_in_sync,
        )
    elif kind == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        workers = sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))
        _log.info(
            "MultiWorkerMirroredStrategy: %d workers, %d replicas in sync "
            "(this worker: %s %s, %d local device(s))",
            workers,
            strategy.num_replicas_in_sync,
            strategy.cluster_resolver.task_type,
            strategy.cluster_resolver.task_id,
            len(strategy.extended.worker_devices),
        )
    elif kind == "gpu":
        strategy = tf.distribute.MirroredStrategy()
        _log.info(
            "MirroredStrategy over %d GPU(s): %s",
            strategy.num_replicas_in_sync,
            strategy.extended.worker_devices,
        )
    elif kind == "cpu":
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        _log.info("OneDeviceStrategy on /cpu:0")
    else:
        strategy = tf.distribute.get_strategy()
        _log.info("no TPU, cluster or GPU found: the default strategy (one device, %s)", "CPU")
    _STRATEGIES[key] = strategy
    return strategy


def worker_index(strategy):
    """`(index, count)` of this worker in a multi-worker `tf.distribute` job.

    Args:
        strategy: a `tf.distribute.Strategy`.

    Returns:
        `(worker index, number of workers)`; the chief is 0, and a single-worker strategy
        gives `(0, 1)`.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 0, 1
    cluster = resolver.cluster_spec().as_dict()
    chiefs = len(cluster.get("chief", []))
    workers = chiefs + len(cluster.get("worker", []))
    index = resolver.task_id if resolver.task_type == "chief" else chiefs + resolver.task_id
    return index, max(workers, 1)


def strategy_kind(strategy):
    """What a strategy runs on: `"tpu"`, `"multiworker"`, `"gpu"`, `"cpu"` or `"default"`."""
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
