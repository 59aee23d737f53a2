"""kerasopt's optimizers, each a ``keras.optimizers.Optimizer``."""

from kerasopt.optimizers.adadelta import Adadelta
from kerasopt.optimizers.adagrad import Adagrad
from kerasopt.optimizers.adam import Adam
from kerasopt.optimizers.adamax import Adamax
from kerasopt.optimizers.adamw import AdamW
from kerasopt.optimizers.ftrl import Ftrl
from kerasopt.optimizers.full_matrix_adagrad import FullMatrixAdagrad
from kerasopt.optimizers.lamb import Lamb
from kerasopt.optimizers.lion import Lion
from kerasopt.optimizers.nadam import Nadam
from kerasopt.optimizers.rmsprop import RMSprop
from kerasopt.optimizers.sgd import SGD
from kerasopt.optimizers.shampoo import Shampoo

# Every optimizer kerasopt ships, for `python -m kerasopt info` and the tests.
ALL = (Adam, SGD, RMSprop, Adagrad, Adadelta, AdamW, Adamax, Nadam, Lion, Ftrl, Lamb,
       FullMatrixAdagrad, Shampoo)

__all__ = ["ALL", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "Ftrl", "FullMatrixAdagrad", "Lamb", "Lion", "Nadam", "RMSprop", "SGD", "Shampoo"]
