"""The export every test of this folder reads (written once per session)."""

import pytest

from keras_barlow import export
from tests.export.export_helpers import probe_images, reference_features, tiny_trained_model


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    model, history = tiny_trained_model()
    directory = str(tmp_path_factory.mktemp("export") / "encoder")
    export.export_encoder(
        model,
        directory,
        metadata={
            "augmentation": "digits",
            "history": history,
            "training_data": "random test images",
            "batch_size": 8,
            "evaluation": {"knn_accuracy": 0.5},
            "name": "tiny",
        },
    )
    card = export.read_model_card(directory)
    images = probe_images()
    return {
        "model": model,
        "dir": directory,
        "card": card,
        "images": images,
        "features": reference_features(model, images, card),
    }
