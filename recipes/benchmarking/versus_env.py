"""The same measurement in two environments, interleaved (`recipes/benchmark.py --versus-env`).

Settings that a process reads once at start-up — `TF_NUM_INTRAOP_THREADS`,
`TF_ENABLE_ONEDNN_OPTS`, `XLA_FLAGS` — cannot be switched inside one process, and runs one
after the other on a shared machine differ by more than such a setting is worth. So two
measuring processes are started, one with this environment and one with the overrides;
both set up and warm up, then time their blocks in turns (A, B, A, B, ...), each waiting
while the other runs, so that both see the same load.
"""

import json
import os
import statistics
import subprocess
import sys

from benchmarking.timing import summarize
from benchmarking.worker import READY_TAG, worker_environment


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


def _start(script, spec, backend, env):
    command = [sys.executable, os.path.abspath(script), "--worker", json.dumps({**spec, "serve": True})]
    return subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _read_tagged(proc, label):
    for line in proc.stdout:
        if line.startswith(READY_TAG):
            return json.loads(line[len(READY_TAG) :])
    raise RuntimeError(
        f"benchmark worker ({label}) ended with exit code {proc.wait()}:\n{proc.stderr.read()[-6000:]}"
    )


def interleave_environments(script, spec, backend, overrides, log=print):
    """Times `spec["measures"]` in this environment and with `overrides`, block by block in turns.

    Args:
        script: `recipes/benchmark.py` (its `--worker` entry runs `worker.serve`).
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
    base = worker_environment(backend)
    labels = ["this environment", ", ".join(f"{k}={v}" for k, v in overrides.items())]
    envs = [base, {**base, **overrides}]
    spec = {**spec, "report_env": sorted(overrides)}
    procs = [_start(script, spec, backend, env) for env in envs]
    try:
        ready = [_read_tagged(proc, label) for proc, label in zip(procs, labels)]
        records = [{m: {"blocks": [], "loads": []} for m in spec["measures"]} for _ in procs]
        for repeat in range(spec["repeats"]):
            for proc, label, record in zip(procs, labels, records):
                proc.stdin.write("block\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"benchmark worker ({label}) stopped:\n{proc.stderr.read()[-6000:]}")
                block = json.loads(line)
                for measure, seconds in block["blocks"].items():
                    record[measure]["blocks"].append(seconds)
                    record[measure]["loads"].append(block["load1"])
                    log(f"[block {repeat + 1}, {label}] {measure}: {sum(seconds) / spec['steps']:.4f} s/step")
    finally:
        for proc in procs:
            if proc.stdin and not proc.stdin.closed:
                proc.stdin.close()
            proc.wait(timeout=120)
    results = {}
    for label, record, started in zip(labels, records, ready):
        results[label] = {
            measure: {
                **summarize(
                    started["warmup"][measure],
                    r["blocks"],
                    steps=spec["steps"],
                    batch_size=spec["batch_size"],
                ),
                "load1": r["loads"],
            }
            for measure, r in record.items()
        }
    ratios = {
        measure: [
            a / b
            for a, b in zip(results[labels[0]][measure]["blocks"], results[labels[1]][measure]["blocks"])
        ]
        for measure in spec["measures"]
    }
    environments = {label: started["environment"] for label, started in zip(labels, ready)}
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
