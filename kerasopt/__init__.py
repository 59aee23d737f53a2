"""kerasopt: fused C++ optimizers for Keras 3 on TensorFlow.

    model.compile(optimizer=kerasopt.Adam(), ...)

Each optimizer is a ``keras.optimizers.Optimizer`` whose per-variable update
runs as one fused C++ op (``cc/``), or as the same math in composed TF ops where
no kernel serves (see :mod:`kerasopt.op_library`).
"""

from kerasopt.op_library import get_implementation, implementation, set_implementation
from kerasopt.optimizers import (
    SGD,
    AdaBelief,
    Adafactor,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    AveragedOptimizer,
    Ftrl,
    FullMatrixAdagrad,
    Lamb,
    Lars,
    Lion,
    Lookahead,
    Muon,
    Nadam,
    NovoGrad,
    RAdam,
    Ranger,
    RMSprop,
    ScheduleFreeAdamW,
    ScheduleFreeSGD,
    Shampoo,
    SwapAveragedWeights,
    Yogi,
)

__version__ = "0.1.0"

__all__ = [
    "AdaBelief",
    "Adafactor",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "AveragedOptimizer",
    "Adamax",
    "Ftrl",
    "FullMatrixAdagrad",
    "Lamb",
    "Lars",
    "Lion",
    "Lookahead",
    "Muon",
    "Nadam",
    "NovoGrad",
    "RAdam",
    "Ranger",
    "RMSprop",
    "SGD",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "Shampoo",
    "SwapAveragedWeights",
    "Yogi",
    "get_implementation",
    "implementation",
    "set_implementation",
]
