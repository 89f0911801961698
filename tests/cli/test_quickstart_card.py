"""The quick start's model-card text."""

from keras_barlow.cli import quickstart_card


def _metrics(**settings):
    return {
        "dataset": "digits",
        "recipe": "python recipes/quickstart.py --precision mixed_bfloat16",
        "settings": {
            "backbone": "resnet18",
            "width": 16,
            "image_size": [16, 16],
            "epochs": 40,
            "batch_size": 256,
            "preset": "digits",
            "projector": [512, 512, 512],
            **settings,
        },
        "train_seconds": 90.0,
    }


def test_model_card_readme_states_the_training_precision():
    text = quickstart_card.model_card_readme(_metrics(precision="mixed_bfloat16"))
    assert (
        "pretraining 90 s on the CPU under the `mixed_bfloat16` dtype policy (C and the loss in float32; "
        "the evaluation and this export compute in float32). Exact settings: `model_card.json`." in text
    )
    for settings in ({"precision": "float32"}, {}):  # float32 (or older metrics): the text as before
        text = quickstart_card.model_card_readme(_metrics(**settings))
        assert "pretraining 90 s on the CPU. Exact settings: `model_card.json`." in text
        assert "dtype policy" not in text


def test_model_card_readme_carries_table_protocol_and_command():
    row = {"linear_top1": 0.95, "linear_C": 1000.0, "fewshot_top1_mean": 0.86, "fewshot_top1_std": 0.013}
    row.update({"knn20_top1": 0.93, "knn200_top1": 0.9})
    metrics = {
        **_metrics(epochs=55, batch_size=128, preset="mnist5k"),
        "dataset": "mnist5k",
        "recipe": "python recipes/quickstart.py --data mnist5k",
        "train_seconds": 700.0,
        "evaluation": {"barlow_twins": row, "raw_pixels": {**row, "linear_top1": 0.906}},
        "evaluation_protocol": "logistic regression to convergence",
    }
    text = quickstart_card.model_card_readme(metrics)
    assert "`python recipes/quickstart.py --data mnist5k`" in text
    assert "| Barlow Twins | 0.950 (1000) | 0.860 ± 0.013 | 0.930 | 0.900 |" in text
    assert "| raw pixels | 0.906 (1000) |" in text
    assert "| kNN-20 | kNN-200 |" in text and "Protocol: logistic regression to convergence" in text
