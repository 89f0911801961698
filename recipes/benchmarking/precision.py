"""The arithmetic precision of a benchmark run, applied alike to both sides of a comparison.

| `--precision` | ours (Keras dtype policy) | PyTorch reference | matmul reference |
|---|---|---|---|
| `float32` | `float32` | no autocast | float32 |
| `bfloat16` | `mixed_bfloat16` | `torch.autocast(device, torch.bfloat16)` | bfloat16 |
| `float16` | `mixed_float16` (loss scaling) | `torch.autocast("cuda", torch.float16)` + scaler | float16 |

On both sides the weights stay float32 and the cross-correlation matrix and the loss are
computed in float32. The matmul reference is timed in the same precision, so a step's
share of it is its share of that precision's peak. `float16` is for GPUs only.

Pure Python: the driver, which imports neither TensorFlow nor PyTorch, resolves it.
"""

import glob
import os

PRECISIONS = ("float32", "bfloat16", "float16")
KERAS_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
SHORT_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def precision_of_policy(policy):
    """The compute precision of a Keras dtype policy name.

    Example:
    >>> precision_of_policy("mixed_bfloat16"), precision_of_policy("float32")
    ('bfloat16', 'float32')
    """
    compute = policy[len("mixed_") :] if policy.startswith("mixed_") else policy
    if compute not in PRECISIONS:
        raise ValueError(
            f"unknown dtype policy {policy!r}: expected one of "
            f"{', '.join(sorted(set(KERAS_POLICIES.values()) | set(PRECISIONS)))}"
        )
    return compute


def resolve(precision=None, dtype_policy=None):
    """`(precision, Keras dtype policy)` from `--precision` and `--dtype-policy`.

    `--precision` alone picks the policy of the table above; `--dtype-policy` alone gives the
    precision of its compute dtype (e.g. `bfloat16`: every variable in bfloat16 too);
    both must agree on the compute dtype; neither means float32.

    Example:
    >>> resolve("bfloat16")
    ('bfloat16', 'mixed_bfloat16')
    >>> resolve(dtype_policy="mixed_float16")
    ('float16', 'mixed_float16')
    >>> resolve()
    ('float32', 'float32')
    """
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if dtype_policy is None:
        precision = precision or "float32"
        return precision, KERAS_POLICIES[precision]
    of_policy = precision_of_policy(dtype_policy)
    if precision is not None and precision != of_policy:
        raise ValueError(
            f"--precision {precision} and --dtype-policy {dtype_policy} disagree (that policy computes "
            f"in {of_policy}); give one of them"
        )
    return of_policy, dtype_policy


def gpu_visible():
    """Whether this machine shows a GPU device node (NVIDIA or AMD), read without a framework."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/kfd")


def check_device(precision, gpu):
    """Refuses `float16` without a GPU (`gpu`: whether one is present).

    Example:
    >>> check_device("bfloat16", gpu=False)
    >>> check_device("float16", gpu=False)
    Traceback (most recent call last):
    ...
    ValueError: --precision float16 (mixed_float16, PyTorch AMP) is for GPUs, and no GPU is present; ...
    """
    if precision == "float16" and not gpu:
        raise ValueError(
            "--precision float16 (mixed_float16, PyTorch AMP) is for GPUs, and no GPU is present; "
            "on a CPU use --precision bfloat16"
        )


def torch_settings(precision):
    """How the PyTorch reference runs a precision: `autocast` dtype name (or `None`) and
    whether gradients go through a `GradScaler`.

    Example:
    >>> torch_settings("bfloat16")
    {'autocast': 'bfloat16', 'grad_scaler': False}
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return {
        "autocast": None if precision == "float32" else precision,
        "grad_scaler": precision == "float16",
    }
