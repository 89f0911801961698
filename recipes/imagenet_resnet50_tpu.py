"""The paper's ImageNet run: ResNet-50, 1000 epochs, batch 2048, projector 8192-8192-8192,
LARS, λ = 0.0051, on a Colab / Cloud TPU, JAX backend by default.

    # Colab TPU VM (JAX is preinstalled; TensorFlow-CPU is only the input pipeline):
    KERAS_BACKEND=jax python recipes/imagenet_resnet50_tpu.py \\
        --data-dir gs://YOUR_BUCKET/tensorflow_datasets \\
        --output-dir /content/drive/MyDrive/barlow_imagenet

    # TensorFlow TPUStrategy instead (where TensorFlow-TPU is installed):
    python recipes/imagenet_resnet50_tpu.py --backend tensorflow --hardware tpu ...

Settings (Zbontar et al. 2021, §4 and the official code facebookresearch/barlowtwins):
LARS with learning rate 0.2 (weights) and 0.0048 (biases, batch-norm parameters) per 256
images, i.e. 1.6 and 0.0384 at batch 2048; 10 warm-up epochs then cosine decay to 1/1000;
weight decay 1e-6 (official code; the paper's text says 1.5e-6), momentum 0.9, trust
coefficient 0.001; the paper's augmentations at 224 px (`preset="imagenet"`); batch norm
synchronised over all replicas (exact global-batch statistics on every backend).
`mixed_bfloat16` on TPUs. ImageNet must be prepared for TFDS (`imagenet2012`, manual
download) in `--data-dir` (a `gs://` bucket for TPUs). With `KERAS_BACKEND` unset or
different from `--backend`, the process starts again on the right backend before training.

Reference result: 73.2 % linear top-1 on ImageNet (paper, Table 1); the official checkpoint
reaches 73.5 % (not measured with this package).

Time, an estimate: one pair costs about 51 GFLOP (two ResNet-50 views forward + backward
≈ 2 × 3 × 8.2 GFLOP, plus the 8192³ projector ≈ 1.8 GFLOP), so 1000 epochs of 1.28 M images
are about 6.5e19 FLOP: 10–21 days on a TPU v2-8 (180 bf16 TFLOP/s peak) at 20–40 %
utilisation, 4.5–9 days on a v3-8 (420 TFLOP/s). The paper reports about 124 hours on 32
V100 GPUs. Colab sessions end after hours, so the run relies on its backups: run the same
command again and it resumes. Batch 2048 (256 per core, two 224-px views each) may not fit
a v2-8's 8 GiB per core: use a larger TPU, or lower --batch-size (the learning rates scale
with it). The other arguments are those of `keras-barlow pretrain`.

`--smoke`: digits, a narrow ResNet-18, 2 steps, on whatever hardware is there (CI runs it
on CPU under both backends).
"""

import os

if __name__ == "__main__":  # TensorFlow reads its C++ log level once, when it loads
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_barlow.cli import pretrain

PAPER = dict(
    dataset="imagenet2012",
    preset="imagenet",
    image_size=224,
    backbone="resnet50",
    projector="8192,8192,8192",
    lambd=0.0051,
    epochs=1000,
    batch_size=2048,
    learning_rate=0.2,
    bias_learning_rate=0.0048,
    weight_decay=1e-6,
    eta=1e-3,
    warmup_epochs=10,
    backend="jax",
    output_dir="runs/imagenet_resnet50",
    backup_every=500,
    checkpoint_every=10,
    keep_checkpoints=3,
)
# The smoke run keeps the recipe's wiring but not its size: ResNet-18 (compiling a ResNet-50
# with XLA on a CPU takes minutes), no export (the pretrain recipe's smoke run checks it).
# Over keras_barlow.cli.pretrain_arguments.SMOKE:
SMOKE = {"projector": "32,32,32", "output_dir": "runs/smoke_imagenet", "no_export": True}


def main(argv=None):
    return pretrain.main(
        argv,
        command="python recipes/imagenet_resnet50_tpu.py",
        description=__doc__,
        defaults=PAPER,
        smoke=SMOKE,
    )


if __name__ == "__main__":
    main()
