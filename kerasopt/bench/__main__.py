"""``python -m kerasopt.bench``: the step benchmark (kerasopt/bench/steps.py)."""

import sys

from kerasopt.bench.steps import main

if __name__ == "__main__":
    sys.exit(main())
