"""The `keras-barlow` command: one subcommand per task, the same arguments as the scripts in
`recipes/` (which call the same functions).

    keras-barlow quickstart [--data mnist5k] [--smoke]
    keras-barlow pretrain --dataset cifar10 --backbone resnet18 --small-images ...
    keras-barlow evaluate linear --encoder runs/pretrain/encoder --dataset cifar10
    keras-barlow evaluate semi-supervised --encoder savedmodels/digits --fraction 0.1
    keras-barlow transfer detection --encoder savedmodels/digits --data voc/2007
    keras-barlow transfer segmentation --encoder savedmodels/digits --data oxford_iiit_pet
    keras-barlow benchmark --preset resnet18-32          # a source checkout's recipes/benchmark.py

`keras-barlow COMMAND --help` lists a command's arguments. TensorFlow's C++ info and warning
lines are hidden unless `TF_CPP_MIN_LOG_LEVEL` is set (`keras_barlow.cli.startup`).
"""

import argparse
import dataclasses
import sys
from collections.abc import Callable

from keras_barlow.cli import benchmark, evaluate, pretrain, pretrain_arguments, quickstart, startup, transfer

PROG = "keras-barlow"
DESCRIPTION = "Barlow Twins self-supervised learning for Keras 3: pretrain, evaluate and transfer encoders."
EPILOG = """examples:
  keras-barlow quickstart                    # digits, a few minutes on a CPU
  keras-barlow pretrain --dataset cifar10 --small-images --epochs 1000 --output-dir runs/cifar10
  keras-barlow evaluate linear --encoder runs/cifar10/encoder --dataset cifar10
  keras-barlow transfer detection --encoder savedmodels/digits --smoke

`keras-barlow COMMAND --help` lists a command's arguments. TensorFlow's C++ info and warning
lines are hidden unless TF_CPP_MIN_LOG_LEVEL is set.
"""


@dataclasses.dataclass(frozen=True)
class Command:
    """A runnable subcommand.

    Attributes:
        path: its words on the command line, e.g. `("evaluate", "linear")`.
        summary: one line for the list of commands.
        description: its `--help` text.
        add_arguments: `parser -> parser`, adds its arguments.
        run: `(argv, parser) -> result`, parses `argv` (the words after `path`) with `parser`
            and runs the command.
        backend: `args -> str or None`, the Keras backend it needs (`None`: any).
    """

    path: tuple
    summary: str
    description: str
    add_arguments: Callable
    run: Callable
    backend: Callable = lambda args: None


COMMANDS = (
    Command(
        ("quickstart",),
        quickstart.SUMMARY,
        quickstart.describe(),
        quickstart.add_arguments,
        lambda argv, parser: quickstart.main(argv, parser=parser),
    ),
    Command(
        ("pretrain",),
        pretrain.SUMMARY,
        pretrain.describe(),
        pretrain_arguments.add_arguments,
        lambda argv, parser: pretrain.main(argv, parser=parser),
        backend=lambda args: args.backend,
    ),
    Command(
        ("evaluate", "linear"),
        evaluate.LINEAR_SUMMARY,
        evaluate.describe(evaluate.LINEAR_DESCRIPTION, evaluate.LINEAR_COMMAND),
        evaluate.add_linear_arguments,
        lambda argv, parser: evaluate.linear_main(argv, parser=parser),
    ),
    Command(
        ("evaluate", "semi-supervised"),
        evaluate.SEMI_SUPERVISED_SUMMARY,
        evaluate.describe(evaluate.SEMI_SUPERVISED_DESCRIPTION, evaluate.SEMI_SUPERVISED_COMMAND),
        evaluate.add_semi_supervised_arguments,
        lambda argv, parser: evaluate.semi_supervised_main(argv, parser=parser),
    ),
    Command(
        ("transfer", "detection"),
        transfer.DETECTION_SUMMARY,
        transfer.describe(transfer.DETECTION_DESCRIPTION, transfer.DETECTION_COMMAND),
        transfer.add_detection_arguments,
        lambda argv, parser: transfer.detection_main(argv, parser=parser),
    ),
    Command(
        ("transfer", "segmentation"),
        transfer.SEGMENTATION_SUMMARY,
        transfer.describe(transfer.SEGMENTATION_DESCRIPTION, transfer.SEGMENTATION_COMMAND),
        transfer.add_segmentation_arguments,
        lambda argv, parser: transfer.segmentation_main(argv, parser=parser),
    ),
)
GROUPS = {"evaluate": evaluate.SUMMARY, "transfer": transfer.SUMMARY}


def _formatted(subparsers, name, summary, description=None, **kwargs):
    return subparsers.add_parser(
        name,
        help=summary,
        description=description or summary,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kwargs,
    )


def build_parser():
    """The `keras-barlow` parser: a subcommand per `COMMANDS` entry, and `benchmark`.

    Each runnable subcommand's parser carries `command` (its `Command`) and `command_parser`
    (itself) as defaults, so `parse_args` tells which command to run.
    """
    from keras_barlow import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    top = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    groups = {}
    for command in COMMANDS:
        *group, name = command.path
        if group:
            if group[0] not in groups:
                group_parser = _formatted(top, group[0], GROUPS[group[0]])
                groups[group[0]] = group_parser.add_subparsers(title="modes", metavar="MODE", required=True)
            subparsers = groups[group[0]]
        else:
            subparsers = top
        sub = _formatted(subparsers, name, command.summary, command.description)
        command.add_arguments(sub)
        sub.set_defaults(command=command, command_parser=sub)
    # Never parsed here: `main` hands everything after `benchmark` to the harness.
    _formatted(top, "benchmark", benchmark.SUMMARY, add_help=False)
    return parser


def main(argv=None):
    """Runs `keras-barlow ARGV` (`None`: `sys.argv[1:]`); the console script's entry point.

    With `argv=None` the process may start again, once, to set the Keras backend or
    TensorFlow's log level before they load (`keras_barlow.cli.startup.restart_if_needed`).

    Returns:
        The exit code: 0 after a command ran, the harness' exit code for `benchmark`.
    """
    own_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["benchmark"]:
        return benchmark.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)  # --help, --version and argument errors exit here
    command = args.command
    if own_command_line:
        startup.restart_if_needed(backend=command.backend(args), quiet=True)
    command.run(argv[len(command.path) :], args.command_parser)
    return 0


if __name__ == "__main__":
    sys.exit(main())
