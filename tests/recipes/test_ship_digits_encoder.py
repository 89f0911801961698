"""recipes/ship_digits_encoder.py: the README and pictures a shipped directory gets."""

import ship_digits_encoder as ship

CARD = {
    "name": "barlow-twins-resnet18-w16-mnist5k",
    "input": {"image_shape": [16, 16, 3]},
    "architecture": {"feature_dim": 128},
    "preprocessing": {"mean": [0.1307] * 3, "std": [0.3081] * 3},
    "recipe": "python recipes/quickstart.py --data mnist5k",
}


def test_the_quick_starts_readme_and_pictures_are_shipped(tmp_path):
    export, staged = tmp_path / "export", tmp_path / "staged"
    export.mkdir()
    staged.mkdir()
    (export / "README.md").write_text("# mnist5k: this run\n")
    (export / "training.png").write_bytes(b"png")
    (export / "history.json").write_text("{}")
    ship.add_readme(str(export), str(staged), CARD, 0.9488, keep_existing=False)
    assert sorted(p.name for p in staged.iterdir()) == ["README.md", "training.png"]
    assert (staged / "README.md").read_text() == "# mnist5k: this run\n"


def test_without_a_readme_in_the_export_it_is_written_from_the_card(tmp_path):
    export, staged = tmp_path / "export", tmp_path / "staged"
    export.mkdir()
    staged.mkdir()
    ship.add_readme(str(export), str(staged), CARD, 0.9488, keep_existing=False)
    text = (staged / "README.md").read_text()
    assert text.startswith("# mnist5k: ") and "kNN top-1 0.9488 on the mnist5k test split" in text
    assert 'load_encoder("savedmodels/mnist5k")' in text and "digits test" not in text
    assert "tests/integration/test_shipped_artefacts.py" in text


def test_a_reexport_keeps_the_shipped_readme(tmp_path):
    export, staged = tmp_path / "export", tmp_path / "staged"
    export.mkdir()
    staged.mkdir()
    (export / "README.md").write_text("# shipped, edited by hand\n")
    ship.add_readme(str(export), str(staged), CARD, 0.9488, keep_existing=True)
    assert list(staged.iterdir()) == []
