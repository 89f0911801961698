"""benchmarking.accelerator (`recipes/benchmark.py --suite accelerator`): the plan per device,
the refusal without an accelerator, one process per point, and a failing point (out of
memory, killed, hung) recorded as an error row while the suite goes on."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import pytest
from benchmarking import accelerator
from helpers import REPO

SCRIPT = os.path.join(REPO, "recipes", "benchmark.py")
NO_DEVICE = {"gpu": [], "tpu": []}


def _grid(points):
    return [(p["dtype_policy"], p["xla"], p["batch_size"]) for p in points]


def test_gpu_plan_with_tensorflow_is_three_precisions_by_xla_by_three_batch_sizes():
    points = accelerator.plan("gpu", "tensorflow")
    assert len(points) == 18
    assert _grid(points)[:4] == [
        ("float32", False, 64), ("float32", False, 128), ("float32", False, 256), ("float32", True, 64),
    ]  # fmt: skip
    assert {(p["precision"], p["dtype_policy"]) for p in points} == {
        ("float32", "float32"), ("float16", "mixed_float16"), ("bfloat16", "mixed_bfloat16"),
    }  # fmt: skip
    assert {p["batch_size"] for p in points} == {64, 128, 256} and {p["xla"] for p in points} == {False, True}
    assert accelerator.speedup_reference(points) == ("float32", False)


def test_tpu_and_jax_plans_always_compile_and_tpus_have_no_float16():
    tpu = accelerator.plan("tpu", "jax")
    assert _grid(tpu) == [
        (policy, True, batch) for policy in ("float32", "mixed_bfloat16") for batch in (64, 128, 256)
    ]
    assert accelerator.speedup_reference(tpu) == ("float32", True)
    assert {p["dtype_policy"] for p in accelerator.plan("gpu", "jax")} == {
        "float32", "mixed_float16", "mixed_bfloat16",
    }  # fmt: skip
    with pytest.raises(ValueError, match="float16 is not a TPU precision"):
        accelerator.plan("tpu", "jax", precisions=("float16",))
    with pytest.raises(ValueError, match="JAX, which always compiles"):
        accelerator.plan("gpu", "jax", xla=(False, True))


def test_cpu_smoke_plan_and_overrides():
    smoke = accelerator.plan("cpu", "tensorflow")
    assert _grid(smoke) == [
        (policy, xla, batch)
        for policy in ("float32", "mixed_bfloat16")
        for xla in (False, True)
        for batch in (8, 16)
    ]
    with pytest.raises(ValueError, match="no GPU is present"):
        accelerator.plan("cpu", "tensorflow", precisions=("float16",))
    argv = ["--batch-sizes", "32,64,32", "--precisions", "bf16,float32", "--xla", "on"]
    args = accelerator.parse_args(argv)
    points = accelerator.plan(
        "gpu", "tensorflow", precisions=args.precisions, xla=args.xla, batch_sizes=args.batch_sizes
    )
    assert _grid(points) == [
        ("mixed_bfloat16", True, 32), ("mixed_bfloat16", True, 64),
        ("float32", True, 32), ("float32", True, 64),
    ]  # fmt: skip
    spec = accelerator.point_spec(accelerator.base_spec(False), points[0])
    assert (spec["depth"], spec["image_size"], spec["batch_size"]) == (50, 224, 32)
    assert spec["jit_compile"] == "true"
    assert (spec["dtype_policy"], spec["measures"], spec["steps"]) == ("mixed_bfloat16", ["fit"], 10)
    bad = (["--batch-sizes", "1"], ["--precisions", "int8"], ["--xla", "maybe"], ["--point-timeout", "0"])
    for argv in bad:
        with pytest.raises(SystemExit):
            accelerator.parse_args(argv)


def test_without_an_accelerator_it_refuses_in_one_line_and_points_to_smoke(monkeypatch, tmp_path):
    monkeypatch.setattr(accelerator, "device_nodes", lambda: NO_DEVICE)
    monkeypatch.setattr(accelerator, "probe", lambda backend: pytest.fail("no device node: nothing to probe"))
    path = tmp_path / "suite.json"
    with pytest.raises(SystemExit) as caught:
        accelerator.main(["--json", str(path)])
    message = str(caught.value)
    assert "\n" not in message and not path.exists()
    assert message.startswith("--suite accelerator needs a GPU (or a TPU, with --backend jax)")
    assert "no /dev/nvidia*" in message and "only the CPU" in message
    assert "`--suite accelerator --smoke` runs the suite's plan at tiny sizes on the CPU" in message


def test_a_device_node_the_framework_cannot_use_is_refused_with_what_it_sees():
    cpu_only = {"backend": "tensorflow", "tensorflow": "2.21.0", "accelerators": [],
                "devices": ["/physical_device:CPU:0"]}  # fmt: skip
    gpu_node = {"gpu": ["/dev/nvidia0"], "tpu": []}
    with pytest.raises(ValueError, match=r"/dev/nvidia0 is present, but tensorflow 2\.21\.0 sees only "
                                         r"/physical_device:CPU:0 .*--smoke"):  # fmt: skip
        accelerator.accelerator_of("tensorflow", gpu_node, cpu_only)
    with pytest.raises(ValueError, match="probe failed"):
        accelerator.accelerator_of("tensorflow", gpu_node, {"failed": "the device probe failed (x)"})
    tpu_node = {"gpu": [], "tpu": ["/dev/accel0"]}
    with pytest.raises(ValueError, match="add --backend jax"):
        accelerator.accelerator_of("tensorflow", tpu_node, cpu_only)
    tpu = {"backend": "jax", "accelerators": [{"platform": "tpu", "name": "TPU v4"}]}
    gpu = {"backend": "tensorflow", "accelerators": [{"platform": "gpu", "name": "NVIDIA H100"}]}
    assert accelerator.accelerator_of("jax", tpu_node, tpu) == "tpu"
    assert accelerator.accelerator_of("tensorflow", gpu_node, gpu) == "gpu"


def test_failures_are_named_from_what_the_process_left():
    xla_oom = "jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while allocating"
    assert accelerator.classify_failure(1, "", xla_oom)[0] == "out of memory"
    refused = accelerator.classify_failure(2, "BENCHMARK_ERROR float16 is for GPUs\n", "")[0]
    assert refused == "refused: float16 is for GPUs"
    assert accelerator.classify_failure(-11, "", "")[0] == "killed by SIGSEGV"
    crash = "Traceback\nNameError: \x1b[1mname 'x' is not defined\x1b[0m\n\nArguments:\n  • training=True\n"
    error = accelerator.classify_failure(1, "", crash)[0]
    assert error == "failed (exit code 1): NameError: name 'x' is not defined"


# A stand-in for `benchmark.py --worker SPEC`: answers like a measuring process in ~0.1 s, or
# fails the way $STUB_FAILURES says for a "precision,jit_compile,batch_size" point.
STUB_WORKER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    spec = json.loads(sys.argv[sys.argv.index("--worker") + 1])
    # the smoke run measures on the CPU: accelerators hidden from both frameworks
    assert (os.environ["CUDA_VISIBLE_DEVICES"], os.environ["JAX_PLATFORMS"]) == ("-1", "cpu")
    point = f"{spec['precision']},{spec['jit_compile']},{spec['batch_size']}"
    failure = json.loads(os.environ["STUB_FAILURES"]).get(point)
    if failure == "oom":
        print("Traceback (most recent call last):\\n  ...\\ntensorflow.python.framework.errors_impl."
              "ResourceExhaustedError: OOM when allocating tensor with shape[16,64,112,112] and type "
              "float on /job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc", file=sys.stderr)
        sys.exit(1)
    if failure == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if failure == "hang":
        time.sleep(60)
    s = 0.1 / (2 if spec["precision"] == "bfloat16" else 1) / (1.5 if spec["jit_compile"] == "true" else 1)
    result = {"measure": "fit", "s_per_step": s, "s_per_step_min": s, "s_per_step_max": s,
              "pairs_per_s": spec["batch_size"] / s, "blocks": [s] * spec["repeats"], "warmup_s": 1.0,
              "jit_compile": spec["jit_compile"] == "true", "peak_rss_mib": 1.0, "load1": [0.5]}
    versions = {"keras": "3.x", "tensorflow": "2.x", "devices": ["/physical_device:CPU:0"]}
    payload = {"results": [result], "matmul_flops_per_s": {"tensorflow": 1e9}, "versions": versions}
    print("BENCHMARK_RESULT " + json.dumps(payload))
    """
)


def test_a_failing_point_becomes_an_error_row_and_the_suite_goes_on(tmp_path, monkeypatch, capsys):
    stub = tmp_path / "stub_worker.py"
    stub.write_text(STUB_WORKER)
    failures = {"bfloat16,false,16": "oom", "float32,true,8": "kill", "bfloat16,true,8": "hang"}
    monkeypatch.setenv("STUB_FAILURES", json.dumps(failures))
    json_path, table_path = tmp_path / "out" / "suite.json", tmp_path / "suite.md"
    argv = ["--smoke", "--point-timeout", "3", "--json", str(json_path), "--table", str(table_path)]
    report = accelerator.main(argv, script=str(stub))
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(report))
    assert report["complete"] and report["smoke"] and report["device"]["platform"] == "cpu"
    assert report["versions"] == {"keras": "3.x", "tensorflow": "2.x"} and report["date"].startswith("20")
    rows = {(r["precision"], r["xla"], r["batch_size"]): r for r in report["results"]}
    assert len(report["results"]) == 8 and len(rows) == 8
    assert rows[("bfloat16", False, 16)]["error"] == "out of memory"
    assert "OOM when allocating" in rows[("bfloat16", False, 16)]["error_detail"]
    assert rows[("float32", True, 8)]["error"].startswith("killed by SIGKILL")
    assert rows[("bfloat16", True, 8)]["error"] == "timed out after 3 s"
    ok = [r for r in report["results"] if r["status"] == "ok"]
    assert len(ok) == 5 and report["results"][-1]["status"] == "ok"  # it went on after the failures
    expected = {("float32", False, 8): 1.0, ("float32", False, 16): 1.0, ("float32", True, 16): 1.5,
                ("bfloat16", False, 8): 2.0, ("bfloat16", True, 16): 3.0}  # fmt: skip
    assert {key: r["speedup"] for key, r in rows.items() if r["status"] == "ok"} == pytest.approx(expected)
    assert all(r["images_per_s"] == r["batch_size"] / r["s_per_step"] for r in ok)
    table = table_path.read_text()
    assert "| precision | XLA | batch | images/s | s/step | speed-up vs float32 no-XLA | note |" in table
    assert "| mixed_bfloat16 | off | 16 | – | – | – | out of memory |" in table
    assert "| mixed_bfloat16 | on | 16 | 480.0 | 0.0333 | 3.00× |  |" in table
    assert len([line for line in table.splitlines() if line.startswith("| ") and "batch" not in line]) == 8
    assert table in capsys.readouterr().out


def test_smoke_run_measures_every_point_in_its_own_process(tmp_path):
    """The real measuring processes, on this pass's backend: two points (of the eight of
    `--smoke`, which take ~10 s of CPU each, mostly importing TensorFlow)."""
    backend = keras.backend.backend()
    json_path, table_path = tmp_path / "smoke.json", tmp_path / "smoke.md"
    command = [sys.executable, SCRIPT, "--suite", "accelerator", "--smoke", "--backend", backend,
               "--batch-sizes", "8", "--precisions", "float32,bfloat16", "--xla", "on",
               "--json", str(json_path), "--table", str(table_path)]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(json_path.read_text())
    assert [(r["status"], r["dtype_policy"], r["jit_compile"]) for r in report["results"]] == [
        ("ok", "float32", True), ("ok", "mixed_bfloat16", True),
    ], [r.get("error_detail") for r in report["results"]]  # fmt: skip
    assert report["results"][0]["speedup"] == 1.0 and report["speedup_reference"] == ["float32", True]
    assert report["versions"]["keras"] == keras.version() and report["spec"]["depth"] == 0
    assert "[accelerator 2/2] mixed_bfloat16, XLA on, batch 8:" in proc.stderr
    table = table_path.read_text()
    assert "speed-up vs float32 XLA" in table and "| mixed_bfloat16 | on | 8 |" in table
    assert table in proc.stdout
