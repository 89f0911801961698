"""`keras-barlow pretrain` and the pretraining recipes (`recipes/pretrain.py`,
`cifar10_resnet18.py`, `imagenet_resnet50_tpu.py`: each a set of defaults over `main`).

`run(args)` pretrains on any dataset, backbone, backend and hardware, resumably; `DESCRIPTION`
says what it writes. Keras is not imported at module level: `select_backend` runs first.
"""

import importlib.util
import json
import logging
import os
import shutil
import sys
import time

from keras_barlow._io import atomic_write_text, fsync_directory
from keras_barlow.cli import startup
from keras_barlow.cli.pretrain_arguments import BACKBONE_DEPTHS, SMOKE, build_parser, parse, parse_projector

log = logging.getLogger(__name__)

COMMAND = "keras-barlow pretrain"
SUMMARY = "pretrain on any dataset, backbone, backend and hardware (resumable)"
DESCRIPTION = """Barlow Twins pretraining: any dataset, backbone, backend and hardware, resumable.

    {command} --dataset cifar10 --backbone resnet18 --small-images \\
        --image-size 32 --epochs 1000 --batch-size 256 --output-dir runs/cifar10
    {command} --smoke   # digits, a tiny network, 2 steps: checks the whole pipeline

Writes to --output-dir: history.csv (one row per epoch), logs/ (TensorBoard),
checkpoints/epoch-NNNN.keras (whole model with optimizer state, every --checkpoint-every
epochs), backup/ (the fault-tolerance backup), encoder/ (the exported encoder: .keras,
SavedModel, model card) and, last, summary.json, which marks the run finished; only then is
backup/ deleted.

Run the same command again after a crash, a pre-emption or a kill -9: it resumes from the
newest backup (weights, optimizer state and step; history.csv drops the rows of the epochs it
trains again), also when only the export was left to do. Run it again once the run has
finished: it says where the results are and exits, changing nothing. --retrain trains again
from step 0 and first moves the earlier run's files to OUTPUT_DIR/previous-runs/TIME/; other
settings on a finished output directory are refused (pass a new --output-dir, or --retrain).
One run per output directory: a second one on it exits with an error naming the first.

--backend picks Keras' backend. --hardware picks the devices: auto takes a TPU, else a
multi-worker cluster named by TF_CONFIG (TensorFlow) or the KERAS_DISTRIBUTION_* variables
(JAX), else all GPUs, else the CPU. --batch-size is the global batch, split over all replicas.
"""


def describe(command=COMMAND, description=DESCRIPTION):
    """`description` with `{command}` replaced: the help text of a recipe or of the subcommand."""
    return description.replace("{command}", command)


def main(
    argv=None,
    *,
    parser=None,
    command=COMMAND,
    description=None,
    defaults=None,
    smoke=None,
    linear_epochs=None,
):
    """Parses a pretraining command line and runs it.

    Args:
        argv: the arguments (`None`: `sys.argv[1:]`; then, where Keras already runs on
            another backend than `--backend`, the process starts again on it, see
            `keras_barlow.cli.startup`).
        parser: a parser filled by `pretrain_arguments.add_arguments` (default: a new one).
        command: how the command is run (`"python recipes/pretrain.py"`), for the help text
            and the model card.
        description: the help text (default: `DESCRIPTION` for `command`).
        defaults: the recipe's defaults over `pretrain_arguments.add_arguments`'.
        smoke: the recipe's `--smoke` settings over `pretrain_arguments.SMOKE`.
        linear_epochs: when set, adds `--linear-epochs` with this default and runs
            `linear_evaluation` after pretraining.

    Returns:
        The run's summary (as written to `summary.json`).
    """
    if parser is None:
        parser = build_parser(describe(command) if description is None else description, **(defaults or {}))
    if linear_epochs is not None:
        parser.add_argument(
            "--linear-epochs", type=int, default=linear_epochs, help="linear evaluation epochs (0: skip)"
        )
    args = parse(argv, parser, smoke={**SMOKE, **(smoke or {})})
    if argv is None:
        startup.restart_if_needed(backend=args.backend)
    args.invocation = startup.command_line(command, argv)
    summary, model = run(args)
    if linear_epochs is not None and model is not None:  # None: the run had already finished
        summary = linear_evaluation(args, model, summary)
    return summary


def select_backend(backend):
    """Sets KERAS_BACKEND before Keras is imported; refuses a different one already loaded."""
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise SystemExit(
                f"Keras is already running on {keras.backend.backend()!r}; "
                f"start a new process for --backend {backend}"
            )
    os.environ["KERAS_BACKEND"] = backend


def run(args):
    """Pretrains as `args` say, or finds that the run in `--output-dir` has finished.

    The chief holds `--output-dir`'s lock (`keras_barlow.cli.run_lock`) from before anything is
    read or written until the end: a second run on the same directory exits with an error
    naming the owner, a stale lock (its process is gone) is taken over. A finished run there
    (`finished_run`) is reported and left as it is, unless `args.retrain`: then its files are
    moved to `previous-runs/` (`move_previous_run`) and training starts from step 0.

    Returns:
        `(summary, model)`: the summary as written to summary.json and the trained model, or
        the finished run's summary and `None`.
    """
    select_backend(args.backend)
    import keras

    from keras_barlow.cli.run_lock import OutputDirectoryLock, OutputDirectoryLockedError
    from keras_barlow.distribute import setup_hardware

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    keras.utils.set_random_seed(args.seed)
    hardware = setup_hardware(args.hardware, tpu_address=args.tpu_address)
    out = os.path.abspath(args.output_dir)
    lock = OutputDirectoryLock(out)
    if hardware.is_chief:  # the other workers write only their own files (logs/worker-N, scratch)
        try:
            lock.acquire()
        except OutputDirectoryLockedError as error:
            raise SystemExit(f"error: {error}") from None
    try:
        if args.retrain:
            if hardware.is_chief:
                move_previous_run(out)
        elif (summary := finished_run(args, out)) is not None:
            if hardware.is_chief and os.path.isdir(backup := os.path.join(out, "backup")):
                shutil.rmtree(backup)  # the finished run was stopped before it could delete it
            print(_finished_line(out, summary))
            return summary, None
        return _pretrain(args, hardware, out)
    finally:
        lock.release()


SUMMARY_FILE = "summary.json"
PREVIOUS_RUNS = "previous-runs"
# What a run writes into --output-dir; --retrain moves these in this order, so that a kill
# between two moves never leaves a history.csv that a run from step 0 would cut back.
RUN_ENTRIES = ("history.csv", "logs", "checkpoints", "encoder", SUMMARY_FILE, "backup")
# `--fused-batchnorm` / `--pointwise-matmul` → the `BarlowTwins` argument.
_SWITCH = {"auto": "auto", "on": True, "off": False}

# Flags that change how a run executes, not what it trains: a finished run run again with
# other values of these is the same run.
_HOW_TO_RUN = frozenset(
    {
        "backup_every",
        "checkpoint_every",
        "data_dir",
        "fused_batchnorm",
        "hardware",
        "invocation",
        "keep_checkpoints",
        "linear_epochs",
        "no_export",
        "pointwise_matmul",
        "output_dir",
        "retrain",
        "run_eagerly",
        "smoke",
        "steps_per_execution",
        "tpu_address",
        "verbose",
    }
)


def finished_run(args, out):
    """The summary of the run that finished in `out`, or `None` when none has.

    A run has finished once its summary.json exists: it is written last, after the export,
    and atomically.

    Args:
        args: the parsed command line of this run.
        out: the output directory.

    Returns:
        The finished run's summary, or `None`.

    Raises:
        SystemExit: the finished run does not fit `args` (other training settings, or no
            complete export where one is asked for), or its summary.json cannot be read.
            Nothing is changed; the message names the way out (--retrain, or a new
            --output-dir).
    """
    path = os.path.join(out, SUMMARY_FILE)
    if not os.path.exists(path):
        return None
    retrain = f"or --retrain to move it to {os.path.join(out, PREVIOUS_RUNS)}/ and train again"
    try:
        with open(path) as handle:
            summary = json.load(handle)
        if not isinstance(summary, dict):
            raise ValueError(f"a JSON {type(summary).__name__}, not an object")
    except (OSError, ValueError) as error:
        raise SystemExit(
            f"error: {path} marks a finished run but cannot be read ({error}); nothing was trained "
            f"or changed. Pass a new --output-dir, {retrain}"
        ) from None
    recorded, current = summary.get("arguments") or {}, vars(args)
    differences = [
        f"--{name.replace('_', '-')} {recorded[name]!r}, not {current[name]!r}"
        for name in sorted(recorded.keys() & current.keys() - _HOW_TO_RUN)
        if recorded[name] != current[name]
    ]
    if differences:
        raise SystemExit(
            f"error: {out} holds a finished run with other settings ({'; '.join(differences)}); "
            f"nothing was trained or changed. Pass a new --output-dir, {retrain}"
        )
    if not args.no_export and not _export_complete(os.path.join(out, "encoder")):
        checkpoints = os.path.join(out, "checkpoints")
        raise SystemExit(
            f"error: {out} holds a finished run without a complete export in "
            f"{os.path.join(out, 'encoder')} (it ran with --no-export, or the export was removed); "
            f"nothing was trained or changed. Pass --no-export to take it as it is, export a "
            f"checkpoint of {checkpoints} with keras_barlow.export_encoder, {retrain}"
        )
    return summary


def _export_complete(directory):
    from keras_barlow.export.layout import CARD_FILE, ENCODER_FILE

    return all(os.path.exists(os.path.join(directory, name)) for name in (CARD_FILE, ENCODER_FILE))


def _finished_line(out, summary):
    """The one line that reports a finished run."""
    where = f"summary: {os.path.join(out, SUMMARY_FILE)}"
    if summary.get("encoder"):
        where = f"encoder: {summary['encoder']}, {where}"
    return (
        f"{out} holds a finished run ({summary.get('epochs')} epoch(s), {summary.get('optimizer_steps')} "
        f"steps; {where}): nothing was trained or changed. To train again, pass --retrain (moves "
        f"this run to {os.path.join(out, PREVIOUS_RUNS)}/) or a new --output-dir"
    )


def move_previous_run(out):
    """Moves what an earlier run wrote in `out` (finished or not) to
    `out/previous-runs/YYYYmmdd-HHMMSS/`, so that a new run starts from step 0 and nothing is
    lost; files of yours in `out` stay where they are.

    Args:
        out: the output directory.

    Returns:
        The folder the files went to, or `None` when there was nothing to move.
    """
    names = [name for name in RUN_ENTRIES if os.path.lexists(os.path.join(out, name))]
    if not names:
        return None
    target = os.path.join(out, PREVIOUS_RUNS, time.strftime("%Y%m%d-%H%M%S"))
    unique, count = target, 1
    while os.path.lexists(unique):
        count += 1
        unique = f"{target}-{count}"
    os.makedirs(unique)
    for name in names:
        os.rename(os.path.join(out, name), os.path.join(unique, name))
    fsync_directory(unique)
    fsync_directory(out)
    print(f"--retrain: moved the earlier run's {', '.join(names)} to {unique}")
    return unique


def augmentation_config(args):
    """The `AugmentationConfig` of `--preset` (default: `--dataset`'s) at `--image-size`."""
    from keras_barlow.augment import AugmentationConfig, default_preset

    overrides = {} if args.image_size is None else {"image_size": args.image_size}
    return AugmentationConfig.preset(args.preset or default_preset(args.dataset), **overrides)


def _pretrain(args, hardware, out):
    import keras
    import tensorflow as tf

    from keras_barlow import BarlowTwins
    from keras_barlow.backbones import resnet
    from keras_barlow.data.pipelines import pretraining_epochs
    from keras_barlow.fault_tolerance import (
        BackupAndRestore,
        PeriodicCheckpoint,
        resumable_dataset,
        truncate_history,
    )
    from keras_barlow.optimizers import paper_optimizer

    precision = (
        args.precision
        if args.precision != "auto"
        else ("mixed_bfloat16" if hardware.kind == "tpu" else "float32")
    )
    keras.mixed_precision.set_global_policy(precision)
    if args.batch_size % hardware.num_replicas:
        raise SystemExit(
            f"--batch-size {args.batch_size} must be divisible by the {hardware.num_replicas} replicas"
        )

    views = augmentation_config(args)
    # The data is a function of (seed, epoch, step) and starts at the backup's step, so a
    # resumed run sees exactly the batches the uninterrupted one would have (mid-epoch too).
    passes = pretraining_epochs(
        args.dataset,
        batch_size=args.batch_size,
        augment=views,
        split=args.split,
        seed=args.seed,
        data_dir=args.data_dir,
    )
    steps = args.steps_per_epoch or passes.steps_per_epoch
    if not steps:
        raise SystemExit(f"the length of --dataset {args.dataset} is unknown: pass --steps-per-epoch")
    if passes.steps_per_epoch is not None and steps > passes.steps_per_epoch:
        log.info(
            "--steps-per-epoch %d is more than the %d batches of one pass over the data: each epoch "
            "reads it again, freshly shuffled, until it has %d batches",
            steps,
            passes.steps_per_epoch,
            steps,
        )
    # Kept after `fit` (holding its final step) until the export and summary.json are written:
    # a run stopped in between resumes at its end and only finishes.
    backup = BackupAndRestore(
        os.path.join(out, "backup"), save_freq=args.backup_every or "epoch", delete_checkpoint=False
    )
    start_step = backup.resume_step()
    dataset = resumable_dataset(
        passes, epochs=args.epochs, steps_per_epoch=steps, start_step=start_step, refill=True
    )
    options = tf.data.Options()  # each worker takes its part of every global batch
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options).prefetch(tf.data.AUTOTUNE)

    with hardware.scope():
        encoder = resnet(
            BACKBONE_DEPTHS[args.backbone],
            (args.image_size, args.image_size, 3),
            small_images=args.small_images,
            width=args.width,
        )
        model = BarlowTwins(
            encoder,
            projector_dims=parse_projector(args.projector),
            lambd=args.lambd,
            scale_loss=args.scale_loss,
            fused_batchnorm=_SWITCH[args.fused_batchnorm],
            pointwise_matmul=_SWITCH[args.pointwise_matmul],
        )
        optimizer = paper_optimizer(
            args.batch_size,
            args.epochs,
            steps,
            weight_learning_rate=args.learning_rate,
            bias_learning_rate=args.bias_learning_rate,
            weight_decay=args.weight_decay,
            eta=args.eta,
            warmup_epochs=args.warmup_epochs,
        )
        # Eager JAX dispatches op by op, far slower than compiling even for smoke runs.
        eager = args.run_eagerly and not (args.smoke and keras.backend.backend() == "jax")
        model.compile(optimizer=optimizer, steps_per_execution=args.steps_per_execution, run_eagerly=eager)

    os.makedirs(out, exist_ok=True)
    logs = (
        os.path.join(out, "logs")
        if hardware.num_workers == 1
        else os.path.join(out, "logs", f"worker-{hardware.worker_index}")
    )
    callbacks = [
        backup,  # first: restores before the others start
        PeriodicCheckpoint(
            os.path.join(out, "checkpoints"), every_epochs=args.checkpoint_every, keep=args.keep_checkpoints
        ),
    ]
    if importlib.util.find_spec("tensorboard") is not None:
        callbacks.append(keras.callbacks.TensorBoard(logs))
    else:
        log.warning("the tensorboard package is not installed: no TensorBoard logs (pip install tensorboard)")
    earlier_losses = []
    if hardware.is_chief:
        history_csv = os.path.join(out, "history.csv")
        earlier = truncate_history(history_csv, start_step // steps)
        earlier_losses = [_float(row.get("loss")) for row in earlier]
        callbacks.append(keras.callbacks.CSVLogger(history_csv, append=True))
    log.info(
        "%s on %s: %d replica(s) × %d images = global batch %d, %d steps/epoch, %d epochs, %s, "
        "resuming at step %d",
        args.backbone,
        hardware.kind,
        hardware.num_replicas,
        args.batch_size // hardware.num_replicas,
        args.batch_size,
        steps,
        args.epochs,
        precision,
        start_step,
    )
    if start_step == args.epochs * steps:
        log.info("the backup holds the final step %d: nothing left to train, finishing the run", start_step)
    start = time.time()
    history = model.fit(
        dataset,
        epochs=args.epochs,
        steps_per_epoch=steps,
        callbacks=callbacks,
        verbose=args.verbose if hardware.is_chief else 0,
    )
    seconds = time.time() - start
    trained_steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    losses = earlier_losses + [float(loss) for loss in history.history.get("loss", [])]
    summary = {
        "backend": keras.backend.backend(),
        "hardware": hardware.kind,
        "replicas": hardware.num_replicas,
        "workers": hardware.num_workers,
        "worker_index": hardware.worker_index,
        "precision": precision,
        "fused_batchnorm": args.fused_batchnorm,
        "pointwise_matmul": args.pointwise_matmul,
        "dataset": args.dataset,
        "backbone": args.backbone,
        "global_batch": args.batch_size,
        "steps_per_epoch": steps,
        "epochs": args.epochs,
        "optimizer_steps": trained_steps,
        "final_loss": losses[-1] if losses else None,
        "seconds_this_run": round(seconds, 1),
        "arguments": {name: value for name, value in sorted(vars(args).items()) if name != "invocation"},
    }
    if hardware.is_chief and not args.no_export:
        from keras_barlow.export import export_encoder

        summary["encoder"] = export_encoder(
            model,
            os.path.join(out, "encoder"),
            metadata={
                "augmentation": views,
                "image_size": args.image_size,
                "training_data": args.dataset,
                "batch_size": args.batch_size,
                "history": {"loss": losses},  # all epochs, also those before a resume
                "recipe": getattr(args, "invocation", None) or startup.command_line(COMMAND, None),
            },
        )
    if hardware.is_chief:
        atomic_write_text(os.path.join(out, SUMMARY_FILE), json.dumps(summary, indent=2))
        shutil.rmtree(backup.backup_dir, ignore_errors=True)  # the run is finished: no resume needed
    log.info("done: %s", json.dumps({key: value for key, value in summary.items() if key != "arguments"}))
    return summary, model


def _float(text):
    """A CSV field as a float (`nan` when it is not a number)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def linear_evaluation(args, model, summary):
    """Linear evaluation of the frozen encoder after pretraining (the chief only).

    Trains a softmax classifier on the frozen, L2-normalised features of `args.split` for
    `args.linear_epochs` epochs (`keras_barlow.evaluation.linear_probe`), reports top-1 and
    top-5 on the `test` split, and adds them to `summary` and `summary.json`.

    Returns:
        `summary`.
    """
    if not args.linear_epochs or summary["worker_index"] != 0:
        return summary
    from keras_barlow.data import labeled_dataset
    from keras_barlow.evaluation import linear_probe

    data = dict(batch_size=256, augment=augmentation_config(args), data_dir=args.data_dir)
    result = linear_probe(
        model.encoder,
        labeled_dataset(args.dataset, split=args.split, **data),
        labeled_dataset(args.dataset, split="test", **data),
        protocol="sgd",  # the paper's ImageNet protocol, as solo-learn reports it
        epochs=args.linear_epochs,
    )
    summary["linear_eval"] = {**result, "epochs": args.linear_epochs}
    atomic_write_text(
        os.path.join(os.path.abspath(args.output_dir), SUMMARY_FILE), json.dumps(summary, indent=2)
    )
    print(f"linear evaluation: top-1 {result['top1']:.4f}, top-5 {result['top5']:.4f}")
    return summary
