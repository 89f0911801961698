"""Stand-ins for the PyTorch reference's runner, for tests of its measuring process where
PyTorch is not installed (`python -m benchmarking.pytorch_worker SPEC --runner
stub_runners:NAME`, with this folder on `PYTHONPATH`)."""

import sys
import types

WATCHED = ("tensorflow", "keras", "keras_barlow")


def loaded_watched_modules():
    return sorted(name for name in sys.modules if name.split(".")[0] in WATCHED)


class StubRunner:
    """Times nothing: every step takes 2 ms; records which frameworks the process has loaded."""

    spe = 1

    def __init__(self, spec):
        self.extra = {
            "torch": "stub",
            "torch_device": "cpu",
            "torch_autocast": None if spec.get("precision", "float32") == "float32" else spec["precision"],
            "modules_at_setup": loaded_watched_modules(),
        }

    def warm_up(self, calls):
        return [0.003] * calls

    def block(self, steps):
        self.extra["modules_at_last_block"] = loaded_watched_modules()
        return [0.002] * steps

    def matmul(self, n):
        return lambda: None


class RefusingRunner(StubRunner):
    """Refuses its precision, as `PyTorchRunner` does for float16 without a GPU."""

    def __init__(self, spec):
        raise ValueError(
            "--precision float16 (mixed_float16, PyTorch AMP) is for GPUs, and no GPU is present"
        )


class TensorFlowLoadingRunner(StubRunner):
    """Loads (a stand-in for) TensorFlow into the PyTorch process: the worker must fail."""

    def warm_up(self, calls):
        sys.modules["tensorflow"] = types.ModuleType("tensorflow")
        return super().warm_up(calls)
