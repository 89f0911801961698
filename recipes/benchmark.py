"""Benchmark: training throughput, Keras overhead, input pipeline and memory (issue #8).

Measures on synthetic data, after warm-up, the median over `--repeats` blocks of `--steps`
steps each:

- `fit`: `BarlowTwins.fit` on a constant synthetic batch (TensorFlow: a repeated
  `tf.data` element; JAX: NumPy arrays from a generator, so no TensorFlow is needed);
- `step`: the model's own `train_step` in a plain `tf.function` loop (no `fit`);
- `bare`: a hand-written minimal step — encoder, projector, `barlow_twins_loss`,
  gradients, optimizer — in a `tf.function` (no metrics, no checks, no `fit`): the
  reference the `fit` overhead is measured against;
- `bare_concat`: `bare` with both views concatenated into one batch through encoder and
  projector (batch norm then sees joint statistics, *not* the paper's per-view ones);
- `pipeline`: the two-view augmentation pipeline (`keras_barlow.pretraining_dataset`)
  alone, on synthetic uint8 images (TensorFlow only);
- `fit_pipeline`: `fit` fed by that pipeline (end to end).

The training measurements run in one process per backend: each is set up and warmed up,
then they are timed in turns (block 1 of each, block 2 of each, ...), so a change of load
on a shared machine affects all of them alike and their ratios (the `fit` overhead) stay
meaningful. The pipeline is timed alone afterwards. Every measurement records the load
average (`os.getloadavg()`) at each block, the growth of resident memory while it was set
up and warmed up, and the process's peak resident memory (`ru_maxrss`). Results are
printed as a table and written as JSON.

Usage:
    python recipes/benchmark.py --preset resnet18-32 --json runs/bench.json
    python recipes/benchmark.py --preset resnet50-224 --batch-size 16 --measure fit,bare
    python recipes/benchmark.py --backend both --measure fit
    python recipes/benchmark.py --smoke            # tiny, for CI (< ~40 s on 2 idle cores)

Each backend runs in its own subprocess (`KERAS_BACKEND` must be set before Keras is
imported); `--isolate` gives every measurement its own process instead, so that each
peak-memory figure belongs to that measurement alone (timings are then sequential).
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_TAG = "BENCHMARK_RESULT "
TF_MEASURES = ("fit", "step", "bare", "bare_concat", "pipeline", "fit_pipeline")
JAX_MEASURES = ("fit",)
DEFAULT_MEASURES = ("fit", "step", "bare", "pipeline")

# Model/data sizes. `source_size` is the side of the synthetic images the pipeline crops.
PRESETS = {
    "resnet18-32": dict(
        depth=18, width=64, image_size=32, small_images=True, source_size=32, augment="cifar",
        batch_size=128, projector=(2048, 2048, 2048), steps=4, repeats=3, warmup=2,
    ),
    "resnet50-224": dict(
        depth=50, width=64, image_size=224, small_images=False, source_size=256, augment="imagenet",
        batch_size=32, projector=(8192, 8192, 8192), steps=3, repeats=3, warmup=2,
    ),
    # A two-convolution encoder: traced in seconds, for CI (ResNet tracing alone takes ~20 s).
    "smoke": dict(
        depth=0, width=8, image_size=16, small_images=True, source_size=16, augment="cifar",
        batch_size=8, projector=(32, 32), steps=2, repeats=2, warmup=2,
    ),
}


# --------------------------------------------------------------------------------------
# Statistics (pure Python: tested against NumPy)


def summarize(warmup, blocks, *, steps, batch_size):
    """Per-step statistics from timed calls.

    Args:
        warmup: seconds of each warm-up call (tracing, compilation, autotuning).
        blocks: one list per timed block: the seconds of its calls, which together ran
            `steps` training steps (or fetched `steps` batches).
        steps: steps per block.
        batch_size: image pairs per step.

    Returns:
        dict: `s_per_step` (median over blocks of the block's mean), `s_per_step_min` /
        `s_per_step_max` (fastest and slowest block), `pairs_per_s` (from the median),
        `blocks` (each block's s/step), `warmup_s` (the warm-up calls' total).
    """
    if not blocks or any(not block for block in blocks):
        raise ValueError(f"need at least one non-empty timed block, got {blocks!r}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    per_step = [sum(block) / steps for block in blocks]
    median = statistics.median(per_step)
    return {
        "s_per_step": median,
        "s_per_step_min": min(per_step),
        "s_per_step_max": max(per_step),
        "pairs_per_s": batch_size / median,
        "blocks": per_step,
        "warmup_s": sum(warmup),
    }


def peak_rss_mib():
    """Peak resident set size of this process so far, in MiB (Linux: ru_maxrss is KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def current_rss_mib():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024.0**2
    except (OSError, ValueError):
        return None


def load1():
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


# --------------------------------------------------------------------------------------
# Worker: runs in a subprocess with KERAS_BACKEND set


def _block_tensorflow():
    """Makes `import tensorflow` fail, as on a machine without TensorFlow (JAX checks)."""

    class _Blocker:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError(f"{name} is blocked (benchmark --block-tensorflow)")
            return None

    sys.meta_path.insert(0, _Blocker())


def _synthetic_views(spec):
    import numpy as np

    rng = np.random.default_rng(0)
    shape = (spec["batch_size"], spec["image_size"], spec["image_size"], 3)
    view_a = rng.standard_normal(shape, dtype=np.float32)
    view_b = (view_a + 0.5 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    return view_a, view_b


def _build_model(spec):
    import keras

    from keras_barlow.backbones import resnet
    from keras_barlow.model import BarlowTwins
    from keras_barlow.optimizers import LARS

    keras.utils.set_random_seed(0)
    size = spec["image_size"]
    if spec["depth"] == 0:
        encoder = _small_convnet(size, spec["width"])
    else:
        encoder = resnet(spec["depth"], (size, size, 3), small_images=spec["small_images"], width=spec["width"])
    model = BarlowTwins(encoder, projector_dims=spec["projector"])
    optimizer = {
        "lars": lambda: LARS(0.2),
        "sgd": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
        "adam": lambda: keras.optimizers.Adam(1e-3),
    }[spec["optimizer"]]()
    jit = spec["jit_compile"]
    model.compile(optimizer=optimizer, jit_compile=jit if jit == "auto" else jit == "true",
                  steps_per_execution=spec["steps_per_execution"])
    return model


def _small_convnet(size, width):
    """`--depth 0`: two 3×3 convolution + batch-norm + ReLU blocks (the smoke test's encoder)."""
    import keras

    inputs = keras.Input((size, size, 3))
    x = inputs
    for i, strides in enumerate((1, 2)):
        x = keras.layers.Conv2D(width * (i + 1), 3, strides=strides, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
    return keras.Model(inputs, x, name="small_convnet")


class _Timer:
    """`fit` callback: the wall time between consecutive `on_train_batch_end` calls."""

    def __new__(cls):
        import keras

        class Timer(keras.callbacks.Callback):
            # Keeps Keras' asynchronous callback dispatch (JAX) possible: the timestamps are
            # taken after the logs were read, i.e. when each step has finished. (The model's
            # NonFiniteLossGuard is not async-safe, so `fit` currently syncs every step.)
            async_safe = True

            def on_train_begin(self, logs=None):
                self.durations = []
                self._last = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                # The model's NonFiniteLossGuard, which runs first, already read the loss:
                # the step has finished on the device when this runs.
                now = time.perf_counter()
                self.durations.append(now - self._last)
                self._last = now

        return Timer()


class _FitRunner:
    """`fit` on a constant synthetic batch (or on `dataset`). Each timed block is one `fit`
    call of `steps + steps_per_execution` steps whose first call is dropped, so the once-per-
    `fit` set-up (callbacks, iterator) is not counted, while everything `fit` does per step
    (iterator, callbacks, logs, the loss guard's read) is."""

    def __init__(self, spec, dataset=None):
        import keras

        self.model = _build_model(spec)
        self.spe = spec["steps_per_execution"]
        self.timer = _Timer()
        if dataset is not None:
            self.data = lambda: dataset
        else:
            view_a, view_b = _synthetic_views(spec)
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                constant = tf.data.Dataset.from_tensors((view_a, view_b)).repeat()
                self.data = lambda: constant
            else:  # NumPy into fit: no TensorFlow involved

                def batches():
                    while True:
                        yield view_a, view_b

                self.data = batches
        self.extra = {}

    def _fit(self, steps):
        self.model.fit(self.data(), epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[self.timer])
        self.extra["jit_compile"] = bool(self.model.jit_compile)
        return list(self.timer.durations)

    def warm_up(self, calls):
        return self._fit(calls * self.spe)

    def block(self, steps):
        return self._fit(steps + self.spe)[1:]


def _loop(fn, arg, calls):
    durations = []
    for _ in range(calls):
        start = time.perf_counter()
        out = fn(arg)
        float(out)  # wait for the step (as fit's loss guard does)
        durations.append(time.perf_counter() - start)
    return durations


class _StepRunner:
    """`step`: the model's `train_step` in a `tf.function`; `bare` / `bare_concat`: a
    hand-written minimal step. Both read the batch from a `tf.data` iterator inside the
    function, as `fit` does, and are compiled with XLA exactly when `fit` would be."""

    spe = 1

    def __init__(self, spec, kind):
        import tensorflow as tf
        from keras import ops

        from keras_barlow import losses

        model = _build_model(spec)
        optimizer = model.optimizer
        variables = model.trainable_variables
        optimizer.build(variables)
        view_a, view_b = _synthetic_views(spec)
        self.iterator = iter(tf.data.Dataset.from_tensors((view_a, view_b)).repeat())
        batch = spec["batch_size"]

        def embed(images):
            return model.projector(model.pooling(model.encoder(images, training=True)), training=True)

        if kind == "step":

            def step(iterator):
                return model.train_step(next(iterator))["loss"]

        else:

            def step(iterator):
                a, b = next(iterator)
                with tf.GradientTape() as tape:
                    if kind == "bare_concat":  # joint batch-norm statistics: not the paper's
                        z = embed(ops.concatenate([a, b], axis=0))
                        z_a, z_b = z[:batch], z[batch:]
                    else:
                        z_a, z_b = embed(a), embed(b)
                    loss = losses.barlow_twins_loss(z_a, z_b, lambd=model.lambd, scale_loss=model.scale_loss)
                gradients = tape.gradient(loss, variables)
                optimizer.apply_gradients(zip(gradients, variables))
                return loss

        self.extra = {"jit_compile": bool(model.jit_compile)}
        self.fn = tf.function(step, jit_compile=self.extra["jit_compile"])

    def warm_up(self, calls):
        return _loop(self.fn, self.iterator, calls)

    def block(self, steps):
        return _loop(self.fn, self.iterator, steps)


def _pipeline_dataset(spec):
    import numpy as np

    from keras_barlow.data import pretraining_dataset

    rng = np.random.default_rng(0)
    side = spec["source_size"]
    images = rng.integers(0, 256, size=(spec["source_images"], side, side, 3), dtype=np.uint8)
    return pretraining_dataset(
        images, batch_size=spec["batch_size"], image_size=spec["image_size"], preset=spec["augment"], seed=0
    ).repeat()


class _PipelineRunner:
    """Batches of `(view_a, view_b)` pulled from `pretraining_dataset` on synthetic images."""

    spe = 1
    extra = {}

    def __init__(self, spec):
        self.iterator = iter(_pipeline_dataset(spec))

    def block(self, steps):
        durations = []
        for _ in range(steps):
            start = time.perf_counter()
            view_a, view_b = next(self.iterator)
            view_a.numpy(), view_b.numpy()
            durations.append(time.perf_counter() - start)
        return durations

    warm_up = block


def _make_runner(spec, measure):
    if measure == "fit":
        return _FitRunner(spec)
    if measure == "fit_pipeline":
        return _FitRunner(spec, dataset=_pipeline_dataset(spec))
    if measure in ("step", "bare", "bare_concat"):
        return _StepRunner(spec, measure)
    if measure == "pipeline":
        return _PipelineRunner(spec)
    raise ValueError(f"unknown measure {measure!r}")


def run_worker(spec):
    """Runs `spec["measures"]` in this process; returns one result dict per measure.

    The training measures are set up and warmed up first, then timed in turns (block 1 of
    each, block 2 of each, ...) so that a change of machine load affects all of them
    alike; the input pipeline, whose prefetching threads would run on during the others'
    blocks, is timed alone afterwards.
    """
    if spec.get("block_tensorflow"):
        _block_tensorflow()
    import keras

    backend = keras.backend.backend()
    if spec.get("dtype_policy"):
        keras.config.set_dtype_policy(spec["dtype_policy"])
    training = [m for m in spec["measures"] if m != "pipeline"]
    groups = [training] + ([["pipeline"]] if "pipeline" in spec["measures"] else [])
    records = {}
    for group in groups:
        runners = {}
        for measure in group:
            rss_before = current_rss_mib()
            start = time.perf_counter()
            runner = _make_runner(spec, measure)
            warmup = runner.warm_up(spec["warmup"])
            runners[measure] = runner
            records[measure] = {
                "warmup": warmup, "blocks": [], "loads": [], "setup_s": time.perf_counter() - start,
                "rss_growth_mib": current_rss_mib() - rss_before if rss_before is not None else None,
            }
        for _ in range(spec["repeats"]):
            for measure, runner in runners.items():
                records[measure]["loads"].append(load1())
                records[measure]["blocks"].append(runner.block(spec["steps"]))
        for measure, runner in runners.items():
            records[measure].update(spe=runner.spe, extra=runner.extra)
        del runners
    results = []
    for measure in spec["measures"]:
        record = records[measure]
        stats = summarize(record["warmup"], record["blocks"], steps=spec["steps"], batch_size=spec["batch_size"])
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
    return results


# --------------------------------------------------------------------------------------
# Driver


def _spawn(spec, backend):
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    }
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"benchmark worker ({backend}, {spec['measures']}) failed with exit code {proc.returncode}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return json.loads(lines[-1][len(RESULT_TAG):])


def _worker_main(spec_json):
    spec = json.loads(spec_json)
    payload = {"results": run_worker(spec), "versions": _worker_versions()}
    print(RESULT_TAG + json.dumps(payload), flush=True)


def _worker_versions():
    import keras

    versions = {"keras": keras.version(), "backend": keras.backend.backend()}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
        versions["devices"] = [d.name for d in tf.config.list_physical_devices()]
    else:
        import jax

        versions["jax"] = jax.__version__
        versions["devices"] = [str(d) for d in jax.devices()]
    versions["tensorflow_imported"] = "tensorflow" in sys.modules
    return versions


def _parse_bool_choice(value):
    value = value.lower()
    if value not in ("auto", "true", "false"):
        raise argparse.ArgumentTypeError(f"expected auto, true or false, got {value!r}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="resnet18-32", help="model and data sizes")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and a two-layer encoder (CI)")
    parser.add_argument("--backend", choices=("tensorflow", "jax", "both"), default="tensorflow")
    parser.add_argument("--measure", default=None, help=f"comma list of {', '.join(TF_MEASURES)} (default: {','.join(DEFAULT_MEASURES)})")
    parser.add_argument("--depth", type=int, choices=(0, 18, 34, 50, 101, 152), help="ResNet depth; 0: a two-layer convnet")
    parser.add_argument("--width", type=int, help="ResNet width (64 = standard)")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--small-images", action=argparse.BooleanOptionalAction, default=None, help="CIFAR stem")
    parser.add_argument("--source-size", type=int, help="side of the synthetic images the pipeline crops")
    parser.add_argument("--augment", choices=("imagenet", "cifar", "digits"), help="augmentation preset")
    parser.add_argument("--batch-size", type=int, help="image pairs per step")
    parser.add_argument("--projector", help="comma list of projector sizes, e.g. 2048,2048,2048")
    parser.add_argument("--optimizer", choices=("lars", "sgd", "adam"), default="lars")
    parser.add_argument("--jit-compile", type=_parse_bool_choice, default="auto",
                        help="XLA: auto (Keras' default: off on CPU-only TF, on for TF GPU/TPU and JAX), true, false")
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument("--dtype-policy", default=None, help="e.g. mixed_bfloat16 (default: float32)")
    parser.add_argument("--steps", type=int, help="steps per timed block")
    parser.add_argument("--repeats", type=int, help="timed blocks (the median is reported)")
    parser.add_argument("--warmup", type=int, help="calls discarded first (tracing, compilation)")
    parser.add_argument("--isolate", action="store_true",
                        help="one process per measurement: separate peak memory, sequential timings")
    parser.add_argument("--json", dest="json_path", help="write the results here")
    parser.add_argument("--block-tensorflow", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.preset = "smoke"
    return args


def build_spec(args):
    """The measurement spec from the preset, overridden by the explicit arguments."""
    spec = dict(PRESETS[args.preset])
    for key in ("depth", "width", "image_size", "small_images", "source_size", "augment", "batch_size", "steps", "repeats", "warmup"):
        value = getattr(args, key)
        if value is not None:
            spec[key] = value
    if args.projector:
        try:
            spec["projector"] = tuple(int(d) for d in args.projector.split(","))
        except ValueError:
            raise SystemExit(f"--projector must be a comma list of integers, got {args.projector!r}") from None
    spec["projector"] = list(spec["projector"])
    for key in ("batch_size", "steps", "repeats", "image_size", "source_size"):
        if spec[key] < 1:
            raise SystemExit(f"--{key.replace('_', '-')} must be at least 1, got {spec[key]}")
    if spec["batch_size"] < 2:
        raise SystemExit("--batch-size must be at least 2 (Barlow Twins needs batch statistics)")
    if spec["warmup"] < 1:
        raise SystemExit("--warmup must be at least 1: the first call traces and compiles")
    spe = args.steps_per_execution
    if spe < 1 or spec["steps"] % spe:
        raise SystemExit(f"--steps ({spec['steps']}) must be a positive multiple of --steps-per-execution ({spe})")
    spec.update(
        optimizer=args.optimizer,
        jit_compile=args.jit_compile,
        steps_per_execution=spe,
        dtype_policy=args.dtype_policy,
        source_images=4 * spec["batch_size"],
        block_tensorflow=bool(args.block_tensorflow),
    )
    measures = tuple(args.measure.split(",")) if args.measure else DEFAULT_MEASURES
    unknown = [m for m in measures if m not in TF_MEASURES]
    if unknown:
        raise SystemExit(f"unknown --measure {unknown}; choose from {', '.join(TF_MEASURES)}")
    spec["measures"] = list(measures)
    return spec


def _row(spec, result):
    projector = "-".join(str(d) for d in spec["projector"])
    model = (f"R{spec['depth']}" if spec["depth"] else "conv2") + (f"w{spec['width']}" if spec["width"] != 64 else "")
    if result["measure"] == "pipeline":
        model = spec["augment"]
    return [
        result["backend"][:3] if result["backend"] == "jax" else "tf",
        result["measure"] + (f" spe={result['steps_per_execution']}" if result["steps_per_execution"] > 1 else "")
        + (" xla" if result.get("jit_compile") else ""),
        model,
        str(spec["image_size"]),
        str(spec["batch_size"]),
        "-" if result["measure"] == "pipeline" else projector,
        f"{result['s_per_step']:.4f}",
        f"{result['pairs_per_s']:.1f}",
        f"{result['s_per_step_min']:.4f}–{result['s_per_step_max']:.4f}",
        "-" if result["rss_growth_mib"] is None else f"{result['rss_growth_mib']:.0f}",
        f"{result['peak_rss_mib']:.0f}",
        _load_range(result["load1"]),
    ]


def _load_range(loads):
    loads = [x for x in loads if x is not None]
    if not loads:
        return "-"
    return f"{min(loads):.1f}–{max(loads):.1f}" if max(loads) != min(loads) else f"{loads[0]:.1f}"


HEADER = ["backend", "measure", "model", "px", "batch", "projector", "s/step", "pairs/s", "min–max s/step",
          "RSS +MiB", "peak MiB", "load1"]


def format_table(spec, results):
    """A markdown table of the results (one row per measurement)."""
    rows = [HEADER] + [_row(spec, r) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def overhead(results):
    """`fit` and `step` time over the `bare` step of the same backend, as fractions."""
    by = {(r["backend"], r["measure"]): r["s_per_step"] for r in results}
    out = {}
    for (backend, measure), value in by.items():
        bare = by.get((backend, "bare"))
        if bare and measure in ("fit", "step", "bare_concat"):
            out[f"{backend}:{measure}_vs_bare"] = value / bare - 1.0
    return out


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        _worker_main(args.worker)
        return None
    spec = build_spec(args)
    isolate = args.isolate
    backends = ["tensorflow", "jax"] if args.backend == "both" else [args.backend]
    results, versions = [], {}
    for backend in backends:
        measures = [m for m in spec["measures"] if backend == "tensorflow" or m in JAX_MEASURES]
        skipped = [m for m in spec["measures"] if m not in measures]
        if skipped:
            print(f"[{backend}] skipping {', '.join(skipped)} (TensorFlow-only measurements)", file=sys.stderr)
        groups = [[m] for m in measures] if isolate else [measures]
        for group in groups:
            if not group:
                continue
            payload = _spawn({**spec, "measures": group}, backend)
            results += payload["results"]
            versions[backend] = payload["versions"]
            for result in payload["results"]:
                print(f"[{backend}] {result['measure']}: {result['s_per_step']:.4f} s/step, "
                      f"{result['pairs_per_s']:.1f} pairs/s (load {_load_range(result['load1'])})", file=sys.stderr, flush=True)
    report = {
        "spec": spec,
        "isolated": isolate,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "processor": platform.processor(),
        },
        "versions": versions,
        "results": results,
        "overhead_vs_bare": overhead(results),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]) if argv is None else None,
    }
    print(format_table(spec, results))
    for name, value in report["overhead_vs_bare"].items():
        print(f"{name}: {100 * value:+.1f}%")
    if args.json_path:
        directory = os.path.dirname(os.path.abspath(args.json_path))
        os.makedirs(directory, exist_ok=True)
        with open(args.json_path, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json_path}")
    return report


if __name__ == "__main__":
    main()
