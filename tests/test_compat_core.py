"""Each "model and trainers" / "backbones" entry of `keras_barlow._compat` against upstream.

Every test here fails when an upgrade breaks a workaround or makes it unnecessary; the
message says which. The bug reproductions use plain Keras models, not `BarlowTwins`.
"""

import inspect
import json
import textwrap
from unittest import mock

import keras
import pytest
from helpers import run_python

from keras_barlow import _compat

VERIFIED = "re-verify the workaround on this version and move the range's end"


@pytest.mark.parametrize("name", ["MULTI_WORKER_FIT_BROKEN_KERAS", "STEPS_PER_EXECUTION_BROKEN_KERAS"])
def test_installed_keras_is_in_the_verified_range(name):
    assert _compat.keras_version_in(getattr(_compat, name)), (
        f"Keras {keras.version()} is outside {name}: {VERIFIED}"
    )


@pytest.mark.tensorflow_only  # only the TensorFlow trainer has _maybe_symbolic_build
def test_fit_still_calls_the_private_symbolic_build():
    calls = []

    class Plain(_compat.SkippableSymbolicBuild, keras.Sequential):
        def skip_symbolic_build(self):
            calls.append("asked")
            return False

    assert hasattr(keras.Model, "_maybe_symbolic_build"), "Keras renamed _maybe_symbolic_build"
    model = Plain([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(keras.ops.ones((4, 3)), keras.ops.ones((4, 1)), verbose=0)
    assert calls, "fit no longer calls _maybe_symbolic_build: SkippableSymbolicBuild does nothing"


@pytest.mark.tensorflow_only
def test_variables_still_hold_their_value_privately():
    variable = keras.Variable(1.0)
    assert _compat.variable_values([variable])[0] is not None, "keras.Variable._value is gone"


# On JAX, Keras detaches the variables before the first step and leaves them detached
# when that step fails: the model is unusable afterwards unless `restore_detached_values`
# puts them back.
JAX_DETACH_REPRO = textwrap.dedent(
    """
    import json, keras
    from keras_barlow import _compat

    class Failing(keras.Sequential):
        def train_step(self, state, data):
            raise ValueError("bad input")

    model = Failing([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.optimizer.build(model.trainable_variables)
    variables = model.trainable_variables + model.optimizer.variables
    values = _compat.variable_values(variables)
    try:
        model.fit(keras.ops.ones((4, 3)), keras.ops.ones((4, 1)), verbose=0)
    except ValueError:
        pass
    detached = sum(v._value is None for v in variables)
    _compat.restore_detached_values(variables, values)
    print(json.dumps({"detached": detached, "after": sum(v._value is None for v in variables)}))
    """
)


@pytest.mark.slow
def test_jax_fit_still_leaves_variables_detached_after_a_failing_first_step():
    pytest.importorskip("jax")
    out = run_python(JAX_DETACH_REPRO, env={"KERAS_BACKEND": "jax"}, timeout=300)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["detached"] > 0, "fixed upstream: JaxTrainer.keep_variables_on_failure can go"
    assert result["after"] == 0


# keras-team/keras#19246: `steps_per_execution > 1` under MirroredStrategy with two replicas.
STEPS_PER_EXECUTION_REPRO = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse", steps_per_execution=2)
    try:
        model.fit(np.ones((16, 3), "float32"), np.ones((16, 1), "float32"), batch_size=4, verbose=0)
        print(json.dumps({"error": None}))
    except Exception as error:
        print(json.dumps({"error": type(error).__name__, "message": str(error)}))
    """
)


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_steps_per_execution_under_mirrored_strategy_still_fails_upstream():
    result = json.loads(run_python(STEPS_PER_EXECUTION_REPRO, timeout=300).strip().splitlines()[-1])
    assert result["error"] is not None, "keras-team/keras#19246 fixed: drop check_steps_per_execution"
    assert "You must feed a value for placeholder tensor" in result["message"]


@pytest.mark.tensorflow_only
def test_steps_per_execution_refusal_names_the_upstream_issue():
    import tensorflow as tf

    class TwoReplicas(tf.distribute.MirroredStrategy):
        num_replicas_in_sync = 2

    strategy = TwoReplicas(["/cpu:0"])
    with pytest.raises(ValueError, match=r"steps_per_execution=2 .*keras-team/keras#19246"):
        _compat.check_steps_per_execution(strategy, 2)
    _compat.check_steps_per_execution(strategy, 1)
    _compat.check_steps_per_execution(tf.distribute.get_strategy(), 2)


@pytest.mark.tensorflow_only
def test_multi_worker_workaround_is_guarded(monkeypatch):
    import tensorflow as tf

    assert not _compat.needs_multi_worker_workaround(tf.distribute.get_strategy())
    single_worker = tf.distribute.MultiWorkerMirroredStrategy()  # no TF_CONFIG: one worker
    assert not _compat.needs_multi_worker_workaround(single_worker)
    several = mock.Mock(spec=tf.distribute.MultiWorkerMirroredStrategy, num_replicas_in_sync=2)
    several.extended.worker_devices = ["/job:worker/task:0/device:CPU:0"]
    assert _compat.needs_multi_worker_workaround(several)
    monkeypatch.setattr(keras, "version", lambda: "4.0.0")
    assert not _compat.needs_multi_worker_workaround(several)  # outside the guarded versions


def test_resnet_backbone_constructor_still_cannot_express_our_stem():
    import keras_hub

    parameters = list(inspect.signature(keras_hub.models.ResNetBackbone.__init__).parameters)
    # Verified on KerasHub 0.32: no stem stride, no max-pool switch, no zero-init option.
    assert parameters == [
        "self",
        "input_conv_filters",
        "input_conv_kernel_sizes",
        "stackwise_num_filters",
        "stackwise_num_blocks",
        "stackwise_num_strides",
        "block_type",
        "use_pre_activation",
        "image_shape",
        "data_format",
        "dtype",
        "kwargs",
    ], "ResNetBackbone's constructor changed: check whether BarlowResNetBackbone can call it now"


def test_functional_backbone_init_and_base_config():
    import keras_hub

    class Tiny(keras_hub.models.ResNetBackbone):
        def __init__(self, **kwargs):
            inputs = keras.Input((8, 8, 3))
            outputs = keras.layers.Conv2D(2, 3, name="conv")(inputs)
            _compat.init_functional_backbone(self, inputs=inputs, outputs=outputs, **kwargs)
            self.pyramid_outputs = {"P0": outputs}

    backbone = Tiny(name="tiny")
    assert backbone.output_shape == (None, 6, 6, 2) and backbone.name == "tiny"
    assert _compat.pyramid_level_names(backbone) == {"P0": "conv"}
    config = _compat.backbone_base_config(backbone)
    assert config["name"] == "tiny" and "stackwise_num_filters" not in config
