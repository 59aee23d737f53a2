"""Loads kerasopt's TensorFlow op library and decides, per update, which path runs.

Two paths compute every update rule:

* the **kernel** path: one fused C++ op per variable (``cc/``), and
* the **fallback** path: the same math as composed TensorFlow ops
  (``kerasopt/fallback/``).

The kernel path is used when it can be (``KERASOPT_IMPL=auto``, the default).
The fallback runs when the op library did not load (one warning says why), when
a variable lives on a device without a kernel (CPU kernels always exist; GPU
kernels when the library was built with its CUDA sources), inside an
XLA-compiled function (XLA cannot compile custom ops), or when the user asks
for it.

Environment:
  KERASOPT_IMPL          ``auto`` (default), ``kernel`` (fail rather than fall
                         back) or ``tf`` (always the fallback).
  KERASOPT_OPS_LIBRARY   path of an op library to load instead of the one
                         installed with the package (e.g. a Bazel build).

The choice is made when a step is traced: a ``tf.function`` that was already
traced keeps the path it was traced with.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import os
import threading
import warnings

import tensorflow as tf
from tensorflow.python.framework import kernels as tf_kernels
from tensorflow.python.ops import control_flow_util

IMPLEMENTATIONS = ("auto", "kernel", "tf")
ENV_IMPLEMENTATION = "KERASOPT_IMPL"
ENV_LIBRARY = "KERASOPT_OPS_LIBRARY"
_MARKER = b"KERASOPT_BUILT_FOR_TENSORFLOW="
_CUDA_MARKER = b"KERASOPT_CUDA_KERNELS="


@dataclasses.dataclass(frozen=True)
class OpLibrary:
    """The result of loading the op library: the ops module, or why not."""

    path: str | None
    ops: object | None  # the module returned by tf.load_op_library
    built_for: str | None  # TensorFlow version recorded in the library
    error: str | None

    @property
    def loaded(self) -> bool:
        return self.ops is not None


_lock = threading.Lock()
_library: OpLibrary | None = None
_implementation: str | None = None


def _check_implementation(name: str) -> str:
    if name not in IMPLEMENTATIONS:
        raise ValueError(
            f"kerasopt implementation must be one of {IMPLEMENTATIONS}, got {name!r}"
        )
    return name


def get_implementation() -> str:
    """The current path choice: ``auto``, ``kernel`` or ``tf``."""
    if _implementation is not None:
        return _implementation
    return _check_implementation(os.environ.get(ENV_IMPLEMENTATION, "auto").strip().lower() or "auto")


def set_implementation(name: str | None) -> None:
    """Chooses the path for updates traced from now on (``None``: back to the environment)."""
    global _implementation
    _implementation = None if name is None else _check_implementation(name)


@contextlib.contextmanager
def implementation(name: str):
    """Context manager form of :func:`set_implementation`."""
    global _implementation
    previous = _implementation
    set_implementation(name)
    try:
        yield
    finally:
        _implementation = previous


def default_library_path() -> str | None:
    """Where the build installed the op library, or None if it was not built."""
    override = os.environ.get(ENV_LIBRARY)
    if override:
        return override
    spec = importlib.util.find_spec("kerasopt._build_info")
    if spec is None or spec.origin is None:
        return None
    from kerasopt import _build_info

    return os.path.join(os.path.dirname(spec.origin), _build_info.OPS_LIBRARY)


def _read_marker(path: str, marker: bytes) -> str | None:
    """The value of a ``MARKER=value;`` string in the library file (without loading it)."""
    with open(path, "rb") as f:
        data = f.read()
    start = data.find(marker)
    if start < 0:
        return None
    start += len(marker)
    end = data.find(b";", start, start + 64)
    return data[start:end].decode("ascii") if end > 0 else None


def read_built_for(path: str) -> str | None:
    """The TensorFlow version recorded in the library file (without loading it)."""
    return _read_marker(path, _MARKER)


def read_cuda_built_with(path: str) -> str | None:
    """The nvcc version that built the library's GPU kernels; None without them."""
    return _read_marker(path, _CUDA_MARKER)


def _same_release(a: str, b: str) -> bool:
    """TensorFlow keeps its C++ ABI within a minor release (2.21.x)."""
    return a.split(".")[:2] == b.split(".")[:2]


def _load(path: str | None) -> OpLibrary:
    if path is None:
        package_dir = os.path.dirname(os.path.abspath(__file__))
        return OpLibrary(None, None, None,
                         f"kerasopt was imported from {package_dir}, which holds no "
                         "compiled op library: in a source checkout, install it with "
                         "`pip install --no-build-isolation -e .` (see the README), or "
                         "run from another directory so that the installed kerasopt "
                         "is imported")
    if not os.path.exists(path):
        return OpLibrary(path, None, None, f"op library not found at {path}")
    try:
        built_for = read_built_for(path)
    except OSError as e:
        return OpLibrary(path, None, None, f"cannot read op library {path}: {e}")
    if built_for is None:
        return OpLibrary(path, None, None,
                         f"{path} does not record the TensorFlow version it was built for")
    if not _same_release(built_for, tf.__version__):
        return OpLibrary(path, None, built_for,
                         f"op library {path} was built for TensorFlow {built_for} but "
                         f"TensorFlow {tf.__version__} is running; reinstall kerasopt to "
                         f"rebuild it (in a source checkout: pip install "
                         f"--no-build-isolation -e .)")
    try:
        ops = tf.load_op_library(path)
    except Exception as e:  # NotFoundError for missing symbols, among others
        return OpLibrary(path, None, built_for, f"loading {path} failed: {e}")
    return OpLibrary(path, ops, built_for, None)


def library() -> OpLibrary:
    """Loads the op library once per process; warns once if it cannot."""
    global _library
    with _lock:
        if _library is None:
            _library = _load(default_library_path())
            if _library.error is not None:
                warnings.warn(
                    f"kerasopt: using the composed-TensorFlow fallback: {_library.error}",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return _library


def python_op_name(op_name: str) -> str:
    """The name under which the ops module has `op_name`, e.g.
    "KerasoptApplyRMSprop" -> "kerasopt_apply_rm_sprop": TensorFlow's rule, an
    underscore before each capital that follows a lower-case letter or comes
    before one."""
    out = []
    for i, c in enumerate(op_name):
        if c.isupper() and i > 0 and (op_name[i - 1].islower() or (
                i + 1 < len(op_name) and op_name[i + 1].islower())):
            out.append("_")
        out.append(c.lower())
    return "".join(out)


def _device_type(variable) -> str:
    device = getattr(variable, "device", "") or ""
    return (tf.DeviceSpec.from_string(device).device_type or "CPU").upper()


@functools.lru_cache(maxsize=None)
def _has_kernel(op_name: str, device_type: str) -> bool:
    """Whether TensorFlow's kernel registry holds `op_name` for `device_type`."""
    try:
        registered = tf_kernels.get_registered_kernels_for_op(op_name)
    except Exception:  # an op TensorFlow has never heard of
        return False
    return any(k.device_type == device_type for k in registered.kernel)


def kernel_unavailable_reason(variable, op_name: str | None = None,
                              wide_slots: bool = False) -> str | None:
    """Why `variable` cannot be updated by a kernel right now (None: it can).

    `op_name` names the op that would run (e.g. ``KerasoptApplyAdam``):
    variables use it when the op library registered it for their device type
    (every op has a CPU kernel; the CUDA build registers GPU ones; an algorithm
    whose op is not built yet has none). Without `op_name` only CPU variables
    qualify. `wide_slots`: the
    variable is 16-bit with float32 slots (``slot_dtype="float32"``), which
    only the CPU kernels take.
    """
    if get_implementation() == "tf":
        return f"{ENV_IMPLEMENTATION}=tf was requested"
    lib = library()
    if not lib.loaded:
        return lib.error
    if control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()):
        return "the step is XLA-compiled (jit_compile), which cannot run custom ops"
    device = _device_type(variable)
    if device != "CPU" and wide_slots:
        return (f"the {device} kernels take slots of the variable's dtype only, and "
                f"'{getattr(variable, 'name', variable)}' has float32 slots (slot_dtype)")
    if (op_name is None and device == "CPU") or (
            op_name is not None and _has_kernel(op_name, device)):
        return None
    kernel = f"kernel {op_name}" if op_name else "kernel"
    return f"no kerasopt {kernel} is built for {device} devices"


def use_kernel(variable, op_name: str | None = None, wide_slots: bool = False) -> bool:
    """True to run the fused kernel (`op_name`) for `variable`; False for the fallback.

    With ``KERASOPT_IMPL=kernel`` a missing kernel is an error, not a fallback.
    """
    reason = kernel_unavailable_reason(variable, op_name, wide_slots)
    if reason is None:
        return True
    if get_implementation() == "kernel":
        raise RuntimeError(f"{ENV_IMPLEMENTATION}=kernel, but {reason}")
    return False
