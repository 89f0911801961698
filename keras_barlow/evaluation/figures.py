"""Pictures of a run: the embedding of the test set (t-SNE) and the training curves.

Both are drawn with Matplotlib's object API (no `pyplot`, so the caller's Matplotlib
backend and global state are untouched) and written atomically as PNG files.

Example:

```python
panels = {
    "Barlow Twins": extract_features(encoder, test),
    "random init": extract_features(random_encoder, test),
    "raw pixels": extract_features(None, test_pixels),
}
embedding_figure(panels, "embedding.png")
training_figure(history.history, "training.png")
```
"""

import io
import os

import numpy as np

from keras_barlow._io import atomic_write_bytes

# Curves drawn by `training_figure`, panel by panel: (title, [(history key, label)]).
TRAINING_PANELS = (
    ("loss", [("loss", "loss")]),
    ("loss terms", [("on_diag", "on-diagonal Σ(1 − Cᵢᵢ)²"), ("off_diag", "off-diagonal Σ Cᵢⱼ²")]),
    (
        "monitors (top-1)",
        [("linear_top1", "linear probe"), ("knn_top1", "kNN")],
    ),
)


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _write_png(figure, path):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    atomic_write_bytes(os.fspath(path), buffer.getvalue())
    return os.fspath(path)


def tsne_2d(features, *, seed=0, perplexity=30.0):
    """2-D t-SNE coordinates of `features` (scikit-learn, PCA initialisation, seeded).

    Args:
        features: `(n, d)` array.
        seed: random state.
        perplexity: t-SNE perplexity (lowered to fit small sets).

    Returns:
        `(n, 2)` float array.
    """
    from sklearn.manifold import TSNE

    features = np.asarray(features, dtype="float32")
    perplexity = min(float(perplexity), max(1.0, (len(features) - 1) / 3))
    tsne = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity)
    return tsne.fit_transform(features)


def embedding_figure(panels, path, *, seed=0, max_points=2000, class_names=None):
    """Writes side-by-side 2-D t-SNE maps of several representations of one labelled set.

    Args:
        panels: dict `title -> Features` (or `(features, labels)`), e.g. Barlow Twins,
            random init and raw pixels on the same test images.
        path: the PNG file to write.
        seed: seed of the subsample and of t-SNE.
        max_points: at most this many points per panel (a class-stratified subsample).
        class_names: names for the legend (default: the label values).

    Returns:
        `path`.
    """
    if not panels:
        raise ValueError("embedding_figure needs at least one panel: {title: (features, labels)}")
    figure = _figure(4.2 * len(panels), 4.4)
    rng = np.random.default_rng(seed)
    for index, (title, panel) in enumerate(panels.items()):
        features, labels = (panel.features, panel.labels) if hasattr(panel, "features") else panel
        features, labels = np.asarray(features).reshape(len(labels), -1), np.asarray(labels)
        if len(labels) > max_points:
            keep = np.sort(rng.choice(len(labels), max_points, replace=False))
            features, labels = features[keep], labels[keep]
        points = tsne_2d(features, seed=seed)
        axes = figure.add_subplot(1, len(panels), index + 1)
        for value in np.unique(labels):
            mask = labels == value
            name = class_names[int(value)] if class_names is not None else str(value)
            axes.scatter(points[mask, 0], points[mask, 1], s=4, label=name, color=_class_colour(value))
        axes.set_title(title)
        axes.set_xticks([])
        axes.set_yticks([])
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=3, fontsize=8, frameon=False)
    figure.suptitle("t-SNE of the test features, coloured by class", y=1.02)
    return _write_png(figure, path)


def _class_colour(value):
    from matplotlib import colormaps

    return colormaps["tab10"](int(value) % 10)


def training_figure(history, path, *, title=None):
    """Writes the training curves of a Barlow Twins run: loss, its two terms, the monitors.

    Args:
        history: Keras' `History.history` (dict `metric -> list per epoch`), or the list of
            per-epoch log dicts. Monitors that ran every few epochs (kNN, linear probe) are
            drawn at the epochs they ran; missing keys are left out.
        path: the PNG file to write.
        title: optional figure title.

    Returns:
        `path`.
    """
    if isinstance(history, list):
        keys = sorted({key for logs in history for key in logs})
        history = {key: [logs.get(key) for logs in history] for key in keys}
    if not history.get("loss"):
        raise ValueError(f"history has no 'loss' values to draw (keys: {sorted(history)})")
    figure = _figure(13, 3.6)
    for index, (panel_title, curves) in enumerate(TRAINING_PANELS):
        axes = figure.add_subplot(1, len(TRAINING_PANELS), index + 1)
        for key, label in curves:
            values = history.get(key)
            if not values:
                continue
            epochs = [e + 1 for e, v in enumerate(values) if v is not None]
            marker = "." if len(epochs) < 30 else None
            axes.plot(epochs, [v for v in values if v is not None], label=label, marker=marker)
        if panel_title == "loss terms":
            axes.set_yscale("log")
        axes.set_title(panel_title)
        axes.set_xlabel("epoch")
        if axes.lines:
            axes.legend(fontsize=8)
    if title:
        figure.suptitle(title, y=1.04)
    return _write_png(figure, path)
