"""Measuring processes that time blocks on demand, and the driver that alternates them.

A *serving* worker sets up and warms up its runners, prints `READY_TAG` and its warm-up
times, then answers the driver's lines on standard input:

- `block`: times one block of `steps` steps of each of its runners, in turn, and prints
  `BLOCK_TAG` and `{"load1": ..., "blocks": {measure: [seconds of each call]}}`;
- `report`: prints `RESULT_TAG` and its results (statistics, matmul rate, versions) and ends;
- end of input: ends.

The driver (`Server`, `interleave`) starts one such process per side of a comparison —
ours, and PyTorch in a process that never imports TensorFlow; or one environment and
another — waits until each is warm, and asks them for blocks in turns, so that no two
measurements run at the same time and a change of load on a shared machine falls on all
of them alike. A worker that refuses its task (e.g. float16 without a GPU) prints
`ERROR_TAG` and a message, which the driver raises as `WorkerError`.

Pure Python: neither side's framework is imported here.
"""

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarking.timing import current_rss_mib, load1, peak_rss_mib, summarize

RESULT_TAG = "BENCHMARK_RESULT "
READY_TAG = "BENCHMARK_READY"
BLOCK_TAG = "BENCHMARK_BLOCK "
ERROR_TAG = "BENCHMARK_ERROR "
# Pause between two blocks, so that the threads of the process that just finished (OpenMP
# and oneDNN spin a while before they sleep) are idle when the next one starts.
BLOCK_GAP_S = 0.2


class WorkerError(RuntimeError):
    """A measuring process failed, or refused its task (then `refused` is true)."""

    def __init__(self, message, refused=False):
        super().__init__(message)
        self.refused = refused


# --- the worker's side -------------------------------------------------------------------


def set_up(spec, measures, make_runner):
    """Builds and warms up a runner per measure.

    Returns:
        `(runners, records)`: `{measure: runner}` and `{measure: record}`, a record holding
        `warmup` (seconds of each warm-up call), `blocks` and `loads` (filled by
        `time_block`), `setup_s` and `rss_growth_mib` (resident memory the runner added).
    """
    runners, records = {}, {}
    for measure in measures:
        rss_before = current_rss_mib()
        start = time.perf_counter()
        runner = make_runner(spec, measure)
        warmup = runner.warm_up(spec["warmup"])
        runners[measure] = runner
        rss_after = current_rss_mib()
        records[measure] = {
            "warmup": warmup,
            "blocks": [],
            "loads": [],
            "setup_s": time.perf_counter() - start,
            "rss_growth_mib": rss_after - rss_before if None not in (rss_before, rss_after) else None,
        }
    return runners, records


def time_block(spec, runners, records):
    """Times one block of `spec["steps"]` steps of each runner in turn; returns the block line."""
    load = load1()
    blocks = {}
    for measure, runner in runners.items():
        records[measure]["loads"].append(load1())
        blocks[measure] = runner.block(spec["steps"])
        records[measure]["blocks"].append(blocks[measure])
    return {"load1": load, "blocks": blocks}


def results(spec, runners, records, backend, framework=None):
    """One result dict per measure: `summarize`'s statistics and what the runner reports."""
    out = []
    for measure, record in records.items():
        runner = runners[measure]
        stats = summarize(
            record["warmup"], record["blocks"], steps=spec["steps"], batch_size=spec["batch_size"]
        )
        result = {
            "backend": backend,
            "measure": measure,
            **stats,
            **runner.extra,
            "steps_per_execution": runner.spe,
            "setup_s": record["setup_s"],
            "rss_growth_mib": record["rss_growth_mib"],
            "peak_rss_mib": peak_rss_mib(),
            "load1": record["loads"],
            "precision": spec.get("precision", "float32"),
        }
        if framework is not None:
            result["framework"] = framework
        out.append(result)
    return out


def serve(spec, runners, records, finish, stdin=None, stdout=None):
    """The serving loop (see the module docstring).

    Args:
        spec: the benchmark spec (`steps`, ...).
        runners, records: `set_up`'s result (the runners are warm).
        finish: called with no argument on `report`; returns the JSON-able result payload.
        stdin, stdout: the driver's pipes (default: the process's own).
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    warmup = {measure: record["warmup"] for measure, record in records.items()}
    environment = {name: os.environ.get(name) for name in spec.get("report_env", ())}
    print(READY_TAG + json.dumps({"warmup": warmup, "environment": environment}), file=stdout, flush=True)
    for line in stdin:
        command = line.strip()
        if command == "block":
            print(BLOCK_TAG + json.dumps(time_block(spec, runners, records)), file=stdout, flush=True)
        elif command == "report":
            print(RESULT_TAG + json.dumps(finish()), file=stdout, flush=True)
            return
        else:
            return


def refuse(message):
    """Ends a worker that cannot do its task, with a message the driver shows as is."""
    print(ERROR_TAG + message, flush=True)
    raise SystemExit(2)


# --- the driver's side -------------------------------------------------------------------


def alternation_schedule(labels, repeats):
    """The order in which the driver asks for blocks: each process once per round, in turns.

    Example:
    >>> alternation_schedule(["ours", "pytorch"], 2)
    [(1, 'ours'), (1, 'pytorch'), (2, 'ours'), (2, 'pytorch')]
    """
    return [(repeat, label) for repeat in range(1, repeats + 1) for label in labels]


class Server:
    """A serving worker process, seen from the driver.

    Args:
        label: its name in logs and errors.
        command: the command line that starts it (its entry point serves).
        env: its environment.
    """

    def __init__(self, label, command, env):
        self.label = label
        self.command = list(command)
        # Its standard error goes to a file: a pipe nobody reads would block a chatty worker.
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by close())
        self.proc = subprocess.Popen(
            self.command,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.ready = None

    def stderr_tail(self, chars=6000):
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()[-chars:]

    def _failed(self, what):
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        raise WorkerError(
            f"benchmark worker ({self.label}) ended with exit code {code} {what}:\n{self.stderr_tail()}"
        )

    def _read_line(self, tag, other_lines=None):
        for line in self.proc.stdout:
            if line.startswith(ERROR_TAG):
                self.proc.wait(timeout=60)
                raise WorkerError(line[len(ERROR_TAG) :].strip(), refused=True)
            if line.startswith(tag):
                return line[len(tag) :]
            if other_lines is not None:
                other_lines.append(line.rstrip("\n"))
        return self._failed("before it answered")

    def wait_ready(self):
        """Waits until the worker is warm; returns its `READY_TAG` payload."""
        self.ready = json.loads(self._read_line(READY_TAG))
        return self.ready

    def _send(self, line):
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self._failed("(it stopped reading)")

    def block(self, other_lines=None):
        """One block of each of the worker's measurements; returns its block line.

        Args:
            other_lines: a list to which the other lines the worker printed during the block
                are appended (e.g. `ONEDNN_VERBOSE`'s); they are dropped without it.
        """
        self._send("block")
        return json.loads(self._read_line(BLOCK_TAG, other_lines))

    def report(self):
        """The worker's results; the worker ends after it."""
        self._send("report")
        payload = json.loads(self._read_line(RESULT_TAG))
        self.close()
        return payload

    def close(self):
        if self.proc.stdin and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


def stop_all(servers):
    """Kills the servers still running (after a failure) and closes every one."""
    for server in servers:
        if server.proc.poll() is None:
            server.proc.kill()
        server.close()


def start_in_turn(specs):
    """Starts `Server(label, command, env)` for each `(label, command, env)` one after the
    other, each once the previous one is warm (warm-ups do not compete for the machine)."""
    servers = []
    try:
        for label, command, env in specs:
            server = Server(label, command, env)
            servers.append(server)
            server.wait_ready()
    except BaseException:
        stop_all(servers)
        raise
    return servers


def interleave(servers, repeats, log=print, gap_s=BLOCK_GAP_S):
    """Asks `servers` for `repeats` blocks each, in `alternation_schedule` order.

    Args:
        servers: warm `Server`s.
        repeats: rounds.
        log: called with `(repeat, label, block line)` after each block.
        gap_s: pause between two blocks.

    Returns:
        list of `(repeat, label, block line)` in the order they ran.
    """
    by_label = {server.label: server for server in servers}
    if len(by_label) != len(servers):
        raise ValueError(f"server labels must differ, got {[s.label for s in servers]}")
    order = []
    for repeat, label in alternation_schedule(list(by_label), repeats):
        if order and gap_s:
            time.sleep(gap_s)
        block = by_label[label].block()
        order.append((repeat, label, block))
        log(repeat, label, block)
    return order
