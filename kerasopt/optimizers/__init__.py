"""kerasopt's optimizers, each a ``keras.optimizers.Optimizer``."""

from kerasopt.optimizers.adam import Adam
from kerasopt.optimizers.adamax import Adamax
from kerasopt.optimizers.adamw import AdamW
from kerasopt.optimizers.lion import Lion
from kerasopt.optimizers.nadam import Nadam
from kerasopt.optimizers.sgd import SGD

# Every optimizer kerasopt ships, for `python -m kerasopt info` and the tests.
ALL = (Adam, SGD, AdamW, Adamax, Nadam, Lion)

__all__ = ["ALL", "Adam", "AdamW", "Adamax", "Lion", "Nadam", "SGD"]
