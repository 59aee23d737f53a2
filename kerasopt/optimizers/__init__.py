"""kerasopt's optimizers, each a ``keras.optimizers.Optimizer``."""

from kerasopt.optimizers.adam import Adam
from kerasopt.optimizers.sgd import SGD

# Every optimizer kerasopt ships, for `python -m kerasopt info` and the tests.
ALL = (Adam, SGD)

__all__ = ["ALL", "Adam", "SGD"]
