"""benchmarking.conv_rates: the op-by-op TensorFlow-vs-JAX convolution rates behind the
documented JAX-on-CPU figures, and `recipes/benchmark.py --conv-rates` end to end."""

import os
import subprocess
import sys

import pytest
from benchmarking import conv_rates
from helpers import REPO

SCRIPT = os.path.join(REPO, "recipes", "benchmark.py")

# Lines of optimised HLO as jaxlib 0.10.2 compiled them for the ResNet-18 shapes (abridged).
SWAPPED = (
    "%convolution.5 = f32[128,2,2,256]{3,2,1,0} convolution(%copy_reverse_fusion, %add.10), "
    "window={size=2x2 rhs_reversal=1x1}, dim_labels=01fb_o01i->f01b"
)
CANONICAL = (
    "%conv.0 = f32[128,4,4,128]{3,2,1,0} convolution(%param_0, %param_1), "
    'window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, metadata={op_name="conv"}'
)
YNN_FUSION = (
    "%ynn_fusion = f32[128,4,4,128]{3,2,1,0} fusion(%x.1, %w.1), kind=kCustom, calls=%fused_computation, "
    'backend_config={"outer_dimension_partitions":[],"fusion_config":{"kind":"__ynn_fusion"}}'
)


def test_nominal_flops_of_a_3x3_convolution():
    # 2 FLOPs × 128 images × 2·2 positions × 256·256 channel pairs × 9 taps
    assert conv_rates.conv3x3_flops(128, 2, 256) == 2 * 128 * 4 * 65536 * 9
    assert conv_rates.conv3x3_flops(1, 1, 1) == 18


@pytest.mark.parametrize(
    "hlo, path",
    [
        (SWAPPED, "generic loop"),
        (CANONICAL, "Eigen"),
        (CANONICAL + "\n" + SWAPPED, "generic loop"),  # one slow convolution is enough
        (CANONICAL.replace("pad=1_1x1_1", "pad=1_1x1_1 rhs_reversal=1x1"), "generic loop"),
        (CANONICAL + "\n" + YNN_FUSION, "YNNPACK"),
        (YNN_FUSION.replace("__ynn_fusion", "__xnn_fusion"), "XNNPACK"),
        ("%add = f32[4] add(%a, %b)", "none"),
    ],
)
def test_xla_convolution_path_reads_the_compiled_module(hlo, path):
    assert conv_rates.xla_convolution_path(hlo) == path


def test_rates_table_has_one_column_per_run():
    rows = [{"shape": "1×1×512", "op": "forward", "gflops_per_s": 19.44, "path": "generic loop"}]
    other = [{"shape": "1×1×512", "op": "forward", "gflops_per_s": 146.7, "path": "oneDNN"}]
    table = conv_rates.format_conv_rates({"jax": rows, "tensorflow": other}).splitlines()
    assert table[0] == "| shape | op | jax | tensorflow |"
    assert table[2] == "| 1×1×512 | forward | 19.4 (generic loop) | 146.7 (oneDNN) |"


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="got 'torch'"):
        conv_rates.conv_op_rates("torch")


def test_tensorflow_rates_cover_every_op_and_shape():
    pytest.importorskip("tensorflow")
    rows = conv_rates.conv_op_rates("tensorflow", batch=2, shapes=((4, 8), (2, 8)), repeats=1)
    assert [(r["shape"], r["op"]) for r in rows] == [
        (shape, op) for shape in ("4×4×8", "2×2×8") for op in conv_rates.CONV_OPS
    ]
    for row in rows:
        assert row["seconds"] > 0
        assert row["gflops_per_s"] == pytest.approx(
            conv_rates.conv3x3_flops(2, int(row["shape"][0]), 8) / row["seconds"] / 1e9
        )
        assert row["path"] in ("oneDNN", "Eigen")


def test_xla_cpu_emits_3x3_convolutions_on_maps_smaller_than_the_kernel_as_generic_loops():
    """The measured cause of JAX's slower CPU step (jaxlib 0.10.2): XLA swaps the operands of a
    3×3 convolution on a 2×2 or 1×1 map, and XLA:CPU then emits it as plain loops instead of
    a library kernel. If this fails after a JAX upgrade, re-measure and update the docs."""
    jax = pytest.importorskip("jax")
    if jax.default_backend() != "cpu":
        pytest.skip(f"XLA:CPU only (JAX runs on {jax.default_backend()})")
    rows = conv_rates.conv_op_rates("jax", batch=2, shapes=((4, 8), (2, 8), (1, 8)), repeats=1)
    paths = {(r["shape"], r["op"]): r["path"] for r in rows}
    assert paths[("4×4×8", "forward")] != "generic loop", paths
    assert paths[("4×4×8", "input gradient")] != "generic loop", paths
    for shape in ("2×2×8", "1×1×8"):
        assert paths[(shape, "forward")] == "generic loop", paths
        assert paths[(shape, "input gradient")] == "generic loop", paths


def test_encoder_forward_backward_is_timed_on_the_current_backend():
    seconds = conv_rates.encoder_forward_backward_seconds(batch=2, image_size=32, repeats=1)
    assert 0 < seconds < 60


@pytest.mark.tensorflow_only
def test_benchmark_recipe_conv_rates_on_both_backends():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [
        sys.executable,
        SCRIPT,
        "--conv-rates",
        "--backend",
        "both",
        "--repeats",
        "1",
        "--batch-size",
        "2",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.splitlines()
    header = lines.index("| shape | op | tensorflow, round 1 | jax, round 1 |")
    assert len(lines) - header == 2 + len(conv_rates.RESNET18_32PX_SHAPES) * len(conv_rates.CONV_OPS)
    assert "| 2×2×256 | forward |" in result.stdout
    assert "[jax, round 1] encoder forward+backward:" in result.stderr
