"""benchmarking.versus_env (`recipes/benchmark.py --versus-env`): two
environments, two warm processes, blocks timed in turns."""

import json
import os
import subprocess
import sys

import pytest
from benchmarking import versus_env
from helpers import REPO

SCRIPT = os.path.join(REPO, "recipes", "benchmark.py")


def test_overrides_are_name_value_pairs():
    assert versus_env.parse_overrides("A=1") == {"A": "1"}
    assert versus_env.parse_overrides("A=,B_2=x=y") == {"A": "", "B_2": "x=y"}
    for text in ("A", "=1", "A=1,", "A B=1", "A-B=1"):
        with pytest.raises(ValueError, match="expected NAME=VALUE"):
            versus_env.parse_overrides(text)


def test_comparison_table_and_median_ratio():
    block = {
        "s_per_step": 0.5,
        "pairs_per_s": 2.0,
        "s_per_step_min": 0.4,
        "s_per_step_max": 0.6,
        "load1": [1.0],
    }
    comparison = {
        "labels": ["this environment", "X=1"],
        "results": {"this environment": {"fit": block}, "X=1": {"fit": block}},
        "ratios": {"fit": [1.3, 1.1, 1.2, 0.9]},
    }
    text = versus_env.format_comparison(comparison)
    assert "| X=1 | fit | 0.5000 | 2.0 | 0.4000–0.6000 | 1.0 |" in text
    assert "fit: [X=1] vs [this environment]: 1.150× per block (median; 0.900–1.300 over 4 blocks" in text


@pytest.mark.parametrize("argv", [["--versus-env", "NOPE"], ["--versus-env", "A=1", "--backend", "both"]])
def test_bad_versus_env_arguments_are_refused(argv):
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--smoke", *argv], capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert proc.returncode != 0
    assert "--versus-env" in proc.stderr


@pytest.mark.slow
@pytest.mark.tensorflow_only  # two TensorFlow processes: once is enough
def test_smoke_comparison_runs_both_environments_in_turns(tmp_path):
    path = tmp_path / "ab.json"
    command = [sys.executable, SCRIPT, "--smoke", "--measure", "fit", "--repeats", "3",
               "--versus-env", "TF_NUM_INTRAOP_THREADS=2", "--json", str(path)]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_NUM_INTRAOP_THREADS": "1"}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(path) as f:
        comparison = json.load(f)
    first, second = comparison["labels"]
    assert second == "TF_NUM_INTRAOP_THREADS=2"
    # Each process saw its own value, and they took turns: block i of A, then block i of B.
    assert comparison["environments"] == {
        first: {"TF_NUM_INTRAOP_THREADS": "1"},
        second: {"TF_NUM_INTRAOP_THREADS": "2"},
    }
    for label in (first, second):
        assert len(comparison["results"][label]["fit"]["blocks"]) == 3
    assert len(comparison["ratios"]["fit"]) == 3 and all(r > 0 for r in comparison["ratios"]["fit"])
    order = [line.split("]")[0] for line in proc.stderr.splitlines() if line.startswith("[block")]
    assert order == [f"[block {i}, {label}" for i in (1, 2, 3) for label in (first, second)]
    assert "fit: [TF_NUM_INTRAOP_THREADS=2] vs [this environment]" in proc.stdout
