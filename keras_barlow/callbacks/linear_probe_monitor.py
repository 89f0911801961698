"""`LinearProbeMonitor`: the linear-probe accuracy of the frozen encoder during pretraining."""

import time

import keras

from keras_barlow.callbacks.monitors import ScalarWriter, check_every, is_due


class LinearProbeMonitor(keras.callbacks.Callback):
    """Linear-probe top-1 of the model's features every `every` epochs, logged like a metric.

    Every `every` epochs (and at the last one) the encoder runs frozen, in inference mode,
    over a labelled training and validation set; a converged L2-regularised logistic
    regression (`keras_barlow.evaluation.linear_probe`, `protocol="logistic"`) is fitted on
    the training features and scored on the validation ones. `linear_top1` and
    `linear_top5` go into the logs of the epochs it runs at, so `History`, `CSVLogger`,
    `TensorBoard` and `EarlyStopping` see them (place this callback before them), and with
    `log_dir` into TensorBoard under `log_dir/monitors`. Like `KNNMonitor`, it logs nothing
    at the other epochs: `History.history["linear_top1"]` holds one value per evaluation.

    The probe's cost is the features of both sets (one forward pass each) plus the
    logistic regression; a fixed `C` skips the choice of `C` on a split of the training
    set. `seconds` records the cost of each evaluation.

    Args:
        train_data, validation_data: `(images, labels)` arrays or `tf.data` datasets of
            `(image, label)`, prepared as the model's input (e.g. `labeled_dataset`).
        every: epochs between evaluations (the last epoch is always evaluated).
        C: a fixed inverse regularisation strength, or None to choose it from `Cs` on a
            held-out share of the training set.
        Cs: the grid for that choice (default: `keras_barlow.evaluation`'s).
        batch_size: images per forward pass.
        log_dir: TensorBoard directory (optional).
        preprocess: callable applied to image batches.

    Attributes:
        history: list of `(epoch, linear_top1)`.
        seconds: list of the wall-clock seconds each evaluation took.

    Example:

    ```python
    monitor = LinearProbeMonitor((x_train, y_train), (x_val, y_val), every=10, C=100.0)
    history = model.fit(views, epochs=100, callbacks=[monitor])
    monitor.history  # [(9, top1), (19, top1), ..., (99, top1)]: (epoch index, accuracy)
    ```
    """

    def __init__(
        self,
        train_data,
        validation_data,
        *,
        every=1,
        C=None,
        Cs=None,
        batch_size=256,
        log_dir=None,
        preprocess=None,
    ):
        super().__init__()
        self.train_data = train_data
        self.validation_data = validation_data
        self.every = check_every(every)
        if C is not None and not float(C) > 0:
            raise ValueError(f"C must be a positive number (e.g. 100.0) or None to choose it, got {C!r}")
        self.C = None if C is None else float(C)
        self.Cs = Cs
        self.batch_size = batch_size
        self.preprocess = preprocess
        self.history = []
        self.seconds = []
        self._writer = ScalarWriter(log_dir, "monitors") if log_dir else None

    def on_epoch_end(self, epoch, logs=None):
        if not is_due(epoch, self.every, self.params):
            return
        from keras_barlow import evaluation

        start = time.perf_counter()
        result = evaluation.linear_probe(
            self.model,
            self.train_data,
            self.validation_data,
            protocol="logistic",
            C=self.C,
            Cs=None if self.C is not None else self.Cs,
            batch_size=self.batch_size,
            preprocess=self.preprocess,
        )
        self.seconds.append(time.perf_counter() - start)
        scores = {"linear_top1": result["top1"], "linear_top5": result["top5"]}
        self.history.append((epoch, result["top1"]))
        if logs is not None:
            logs.update(scores)
        if self._writer is not None:
            self._writer.write(epoch + 1, scalars=scores)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
