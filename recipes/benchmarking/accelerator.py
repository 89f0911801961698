"""`--suite accelerator`: ResNet-50 training throughput on a GPU or TPU, precision × XLA × batch.

`python recipes/benchmark.py --suite accelerator` (= `keras-barlow benchmark --suite accelerator`)
times `BarlowTwins.fit` of the `resnet50-224` preset (ResNet-50, 224 px, ImageNet stem,
projector 8192³, LARS, synthetic views) at batch 64, 128 and 256 in every precision and XLA
setting the device runs:

| device | `--backend` | precisions (Keras dtype policy) | XLA (`jit_compile`) |
|---|---|---|---|
| GPU | tensorflow | float32, mixed_float16, mixed_bfloat16 | off, on |
| GPU | jax | float32, mixed_float16, mixed_bfloat16 | on (JAX always compiles) |
| TPU | jax | float32, mixed_bfloat16 | on |
| CPU, `--smoke` | tensorflow (jax) | float32, mixed_bfloat16 | off, on (jax: on) |

Each point is one measuring process (`benchmark.py --worker`: the same runners and timing as
every other measurement of the harness), started when the previous one has ended. A point
that runs out of memory, crashes, or outlives `--point-timeout` becomes an error row that
says so, and the suite goes on with the next. After every point the JSON (every row, the
device, its driver and the CUDA / cuDNN TensorFlow was built with where known, versions,
date, command) and the Markdown table (images/s, s/step, speed-up over float32 without XLA
at the same batch size) are rewritten, atomically: an interrupted suite keeps the points it
finished.

Without a GPU (or, with `--backend jax`, a TPU) the suite refuses in one line; `--smoke` runs
the same plan and machinery on the CPU (accelerators hidden) at tiny sizes — the `smoke`
preset's two-layer encoder, batch 8 and 16 — to check it.

The driver imports no framework: a probe process reads the device, the measuring processes
measure.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time

from benchmarking import serving
from benchmarking.precision import KERAS_POLICIES, check_device
from benchmarking.runners import PRESETS
from benchmarking.timing import cpu_description
from benchmarking.worker import RECIPES, worker_command, worker_environment

SCRIPT = os.path.join(RECIPES, "benchmark.py")
BATCH_SIZES = {"accelerator": (64, 128, 256), "smoke": (8, 16)}
# Steps per timed block, timed blocks (median reported), warm-up steps (the first compiles).
TIMING = {"accelerator": dict(steps=10, repeats=3, warmup=3), "smoke": dict(steps=2, repeats=2, warmup=2)}
POINT_TIMEOUT_S = {"accelerator": 1800, "smoke": 300}
PROBE_TAG = "ACCELERATOR_PROBE "
# Both frameworks' CPU-only switches: the smoke run measures on the CPU, whatever the machine has.
CPU_ONLY_ENV = {"CUDA_VISIBLE_DEVICES": "-1", "JAX_PLATFORMS": "cpu"}
PRECISION_NAMES = {
    "float32": "float32", "fp32": "float32",
    "float16": "float16", "fp16": "float16", "mixed_float16": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16", "mixed_bfloat16": "bfloat16",
}  # fmt: skip
XLA_NAMES = {"on": True, "true": True, "off": False, "false": False}
# Lower-cased text of TensorFlow's and XLA's out-of-memory errors (ResourceExhaustedError,
# "OOM when allocating tensor", "RESOURCE_EXHAUSTED: Out of memory while trying to allocate").
OOM_MARKERS = (
    "out of memory", "resource_exhausted", "resourceexhaustederror", "oom when allocating",
    "ran out of memory", "cuda_error_out_of_memory",
)  # fmt: skip
OUT_OF_MEMORY = "out of memory"


# --- what runs -----------------------------------------------------------------------


def _comma_list(parse, what):
    def parse_list(text):
        items = [item.strip() for item in text.split(",") if item.strip()]
        try:
            values = [parse(item) for item in items]
        except (KeyError, ValueError):
            values = []
        if not values:
            raise argparse.ArgumentTypeError(f"expected a comma list of {what}, got {text!r}")
        return tuple(dict.fromkeys(values))  # in the order given, once each

    return parse_list


def _batch_size(text):
    value = int(text)
    if value < 2:
        raise ValueError(value)
    return value


parse_batch_sizes = _comma_list(_batch_size, "batch sizes of at least 2 (e.g. 64,128)")
parse_precisions = _comma_list(lambda name: PRECISION_NAMES[name.lower()], "float32, float16, bfloat16")
parse_xla = _comma_list(lambda name: XLA_NAMES[name.lower()], "on, off")


def default_grid(device, backend):
    """`(precisions, XLA settings, batch sizes)` of the suite on `device` with `backend`.

    Args:
        device: `"gpu"`, `"tpu"` or `"cpu"` (the smoke run).
        backend: the Keras backend, `"tensorflow"` or `"jax"`.

    Example:
    >>> default_grid("tpu", "jax")
    (('float32', 'bfloat16'), (True,), (64, 128, 256))
    >>> default_grid("cpu", "tensorflow")
    (('float32', 'bfloat16'), (False, True), (8, 16))
    """
    precisions = ("float32", "float16", "bfloat16") if device == "gpu" else ("float32", "bfloat16")
    xla = (True,) if backend == "jax" else (False, True)
    batch_sizes = BATCH_SIZES["smoke" if device == "cpu" else "accelerator"]
    return precisions, xla, batch_sizes


def plan(device, backend, *, precisions=None, xla=None, batch_sizes=None):
    """The suite's points, in the order they run: precision, then XLA, then batch size.

    Args:
        device: `"gpu"`, `"tpu"` or `"cpu"` (the smoke run).
        backend: `"tensorflow"` or `"jax"`.
        precisions, xla, batch_sizes: overrides of `default_grid`'s (`--precisions`,
            `--xla`, `--batch-sizes`).

    Returns:
        list of dicts: `precision`, `dtype_policy`, `xla` (bool), `batch_size`.

    Raises:
        ValueError: a precision or XLA setting the device or backend does not run.
    """
    default_precisions, default_xla, default_batch_sizes = default_grid(device, backend)
    precisions = tuple(precisions or default_precisions)
    xla = tuple(default_xla if xla is None else xla)
    batch_sizes = tuple(batch_sizes or default_batch_sizes)
    if "float16" in precisions:
        if device == "tpu":
            raise ValueError("--precisions float16 is not a TPU precision: use float32 and bfloat16")
        check_device("float16", gpu=device == "gpu")
    if backend == "jax" and False in xla:
        raise ValueError("--xla off does not apply to JAX, which always compiles the step with XLA")
    return [
        {"precision": p, "dtype_policy": KERAS_POLICIES[p], "xla": x, "batch_size": b}
        for p in precisions
        for x in xla
        for b in batch_sizes
    ]


def base_spec(smoke, *, steps=None, repeats=None, warmup=None):
    """The measurement spec every point shares (a `benchmark.py` spec measuring `fit`)."""
    preset = "smoke" if smoke else "resnet50-224"
    spec = {**PRESETS[preset], **TIMING[preset if smoke else "accelerator"]}
    for key, value in (("steps", steps), ("repeats", repeats), ("warmup", warmup)):
        if value is not None:
            if value < 1:
                raise ValueError(f"--{key} must be at least 1, got {value}")
            spec[key] = value
    spec.update(
        projector=list(spec["projector"]),
        measures=["fit"],
        optimizer="lars",
        steps_per_execution=1,
        tf_threads=None,
        matmul_size=256 if smoke else 2048,
        pytorch_threads=None,
        pytorch_channels_last=True,
    )
    return spec


def point_spec(base, point):
    """`base` at one point of the plan."""
    return {
        **base,
        "batch_size": point["batch_size"],
        "source_images": 4 * point["batch_size"],
        "precision": point["precision"],
        "dtype_policy": point["dtype_policy"],
        "jit_compile": "true" if point["xla"] else "false",
    }


def point_label(point):
    """`"mixed_float16, XLA on, batch 256"`."""
    return f"{point['dtype_policy']}, XLA {'on' if point['xla'] else 'off'}, batch {point['batch_size']}"


# --- the device ----------------------------------------------------------------------


def device_nodes(dev="/dev"):
    """Accelerator device nodes on this machine, read without a framework.

    Returns:
        dict: `gpu` (`/dev/nvidia0`, ..., AMD's `/dev/kfd`) and `tpu` (`/dev/accel0`, ...,
        and the `/dev/vfio/N` groups of the TPU VMs that use them), each a sorted list.
    """
    gpu = sorted(glob.glob(os.path.join(dev, "nvidia[0-9]*"))) + sorted(glob.glob(os.path.join(dev, "kfd")))
    tpu = sorted(glob.glob(os.path.join(dev, "accel[0-9]*"))) + sorted(
        glob.glob(os.path.join(dev, "vfio", "[0-9]*"))
    )
    return {"gpu": gpu, "tpu": tpu}


def probe_main():
    """The probe process (`KERAS_BACKEND` set): prints `PROBE_TAG` and what the framework sees."""
    import keras

    backend = keras.backend.backend()
    out = {"backend": backend, "keras": keras.version(), "accelerators": []}
    if backend == "tensorflow":
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
        out["devices"] = [d.name for d in tf.config.list_physical_devices()]
        build = tf.sysconfig.get_build_info()
        out["cuda_version"] = build.get("cuda_version")
        out["cudnn_version"] = build.get("cudnn_version")
        for kind in ("GPU", "TPU"):
            for device in tf.config.list_physical_devices(kind):
                details = tf.config.experimental.get_device_details(device) if kind == "GPU" else {}
                capability = details.get("compute_capability")
                out["accelerators"].append(
                    {
                        "platform": kind.lower(),
                        "name": details.get("device_name") or device.name,
                        "compute_capability": ".".join(map(str, capability)) if capability else None,
                    }
                )
    else:
        import jax

        out["jax"] = jax.__version__
        devices = jax.devices()
        out["devices"] = [str(d) for d in devices]
        try:
            out["platform_version"] = devices[0].client.platform_version
        except Exception:  # a fact to report, not to fail on
            out["platform_version"] = None
        out["accelerators"] = [
            {"platform": d.platform, "name": d.device_kind, "compute_capability": None}
            for d in devices
            if d.platform in ("gpu", "tpu")
        ]
    print(PROBE_TAG + json.dumps(out), flush=True)


def probe(backend, timeout_s=300):
    """What `backend` sees on this machine (`probe_main` in a process of its own).

    Returns:
        dict: `probe_main`'s, or `{"failed": message}` where the probe did not answer.
    """
    command = [sys.executable, "-c", "from benchmarking.accelerator import probe_main; probe_main()"]
    try:
        proc = subprocess.run(
            command, env=worker_environment(backend), capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"the {backend} device probe did not answer in {timeout_s} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith(PROBE_TAG)]
    if proc.returncode != 0 or not lines:
        return {"failed": f"the {backend} device probe failed ({_last_line(proc.stderr) or proc.returncode})"}
    return json.loads(lines[-1][len(PROBE_TAG) :])


def accelerator_of(backend, nodes, found):
    """The accelerator the suite runs on, `"gpu"` or `"tpu"`.

    Args:
        backend: `"tensorflow"` or `"jax"`.
        nodes: `device_nodes()`.
        found: `probe(backend)`, or `None` where `nodes` holds none (no probe is needed).

    Raises:
        ValueError: no accelerator the suite can run on; the message says what was found.
    """
    smoke = "`--suite accelerator --smoke` runs the suite's plan at tiny sizes on the CPU to check it"
    wanted = "--suite accelerator needs a GPU (or a TPU, with --backend jax)"
    if not nodes["gpu"] and not nodes["tpu"]:
        cpu = cpu_description()
        raise ValueError(
            f"{wanted}, and this machine has none: no /dev/nvidia*, /dev/kfd, /dev/accel* or /dev/vfio/* "
            f"device, only the CPU ({cpu['model'] or 'unknown model'}, {_cpus_usable()} usable); {smoke}"
        )
    present = ", ".join(nodes["gpu"] + nodes["tpu"])
    if found is None or "failed" in found:
        reason = (found or {}).get("failed", "no device probe")
        raise ValueError(f"{wanted}: {present} is present, but {reason}; {smoke}")
    platforms = {a["platform"] for a in found["accelerators"]}
    if backend == "tensorflow" and "gpu" not in platforms and nodes["tpu"]:
        raise ValueError(
            f"--suite accelerator runs on a TPU with JAX: {present} is present; add --backend jax "
            f"(TensorFlow sees {', '.join(found.get('devices', [])) or 'no device'})"
        )
    for platform_name in ("gpu", "tpu"):
        if platform_name in platforms:
            return platform_name
    version = found.get(backend, "")
    raise ValueError(
        f"{wanted}: {present} is present, but {backend} {version} sees only "
        f"{', '.join(found.get('devices', [])) or 'the CPU'} (a CPU-only build? for TensorFlow: "
        f'pip install "tensorflow[and-cuda]"; for JAX: pip install "jax[cuda12]"); {smoke}'
    )


def nvidia_driver():
    """The NVIDIA driver's version (`nvidia-smi`, else `/proc/driver/nvidia/version`), or `None`."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.split()
            if out:
                return out[0]
        except (OSError, subprocess.SubprocessError):
            out = None  # no usable nvidia-smi: the kernel module's version file below says it
    try:
        with open("/proc/driver/nvidia/version") as f:
            match = re.search(r"Kernel Module(?: for \S+)?\s+([\d.]+)", f.read())
    except OSError:
        return None
    return match.group(1) if match else None


def device_description(device, found):
    """The JSON's `device`: what the suite ran on (`found`: the probe's answer, `None` in a smoke run)."""
    if device == "cpu":
        cpu = cpu_description()
        return {"platform": "cpu", "name": cpu["model"], "cpus_usable": _cpus_usable()}
    accelerators = [a for a in found["accelerators"] if a["platform"] == device]
    return {
        "platform": device,
        "name": accelerators[0]["name"],
        "count": len(accelerators),
        "compute_capability": accelerators[0].get("compute_capability"),
        "driver_version": nvidia_driver() if device == "gpu" else None,
        # TensorFlow's build info: the CUDA and cuDNN it was built against.
        "cuda_version": found.get("cuda_version"),
        "cudnn_version": found.get("cudnn_version"),
        "platform_version": found.get("platform_version"),
    }


def _cpus_usable():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# --- running the points --------------------------------------------------------------


def classify_failure(returncode, stdout, stderr):
    """`(error, detail)` of a measuring process that gave no result.

    `error` is short, for the table: `"out of memory"`, `"refused: ..."`, `"killed by SIGKILL
    ..."`, `"failed (exit code N): <last line>"`; `detail` is the end of its standard error.

    Example:
    >>> classify_failure(1, "", "tensorflow.python.framework.errors_impl.ResourceExhaustedError: "
    ...                  "OOM when allocating tensor with shape[256,64,112,112]")[0]
    'out of memory'
    >>> classify_failure(-9, "", "")[0]
    'killed by SIGKILL (the host out of memory?)'
    >>> classify_failure(1, "", "Traceback ...\\nValueError: bad spec\\n")[0]
    'failed (exit code 1): ValueError: bad spec'
    """
    detail = (stderr or "")[-3000:]
    refusals = [line for line in (stdout or "").splitlines() if line.startswith(serving.ERROR_TAG)]
    if refusals:
        return "refused: " + refusals[-1][len(serving.ERROR_TAG) :].strip(), detail
    text = ((stderr or "")[-20000:] + (stdout or "")[-5000:]).lower()
    if any(marker in text for marker in OOM_MARKERS):
        return OUT_OF_MEMORY, detail
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (the host out of memory?)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}", detail
    if returncode == 0:
        return "no result: the measuring process ended without one", detail
    return f"failed (exit code {returncode}): {_last_line(stderr)[:300]}", detail


def _last_line(text):
    """The last exception line of a traceback in `text` (`NameError: ...`), else its last line."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in (text or "").splitlines()]
    lines = [line for line in lines if line]
    exceptions = [line for line in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception|Exit)\b", line)]
    return (exceptions or lines or [""])[-1]


def _text(value):
    return value.decode(errors="replace") if isinstance(value, bytes) else value or ""


def run_point(script, spec, backend, *, timeout_s, env=None):
    """Runs one point in a measuring process of its own.

    Returns:
        `(payload, None)` with the worker's payload, or `(None, (error, detail))`.
    """
    try:
        proc = subprocess.run(
            worker_command(script, spec),
            env=env or worker_environment(backend),
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as expired:
        return None, (f"timed out after {timeout_s:g} s", _text(expired.stderr)[-3000:])
    lines = [line for line in proc.stdout.splitlines() if line.startswith(serving.RESULT_TAG)]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1][len(serving.RESULT_TAG) :]), None
    return None, classify_failure(proc.returncode, proc.stdout, proc.stderr)


def result_row(point, payload=None, failure=None, wall_s=None):
    """One row of the JSON: the point, then its timing (`status` "ok") or its error (`status` "error")."""
    row = {**point, "status": "ok" if payload else "error", "wall_s": wall_s}
    if payload:
        result = payload["results"][0]
        keys = (
            "s_per_step", "s_per_step_min", "s_per_step_max", "blocks", "warmup_s", "setup_s",
            "jit_compile", "flops_per_s", "matmul_share", "step_flops", "peak_rss_mib", "load1",
        )  # fmt: skip
        row.update({key: result.get(key) for key in keys})
        # A batch is `batch_size` images, each seen as two views.
        row["images_per_s"] = result["pairs_per_s"]
        row["matmul_flops_per_s"] = max(payload["matmul_flops_per_s"].values(), default=None)
    else:
        row["error"], row["error_detail"] = failure
    return row


def speedup_reference(points):
    """The `(precision, xla)` every row is compared with at its batch size: float32 without
    XLA, or float32 with XLA where the plan has no XLA-off point (JAX)."""
    return "float32", all(point["xla"] for point in points)


def add_speedups(rows, reference):
    """Sets each row's `speedup`: its images/s over the reference's at its batch size (`None`
    where either has none)."""
    precision, xla = reference
    base = {
        row["batch_size"]: row["images_per_s"]
        for row in rows
        if row["status"] == "ok" and row["precision"] == precision and row["xla"] == xla
    }
    for row in rows:
        ok = row["status"] == "ok" and row["batch_size"] in base
        row["speedup"] = row["images_per_s"] / base[row["batch_size"]] if ok else None
    return rows


def format_table(report):
    """The Markdown page of a report: what ran, on what, then one row per point."""
    spec, device, versions = report["spec"], report["device"], report["versions"]
    precision, xla = report["speedup_reference"]
    reference = f"{precision} {'XLA' if xla else 'no-XLA'}"
    model = "ResNet-50" if spec["depth"] == 50 else f"depth {spec['depth']}" if spec["depth"] else "conv2"
    count = device.get("count") or 1
    facts = [
        (device.get("name") or device["platform"]) + (f" (one of {count})" if count > 1 else ""),
        *(
            f"{label} {device[key]}"
            for key, label in (
                ("compute_capability", "compute capability"), ("driver_version", "driver"),
                ("cuda_version", "CUDA"), ("cudnn_version", "cuDNN"),
            )
            if device.get(key)
        ),
        *(f"{name} {versions[key]}" for key, name in (("tensorflow", "TensorFlow"), ("jax", "JAX"),
                                                     ("keras", "Keras")) if versions.get(key)),
        report["date"][:10],
    ]  # fmt: skip
    lines = [
        f"# Accelerator suite{' (smoke: CPU, tiny sizes)' if report['smoke'] else ''}",
        "",
        f"{model}, {spec['image_size']} px, projector {'-'.join(map(str, spec['projector']))}, "
        f"{spec['optimizer'].upper()}, `fit` on synthetic views, {report['backend']} backend; "
        f"median of {spec['repeats']} blocks of {spec['steps']} steps after {spec['warmup']} warm-up steps.",
        "",
        " · ".join(facts),
        "",
        f"| precision | XLA | batch | images/s | s/step | speed-up vs {reference} | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        ok = row["status"] == "ok"
        note = row.get("error", "")
        if ok and row.get("jit_compile") is not None and bool(row["jit_compile"]) != row["xla"]:
            note = f"XLA asked {'on' if row['xla'] else 'off'}, ran {'on' if row['jit_compile'] else 'off'}"
        cells = [
            row["dtype_policy"],
            "on" if row["xla"] else "off",
            str(row["batch_size"]),
            f"{row['images_per_s']:.1f}" if ok else "–",
            f"{row['s_per_step']:.4f}" if ok else "–",
            f"{row['speedup']:.2f}×" if row.get("speedup") is not None else "–",
            note.replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    pending = len(report["plan"]) - len(report["results"])
    if pending:
        lines += ["", f"{pending} of {len(report['plan'])} points not run yet (running, or stopped)."]
    if report.get("command"):
        lines += ["", f"`{report['command']}`"]
    return "\n".join(lines) + "\n"


def _write_text(path, text):
    """Writes `text` to `path` through a temporary file and a rename (a reader sees the old file
    or the new one). As `keras_barlow._io.atomic_write_text`, which this driver cannot import:
    `import keras_barlow` imports Keras and TensorFlow, and the driver imports no framework."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_report(report, json_path, table_path):
    """Writes the JSON and the Markdown table, each atomically."""
    _write_text(json_path, json.dumps(report, indent=2, sort_keys=True) + "\n")
    _write_text(table_path, format_table(report))


def _log(line):
    print(line, file=sys.stderr, flush=True)


def run_suite(
    points, base, backend, *, json_path, table_path, device="cpu", found=None, script=SCRIPT,
    timeout_s=POINT_TIMEOUT_S["smoke"], env=None, command=None, log=_log,
):  # fmt: skip
    """Runs every point in a process of its own, one after the other; rewrites the JSON and the
    table after each.

    Args:
        points: `plan(...)`.
        base: `base_spec(...)`.
        backend: the Keras backend of the measuring processes.
        json_path, table_path: where the report and its table go.
        device: `"gpu"`, `"tpu"` or `"cpu"` (the smoke run).
        found: `probe(backend)` (`None` in a smoke run).
        script: the script whose `--worker` entry measures (`recipes/benchmark.py`).
        timeout_s: a point running longer is stopped and recorded as timed out.
        env: the measuring processes' environment (default: `worker_environment(backend)`).
        command: the command line, for the report.
        log: called with a line per point.

    Returns:
        dict: the report (also in `json_path`).
    """
    found = found or {}
    report = {
        "suite": "accelerator",
        "smoke": device == "cpu",
        "backend": backend,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "device": device_description(device, found),
        "versions": {k: found[k] for k in ("keras", "tensorflow", "jax") if found.get(k)},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu": cpu_description()["model"],
            "cpus_usable": _cpus_usable(),
        },
        "spec": base,
        "plan": points,
        "speedup_reference": list(speedup_reference(points)),
        "point_timeout_s": timeout_s,
        "complete": False,
        "results": [],
    }
    for index, point in enumerate(points, 1):
        start = time.monotonic()
        payload, failure = run_point(script, point_spec(base, point), backend, timeout_s=timeout_s, env=env)
        wall_s = round(time.monotonic() - start, 1)
        row = result_row(point, payload, failure, wall_s)
        if payload:
            for key in ("keras", "tensorflow", "jax", "onednn"):
                if payload["versions"].get(key) is not None:
                    report["versions"].setdefault(key, payload["versions"][key])
            log(
                f"[accelerator {index}/{len(points)}] {point_label(point)}: {row['s_per_step']:.4f} s/step, "
                f"{row['images_per_s']:.1f} images/s ({wall_s:g} s)"
            )
        else:
            log(f"[accelerator {index}/{len(points)}] {point_label(point)}: {row['error']} ({wall_s:g} s)")
        report["results"].append(row)
        add_speedups(report["results"], speedup_reference(points))
        report["complete"] = index == len(points)
        write_report(report, json_path, table_path)
    return report


# --- the command line ----------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="benchmark.py --suite accelerator",
        description="ResNet-50 training throughput on a GPU or TPU: precision × XLA × batch size, "
        "each point in a process of its own (an out-of-memory point becomes an error row).",
        epilog="Without an accelerator it refuses; --smoke checks the plan on the CPU at tiny sizes.",
    )
    add = parser.add_argument
    add("--backend", choices=("tensorflow", "jax"), default="tensorflow",
        help="Keras backend (a TPU needs jax)")  # fmt: skip
    add("--smoke", action="store_true",
        help="the plan on the CPU at tiny sizes (smoke preset, batch 8, 16), to check it")  # fmt: skip
    add("--batch-sizes", type=parse_batch_sizes, help="comma list (default: 64,128,256; smoke: 8,16)")
    add("--precisions", type=parse_precisions,
        help="comma list of float32, float16, bfloat16 (default: those the device runs)")  # fmt: skip
    add("--xla", type=parse_xla, help="comma list of on, off (default: off,on; JAX: on)")
    timing = TIMING["accelerator"]
    add("--steps", type=int, help=f"steps per timed block (default {timing['steps']})")
    add("--repeats", type=int, help=f"timed blocks, median reported (default {timing['repeats']})")
    add("--warmup", type=int, help=f"warm-up steps, the first compiles (default {timing['warmup']})")
    add("--point-timeout", type=float,
        help=f"seconds a point may run before it is stopped and recorded as timed out "
             f"(default {POINT_TIMEOUT_S['accelerator']}; smoke {POINT_TIMEOUT_S['smoke']})")  # fmt: skip
    add("--json", dest="json_path",
        help="the report (default: runs/benchmark/accelerator.json, smoke: ...-smoke.json)")  # fmt: skip
    add("--table", dest="table_path", help="the Markdown table (default: the --json path with .md)")
    args = parser.parse_args(argv)
    if args.point_timeout is not None and args.point_timeout <= 0:
        parser.error(f"--point-timeout must be positive, got {args.point_timeout:g}")
    return args


def main(argv=None, *, script=SCRIPT):
    """`benchmark.py --suite accelerator ARGV`: plans, checks the device, runs, writes, prints.

    Returns:
        dict: the report.

    Raises:
        SystemExit: no accelerator (without `--smoke`), a plan the device cannot run, or no
            point gave a result.
    """
    args = parse_args(argv)
    size = "smoke" if args.smoke else "accelerator"
    if args.smoke:
        device, found = "cpu", None
        env = {**worker_environment(args.backend), **CPU_ONLY_ENV}
    else:
        nodes = device_nodes()
        found = probe(args.backend) if nodes["gpu"] or nodes["tpu"] else None
        try:
            device = accelerator_of(args.backend, nodes, found)
        except ValueError as error:
            raise SystemExit(str(error)) from None
        env = None
    try:
        points = plan(
            device, args.backend, precisions=args.precisions, xla=args.xla, batch_sizes=args.batch_sizes
        )
        base = base_spec(args.smoke, steps=args.steps, repeats=args.repeats, warmup=args.warmup)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    json_path = args.json_path or os.path.join(
        "runs", "benchmark", "accelerator-smoke.json" if args.smoke else "accelerator.json"
    )
    table_path = args.table_path or os.path.splitext(json_path)[0] + ".md"
    timeout_s = args.point_timeout or POINT_TIMEOUT_S[size]
    command = " ".join(["benchmark.py --suite accelerator", *(argv if argv is not None else sys.argv[1:])])
    _log(f"[accelerator] {len(points)} points on {device} ({args.backend}), one process each")
    report = run_suite(
        points, base, args.backend, json_path=json_path, table_path=table_path, device=device,
        found=found, script=script, timeout_s=timeout_s, env=env, command=command,
    )  # fmt: skip
    print(format_table(report), end="")
    print(f"wrote {json_path} and {table_path}")
    if not any(row["status"] == "ok" for row in report["results"]):
        raise SystemExit(f"no point of the suite gave a result (first: {report['results'][0]['error']})")
    return report
