"""Training callbacks: the non-finite-loss guard and the representation monitors."""

from keras_barlow.callbacks.linear_probe_monitor import LinearProbeMonitor
from keras_barlow.callbacks.monitors import (
    CrossCorrelationMonitor,
    KNNMonitor,
    correlation_heatmap,
    correlation_stats,
    effective_rank,
    write_png,
)
from keras_barlow.callbacks.non_finite_loss_guard import NonFiniteLossGuard

__all__ = [
    "CrossCorrelationMonitor",
    "KNNMonitor",
    "LinearProbeMonitor",
    "NonFiniteLossGuard",
    "correlation_heatmap",
    "correlation_stats",
    "effective_rank",
    "write_png",
]
