"""The CUDA kernels (cc/cuda): registration, device choice, and numbers.

On a machine with a visible GPU, every optimizer's GPU kernel runs a few steps
on variables of several shapes and dtypes, and must agree with

* the CPU kernel on the same problem in the same dtype (same rule header,
  same compute precision; only the device's pow/sqrt rounding and LAMB's
  reduction order differ), and
* the float64 CPU kernel, standing in for the float64 references (the CPU
  kernels are checked against tests/references.py to 1e-12 in float64 by the
  other test files), within the storage dtype's rounding.

The sparse kernels (KerasoptSparseApply<Algo>) are checked the same way on
IndexedSlices gradients with heavy duplicates and both index types, plus
determinism and the out-of-range error (nothing written); the multi-tensor
kernels (KerasoptMultiApply<Algo>) across the driver's chunk and batch edges,
bit for bit against one GPU op per variable.

Without a GPU those tests skip with the reason; the registration and
device-choice tests run everywhere (and the packing op and the per-device
grouping of the multi-tensor path run on CPUs).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt import op_library
from kerasopt.optimizers import ALL
from kerasopt.optimizers.fused import tf_variable
from conftest import (DTYPES, FLOAT16_DTYPES, graph_op_types, np_dtype,
                      require_kernel_library)

GPUS = tf.config.list_physical_devices("GPU")


def cuda_built() -> str | None:
    lib = op_library.library()
    return op_library.read_cuda_built_with(lib.path) if lib.loaded else None


def require_gpu_kernels():
    require_kernel_library()
    if not GPUS:
        pytest.skip("no GPU visible to TensorFlow")
    if cuda_built() is None:
        pytest.skip("the op library was built without its CUDA sources (no nvcc at build time)")


# --- registration and device choice (no GPU needed) --------------------------------


# Optimizers with no GPU kernel on purpose (the fallback serves them on GPUs).
# Every other optimizer must have one (DEVELOPERS.md, "Adding an algorithm").
CPU_ONLY: frozenset[str] = frozenset({
    "FullMatrixAdagrad", "Shampoo",  # matrix roots (Eigen) on the host, their own op
    "SOAP",  # its element-wise op is CPU only; on a GPU its whole step is TF ops
    "Adafactor",  # row and column statistics, its own CPU op (cc/tf/factored_apply_op.h)
})


def test_gpu_kernels_registered_exactly_when_built_with_cuda():
    require_kernel_library()
    built = cuda_built() is not None
    for optimizer in ALL:
        op_name = f"KerasoptApply{optimizer.kernel_name}"
        assert op_library._has_kernel(op_name, "CPU"), op_name
        want = built and optimizer.__name__ not in CPU_ONLY
        assert op_library._has_kernel(op_name, "GPU") == want, (op_name, built)


class _FakeVariable:
    """Stands in for a variable placed on `device` (only .device is read)."""

    def __init__(self, device):
        self.device = device


@pytest.mark.parametrize("implementation", ["auto", "kernel"])
def test_gpu_variables_use_the_gpu_kernel_when_it_is_registered(implementation):
    require_kernel_library()
    gpu_variable = _FakeVariable("/job:localhost/replica:0/task:0/device:GPU:0")
    with kerasopt.implementation(implementation):
        reason = op_library.kernel_unavailable_reason(gpu_variable, "KerasoptApplyAdam")
        if cuda_built():
            assert reason is None
            assert op_library.use_kernel(gpu_variable, "KerasoptApplyAdam")
        else:
            assert "KerasoptApplyAdam" in reason and "GPU" in reason
        # An op without a GPU kernel, or no op named: the fallback (or an error).
        for op_name in ("KerasoptApplyNoSuchRule", None):
            reason = op_library.kernel_unavailable_reason(gpu_variable, op_name)
            assert reason is not None and "GPU" in reason
            if implementation == "kernel":
                with pytest.raises(RuntimeError, match="GPU"):
                    op_library.use_kernel(gpu_variable, op_name)
            else:
                assert not op_library.use_kernel(gpu_variable, op_name)
        # CPU variables have their kernel whatever the build.
        assert op_library.kernel_unavailable_reason(_FakeVariable("/device:CPU:0"),
                                                    "KerasoptApplyAdam") is None


def test_cuda_sources_include_no_tensorflow_headers():
    # nvcc may be newer than the CUDA TensorFlow's headers were written for:
    # cc/cuda/launch.h is the only boundary between the two.
    import pathlib
    import re

    cuda_dir = pathlib.Path(__file__).resolve().parent.parent / "cc" / "cuda"
    if not cuda_dir.is_dir():
        pytest.skip("no source tree next to the tests")
    sources = sorted(p for p in cuda_dir.iterdir() if p.suffix in (".cc", ".h", ".cuh"))
    assert any(p.name.endswith(".cu.cc") for p in sources)
    for path in sources:
        for include in re.findall(r'#include [<"]([^>"]+)[>"]', path.read_text()):
            assert not include.startswith(("tensorflow/", "xla/", "tsl/", "Eigen/", "unsupported/")), (
                path.name, include)
            if include.startswith("cc/"):
                assert include.startswith(("cc/kernels/", "cc/cuda/")), (path.name, include)


# --- GPU kernel against the CPU kernel --------------------------------------------------

# Optimizers with their variants (the attrs and slot layouts the kernels take).
OPTIMIZERS = {
    "adam": lambda: kerasopt.Adam(learning_rate=0.05),
    "amsgrad": lambda: kerasopt.Adam(learning_rate=0.05, amsgrad=True),
    "sgd": lambda: kerasopt.SGD(learning_rate=0.05),
    "nesterov": lambda: kerasopt.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: kerasopt.RMSprop(learning_rate=0.01),
    "rmsprop-centered-momentum": lambda: kerasopt.RMSprop(learning_rate=0.01, momentum=0.5,
                                                          centered=True),
    "adagrad": lambda: kerasopt.Adagrad(learning_rate=0.1),
    "adadelta": lambda: kerasopt.Adadelta(learning_rate=1.0),
    "adamw": lambda: kerasopt.AdamW(learning_rate=0.05, weight_decay=0.1),
    "adamax": lambda: kerasopt.Adamax(learning_rate=0.05),
    "nadam": lambda: kerasopt.Nadam(learning_rate=0.05),
    "lion": lambda: kerasopt.Lion(learning_rate=0.01),
    "ftrl": lambda: kerasopt.Ftrl(learning_rate=0.1, l1_regularization_strength=0.01,
                                  l2_regularization_strength=0.01),
    "ftrl-general-power": lambda: kerasopt.Ftrl(learning_rate=0.1, learning_rate_power=-0.3,
                                                l2_shrinkage_regularization_strength=0.01,
                                                beta=0.5),
    "lamb": lambda: kerasopt.Lamb(learning_rate=0.01),
    "adabelief": lambda: kerasopt.AdaBelief(learning_rate=0.05),
    "adabelief-amsgrad": lambda: kerasopt.AdaBelief(learning_rate=0.05, amsgrad=True),
    "radam": lambda: kerasopt.RAdam(learning_rate=0.05),
    "yogi": lambda: kerasopt.Yogi(learning_rate=0.05),
    "novograd": lambda: kerasopt.NovoGrad(learning_rate=0.05),
    "novograd-grad-averaging": lambda: kerasopt.NovoGrad(learning_rate=0.05,
                                                         grad_averaging=True),
    "lars": lambda: kerasopt.Lars(learning_rate=0.5, weight_decay=1e-3),
    "lars-no-momentum": lambda: kerasopt.Lars(learning_rate=0.5, momentum=0.0),
    "lars-nesterov": lambda: kerasopt.Lars(learning_rate=0.5, nesterov=True,
                                           exclude_from_layer_adaptation=["w1"]),
    "schedule-free-adamw": lambda: kerasopt.ScheduleFreeAdamW(learning_rate=0.05,
                                                              weight_decay=0.1, warmup_steps=3),
    "schedule-free-adamw-interpolate": lambda: kerasopt.ScheduleFreeAdamW(
        learning_rate=0.05, interpolate=True),
    "schedule-free-sgd": lambda: kerasopt.ScheduleFreeSGD(learning_rate=0.05, weight_decay=0.1),
    "schedule-free-sgd-keras-rule": lambda: kerasopt.ScheduleFreeSGD(
        learning_rate=0.05, interpolate=False, warmup_steps=3),
    # Its AdamW side (MuonAdamW) has GPU kernels; its 2-D variables (none of
    # the SHAPES below is 2-D) would run the Muon fallback on a GPU.
    "muon": lambda: kerasopt.Muon(learning_rate=0.05),
}

# Scalar, odd sizes (the vectorized body plus a tail), several LAMB chunks of 512.
SHAPES = ((), (7,), (1029,), (3, 5, 7), (40_003,))
STEPS = 5


def test_every_optimizer_with_a_gpu_kernel_is_covered():
    covered = {type(make()).__name__ for make in OPTIMIZERS.values()}
    assert covered == {cls.__name__ for cls in ALL} - CPU_ONLY


def _problem(dtype, seed):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(shape).astype(np_dtype(dtype)) for shape in SHAPES]
    grads = [[rng.standard_normal(shape).astype(np_dtype(dtype)) for shape in SHAPES]
             for _ in range(STEPS)]
    return weights, grads


def _run(name, dtype, device, weights, grads):
    """STEPS kernel steps on `device`; returns the weights and slots as NumPy arrays."""
    import keras

    with kerasopt.implementation("kernel"), tf.device(device):
        optimizer = OPTIMIZERS[name]()
        variables = [keras.Variable(w, dtype=dtype, name=f"w{i}") for i, w in enumerate(weights)]
        optimizer.build(variables)  # the slots on `device` too

        @tf.function
        def step(gradients):
            optimizer.apply_gradients(zip(gradients, variables))

        for step_grads in grads:
            step([tf.constant(g) for g in step_grads])
        kind = device.strip("/").split(":")[0]  # "GPU" or "CPU"
        for v in variables + [s for v in variables for s in optimizer.slots_for(v)]:
            placed = tf_variable(v).device.upper()
            assert f"DEVICE:{kind}:" in placed, (device, placed)
        out = [v.numpy() for v in variables]
        slots = [[s.numpy() for s in optimizer.slots_for(v)] for v in variables]
    return out, slots


def _assert_close(got, want, tol, what, sign_flips=0.0):
    """max |got - want| <= tol * max(|want|, 1).

    `sign_flips`: for Lion, whose step is lr * sign(c), the largest move one
    element may make by a different sign of a c that rounds to near zero in
    another precision; at most 0.1% of the elements may differ by that much.
    """
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, what
    assert np.all(np.isfinite(got)), f"{what}: non-finite"
    scale = np.max(np.abs(want), initial=1.0)
    err = np.abs(got - want)
    bad = err > tol * scale
    if sign_flips and bad.any():
        assert bad.mean() <= 1e-3 and np.all(err[bad] <= sign_flips), (
            f"{what}: {int(bad.sum())} elements off, max {err.max():.3g}")
        return
    assert not bad.any(), (
        f"{what}: max |gpu - want| = {err.max():.3g} > {tol:.3g} * {scale:.3g}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_gpu_kernel_matches_cpu_kernel_and_reference(name, dtype):
    require_gpu_kernels()
    seed = list(OPTIMIZERS).index(name)
    weights, grads = _problem(dtype, seed)
    gpu_w, gpu_s = _run(name, dtype, "/GPU:0", weights, grads)
    cpu_w, cpu_s = _run(name, dtype, "/CPU:0", weights, grads)
    # The float64 kernel from the same (rounded) start: the reference's numbers.
    ref_w, ref_s = _run(name, "float64", "/CPU:0", [w.astype(np.float64) for w in weights],
                        [[g.astype(np.float64) for g in gs] for gs in grads])
    eps = float(np.finfo(np.float32 if dtype == "bfloat16" else np_dtype(dtype)).eps)
    if dtype == "bfloat16":
        eps = 2.0 ** -7
    # Same dtype: a few ulps of the compute type per step (16-bit: one storage
    # ulp where a float32 difference crosses a rounding boundary).
    same = 4 * eps if dtype in FLOAT16_DTYPES else 64 * eps
    # Against float64: the storage dtype's rounding, accumulated over the steps.
    ref = STEPS * 4 * eps if dtype in FLOAT16_DTYPES else 1e-5 if dtype == "float32" else 1e-12
    flips = 2 * 0.01 * STEPS if name == "lion" else 0.0  # 2 lr per step
    for i, shape in enumerate(SHAPES):
        where = f"{name} {dtype} shape {shape}"
        _assert_close(gpu_w[i], cpu_w[i], same, f"{where}: weight vs CPU kernel")
        _assert_close(gpu_w[i], ref_w[i], ref, f"{where}: weight vs float64", flips)
        for k, (g, c, r) in enumerate(zip(gpu_s[i], cpu_s[i], ref_s[i], strict=True)):
            _assert_close(g, c, same, f"{where}: slot {k} vs CPU kernel")
            _assert_close(g, r, ref, f"{where}: slot {k} vs float64")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", ["lamb", "lars", "novograd"])
def test_gpu_norms_are_deterministic(name, dtype):
    require_gpu_kernels()
    weights, grads = _problem(dtype, 99)
    first = _run(name, dtype, "/GPU:0", weights, grads)
    second = _run(name, dtype, "/GPU:0", weights, grads)
    for a, b in zip(first[0], second[0], strict=True):
        np.testing.assert_array_equal(a, b)


def test_gpu_kernel_reads_a_changing_learning_rate_without_retracing():
    # Hyperparameters and the step come from device memory on every call.
    require_gpu_kernels()
    import keras

    with kerasopt.implementation("kernel"), tf.device("/GPU:0"):
        schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1,
                                                               decay_rate=0.5)
        optimizer = kerasopt.SGD(learning_rate=schedule)
        w = keras.Variable(np.zeros(8, np.float32))

        @tf.function
        def step(g):
            optimizer.apply_gradients([(g, w)])

        ones = tf.ones(8)
        for _ in range(3):
            step(ones)
        # lr 0.1, 0.05, 0.025: w = -0.175.
        np.testing.assert_allclose(w.numpy(), np.full(8, -0.175, np.float32), rtol=1e-6)
        assert step.experimental_get_tracing_count() == 1


# --- sparse and multi-tensor GPU kernels: registration and device choice ------------


def _wants_gpu_kernel(optimizer, pattern) -> bool:
    """A GPU kernel of `pattern` is built for `optimizer` exactly when the library
    has CUDA, the optimizer has a GPU kernel at all, and the CPU op exists."""
    op_name = pattern.format(optimizer.kernel_name)
    return (cuda_built() is not None and optimizer.__name__ not in CPU_ONLY
            and op_library._has_kernel(op_name, "CPU"))


@pytest.mark.parametrize("pattern", ["KerasoptSparseApply{}", "KerasoptMultiApply{}"])
def test_gpu_sparse_and_multi_kernels_registered_exactly_when_built_with_cuda(pattern):
    require_kernel_library()
    with_cpu_op = 0
    for optimizer in ALL:
        op_name = pattern.format(optimizer.kernel_name)
        with_cpu_op += op_library._has_kernel(op_name, "CPU")
        assert op_library._has_kernel(op_name, "GPU") == _wants_gpu_kernel(optimizer, pattern), (
            op_name, cuda_built())
    assert with_cpu_op >= 10  # the per-element rules (and LAMB's multi-tensor op)
    # The pack op the GPU multi-tensor path needs comes with them.
    assert op_library._has_kernel("KerasoptPackHandles", "CPU")
    assert op_library._has_kernel("KerasoptPackHandles", "GPU") == (cuda_built() is not None)


@pytest.mark.parametrize("op_name", ["KerasoptSparseApplyAdam", "KerasoptMultiApplyAdam",
                                     "KerasoptMultiApplyLamb"])
def test_gpu_variables_take_the_gpu_sparse_and_multi_kernels_when_built(op_name):
    require_kernel_library()
    gpu_variable = _FakeVariable("/job:localhost/replica:0/task:0/device:GPU:0")
    reason = op_library.kernel_unavailable_reason(gpu_variable, op_name)
    if cuda_built():
        assert reason is None
    else:
        assert op_name in reason and "GPU" in reason


def test_pack_handles_feeds_the_multi_tensor_op_like_one_op_per_variable():
    # KerasoptPackHandles (the GPU path's packing) on the CPU, where it runs
    # everywhere: the same bits as per-variable ops.
    ops = require_kernel_library().ops
    rng = np.random.default_rng(3)
    shapes = [(5,), (2, 3)]
    starts = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [tf.constant(rng.standard_normal(s).astype(np.float32)) for s in shapes]
    scalars = dict(learning_rate=tf.constant(0.1, tf.float64),
                   beta_1=tf.constant(0.9, tf.float64), beta_2=tf.constant(0.999, tf.float64),
                   epsilon=tf.constant(1e-7, tf.float64), step=tf.constant(1, tf.int64))

    def variables():
        return [(tf.Variable(w), tf.Variable(np.zeros_like(w)), tf.Variable(np.zeros_like(w)))
                for w in starts]

    packed_vars = variables()
    packed = ops.kerasopt_pack_handles(handles=[s.handle for _, m, v in packed_vars
                                                for s in (m, v)])
    assert packed.dtype == tf.resource and packed.shape == (4,)
    ops.kerasopt_multi_apply_adam(features=[], vars=[w.handle for w, _, _ in packed_vars], slots=packed,
                                  grads=grads, num_slots=2, **scalars)
    single_vars = variables()
    for (w, m, v), g in zip(single_vars, grads):
        ops.kerasopt_apply_adam(features=[], var=w.handle, slots=[m.handle, v.handle], grad=g, **scalars)
    for start, got, want in zip(starts, packed_vars, single_vars):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert not np.array_equal(got[0].numpy(), start)


_TWO_DEVICE_SCRIPT = """
import json, os
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, kerasopt
from kerasopt.optimizers import multi_tensor

groups = []
plan = multi_tensor.plan
def recording_plan(*args, **kwargs):
    found, leftovers = plan(*args, **kwargs)
    groups.extend(sorted({v.device for v in g.vars}) for g in found)
    return found, leftovers
multi_tensor.plan = recording_plan

def run():
    rng = np.random.default_rng(0)
    variables = []
    for i, device in enumerate(["/CPU:0", "/CPU:1", "/CPU:0", "/CPU:1"]):
        with tf.device(device):
            variables.append(keras.Variable(rng.standard_normal(6 + i).astype("float32")))
    grads = [tf.constant(rng.standard_normal(6 + i).astype("float32")) for i in range(4)]
    opt = kerasopt.Adam(learning_rate=0.1)
    opt.build(variables)  # each slot with its variable
    with kerasopt.implementation("kernel"):
        for _ in range(2):
            opt.apply_gradients(zip(grads, variables))
    return [v.numpy().tolist() for v in variables]

multi = run()
multi_groups = list(groups)
os.environ[multi_tensor.ENV_SWITCH] = "0"
single = run()
print(json.dumps({"groups": multi_groups, "same": multi == single}))
"""


def test_multi_tensor_groups_never_mix_devices(tmp_path):
    # Two logical CPUs stand in for two GPUs: one group (one op) per device.
    require_kernel_library()
    import isolated

    result = isolated.run(_TWO_DEVICE_SCRIPT, cwd=tmp_path, timeout=300)
    assert result["same"]
    devices = [tuple(g) for g in result["groups"]]
    assert devices and all(len(g) == 1 for g in devices), devices
    assert len(set(devices)) == 2, devices


# --- sparse GPU kernel against the CPU kernel --------------------------------------------

# The optimizers with a sparse op; `lazy` where the rule is not exact on rows.
SPARSE_OPTIMIZERS = {
    "sgd": lambda: kerasopt.SGD(learning_rate=0.05),
    "sgd-momentum": lambda: kerasopt.SGD(learning_rate=0.05, momentum=0.9, lazy=True),
    "adam": lambda: kerasopt.Adam(learning_rate=0.05, lazy=True),
    "amsgrad": lambda: kerasopt.Adam(learning_rate=0.05, amsgrad=True, lazy=True),
    "adamw": lambda: kerasopt.AdamW(learning_rate=0.05, weight_decay=0.1, lazy=True),
    "adamax": lambda: kerasopt.Adamax(learning_rate=0.05, lazy=True),
    "nadam": lambda: kerasopt.Nadam(learning_rate=0.05, lazy=True),
    "lion": lambda: kerasopt.Lion(learning_rate=0.01, lazy=True),
    "adagrad": lambda: kerasopt.Adagrad(learning_rate=0.1),
    "adadelta": lambda: kerasopt.Adadelta(learning_rate=1.0, lazy=True),
    "rmsprop-centered-momentum": lambda: kerasopt.RMSprop(
        learning_rate=0.01, momentum=0.5, centered=True, lazy=True),
    "ftrl": lambda: kerasopt.Ftrl(learning_rate=0.1, l1_regularization_strength=0.01,
                                  l2_regularization_strength=0.01),
}
# Rows wider than a warp (32 lanes) and not a multiple of it; rows that are
# never named; heavy duplicates (more positions than rows).
TABLE = (300, 37)
SPARSE_STEPS = 3


def test_every_optimizer_with_a_gpu_sparse_kernel_is_covered():
    require_kernel_library()
    covered = {type(make()).kernel_name for make in SPARSE_OPTIMIZERS.values()}
    with_op = {cls.kernel_name for cls in ALL
               if op_library._has_kernel(f"KerasoptSparseApply{cls.kernel_name}", "CPU")
               and cls.__name__ not in CPU_ONLY}
    assert covered == with_op


def _sparse_problem(dtype, seed, num_indices=500):
    rng = np.random.default_rng(seed)
    table = rng.standard_normal(TABLE).astype(np_dtype(dtype))
    steps = []
    for _ in range(SPARSE_STEPS):
        indices = rng.integers(0, TABLE[0] - 20, num_indices)  # the last 20 rows: never
        indices[:7] = 5  # a row named 7+ times
        values = rng.standard_normal((num_indices, TABLE[1])).astype(np_dtype(dtype))
        steps.append((values, indices))
    return table, steps


def _run_sparse(make, dtype, device, table, steps, index_dtype="int64"):
    """SPARSE_STEPS kernel steps with IndexedSlices gradients on `device`."""
    import keras

    with kerasopt.implementation("kernel"), tf.device(device):
        optimizer = make()
        variable = keras.Variable(table, dtype=dtype)
        optimizer.build([variable])

        @tf.function
        def step(values, indices):
            grad = tf.IndexedSlices(values, indices, tf.constant(TABLE, index_dtype))
            optimizer.apply_gradients([(grad, variable)])

        for values, indices in steps:
            step(tf.constant(values), tf.constant(indices, index_dtype))
        assert f"DEVICE:{device.strip('/').split(':')[0]}:" in tf_variable(variable).device.upper()
        op_types = graph_op_types(step.get_concrete_function(
            tf.constant(steps[0][0]), tf.constant(steps[0][1], index_dtype)))
        assert f"KerasoptSparseApply{optimizer.kernel_name}" in op_types, sorted(op_types)
        return variable.numpy(), [s.numpy() for s in optimizer.slots_for(variable)]


def _tolerances(dtype):
    eps = float(np.finfo(np.float32 if dtype == "bfloat16" else np_dtype(dtype)).eps)
    if dtype == "bfloat16":
        eps = 2.0 ** -7
    same = 4 * eps if dtype in FLOAT16_DTYPES else 64 * eps
    ref = (SPARSE_STEPS * 4 * eps if dtype in FLOAT16_DTYPES
           else 1e-5 if dtype == "float32" else 1e-12)
    return same, ref


@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(SPARSE_OPTIMIZERS))
def test_gpu_sparse_kernel_matches_cpu_kernel_and_reference(name, dtype, index_dtype):
    require_gpu_kernels()
    make = SPARSE_OPTIMIZERS[name]
    table, steps = _sparse_problem(dtype, list(SPARSE_OPTIMIZERS).index(name))
    gpu_w, gpu_s = _run_sparse(make, dtype, "/GPU:0", table, steps, index_dtype)
    cpu_w, cpu_s = _run_sparse(make, dtype, "/CPU:0", table, steps, index_dtype)
    ref_w, ref_s = _run_sparse(make, "float64", "/CPU:0", table.astype(np.float64),
                               [(v.astype(np.float64), i) for v, i in steps], index_dtype)
    same, ref = _tolerances(dtype)
    flips = 2 * 0.01 * SPARSE_STEPS if name == "lion" else 0.0
    where = f"sparse {name} {dtype} {index_dtype}"
    # Rows no index names are left exactly as they were (the lazy and exact rules alike).
    np.testing.assert_array_equal(gpu_w[-20:], table[-20:])
    _assert_close(gpu_w, cpu_w, same, f"{where}: weight vs CPU kernel")
    _assert_close(gpu_w, ref_w, ref, f"{where}: weight vs float64", flips)
    for k, (g, c, r) in enumerate(zip(gpu_s, cpu_s, ref_s, strict=True)):
        _assert_close(g, c, same, f"{where}: slot {k} vs CPU kernel")
        _assert_close(g, r, ref, f"{where}: slot {k} vs float64")


def test_gpu_sparse_duplicates_are_summed_deterministically():
    # 20000 positions on 10 rows: duplicates never race, the sum is in position
    # order (the CPU's), so two runs give the same bits.
    require_gpu_kernels()
    make = SPARSE_OPTIMIZERS["adam"]
    rng = np.random.default_rng(11)
    table = rng.standard_normal(TABLE).astype(np.float32)
    indices = rng.integers(0, 10, 20_000)
    values = rng.standard_normal((20_000, TABLE[1])).astype(np.float32)
    steps = [(values, indices)] * 2
    first = _run_sparse(make, "float32", "/GPU:0", table, steps)
    second = _run_sparse(make, "float32", "/GPU:0", table, steps)
    cpu = _run_sparse(make, "float32", "/CPU:0", table, steps)
    np.testing.assert_array_equal(first[0], second[0])
    for a, b in zip(first[1], second[1], strict=True):
        np.testing.assert_array_equal(a, b)
    _assert_close(first[0], cpu[0], 64 * float(np.finfo(np.float32).eps), "duplicates vs CPU")


@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
@pytest.mark.parametrize("bad", [7, -1])
def test_gpu_sparse_out_of_range_index_is_reported_and_nothing_written(bad, index_dtype):
    require_gpu_kernels()
    ops = op_library.library().ops
    with tf.device("/GPU:0"):
        start = np.arange(15, dtype=np.float32).reshape(5, 3)
        var = tf.Variable(start)
        m, v = tf.Variable(np.zeros_like(start)), tf.Variable(np.zeros_like(start))
        indices = tf.constant([0, 2, bad, 1, 2], index_dtype)
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=rf"index {bad} \(at position 2 of indices\) is out of range "
                                 r"\[0, 5\).*nothing was updated"):
            ops.kerasopt_sparse_apply_adam(features=[],
                var=var.handle, slots=[m.handle, v.handle], grad=tf.ones((5, 3)),
                indices=indices, learning_rate=tf.constant(0.1, tf.float64),
                beta_1=tf.constant(0.9, tf.float64), beta_2=tf.constant(0.999, tf.float64),
                epsilon=tf.constant(1e-7, tf.float64), step=tf.constant(1, tf.int64))
        np.testing.assert_array_equal(var.numpy(), start)
        np.testing.assert_array_equal(m.numpy(), 0)
        np.testing.assert_array_equal(v.numpy(), 0)


# --- multi-tensor GPU kernel against one op per variable and the CPU ------------------

# Across the driver's edges: chunks of 65536 elements (one below, at, above, a
# partial third chunk), empty and scalar variables, and more variables than one
# launch takes (32).
MULTI_SHAPES = ((65_535,), (65_536,), (65_537,), (2, 65_536 + 7), (0,), (), (7,)) + ((33,),) * 30
MULTI_OPTIMIZERS = ("adam", "amsgrad", "nesterov", "rmsprop-centered-momentum", "adagrad",
                    "adadelta", "adamw", "adamax", "nadam", "lion", "ftrl", "lamb")


def _run_multi(name, dtype, device, shapes, multi_on, seed=0):
    """Two steps of OPTIMIZERS[name] on `device`; returns arrays and op types."""
    import keras
    from kerasopt.optimizers import multi_tensor

    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(s).astype(np_dtype(dtype)) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np_dtype(dtype)) for s in shapes] for _ in range(2)]
    saved = os.environ.get(multi_tensor.ENV_SWITCH)
    os.environ[multi_tensor.ENV_SWITCH] = "1" if multi_on else "0"
    try:
        with kerasopt.implementation("kernel"), tf.device(device):
            optimizer = OPTIMIZERS[name]()
            variables = [keras.Variable(w, dtype=dtype, name=f"w{i}")
                         for i, w in enumerate(weights)]
            optimizer.build(variables)

            @tf.function
            def step(gradients):
                optimizer.apply_gradients(zip(gradients, variables))

            for step_grads in grads:
                tensors = [tf.constant(g) for g in step_grads]
                step(tensors)
            op_types = graph_op_types(step.get_concrete_function(tensors))
            arrays = [v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables]
    finally:
        if saved is None:
            os.environ.pop(multi_tensor.ENV_SWITCH, None)
        else:
            os.environ[multi_tensor.ENV_SWITCH] = saved
    return arrays, op_types


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", MULTI_OPTIMIZERS)
def test_gpu_multi_tensor_matches_one_op_per_variable_and_cpu(name, dtype):
    require_gpu_kernels()
    multi, multi_types = _run_multi(name, dtype, "/GPU:0", MULTI_SHAPES, True)
    single, single_types = _run_multi(name, dtype, "/GPU:0", MULTI_SHAPES, False)
    cpu, _ = _run_multi(name, dtype, "/CPU:0", MULTI_SHAPES, True)
    kernel_name = type(OPTIMIZERS[name]()).kernel_name
    assert f"KerasoptMultiApply{kernel_name}" in multi_types, sorted(multi_types)
    assert f"KerasoptMultiApply{kernel_name}" not in single_types
    same, _ = _tolerances(dtype)
    for i, (a, b, c) in enumerate(zip(multi, single, cpu, strict=True)):
        # The same rule code on the same device: the same bits (LAMB: the same
        # two-pass launch per variable).
        np.testing.assert_array_equal(a, b, err_msg=f"{name} {dtype} array {i}")
        _assert_close(a, c, same, f"{name} {dtype} array {i} vs CPU kernel")


def test_gpu_multi_tensor_over_many_chunks_in_one_variable():
    # More chunks than one launch takes (256 x 65536): the variable continues
    # in the next launch.
    require_gpu_kernels()
    shapes = ((256 * 65_536 + 100,), (5,))
    multi, _ = _run_multi("adam", "float32", "/GPU:0", shapes, True)
    single, _ = _run_multi("adam", "float32", "/GPU:0", shapes, False)
    for a, b in zip(multi, single, strict=True):
        np.testing.assert_array_equal(a, b)


def test_sparse_and_multi_updates_ask_for_their_ops_by_name(monkeypatch):
    # The device choice is per op: a GPU variable takes a GPU sparse or
    # multi-tensor kernel exactly when that op has one (not the dense op's).
    require_kernel_library()
    import keras

    asked = []
    use_kernel, unavailable = op_library.use_kernel, op_library.kernel_unavailable_reason
    monkeypatch.setattr(op_library, "use_kernel",
                        lambda v, op_name=None, *args, **kw: asked.append(op_name)
                        or use_kernel(v, op_name, *args, **kw))
    monkeypatch.setattr(op_library, "kernel_unavailable_reason",
                        lambda v, op_name=None, *args, **kw: asked.append(op_name)
                        or unavailable(v, op_name, *args, **kw))
    table = keras.Variable(np.ones((4, 2), np.float32))
    dense = keras.Variable(np.ones(3, np.float32))
    optimizer = kerasopt.Adam(lazy=True)
    optimizer.build([table, dense])
    with kerasopt.implementation("kernel"):
        optimizer.apply([tf.IndexedSlices(tf.ones((1, 2)), tf.constant([1]), tf.constant([4, 2])),
                         tf.ones(3)], [table, dense])
    assert "KerasoptSparseApplyAdam" in asked and "KerasoptMultiApplyAdam" in asked, asked
    np.testing.assert_array_equal(table.numpy()[0], 1.0)  # row 0 was not named
    assert table.numpy()[1, 0] < 1.0 and dense.numpy()[0] < 1.0
