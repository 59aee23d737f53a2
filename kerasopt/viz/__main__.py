"""``python -m kerasopt.viz ...``: see :mod:`kerasopt.viz.cli`."""

import sys

from kerasopt.viz.cli import main

if __name__ == "__main__":
    sys.exit(main())
