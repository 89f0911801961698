"""`--onednn-kernels`: which oneDNN kernels a training step runs, how often and for how long,
ours and (with `--compare pytorch`) PyTorch's.

With `ONEDNN_VERBOSE=1` oneDNN prints one line per primitive execution: the primitive
(`convolution`), its direction (`backward_weights`), the implementation oneDNN chose
(`brgconv_1x1:avx512_core`) and its time in ms. Each side runs in its own serving process
(as for `--compare pytorch`) with that variable set; after the warm-up, the driver asks each
for one block of `--steps` steps and keeps the lines printed during it. The table then shows,
per step, the executions and milliseconds of every kernel on each side: whether both
frameworks call the same kernels, and where the oneDNN time goes.

A block runs one untimed step before its `--steps` (`fit`'s once-per-call set-up; PyTorch's
block does the same), so the counts are divided by the steps the block ran. TensorFlow runs
the two views' branches at the same time on its inter-op threads while PyTorch runs one
kernel at a time on all threads: our summed milliseconds are per op and can exceed the wall
time. JAX does not call oneDNN: only the TensorFlow backend has kernels to show.
"""

import collections

from benchmarking import compare, serving

VERBOSE_ENV = {"ONEDNN_VERBOSE": "1"}


def parse_verbose(lines):
    """Executions and milliseconds per kernel, from `ONEDNN_VERBOSE=1` output.

    Reads oneDNN 3's `onednn_verbose,v1,primitive,exec,cpu,KIND,IMPLEMENTATION,DIRECTION,…,MS`
    and oneDNN 2's `onednn_verbose,exec,cpu,KIND,IMPLEMENTATION,DIRECTION,…,MS` lines; every
    other line (primitive creation, the graph API, the framework's own output) is skipped.

    Args:
        lines: the output, one string per line.

    Returns:
        dict: `"KIND DIRECTION IMPLEMENTATION"` → `{"calls": int, "ms": float}`.

    Example:
    >>> parse_verbose([
    ...     "onednn_verbose,v1,primitive,exec,cpu,convolution,brgconv_1x1:avx512_core,"
    ...     "forward_training,src:f32::blocked:acdb::f0,,alg:convolution_direct,mb16_ic64oc256,1.5",
    ...     "onednn_verbose,v1,primitive,create:cache_miss,cpu,reorder,jit:uni,undef,,,,64x3,0.1",
    ...     "some other line",
    ... ])
    {'convolution forward_training brgconv_1x1:avx512_core': {'calls': 1, 'ms': 1.5}}
    """
    kernels = collections.defaultdict(lambda: {"calls": 0, "ms": 0.0})
    for line in lines:
        fields = line.strip().split(",")
        if fields[0] != "onednn_verbose" or "exec" not in fields[1:4]:
            continue
        at = fields.index("exec", 1)
        if at + 4 >= len(fields) - 1 or fields[at + 1] != "cpu":
            continue
        kind, implementation, direction = fields[at + 2], fields[at + 3], fields[at + 4]
        try:
            ms = float(fields[-1])
        except ValueError:
            continue
        kernel = kernels[f"{kind} {direction} {implementation}"]
        kernel["calls"] += 1
        kernel["ms"] += ms
    return dict(kernels)


def per_step(kernels, steps):
    """`parse_verbose`'s counts and times divided by the `steps` that produced them."""
    return {name: {"calls": k["calls"] / steps, "ms": k["ms"] / steps} for name, k in kernels.items()}


def by_primitive(kernels):
    """`{primitive: ms}`: the per-kernel times summed per primitive kind (`convolution`, …)."""
    totals = collections.Counter()
    for name, kernel in kernels.items():
        totals[name.split(" ", 1)[0]] += kernel["ms"]
    return dict(totals.most_common())


def trace_kernels(script, spec, backend="tensorflow", with_pytorch=False, runner=None):
    """Runs one block of `spec["steps"]` steps on each side under `ONEDNN_VERBOSE=1`.

    Args:
        script: `recipes/benchmark.py` (its `--worker` entry serves our `fit`).
        spec: the benchmark spec.
        backend: our Keras backend.
        with_pytorch: also trace the PyTorch reference, in its own process.
        runner: `MODULE:NAME` of another PyTorch runner class (a stand-in in tests).

    Returns:
        dict: label (`"tensorflow"`, `"pytorch"`) → `{"kernels": per-step kernels,
        "steps": steps the block ran, "s_per_step": the block's median step time,
        "load1": the load average after the block}`.
    """
    specs = compare.server_specs(script, {**spec, "measures": ["fit"]}, backend, [["fit"]], runner=runner)
    specs = [(label, command, {**env, **VERBOSE_ENV}) for label, command, env in specs]
    if not with_pytorch:
        specs = specs[:-1]
    servers = serving.start_in_turn(specs)
    traces = {}
    try:
        for server in servers:
            lines = []
            block = server.block(other_lines=lines)
            seconds = next(iter(block["blocks"].values()))
            # Both sides run one untimed step first: ours `steps_per_execution` (fit's first
            # call), PyTorch's one.
            first = spec["steps_per_execution"] if server.label != "pytorch" else 1
            steps = len(seconds) + first
            traces[server.label] = {
                "kernels": per_step(parse_verbose(lines), steps),
                "steps": steps,
                "s_per_step": sorted(seconds)[len(seconds) // 2],
                "load1": block["load1"],
            }
    finally:
        serving.stop_all(servers)
    return traces


def format_kernels(traces):
    """A Markdown table: every kernel's executions and ms per step on each side, the largest
    first, and one line per side with its total per primitive kind."""
    labels = list(traces)
    names = set().union(*(trace["kernels"] for trace in traces.values()))
    largest = {n: max(traces[label]["kernels"].get(n, {"ms": 0.0})["ms"] for label in labels) for n in names}
    header = " | ".join(f"{label}: calls | {label}: ms" for label in labels)
    lines = [f"| kernel (primitive direction implementation) | {header} |"]
    lines.append("|---" * (1 + 2 * len(labels)) + "|")
    for name in sorted(names, key=lambda n: -largest[n]):
        cells = []
        for label in labels:
            kernel = traces[label]["kernels"].get(name)
            cells += [f"{kernel['calls']:g}", f"{kernel['ms']:.1f}"] if kernel else ["–", "–"]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines.append("")
    for label in labels:
        trace = traces[label]
        totals = by_primitive(trace["kernels"])
        if not totals:
            lines.append(f"{label}: no oneDNN kernel ran (oneDNN off, or a backend without it)")
            continue
        parts = ", ".join(f"{kind} {ms:.0f}" for kind, ms in totals.items())
        lines.append(
            f"{label}: {sum(totals.values()):.0f} ms of oneDNN kernels per step ({parts}); step "
            f"{trace['s_per_step']:.3f} s with ONEDNN_VERBOSE on, {trace['steps']} steps traced, load "
            f"{trace['load1']}"
        )
    return "\n".join(lines)
