"""Instance-level method overrides that live only inside a `with` block.

`BarlowTwins` computes some of its encoder's layers differently inside its own forward pass
(`one_by_one_map_convolution`, `fused_batch_normalization`) without changing the layers: each
block sets a plain instance attribute (outside Keras' attribute tracking) and deletes it on
exit. Under `MirroredStrategy` each replica traces the model in its own thread, so blocks over
the same layers nest across threads: entries are counted per layer and the attribute is removed
on the last exit.
"""

import contextlib
import threading

import keras

from keras_barlow import _compat

_LOCK = threading.Lock()
_ACTIVE = {}  # (id(layer), attribute) -> number of active blocks


@contextlib.contextmanager
def overriding(layers, attribute, make_override):
    """A block in which each of `layers` has `attribute` set to `make_override(layer)`.

    Args:
        layers: the layers to override.
        attribute: the method name (e.g. `"call"`).
        make_override: `layer -> callable`.

    Yields:
        The names of the layers.
    """
    with _LOCK:
        for layer in layers:
            key = (id(layer), attribute)
            count = _ACTIVE.get(key, 0)
            if count == 0:
                object.__setattr__(layer, attribute, make_override(layer))
            _ACTIVE[key] = count + 1
    try:
        yield [layer.name for layer in layers]
    finally:
        with _LOCK:
            for layer in layers:
                key = (id(layer), attribute)
                count = _ACTIVE.pop(key) - 1
                if count:
                    _ACTIVE[key] = count
                else:
                    object.__delattr__(layer, attribute)


def layers_with_own(model, layer_class, method):
    """The `layer_class` layers of `model` (itself and nested ones) whose `method` is `layer_class`'s.

    Subclasses that define their own `method` (e.g. a weight-standardised convolution) are
    left out: an override would bypass their computation.

    Args:
        model: a Keras layer or model (anything else gives no layers).
        layer_class: e.g. `keras.layers.Conv2D`.
        method: the method name, e.g. `"convolution_op"`.

    Returns:
        A list of layers.
    """
    if not isinstance(model, keras.layers.Layer):
        return []
    own = getattr(layer_class, method)
    return [
        layer
        for layer in [model, *_compat.flatten_layers(model)]
        if isinstance(layer, layer_class) and getattr(type(layer), method) is own
    ]
