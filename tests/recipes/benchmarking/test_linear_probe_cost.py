"""`benchmarking.linear_probe_cost --smoke`: one monitor evaluation of the shipped digits encoder."""

import pytest
from benchmarking import linear_probe_cost
from helpers import REPO


@pytest.mark.tensorflow_only  # the shipped exports are loaded once, on the TensorFlow pass
def test_smoke_times_one_evaluation_and_reports_the_probe(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    result = linear_probe_cost.main(["--smoke"])
    (name,) = result["results"]
    assert name == "fixed C=1000" and len(result["results"][name]["seconds"]) == 1
    assert 0.5 < result["results"][name]["linear_top1"] <= 1.0  # digits: far above chance (0.1)
    assert result["train"] + result["validation"] == 1347 and '"results"' in capsys.readouterr().out
