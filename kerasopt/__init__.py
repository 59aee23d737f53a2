"""kerasopt: fused C++ optimizers for Keras 3 on TensorFlow.

    model.compile(optimizer=kerasopt.Adam(), ...)

Each optimizer is a ``keras.optimizers.Optimizer`` whose per-variable update
runs as one fused C++ op (``cc/``), or as the same math in composed TF ops where
no kernel serves (see :mod:`kerasopt.op_library`).
"""

from kerasopt.op_library import get_implementation, implementation, set_implementation
from kerasopt.optimizers import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Ftrl,
    FullMatrixAdagrad,
    Lamb,
    Lion,
    Nadam,
    RMSprop,
    Shampoo,
)

__version__ = "0.1.0"

__all__ = [
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Ftrl",
    "FullMatrixAdagrad",
    "Lamb",
    "Lion",
    "Nadam",
    "RMSprop",
    "SGD",
    "Shampoo",
    "get_implementation",
    "implementation",
    "set_implementation",
]
