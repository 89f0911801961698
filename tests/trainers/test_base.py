"""The trainer interface: both backends implement every hook; one place selects them."""

import inspect

import keras
import pytest

from keras_barlow.trainers import BACKENDS, select_trainer
from keras_barlow.trainers.base import Trainer

HOOKS = sorted(name for name, value in vars(Trainer).items() if getattr(value, "__isabstractmethod__", False))


def test_the_interface_lists_every_hook_the_model_calls():
    assert HOOKS == [
        "keep_variables_on_failure",
        "prepare_train_function",
        "skip_symbolic_build",
        "test_step",
        "train_step",
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_implements_every_hook(backend):
    pytest.importorskip(backend)
    trainer = select_trainer(backend)
    assert isinstance(trainer, Trainer)
    assert not inspect.isabstract(type(trainer))
    for hook in HOOKS:  # defined by the backend class itself, not inherited
        assert hook in vars(type(trainer)), f"{type(trainer).__name__} lacks {hook}"


def test_default_is_the_active_backend():
    expected = {"tensorflow": "TensorFlowTrainer", "jax": "JaxTrainer"}[keras.backend.backend()]
    assert type(select_trainer()).__name__ == expected


def test_unknown_backend_says_what_to_do():
    with pytest.raises(RuntimeError, match="Set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax"):
        select_trainer("torch")


def test_the_model_uses_no_optional_hooks():
    # No `getattr(trainer, ..., None)` probing: every hook is called unconditionally.
    from keras_barlow.models import barlow_twins

    assert "getattr(self._trainer" not in inspect.getsource(barlow_twins)
