"""benchmarking.serving: the block-on-demand protocol, and the driver that alternates
measuring processes so that no two of them measure at the same time."""

import io
import json
import os
import sys
import textwrap

import pytest
from benchmarking import serving
from helpers import REPO

ENV = {**os.environ, "PYTHONPATH": os.path.join(REPO, "recipes")}
SPEC = {"steps": 2, "warmup": 1, "batch_size": 4, "precision": "bfloat16"}


class FakeRunner:
    spe = 1

    def __init__(self, seconds):
        self.seconds = seconds
        self.extra = {"fake": True}

    def warm_up(self, calls):
        return [1.0] * calls

    def block(self, steps):
        return [self.seconds] * steps


def test_schedule_takes_turns_round_by_round():
    assert serving.alternation_schedule(["ours", "pytorch"], 3) == [
        (1, "ours"), (1, "pytorch"), (2, "ours"), (2, "pytorch"), (3, "ours"), (3, "pytorch"),
    ]  # fmt: skip
    assert serving.alternation_schedule(["a", "b", "c"], 1) == [(1, "a"), (1, "b"), (1, "c")]
    assert serving.alternation_schedule(["a"], 0) == []


def test_worker_side_serves_blocks_then_its_report():
    runners, records = serving.set_up(
        SPEC, ["fit", "bare"], lambda spec, m: FakeRunner(0.5 if m == "fit" else 0.25)
    )
    out = io.StringIO()

    def finish():
        return {"results": serving.results(SPEC, runners, records, "tensorflow")}

    serving.serve(
        SPEC, runners, records, finish, stdin=io.StringIO("block\nblock\nreport\nblock\n"), stdout=out
    )
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(serving.READY_TAG)
    assert json.loads(lines[0][len(serving.READY_TAG) :])["warmup"] == {"fit": [1.0], "bare": [1.0]}
    blocks = [json.loads(line[len(serving.BLOCK_TAG) :]) for line in lines[1:3]]
    assert all(block["blocks"] == {"fit": [0.5, 0.5], "bare": [0.25, 0.25]} for block in blocks)
    assert len(lines) == 4 and lines[3].startswith(serving.RESULT_TAG)  # nothing after the report
    fit, bare = json.loads(lines[3][len(serving.RESULT_TAG) :])["results"]
    assert (fit["measure"], fit["backend"], fit["precision"], fit["fake"]) == (
        "fit",
        "tensorflow",
        "bfloat16",
        True,
    )
    assert fit["s_per_step"] == 0.5 and fit["blocks"] == [0.5, 0.5] and len(fit["load1"]) == 2
    assert bare["pairs_per_s"] == pytest.approx(4 / 0.25)


def test_worker_side_stops_at_the_end_of_its_input():
    runners, records = serving.set_up(SPEC, ["fit"], lambda spec, m: FakeRunner(0.1))
    out = io.StringIO()
    serving.serve(SPEC, runners, records, dict, stdin=io.StringIO("block\n"), stdout=out)
    assert len(out.getvalue().splitlines()) == 2 and len(records["fit"]["blocks"]) == 1


# A serving process whose runner logs when each of its blocks starts and ends.
TIMED_WORKER = textwrap.dedent(
    """
    import sys, time
    from benchmarking import serving

    label, log = sys.argv[1], sys.argv[2]

    class Runner:
        spe, extra = 1, {}

        def warm_up(self, calls):
            return [0.0] * calls

        def block(self, steps):
            with open(log, "a") as f:
                f.write(f"{label} start {time.time()}\\n")
            time.sleep(0.05)
            with open(log, "a") as f:
                f.write(f"{label} end {time.time()}\\n")
            return [0.05 / steps] * steps

    spec = {"steps": 1, "warmup": 1, "batch_size": 2}
    runners, records = serving.set_up(spec, ["m"], lambda spec, m: Runner())
    serving.serve(spec, runners, records, lambda: {"label": label, "blocks": len(records["m"]["blocks"])})
    """
)


def test_driver_alternates_processes_that_never_measure_at_once(tmp_path):
    log = tmp_path / "blocks.log"
    specs = [
        (label, [sys.executable, "-c", TIMED_WORKER, label, str(log)], ENV) for label in ("ours", "pytorch")
    ]
    servers = serving.start_in_turn(specs)
    seen = []
    order = serving.interleave(
        servers, 3, log=lambda repeat, label, block: seen.append((repeat, label)), gap_s=0
    )
    reports = [server.report() for server in servers]
    assert (
        [(repeat, label) for repeat, label, _ in order]
        == seen
        == serving.alternation_schedule(["ours", "pytorch"], 3)
    )
    assert reports == [{"label": "ours", "blocks": 3}, {"label": "pytorch", "blocks": 3}]
    events = [line.split() for line in log.read_text().splitlines()]
    assert [(label, what) for label, what, _ in events] == [
        (label, what) for _, label in seen for what in ("start", "end")
    ]
    times = [float(t) for _, _, t in events]
    assert times == sorted(times)  # each block ended before the next one started


def test_driver_reports_a_refusal_and_a_crash():
    refusing = [sys.executable, "-c", f"print({serving.ERROR_TAG!r} + 'no GPU here'); raise SystemExit(2)"]
    with pytest.raises(serving.WorkerError, match=r"^no GPU here$") as refusal:
        serving.start_in_turn([("pytorch", refusing, ENV)])
    assert refusal.value.refused
    crashing = [sys.executable, "-c", "import sys; sys.stderr.write('boom in the worker'); sys.exit(3)"]
    with pytest.raises(serving.WorkerError, match=r"exit code 3(.|\n)*boom in the worker") as crash:
        serving.start_in_turn([("ours", crashing, ENV)])
    assert not crash.value.refused


def test_labels_must_differ():
    class Named:
        def __init__(self, label):
            self.label = label

    with pytest.raises(ValueError, match="labels must differ"):
        serving.interleave([Named("a"), Named("a")], 1)
