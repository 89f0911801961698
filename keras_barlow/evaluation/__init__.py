"""Evaluation protocols for a pretrained encoder.

- `features`: frozen features (`extract_features`, `Features`, L2 normalisation);
- `linear`: the linear probe (converged logistic regression, or the paper's SGD in
  `linear_sgd`), with optional cached augmented copies (`augmentation`);
- `knn`: weighted kNN (cosine, temperature; k = 20 and 200);
- `subsets` / `few_shot`: class-balanced subsets, k-shot probes and fine-tuning as
  mean ± std over seeds;
- `finetune` / `fine_tune_sgd`: semi-supervised fine-tuning and its two-rate SGD;
- `semi_supervised`: fine-tuning on 1 % / 10 % of the labels against training from scratch
  and a pixel probe on the same subsets (`compare_semi_supervised`);
- `figures`: the t-SNE map of the test features and the training curves, as PNG files;
- `representation`: the whole protocol in one JSON-able record (`evaluate_representation`).

Example:

```python
from keras_barlow.data import labeled_dataset
from keras_barlow.evaluation import evaluate_representation

train = labeled_dataset("digits", batch_size=256, augment="digits")
test = labeled_dataset("digits", batch_size=256, augment="digits", split="test")
result = evaluate_representation(encoder, train, test)
result["linear"]["top1"], result["few_shot"]["top1"]["mean"], result["knn"]["k20"]["top1"]
```
"""

from keras_barlow.evaluation.augmentation import augmented_features, crop_flip_augmentation
from keras_barlow.evaluation.features import (
    Features,
    as_int_labels,
    encode_batch,
    extract_features,
    is_tf_dataset,
    iterate_batches,
    l2_normalize,
)
from keras_barlow.evaluation.few_shot import SEEDS, SHOTS, few_shot_probe, fine_tune_over_seeds, summarize
from keras_barlow.evaluation.figures import embedding_figure, training_figure
from keras_barlow.evaluation.fine_tune_sgd import (
    FINETUNE_ENCODER_LR,
    FINETUNE_EPOCHS,
    FINETUNE_HEAD_LR,
    FineTuneSGD,
)
from keras_barlow.evaluation.finetune import fine_tune
from keras_barlow.evaluation.knn import (
    KNN_K,
    KNN_KS,
    KNN_TEMPERATURE,
    knn_accuracy,
    knn_scores,
    nearest_neighbours,
    neighbour_votes,
)
from keras_barlow.evaluation.linear import (
    LOGISTIC_CS,
    LOGISTIC_MAX_ITER,
    LOGISTIC_TOL,
    LOGISTIC_VALIDATION_FRACTION,
    PROTOCOLS,
    class_scores,
    linear_probe,
    train_logistic_regression,
)
from keras_barlow.evaluation.linear_sgd import (
    LINEAR_BATCH_SIZE,
    LINEAR_EPOCHS,
    LINEAR_LEARNING_RATE,
    LINEAR_LEARNING_RATE_NORMALIZED,
    LINEAR_WEIGHT_DECAY,
    train_linear_classifier,
)
from keras_barlow.evaluation.metrics import accuracies, count_classes, top_k_accuracy
from keras_barlow.evaluation.representation import (
    REPORT_KNN_KS,
    evaluate_representation,
    format_table,
    protocol_text,
    random_init_copy,
    summary_row,
)
from keras_barlow.evaluation.semi_supervised import compare_semi_supervised
from keras_barlow.evaluation.subsets import balanced_subset, stratified_split

__all__ = [
    "FINETUNE_ENCODER_LR",
    "FINETUNE_EPOCHS",
    "FINETUNE_HEAD_LR",
    "KNN_K",
    "KNN_KS",
    "KNN_TEMPERATURE",
    "LINEAR_BATCH_SIZE",
    "LINEAR_EPOCHS",
    "LINEAR_LEARNING_RATE",
    "LINEAR_LEARNING_RATE_NORMALIZED",
    "LINEAR_WEIGHT_DECAY",
    "LOGISTIC_CS",
    "LOGISTIC_MAX_ITER",
    "LOGISTIC_TOL",
    "LOGISTIC_VALIDATION_FRACTION",
    "PROTOCOLS",
    "REPORT_KNN_KS",
    "SEEDS",
    "SHOTS",
    "Features",
    "FineTuneSGD",
    "accuracies",
    "as_int_labels",
    "augmented_features",
    "balanced_subset",
    "class_scores",
    "compare_semi_supervised",
    "count_classes",
    "crop_flip_augmentation",
    "embedding_figure",
    "encode_batch",
    "evaluate_representation",
    "extract_features",
    "few_shot_probe",
    "fine_tune",
    "fine_tune_over_seeds",
    "format_table",
    "is_tf_dataset",
    "iterate_batches",
    "knn_accuracy",
    "knn_scores",
    "l2_normalize",
    "linear_probe",
    "nearest_neighbours",
    "neighbour_votes",
    "protocol_text",
    "random_init_copy",
    "stratified_split",
    "summarize",
    "summary_row",
    "top_k_accuracy",
    "train_linear_classifier",
    "train_logistic_regression",
    "training_figure",
]
