"""FineTuneSGD: two learning rates, momentum, config round trip."""

import keras
import numpy as np

from keras_barlow.evaluation import FineTuneSGD


def test_fine_tune_sgd_uses_two_learning_rates():
    keras.utils.set_random_seed(0)
    encoder_var = keras.Variable(np.ones((2, 2), "float32"), name="enc_kernel")
    head_var = keras.Variable(np.ones((2,), "float32"), name="head_bias")
    optimizer = FineTuneSGD(0.5, encoder_lr_multiplier=0.1, encoder_paths=[encoder_var.path], momentum=0.9)
    g_enc, g_head = np.full((2, 2), 0.2, "float32"), np.full((2,), -1.0, "float32")
    for _ in range(2):
        optimizer.apply_gradients([(g_enc, encoder_var), (g_head, head_var)])
    # Momentum buffer after two equal gradients: g, then 0.9 g + g; updates lr·buffer each.
    expected_enc = 1 - 0.05 * (0.2 + 1.9 * 0.2)
    expected_head = 1 - 0.5 * (-1.0 - 1.9)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(encoder_var), np.full((2, 2), expected_enc), rtol=1e-6
    )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(head_var), np.full((2,), expected_head), rtol=1e-6)
    restored = FineTuneSGD.from_config(optimizer.get_config())
    assert restored.encoder_paths == optimizer.encoder_paths and restored.encoder_lr_multiplier == 0.1
    assert keras.saving.get_registered_name(FineTuneSGD) == "keras_barlow>FineTuneSGD"
