"""The same measurement in two environments, interleaved (`recipes/benchmark.py --versus-env`).

Settings that a process reads once at start-up — `TF_NUM_INTRAOP_THREADS`,
`TF_ENABLE_ONEDNN_OPTS`, `XLA_FLAGS` — cannot be switched inside one process, and runs one
after the other on a shared machine differ by more than such a setting is worth. So two
serving measuring processes (`serving`) are started, one with this environment and one
with the overrides; each sets up and warms up, then they time their blocks in turns
(A, B, A, B, ...), each waiting while the other runs, so that both see the same load.
"""

import statistics

from benchmarking import serving
from benchmarking.timing import summarize
from benchmarking.worker import worker_command, worker_environment


def parse_overrides(text):
    """`"A=1,B=x"` → `{"A": "1", "B": "x"}`.

    Example:
    >>> parse_overrides("TF_NUM_INTRAOP_THREADS=0,XLA_FLAGS=--xla_cpu_use_thunk_runtime=false")
    {'TF_NUM_INTRAOP_THREADS': '0', 'XLA_FLAGS': '--xla_cpu_use_thunk_runtime=false'}
    """
    overrides = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not name.strip().replace("_", "").isalnum():
            raise ValueError(f"expected NAME=VALUE[,NAME=VALUE...], got {text!r} (the part {item!r})")
        overrides[name.strip()] = value
    return overrides


def interleave_environments(script, spec, backend, overrides, log=print):
    """Times `spec["measures"]` in this environment and with `overrides`, block by block in turns.

    Args:
        script: `recipes/benchmark.py` (its `--worker` entry serves blocks).
        spec: the benchmark spec (training measures only).
        backend: the Keras backend of both processes.
        overrides: `{name: value}` environment variables of the second process.
        log: called with a line per timed block.

    Returns:
        dict: `labels` (the two environments' names), `environments` (`{label: {name: the
        value the measuring process saw}}` for the overridden names), `results` (`{label: {measure:
        summarize(...) + load1}}`) and `ratios` (`{measure: [block ratio A/B time, ...]}`:
        > 1 means the second environment was faster in that block).
    """
    base = worker_environment(backend, shared_device=True)
    labels = ["this environment", ", ".join(f"{k}={v}" for k, v in overrides.items())]
    envs = [base, {**base, **overrides}]
    spec = {**spec, "serve": True, "report_env": sorted(overrides)}
    servers = serving.start_in_turn(
        [(label, worker_command(script, spec), env) for label, env in zip(labels, envs)]
    )

    def log_block(repeat, label, block):
        for measure, seconds in block["blocks"].items():
            log(f"[block {repeat}, {label}] {measure}: {sum(seconds) / spec['steps']:.4f} s/step")

    try:
        order = serving.interleave(servers, spec["repeats"], log=log_block)
    finally:
        for server in servers:
            server.close()
    records = {label: {m: {"blocks": [], "loads": []} for m in spec["measures"]} for label in labels}
    for _, label, block in order:
        for measure, seconds in block["blocks"].items():
            records[label][measure]["blocks"].append(seconds)
            records[label][measure]["loads"].append(block["load1"])
    ready = {server.label: server.ready for server in servers}
    results = {}
    for label in labels:
        results[label] = {
            measure: {
                **summarize(
                    ready[label]["warmup"][measure],
                    r["blocks"],
                    steps=spec["steps"],
                    batch_size=spec["batch_size"],
                ),
                "load1": r["loads"],
            }
            for measure, r in records[label].items()
        }
    ratios = {
        measure: [
            a / b
            for a, b in zip(results[labels[0]][measure]["blocks"], results[labels[1]][measure]["blocks"])
        ]
        for measure in spec["measures"]
    }
    environments = {label: ready[label]["environment"] for label in labels}
    return {"labels": labels, "environments": environments, "results": results, "ratios": ratios}


def format_comparison(comparison):
    """`interleave_environments`' result as a Markdown table and one ratio line per measure."""
    from benchmarking.timing import load_range

    lines = [
        "| environment | measure | s/step | pairs/s | min–max s/step | load1 |",
        "|---|---|---|---|---|---|",
    ]
    for label in comparison["labels"]:
        for measure, r in comparison["results"][label].items():
            lines.append(
                f"| {label} | {measure} | {r['s_per_step']:.4f} | {r['pairs_per_s']:.1f} | "
                f"{r['s_per_step_min']:.4f}–{r['s_per_step_max']:.4f} | {load_range(r['load1'])} |"
            )
    first, second = comparison["labels"]
    for measure, ratios in comparison["ratios"].items():
        median = statistics.median(ratios)
        lines.append(
            f"{measure}: [{second}] vs [{first}]: {median:.3f}× per block (median; "
            f"{min(ratios):.3f}–{max(ratios):.3f} over {len(ratios)} blocks; > 1: [{second}] faster)"
        )
    return "\n".join(lines)
