"""benchmarking.op_profile (`recipes/benchmark.py --profile`) and the
part-by-part `breakdown` it complements."""

import os
import subprocess
import sys

import pytest
from benchmarking import op_profile
from helpers import REPO

SCRIPT = os.path.join(REPO, "recipes", "benchmark.py")
KINDS = {
    "encoder": {"backbone": None, "stack3_block1_1_conv": "Conv2D",
                "stack3_block1_1_bn": "BatchNormalization", "stack3_block1_1_relu": "ReLU"},
    "projector": {"projector": None, "dense_0": "Dense", "dense_1": "Dense", "bn_0": "BatchNormalization"},
}  # fmt: skip
PARTS = {"backbone": "encoder", "projector": "projector"}


@pytest.mark.parametrize(
    "op_name, expected",
    [
        ("bt_1/backbone_1/stack3_block1_1_conv_1/convolution:_MklNativeConv2D",
         ("encoder Conv2D forward", "stack3 forward")),
        ("gradient_tape/bt_1/backbone_1/stack3_block1_1_conv_1/convolution/Conv2DBackpropInput:_MklNative",
         ("encoder Conv2D input gradient", "stack3 input gradient")),
        ("gradient_tape/bt_3/backbone_1/stack3_block1_1_conv_1/convolution/Conv2DBackpropFilter:_Mkl",
         ("encoder Conv2D filter gradient", "stack3 filter gradient")),
        ("gradient_tape/bt_1/backbone_1/stack3_block1_1_bn_1/moments/mean:Mean",
         ("encoder batch norm (forward + backward)", None)),
        ("bt_1/backbone_1/stack3_block1_1_relu_1/Relu:Relu",
         ("encoder other layers (forward + backward)", None)),
        ("bt_1/backbone_1/add_7/Add:AddV2", ("encoder other (forward + backward)", None)),
        # A reused scope gets "_1": "dense_1_1" is layer "dense_1", "dense_0" is itself.
        ("gradient_tape/projector_1/dense_1_1/MatMul/MatMul_1:_MklMatMul",
         ("projector Dense matmul (forward + backward)", None)),
        ("projector_3/dense_0/MatMul:_MklMatMul", ("projector Dense matmul (forward + backward)", None)),
        ("projector_3/bn_0_1/batchnorm/mul:Mul", ("projector batch norm (forward + backward)", None)),
        ("sgd/AssignAddVariableOp_7:AssignAddVariableOp", ("optimizer update", None)),
        ("AddN_12:AddN", ("gradient sums (both views share the weights)", None)),
        ("gradient_tape/MatMul/MatMul:_MklMatMul", ("C = z_aᵀ z_b (forward + backward)", None)),
        ("gradient_tape/diag:MatrixDiagV3", ("loss, standardisation, metrics (forward + backward)", None)),
        ("Square_3:Square", ("loss, standardisation, metrics (forward + backward)", None)),
    ],
)  # fmt: skip
def test_ops_are_attributed_by_their_name_scope(op_name, expected):
    assert op_profile.categorize(op_name, KINDS, PARTS) == expected


def _xspace_file(path):
    """A profile of 2 steps: two compute threads, bookkeeping events, a non-compute thread."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # the message _compat parses

    xspace = xplane_pb2.XSpace()
    plane = xspace.planes.add(name="/host:CPU")
    names = {
        1: "ExecutorState::Process",
        2: "bt_1/backbone_1/stack3_block1_1_conv_1/convolution:_MklNativeConv2D",
        3: "sgd/Mul_2:Mul",
        4: "AddN_1:AddN",
        5: "<lambda>",
    }
    for metadata_id, name in names.items():
        plane.event_metadata[metadata_id].id = metadata_id
        plane.event_metadata[metadata_id].name = name
    events = {
        "tf_Compute/1": [(1, 900), (2, 300), (3, 100)],
        "tf_Compute/2": [(1, 800), (2, 500), (4, 40)],
        "python": [(5, 1000), (2, 999)],
    }
    for line_name, line_events in events.items():
        line = plane.lines.add(name=line_name)
        for metadata_id, microseconds in line_events:
            line.events.add(metadata_id=metadata_id, duration_ps=microseconds * 10**6)
    path.write_bytes(xspace.SerializeToString())
    return str(path)


@pytest.mark.tensorflow_only  # the profiler's protobuf ships with TensorFlow
def test_summary_sums_op_time_per_step_over_compute_threads(tmp_path):
    from keras_barlow._compat import tensorflow_xspace

    xspace = tensorflow_xspace(_xspace_file(tmp_path / "host.xplane.pb"))
    summary = op_profile.summarize_xspace(xspace, KINDS, PARTS, steps=2)
    assert summary["compute_threads"] == 2
    assert summary["categories"] == pytest.approx(
        {
            "encoder Conv2D forward": 400e-6,
            "optimizer update": 50e-6,
            "gradient sums (both views share the weights)": 20e-6,
        }
    )
    assert summary["conv_stages"] == pytest.approx({"stack3 forward": 400e-6})
    table = op_profile.format_profile(
        {**summary, "wall_s_per_step": 0.5, "unprofiled_s_per_step": 0.4}, load=[1.0, 1.2]
    )
    assert "| encoder Conv2D forward | 0.0004 | 85.1 % |" in table and "| stack3 forward |" in table


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_profile_and_breakdown_of_the_smoke_model():
    from benchmarking.breakdown import step_breakdown

    spec = {**_smoke_spec(), "steps": 2, "warmup": 2}
    profile = op_profile.profile_train_step(spec, steps=2, warmup=2)
    categories = profile["categories"]
    for part in ("forward", "input gradient", "filter gradient"):  # the 2nd convolution has all three
        assert categories[f"encoder Conv2D {part}"] > 0
    assert categories["projector Dense matmul (forward + backward)"] > 0
    assert categories["optimizer update"] > 0
    assert profile["compute_threads"] >= 1 and profile["unprofiled_s_per_step"] > 0
    # Op time cannot exceed what the threads that ran ops had.
    assert sum(categories.values()) <= profile["compute_threads"] * profile["wall_s_per_step"]
    parts = step_breakdown(spec, rounds=1, calls=1)
    assert set(parts) >= {
        "encoder forward (2 views)",
        "encoder forward+backward (2 views)",
        "whole train_step",
    }
    assert all(seconds > 0 for seconds in parts.values())


def _smoke_spec():
    import benchmark  # recipes/benchmark.py (pytest's `pythonpath` holds recipes/)

    return benchmark.build_spec(benchmark.parse_args(["--smoke", "--optimizer", "sgd"]))


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_profile_flag_prints_both_tables():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, SCRIPT, "--smoke", "--profile", "--optimizer", "sgd"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| part of the step | op-thread s / step | share of op time |" in proc.stdout
    assert "| encoder Conv2D filter gradient |" in proc.stdout
    # The smoke encoder's layers are not named after ResNet stages: no stage table.
    assert "| encoder convolutions by stage |" not in proc.stdout


def test_layers_are_named_by_their_nearest_keras_class():
    import keras

    from keras_barlow.backbones import Grayscale

    class StandardizedConv2D(keras.layers.Conv2D):
        pass

    assert op_profile.keras_kind(StandardizedConv2D(2, 3)) == "Conv2D"
    assert op_profile.keras_kind(keras.layers.Dense(2)) == "Dense"
    assert op_profile.keras_kind(Grayscale()) == "Layer"
