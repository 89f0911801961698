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

Every measurement records the peak resident memory of its process (`ru_maxrss`) and the
load average (`os.getloadavg()`) before and after, because a shared machine's timings are
only comparable at similar load. Results are printed as a table and written as JSON.

Usage:
    python recipes/benchmark.py --preset resnet18-32 --json runs/bench.json
    python recipes/benchmark.py --preset resnet50-224 --batch-size 16 --measure fit,bare
    python recipes/benchmark.py --backend both --measure fit
    python recipes/benchmark.py --smoke            # tiny, for CI (< ~40 s on 2 idle cores)

Each backend runs in its own subprocess (`KERAS_BACKEND` must be set before Keras is
imported); `--isolate` (the default outside `--smoke`) also gives every measurement its
own process, so each peak-memory figure belongs to that measurement alone.
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


def summarize(durations, *, steps, repeats, warmup, steps_per_call=1, batch_size):
    """Per-step statistics from the wall time of each call.

    Args:
        durations: seconds of each call in order, warm-up calls included; a call runs
            `steps_per_call` training steps (`steps_per_execution`) or fetches one batch.
        steps: steps per timed block; a multiple of `steps_per_call`.
        repeats: number of timed blocks after the warm-up.
        warmup: calls discarded first (tracing, compilation, autotuning).
        steps_per_call: steps each call runs.
        batch_size: image pairs per step.

    Returns:
        dict: `s_per_step` (median over blocks of the block's mean), `s_per_step_min` /
        `s_per_step_max` (fastest and slowest block), `pairs_per_s` (from the median),
        `blocks` (each block's s/step), `compile_s` (the warm-up calls' total).
    """
    if steps % steps_per_call:
        raise ValueError(f"steps ({steps}) must be a multiple of steps_per_execution ({steps_per_call})")
    calls_per_block = steps // steps_per_call
    needed = warmup + repeats * calls_per_block
    if len(durations) < needed:
        raise ValueError(f"got {len(durations)} timed calls, need {needed} (warm-up {warmup} + {repeats} × {calls_per_block})")
    timed = durations[warmup:needed]
    blocks = [sum(timed[i * calls_per_block:(i + 1) * calls_per_block]) / steps for i in range(repeats)]
    median = statistics.median(blocks)
    return {
        "s_per_step": median,
        "s_per_step_min": min(blocks),
        "s_per_step_max": max(blocks),
        "pairs_per_s": batch_size / median,
        "blocks": blocks,
        "compile_s": sum(durations[:warmup]),
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


def _calls(spec):
    spe = spec["steps_per_execution"]
    return spec["warmup"] + spec["repeats"] * (spec["steps"] // spe), spe


def _measure_fit(spec, dataset=None):
    import keras

    model = _build_model(spec)
    calls, spe = _calls(spec)
    timer = _Timer()
    if dataset is None:
        view_a, view_b = _synthetic_views(spec)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            dataset = tf.data.Dataset.from_tensors((view_a, view_b)).repeat()
        else:  # NumPy into fit: no TensorFlow involved

            def batches():
                while True:
                    yield view_a, view_b

            dataset = batches()
    model.fit(dataset, epochs=1, steps_per_epoch=calls * spe, verbose=0, callbacks=[timer])
    return timer.durations, spe, {"jit_compile": bool(model.jit_compile)}


def _loop(fn, arg, calls):
    durations = []
    for _ in range(calls):
        start = time.perf_counter()
        out = fn(arg)
        float(out)  # wait for the step (as fit's loss guard does)
        durations.append(time.perf_counter() - start)
    return durations


def _measure_tf_step(spec, kind):
    """`step`: the model's `train_step`; `bare` / `bare_concat`: a hand-written step."""
    import tensorflow as tf
    from keras import ops

    from keras_barlow import losses

    model = _build_model(spec)
    optimizer = model.optimizer
    variables = model.trainable_variables
    optimizer.build(variables)
    view_a, view_b = _synthetic_views(spec)
    iterator = iter(tf.data.Dataset.from_tensors((view_a, view_b)).repeat())
    jit = bool(model.jit_compile)

    def embed(images):
        return model.projector(model.pooling(model.encoder(images, training=True)), training=True)

    if kind == "step":

        def step(iterator):
            return model.train_step(next(iterator))["loss"]

    else:

        def step(iterator):
            a, b = next(iterator)
            with tf.GradientTape() as tape:
                if kind == "bare_concat":
                    z = embed(ops.concatenate([a, b], axis=0))
                    z_a, z_b = z[: spec["batch_size"]], z[spec["batch_size"]:]
                else:
                    z_a, z_b = embed(a), embed(b)
                loss = losses.barlow_twins_loss(z_a, z_b, lambd=model.lambd, scale_loss=model.scale_loss)
            gradients = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(gradients, variables))
            return loss

    calls, _ = _calls({**spec, "steps_per_execution": 1})
    return _loop(tf.function(step, jit_compile=jit), iterator, calls), 1, {"jit_compile": jit}


def _pipeline_dataset(spec):
    import numpy as np

    from keras_barlow.data import pretraining_dataset

    rng = np.random.default_rng(0)
    side = spec["source_size"]
    images = rng.integers(0, 256, size=(spec["source_images"], side, side, 3), dtype=np.uint8)
    return pretraining_dataset(
        images, batch_size=spec["batch_size"], image_size=spec["image_size"], preset=spec["augment"], seed=0
    ).repeat()


def _measure_pipeline(spec):
    iterator = iter(_pipeline_dataset(spec))
    calls, _ = _calls({**spec, "steps_per_execution": 1})
    durations = []
    for _ in range(calls):
        start = time.perf_counter()
        view_a, _ = next(iterator)
        view_a.numpy()
        durations.append(time.perf_counter() - start)
    return durations, 1, {}


def run_worker(spec):
    """Runs `spec["measures"]` in this process and returns one result dict per measure."""
    if spec.get("block_tensorflow"):
        _block_tensorflow()
    import keras

    backend = keras.backend.backend()
    if spec.get("dtype_policy"):
        keras.config.set_dtype_policy(spec["dtype_policy"])
    results = []
    for measure in spec["measures"]:
        keras.backend.clear_session()
        before = {"load1": load1(), "rss_mib": current_rss_mib(), "peak_rss_mib": peak_rss_mib()}
        start = time.perf_counter()
        if measure == "fit":
            durations, spe, extra = _measure_fit(spec)
        elif measure == "fit_pipeline":
            durations, spe, extra = _measure_fit(spec, dataset=_pipeline_dataset(spec))
        elif measure in ("step", "bare", "bare_concat"):
            durations, spe, extra = _measure_tf_step(spec, measure)
        elif measure == "pipeline":
            durations, spe, extra = _measure_pipeline(spec)
        else:
            raise ValueError(f"unknown measure {measure!r}")
        stats = summarize(
            durations, steps=spec["steps"], repeats=spec["repeats"], warmup=spec["warmup"],
            steps_per_call=spe, batch_size=spec["batch_size"],
        )
        results.append(
            {
                "backend": backend,
                "measure": measure,
                **stats,
                **extra,
                "steps_per_execution": spe,
                "wall_s": time.perf_counter() - start,
                "peak_rss_mib": peak_rss_mib(),
                "rss_before_mib": before["rss_mib"],
                "load1_before": before["load1"],
                "load1_after": load1(),
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
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one process per backend (CI)")
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
    parser.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                        help="one process per measurement (default: on, off with --smoke)")
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
        f"{result['peak_rss_mib']:.0f}",
        f"{result['load1_before']}/{result['load1_after']}",
    ]


HEADER = ["backend", "measure", "model", "px", "batch", "projector", "s/step", "pairs/s", "min–max s/step", "peak MiB", "load1 before/after"]


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
    isolate = args.isolate if args.isolate is not None else not args.smoke
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
                      f"{result['pairs_per_s']:.1f} pairs/s (load {result['load1_before']})", file=sys.stderr, flush=True)
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
