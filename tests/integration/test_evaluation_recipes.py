"""The quick start and the evaluation recipes, end to end in their --smoke modes."""

import json
import os
import sys

import pytest

RECIPES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "recipes"
)


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_quickstart_and_linear_eval_smoke(tmp_path):
    sys.path.insert(0, RECIPES)
    try:
        import linear_eval
        import quickstart
    finally:
        sys.path.remove(RECIPES)

    metrics = quickstart.main(["--smoke", "--output-dir", str(tmp_path / "qs"), "--verbose", "0"])
    saved = json.loads((tmp_path / "qs" / "metrics.json").read_text())
    assert set(saved["evaluation"]) == {"barlow_twins", "random_init", "raw_pixels"}
    assert saved["evaluation"]["raw_pixels"]["linear_top1"] > 0.9  # 8×8 pixels: ~0.964
    details = saved["evaluation_details"]["raw_pixels"]
    assert details["few_shot"]["seeds"] == [0, 1] and set(details["knn"]) == {"k20", "k200"}
    assert saved["evaluation"]["raw_pixels"]["fewshot_top1_std"] == details["few_shot"]["top1"]["std"]
    card = json.loads((tmp_path / "qs" / "encoder" / "model_card.json").read_text())
    assert card["evaluation"] == saved["evaluation"] == metrics["evaluation"]
    protocol = card["extra"]["evaluation_protocol"]  # the card keeps unknown metadata under "extra"
    assert protocol == saved["evaluation_protocol"] and "L-BFGS" in protocol
    with open(tmp_path / "qs" / "cross_correlation.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    # The evaluation recipe on that export: loading rules from the model card.
    out = tmp_path / "linear.json"
    result = linear_eval.main(["--encoder", str(tmp_path / "qs" / "encoder"), "--output", str(out)])
    assert result["feature_dim"] == 32 and json.loads(out.read_text())["linear"] == result["linear"]
    assert result["linear"]["protocol"] == "logistic" and len(result["few_shot"]["seeds"]) == 10
    sgd = linear_eval.main(
        ["--encoder", str(tmp_path / "qs" / "encoder"), "--protocol", "sgd", "--epochs", "2"]
    )
    assert sgd["linear"]["protocol"] == "sgd" and sgd["linear"]["epochs"] == 2
    with pytest.raises(SystemExit):
        linear_eval.main(["--encoder", str(tmp_path / "qs" / "encoder"), "--epochs", "2"])
    # (recipes/semi_supervised.py --smoke runs fine_tune_over_seeds, tested in test_few_shot;
    # kept out of CI for time.)
