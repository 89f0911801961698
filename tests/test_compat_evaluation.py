"""The evaluation section of `keras_barlow._compat`: fails when a Keras upgrade breaks the
workaround or makes it unnecessary."""

import keras
import numpy as np

from keras_barlow import _compat


def test_optimizer_variable_index_finds_the_slot_of_each_variable():
    assert _compat.keras_version_in(_compat.OPTIMIZER_VARIABLE_INDEX_VERIFIED), (
        f"Keras {keras.version()} is outside the verified range: re-check Optimizer._get_variable_index"
    )
    variables = [keras.Variable(np.zeros(n, "float32"), name=f"v{n}") for n in (1, 2, 3)]
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(variables)
    assert [_compat.optimizer_variable_index(optimizer, v) for v in reversed(variables)] == [2, 1, 0]
    # A public equivalent would make the workaround unnecessary.
    public = [
        name
        for name in dir(keras.optimizers.Optimizer)
        if "variable_index" in name and not name.startswith("_")
    ]
    assert not public, f"Keras now has {public}: use it in FineTuneSGD and drop optimizer_variable_index"
