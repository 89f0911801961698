"""benchmarking.report: ratios, FLOP rates and the table."""

import pytest
from benchmarking import report

SPEC = {
    "depth": 18,
    "width": 64,
    "image_size": 32,
    "batch_size": 128,
    "projector": [2048, 2048],
    "augment": "cifar",
}


def _result(backend, measure, s_per_step):
    return {
        "backend": backend, "measure": measure, "s_per_step": s_per_step, "s_per_step_min": s_per_step,
        "s_per_step_max": s_per_step, "pairs_per_s": 128 / s_per_step, "steps_per_execution": 1,
        "rss_growth_mib": None, "peak_rss_mib": 900.0, "load1": [1.0, 3.0],
    }  # fmt: skip


def test_overhead_is_relative_to_the_bare_step_of_the_same_backend():
    results = [
        {"backend": "tensorflow", "measure": "bare", "s_per_step": 2.0},
        {"backend": "tensorflow", "measure": "fit", "s_per_step": 2.1},
        {"backend": "tensorflow", "measure": "pipeline", "s_per_step": 0.5},
        {"backend": "jax", "measure": "fit", "s_per_step": 9.0},
    ]
    assert report.overhead(results) == pytest.approx({"tensorflow:fit_vs_bare": 0.05})


def test_speed_ratio_is_reference_time_over_ours_per_backend():
    results = [
        _result("tensorflow", "fit", 0.4), _result("tensorflow", "pytorch", 0.5),
        _result("tensorflow", "pipeline", 0.1),
        _result("jax", "fit", 2.0), _result("jax", "pytorch", 0.6),
    ]  # fmt: skip
    assert report.speed_ratios(results) == pytest.approx(
        {"tensorflow:fit_vs_pytorch": 1.25, "jax:fit_vs_pytorch": 0.3}
    )
    assert report.speed_ratios(results[:1]) == {}


def test_rates_and_matmul_share():
    results = [
        _result("tensorflow", "fit", 0.5),
        _result("tensorflow", "pytorch", 2.0),
        _result("tensorflow", "pipeline", 0.1),
    ]
    report.add_rates(results, step_flops=100e9, matmul_flops_per_s=400e9)
    assert results[0]["flops_per_s"] == pytest.approx(200e9) and results[0]["matmul_share"] == pytest.approx(
        0.5
    )
    assert results[1]["flops_per_s"] == pytest.approx(50e9) and results[1]["matmul_share"] == pytest.approx(
        0.125
    )
    assert "flops_per_s" not in results[2]
    table = report.format_table(SPEC, results).splitlines()
    header = [cell.strip() for cell in table[0].split("|")[1:-1]]
    assert header[6:12] == ["precision", "s/step", "pairs/s", "min–max s/step", "GFLOP/s", "% matmul"]
    fit_row = [cell.strip() for cell in table[2].split("|")[1:-1]]
    assert fit_row[:3] == ["tf", "fit", "R18"] and fit_row[6] == "fp32" and fit_row[10:12] == ["200", "50"]
    assert fit_row[-1] == "1.0–3.0"
    assert [cell.strip() for cell in table[4].split("|")[1:-1]][2] == "cifar"


def test_table_names_the_precision_and_the_pytorch_process():
    ours = {**_result("tensorflow", "fit", 0.5), "precision": "bfloat16"}
    theirs = {**_result("tensorflow", "pytorch", 0.6), "precision": "bfloat16", "framework": "pytorch"}
    pipeline = {**_result("tensorflow", "pipeline", 0.1), "precision": "bfloat16"}
    rows = [
        [cell.strip() for cell in line.split("|")[1:-1]]
        for line in report.format_table(SPEC, [ours, theirs, pipeline]).splitlines()[2:]
    ]
    assert [(row[0], row[1], row[6]) for row in rows] == [
        ("tf", "fit", "bf16"),
        ("torch", "pytorch", "bf16"),
        ("tf", "pipeline", "-"),
    ]


def test_machine_line_names_the_cpu_and_its_speed_flags():
    flags = {"avx2": True, "avx512f": True, "avx512_bf16": True, "amx_bf16": False}
    line = report.format_machine({"cpus_usable": 2, "cpu": {"model": "Xeon X", "speed_flags": flags}})
    assert line == "CPU: Xeon X, 2 usable; avx2 yes, avx512f yes, avx512_bf16 yes, amx_bf16 no"
    unknown = report.format_machine({"cpu_count": 4, "cpu": {"model": None, "speed_flags": {}}})
    assert unknown.startswith("CPU: unknown, 4 usable; avx2 unknown")


def test_matmul_lines_say_the_precision():
    lines = report.format_matmul_rates({"tensorflow": 1542e9, "pytorch": 2548e9}, "bfloat16", 2048)
    assert lines == [
        "bfloat16 matmul 2048³ (tensorflow): 1542 GFLOP/s",
        "bfloat16 matmul 2048³ (pytorch): 2548 GFLOP/s",
    ]


def test_block_ratios_pair_blocks_that_ran_side_by_side():
    results = [
        {"backend": "tensorflow", "measure": "fit", "blocks": [0.5, 0.4, 0.6]},
        {"backend": "tensorflow", "measure": "pipeline", "blocks": [0.01, 0.01, 0.01]},
        {"backend": "tensorflow", "measure": "pytorch", "blocks": [0.6, 0.6, 0.6]},
        {"backend": "jax", "measure": "fit", "blocks": [1.0]},  # no PyTorch in the JAX run
    ]
    assert report.block_ratios(results) == {"tensorflow:fit_vs_pytorch": pytest.approx([1.2, 1.5, 1.0])}
