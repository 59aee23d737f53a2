"""kerasopt: fused C++ optimizers for Keras 3 on TensorFlow.

    model.compile(optimizer=kerasopt.Adam(), ...)

Each optimizer is a ``keras.optimizers.Optimizer`` whose per-variable update
runs as one fused C++ op (``cc/``), or as the same math in composed TF ops where
no kernel serves (see :mod:`kerasopt.op_library`).
"""

import os as _os
import sys as _sys

# `python -m kerasopt ...` (info, bench, viz) prints reports that TensorFlow's
# start-up logs would drown: INFO lines, and on machines without a GPU driver
# its "failed call to cuInit" error. TensorFlow reads the level once, when it
# loads, and this package loads it. sys.argv[0] is "-m" only while Python
# locates the module `-m` names (it imports this package on the way), so a
# program that merely imports kerasopt keeps TensorFlow's defaults.
if _sys.argv[:1] == ["-m"] and "tensorflow" not in _sys.modules:
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from kerasopt.op_library import get_implementation, implementation, set_implementation  # noqa: E402
from kerasopt.optimizers import (  # noqa: E402
    SGD,
    AdaBelief,
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
    Nadam,
    NovoGrad,
    RAdam,
    Ranger,
    RMSprop,
    Shampoo,
    SwapAveragedWeights,
    Yogi,
)

__version__ = "0.1.0"

__all__ = [
    "AdaBelief",
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
    "Nadam",
    "NovoGrad",
    "RAdam",
    "Ranger",
    "RMSprop",
    "SGD",
    "Shampoo",
    "SwapAveragedWeights",
    "Yogi",
    "get_implementation",
    "implementation",
    "set_implementation",
]
