"""Shared fixtures and helpers for kerasopt's tests.

* ``impl``: runs a test once per update path, under
  ``kerasopt.implementation("kernel")`` and ``kerasopt.implementation("tf")``.
  The "kernel" run fails (it is not skipped) when the op library did not load.
* Helpers to build random problems in every float dtype, round float64 values to
  a storage dtype, and measure differences in units in the last place.
"""

from __future__ import annotations

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import keras  # noqa: E402
import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# TensorFlow takes seconds to import (a minute on a cold, busy machine).
# Importing it when collection starts, not when pytest loads this file, lets
# pytest print its header first instead of showing nothing meanwhile.
tf = kerasopt = op_library = None


def pytest_addoption(parser):
    parser.addoption("--require-every-op", action="store_true",
                     help="fail unless the tests call every op of the loaded op library "
                          "(tests/op_coverage.py)")


def pytest_collection(session):
    global tf, kerasopt, op_library
    import tensorflow as tf

    import kerasopt
    from kerasopt import op_library

    if session.config.getoption("require_every_op"):
        from op_coverage import OpCoverage

        session.config.pluginmanager.register(OpCoverage(op_library.library()), "op_coverage")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Drops the gradient functions a test's traces left in TensorFlow's
    global registry, so its graphs can be freed.

    TensorFlow keeps every graph-mode tf.custom_gradient function in a global
    registry forever, and with it the whole graph it was traced in
    (tensorflow/tensorflow#97697); Keras's tf.distribute all_reduce in every
    traced apply_gradients of the fallback path registers one. Over the suite
    that kept millions of objects alive, which every full garbage collection
    (and each gc.collect() of the benchmarks the tests run) walked again.
    A registered function is only looked up while a gradient through its op is
    traced, and no test differentiates a graph an earlier test traced; entries
    made while fixtures are set up (module-scoped ones may be reused) stay.
    """
    from tensorflow.python.framework import ops

    # (A private registry: where a TensorFlow has none by that name, nothing
    # is dropped and the tests run as they would without this hook.)
    registry = getattr(getattr(ops, "gradient_registry", None), "_registry", None)
    if not isinstance(registry, dict):
        yield
        return
    before = set(registry)
    yield
    for name in [n for n in registry if n.startswith("CustomGradient-") and n not in before]:
        del registry[name]


DTYPES = ("float16", "bfloat16", "float32", "float64")
FLOAT16_DTYPES = ("float16", "bfloat16")

# The driver (cc/cpu/apply_dense.h) works in blocks of 512 elements: cover the
# empty, scalar, single, partial-block, exact-block and block-plus-one cases.
SHAPES = ((), (0,), (3, 0), (1,), (7,), (512,), (513,), (1025,), (3, 5, 7))


def pytest_configure(config):
    # Keras's TF backend calls np.array(tensor, copy=False) on variables
    # (keras/src/backend/tensorflow/core.py); NumPy 2 warns about it on every
    # get_weights(). Not kerasopt's to fix.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


# --- implementation paths ------------------------------------------------------


@pytest.fixture(autouse=True)
def _restore_implementation():
    """No test leaks a set_implementation() choice into the next one."""
    saved = op_library._implementation
    yield
    op_library._implementation = saved


def require_kernel_library():
    """Fails the calling test (never skips) when the op library did not load."""
    lib = op_library.library()
    if not lib.loaded:
        pytest.fail(f"kerasopt's op library did not load: {lib.error}", pytrace=False)
    return lib


@pytest.fixture(params=["kernel", "tf"])
def impl(request):
    """Runs the test under kerasopt.implementation(<param>); yields the name.

    Under "kernel" kerasopt raises instead of falling back, so a test that
    traces an update would fail anyway; failing here first gives the reason.
    """
    if request.param == "kernel":
        require_kernel_library()
    with kerasopt.implementation(request.param):
        yield request.param


# --- dtypes ----------------------------------------------------------------------


def np_dtype(name: str) -> np.dtype:
    """The NumPy dtype for a dtype name (bfloat16 from ml_dtypes)."""
    if name == "bfloat16":
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def finfo(name: str):
    return ml_dtypes.finfo(np_dtype(name))


def quantize(x, dtype: str) -> np.ndarray:
    """float64 copy of `x` after one round-to-nearest-even into `dtype`."""
    return np.asarray(x, dtype=np.float64).astype(np_dtype(dtype)).astype(np.float64)


def rounder(dtype: str):
    """A function rounding float64 arrays to `dtype` (kept as float64); None for float64."""
    if dtype == "float64":
        return None
    return lambda x: quantize(x, dtype)


def ulp(x, dtype: str) -> np.ndarray:
    """Spacing of `dtype` at |x| (the subnormal spacing below the smallest normal)."""
    info = finfo(dtype)
    x = np.abs(np.asarray(x, dtype=np.float64))
    tiny = float(info.smallest_normal)
    nmant = int(info.nmant)
    with np.errstate(divide="ignore"):
        exponent = np.floor(np.log2(np.maximum(x, tiny)))
    return np.exp2(exponent - nmant)


def ulps_apart(got, want, dtype: str) -> np.ndarray:
    """|got - want| in units of the dtype's spacing at `want`."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    return np.abs(got - want) / ulp(want, dtype)


def as_f64(x) -> np.ndarray:
    return np.asarray(x).astype(np.float64)


def bits(x) -> bytes:
    """The raw bytes of an array, for bit-identity checks (NaN == NaN, -0 != 0)."""
    return np.ascontiguousarray(np.asarray(x)).tobytes()


def assert_bit_identical(a, b, what=""):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
    if bits(a) != bits(b):
        diff = np.flatnonzero(a.astype(np.float64).ravel() != b.astype(np.float64).ravel())
        raise AssertionError(
            f"{what}: not bit-identical ({diff.size} of {a.size} elements differ; "
            f"first at flat index {diff[:5].tolist()}: "
            f"{a.ravel()[diff[:5]].tolist()} vs {b.ravel()[diff[:5]].tolist()})"
        )


# --- random problems -------------------------------------------------------------


def random_weights(shapes, dtype: str, seed: int = 0, scale: float = 1.0):
    """Initial weights, one array per shape, exactly representable in `dtype`."""
    rng = np.random.default_rng(seed)
    return [
        np.array(scale * rng.standard_normal(s), dtype=np_dtype(dtype)) for s in shapes
    ]


def random_gradients(shapes, dtype: str, steps: int, seed: int = 1,
                     log_scale_range=(-2.0, 1.0)):
    """Per-step gradients: grads[step][i] has shapes[i], in `dtype`.

    Each step's gradients are N(0, 1) times a per-step scale drawn
    log-uniformly from exp(log_scale_range), so the second-moment estimate goes
    up and down (which makes AMSGrad's running maximum differ from Adam's v).
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        scale = float(np.exp(rng.uniform(*log_scale_range)))
        out.append([np.array(scale * rng.standard_normal(s), dtype=np_dtype(dtype))
                    for s in shapes])
    return out


def make_problem(shapes=SHAPES, dtype: str = "float32", steps: int = 30, seed: int = 0):
    """(weights, grads) for `steps` steps, both exactly representable in `dtype`."""
    return (random_weights(shapes, dtype, seed=seed),
            random_gradients(shapes, dtype, steps, seed=seed + 1000))


def regression_data(n: int = 256, features: int = 8, outputs: int = 1, seed: int = 0):
    """A noisy linear regression problem: (x, y) float32."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    w = rng.standard_normal((features, outputs)).astype(np.float32)
    y = (x @ w + 0.1 * rng.standard_normal((n, outputs))).astype(np.float32)
    return x, y


def small_regression_model(optimizer, features: int = 8):
    """A seeded two-layer regression model compiled with `optimizer` (mse)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((features,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def classification_data(n: int = 256, features: int = 8, classes: int = 3, seed: int = 0):
    """Gaussian blobs: (x float32, integer labels)."""
    rng = np.random.default_rng(seed)
    centers = 3.0 * rng.standard_normal((classes, features))
    labels = rng.integers(0, classes, size=n)
    x = (centers[labels] + rng.standard_normal((n, features))).astype(np.float32)
    return x, labels.astype(np.int32)


def tf_dtype(name: str) -> tf.DType:
    return tf.as_dtype(name)


def graph_op_types(concrete_function) -> set[str]:
    """Op types in a traced function, including nested functions (cond branches)."""
    graph_def = concrete_function.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types |= {node.op for node in function.node_def}
    return types
