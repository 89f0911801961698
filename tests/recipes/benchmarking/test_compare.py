"""benchmarking.compare (`recipes/benchmark.py --compare pytorch`): ours and PyTorch, each in
a process of its own, blocks in turns; end to end with a stand-in for the PyTorch runner,
so that PyTorch need not be installed (tests/recipes/benchmarking/test_pytorch_reference.py
runs the real one where it is)."""

import json
import os
import subprocess
import sys

import pytest
from benchmarking import compare, precision, serving, worker
from helpers import REPO

HERE = os.path.dirname(os.path.abspath(__file__))
RECIPES = os.path.join(REPO, "recipes")
SCRIPT = os.path.join(RECIPES, "benchmark.py")
SPEC = {"steps": 2, "repeats": 2, "warmup": 1, "batch_size": 8, "measures": ["fit", "bare", "pytorch"]}


def test_each_side_gets_its_own_process_and_entry_point(monkeypatch):
    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    specs = compare.server_specs(SCRIPT, SPEC, "jax", [["fit", "bare"]], flags=["--block-tensorflow"])
    (ours_label, ours, ours_env), (theirs_label, theirs, theirs_env) = specs
    assert (ours_label, theirs_label) == ("jax", "pytorch")
    assert ours[:3] == [sys.executable, os.path.abspath(SCRIPT), "--worker"] and ours[4:] == [
        "--block-tensorflow"
    ]
    assert json.loads(ours[3]) == {**SPEC, "measures": ["fit", "bare"], "serve": True}
    assert ours_env["KERAS_BACKEND"] == "jax"
    assert ours_env["PYTHONPATH"].split(os.pathsep)[0] == RECIPES
    # Two processes share the device: neither framework may take all of a GPU's memory first.
    assert ours_env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert ours_env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert theirs[1:3] == ["-m", "benchmarking.pytorch_worker"]
    assert json.loads(theirs[3]) == {**SPEC, "measures": ["pytorch"], "paired_backend": "jax"}
    assert theirs_env["PYTHONPATH"].split(os.pathsep)[0] == RECIPES


def test_isolated_measures_get_one_process_each():
    specs = compare.server_specs(SCRIPT, SPEC, "tensorflow", [["fit"], ["bare"]])
    assert [label for label, _, _ in specs] == ["tensorflow: fit", "tensorflow: bare", "pytorch"]


def _result(measure, s_per_step, **extra):
    return {"backend": "tensorflow", "measure": measure, "s_per_step": s_per_step, **extra}


def test_reports_merge_with_one_flop_count_and_the_fastest_matmul_as_peak():
    payloads = {
        "tensorflow": {
            "results": [_result("fit", 0.5), _result("bare", 0.4)],
            "matmul_flops_per_s": {"tensorflow": 100e9},
            "step_flops": 20e9,
            "versions": {"keras": "3"},
        },
        "pytorch": {
            "results": [_result("pytorch", 0.25, framework="pytorch")],
            "matmul_flops_per_s": {"pytorch": 200e9},
            "versions": {"torch": "2", "tensorflow_imported": False},
        },
    }
    merged = compare.merge(SPEC, payloads)
    assert [r["measure"] for r in merged["results"]] == ["fit", "bare", "pytorch"]
    assert merged["matmul_flops_per_s"] == {"tensorflow": 100e9, "pytorch": 200e9}
    assert merged["step_flops"] == 20e9
    fit, _, theirs = merged["results"]
    assert fit["flops_per_s"] == pytest.approx(40e9) and fit["matmul_share"] == pytest.approx(0.2)
    assert theirs["flops_per_s"] == pytest.approx(80e9) and theirs["matmul_share"] == pytest.approx(0.4)
    assert merged["versions"]["pytorch"]["tensorflow_imported"] is False


def _run(tmp_path, *args):
    path = tmp_path / "compare.json"
    env = {**os.environ, "PYTHONPATH": HERE, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, SCRIPT, "--smoke", "--compare", "pytorch", "--pytorch-runner",
               "stub_runners:StubRunner", "--json", str(path), *args]  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads(path.read_text()), proc


@pytest.mark.slow
@pytest.mark.tensorflow_only  # a subprocess with its own backend: once is enough
def test_compare_run_alternates_our_process_with_the_pytorch_process(tmp_path):
    report, proc = _run(tmp_path, "--precision", "bfloat16", "--repeats", "3")
    assert report["precision"] == "bfloat16" and report["separate_processes"] is True
    assert report["schedule"] == {
        "tensorflow": [[r, side] for r in (1, 2, 3) for side in ("tensorflow", "pytorch")]
    }
    order = [line.split("]")[0] for line in proc.stderr.splitlines() if line.startswith("[block")]
    assert order == [f"[block {r}, {side}" for r in (1, 2, 3) for side in ("tensorflow", "pytorch")]
    fit, theirs = report["results"]
    assert (fit["measure"], theirs["measure"], theirs["framework"]) == ("fit", "pytorch", "pytorch")
    assert fit["precision"] == theirs["precision"] == "bfloat16" and theirs["torch_autocast"] == "bfloat16"
    assert theirs["modules_at_setup"] == theirs["modules_at_last_block"] == []
    assert report["versions"]["tensorflow"]["dtype_policy"] == "mixed_bfloat16"
    assert report["versions"]["pytorch"]["tensorflow_imported"] is False
    assert len(fit["blocks"]) == len(theirs["blocks"]) == 3
    ratio = report["speed_vs_pytorch"]["tensorflow:fit_vs_pytorch"]
    assert ratio == pytest.approx(theirs["s_per_step"] / fit["s_per_step"])
    assert len(report["speed_vs_pytorch_per_block"]["tensorflow:fit_vs_pytorch"]) == 3
    assert theirs["step_flops"] == fit["step_flops"] == report["step_flops"] > 0
    assert set(report["matmul_flops_per_s"]) == {"tensorflow", "pytorch (paired with tensorflow)"}
    assert set(report["machine"]["cpu"]["speed_flags"]) == {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("CPU: ") and "amx_bf16" in lines[0]
    assert any(line.startswith("| torch   | pytorch |") and "| bf16 " in line for line in lines)
    assert any(line.startswith("bfloat16 matmul 256³ (tensorflow):") for line in lines)
    assert "tensorflow:fit_vs_pytorch:" in proc.stdout


@pytest.mark.tensorflow_only
def test_our_worker_refuses_float16_without_a_gpu():
    if precision.gpu_visible():
        pytest.skip("a GPU is present")
    spec = {"precision": "float16", "dtype_policy": "mixed_float16", "measures": ["fit"]}
    with pytest.raises(
        serving.WorkerError, match=r"float16 .* no GPU is present.*tensorflow sees none"
    ) as error:
        worker.spawn(SCRIPT, spec, "tensorflow")
    assert error.value.refused
