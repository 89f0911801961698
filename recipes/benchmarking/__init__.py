"""The throughput harness behind `recipes/benchmark.py`: timing, FLOP counting, runners and
the PyTorch side-by-side reference (PyTorch optional: `pip install -e ".[compare]"`)."""

from benchmarking.conv_rates import (
    conv3x3_flops,
    conv_op_rates,
    encoder_forward_backward_seconds,
    format_conv_rates,
    xla_convolution_path,
)
from benchmarking.flops import (
    barlow_twins_step_flops,
    conv2d_macs,
    dense_macs,
    keras_forward_macs,
    matmul_flops_per_second,
)
from benchmarking.report import add_rates, format_table, overhead, speed_ratios
from benchmarking.runners import PRESETS, build_model, synthetic_views
from benchmarking.timing import summarize

__all__ = [
    "PRESETS",
    "add_rates",
    "barlow_twins_step_flops",
    "build_model",
    "conv2d_macs",
    "conv3x3_flops",
    "conv_op_rates",
    "dense_macs",
    "encoder_forward_backward_seconds",
    "format_conv_rates",
    "format_table",
    "keras_forward_macs",
    "matmul_flops_per_second",
    "overhead",
    "speed_ratios",
    "summarize",
    "synthetic_views",
    "xla_convolution_path",
]
