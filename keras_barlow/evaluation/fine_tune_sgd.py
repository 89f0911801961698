"""`FineTuneSGD`: SGD with momentum and separate learning rates for encoder and head."""

import keras
from keras import ops

from keras_barlow._compat import optimizer_variable_index

FINETUNE_EPOCHS = 20
FINETUNE_ENCODER_LR = 0.002
FINETUNE_HEAD_LR = 0.5


@keras.saving.register_keras_serializable(package="keras_barlow")
class FineTuneSGD(keras.optimizers.Optimizer):
    """SGD with momentum and two learning rates: one for the encoder, one for the head.

    Variables whose `path` is in `encoder_paths` use `learning_rate · encoder_lr_multiplier`,
    the others `learning_rate` (the official code's two parameter groups; the paper's 1 %
    run: head 0.5, encoder 0.002, so a multiplier of 0.004). Weight decay is coupled L2
    (`g + weight_decay · p`), as PyTorch's SGD.

    Args:
        learning_rate: float or schedule: the head's learning rate.
        encoder_lr_multiplier: encoder learning rate / head learning rate.
        encoder_paths: the `variable.path`s of the encoder's variables.
        momentum: momentum coefficient (0.9).
        weight_decay: coupled L2 coefficient (paper's semi-supervised runs: 0).

    Example:

    ```python
    optimizer = FineTuneSGD(0.5, encoder_lr_multiplier=0.004,
                            encoder_paths=[v.path for v in encoder.trainable_variables])
    ```
    """

    def __init__(
        self,
        learning_rate=FINETUNE_HEAD_LR,
        encoder_lr_multiplier=FINETUNE_ENCODER_LR / FINETUNE_HEAD_LR,
        encoder_paths=(),
        momentum=0.9,
        weight_decay=0.0,
        name="fine_tune_sgd",
        **kwargs,
    ):
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, weight_decay=None, name=name, **kwargs)
        if encoder_lr_multiplier < 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(
                "encoder_lr_multiplier and weight_decay must be >= 0 and momentum in [0, 1), got "
                f"{encoder_lr_multiplier}, {weight_decay}, {momentum}"
            )
        self.encoder_lr_multiplier = float(encoder_lr_multiplier)
        self.encoder_paths = tuple(str(p) for p in encoder_paths)
        self.momentum = float(momentum)
        self.sgd_weight_decay = float(weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        paths = set(self.encoder_paths)
        self._multipliers = [self.encoder_lr_multiplier if v.path in paths else 1.0 for v in variables]
        self.momentums = [self.add_variable_from_reference(v, name="momentum") for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        index = optimizer_variable_index(self, variable)
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        if self.sgd_weight_decay:
            gradient = gradient + ops.cast(self.sgd_weight_decay, dtype) * variable
        learning_rate = ops.cast(learning_rate, dtype) * ops.cast(self._multipliers[index], dtype)
        momentum = self.momentums[index]
        new_momentum = ops.cast(self.momentum, dtype) * momentum + gradient
        self.assign(momentum, new_momentum)
        self.assign_sub(variable, learning_rate * new_momentum)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder_lr_multiplier": self.encoder_lr_multiplier,
                "encoder_paths": list(self.encoder_paths),
                "momentum": self.momentum,
                "weight_decay": self.sgd_weight_decay,
            }
        )
        return config
