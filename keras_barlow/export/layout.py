"""The layout of an export directory (file names only; no Keras, no TensorFlow).

```
digits/
  encoder.keras       the encoder; its config holds the pretraining normalisation
  saved_model/        TF SavedModel, signature "serving_default" ([0, 1] RGB -> features)
  keras_hub_preset/   KerasHub preset: config.json, model.weights.h5, metadata.json,
                      preprocessor.json, image_converter.json (raw 0-255 RGB)
  model_card.json     what was trained how, the checksums of the files above
  README.md, ...      anything else is yours: exports carry it over, never delete it
```
"""

ENCODER_FILE = "encoder.keras"
SAVED_MODEL_DIR = "saved_model"
PRESET_DIR = "keras_hub_preset"
CARD_FILE = "model_card.json"
SERVING_ENDPOINT = "serving_default"
# What export_encoder writes; every other entry of an export directory belongs to the user.
EXPORT_ENTRIES = frozenset({ENCODER_FILE, SAVED_MODEL_DIR, PRESET_DIR, CARD_FILE})
