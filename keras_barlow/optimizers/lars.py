"""LARS, the warm-up + cosine schedule, and the paper's optimisation settings.

Everything here is written in `keras.ops` only, so it runs unchanged on TensorFlow (also
under `tf.distribute`) and on JAX (`stateless_apply`, `keras.distribution.DataParallel`).

The official implementation (facebookresearch/barlowtwins, `main.py`) trains with LARS:
base learning rates 0.2 for weights and 0.0048 for biases and batch-norm parameters, both
multiplied by `batch_size / 256`, 10 warm-up epochs, then a cosine decay to 1/1000 of the
peak; weight decay 1e-6 (the paper's text says 1.5e-6), momentum 0.9, trust coefficient
0.001. `paper_optimizer` builds exactly that for any batch size and run length.
"""

import math
import numbers

import keras
from keras import ops

# The official code's defaults (facebookresearch/barlowtwins main.py).
PAPER_WEIGHT_LEARNING_RATE = 0.2  # per 256 images
PAPER_BIAS_LEARNING_RATE = 0.0048  # per 256 images, biases and batch-norm parameters
PAPER_BIAS_LR_MULTIPLIER = 0.024  # = 0.0048 / 0.2
PAPER_WEIGHT_DECAY = 1e-6  # official code; the paper's text says 1.5e-6
PAPER_MOMENTUM = 0.9
PAPER_ETA = 1e-3
PAPER_WARMUP_EPOCHS = 10
PAPER_END_FRACTION = 0.001
REFERENCE_BATCH_SIZE = 256


@keras.saving.register_keras_serializable(package="keras_barlow")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise Adaptive Rate Scaling, as in the official Barlow Twins code.

    For every variable `p` with gradient `g`:

    - weights (variables of rank ≥ 2, or every variable when `exclude_bias_and_norm` is
      False): `dp = g + weight_decay·p`, then `dp ← q·dp` with the trust ratio
      `q = eta·‖p‖ / ‖dp‖` (`q = 1` when either norm is 0);
    - biases and normalisation parameters (rank-1 variables, when `exclude_bias_and_norm`):
      `dp = g`, no weight decay, no trust ratio;

    then `μ ← momentum·μ + dp` and `p ← p − lr·μ`, where `lr` is the learning rate for
    weights and `lr · bias_lr_multiplier` for rank-1 variables (as the official code's
    two parameter groups; 0.0048 / 0.2 = 0.024).

    The weight decay is applied inside this update, before the trust ratio, as in the
    official code. Keras' own (decoupled) `weight_decay` of `Optimizer` stays off, so the
    decay is never applied twice.

    Args:
        learning_rate: float or `keras.optimizers.schedules.LearningRateSchedule` (e.g.
            `WarmupCosine`): the learning rate of the weights.
        momentum: momentum coefficient (official 0.9).
        weight_decay: L2 coefficient added to the gradient of the weights (official code
            1e-6; the paper's text 1.5e-6).
        eta: trust coefficient of the layer-wise ratio (official 1e-3).
        bias_lr_multiplier: factor of the learning rate for rank-1 variables (official
            0.0048 / 0.2 = 0.024).
        exclude_bias_and_norm: exclude rank-1 variables (biases, batch-norm γ/β) from
            weight decay and from the trust ratio (official: True).
        **kwargs: other `keras.optimizers.Optimizer` arguments (`name`, `clipnorm`,
            `loss_scale_factor`, `gradient_accumulation_steps`, ...), except `weight_decay`
            semantics, which are LARS's (see above).

    Example:
    >>> optimizer = LARS(WarmupCosine(0.2 * 512 / 256, total_steps=10_000, warmup_steps=1_000))
    >>> optimizer.bias_lr_multiplier, optimizer.eta
    (0.024, 0.001)

    Then `model.compile(optimizer=optimizer)`.
    """

    def __init__(
        self,
        learning_rate=0.2,
        momentum=PAPER_MOMENTUM,
        weight_decay=PAPER_WEIGHT_DECAY,
        eta=PAPER_ETA,
        bias_lr_multiplier=PAPER_BIAS_LR_MULTIPLIER,
        exclude_bias_and_norm=True,
        name="lars",
        **kwargs,
    ):
        if isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool):
            # Schedules and callables are accepted as Keras does; a number must be usable.
            _check_non_negative("learning_rate", learning_rate)
            learning_rate = float(learning_rate)
        # Keras' decoupled weight decay stays None: LARS applies its own inside the update.
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, weight_decay=None, name=name, **kwargs)
        _check_non_negative("momentum", momentum)
        _check_non_negative("weight_decay", weight_decay)
        _check_non_negative("eta", eta)
        _check_non_negative("bias_lr_multiplier", bias_lr_multiplier)
        if momentum >= 1:
            raise ValueError(f"LARS momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.lars_weight_decay = float(weight_decay)
        self.eta = float(eta)
        self.bias_lr_multiplier = float(bias_lr_multiplier)
        self.exclude_bias_and_norm = bool(exclude_bias_and_norm)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = [self.add_variable_from_reference(v, name="momentum") for v in variables]

    def is_excluded(self, variable):
        """True when `variable` is treated as a bias / normalisation parameter."""
        return self.exclude_bias_and_norm and len(variable.shape) <= 1

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        momentum = self.momentums[self._get_variable_index(variable)]
        is_vector = len(variable.shape) <= 1
        if self.is_excluded(variable):
            update = gradient
        else:
            update = gradient + ops.cast(self.lars_weight_decay, dtype) * variable
            update = update * trust_ratio(variable, update, self.eta)
        if is_vector:
            learning_rate = learning_rate * ops.cast(self.bias_lr_multiplier, dtype)
        new_momentum = ops.cast(self.momentum, dtype) * momentum + update
        self.assign(momentum, new_momentum)
        self.assign_sub(variable, learning_rate * new_momentum)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "weight_decay": self.lars_weight_decay,
                "eta": self.eta,
                "bias_lr_multiplier": self.bias_lr_multiplier,
                "exclude_bias_and_norm": self.exclude_bias_and_norm,
            }
        )
        return config


def trust_ratio(variable, update, eta):
    """LARS's layer-wise ratio `eta·‖variable‖ / ‖update‖`, 1 when either norm is 0."""
    param_norm = ops.sqrt(ops.sum(ops.square(variable)))
    update_norm = ops.sqrt(ops.sum(ops.square(update)))
    both_positive = ops.logical_and(param_norm > 0, update_norm > 0)
    safe_update_norm = ops.where(update_norm > 0, update_norm, ops.ones_like(update_norm))
    ratio = ops.cast(eta, param_norm.dtype) * param_norm / safe_update_norm
    return ops.where(both_positive, ratio, ops.ones_like(ratio))


def _check_non_negative(name, value):
    if (
        not isinstance(value, numbers.Real)
        or isinstance(value, bool)
        or value < 0
        or not math.isfinite(value)
    ):
        raise ValueError(f"LARS {name} must be a non-negative number, got {value!r}")


@keras.saving.register_keras_serializable(package="keras_barlow")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak_learning_rate`, then cosine decay to `end_fraction·peak`.

    As the official code: `lr(s) = peak·s/warmup_steps` for `s < warmup_steps`, then with
    `t = (s − warmup_steps) / (total_steps − warmup_steps)` and `q = ½(1 + cos πt)`,
    `lr(s) = peak·q + end_fraction·peak·(1 − q)`. From `total_steps` on, the learning rate
    stays at the end value.

    Args:
        peak_learning_rate: learning rate at the end of the warm-up (paper: 0.2·batch/256).
        total_steps: length of the whole schedule in optimizer steps (epochs × steps/epoch).
        warmup_steps: length of the linear warm-up (paper: 10 epochs); 0 for none.
        end_fraction: final learning rate as a fraction of the peak (paper: 0.001).

    Example:
    >>> schedule = WarmupCosine(0.4, total_steps=1000, warmup_steps=100)
    >>> [round(float(schedule(step)), 4) for step in (0, 50, 100, 1000)]  # 0, half, peak, end
    [0.0, 0.2, 0.4, 0.0004]
    """

    def __init__(self, peak_learning_rate, total_steps, warmup_steps, end_fraction=PAPER_END_FRACTION):
        if (
            not isinstance(peak_learning_rate, numbers.Real)
            or not peak_learning_rate > 0
            or not math.isfinite(peak_learning_rate)
        ):
            raise ValueError(
                f"peak_learning_rate must be a finite positive number, got {peak_learning_rate!r}"
            )
        if not _is_integral(total_steps) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
        if not _is_integral(warmup_steps) or not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                f"warmup_steps must be an integer between 0 and total_steps={total_steps}, "
                f"got {warmup_steps!r}"
            )
        if not 0 <= end_fraction <= 1:
            raise ValueError(f"end_fraction must be in [0, 1], got {end_fraction!r}")
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.end_fraction = float(end_fraction)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        warmup = float(self.warmup_steps)
        warmup_lr = peak * step / max(warmup, 1.0)
        decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.clip((step - warmup) / decay_steps, 0.0, 1.0)
        q = 0.5 * (1.0 + ops.cos(math.pi * progress))
        end_lr = peak * self.end_fraction
        cosine_lr = peak * q + end_lr * (1.0 - q)
        lr = ops.where(step < warmup, warmup_lr, cosine_lr)
        # From `total_steps` on, the end value (also when the warm-up fills the schedule).
        return ops.where(step >= float(self.total_steps), end_lr, lr)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "end_fraction": self.end_fraction,
        }


def paper_schedule(
    global_batch_size,
    epochs,
    steps_per_epoch,
    *,
    base_learning_rate=PAPER_WEIGHT_LEARNING_RATE,
    warmup_epochs=PAPER_WARMUP_EPOCHS,
    end_fraction=PAPER_END_FRACTION,
):
    """The paper's learning-rate schedule of the weights for a given run.

    Peak `base_learning_rate · global_batch_size / 256`, reached after `warmup_epochs`
    epochs of linear warm-up, then cosine decay to `end_fraction` of the peak at the last
    step. The warm-up is capped at a tenth of the run (the paper's 10 of 1000 epochs is a
    hundredth), so short runs are not all warm-up: 10 epochs for runs of ≥ 100 epochs,
    `epochs / 10` below that.

    Args:
        global_batch_size: images per optimizer step, summed over all replicas/processes.
        epochs: number of epochs of the run.
        steps_per_epoch: optimizer steps per epoch.
        base_learning_rate: learning rate per 256 images (paper: 0.2).
        warmup_epochs: warm-up length before the cap (paper: 10).
        end_fraction: final learning rate as a fraction of the peak (paper: 0.001).

    Returns:
        A `WarmupCosine`.

    Example:
    >>> schedule = paper_schedule(2048, epochs=1000, steps_per_epoch=625)
    >>> schedule.peak_learning_rate, schedule.warmup_steps
    (1.6, 6250)
    """
    global_batch_size, epochs, steps_per_epoch = _check_run(global_batch_size, epochs, steps_per_epoch)
    if not isinstance(warmup_epochs, numbers.Real) or not 0 <= warmup_epochs < math.inf:
        raise ValueError(f"warmup_epochs must be a finite non-negative number, got {warmup_epochs!r}")
    total_steps = epochs * steps_per_epoch
    warmup_steps = min(round(warmup_epochs * steps_per_epoch), total_steps // 10)
    return WarmupCosine(
        peak_learning_rate=base_learning_rate * global_batch_size / REFERENCE_BATCH_SIZE,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        end_fraction=end_fraction,
    )


def paper_optimizer(
    global_batch_size,
    epochs,
    steps_per_epoch,
    *,
    weight_learning_rate=PAPER_WEIGHT_LEARNING_RATE,
    bias_learning_rate=PAPER_BIAS_LEARNING_RATE,
    weight_decay=PAPER_WEIGHT_DECAY,
    momentum=PAPER_MOMENTUM,
    eta=PAPER_ETA,
    warmup_epochs=PAPER_WARMUP_EPOCHS,
    end_fraction=PAPER_END_FRACTION,
    official_world_size=None,
    **lars_kwargs,
):
    """LARS with the official Barlow Twins settings, scaled to a batch size and run length.

    Weights: peak learning rate `weight_learning_rate · global_batch_size / 256`; biases and
    batch-norm parameters: `bias_learning_rate · global_batch_size / 256` (through
    `bias_lr_multiplier = bias_learning_rate / weight_learning_rate`); warm-up and cosine
    decay as `paper_schedule`.

    Gradient scale: `BarlowTwins` applies the true gradient of the global-batch loss. The
    official PyTorch code all-reduces `C` outside autograd and DistributedDataParallel
    averages the gradients, so its effective gradient is `1 / world_size` of that. Pass
    `official_world_size=W` to reproduce a run of the official code on `W` GPUs exactly:
    the weight decay is multiplied by `W` (the trust ratio makes the weights' step
    invariant to the scale of `g + wd·p`, so this is the same step) and the bias learning
    rate divided by `W`. Left at `None`, the settings are the official values applied to
    the true gradient.

    Args:
        global_batch_size: images per optimizer step over all replicas (paper: 2048).
        epochs: number of epochs of the run (paper: 1000).
        steps_per_epoch: optimizer steps per epoch.
        weight_learning_rate: learning rate of the weights per 256 images (0.2).
        bias_learning_rate: learning rate of biases / batch-norm parameters per 256 images
            (0.0048).
        weight_decay: LARS weight decay (official code 1e-6; the paper's text 1.5e-6).
        momentum, eta: LARS momentum (0.9) and trust coefficient (1e-3).
        warmup_epochs, end_fraction: see `paper_schedule` (10 and 0.001).
        official_world_size: GPU count of an official run whose updates to reproduce.
        **lars_kwargs: more `LARS` / `keras.optimizers.Optimizer` arguments.

    Returns:
        A `LARS` optimizer whose learning rate is a `WarmupCosine`.

    Example:
    >>> optimizer = paper_optimizer(256, epochs=100, steps_per_epoch=50)
    >>> schedule = optimizer.get_config()["learning_rate"]["config"]
    >>> schedule["peak_learning_rate"], schedule["total_steps"], schedule["warmup_steps"]
    (0.2, 5000, 500)

    Then `model.compile(optimizer=optimizer)`.
    """
    if not (
        isinstance(weight_learning_rate, numbers.Real)
        and isinstance(bias_learning_rate, numbers.Real)
        and math.isfinite(weight_learning_rate)
        and math.isfinite(bias_learning_rate)
        and weight_learning_rate > 0
        and bias_learning_rate >= 0
    ):
        raise ValueError(
            "weight_learning_rate must be positive and bias_learning_rate non-negative, got "
            f"{weight_learning_rate!r} and {bias_learning_rate!r}"
        )
    schedule = paper_schedule(
        global_batch_size,
        epochs,
        steps_per_epoch,
        base_learning_rate=weight_learning_rate,
        warmup_epochs=warmup_epochs,
        end_fraction=end_fraction,
    )
    bias_lr_multiplier = round(bias_learning_rate / weight_learning_rate, 15)
    if official_world_size is not None:
        if int(official_world_size) != official_world_size or official_world_size < 1:
            raise ValueError(f"official_world_size must be a positive integer, got {official_world_size!r}")
        weight_decay = weight_decay * official_world_size
        bias_lr_multiplier = bias_lr_multiplier / official_world_size
    return LARS(
        schedule,
        momentum=momentum,
        weight_decay=weight_decay,
        eta=eta,
        bias_lr_multiplier=bias_lr_multiplier,
        **lars_kwargs,
    )


def _check_run(global_batch_size, epochs, steps_per_epoch):
    values = {"global_batch_size": global_batch_size, "epochs": epochs, "steps_per_epoch": steps_per_epoch}
    for name, value in values.items():
        if not _is_integral(value) or value < 1:
            raise ValueError(
                f"{name} must be a positive integer, got {value!r}"
                + (
                    " (use len(dataset) or dataset.cardinality() for steps_per_epoch)"
                    if name == "steps_per_epoch"
                    else ""
                )
            )
    return int(global_batch_size), int(epochs), int(steps_per_epoch)


def _is_integral(value):
    # True for ints and whole floats (10.0); False for bools, NaN, inf, strings and 2.5.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return math.isfinite(value) and float(value).is_integer()
