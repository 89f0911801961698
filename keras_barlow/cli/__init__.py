"""Command-line argument groups and run logic shared by the scripts in `recipes/`.

- `pretrain`: the pretraining recipes (arguments, smoke settings, `run`, linear evaluation).
- `fine_tune`: the transfer recipes (detection and segmentation: shared arguments, the
  fine-tune-and-report loop).

Each recipe is argparse defaults plus calls into these modules, so that the logic is
tested and documented once.
"""
