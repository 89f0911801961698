"""Our measuring process: runs a spec's measurements, and the driver's ways of starting it.

Each backend is measured in its own subprocess (`KERAS_BACKEND` must be set before Keras
is imported), which applies the run's dtype policy and thread settings before anything
is built. It either runs the whole measurement itself (`run_worker`: the training
measurements set up and warmed up first, then timed in turns, block 1 of each, block 2
of each, ...; the input pipeline, whose prefetching threads would run on during the
others' blocks, timed alone afterwards) or serves blocks on demand to a driver that
alternates it with another process (`serving.serve`: the PyTorch reference, or the same
measurement in another environment). Every block records the load average.
"""

import json
import os
import subprocess
import sys

from benchmarking import flops, report, serving
from benchmarking.precision import check_device
from benchmarking.runners import build_model, make_runner, model_step_flops
from benchmarking.timing import load1

RESULT_TAG = serving.RESULT_TAG
READY_TAG = serving.READY_TAG
# TensorFlow sizes its thread pools from these when its runtime starts (at the first op).
THREAD_ENV = ("TF_NUM_INTEROP_THREADS", "TF_NUM_INTRAOP_THREADS")
RECIPES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(RECIPES)


def schedulable_cpu_count():
    """CPUs this process may run on (its affinity mask); `os.cpu_count()` where unavailable."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def matmul_rates(backend, n, precision="float32"):
    """`{backend: FLOP/s}` of an `n × n` matmul in `precision` on this process's framework."""
    if backend == "tensorflow":
        # The faster of one product and as many independent products as CPUs in one function:
        # the latter fill every CPU whatever the intra-/inter-op thread split (e.g.
        # TF_NUM_INTRAOP_THREADS=1), the former is faster where one product already does (on a
        # 2-core AMX Xeon: bfloat16, two at once 858-930 GFLOP/s, one alone 1,242-1,257).
        rates = []
        for products in sorted({1, schedulable_cpu_count()}):
            matmul = flops.tensorflow_matmul(n, products=products, dtype=precision)
            rates.append(flops.matmul_flops_per_second(matmul, n, products=products))
        return {backend: max(rates)}
    return {backend: flops.matmul_flops_per_second(flops.jax_matmul(n, dtype=precision), n)}


def _step_flops(spec, runners):
    model = next((r.model for r in runners.values() if hasattr(r, "model")), None)
    return model_step_flops(model if model is not None else build_model(spec), spec)


def _payload(spec, runners, records, step_flops):
    import keras

    backend = keras.backend.backend()
    results = serving.results(spec, runners, records, backend)
    rates = matmul_rates(backend, spec["matmul_size"], spec.get("precision", "float32"))
    if step_flops is not None:
        report.add_rates(results, step_flops=step_flops, matmul_flops_per_s=max(rates.values()))
    return {
        "results": results,
        "matmul_flops_per_s": rates,
        "step_flops": step_flops,
        "versions": worker_versions(),
    }


def run_worker(spec):
    """Runs `spec["measures"]` in this process, training measurements in turns.

    Returns:
        dict: `results` (one dict per measure), `matmul_flops_per_s` (this framework, in the
        run's precision), `step_flops` (of the training step, counted from the model; `None`
        for a pipeline-only run) and `versions`.
    """
    training = [m for m in spec["measures"] if m != "pipeline"]
    groups = [training] + ([["pipeline"]] if "pipeline" in spec["measures"] else [])
    all_runners, all_records, step_flops = {}, {}, None
    for group in groups:
        if not group:
            continue
        runners, records = serving.set_up(spec, group, make_runner)
        for _ in range(spec["repeats"]):
            serving.time_block(spec, runners, records)
        if group is training:
            step_flops = _step_flops(spec, runners)
        # Keep the small facts, drop the models before the next group is built.
        all_runners.update({m: _Facts(r) for m, r in runners.items()})
        all_records.update(records)
        del runners
    ordered = {m: all_records[m] for m in spec["measures"]}
    return _payload(spec, all_runners, ordered, step_flops)


class _Facts:
    """What `serving.results` reads from a runner, kept after the runner is gone."""

    def __init__(self, runner):
        self.spe, self.extra = runner.spe, dict(runner.extra)


def serve_spec(spec):
    """Sets up and warms up the training measurements, then serves blocks (`serving.serve`)."""
    runners, records = serving.set_up(spec, spec["measures"], make_runner)
    serving.serve(
        spec, runners, records, finish=lambda: _payload(spec, runners, records, _step_flops(spec, runners))
    )


def worker_versions():
    """Versions, devices, precision and whether TensorFlow was imported, in the measuring process."""
    import keras

    versions = {
        "keras": keras.version(),
        "backend": keras.backend.backend(),
        "dtype_policy": keras.config.dtype_policy().name,
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        from keras_barlow._compat import tensorflow_onednn_enabled

        versions["tensorflow"] = tf.__version__
        versions["devices"] = [d.name for d in tf.config.list_physical_devices()]
        versions["onednn"] = tensorflow_onednn_enabled()
        threading = tf.config.threading
        versions["tf_threads"] = [
            threading.get_inter_op_parallelism_threads(),
            threading.get_intra_op_parallelism_threads(),
        ]
        versions["tf_threads_env"] = {name: os.environ.get(name) for name in THREAD_ENV}
    else:
        import jax

        versions["jax"] = jax.__version__
        versions["devices"] = [str(d) for d in jax.devices()]
    versions["tensorflow_imported"] = "tensorflow" in sys.modules
    versions["TF_ENABLE_ONEDNN_OPTS"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    return versions


def measure_conv_rates(spec):
    """`--conv-rates` in the measuring process: per-op convolution rates, then the encoder.

    Returns:
        dict: `conv_rates` (rows of `conv_op_rates`), `encoder_s` (ResNet-18 forward + backward
        on `batch_size` images of `image_size` px, ImageNet stem), `load1` (before, after)
        and `xla_flags` (the `XLA_FLAGS` this process saw).
    """
    import keras

    from benchmarking.conv_rates import conv_op_rates, encoder_forward_backward_seconds

    before = load1()
    rows = conv_op_rates(keras.backend.backend(), batch=spec["batch_size"])
    encoder_s = encoder_forward_backward_seconds(batch=spec["batch_size"], image_size=spec["image_size"])
    return {
        "conv_rates": rows,
        "encoder_s": encoder_s,
        "load1": [before, load1()],
        "xla_flags": os.environ.get("XLA_FLAGS"),
    }


def conv_rate_rounds(script, spec, backends, rounds, log=print):
    """Runs `--conv-rates` for each backend in turn, `rounds` times (interleaved: A, B, A, B).

    Args:
        script: the benchmark script (its `--worker` mode measures).
        spec: the benchmark spec.
        backends: Keras backends to measure.
        rounds: rounds of all backends.
        log: called with one line per finished worker.

    Returns:
        dict: `"backend, round i"` → the worker's payload.
    """
    payloads = {}
    for index in range(rounds):
        for backend in backends:
            payload = spawn(script, {**spec, "conv_rates": True}, backend)
            payloads[f"{backend}, round {index + 1}"] = payload
            log(
                f"[{backend}, round {index + 1}] encoder forward+backward: {payload['encoder_s']:.3f} s "
                f"(load {payload['load1'][0]}→{payload['load1'][1]}, XLA_FLAGS={payload['xla_flags']!r})"
            )
    return payloads


def set_tensorflow_threads(inter_op, intra_op):
    """`tf.config.threading` for this process; call before TensorFlow runs its first op.

    Args:
        inter_op: threads running independent ops in parallel (0: TensorFlow's choice).
        intra_op: threads inside one op, e.g. a convolution (0: TensorFlow's choice).
    """
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    tf.config.threading.set_intra_op_parallelism_threads(intra_op)


def framework_sees_gpu(backend):
    """Whether this process's framework (`tensorflow` or `jax`) has a GPU to run on."""
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    import jax

    return jax.default_backend() == "gpu"


def worker_main(spec_json):
    """The measuring process's entry: applies the precision and threads, then measures and
    prints one tagged JSON line with the results (or serves blocks, with `spec["serve"]`)."""
    import keras

    spec = json.loads(spec_json)
    backend = keras.backend.backend()
    precision = spec.get("precision", "float32")
    try:
        check_device(precision, gpu=precision != "float16" or framework_sees_gpu(backend))
    except ValueError as error:
        serving.refuse(f"{error} ({backend} sees none)")
    if spec.get("tf_threads") and backend == "tensorflow":
        set_tensorflow_threads(*spec["tf_threads"])
    if spec.get("dtype_policy"):
        keras.config.set_dtype_policy(spec["dtype_policy"])
    if spec.get("serve"):
        serve_spec(spec)
        return
    if spec.get("conv_rates"):
        payload = {**measure_conv_rates(spec), "versions": worker_versions()}
    elif spec.get("profile"):
        from benchmarking.op_profile import profile_train_step

        profile = profile_train_step(spec, steps=spec["steps"], warmup=spec["warmup"])
        payload = {"profile": profile, "load1": load1(), "versions": worker_versions()}
    elif spec.get("breakdown"):
        from benchmarking.breakdown import step_breakdown

        payload = {"breakdown": step_breakdown(spec), "load1": load1(), "versions": worker_versions()}
    else:
        payload = run_worker(spec)
    print(RESULT_TAG + json.dumps(payload), flush=True)


def python_path(*folders):
    """`PYTHONPATH` with `folders` first, then the one this process was given."""
    return os.pathsep.join([*folders, *filter(None, [os.environ.get("PYTHONPATH")])])


def worker_environment(backend, shared_device=False):
    """The environment of our measuring process: this one, with `KERAS_BACKEND=backend`,
    `recipes/` (the `benchmarking` package) and this checkout first on `PYTHONPATH`, and
    TensorFlow's C++ log quiet unless asked otherwise.

    With `shared_device`, another measuring process runs beside it: TensorFlow and JAX
    then allocate GPU memory as they need it instead of taking the whole device first.
    """
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": python_path(RECIPES, REPO),
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    }
    if shared_device:
        env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return env


def worker_command(script, spec, flags=()):
    """The command line of our measuring process: `script --worker SPEC *flags`."""
    return [sys.executable, os.path.abspath(script), "--worker", json.dumps(spec), *flags]


def spawn(script, spec, backend, flags=()):
    """Runs `script --worker SPEC *flags` with `KERAS_BACKEND=backend`; returns the worker's payload."""
    proc = subprocess.run(
        worker_command(script, spec, flags), env=worker_environment(backend), capture_output=True, text=True
    )
    refusals = [line for line in proc.stdout.splitlines() if line.startswith(serving.ERROR_TAG)]
    if refusals:
        raise serving.WorkerError(refusals[-1][len(serving.ERROR_TAG) :].strip(), refused=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        raise serving.WorkerError(
            f"benchmark worker ({backend}, {spec['measures']}) failed with exit code {proc.returncode}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return json.loads(lines[-1][len(RESULT_TAG) :])
