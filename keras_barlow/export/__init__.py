"""Export a pretrained encoder and load it back.

- `writer`: `export_encoder` (atomic `.keras` + TF SavedModel + KerasHub preset + card);
- `pretrained`: encoders that carry their pretraining normalisation in their config
  (`pretraining_preprocessing(encoder)`);
- `preset`: the KerasHub preset and its classifier/preprocessor classes;
- `card`: the model card; `loading`: `load_encoder`, `read_model_card`, `model_card`;
- `directories`: atomic replacement, stale staging clean-up, foreign files carried over;
- `layout`: the file names of an export directory.
"""

from keras_barlow.export.card import (
    CARD_FORMAT_VERSION,
    DEFAULT_MEAN,
    DEFAULT_STD,
    build_card,
    metadata_from_card,
)
from keras_barlow.export.directories import (
    carry_over_foreign_files,
    check_replaceable,
    clean_stale_directories,
    replace_directory,
    staging_directory,
)
from keras_barlow.export.layout import (
    CARD_FILE,
    ENCODER_FILE,
    EXPORT_ENTRIES,
    PRESET_DIR,
    SAVED_MODEL_DIR,
    SERVING_ENDPOINT,
)
from keras_barlow.export.loading import check_archive, load_encoder, model_card, read_model_card
from keras_barlow.export.preset import (
    PretrainedEncoderImageClassifier,
    PretrainedEncoderImageClassifierPreprocessor,
    PretrainedResNetImageClassifier,
    PretrainedResNetImageClassifierPreprocessor,
    image_converter,
    write_preset,
)
from keras_barlow.export.pretrained import (
    PretrainedEncoder,
    PretrainedResNetBackbone,
    check_pretraining_preprocessing,
    pretraining_preprocessing,
    with_pretraining_preprocessing,
)
from keras_barlow.export.writer import (
    export_encoder,
    save_keras,
    serving_model,
    serving_signature,
    write_saved_model,
)

__all__ = [
    "CARD_FILE",
    "CARD_FORMAT_VERSION",
    "DEFAULT_MEAN",
    "DEFAULT_STD",
    "ENCODER_FILE",
    "EXPORT_ENTRIES",
    "PRESET_DIR",
    "SAVED_MODEL_DIR",
    "SERVING_ENDPOINT",
    "PretrainedEncoder",
    "PretrainedEncoderImageClassifier",
    "PretrainedEncoderImageClassifierPreprocessor",
    "PretrainedResNetBackbone",
    "PretrainedResNetImageClassifier",
    "PretrainedResNetImageClassifierPreprocessor",
    "build_card",
    "carry_over_foreign_files",
    "check_archive",
    "check_pretraining_preprocessing",
    "check_replaceable",
    "clean_stale_directories",
    "export_encoder",
    "image_converter",
    "load_encoder",
    "metadata_from_card",
    "model_card",
    "pretraining_preprocessing",
    "read_model_card",
    "replace_directory",
    "save_keras",
    "serving_model",
    "serving_signature",
    "staging_directory",
    "with_pretraining_preprocessing",
    "write_preset",
    "write_saved_model",
]
