"""`FeaturePooling`: encoder outputs (maps, tokens or vectors) to one feature vector per image."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_barlow")
class FeaturePooling(keras.layers.Layer):
    """Turns an encoder's output into one feature vector per image.

    - rank 4 `(batch, height, width, channels)` feature maps (ResNets): global average pool;
    - rank 3 `(batch, tokens, dim)` token sequences (ViTs): the class token (`mode="auto"`
      or `"class_token"`) or the mean over tokens (`mode="mean_tokens"`);
    - rank 2 `(batch, dim)` features: unchanged.

    Args:
        mode: `"auto"`, `"class_token"` or `"mean_tokens"` (only used for rank-3 inputs).

    Example:
    >>> import numpy as np
    >>> tokens = np.arange(12, dtype="float32").reshape(1, 3, 4)
    >>> keras.ops.convert_to_numpy(FeaturePooling("mean_tokens")(tokens)).tolist()
    [[4.0, 5.0, 6.0, 7.0]]
    >>> keras.ops.convert_to_numpy(FeaturePooling()(tokens)).tolist()  # the class token
    [[0.0, 1.0, 2.0, 3.0]]
    """

    MODES = ("auto", "class_token", "mean_tokens")

    def __init__(self, mode="auto", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"pooling mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode

    def call(self, features):
        rank = len(features.shape)
        if rank == 4:
            return ops.mean(features, axis=(1, 2))
        if rank == 3:
            if self.mode == "mean_tokens":
                return ops.mean(features, axis=1)
            return features[:, 0, :]
        if rank == 2:
            return features
        raise unsupported_features_error(features.shape)

    def compute_output_shape(self, input_shape):
        if len(input_shape) not in (2, 3, 4):
            raise unsupported_features_error(input_shape)
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def unsupported_features_error(shape):
    """The `ValueError` for encoder outputs `FeaturePooling` cannot pool."""
    return ValueError(
        "the encoder must output (batch, dim), (batch, tokens, dim) or (batch, height, width, channels) "
        f"features, got shape {tuple(shape)}; end it with the layer whose output is the representation "
        "(e.g. a backbone without its classification head)"
    )
