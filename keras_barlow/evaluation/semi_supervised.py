"""`compare_semi_supervised`: fine-tuning on a few labels, against training from scratch and pixels.

The paper's semi-supervised protocol (Table 2) fine-tunes the pretrained encoder and a
linear head end to end on 1 % or 10 % of the labels. Alone, its number says little on small
data; this puts it next to the two baselines that answer "did pretraining help?", each on
the *same* class-balanced labelled subsets (one draw per seed):

- `barlow_twins`: `fine_tune` of the pretrained encoder (encoder learning rate
  `encoder_learning_rate`, head `head_learning_rate`);
- `scratch`: the same architecture, randomly initialised (`random_init_copy`), trained end
  to end with the head's learning rate for every layer (a random encoder has nothing to
  preserve);
- `raw_pixels`: the converged logistic-regression probe (`linear_probe(None, ...)`,
  L2-normalised pixels, `C` chosen on a split of the subset, or `C = 1` when a class has a
  single labelled example) on the raw pixels of the subset.

Example:

```python
table = compare_semi_supervised(
    encoder, (x_train, y_train), (x_test, y_test), (pixels_train, pixels_test), fraction=0.01
)
table["barlow_twins"]["top1"]["mean"], table["scratch"]["top1"]["std"]
```
"""

import numpy as np

from keras_barlow.evaluation.few_shot import SEEDS, _check_seeds, fine_tune_over_seeds, summarize
from keras_barlow.evaluation.finetune import FINETUNE_HEAD_LR
from keras_barlow.evaluation.linear import linear_probe
from keras_barlow.evaluation.representation import random_init_copy
from keras_barlow.evaluation.subsets import balanced_subset

ROWS = ("barlow_twins", "scratch", "raw_pixels")
FEW_LABELS_C = 1.0  # the pixel probe's C when a class has a single labelled example


def compare_semi_supervised(
    encoder, labeled_data, test_data, pixels, *, fraction, seeds=SEEDS, scratch_seed=0, **fine_tune_options
):
    """Fine-tuning, training from scratch and a pixel probe on the same labelled subsets.

    Args:
        encoder: the pretrained encoder (a Keras model; copied for every run).
        labeled_data, test_data: `(images, labels)` arrays prepared as the encoder's input.
        pixels: `((train_pixels, train_labels), (test_pixels, test_labels))`: the raw images of
            the same examples in the same order (e.g. the original 28×28 digits), for the
            pixel baseline.
        fraction: labelled share per class (0.01 or 0.1).
        seeds: one labelled draw per seed; every row uses the same draws.
        scratch_seed: initialisation seed of the from-scratch network.
        **fine_tune_options: passed to `fine_tune` (epochs, learning rates, batch size, ...).

    Returns:
        `{"fraction", "num_labeled", "seeds", "barlow_twins", "scratch", "raw_pixels"}`; each
        row holds `top1` / `top5` summaries (`{"mean", "std", "per_seed"}`).
    """
    seeds = _check_seeds(seeds)
    (pixels_train, pixel_labels), pixels_test = pixels
    train_labels = labeled_data[1]
    if len(pixel_labels) != len(train_labels) or any(a != b for a, b in zip(pixel_labels, train_labels)):
        raise ValueError(
            "pixels must hold the raw images of the same training examples in the same order as "
            "labeled_data (their labels differ)"
        )
    num_labeled = len(balanced_subset(train_labels, fraction, seed=seeds[0]))
    result = {"fraction": fraction, "num_labeled": num_labeled, "seeds": seeds}
    common = {"test_data": test_data, "seeds": seeds, **fine_tune_options}
    result["barlow_twins"] = fine_tune_over_seeds(encoder, labeled_data, fraction, **common)
    scratch_options = {
        **common,
        "encoder_learning_rate": fine_tune_options.get("head_learning_rate", FINETUNE_HEAD_LR),
    }
    result["scratch"] = fine_tune_over_seeds(
        random_init_copy(encoder, seed=scratch_seed), labeled_data, fraction, **scratch_options
    )
    pixels_train, pixel_labels = np.asarray(pixels_train), np.asarray(pixel_labels)
    runs = []
    for seed in seeds:
        subset = balanced_subset(pixel_labels, fraction, seed=seed)  # fine_tune's draw for this seed
        # With one labelled example of a class there is no validation split to choose C on.
        fewest = np.unique(pixel_labels[subset], return_counts=True)[1].min()
        fixed_c = FEW_LABELS_C if fewest < 2 else None
        runs.append(
            linear_probe(
                None, (pixels_train[subset], pixel_labels[subset]), pixels_test, C=fixed_c, seed=seed
            )
        )
    result["raw_pixels"] = {
        "top1": summarize(run["top1"] for run in runs),
        "top5": summarize(run["top5"] for run in runs),
    }
    return result
