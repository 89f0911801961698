"""The model card: a re-export from a card keeps every recorded figure."""

import keras

from keras_barlow import export

REWRITTEN = ("created", "files", "versions")  # describe the new files, not the training


def test_reexport_from_the_card_keeps_what_it_recorded(exported, tmp_path):
    card = exported["card"]
    encoder = export.load_encoder(exported["dir"])
    export.export_encoder(encoder, tmp_path / "again", metadata=export.metadata_from_card(card))
    again = export.read_model_card(tmp_path / "again")
    assert {k: v for k, v in again.items() if k not in REWRITTEN} == {
        k: v for k, v in card.items() if k not in REWRITTEN
    }
    assert again["versions"]["keras"] == keras.__version__
