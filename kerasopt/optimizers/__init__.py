"""kerasopt's optimizers, each a ``keras.optimizers.Optimizer``."""

from kerasopt.optimizers.adabelief import AdaBelief
from kerasopt.optimizers.adafactor import Adafactor
from kerasopt.optimizers.adadelta import Adadelta
from kerasopt.optimizers.adagrad import Adagrad
from kerasopt.optimizers.adam import Adam
from kerasopt.optimizers.adamax import Adamax
from kerasopt.optimizers.adamw import AdamW
from kerasopt.optimizers.averaging import AveragedOptimizer, SwapAveragedWeights
from kerasopt.optimizers.ftrl import Ftrl
from kerasopt.optimizers.full_matrix_adagrad import FullMatrixAdagrad
from kerasopt.optimizers.lamb import Lamb
from kerasopt.optimizers.lars import Lars
from kerasopt.optimizers.lion import Lion
from kerasopt.optimizers.lookahead import Lookahead
from kerasopt.optimizers.muon import Muon
from kerasopt.optimizers.nadam import Nadam
from kerasopt.optimizers.novograd import NovoGrad
from kerasopt.optimizers.radam import RAdam
from kerasopt.optimizers.ranger import Ranger
from kerasopt.optimizers.rmsprop import RMSprop
from kerasopt.optimizers.schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD
from kerasopt.optimizers.sgd import SGD
from kerasopt.optimizers.shampoo import Shampoo
from kerasopt.optimizers.soap import SOAP
from kerasopt.optimizers.yogi import Yogi

# Every optimizer kerasopt ships, for `python -m kerasopt info` and the tests.
ALL = (Adam, SGD, RMSprop, Adagrad, Adadelta, AdamW, Adamax, Nadam, Lion, Ftrl, Lamb,
       AdaBelief, RAdam, Yogi, NovoGrad, Lars, FullMatrixAdagrad, Shampoo, ScheduleFreeAdamW,
       ScheduleFreeSGD, Muon, SOAP, Adafactor)

# Classes that run on their composed-TF fallback until their fused op exists
# (none now). A class joins ALL when its op lands: the table-driven tests
# require a kernel for every class in ALL.
AWAITING_KERNELS = ()

# keras.optimizers.LossScaleOptimizer unscales inside a kerasopt optimizer's
# fused update (loss_scale.py).
from kerasopt.optimizers import loss_scale as _loss_scale  # noqa: E402

_loss_scale.install()

# Optimizers that wrap another one (they take an inner optimizer, so they are
# not in ALL); `info` lists them with their fused op (class attribute kernel_op).
WRAPPERS = (Lookahead, Ranger, AveragedOptimizer)

__all__ = ["ALL", "AWAITING_KERNELS", "WRAPPERS", "AdaBelief", "Adafactor", "Adadelta",
           "Adagrad", "Adam", "AdamW", "Adamax", "AveragedOptimizer", "Ftrl",
           "FullMatrixAdagrad", "Lamb", "Lars", "Lion", "Lookahead", "Muon", "Nadam", "NovoGrad",
           "RAdam", "Ranger", "RMSprop", "SGD", "SOAP", "ScheduleFreeAdamW", "ScheduleFreeSGD",
           "Shampoo", "SwapAveragedWeights", "Yogi"]
