"""The benchmark's measuring process: runs a spec's measurements interleaved, and its driver.

Each backend is measured in its own subprocess (`KERAS_BACKEND` must be set before Keras
is imported). Inside it, the training measurements (ours and, with `--compare pytorch`,
the PyTorch reference) are set up and warmed up first, then timed in turns (block 1 of
each, block 2 of each, ...) so that a change of load on a shared machine affects all of
them alike; the input pipeline, whose prefetching threads would run on during the others'
blocks, is timed alone afterwards. Every block records the load average.
"""

import json
import os
import subprocess
import sys
import time

from benchmarking import flops, report
from benchmarking.runners import build_model, make_runner, model_step_flops
from benchmarking.timing import current_rss_mib, load1, peak_rss_mib, summarize

RESULT_TAG = "BENCHMARK_RESULT "
READY_TAG = "BENCHMARK_READY"  # a serving worker (`serve`) is warm and waits for "block" lines
# TensorFlow sizes its thread pools from these when its runtime starts (at the first op).
THREAD_ENV = ("TF_NUM_INTEROP_THREADS", "TF_NUM_INTRAOP_THREADS")


def schedulable_cpu_count():
    """CPUs this process may run on (its affinity mask); `os.cpu_count()` where unavailable."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _time_group(spec, group, records):
    runners = {}
    for measure in group:
        rss_before = current_rss_mib()
        start = time.perf_counter()
        runner = make_runner(spec, measure)
        warmup = runner.warm_up(spec["warmup"])
        runners[measure] = runner
        records[measure] = {
            "warmup": warmup,
            "blocks": [],
            "loads": [],
            "setup_s": time.perf_counter() - start,
            "rss_growth_mib": current_rss_mib() - rss_before if rss_before is not None else None,
        }
    for _ in range(spec["repeats"]):
        for measure, runner in runners.items():
            records[measure]["loads"].append(load1())
            records[measure]["blocks"].append(runner.block(spec["steps"]))
    for measure, runner in runners.items():
        records[measure].update(spe=runner.spe, extra=runner.extra)
    return runners


def matmul_rates(backend, measures, n):
    """The fp32 `n × n` matmul rate (FLOP/s) of each framework taking part, measured now."""
    if backend == "tensorflow":
        # As many independent products as CPUs, in one function: they fill every CPU
        # whatever the intra-/inter-op thread split (e.g. TF_NUM_INTRAOP_THREADS=1).
        products = schedulable_cpu_count()
        rates = {
            "tensorflow": flops.matmul_flops_per_second(
                flops.tensorflow_matmul(n, products=products), n, products=products
            )
        }
    else:
        import jax

        a = jax.random.normal(jax.random.key(0), (n, n))
        product = jax.jit(lambda x: x @ x)
        rates = {"jax": flops.matmul_flops_per_second(lambda: product(a).block_until_ready(), n)}
    if "pytorch" in measures:
        from benchmarking.pytorch_reference import torch_matmul

        rates["pytorch"] = flops.matmul_flops_per_second(torch_matmul(n), n)
    return rates


def run_worker(spec):
    """Runs `spec["measures"]` in this process.

    Returns:
        dict: `results` (one dict per measure), `matmul_flops_per_s` (per framework) and
        `step_flops` (of the training step, counted from the model; `None` for a pipeline-only run).
    """
    import keras

    backend = keras.backend.backend()
    if spec.get("dtype_policy"):
        keras.config.set_dtype_policy(spec["dtype_policy"])
    training = [m for m in spec["measures"] if m != "pipeline"]
    groups = [training] + ([["pipeline"]] if "pipeline" in spec["measures"] else [])
    records, step_flops = {}, None
    for group in groups:
        if not group:
            continue
        runners = _time_group(spec, group, records)
        if group is training:
            model = next((r.model for r in runners.values() if hasattr(r, "model")), None)
            step_flops = model_step_flops(model if model is not None else build_model(spec), spec)
        del runners
    rates = matmul_rates(backend, spec["measures"], spec["matmul_size"])
    results = []
    for measure in spec["measures"]:
        record = records[measure]
        stats = summarize(
            record["warmup"], record["blocks"], steps=spec["steps"], batch_size=spec["batch_size"]
        )
        results.append(
            {
                "backend": backend,
                "measure": measure,
                **stats,
                **record["extra"],
                "steps_per_execution": record["spe"],
                "setup_s": record["setup_s"],
                "rss_growth_mib": record["rss_growth_mib"],
                "peak_rss_mib": peak_rss_mib(),
                "load1": record["loads"],
            }
        )
    if step_flops is not None:
        report.add_rates(results, step_flops=step_flops, matmul_flops_per_s=max(rates.values()))
    return {"results": results, "matmul_flops_per_s": rates, "step_flops": step_flops}


def worker_versions():
    """Versions, devices and whether TensorFlow was imported, in the measuring process."""
    import keras

    versions = {"keras": keras.version(), "backend": keras.backend.backend()}
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


def serve(spec):
    """The measuring side of `versus_env.interleave_environments`: warms the training
    measurements up, then times one block of each per `block` line on stdin, printing the
    seconds as one JSON line; stops at end of input."""
    runners = {measure: make_runner(spec, measure) for measure in spec["measures"]}
    warmup = {measure: runner.warm_up(spec["warmup"]) for measure, runner in runners.items()}
    environment = {name: os.environ.get(name) for name in spec.get("report_env", ())}
    print(READY_TAG + json.dumps({"warmup": warmup, "environment": environment}), flush=True)
    for line in sys.stdin:
        if line.strip() != "block":
            break
        load = load1()
        blocks = {measure: runner.block(spec["steps"]) for measure, runner in runners.items()}
        print(json.dumps({"load1": load, "blocks": blocks}), flush=True)


def worker_main(spec_json):
    """The measuring process's entry: prints one tagged JSON line with the results."""
    import keras

    spec = json.loads(spec_json)
    if spec.get("tf_threads") and keras.backend.backend() == "tensorflow":
        set_tensorflow_threads(*spec["tf_threads"])
    if spec.get("serve"):
        serve(spec)
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
        payload = {**run_worker(spec), "versions": worker_versions()}
    print(RESULT_TAG + json.dumps(payload), flush=True)


def worker_environment(backend):
    """The environment of a measuring process: this one, with `KERAS_BACKEND=backend`, this
    checkout first on `PYTHONPATH` and TensorFlow's C++ log quiet unless asked otherwise."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    }


def spawn(script, spec, backend, flags=()):
    """Runs `script --worker SPEC *flags` with `KERAS_BACKEND=backend`; returns the worker's payload."""
    env = worker_environment(backend)
    command = [sys.executable, os.path.abspath(script), "--worker", json.dumps(spec), *flags]
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"benchmark worker ({backend}, {spec['measures']}) failed with exit code {proc.returncode}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return json.loads(lines[-1][len(RESULT_TAG) :])
