"""kerasopt: fused C++ optimizers for Keras 3 on TensorFlow.

    model.compile(optimizer=kerasopt.Adam(), ...)

or, for code that names Keras's optimizers, ``kerasopt.patch_keras()`` first
(see :mod:`kerasopt.patch`).

Each optimizer is a ``keras.optimizers.Optimizer`` whose per-variable update
runs as one fused C++ op (``cc/``), or as the same math in composed TF ops where
no kernel serves (see :mod:`kerasopt.op_library`).
"""

import contextlib as _contextlib
import os as _os
import sys as _sys


@_contextlib.contextmanager
def _native_stderr_silenced():
    """File descriptor 2 to /dev/null: TensorFlow 2.21 prints its start-up lines
    from C++ before its logging is set up, past Python's sys.stderr and
    TF_CPP_MIN_LOG_LEVEL alike."""
    _sys.stderr.flush()
    saved, devnull = _os.dup(2), _os.open(_os.devnull, _os.O_WRONLY)
    try:
        _os.dup2(devnull, 2)
        yield
    finally:
        _sys.stderr.flush()
        _os.dup2(saved, 2)
        _os.close(saved)
        _os.close(devnull)


def _running_our_command() -> bool:
    """True under `python -m kerasopt ...` (info) or `python -m kerasopt.<tool>`,
    not under `python -m kerasopt.patch`, which runs the user's program."""
    argv = getattr(_sys, "orig_argv", [])
    if "-m" not in argv[:-1]:
        return False
    module = argv[argv.index("-m") + 1]
    if module == "kerasopt.patch":
        return False
    return module == "kerasopt" or module.startswith("kerasopt.")


# Our commands print reports that TensorFlow's start-up lines would drown. The
# package (and with it TensorFlow) is imported before the command's module
# runs, so this is the place; a user's own program is left alone.
if _running_our_command() and "tensorflow" not in _sys.modules:
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _native_stderr_silenced():
        import tensorflow  # noqa: F401

from kerasopt.op_library import get_implementation, implementation, set_implementation  # noqa: E402
from kerasopt.kfac import KFAC, KFACModel  # noqa: E402
from kerasopt.patch import keras_is_patched, patch_keras, patched, unpatch_keras  # noqa: E402

# Every optimizer of kerasopt.optimizers is kerasopt.<Name> too.
from kerasopt.optimizers import *  # noqa: E402, F403
from kerasopt.optimizers import __all__ as _optimizers  # noqa: E402

__version__ = "0.1.0"

__all__ = sorted(
    name for name in _optimizers if name not in ("ALL", "AWAITING_KERNELS", "WRAPPERS")
) + [
    "KFAC",
    "KFACModel",
    "get_implementation",
    "implementation",
    "keras_is_patched",
    "patch_keras",
    "patched",
    "set_implementation",
    "unpatch_keras",
]
