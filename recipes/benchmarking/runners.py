"""What the benchmark times: `fit`, the bare step, the input pipeline, as runners.

Every runner has the same small interface: `warm_up(calls)` and `block(steps)` return the
seconds of each call, `spe` is the steps each call runs, `extra` holds facts to report
(e.g. whether the step was XLA-compiled). The worker times them in turns.
"""

import time

from benchmarking.inputs import synthetic_views

PRESETS = {
    "resnet18-32": dict(
        depth=18, width=64, image_size=32, small_images=True, source_size=32, augment="cifar",
        batch_size=128, projector=(2048, 2048, 2048), steps=4, repeats=3, warmup=2,
    ),
    "resnet50-224": dict(
        depth=50, width=64, image_size=224, small_images=False, source_size=256, augment="imagenet",
        batch_size=32, projector=(8192, 8192, 8192), steps=3, repeats=3, warmup=2,
    ),
    # A two-convolution encoder: traced in seconds, for CI (ResNet tracing alone takes ~20 s).
    "smoke": dict(
        depth=0, width=8, image_size=16, small_images=True, source_size=16, augment="cifar",
        batch_size=8, projector=(32, 32), steps=2, repeats=2, warmup=2,
    ),
}  # fmt: skip


def small_convnet(size, width):
    """`--depth 0`: two 3×3 convolution + batch-norm + ReLU blocks (the smoke test's encoder)."""
    import keras

    inputs = keras.Input((size, size, 3))
    x = inputs
    for i, strides in enumerate((1, 2)):
        x = keras.layers.Conv2D(width * (i + 1), 3, strides=strides, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
    return keras.Model(inputs, x, name="small_convnet")


def build_model(spec):
    """The compiled `BarlowTwins` model a spec describes."""
    import keras

    from keras_barlow.backbones import resnet
    from keras_barlow.models.barlow_twins import BarlowTwins
    from keras_barlow.optimizers import LARS

    keras.utils.set_random_seed(0)
    size = spec["image_size"]
    if spec["depth"] == 0:
        encoder = small_convnet(size, spec["width"])
    else:
        encoder = resnet(
            spec["depth"], (size, size, 3), small_images=spec["small_images"], width=spec["width"]
        )
    # "auto" leaves the model's default (so an older checkout runs too: --versus-env PYTHONPATH=…).
    options = {
        name: spec[name] == "on"
        for name in ("fused_batchnorm", "pointwise_matmul")
        if spec.get(name, "auto") != "auto"
    }
    model = BarlowTwins(encoder, projector_dims=spec["projector"], **options)
    optimizer = {
        "lars": lambda: LARS(0.2),
        "sgd": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
        "adam": lambda: keras.optimizers.Adam(1e-3),
    }[spec["optimizer"]]()
    jit = spec["jit_compile"]
    model.compile(
        optimizer=optimizer,
        jit_compile=jit if jit == "auto" else jit == "true",
        steps_per_execution=spec["steps_per_execution"],
    )
    return model


def model_step_flops(model, spec):
    """FLOPs of one training step of `model` (see `benchmarking.flops`)."""
    from benchmarking import flops

    return flops.barlow_twins_step_flops(
        flops.keras_forward_macs(model.encoder),
        flops.keras_forward_macs(model.projector),
        batch_size=spec["batch_size"],
        embedding_dim=spec["projector"][-1],
    )


def _step_timer():
    """A `fit` callback recording the wall time between consecutive `on_train_batch_end`."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        # Keeps Keras' asynchronous callback dispatch (JAX) possible: the timestamps are
        # taken after the logs were read, i.e. when each step has finished.
        async_safe = True

        def on_train_begin(self, logs=None):
            self.durations = []
            self.last = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            # The model's NonFiniteLossGuard, which runs first, already read the loss: the
            # step has finished on the device when this runs.
            now = time.perf_counter()
            self.durations.append(now - self.last)
            self.last = now

    return StepTimer()


class FitRunner:
    """`fit` on a constant synthetic batch (or on `dataset`).

    Each timed block is one `fit` call of `steps + steps_per_execution` steps whose first
    call is dropped, so the once-per-`fit` set-up (callbacks, iterator) is not counted,
    while everything `fit` does per step (iterator, callbacks, logs, the loss guard's
    read) is. TensorFlow reads a repeated `tf.data` element; JAX NumPy arrays from a
    generator, so no TensorFlow is needed.
    """

    def __init__(self, spec, dataset=None):
        import keras

        self.model = build_model(spec)
        self.spe = spec["steps_per_execution"]
        self.timer = _step_timer()
        if dataset is not None:
            self.data = lambda: dataset
        else:
            view_a, view_b = synthetic_views(spec)
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                constant = tf.data.Dataset.from_tensors((view_a, view_b)).repeat()
                self.data = lambda: constant
            else:

                def batches():
                    while True:
                        yield view_a, view_b

                self.data = batches
        self.extra = {}

    def _fit(self, steps):
        self.model.fit(self.data(), epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[self.timer])
        self.extra["jit_compile"] = bool(self.model.jit_compile)
        return list(self.timer.durations)

    def warm_up(self, calls):
        return self._fit(calls * self.spe)

    def block(self, steps):
        return self._fit(steps + self.spe)[1:]


def _loop(fn, arg, calls):
    durations = []
    for _ in range(calls):
        start = time.perf_counter()
        out = fn(arg)
        float(out)  # wait for the step (as fit's loss guard does)
        durations.append(time.perf_counter() - start)
    return durations


class StepRunner:
    """`step`: the model's `train_step` in a `tf.function`; `bare` / `bare_concat`: a
    hand-written minimal step (encoder, projector, loss, gradients, optimizer; `bare_concat`
    encodes both views as one batch, so batch norm sees joint statistics, not the paper's).
    Both read the batch from a `tf.data` iterator inside the function, as `fit` does, and
    are compiled with XLA exactly when `fit` would be."""

    spe = 1

    def __init__(self, spec, kind):
        import tensorflow as tf
        from keras import ops

        from keras_barlow import losses

        model = build_model(spec)
        optimizer = model.optimizer
        variables = model.trainable_variables
        optimizer.build(variables)
        view_a, view_b = synthetic_views(spec)
        self.iterator = iter(tf.data.Dataset.from_tensors((view_a, view_b)).repeat())
        batch = spec["batch_size"]

        def embed(images):
            return model.projector(model.pooling(model.encoder(images, training=True)), training=True)

        if kind == "step":

            def step(iterator):
                return model.train_step(next(iterator))["loss"]

        else:

            def step(iterator):
                a, b = next(iterator)
                with tf.GradientTape() as tape:
                    if kind == "bare_concat":
                        z = embed(ops.concatenate([a, b], axis=0))
                        z_a, z_b = z[:batch], z[batch:]
                    else:
                        z_a, z_b = embed(a), embed(b)
                    loss = losses.barlow_twins_loss(z_a, z_b, lambd=model.lambd, scale_loss=model.scale_loss)
                gradients = tape.gradient(loss, variables)
                optimizer.apply_gradients(zip(gradients, variables))
                return loss

        self.extra = {"jit_compile": bool(model.jit_compile)}
        self.fn = tf.function(step, jit_compile=self.extra["jit_compile"])

    def warm_up(self, calls):
        return _loop(self.fn, self.iterator, calls)

    def block(self, steps):
        return _loop(self.fn, self.iterator, steps)


def pipeline_dataset(spec):
    """`pretraining_dataset` on synthetic uint8 images of `spec["source_size"]` pixels."""
    import numpy as np

    from keras_barlow.augment import AugmentationConfig
    from keras_barlow.data import pretraining_dataset

    rng = np.random.default_rng(0)
    side = spec["source_size"]
    images = rng.integers(0, 256, size=(spec["source_images"], side, side, 3), dtype=np.uint8)
    views = AugmentationConfig.preset(spec["augment"], image_size=spec["image_size"])
    return pretraining_dataset(images, batch_size=spec["batch_size"], augment=views, seed=0).repeat()


class PipelineRunner:
    """Batches of `(view_a, view_b)` pulled from `pretraining_dataset` on synthetic images."""

    spe = 1

    def __init__(self, spec):
        self.extra = {}
        self.iterator = iter(pipeline_dataset(spec))

    def block(self, steps):
        durations = []
        for _ in range(steps):
            start = time.perf_counter()
            view_a, view_b = next(self.iterator)
            view_a.numpy(), view_b.numpy()
            durations.append(time.perf_counter() - start)
        return durations

    warm_up = block


def make_runner(spec, measure):
    """The runner of one of our measurements (`fit`, `step`, `bare`, `pipeline`, ...)."""
    if measure == "fit":
        return FitRunner(spec)
    if measure == "fit_pipeline":
        return FitRunner(spec, dataset=pipeline_dataset(spec))
    if measure in ("step", "bare", "bare_concat"):
        return StepRunner(spec, measure)
    if measure == "pipeline":
        return PipelineRunner(spec)
    if measure == "pytorch":
        raise ValueError(
            "the PyTorch reference is measured in a process of its own (benchmarking.pytorch_worker), "
            "never beside our measurements"
        )
    raise ValueError(f"unknown measure {measure!r}")
