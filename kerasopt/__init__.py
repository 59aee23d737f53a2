"""kerasopt: fused C++ optimizers for Keras 3 on TensorFlow.

    model.compile(optimizer=kerasopt.Adam(), ...)

Each optimizer is a ``keras.optimizers.Optimizer`` whose per-variable update
runs as one fused C++ op (``cc/``), or as the same math in composed TF ops where
no kernel serves (see :mod:`kerasopt.op_library`).
"""

from kerasopt.op_library import get_implementation, implementation, set_implementation

# Every optimizer of kerasopt.optimizers is kerasopt.<Name> too.
from kerasopt.optimizers import *  # noqa: F403
from kerasopt.optimizers import __all__ as _optimizers

__version__ = "0.1.0"

__all__ = sorted(name for name in _optimizers if name not in ("ALL", "WRAPPERS")) + [
    "get_implementation",
    "implementation",
    "set_implementation",
]
