"""Tables and ratios from benchmark results (pure Python)."""

from benchmarking.precision import SHORT_NAMES
from benchmarking.timing import SPEED_FLAGS, load_range

HEADER = [
    "backend", "measure", "model", "px", "batch", "projector", "precision", "s/step", "pairs/s",
    "min–max s/step", "GFLOP/s", "% matmul", "RSS +MiB", "peak MiB", "load1",
]  # fmt: skip


def model_label(spec):
    """`R18`, `R50w32`, `conv2` ...: the encoder of a benchmark spec, in short."""
    label = f"R{spec['depth']}" if spec["depth"] else "conv2"
    return label + (f"w{spec['width']}" if spec["width"] != 64 else "")


def _row(spec, result):
    measure = result["measure"]
    if result["steps_per_execution"] > 1:
        measure += f" spe={result['steps_per_execution']}"
    if result.get("jit_compile"):
        measure += " xla"
    rate = result.get("flops_per_s")
    share = result.get("matmul_share")
    backend = "torch" if result.get("framework") == "pytorch" else result["backend"]
    precision = result.get("precision", "float32")
    return [
        {"tensorflow": "tf"}.get(backend, backend),
        measure,
        spec["augment"] if result["measure"] == "pipeline" else model_label(spec),
        str(spec["image_size"]),
        str(spec["batch_size"]),
        "-" if result["measure"] == "pipeline" else "-".join(str(d) for d in spec["projector"]),
        "-" if result["measure"] == "pipeline" else SHORT_NAMES.get(precision, precision),
        f"{result['s_per_step']:.4f}",
        f"{result['pairs_per_s']:.1f}",
        f"{result['s_per_step_min']:.4f}–{result['s_per_step_max']:.4f}",
        "-" if rate is None else f"{rate / 1e9:.0f}",
        "-" if share is None else f"{100 * share:.0f}",
        "-" if result["rss_growth_mib"] is None else f"{result['rss_growth_mib']:.0f}",
        f"{result['peak_rss_mib']:.0f}",
        load_range(result["load1"]),
    ]


def format_table(spec, results):
    """A markdown table of the results (one row per measurement)."""
    rows = [HEADER] + [_row(spec, r) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def format_machine(machine):
    """One line naming the CPU, how many CPUs the run could use, and its `SPEED_FLAGS`.

    Example:
    >>> format_machine({"cpus_usable": 2, "cpu": {"model": "Xeon", "speed_flags": {
    ...     "avx2": True, "avx512f": True, "avx512_bf16": False, "amx_bf16": False}}})
    'CPU: Xeon, 2 usable; avx2 yes, avx512f yes, avx512_bf16 no, amx_bf16 no'
    """
    cpu = machine.get("cpu") or {}
    speed = cpu.get("speed_flags") or {}
    flags = ", ".join(
        f"{flag} {'unknown' if speed.get(flag) is None else 'yes' if speed[flag] else 'no'}"
        for flag in SPEED_FLAGS
    )
    usable = machine.get("cpus_usable") or machine.get("cpu_count")
    return f"CPU: {cpu.get('model') or 'unknown'}, {usable} usable; {flags}"


def format_matmul_rates(rates, precision, n):
    """One line per framework: its `n³` matmul rate in the run's precision (the reference peak).

    Example:
    >>> format_matmul_rates({"tensorflow": 1.5e12, "pytorch": 2.5e12}, "bfloat16", 2048)
    ['bfloat16 matmul 2048³ (tensorflow): 1500 GFLOP/s', 'bfloat16 matmul 2048³ (pytorch): 2500 GFLOP/s']
    """
    return [f"{precision} matmul {n}³ ({name}): {value / 1e9:.0f} GFLOP/s" for name, value in rates.items()]


def overhead(results):
    """`fit` and `step` time over the `bare` step of the same backend, as fractions.

    Example:
    >>> overhead([{"backend": "tensorflow", "measure": "bare", "s_per_step": 2.0},
    ...           {"backend": "tensorflow", "measure": "fit", "s_per_step": 2.5}])
    {'tensorflow:fit_vs_bare': 0.25}
    """
    by = {(r["backend"], r["measure"]): r["s_per_step"] for r in results}
    out = {}
    for (backend, measure), value in by.items():
        bare = by.get((backend, "bare"))
        if bare and measure in ("fit", "step", "bare_concat"):
            out[f"{backend}:{measure}_vs_bare"] = value / bare - 1.0
    return out


def add_rates(results, *, step_flops, matmul_flops_per_s):
    """Adds `flops_per_s` and `matmul_share` to every training result, in place.

    Args:
        results: result dicts with `measure` and `s_per_step`.
        step_flops: FLOPs of one training step (`flops.barlow_twins_step_flops`).
        matmul_flops_per_s: the machine's measured matmul rate in the run's precision (the
            reference peak).

    Returns:
        `results`.
    """
    for result in results:
        if result["measure"] == "pipeline":
            continue
        result["step_flops"] = step_flops
        result["flops_per_s"] = step_flops / result["s_per_step"]
        result["matmul_share"] = result["flops_per_s"] / matmul_flops_per_s
    return results


def speed_ratios(results, reference="pytorch"):
    """Each measurement's speed relative to the `reference` measurement (> 1: faster).

    Example:
    >>> speed_ratios([{"backend": "tensorflow", "measure": "fit", "s_per_step": 0.4},
    ...               {"backend": "tensorflow", "measure": "pytorch", "s_per_step": 0.5}])
    {'tensorflow:fit_vs_pytorch': 1.25}
    """
    reference_s = {r["backend"]: r["s_per_step"] for r in results if r["measure"] == reference}
    return {
        f"{r['backend']}:{r['measure']}_vs_{reference}": reference_s[r["backend"]] / r["s_per_step"]
        for r in results
        if r["backend"] in reference_s and r["measure"] not in (reference, "pipeline")
    }


def block_ratios(results, reference="pytorch"):
    """Per timed block, each measurement's speed relative to the `reference` (> 1: faster).

    Blocks are paired by position: the worker times the measurements in turns, so block
    `i` of each ran side by side, under the same load.

    Example:
    >>> block_ratios([{"backend": "tensorflow", "measure": "fit", "blocks": [0.4, 0.5]},
    ...               {"backend": "tensorflow", "measure": "pytorch", "blocks": [0.5, 0.5]}])
    {'tensorflow:fit_vs_pytorch': [1.25, 1.0]}
    """
    reference_blocks = {r["backend"]: r["blocks"] for r in results if r["measure"] == reference}
    return {
        f"{r['backend']}:{r['measure']}_vs_{reference}": [
            theirs / ours for ours, theirs in zip(r["blocks"], reference_blocks[r["backend"]])
        ]
        for r in results
        if r["backend"] in reference_blocks and r["measure"] not in (reference, "pipeline")
    }
