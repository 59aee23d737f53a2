"""kerasopt's optimizers, each a ``keras.optimizers.Optimizer``."""

from kerasopt.optimizers.adam import Adam
from kerasopt.optimizers.ftrl import Ftrl
from kerasopt.optimizers.sgd import SGD

# Every optimizer kerasopt ships, for `python -m kerasopt info` and the tests.
ALL = (Adam, SGD, Ftrl)

__all__ = ["ALL", "Adam", "Ftrl", "SGD"]
