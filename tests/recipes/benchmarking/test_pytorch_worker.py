"""benchmarking.pytorch_worker: the PyTorch reference's own measuring process, which never
imports TensorFlow (checked with stand-in runners, so PyTorch need not be installed)."""

import json
import os
import sys

import pytest
from benchmarking import pytorch_reference, pytorch_worker, serving
from helpers import REPO, run_python

HERE = os.path.dirname(os.path.abspath(__file__))
RECIPES = os.path.join(REPO, "recipes")
SPEC = {"steps": 2, "warmup": 1, "repeats": 2, "batch_size": 4, "matmul_size": 8,
        "precision": "bfloat16", "measures": ["pytorch"], "paired_backend": "tensorflow"}  # fmt: skip


def _environment():
    env = pytorch_worker.environment()
    return {**env, "PYTHONPATH": os.pathsep.join([HERE, env["PYTHONPATH"]])}


def _start(runner):
    return serving.start_in_turn(
        [("pytorch", pytorch_worker.command(SPEC, runner=f"stub_runners:{runner}"), _environment())]
    )[0]


def test_it_is_started_as_a_module_with_recipes_on_its_path():
    command = pytorch_worker.command(SPEC)
    assert command[:3] == [sys.executable, "-m", "benchmarking.pytorch_worker"]
    assert json.loads(command[3]) == SPEC and len(command) == 4
    assert pytorch_worker.command(SPEC, runner="m:R")[4:] == ["--runner", "m:R"]
    path = pytorch_worker.environment()["PYTHONPATH"].split(os.pathsep)
    assert os.path.samefile(path[0], RECIPES)


def test_the_worker_keeps_freed_memory_unless_the_caller_set_it(monkeypatch):
    for name in pytorch_worker.KEEP_FREED_MEMORY:
        monkeypatch.delenv(name, raising=False)
    env = pytorch_worker.environment()
    assert {name: env[name] for name in pytorch_worker.KEEP_FREED_MEMORY} == {
        "MALLOC_MMAP_MAX_": "0",
        "MALLOC_TRIM_THRESHOLD_": str(2**40),
    }
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "65536")
    assert pytorch_worker.environment()["MALLOC_MMAP_MAX_"] == "65536"


def test_a_pytorch_block_times_its_steps_after_one_untimed_step():
    """As our `fit` block drops its first step, so does PyTorch's: neither side is charged
    for coming back after the other process ran."""
    calls = []
    runner = object.__new__(pytorch_reference.PyTorchRunner)
    runner.views = ("a", "b")
    runner.step = lambda a, b: calls.append((a, b)) or 1.0
    assert len(runner.block(2)) == 2 and len(calls) == 3
    assert len(runner.warm_up(2)) == 2 and len(calls) == 5


def test_its_modules_import_no_framework():
    """The worker, the reference module and the driver's modules load neither TensorFlow nor
    Keras (nor PyTorch) when imported; the driver builds a spec without them too."""
    out = run_python(
        "import sys\n"
        "import benchmarking.pytorch_worker, benchmarking.pytorch_reference, benchmarking.compare\n"
        "import benchmarking.versus_env, benchmarking.report\n"
        "import benchmark\n"
        "benchmark.build_spec(benchmark.parse_args(['--smoke', '--precision', 'bfloat16']))\n"
        "print('LOADED', sorted(m for m in ('tensorflow', 'keras', 'keras_barlow', 'torch', 'jax') "
        "if m in sys.modules))\n",
        env={"PYTHONPATH": RECIPES},
    )
    assert "LOADED []" in out


def test_worker_serves_blocks_without_loading_tensorflow():
    server = _start("StubRunner")
    assert server.ready["warmup"] == {"pytorch": [0.003]}
    blocks = [server.block(), server.block()]
    assert [b["blocks"] for b in blocks] == [{"pytorch": [0.002, 0.002]}] * 2
    payload = server.report()
    assert payload["versions"]["tensorflow_imported"] is False
    assert payload["versions"]["keras_imported"] is False
    assert payload["versions"]["framework"] == "pytorch" and payload["versions"]["torch"] == "stub"
    assert payload["versions"]["malloc"] == {**pytorch_worker.KEEP_FREED_MEMORY, **{
        name: os.environ[name] for name in pytorch_worker.KEEP_FREED_MEMORY if name in os.environ
    }}  # fmt: skip
    (result,) = payload["results"]
    assert result["modules_at_setup"] == [] and result["modules_at_last_block"] == []
    assert (result["measure"], result["backend"], result["framework"]) == ("pytorch", "tensorflow", "pytorch")
    assert result["precision"] == "bfloat16" and result["torch_autocast"] == "bfloat16"
    assert result["s_per_step"] == pytest.approx(0.002) and result["blocks"] == pytest.approx([0.002, 0.002])
    assert set(payload["matmul_flops_per_s"]) == {"pytorch"}


def test_worker_fails_if_tensorflow_was_loaded_into_it():
    with pytest.raises(serving.WorkerError, match=r"imported tensorflow \(after the warm-up steps\)"):
        _start("TensorFlowLoadingRunner")


def test_a_refused_precision_reaches_the_driver_as_a_refusal():
    with pytest.raises(serving.WorkerError, match=r"float16 .* no GPU is present") as error:
        _start("RefusingRunner")
    assert error.value.refused


def test_runner_paths_are_module_colon_name():
    assert pytorch_worker.load_runner("benchmarking.serving:Server") is serving.Server
    with pytest.raises(ValueError, match="expected MODULE:NAME"):
        pytorch_worker.load_runner("benchmarking.serving")
