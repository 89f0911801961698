"""The PyTorch side of `--compare pytorch`: a measuring process that never imports TensorFlow.

Started by the driver as `python -m benchmarking.pytorch_worker SPEC_JSON` with `recipes/`
on `PYTHONPATH` (`command`, `environment`), it builds the reference (`PyTorchRunner`),
warms it up and serves blocks on demand (`serving.serve`), so that the driver can
alternate them with our process's blocks. Its report holds the reference's statistics,
PyTorch's matmul rate in the run's precision and the versions; it checks, after the warm-up
and again when it reports, that TensorFlow was never imported into it.

`--runner MODULE:NAME` replaces the runner class (e.g. by a stand-in where PyTorch is not
installed); it takes the spec and has the runner interface plus `matmul(n)`.
"""

import argparse
import importlib
import json
import os
import sys

from benchmarking import flops, serving

DEFAULT_RUNNER = "benchmarking.pytorch_reference:PyTorchRunner"
RECIPES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Modules that must never be loaded here: the comparison measures PyTorch alone.
FORBIDDEN = ("tensorflow", "keras")


def command(spec, runner=None):
    """The command line that starts this worker for `spec`."""
    extra = ["--runner", runner] if runner else []
    return [sys.executable, "-m", "benchmarking.pytorch_worker", json.dumps(spec), *extra]


# glibc settings that keep PyTorch's freed buffers in its process. PyTorch's CPU allocator
# frees every large activation buffer to glibc, which unmaps it, and the next step faults it
# back in page by page; while our process runs in between, that refault made a ResNet-50
# 224 px float32 step 6-11 s instead of 4.8 s (2-core Xeon VM, torch 2.14). PyTorch's
# performance guide recommends jemalloc/tcmalloc for the same reason; these need no library.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**40)}


def environment():
    """The worker's environment: this process's, with `recipes/` first on `PYTHONPATH` (so
    `-m` finds the package) and `KEEP_FREED_MEMORY` where the caller has not set those names."""
    path = os.pathsep.join([RECIPES, *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**KEEP_FREED_MEMORY, **os.environ, "PYTHONPATH": path}


def loaded_forbidden_modules():
    """The modules of `FORBIDDEN` that this process has imported."""
    return [name for name in FORBIDDEN if name in sys.modules]


def check_alone(when):
    """Fails if TensorFlow or Keras was imported into this process."""
    loaded = loaded_forbidden_modules()
    if loaded:
        raise RuntimeError(
            f"the PyTorch worker imported {', '.join(loaded)} ({when}): the comparison would measure "
            "PyTorch beside them, not alone"
        )


def load_runner(path):
    """`"package.module:Name"` → the object it names."""
    module_name, _, name = path.partition(":")
    if not name:
        raise ValueError(f"expected MODULE:NAME, got {path!r}")
    return getattr(importlib.import_module(module_name), name)


def versions(runner):
    """What ran: the runner's facts, and whether TensorFlow or Keras were ever loaded."""
    return {
        **{k: v for k, v in runner.extra.items() if k.startswith("torch")},
        "framework": "pytorch",
        "malloc": {name: os.environ.get(name) for name in KEEP_FREED_MEMORY},
        "tensorflow_imported": "tensorflow" in sys.modules,
        "keras_imported": "keras" in sys.modules,
        "python": sys.version.split()[0],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description="The PyTorch reference's measuring process.")
    parser.add_argument("spec", help="the benchmark spec, as JSON")
    parser.add_argument("--runner", default=DEFAULT_RUNNER, help="MODULE:NAME of the runner class")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)
    runner_class = load_runner(args.runner)

    def make_runner(spec, measure):
        try:
            return runner_class(spec)
        except (ImportError, ValueError) as error:  # PyTorch missing; float16 without a GPU
            return serving.refuse(str(error))

    runners, records = serving.set_up(spec, ["pytorch"], make_runner)
    check_alone("after the warm-up steps")
    runner = runners["pytorch"]

    def finish():
        check_alone("when reporting")
        backend = spec.get("paired_backend", "pytorch")
        results = serving.results(spec, runners, records, backend, framework="pytorch")
        rate = flops.matmul_flops_per_second(runner.matmul(spec["matmul_size"]), spec["matmul_size"])
        return {"results": results, "matmul_flops_per_s": {"pytorch": rate}, "versions": versions(runner)}

    serving.serve(spec, runners, records, finish)


if __name__ == "__main__":
    main()
