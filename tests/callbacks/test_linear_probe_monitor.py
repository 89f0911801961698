"""LinearProbeMonitor: the logged accuracy is the converged probe's, at the epochs asked for."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from keras_barlow import LinearProbeMonitor, evaluation


def _labelled(n_per_class, seed):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    images = rng.uniform(0, 0.3, size=(len(labels), 8, 8, 3)).astype("float32")
    images[np.arange(len(labels)), :, :, labels] += 0.6
    return images, labels


def _views(seed=0, n=16, batch=8):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    base = rng.uniform(size=(n, 8, 8, 3)).astype("float32")
    noisy = base + 0.05 * rng.normal(size=base.shape).astype("float32")
    return tf.data.Dataset.from_tensor_slices((noisy, base)).batch(batch, drop_remainder=True)


def _tensorboard_scalars(directory):
    import glob

    import tensorflow as tf

    scalars = {}
    for path in glob.glob(str(directory / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                number = (
                    float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
                )
                scalars.setdefault(value.tag, []).append((event.step, number))
    return scalars


@pytest.mark.tensorflow_only  # a tf.data dataset of views and TensorBoard events
def test_logs_the_converged_probe_every_n_epochs(tmp_path, tiny_encoder, tiny_model):
    model = tiny_model(tiny_encoder(seed=0))
    train, validation = _labelled(12, seed=1), _labelled(6, seed=2)
    monitor = LinearProbeMonitor(train, validation, every=2, C=10.0, log_dir=tmp_path)
    history = model.fit(_views(), epochs=3, verbose=0, callbacks=[monitor])

    # Evaluated after epochs 2 and 3 (the last) only.
    assert [epoch for epoch, _ in monitor.history] == [1, 2]
    assert len(history.history["linear_top1"]) == 2
    assert len(monitor.seconds) == 2 and all(s > 0 for s in monitor.seconds)

    # The last value is scikit-learn's logistic regression on the final L2-normalised features.
    train_features = evaluation.extract_features(model, train)
    validation_features = evaluation.extract_features(model, validation)
    reference = LogisticRegression(C=10.0, max_iter=10_000).fit(train_features.features, train[1])
    expected = float(np.mean(reference.predict(validation_features.features) == validation[1]))
    assert history.history["linear_top1"][-1] == pytest.approx(expected, abs=1 / len(validation[1]))
    assert monitor.history[-1][1] == history.history["linear_top1"][-1]
    assert _tensorboard_scalars(tmp_path / "monitors")["linear_top1"][-1] == (
        3,
        pytest.approx(monitor.history[-1][1]),
    )


@pytest.mark.parametrize("kwargs, match", [({"every": 0}, "every"), ({"C": 0}, "C must be a positive")])
def test_bad_settings_are_refused(kwargs, match):
    data = _labelled(2, seed=0)
    with pytest.raises(ValueError, match=match):
        LinearProbeMonitor(data, data, **kwargs)
