"""Few-shot probes and fine-tuning over seeds: one run per seed, mean ± sample std."""

import numpy as np
import pytest

from keras_barlow.evaluation import (
    Features,
    balanced_subset,
    extract_features,
    few_shot_probe,
    fine_tune,
    fine_tune_over_seeds,
    linear_probe,
    summarize,
)


def test_summarize_is_mean_and_sample_std():
    values = [0.5, 0.7, 0.6, 0.9]
    summary = summarize(values)
    assert summary["mean"] == pytest.approx(0.675) and summary["per_seed"] == values
    assert summary["std"] == pytest.approx(np.sqrt(np.sum((np.array(values) - 0.675) ** 2) / 3))
    assert summarize([0.4]) == {"mean": 0.4, "std": 0.0, "per_seed": [0.4]}
    with pytest.raises(ValueError, match="at least one"):
        summarize([])


def test_few_shot_probe_is_one_probe_per_seed_on_its_own_subset(blobs):
    features, labels = blobs(n_per_class=40, classes=3, spread=1.2, seed=2)
    train, test = Features(features[:90], labels[:90]), Features(features[90:], labels[90:])
    seeds = list(range(10))
    result = few_shot_probe(None, train, test, shots=4, seeds=seeds)
    expected = []
    normalised, normalised_test = extract_features(None, train), extract_features(None, test)
    for seed in seeds:
        subset = normalised.subset(balanced_subset(train.labels, shots=4, seed=seed))
        expected.append(linear_probe(None, subset, normalised_test, seed=seed, normalize=False)["top1"])
    assert result["seeds"] == seeds and result["shots"] == 4 and result["protocol"] == "logistic"
    assert result["top1"]["per_seed"] == expected and len(result["C_per_seed"]) == 10
    assert result["top1"]["mean"] == pytest.approx(np.mean(expected))
    assert result["top1"]["std"] == pytest.approx(np.std(expected, ddof=1)) and result["top1"]["std"] > 0
    with pytest.raises(ValueError, match="distinct"):
        few_shot_probe(None, train, test, seeds=[1, 1])


@pytest.mark.tensorflow_only
def test_fine_tune_over_seeds_matches_single_runs(image_blobs, tiny_encoder):
    images, labels = image_blobs(n_per_class=10)
    encoder = tiny_encoder(seed=0)
    options = dict(epochs=1, batch_size=8, test_data=(images, labels))
    result = fine_tune_over_seeds(encoder, (images, labels), shots=2, seeds=[0, 1], **options)
    single = [fine_tune(encoder, (images, labels), shots=2, seed=seed, **options)["top1"] for seed in (0, 1)]
    assert result["top1"]["per_seed"] == pytest.approx(single)
    assert result["num_labeled"] == 6 and result["shots"] == 2 and result["fraction"] is None
    with pytest.raises(ValueError, match="test_data"):
        fine_tune_over_seeds(encoder, (images, labels), 0.5)
