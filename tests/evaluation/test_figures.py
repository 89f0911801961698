"""Figures: valid PNG files, t-SNE that keeps separated classes apart, no global Matplotlib state."""

import struct

import numpy as np
import pytest
from helpers import run_python

from keras_barlow.evaluation import embedding_figure, training_figure
from keras_barlow.evaluation.features import Features
from keras_barlow.evaluation.figures import tsne_2d

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    return struct.unpack(">II", data[16:24])


def _blobs(n_per_class=30, classes=3, dim=20, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    centres = 10 * rng.normal(size=(classes, dim))
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


def test_tsne_keeps_well_separated_classes_apart():
    from sklearn.linear_model import LogisticRegression

    features, labels = _blobs()
    points = tsne_2d(features, seed=0)
    assert points.shape == (90, 2)
    assert LogisticRegression(max_iter=1000).fit(points, labels).score(points, labels) == 1.0
    np.testing.assert_array_equal(points, tsne_2d(features, seed=0))  # seeded


def test_embedding_figure_writes_one_panel_per_representation(tmp_path):
    features, labels = _blobs()
    one = embedding_figure({"a": Features(features, labels)}, tmp_path / "one.png")
    three = embedding_figure(
        {"a": Features(features, labels), "b": (features * 2, labels), "c": (features[:, :5], labels)},
        tmp_path / "three.png",
        max_points=60,
    )
    (w1, h1), (w3, h3) = _png_size(tmp_path / "one.png"), _png_size(tmp_path / "three.png")
    assert one.endswith("one.png") and three.endswith("three.png")
    assert w3 > 2 * w1 and abs(h3 - h1) < 0.2 * h1
    with pytest.raises(ValueError, match="at least one panel"):
        embedding_figure({}, tmp_path / "none.png")


def test_training_figure_draws_history_with_sparse_monitors(tmp_path):
    epochs = 12
    history = {
        "loss": list(np.linspace(50, 10, epochs)),
        "on_diag": list(np.linspace(20, 2, epochs)),
        "off_diag": list(np.linspace(900, 100, epochs)),
        "knn_top1": [None, 0.5, None, 0.6] * 3,
    }
    path = training_figure(history, tmp_path / "training.png", title="run")
    assert _png_size(tmp_path / "training.png")[0] > 500 and path.endswith("training.png")
    as_logs = [{key: values[e] for key, values in history.items()} for e in range(epochs)]
    training_figure(as_logs, tmp_path / "from_logs.png")
    assert not list(tmp_path.glob("*.tmp-*"))  # written atomically
    with pytest.raises(ValueError, match="no 'loss'"):
        training_figure({"knn_top1": [0.5]}, tmp_path / "bad.png")


def test_figures_leave_matplotlib_global_state_alone():
    out = run_python(
        "import matplotlib\n"
        "before = matplotlib.get_backend()\n"
        "import sys, numpy as np\n"
        "from keras_barlow.evaluation.figures import training_figure\n"
        "import tempfile, os\n"
        "training_figure({'loss': [3.0, 2.0]}, os.path.join(tempfile.mkdtemp(), 'x.png'))\n"
        "pyplot = sys.modules.get('matplotlib.pyplot')\n"
        "print(before == matplotlib.get_backend(), pyplot.get_fignums() if pyplot else [])\n"
    )
    assert out.strip().splitlines()[-1] == "True []"  # same backend, no pyplot figure left open
