"""`python -m keras_barlow.cli`: the `keras-barlow` command."""

import sys

from keras_barlow.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
