"""LARS, the warm-up + cosine schedule, and the official code's optimisation settings."""

from keras_barlow.optimizers.lars import (
    LARS,
    PAPER_BIAS_LEARNING_RATE,
    PAPER_BIAS_LR_MULTIPLIER,
    PAPER_END_FRACTION,
    PAPER_ETA,
    PAPER_MOMENTUM,
    PAPER_WARMUP_EPOCHS,
    PAPER_WEIGHT_DECAY,
    PAPER_WEIGHT_LEARNING_RATE,
    REFERENCE_BATCH_SIZE,
    WarmupCosine,
    paper_optimizer,
    paper_schedule,
    trust_ratio,
)

__all__ = [
    "LARS",
    "PAPER_BIAS_LEARNING_RATE",
    "PAPER_BIAS_LR_MULTIPLIER",
    "PAPER_END_FRACTION",
    "PAPER_ETA",
    "PAPER_MOMENTUM",
    "PAPER_WARMUP_EPOCHS",
    "PAPER_WEIGHT_DECAY",
    "PAPER_WEIGHT_LEARNING_RATE",
    "REFERENCE_BATCH_SIZE",
    "WarmupCosine",
    "paper_optimizer",
    "paper_schedule",
    "trust_ratio",
]
