"""The one-call protocol: consistent with its parts, JSON-able, tabulated with spread; and the
end-to-end quality bar on digits."""

import json

import keras
import numpy as np
import pytest

from keras_barlow.augment import AugmentationConfig
from keras_barlow.evaluation import (
    Features,
    evaluate_representation,
    extract_features,
    few_shot_probe,
    format_table,
    knn_accuracy,
    linear_probe,
    random_init_copy,
    summary_row,
)


def test_evaluate_representation_is_its_parts_and_json_able(blobs):
    features, labels = blobs(n_per_class=40, classes=3, spread=1.2, seed=6)
    train, test = Features(features[::2], labels[::2]), Features(features[1::2], labels[1::2])
    result = evaluate_representation(None, train, test, shots=3, seeds=range(10))
    assert json.loads(json.dumps(result)) == result
    assert result["linear"] == linear_probe(None, train, test)
    assert result["few_shot"] == few_shot_probe(None, train, test, shots=3, seeds=range(10))
    knn = knn_accuracy(None, train, test, k=(20, 200))
    assert result["knn"] == {"k20": knn["k20"], "k200": knn["k200"]}
    assert (result["num_train"], result["num_test"], result["feature_dim"]) == (60, 60, 6)
    assert "10 seeds" in result["protocol"] and "k = 20 and 200" in result["protocol"]
    row = summary_row(result)
    assert row["fewshot_top1_std"] == result["few_shot"]["top1"]["std"] > 0
    assert row["knn20_top1"] == knn["k20"]["top1"] and row["linear_C"] == result["linear"]["C"]
    table = format_table({"pixels": result, "again": result})
    assert "3-shot top-1 (10 seeds)" in table and "kNN-20" in table and "kNN-200" in table
    few = result["few_shot"]["top1"]
    assert f"{few['mean']:.3f} ± {few['std']:.3f}" in table.splitlines()[2]


def test_random_init_copy_has_fresh_weights(tiny_encoder):
    encoder = tiny_encoder(seed=0)
    copy = random_init_copy(encoder, seed=3)
    assert [w.shape for w in copy.get_weights()] == [w.shape for w in encoder.get_weights()]
    assert not np.allclose(copy.get_weights()[0], encoder.get_weights()[0])
    np.testing.assert_array_equal(copy.get_weights()[0], random_init_copy(encoder, seed=3).get_weights()[0])


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_barlow_twins_encoder_beats_random_init_on_digits():
    """The quality bar at reduced scale: 8-px digits, a narrow ResNet-18, 150 steps."""
    from keras_barlow import BarlowTwins, data
    from keras_barlow.backbones import resnet
    from keras_barlow.optimizers import LARS, WarmupCosine

    size, epochs, batch = 8, 15, 128

    def encoder():
        return resnet(18, (size, size, 3), small_images=True, width=8)

    keras.utils.set_random_seed(0)
    model = BarlowTwins(encoder(), projector_dims=(256, 256, 256))
    steps = epochs * (1347 // batch)
    model.compile(optimizer=LARS(WarmupCosine(0.3, total_steps=steps, warmup_steps=steps // 10)))
    model.fit(
        data.pretraining_dataset(
            "digits", batch_size=batch, augment=AugmentationConfig.preset("digits", image_size=size), seed=0
        ),
        epochs=epochs,
        verbose=0,
    )
    keras.utils.set_random_seed(1)
    random_init = encoder()

    def scores(net):
        common = dict(batch_size=512, augment=AugmentationConfig.preset("digits", image_size=size))
        train = extract_features(net, data.labeled_dataset("digits", **common))
        test = extract_features(net, data.labeled_dataset("digits", split="test", **common))
        # The bar was set with the paper's SGD probe and kNN-200.
        return linear_probe(None, train, test, protocol="sgd")["top1"], knn_accuracy(None, train, test)[
            "top1"
        ]

    bt_linear, bt_knn = scores(model)
    random_linear, random_knn = scores(random_init)
    print(f"linear {bt_linear:.3f} vs {random_linear:.3f}, kNN {bt_knn:.3f} vs {random_knn:.3f}")
    assert bt_linear > random_linear + 0.1 and bt_knn > random_knn + 0.1
    assert bt_linear > 0.8
