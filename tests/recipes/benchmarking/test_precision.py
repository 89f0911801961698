"""benchmarking.precision: one `--precision` for both sides of a comparison."""

import pytest
from benchmarking import precision


@pytest.mark.parametrize(
    "asked, policy, expected",
    [
        (None, None, ("float32", "float32")),
        ("float32", None, ("float32", "float32")),
        ("bfloat16", None, ("bfloat16", "mixed_bfloat16")),
        ("float16", None, ("float16", "mixed_float16")),
        (None, "mixed_bfloat16", ("bfloat16", "mixed_bfloat16")),
        (None, "bfloat16", ("bfloat16", "bfloat16")),  # every variable in bfloat16 too
        ("bfloat16", "bfloat16", ("bfloat16", "bfloat16")),
        (None, "mixed_float16", ("float16", "mixed_float16")),
    ],
)
def test_precision_and_policy_are_resolved_together(asked, policy, expected):
    assert precision.resolve(asked, policy) == expected


def test_disagreeing_or_unknown_settings_are_refused():
    with pytest.raises(ValueError, match="disagree"):
        precision.resolve("float32", "mixed_bfloat16")
    with pytest.raises(ValueError, match="unknown dtype policy 'float64'"):
        precision.resolve(None, "float64")
    with pytest.raises(ValueError, match="unknown precision 'int8'"):
        precision.resolve("int8")


def test_float16_needs_a_gpu():
    precision.check_device("float16", gpu=True)
    for name in ("float32", "bfloat16"):
        precision.check_device(name, gpu=False)
    with pytest.raises(ValueError, match=r"float16 .* is for GPUs, and no GPU is present; on a CPU use"):
        precision.check_device("float16", gpu=False)


def test_pytorch_side_of_each_precision():
    assert precision.torch_settings("float32") == {"autocast": None, "grad_scaler": False}
    assert precision.torch_settings("bfloat16") == {"autocast": "bfloat16", "grad_scaler": False}
    assert precision.torch_settings("float16") == {"autocast": "float16", "grad_scaler": True}
    with pytest.raises(ValueError, match="unknown precision"):
        precision.torch_settings("mixed_bfloat16")


def test_every_precision_has_a_policy_and_a_short_name():
    assert set(precision.KERAS_POLICIES) == set(precision.SHORT_NAMES) == set(precision.PRECISIONS)
    for name, policy in precision.KERAS_POLICIES.items():
        assert precision.precision_of_policy(policy) == name
    assert isinstance(precision.gpu_visible(), bool)
