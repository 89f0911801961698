"""Benchmark: training throughput, Keras overhead, input pipeline, memory, and PyTorch side by side.

Measures on synthetic data (two *distinct* views), after warm-up, the median over
`--repeats` blocks of `--steps` steps each, every measurement in a process of its own
backend (the driver imports no framework):

- `fit`: `BarlowTwins.fit` on a constant synthetic batch;
- `step`: the model's own `train_step` in a plain `tf.function` loop (no `fit`);
- `bare`: a hand-written minimal step (the reference for the `fit` overhead);
- `bare_concat`: `bare` with both views as one batch (joint batch-norm statistics);
- `pipeline`: the two-view augmentation pipeline alone (TensorFlow only);
- `fit_pipeline`: `fit` fed by that pipeline (end to end);
- `--conv-rates`: the forward pass and both gradients of ResNet-18's 3×3 convolutions, each
  alone, and the encoder's forward + backward, per backend (where JAX's CPU step loses);
- `--onednn-kernels`: one block of `fit` steps (and of the PyTorch step, with `--compare
  pytorch`) under `ONEDNN_VERBOSE=1`: the oneDNN kernels each side ran, calls and ms per step;
- `pytorch` (`--compare pytorch`): the same configuration in PyTorch + torchvision (same
  ResNet stem and width, projector, the official loss with `BatchNorm1d(affine=False)`,
  optimizer and views) in a process of its own that never imports TensorFlow, with
  PyTorch's best settings (`channels_last`; `torch.autocast` in bfloat16 / float16). Our
  process and PyTorch's warm up one after the other, then time one block each in turns
  (ours, PyTorch, ours, ...), so that they never run at once and both see the same load.

`--precision float32|bfloat16|float16` applies to both sides: ours through the Keras dtype
policy (`mixed_bfloat16`, `mixed_float16`), PyTorch through `torch.autocast`; on both the
cross-correlation matrix and the loss stay float32. float16 needs a GPU.

Every training row also shows the step's FLOP rate — FLOPs counted from the model's
convolution and dense layers, backward = 2 × forward — and its share of the 2048³ matmul
rate in the same precision measured in the same run (the fastest framework's), i.e. of the
machine's peak for that precision. The report names the CPU and whether it has AVX2,
AVX-512, AVX512_BF16 and AMX-BF16. The harness lives in `benchmarking`, beside this file.

Usage:
    python recipes/benchmark.py --preset resnet18-32 --json runs/bench.json
    python recipes/benchmark.py --compare pytorch --optimizer sgd --no-small-images
    python recipes/benchmark.py --compare pytorch --precision bfloat16 --optimizer sgd --no-small-images
    python recipes/benchmark.py --preset resnet50-224 --batch-size 16 --projector 2048,2048,2048 \\
        --compare pytorch --precision bfloat16
    python recipes/benchmark.py --backend both --measure fit
    python recipes/benchmark.py --breakdown --no-small-images   # each part of a step timed alone
    python recipes/benchmark.py --profile --no-small-images     # TensorFlow profiler: op time per part
    python recipes/benchmark.py --onednn-kernels --compare pytorch --no-small-images  # oneDNN kernels
    python recipes/benchmark.py --conv-rates --backend both --repeats 2   # JAX vs TF on the CPU, per op
    python recipes/benchmark.py --measure fit --versus-env TF_NUM_INTRAOP_THREADS=0   # A/B, interleaved
    python recipes/benchmark.py --smoke            # tiny, for CI (< ~40 s on 2 idle cores)
    python recipes/benchmark.py --suite accelerator   # GPU/TPU: precision × XLA × batch, ResNet-50
    python recipes/benchmark.py --suite accelerator --smoke   # the same plan on the CPU, tiny sizes
    python recipes/benchmark.py --suite input-pipeline --help
"""

import argparse
import importlib
import importlib.util
import json
import os
import platform
import sys

MEASURES = ("fit", "step", "bare", "bare_concat", "pipeline", "fit_pipeline")
JAX_MEASURES = ("fit", "pytorch")
DEFAULT_MEASURES = ("fit", "step", "bare", "pipeline")
COMPARE_MEASURES = ("fit",)
# `--suite NAME`: a module of `benchmarking` whose `main(argv)` takes the other arguments.
SUITES = {"accelerator": "benchmarking.accelerator", "input-pipeline": "benchmarking.input_pipeline"}


def _block_tensorflow():
    """Makes `import tensorflow` fail, as on a machine without TensorFlow (JAX checks)."""

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError(f"{name} is blocked (benchmark --block-tensorflow)")
            return None

    sys.meta_path.insert(0, Blocker())


def _parse_bool_choice(value):
    value = value.lower()
    if value not in ("auto", "true", "false"):
        raise argparse.ArgumentTypeError(f"expected auto, true or false, got {value!r}")
    return value


def _parse_threads(value):
    parts = value.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected INTER,INTRA (two integers >= 0, e.g. 1,2), got {value!r}")
    return [int(p) for p in parts]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--preset", choices=("resnet18-32", "resnet50-224", "smoke"), default="resnet18-32", help="sizes")
    add("--smoke", action="store_true", help="tiny sizes and a two-layer encoder (CI)")
    add("--backend", choices=("tensorflow", "jax", "both"), default="tensorflow")
    add(
        "--measure",
        default=None,
        help=f"comma list of {', '.join(MEASURES)} (default: {','.join(DEFAULT_MEASURES)})",
    )
    add("--compare", choices=("pytorch",),
        help="also time the same step in PyTorch, in its own process, blocks in turns with ours")  # fmt: skip
    add("--depth", type=int, choices=(0, 18, 34, 50, 101, 152), help="ResNet depth; 0: a two-layer convnet")
    add("--width", type=int, help="ResNet width (64 = standard)")
    add("--image-size", type=int)
    add("--small-images", action=argparse.BooleanOptionalAction, default=None, help="CIFAR stem")
    add("--source-size", type=int, help="side of the synthetic images the pipeline crops")
    add("--augment", choices=("imagenet", "cifar", "digits"), help="augmentation preset")
    add("--batch-size", type=int, help="image pairs per step")
    add("--projector", help="comma list of projector sizes, e.g. 2048,2048,2048")
    add("--optimizer", choices=("lars", "sgd", "adam"), default="lars")
    add("--jit-compile", type=_parse_bool_choice, default="auto",
        help="XLA: auto (Keras' default: off on CPU-only TF, on for TF GPU/TPU and JAX)")  # fmt: skip
    add("--steps-per-execution", type=int, default=1)
    add("--tf-threads", type=_parse_threads, metavar="INTER,INTRA",
        help="TensorFlow inter-/intra-op threads (tf.config.threading; 0 = TensorFlow's choice)")  # fmt: skip
    add("--precision", choices=("float32", "bfloat16", "float16"),
        help="arithmetic of both sides: ours via the Keras dtype policy (float32, mixed_bfloat16, "
             "mixed_float16), PyTorch via torch.autocast; the matmul reference in it too "
             "(default: float32; float16 needs a GPU)")  # fmt: skip
    add("--dtype-policy", default=None,
        help="our Keras dtype policy, e.g. mixed_bfloat16 (default: the one of --precision)")  # fmt: skip
    add("--fused-batchnorm", choices=("auto", "on", "off"), default="auto",
        help="BarlowTwins(fused_batchnorm=...): the encoder's batch norms through TensorFlow's "
             "fused kernel (auto: in every precision, on the TensorFlow backend)")  # fmt: skip
    add("--pointwise-matmul", choices=("auto", "on", "off"), default="auto",
        help="BarlowTwins(pointwise_matmul=...): the encoder's 1×1 stride-1 convolutions as matrix "
             "products (auto: bfloat16 on a TensorFlow without GPU)")  # fmt: skip
    add("--steps", type=int, help="steps per timed block")
    add("--repeats", type=int, help="timed blocks (the median is reported)")
    add("--warmup", type=int, help="calls discarded first (tracing, compilation)")
    add("--matmul-size", type=int,
        help="side of the matmul (run's precision) whose rate is the reference peak (2048)")  # fmt: skip
    add("--pytorch-threads", type=int, help="PyTorch's intra-op threads (default: PyTorch's choice)")
    add("--pytorch-channels-last", action=argparse.BooleanOptionalAction, default=True,
        help="PyTorch's encoder and views in the channels_last memory format (fastest on CPUs)")  # fmt: skip
    add("--breakdown", action="store_true", help="time each part of one TensorFlow step alone instead")
    add("--profile", action="store_true",
        help="profile --steps TensorFlow steps (tf.profiler); op time per part of the step")  # fmt: skip
    add("--conv-rates", action="store_true",
        help="per-op 3×3 convolution rates and the encoder's forward+backward per backend, "
             "--repeats interleaved rounds (ResNet-18 ImageNet-stem shapes)")  # fmt: skip
    add("--onednn-kernels", action="store_true",
        help="one block of --steps fit steps with ONEDNN_VERBOSE=1 (and of the PyTorch step, with "
             "--compare pytorch, in its own process): the oneDNN kernels each side ran, calls and "
             "ms per step (TensorFlow backend)")  # fmt: skip
    add("--versus-env", metavar="NAME=VALUE[,...]",
        help="time the measures here and with these variables set, in two processes, block by "
             "block in turns (e.g. TF_NUM_INTRAOP_THREADS=0: TensorFlow's own thread default)")  # fmt: skip
    add("--isolate", action="store_true", help="one process per measurement: separate peak memory")
    add("--json", dest="json_path", help="write the results here")
    add("--suite", choices=SUITES,
        help="run a suite of measurements instead (its own options: --suite NAME --help)")  # fmt: skip
    add("--block-tensorflow", action="store_true", help=argparse.SUPPRESS)
    add("--worker", help=argparse.SUPPRESS)
    # MODULE:NAME of another runner class for the PyTorch process (a stand-in, in tests).
    add("--pytorch-runner", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.suite:  # only an abbreviation gets here: `main` takes `--suite` out first
        parser.error(f"write --suite in full: --suite {args.suite}")
    if args.smoke:
        args.preset = "smoke"
    return args


def split_suite(argv):
    """`(suite, the other arguments)`: `--suite NAME` taken out of `argv` (suite `None` without it)."""
    parser = argparse.ArgumentParser(prog="benchmark.py", add_help=False, allow_abbrev=False)
    parser.add_argument("--suite", choices=SUITES)
    known, rest = parser.parse_known_args(argv)
    return known.suite, rest


def run_suite(suite, argv):
    """Runs `--suite NAME`: `benchmarking.<module>.main(argv)`, imported only now."""
    return importlib.import_module(SUITES[suite]).main(argv)


def build_spec(args):
    """The measurement spec from the preset, overridden by the explicit arguments."""
    from benchmarking.runners import PRESETS

    spec = dict(PRESETS[args.preset])
    keys = ("depth", "width", "image_size", "small_images", "source_size", "augment", "batch_size", "steps")
    for key in (*keys, "repeats", "warmup"):
        value = getattr(args, key)
        if value is not None:
            spec[key] = value
    if args.projector:
        try:
            spec["projector"] = tuple(int(d) for d in args.projector.split(","))
        except ValueError:
            raise SystemExit(
                f"--projector must be a comma list of integers, got {args.projector!r}"
            ) from None
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
        raise SystemExit(
            f"--steps ({spec['steps']}) must be a positive multiple of --steps-per-execution ({spe})"
        )
    from benchmarking import precision

    try:
        spec["precision"], spec["dtype_policy"] = precision.resolve(args.precision, args.dtype_policy)
        precision.check_device(spec["precision"], gpu=precision.gpu_visible())
    except ValueError as error:
        raise SystemExit(str(error)) from None
    if args.pytorch_threads is not None and args.pytorch_threads < 1:
        raise SystemExit(f"--pytorch-threads must be at least 1, got {args.pytorch_threads}")
    spec.update(
        optimizer=args.optimizer,
        jit_compile=args.jit_compile,
        steps_per_execution=spe,
        tf_threads=args.tf_threads,
        source_images=4 * spec["batch_size"],
        matmul_size=args.matmul_size or (256 if args.preset == "smoke" else 2048),
        pytorch_threads=args.pytorch_threads,
        pytorch_channels_last=args.pytorch_channels_last,
        fused_batchnorm=args.fused_batchnorm,
        pointwise_matmul=args.pointwise_matmul,
    )
    default = COMPARE_MEASURES if args.compare else DEFAULT_MEASURES
    measures = tuple(args.measure.split(",")) if args.measure else default
    unknown = [m for m in measures if m not in MEASURES]
    if unknown:
        raise SystemExit(f"unknown --measure {unknown}; choose from {', '.join(MEASURES)}")
    if args.compare:
        if args.pytorch_runner is None:  # the torchvision reference
            if spec["depth"] == 0 or spec["width"] != 64:
                raise SystemExit(
                    "--compare pytorch needs a torchvision ResNet: --depth 18/34/50/101/152, --width 64"
                )
            missing = [name for name in ("torch", "torchvision") if importlib.util.find_spec(name) is None]
            if missing:
                from benchmarking.pytorch_reference import INSTALL_HINT

                raise SystemExit(INSTALL_HINT)
        if not [m for m in measures if m != "pipeline"]:
            raise SystemExit(
                "--compare pytorch compares a training measure (e.g. --measure fit) with PyTorch's"
            )
        if args.versus_env:
            raise SystemExit(
                "--versus-env compares our measures in two environments; run --compare pytorch on its own"
            )
        measures += ("pytorch",)
    spec["measures"] = list(measures)
    return spec


def _versus_env(args, spec, backends):
    from benchmarking.versus_env import (
        format_comparison,
        interleave_environments,
        parse_overrides,
    )

    try:
        overrides = parse_overrides(args.versus_env)
    except ValueError as error:
        raise SystemExit(f"--versus-env: {error}") from None
    if args.measure is None:
        spec["measures"] = [m for m in spec["measures"] if m == "fit"]
    if len(backends) != 1 or "pipeline" in spec["measures"]:
        raise SystemExit(
            "--versus-env compares training measures (default: fit) on one --backend, "
            f"got --backend {args.backend} and --measure {','.join(spec['measures'])}"
        )
    comparison = interleave_environments(__file__, spec, backends[0], overrides, log=_log)
    print(format_comparison(comparison))
    _write_json(args.json_path, {"spec": spec, "overrides": overrides, **comparison})
    return comparison


def _onednn_kernels(args, spec):
    from benchmarking import report
    from benchmarking.onednn_kernels import format_kernels, trace_kernels

    if args.backend != "tensorflow":
        raise SystemExit(f"--onednn-kernels traces TensorFlow's oneDNN kernels; got --backend {args.backend}")
    traces = trace_kernels(__file__, spec, with_pytorch=bool(args.compare), runner=args.pytorch_runner)
    machine = _machine()
    print(report.format_machine(machine))
    print(format_kernels(traces))
    _write_json(args.json_path, {"spec": spec, "machine": machine, "onednn_kernels": traces})
    return traces


def _write_json(path, payload):
    """Writes `payload` to `path` (its folder created) when `--json` was given."""
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(payload, f, indent=2)
        print(f"wrote {path}")


def _log(line):
    print(line, file=sys.stderr, flush=True)


def _log_block(spec):
    def log(repeat, label, block):
        for measure, seconds in block["blocks"].items():
            _log(f"[block {repeat}, {label}] {measure}: {sum(seconds) / spec['steps']:.4f} s/step")

    return log


def _machine():
    from benchmarking import precision, timing

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": timing.cpu_description(),
        "gpu_visible": precision.gpu_visible(),
    }


def _measure(args, spec, backends):
    """Runs the measurements of every backend; returns the merged results and what they ran on."""
    from benchmarking import compare, timing, worker

    results, versions, rates, step_flops, schedules = [], {}, {}, None, {}
    for backend in backends:
        measures = [m for m in spec["measures"] if backend == "tensorflow" or m in JAX_MEASURES]
        skipped = [m for m in spec["measures"] if m not in measures]
        if skipped:
            _log(f"[{backend}] skipping {', '.join(skipped)} (TensorFlow-only measurements)")
        ours = [m for m in measures if m != "pytorch"]
        flags = ["--block-tensorflow"] if args.block_tensorflow else []
        payloads = []
        if args.compare:
            training = [m for m in ours if m != "pipeline"]
            groups = [[m] for m in training] if args.isolate else [training]
            payload = compare.fair_comparison(
                __file__, spec, backend, groups, flags, log=_log_block(spec), runner=args.pytorch_runner
            )
            schedules[backend] = payload["schedule"]
            for label, label_versions in payload["versions"].items():
                versions["pytorch" if label == "pytorch" else backend] = label_versions
            payloads.append(payload)
            groups = [["pipeline"]] if "pipeline" in ours else []
        else:
            groups = [[m] for m in ours] if args.isolate else [ours]
        for group in groups:
            if group:
                payload = worker.spawn(__file__, {**spec, "measures": group}, backend, flags)
                versions[backend] = payload["versions"]
                payloads.append(payload)
        for payload in payloads:
            results += payload["results"]
            rates.update(
                {
                    k if k == backend else f"{k} (paired with {backend})": v
                    for k, v in payload["matmul_flops_per_s"].items()
                }
            )
            step_flops = payload["step_flops"] or step_flops
    for result in results:
        who = "pytorch" if result.get("framework") == "pytorch" else result["backend"]
        _log(
            f"[{who}] {result['measure']}: {result['s_per_step']:.4f} s/step, "
            f"{result['pairs_per_s']:.1f} pairs/s (load {timing.load_range(result['load1'])})"
        )
    return results, versions, rates, step_flops, schedules


def _run(args, argv):
    from benchmarking import report, worker

    spec = build_spec(args)
    if args.breakdown:
        payload = worker.spawn(__file__, {**spec, "breakdown": True}, "tensorflow")
        whole = payload["breakdown"]["whole train_step"]
        print(f"| part | s/call | share of the step | (load {payload['load1']}) |\n|---|---|---|---|")
        for part, seconds in payload["breakdown"].items():
            print(f"| {part} | {seconds:.4f} | {100 * seconds / whole:.0f} % | |")
        return payload
    if args.profile:
        from benchmarking.op_profile import format_profile

        payload = worker.spawn(__file__, {**spec, "profile": True}, "tensorflow")
        print(format_profile(payload["profile"], load=payload["load1"]))
        return payload
    if args.onednn_kernels:
        return _onednn_kernels(args, spec)
    backends = ["tensorflow", "jax"] if args.backend == "both" else [args.backend]
    if args.versus_env:
        return _versus_env(args, spec, backends)
    if args.conv_rates:
        from benchmarking.conv_rates import format_conv_rates

        payloads = worker.conv_rate_rounds(__file__, spec, backends, spec["repeats"], log=_log)
        print(format_conv_rates({label: p["conv_rates"] for label, p in payloads.items()}))
        return payloads
    results, versions, rates, step_flops, schedules = _measure(args, spec, backends)
    machine = _machine()
    report_dict = {
        "spec": spec,
        "precision": spec["precision"],
        "isolated": args.isolate,
        "separate_processes": bool(args.compare),
        "schedule": schedules,
        "machine": machine,
        "versions": versions,
        "results": results,
        "step_flops": step_flops,
        "matmul_flops_per_s": rates,
        "overhead_vs_bare": report.overhead(results),
        "speed_vs_pytorch": report.speed_ratios(results),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]) if argv is None else None,
    }
    print(report.format_machine(machine))
    print(report.format_table(spec, results))
    if step_flops:
        print(f"step: {step_flops / 1e9:.1f} GFLOP (conv + dense layers, backward = 2 × forward)")
    for line in report.format_matmul_rates(rates, spec["precision"], spec["matmul_size"]):
        print(line)
    for name, value in report_dict["overhead_vs_bare"].items():
        print(f"{name}: {100 * value:+.1f}%")
    block_ratios = report.block_ratios(results)
    report_dict["speed_vs_pytorch_per_block"] = block_ratios
    for name, value in report_dict["speed_vs_pytorch"].items():
        blocks = block_ratios[name]
        print(
            f"{name}: {value:.2f}× (> 1: ours faster; per block {min(blocks):.2f}–{max(blocks):.2f}, "
            f"{len(blocks)} blocks, each process alone in its turn)"
        )
    _write_json(args.json_path, report_dict)
    return report_dict


def main(argv=None):
    suite, rest = split_suite(sys.argv[1:] if argv is None else list(argv))
    if suite:
        return run_suite(suite, rest)
    args = parse_args(argv)
    if args.worker:
        if args.block_tensorflow:
            _block_tensorflow()
        from benchmarking.worker import worker_main

        worker_main(args.worker)
        return None
    from benchmarking.serving import WorkerError

    try:
        return _run(args, argv)
    except WorkerError as error:
        if error.refused:
            raise SystemExit(str(error)) from None
        raise


if __name__ == "__main__":
    main()
