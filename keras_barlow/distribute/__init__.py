"""Choosing the hardware a Barlow Twins run trains on, for the active Keras backend.

- TensorFlow backend (`keras_barlow.distribute.tensorflow`): `get_strategy(...)` returns a
  `tf.distribute` strategy.
- JAX backend (`keras_barlow.distribute.jax`): `jax_distribution(...)` returns a
  `keras.distribution.DataParallel` over the TPU cores, GPUs or CPU devices (optionally
  across processes, `initialize_jax_processes`).

`setup_hardware` is the one entry point of the recipes on both backends; it returns a
`Hardware`. Neither half imports TensorFlow or JAX until a function needs it.
"""

import contextlib
import dataclasses
import logging

import keras

from keras_barlow.distribute.jax import (
    JAX_DEVICE_KINDS,
    JAX_PROCESS_ENV,
    hide_accelerators_from_tensorflow,
    initialize_jax_processes,
    jax_distribution,
    jax_processes_requested,
    select_jax_devices,
)
from keras_barlow.distribute.tensorflow import (
    HARDWARE_CHOICES,
    check_hardware_choice,
    choose_tf_hardware,
    cluster_from_tf_config,
    get_strategy,
    strategy_kind,
    tpu_address_from_environment,
    worker_index,
)

__all__ = [
    "HARDWARE_CHOICES",
    "JAX_DEVICE_KINDS",
    "JAX_PROCESS_ENV",
    "Hardware",
    "check_hardware_choice",
    "choose_tf_hardware",
    "cluster_from_tf_config",
    "get_strategy",
    "hide_accelerators_from_tensorflow",
    "initialize_jax_processes",
    "jax_distribution",
    "jax_processes_requested",
    "select_jax_devices",
    "setup_hardware",
    "strategy_kind",
    "tpu_address_from_environment",
    "worker_index",
    "worker_of",
]

_log = logging.getLogger(__name__)


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

    ```python
    hardware = keras_barlow.setup_hardware("auto")
    with hardware.scope():
        model = keras_barlow.BarlowTwins(encoder)
    global_batch = per_replica_batch * hardware.num_replicas
    ```
    """
    check_hardware_choice(hardware)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        if jax_options:
            raise ValueError(f"{sorted(jax_options)} are JAX options; Keras runs on TensorFlow")
        strategy = get_strategy(hardware, tpu_address=tpu_address)
        kind = strategy_kind(strategy)
        index, workers = worker_index(strategy)
        return Hardware(backend, kind, strategy.num_replicas_in_sync, workers, index, strategy=strategy)
    if backend == "jax":
        if tpu_address is not None:
            _log.warning("tpu_address is ignored on JAX: JAX finds the TPU cores of this host itself")
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


def worker_of(model):
    """`(index, count)` of this process in a multi-worker / multi-process job, for `model`.

    Args:
        model: a Keras model (on TensorFlow, its `distribute_strategy` is asked).

    Returns:
        `(index, count)`; `(0, 1)` in a single process. Index 0 is the chief.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return worker_index(model.distribute_strategy)
    if backend == "jax":
        import jax

        return jax.process_index(), jax.process_count()
    return 0, 1
