"""The `keras-barlow` command and the logic of the scripts in `recipes/`.

- `main`: the command (`keras-barlow COMMAND ...`, also `python -m keras_barlow.cli`);
- `quickstart`, `pretrain` (with `pretrain_arguments`), `evaluate`, `transfer`: each task's
  arguments (`add_arguments`-style functions that fill the subcommand's parser and the
  recipe's alike) and its run;
- `benchmark`: runs the benchmark harness of a source checkout (`recipes/benchmark.py`);
- `startup`: the Keras backend and TensorFlow's log level, settled before they load;
- `run_lock`: one run per output directory;
- `quickstart_card`: the README.md of a quick-start export.
"""
