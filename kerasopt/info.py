"""What kerasopt has on this machine: per algorithm, which update paths exist.

Everything is read from what is really there: TensorFlow's kernel registry for
the op library (a kernel that failed to build or load shows as absent), and
one step of each optimizer on its composed-TF fallback.

The GPU columns (``gpu``, ``gpu_sparse``, ``gpu_multi_tensor``) say whether
the loaded library has the GPU kernel, i.e. whether it was built (with nvcc)
and registered; they say nothing about whether it has run on a GPU (see the
docs for what has been run on one).
"""

from __future__ import annotations

import inspect
import json

import keras
import tensorflow as tf
from tensorflow.python.framework import kernels as tf_kernels

from kerasopt import op_library
from kerasopt.optimizers import ALL, AWAITING_KERNELS, SGD, WRAPPERS

# Op name patterns per path; "{}" is an optimizer's kernel_name ("Adam").
OP_NAMES = {
    "dense": "KerasoptApply{}",
    "sparse": "KerasoptSparseApply{}",
    "multi_tensor": "KerasoptMultiApply{}",
}


def _devices_with_kernel(op_name: str) -> set[str]:
    try:
        registered = tf_kernels.get_registered_kernels_for_op(op_name)
    except Exception:  # an op TensorFlow has never heard of
        return set()
    return {k.device_type for k in registered.kernel}


def _wrapper_instance(wrapper):
    """A wrapper around SGD (a named one, e.g. Ranger, builds its own inner optimizer)."""
    if "optimizer" in inspect.signature(wrapper.__init__).parameters:
        return wrapper(SGD(0.1))
    return wrapper()


def fallback_runs(make) -> bool:
    """Whether `make()` takes one step on its composed-TF fallback (KERASOPT_IMPL=tf)."""
    variable = keras.Variable([1.0, -2.0], name="probe")
    try:
        with op_library.implementation("tf"):
            make().apply_gradients([(tf.constant([0.5, 0.25]), variable)])
    except Exception:  # a missing or broken fallback: reported, not raised
        return False
    return bool(tf.reduce_all(tf.math.is_finite(variable.value)))


def collect() -> dict:
    """The `--json` document: versions, op library, and paths per algorithm."""
    lib = op_library.library()
    algorithms = {}
    # AWAITING_KERNELS too: their rows show what runs today (the fallback).
    for optimizer in ALL + AWAITING_KERNELS:
        devices = {path: _devices_with_kernel(name.format(optimizer.kernel_name)) if lib.loaded else set()
                   for path, name in OP_NAMES.items()}
        algorithms[optimizer.__name__] = {
            "cpu": "CPU" in devices["dense"],
            "gpu": "GPU" in devices["dense"],
            "sparse": bool(devices["sparse"]),
            "multi_tensor": bool(devices["multi_tensor"]),
            # The GPU forms of the two (CUDA build): sparse row updates and
            # one launch for a list of variables.
            "gpu_sparse": "GPU" in devices["sparse"],
            "gpu_multi_tensor": "GPU" in devices["multi_tensor"],
            "fallback": fallback_runs(optimizer),
        }
    # Wrappers run an inner optimizer and then their own op (kernel_op).
    wrappers = {}
    for wrapper in WRAPPERS:
        devices = _devices_with_kernel(wrapper.kernel_op) if lib.loaded else set()
        wrappers[wrapper.__name__] = {
            "op": wrapper.kernel_op, "cpu": "CPU" in devices, "gpu": "GPU" in devices,
            "fallback": fallback_runs(lambda: _wrapper_instance(wrapper))}
    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "op_library": lib.path if lib.loaded else None,
        "load_error": lib.error,
        "implementation": op_library.get_implementation(),
        "cuda_kernels_built_with": op_library.read_cuda_built_with(lib.path) if lib.loaded else None,
        "gpus_visible": len(tf.config.list_physical_devices("GPU")),
        "algorithms": algorithms,
        "wrappers": wrappers,
    }


def _cell(column: str, present: bool) -> str:
    if not present:
        return "-"
    return "built" if column.startswith("gpu") else "yes"


def print_table(info: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="kerasopt update paths")
    table.add_column("algorithm")
    columns = ["cpu", "sparse", "multi_tensor", "fallback", "gpu", "gpu_sparse",
               "gpu_multi_tensor"]
    headers = {"multi_tensor": "multi-tensor", "gpu": "gpu kernel",
               "gpu_sparse": "gpu sparse kernel", "gpu_multi_tensor": "gpu multi kernel"}
    for column in columns:
        table.add_column(headers.get(column, column), justify="center")
    for name, paths in info["algorithms"].items():
        table.add_row(name, *(_cell(c, paths[c]) for c in columns))
    console.print(table)
    console.print("gpu columns: 'built' = the loaded library has that GPU kernel (compiled "
                  "with nvcc); whether it has run on a GPU is not shown here.")
    wrappers = Table(title="kerasopt wrappers (around any optimizer)")
    wrappers.add_column("wrapper")
    wrappers.add_column("op")
    for column in ("cpu", "gpu kernel", "fallback"):
        wrappers.add_column(column, justify="center")
    for name, paths in info.get("wrappers", {}).items():
        wrappers.add_row(name, paths["op"],
                         *(_cell(c, paths[c]) for c in ("cpu", "gpu", "fallback")))
    console.print(wrappers)
    console.print(f"TensorFlow {info['tensorflow']}, Keras {info['keras']}, "
                  f"KERASOPT_IMPL={info['implementation']}")
    cuda = info["cuda_kernels_built_with"]
    console.print(f"CUDA kernels: built with nvcc {cuda}, {info['gpus_visible']} GPU(s) visible"
                  if cuda else "CUDA kernels: not built (no nvcc at build time, or KERASOPT_CUDA=OFF)")
    if info["op_library"]:
        console.print(f"op library: {info['op_library']}", soft_wrap=True)
    else:
        console.print(f"op library not loaded: {info['load_error']}", soft_wrap=True)


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kerasopt info",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print_table(info)
    return 0
