"""`--compare pytorch`: ours and the PyTorch reference, each in a process of its own, timed
block by block in turns.

A side-by-side in one process measures the interference as much as the competitor: two
frameworks' thread pools, allocators and oneDNN caches in one address space. So our
measurements run in our worker (`benchmark.py --worker`, with the Keras backend asked for)
and the reference in `benchmarking.pytorch_worker`, which never imports TensorFlow. Each is
started and warmed up while the other waits; then the driver asks them for one block at a
time, ours, PyTorch, ours, PyTorch, ... (`serving.alternation_schedule`), so that only one
measures at any moment and both see the same load. Both run in the same precision
(`benchmarking.precision`) and time the matmul reference in it.
"""

from benchmarking import pytorch_worker, report, serving
from benchmarking.worker import worker_command, worker_environment


def server_specs(script, spec, backend, groups, flags=(), runner=None):
    """`(label, command, environment)` of each measuring process, ours first, PyTorch last.

    Args:
        script: `recipes/benchmark.py` (its `--worker` entry serves our measurements).
        spec: the benchmark spec.
        backend: our Keras backend.
        groups: lists of our measurements, one process each (one list, or one per measure
            with `--isolate`).
        flags: extra command-line flags of our worker (e.g. `--block-tensorflow`).
        runner: `MODULE:NAME` of another PyTorch runner class (a stand-in in tests).
    """
    ours = worker_environment(backend, shared_device=True)
    specs = []
    for group in groups:
        label = backend if len(groups) == 1 else f"{backend}: {','.join(group)}"
        command = worker_command(script, {**spec, "measures": list(group), "serve": True}, flags)
        specs.append((label, command, ours))
    theirs = {**spec, "measures": ["pytorch"], "paired_backend": backend}
    specs.append(("pytorch", pytorch_worker.command(theirs, runner), pytorch_worker.environment()))
    return specs


def merge(spec, payloads):
    """One payload from the processes' reports (ours first, the PyTorch worker's last).

    Our step's FLOP count applies to both (the same architecture); every training result's
    share of the matmul rate is taken of the fastest framework's rate in this precision.
    """
    results, rates, versions, step_flops = [], {}, {}, None
    for label, payload in payloads.items():
        results += payload["results"]
        rates.update(payload["matmul_flops_per_s"])
        versions[label] = payload["versions"]
        step_flops = payload.get("step_flops") or step_flops
    if step_flops is not None:
        report.add_rates(results, step_flops=step_flops, matmul_flops_per_s=max(rates.values()))
    order = {m: i for i, m in enumerate(spec["measures"])}
    results.sort(key=lambda r: order.get(r["measure"], len(order)))
    return {"results": results, "matmul_flops_per_s": rates, "step_flops": step_flops, "versions": versions}


def fair_comparison(script, spec, backend, groups, flags=(), log=None, runner=None):
    """Times our `groups` and the PyTorch reference in their own processes, blocks in turns.

    Returns:
        dict: `merge`'s payload plus `schedule` (`[round, process label]` in the order the
        blocks ran).
    """
    specs = server_specs(script, spec, backend, groups, flags, runner)
    servers = serving.start_in_turn(specs)
    try:
        order = serving.interleave(servers, spec["repeats"], log=log or (lambda *_: None))
        payloads = {server.label: server.report() for server in servers}
    finally:
        serving.stop_all(servers)
    return {**merge(spec, payloads), "schedule": [[repeat, label] for repeat, label, _ in order]}
