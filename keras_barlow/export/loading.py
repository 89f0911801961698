"""Loading an export back: `load_encoder` (checked) and its model card.

`keras.models.load_model(".../encoder.keras")` works too (after `import keras_barlow`,
which registers the classes); `load_encoder` first checks the file against the card's
size and checksum, so truncated, corrupt or replaced files fail with a clear error.
Loading needs no TensorFlow.
"""

import json
import os
import weakref
import zipfile

import keras

from keras_barlow._io import sha256_file
from keras_barlow.export.layout import CARD_FILE, ENCODER_FILE

# encoder -> model card, for encoders returned by load_encoder (see model_card()).
_CARDS = weakref.WeakKeyDictionary()


def load_encoder(directory):
    """Loads `encoder.keras` from an export, checking it first.

    The returned encoder carries its pretraining normalisation
    (`keras_barlow.export.pretraining_preprocessing(encoder)`) and remembers its model card
    (`model_card(encoder)`), so `keras_barlow.detector(encoder, ...)` normalises as in
    pretraining.

    Args:
        directory: an export directory (or the `encoder.keras` file in one).

    Returns:
        The encoder (e.g. a `keras_barlow.export.PretrainedResNetBackbone`).

    Raises:
        FileNotFoundError: the directory or its `encoder.keras` does not exist.
        ValueError: the file is truncated, corrupt or differs from the card's checksum, or
            the card is not valid JSON.

    Example:
    ```python
    encoder = load_encoder("savedmodels/digits")
    model_card(encoder)["preprocessing"]["mean"]  # [0.485, 0.456, 0.406]
    ```
    """
    path = os.path.abspath(os.fspath(directory))
    if os.path.isfile(path) and path.endswith(".keras"):
        path = os.path.dirname(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"no exported encoder at {path}: the directory does not exist. "
            "Write one with keras_barlow.export_encoder(model, directory)."
        )
    if not os.path.isdir(path):
        raise ValueError(
            f"{path} is a file, not an export directory (expected {ENCODER_FILE} and {CARD_FILE} in it)"
        )
    keras_path = os.path.join(path, ENCODER_FILE)
    if not os.path.isfile(keras_path):
        found = sorted(os.listdir(path)) or "nothing"
        raise FileNotFoundError(
            f"{path} is not an encoder export: it has no {ENCODER_FILE} (found {found}). "
            "Write one with keras_barlow.export_encoder(model, directory)."
        )
    card = read_model_card(path) if os.path.exists(os.path.join(path, CARD_FILE)) else None
    check_archive(keras_path, card)
    try:
        encoder = keras.models.load_model(keras_path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for bad archives
        raise ValueError(
            f"could not load {keras_path}: {type(err).__name__}: {_first_line(err)}. "
            "If it holds custom layers, import the module that registers them first; otherwise the file is "
            "damaged: export the encoder again."
        ) from None
    if card is not None:
        _CARDS[encoder] = card
    return encoder


def read_model_card(directory):
    """The model card (`model_card.json`) of an export directory, as a dict."""
    path = os.path.join(os.fspath(directory), CARD_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no {CARD_FILE} in {directory}: not an encoder export (or an incomplete copy of one)"
        )
    try:
        with open(path) as f:
            card = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path} is not valid JSON ({err}): the card is damaged; export the encoder again"
        ) from None
    if not isinstance(card, dict) or "preprocessing" not in card:
        raise ValueError(f"{path} is not a keras_barlow model card (no 'preprocessing' entry)")
    return card


def model_card(encoder_or_directory):
    """The model card of an export directory, or of an encoder returned by `load_encoder`.

    Returns:
        The card as a dict, or `None` for an encoder that was not loaded from an export.
    """
    if isinstance(encoder_or_directory, (str, os.PathLike)):
        return read_model_card(encoder_or_directory)
    try:
        return _CARDS.get(encoder_or_directory)
    except TypeError:  # not weak-referenceable
        return None


def check_archive(keras_path, card):
    """Checks a `.keras` file: a readable zip, and the size and checksum its card records.

    Raises:
        ValueError: naming what is wrong and what to do.
    """
    size = os.path.getsize(keras_path)
    if not zipfile.is_zipfile(keras_path):
        raise ValueError(
            f"{keras_path} is not a valid .keras archive ({size} bytes; truncated or corrupt). "
            "Export the encoder again with keras_barlow.export_encoder."
        )
    expected = ((card or {}).get("files") or {}).get(ENCODER_FILE) or {}
    if expected.get("bytes") is not None and expected["bytes"] != size:
        raise ValueError(
            f"{keras_path} has {size} bytes but the model card recorded {expected['bytes']}: the file is "
            "truncated or was replaced. Export the encoder again."
        )
    if expected.get("sha256") and expected["sha256"] != sha256_file(keras_path):
        raise ValueError(
            f"{keras_path} does not match the checksum in {CARD_FILE}: the file is corrupt or was modified. "
            "Export the encoder again."
        )
    try:
        with zipfile.ZipFile(keras_path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(
            f"{keras_path} is a damaged .keras archive ({err}). Export the encoder again."
        ) from None
    if bad is not None:
        raise ValueError(
            f"{keras_path} is a damaged .keras archive ({bad} fails its CRC check). Export the encoder again."
        )


def _first_line(err):
    text = str(err).strip().splitlines()
    return text[0] if text else ""
