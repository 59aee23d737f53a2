"""The CUDA kernels (cc/cuda): registration, device choice, and numbers.

On a machine with a visible GPU, every optimizer's GPU kernel runs a few steps
on variables of several shapes and dtypes, and must agree with

* the CPU kernel on the same problem in the same dtype (same rule header,
  same compute precision; only the device's pow/sqrt rounding and LAMB's
  reduction order differ), and
* the float64 CPU kernel, standing in for the float64 references (the CPU
  kernels are checked against tests/references.py to 1e-12 in float64 by the
  other test files), within the storage dtype's rounding.

Without a GPU those tests skip with the reason; the registration and
device-choice tests run everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt import op_library
from kerasopt.optimizers import ALL
from kerasopt.optimizers.fused import tf_variable
from conftest import DTYPES, FLOAT16_DTYPES, np_dtype, require_kernel_library

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
    # No CUDA launcher yet (their variables use the fallback on a GPU):
    "AdaBelief", "RAdam", "Yogi", "NovoGrad", "Lars",
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
def test_gpu_lamb_is_deterministic(dtype):
    require_gpu_kernels()
    weights, grads = _problem(dtype, 99)
    first = _run("lamb", dtype, "/GPU:0", weights, grads)
    second = _run("lamb", dtype, "/GPU:0", weights, grads)
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


def test_sparse_and_multi_updates_ask_for_their_ops_by_name(monkeypatch):
    # The device choice is per op: a GPU variable takes a GPU sparse or
    # multi-tensor kernel exactly when that op has one (not the dense op's).
    require_kernel_library()
    import keras

    asked = []
    use_kernel, unavailable = op_library.use_kernel, op_library.kernel_unavailable_reason
    monkeypatch.setattr(op_library, "use_kernel",
                        lambda v, op_name=None: asked.append(op_name) or use_kernel(v, op_name))
    monkeypatch.setattr(op_library, "kernel_unavailable_reason",
                        lambda v, op_name=None: asked.append(op_name) or unavailable(v, op_name))
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
