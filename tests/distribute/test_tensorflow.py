"""Choosing the hardware on TensorFlow: `get_strategy` / `setup_hardware` decision logic (TPU branches with
the resolver faked — no test pretends a TPU ran) and TF_CONFIG parsing."""

import logging
from unittest import mock

import keras
import pytest

from keras_barlow import distribute
from keras_barlow.distribute import tensorflow as tf_distribute

tensorflow_only = pytest.mark.tensorflow_only
CLUSTER = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}


def _never():
    raise AssertionError("the TPU must not be probed here")


@pytest.mark.parametrize(
    "hardware, tpu, gpus, cluster, expected",
    [
        ("auto", True, 8, CLUSTER, "tpu"),  # a reachable TPU wins
        ("auto", False, 8, CLUSTER, "multiworker"),  # a cluster before the local GPUs
        ("auto", False, 4, None, "gpu"),
        ("auto", False, 1, None, "gpu"),
        ("auto", False, 0, None, "default"),
        ("cpu", _never, 4, CLUSTER, "cpu"),
        ("gpu", _never, 2, CLUSTER, "gpu"),
        ("multiworker", _never, 0, CLUSTER, "multiworker"),
        ("tpu", _never, 0, None, "tpu"),
    ],
)
def test_decision_table(hardware, tpu, gpus, cluster, expected):
    probe = tpu if callable(tpu) else (lambda: tpu)
    assert (
        distribute.choose_tf_hardware(hardware, tpu_reachable=probe, num_gpus=gpus, cluster=cluster)
        == expected
    )


@pytest.mark.parametrize(
    "hardware, gpus, cluster, message",
    [
        ("gpu", 0, None, "sees no GPU"),
        ("multiworker", 2, None, "TF_CONFIG"),
        ("TPU", 0, None, "must be one of"),
    ],
)
def test_impossible_choices_say_what_to_do(hardware, gpus, cluster, message):
    with pytest.raises(ValueError, match=message):
        distribute.choose_tf_hardware(hardware, tpu_reachable=_never, num_gpus=gpus, cluster=cluster)


def test_tf_config_parsing():
    one = '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}'
    two = '{"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "chief", "index": 0}}'
    assert distribute.cluster_from_tf_config({}) is None
    assert distribute.cluster_from_tf_config({"TF_CONFIG": one}) is None
    assert distribute.cluster_from_tf_config({"TF_CONFIG": two}) == {"chief": ["a:1"], "worker": ["b:2"]}
    with pytest.raises(ValueError, match="not valid JSON"):
        distribute.cluster_from_tf_config({"TF_CONFIG": "{worker"})
    with pytest.raises(ValueError, match="no 'cluster'"):
        distribute.cluster_from_tf_config({"TF_CONFIG": '{"task": {}}'})


def test_tpu_address_comes_from_the_environment_only():
    nothing = lambda path: False  # noqa: E731
    assert distribute.tpu_address_from_environment({}, nothing) is None
    assert (
        distribute.tpu_address_from_environment({"COLAB_TPU_ADDR": "10.0.0.2:8470"}, nothing)
        == "grpc://10.0.0.2:8470"
    )
    assert distribute.tpu_address_from_environment({"TPU_NAME": "my-tpu"}, nothing) == "my-tpu"
    assert distribute.tpu_address_from_environment({}, lambda path: path == "/dev/accel0") == "local"


@pytest.fixture
def fresh_cache(monkeypatch):
    monkeypatch.setattr(tf_distribute, "_STRATEGIES", {})
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("COLAB_TPU_ADDR", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)


@tensorflow_only
def test_auto_on_this_machine_is_the_default_strategy_and_is_logged(fresh_cache, caplog, monkeypatch):
    import tensorflow as tf

    monkeypatch.setattr(tf_distribute, "tpu_address_from_environment", lambda: None)
    monkeypatch.setattr(tf_distribute, "_tpu_resolver", lambda address: _never())
    with caplog.at_level(logging.INFO, logger=tf_distribute.__name__):
        strategy = distribute.get_strategy("auto")
    assert strategy is tf.distribute.get_strategy()  # no TPU, cluster or GPU here
    assert "default strategy" in caplog.text
    assert distribute.get_strategy("auto") is strategy  # one strategy per process and choice
    hardware = distribute.setup_hardware("auto")
    assert (hardware.backend, hardware.kind, hardware.num_replicas, hardware.is_chief) == (
        "tensorflow",
        "default",
        1,
        True,
    )


@tensorflow_only
def test_cpu_choice_pins_one_cpu_device(fresh_cache):
    import tensorflow as tf

    strategy = distribute.get_strategy("cpu")
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert distribute.setup_hardware("cpu").kind == "cpu"


@tensorflow_only
def test_auto_falls_back_when_the_tpu_resolver_fails(fresh_cache, monkeypatch, caplog):
    import tensorflow as tf

    calls = []

    def unreachable(address):
        calls.append(address)
        raise ValueError("Could not lookup TPU metadata")

    monkeypatch.setattr(tf_distribute, "tpu_address_from_environment", lambda: "local")
    monkeypatch.setattr(tf_distribute, "_tpu_resolver", unreachable)
    monkeypatch.setattr(tf_distribute, "_tpu_strategy", lambda resolver: _never())
    with caplog.at_level(logging.INFO, logger=tf_distribute.__name__):
        strategy = distribute.get_strategy("auto")
    assert calls == ["local"]
    assert strategy is tf.distribute.get_strategy()
    assert "no TPU reachable" in caplog.text


@tensorflow_only
def test_explicit_tpu_that_is_not_there_fails_clearly(fresh_cache, monkeypatch):
    def unreachable(address):
        raise ValueError("Please provide a TPU Name to connect to.")

    monkeypatch.setattr(tf_distribute, "_tpu_resolver", unreachable)
    with pytest.raises(ValueError, match=r"no TPU is reachable at grpc://10.0.0.2:8470.*KERAS_BACKEND=jax"):
        distribute.get_strategy("tpu", tpu_address="grpc://10.0.0.2:8470")


@tensorflow_only
def test_a_reachable_tpu_is_connected_and_used(fresh_cache, monkeypatch, caplog):
    """The TPU path with the resolver and TPUStrategy faked: checks what get_strategy does
    with them (connect, initialise, build the strategy), not that a TPU ran."""
    import tensorflow as tf

    resolver = mock.Mock()
    resolver.master.return_value = "grpc://10.0.0.2:8470"
    fake_strategy = mock.Mock(num_replicas_in_sync=8)
    monkeypatch.setattr(
        tf_distribute, "_tpu_resolver", lambda address: resolver if address == "my-tpu" else _never()
    )
    with (
        mock.patch.object(tf.config, "experimental_connect_to_cluster") as connect,
        mock.patch.object(tf.tpu.experimental, "initialize_tpu_system") as initialise,
        mock.patch.object(tf.distribute, "TPUStrategy", return_value=fake_strategy) as tpu_strategy,
        caplog.at_level(logging.INFO, logger=tf_distribute.__name__),
    ):
        strategy = distribute.get_strategy("auto", tpu_address="my-tpu")
    assert strategy is fake_strategy
    connect.assert_called_once_with(resolver)  # a remote TPU node
    initialise.assert_called_once_with(resolver)
    tpu_strategy.assert_called_once_with(resolver)
    assert "TPUStrategy" in caplog.text and "8 TPU cores" in caplog.text


@tensorflow_only
def test_a_local_tpu_vm_is_not_connected_remotely(monkeypatch):
    import tensorflow as tf

    resolver = mock.Mock()
    resolver.master.return_value = ""
    with (
        mock.patch.object(tf.config, "experimental_connect_to_cluster") as connect,
        mock.patch.object(tf.tpu.experimental, "initialize_tpu_system"),
        mock.patch.object(tf.distribute, "TPUStrategy") as tpu_strategy,
    ):
        tf_distribute._tpu_strategy(resolver)
    connect.assert_not_called()
    tpu_strategy.assert_called_once_with(resolver)


def test_setup_hardware_checks_its_choice():
    with pytest.raises(ValueError, match="must be one of"):
        distribute.setup_hardware("tpu-v4")


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the JAX branch of setup_hardware")
def test_setup_hardware_on_jax_goes_through_keras_distribution(monkeypatch):
    seen = {}
    real = distribute.jax_distribution

    def spy(kind, **kwargs):
        seen["args"] = (kind, kwargs)
        return real(kind, set_global=False, **{k: v for k, v in kwargs.items() if k != "multiprocess"})

    monkeypatch.setattr(distribute, "jax_distribution", spy)
    hardware = distribute.setup_hardware("cpu")
    assert seen["args"] == ("cpu", {})
    assert (hardware.backend, hardware.kind, hardware.num_workers, hardware.is_chief) == (
        "jax",
        "cpu",
        1,
        True,
    )
    assert hardware.distribution is not None and hardware.strategy is None
    with hardware.scope():
        pass
    distribute.setup_hardware("multiworker", num_processes=1)
    assert seen["args"] == ("auto", {"num_processes": 1, "multiprocess": True})
    with pytest.raises(RuntimeError, match=r"configures tf.distribute"):
        distribute.get_strategy("auto")
