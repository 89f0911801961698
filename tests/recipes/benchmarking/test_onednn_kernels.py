"""benchmarking.onednn_kernels (`recipes/benchmark.py --onednn-kernels`): the oneDNN kernels of
one block of steps, from `ONEDNN_VERBOSE=1`, per side; parsed from real oneDNN 3 and oneDNN 2
lines, and end to end, where the kernel counts per step follow from the architecture."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest
from benchmarking import onednn_kernels, serving
from helpers import REPO

RECIPES = os.path.join(REPO, "recipes")
SCRIPT = os.path.join(RECIPES, "benchmark.py")

# Lines as TensorFlow 2.21 (oneDNN 3.7) and PyTorch 2.14 (oneDNN 3.12) print them, abridged
# descriptors; plus a oneDNN 2 line, a creation, the graph API's header and the framework's own.
VERBOSE = textwrap.dedent(
    """\
    onednn_verbose,v1,info,oneDNN v3.7.3 (commit n/a)
    onednn_verbose,v1,primitive,info,template:operation,engine,primitive,implementation,prop_kind,exec_time
    onednn_verbose,v1,graph,info,template:operation,engine,partition_id,partition_kind,op_names,exec_time
    onednn_verbose,v1,primitive,create:cache_miss,cpu,convolution,brgconv_1x1:avx512_core,forward_training,src:f32,,,mb16,9.5
    onednn_verbose,v1,primitive,exec,cpu,convolution,brgconv_1x1:avx512_core,forward_training,src:f32::blocked:acdb::f0,,alg:convolution_direct,mb16_ic64oc256_ih56oh56kh1,1.25
    onednn_verbose,v1,primitive,exec,cpu,convolution,brgconv_1x1:avx512_core,forward_training,src:f32::blocked:acdb::f0,,alg:convolution_direct,mb16_ic64oc256,0.75
    onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32::blocked:cdba::f0,,,64x3x7x7,2.2002
    onednn_verbose,v1,primitive,exec,cpu,batch_normalization,bnorm_tbb_jit:avx512_core,backward,data:f32::blocked:acdb::f0,flags:CH,,mb16ic64ih56iw56,0.5
    onednn_verbose,exec,cpu,convolution,jit:avx2,backward_weights,src_f32::blocked:aBcd8b:f0,,alg:convolution_direct,mb2_ic8oc8,3
    onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx2,backward_weights,src:f32,,alg:convolution_direct,mb2,not-a-time
    BENCHMARK_READY {}
    """
).splitlines()


def test_counts_and_times_every_execution_and_nothing_else():
    assert onednn_kernels.parse_verbose(VERBOSE) == {
        "convolution forward_training brgconv_1x1:avx512_core": {"calls": 2, "ms": 2.0},
        "reorder undef jit:uni": {"calls": 1, "ms": 2.2002},
        "batch_normalization backward bnorm_tbb_jit:avx512_core": {"calls": 1, "ms": 0.5},
        "convolution backward_weights jit:avx2": {"calls": 1, "ms": 3.0},
    }
    assert onednn_kernels.parse_verbose(["", "onednn_verbose", "onednn_verbose,v1,primitive,exec"]) == {}


def test_per_step_and_per_primitive():
    kernels = onednn_kernels.per_step(onednn_kernels.parse_verbose(VERBOSE), steps=2)
    assert kernels["convolution forward_training brgconv_1x1:avx512_core"] == {"calls": 1.0, "ms": 1.0}
    assert onednn_kernels.by_primitive(kernels) == pytest.approx(
        {"convolution": 2.5, "reorder": 1.1001, "batch_normalization": 0.25}
    )
    assert list(onednn_kernels.by_primitive(kernels)) == ["convolution", "reorder", "batch_normalization"]


def test_table_puts_the_slowest_kernel_first_and_marks_kernels_one_side_lacks():
    trace = {"steps": 3, "s_per_step": 0.5, "load1": 1.0}
    traces = {
        "tensorflow": {
            **trace,
            "kernels": {"conv fwd a": {"calls": 2, "ms": 1.0}, "bn fwd b": {"calls": 1, "ms": 0.5}},
        },
        "pytorch": {**trace, "kernels": {"conv fwd a": {"calls": 2, "ms": 3.0}}},
        "jax": {**trace, "kernels": {}},
    }
    lines = onednn_kernels.format_kernels(traces).splitlines()
    assert lines[0] == (
        "| kernel (primitive direction implementation) | tensorflow: calls | tensorflow: ms "
        "| pytorch: calls | pytorch: ms | jax: calls | jax: ms |"
    )
    assert lines[2] == "| conv fwd a | 2 | 1.0 | 2 | 3.0 | – | – |"
    assert lines[3] == "| bn fwd b | 1 | 0.5 | – | – | – | – |"
    assert lines[5].startswith("tensorflow: 2 ms of oneDNN kernels per step (conv 1, bn 0); step 0.500 s")
    assert lines[6].startswith("pytorch: 3 ms of oneDNN kernels per step (conv 3)")
    assert lines[7] == "jax: no oneDNN kernel ran (oneDNN off, or a backend without it)"


PRINTING_WORKER = textwrap.dedent(
    """
    from benchmarking import serving

    class Runner:
        spe, extra = 1, {}

        def warm_up(self, calls):
            print("printed during the warm-up", flush=True)
            return [0.0] * calls

        def block(self, steps):
            print("printed during the block", flush=True)
            return [0.01] * steps

    spec = {"steps": 2, "warmup": 1, "batch_size": 2}
    runners, records = serving.set_up(spec, ["m"], lambda spec, m: Runner())
    serving.serve(spec, runners, records, lambda: {})
    """
)


def test_the_driver_keeps_what_a_worker_printed_during_a_block():
    env = {**os.environ, "PYTHONPATH": RECIPES}
    (server,) = serving.start_in_turn([("ours", [sys.executable, "-c", PRINTING_WORKER], env)])
    try:
        lines = []
        block = server.block(other_lines=lines)
        assert block["blocks"] == {"m": [0.01, 0.01]}
        assert lines == ["printed during the block"]
        assert server.block()["blocks"] == {"m": [0.01, 0.01]}  # without a list: dropped
        assert server.report() == {}
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


def _run(tmp_path, *args):
    path = tmp_path / "kernels.json"
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--onednn-kernels", "--optimizer", "sgd", "--steps", "2", "--warmup", "1",
         "--json", str(path), *args],
        env={**os.environ}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads(path.read_text())["onednn_kernels"], proc.stdout


def _calls(kernels, primitive, direction):
    return sum(k["calls"] for name, k in kernels.items() if name.startswith(f"{primitive} {direction} "))


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_smoke_model_runs_one_convolution_kernel_per_layer_view_and_direction(tmp_path):
    """The smoke encoder has two convolutions: per step and view, each runs forward and its
    filter gradient, and only the second its input gradient (the images need none)."""
    traces, stdout = _run(tmp_path, "--smoke")
    assert list(traces) == ["tensorflow"]
    trace = traces["tensorflow"]
    assert trace["steps"] == 3  # --steps 2 and the block's untimed first one
    kernels = trace["kernels"]
    assert _calls(kernels, "convolution", "forward_training") == 4
    assert _calls(kernels, "convolution", "backward_weights") == 4
    assert _calls(kernels, "convolution", "backward_data") == 2
    assert _calls(kernels, "batch_normalization", "forward_training") == 4  # fused: oneDNN's
    assert "| convolution forward_training " in stdout and "ms of oneDNN kernels per step" in stdout


@pytest.mark.slow
@pytest.mark.tensorflow_only
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_both_frameworks_run_the_same_convolutions_of_a_resnet_18(tmp_path):
    """ResNet-18 (20 convolutions, 64 px: no 1×1-output map, so none becomes a matrix product):
    the same convolution counts on both sides, from their own processes."""
    traces, _ = _run(
        tmp_path, "--compare", "pytorch", "--image-size", "64", "--no-small-images", "--batch-size", "4",
        "--projector", "32,32", "--matmul-size", "256",
    )  # fmt: skip
    assert list(traces) == ["tensorflow", "pytorch"]
    for side in traces.values():
        assert _calls(side["kernels"], "convolution", "forward_training") == 2 * 20
        assert _calls(side["kernels"], "convolution", "backward_weights") == 2 * 20
        assert _calls(side["kernels"], "convolution", "backward_data") == 2 * 19


def test_refuses_the_jax_backend():
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--onednn-kernels", "--smoke", "--backend", "jax"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0 and "--onednn-kernels traces TensorFlow's oneDNN kernels" in proc.stderr
