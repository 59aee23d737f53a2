"""Sparse (tf.IndexedSlices) gradients: KerasoptSparseApply<Algo> ops, their
composed-TF fallback and float64 references.

* kernel and fallback give bit-identical results (all float dtypes, int32 and
  int64 indices, duplicate indices);
* both agree with a float64 reference: for the exact rules, the *dense*
  reference run over the whole table with the summed gradient (zero on
  untouched rows); for the lazy rules, the dense reference run on the touched
  rows only;
* the exact rules are bit-identical to kerasopt's own dense update with the
  densified gradient (float32, float64);
* empty index lists, out-of-range indices (nothing written), shape errors,
  determinism over thread counts, `lazy` config, and Embedding in model.fit.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
import references as ref
from conftest import DTYPES, as_f64, assert_bit_identical, np_dtype, quantize, require_kernel_library
from kerasopt.optimizers import fused
from optimizer_table import optimizer_params

ROWS = 11
STEPS = 3
LR = float(np.float32(0.05))  # Keras keeps the learning rate in a float32 variable


def _nadam_u(beta_1, t):
    u = 1.0
    for i in range(1, t + 1):
        u = ref.nadam_u_product(u, beta_1, i)
    return u


# name: (optimizer class, constructor kwargs, exact?, reference step)
# reference step: (w, slots, g, t) -> (w, slots), float64 arrays, slots in the
# optimizer's slots_for order.
CASES = {
    "sgd": (kerasopt.SGD, dict(learning_rate=LR), True,
            lambda w, s, g, t: (ref.sgd(w, g, {}, learning_rate=LR)[0], [])),
    "sgd-momentum-lazy": (
        kerasopt.SGD, dict(learning_rate=LR, momentum=0.9, lazy=True), False,
        lambda w, s, g, t: (lambda r: (r[0], [r[1]["m"]]))(
            ref.sgd(w, g, {"m": s[0]}, learning_rate=LR, momentum=0.9))),
    "sgd-nesterov-lazy": (
        kerasopt.SGD, dict(learning_rate=LR, momentum=0.5, nesterov=True, lazy=True), False,
        lambda w, s, g, t: (lambda r: (r[0], [r[1]["m"]]))(
            ref.sgd(w, g, {"m": s[0]}, learning_rate=LR, momentum=0.5, nesterov=True))),
    "adagrad": (kerasopt.Adagrad, dict(learning_rate=LR), True,
                lambda w, s, g, t: (lambda r: (r[0], [r[1]]))(
                    ref.adagrad(w, g, s[0], learning_rate=LR, epsilon=1e-7))),
    "ftrl-l1-l2-beta": (
        kerasopt.Ftrl, dict(learning_rate=LR, l1_regularization_strength=0.01,
                            l2_regularization_strength=0.1, beta=0.5), True,
        lambda w, s, g, t: (lambda r: (r[0], [r[1], r[2]]))(
            ref.ftrl(w, s[0], s[1], g, learning_rate=LR, learning_rate_power=-0.5,
                     l1=0.01, l2=0.1, l2_shrinkage=0.0, beta=0.5))),
    "ftrl-power": (
        kerasopt.Ftrl, dict(learning_rate=LR, learning_rate_power=-0.3), True,
        lambda w, s, g, t: (lambda r: (r[0], [r[1], r[2]]))(
            ref.ftrl(w, s[0], s[1], g, learning_rate=LR, learning_rate_power=-0.3,
                     l1=0.0, l2=0.0, l2_shrinkage=0.0, beta=0.0))),
    "ftrl-shrinkage-lazy": (
        kerasopt.Ftrl, dict(learning_rate=LR, l2_shrinkage_regularization_strength=0.2,
                            l1_regularization_strength=0.01, lazy=True), False,
        lambda w, s, g, t: (lambda r: (r[0], [r[1], r[2]]))(
            ref.ftrl(w, s[0], s[1], g, learning_rate=LR, learning_rate_power=-0.5,
                     l1=0.01, l2=0.0, l2_shrinkage=0.2, beta=0.0))),
    "rmsprop-centered-momentum-lazy": (
        kerasopt.RMSprop, dict(learning_rate=LR, momentum=0.5, centered=True, lazy=True), False,
        lambda w, s, g, t: (lambda r: (r[0], [r[1], r[2], r[3]]))(
            ref.rmsprop(w, g, s[0], s[1], s[2], learning_rate=LR, rho=0.9, momentum=0.5,
                        epsilon=1e-7, centered=True))),
    "adam-lazy": (
        kerasopt.Adam, dict(learning_rate=LR, lazy=True), False,
        lambda w, s, g, t: (lambda r: (r[0], [r[1]["m"], r[1]["v"]]))(
            ref.adam(w, g, {"m": s[0], "v": s[1]}, learning_rate=LR, beta_1=0.9,
                     beta_2=0.999, epsilon=1e-7, step=t))),
    "amsgrad-lazy": (
        kerasopt.Adam, dict(learning_rate=LR, amsgrad=True, lazy=True), False,
        lambda w, s, g, t: (lambda r: (r[0], [r[1]["m"], r[1]["v"], r[1]["v_hat"]]))(
            ref.adam(w, g, {"m": s[0], "v": s[1], "v_hat": s[2]}, learning_rate=LR,
                     beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=t, amsgrad=True))),
    "adamw-lazy": (
        kerasopt.AdamW, dict(learning_rate=LR, weight_decay=0.1, lazy=True), False,
        lambda w, s, g, t: (lambda r: (r[0], [r[1], r[2]]))(
            ref.adamw(w, g, s[0], s[1], None, lr=LR, weight_decay=0.1, beta_1=0.9,
                      beta_2=0.999, epsilon=1e-7, t=t))),
    "adamax-lazy": (
        kerasopt.Adamax, dict(learning_rate=LR, lazy=True), False,
        lambda w, s, g, t: (lambda r: (r[0], [r[1], r[2]]))(
            ref.adamax(w, g, s[0], s[1], lr=LR, beta_1=0.9, beta_2=0.999, epsilon=1e-7, t=t))),
    "nadam-lazy": (
        kerasopt.Nadam, dict(learning_rate=LR, lazy=True), False,
        lambda w, s, g, t: (lambda r: (r[0], [r[1], r[2]]))(
            ref.nadam(w, g, s[0], s[1], _nadam_u(0.9, t), lr=LR, beta_1=0.9, beta_2=0.999,
                      epsilon=1e-7, t=t))),
    "lion-lazy": (
        kerasopt.Lion, dict(learning_rate=LR, lazy=True), False,
        lambda w, s, g, t: (lambda r: (r[0], [r[1]]))(
            ref.lion(w, g, s[0], lr=LR, beta_1=0.9, beta_2=0.99))),
    "adadelta-lazy": (
        kerasopt.Adadelta, dict(learning_rate=1.0, lazy=True), False,
        lambda w, s, g, t: (lambda r: (r[0], [r[1], r[2]]))(
            ref.adadelta(w, g, s[0], s[1], learning_rate=1.0, rho=0.95, epsilon=1e-7))),
}

# Each step names some rows, with repeats; row 3 is only named at step 1, and
# rows 9, 10 never are.
STEP_INDICES = [[0, 3, 5, 0, 8], [5, 1, 1, 1, 2], [7, 0, 6, 4, 5]]


def problem(dtype, row_shape=(3,), seed=0, zero_init=False):
    rng = np.random.default_rng(seed)
    w = np.zeros((ROWS, *row_shape)) if zero_init else rng.standard_normal((ROWS, *row_shape))
    grads = [(rng.standard_normal((len(ix), *row_shape)), np.array(ix)) for ix in STEP_INDICES]
    cast = np_dtype(dtype)
    return (np.asarray(w, cast), [(np.asarray(v, cast), ix) for v, ix in grads])


def run_optimizer(name, dtype, path, index_dtype="int64", row_shape=(3,), zero_init=None):
    """Runs the case's optimizer on IndexedSlices gradients; returns (w, slots)."""
    cls, kwargs, exact, _ = CASES[name]
    zero_init = name.startswith("ftrl") if zero_init is None else zero_init
    w0, grads = problem(dtype, row_shape, zero_init=zero_init)
    with kerasopt.implementation(path):
        var = keras.Variable(w0, dtype=dtype)
        opt = cls(**kwargs)
        opt.build([var])
        for values, ix in grads:
            grad = tf.IndexedSlices(tf.constant(values), tf.constant(ix, dtype=index_dtype),
                                    tf.constant([ROWS, *row_shape]))
            opt.apply([grad], [var])
        slots = [np.asarray(s) for s in opt.slots_for(var)]
    return np.asarray(var), slots


def reference(name, dtype, row_shape=(3,)):
    """float64 reference, rounded to `dtype` after every step (as stored)."""
    cls, kwargs, exact, step = CASES[name]
    w0, grads = problem(dtype, row_shape, zero_init=name.startswith("ftrl"))
    var = keras.Variable(w0, dtype=dtype)
    opt = cls(**kwargs)
    opt.build([var])
    w = as_f64(w0)
    slots = [as_f64(s) for s in opt.slots_for(var)]  # the optimizer's initial slots
    for t, (values, ix) in enumerate(grads, start=1):
        summed = np.zeros_like(w)
        np.add.at(summed, ix, as_f64(values))
        rows = np.arange(ROWS) if exact else np.unique(ix)
        new_w, new_slots = step(w[rows], [s[rows] for s in slots], summed[rows], t)
        w[rows] = quantize(new_w, dtype)
        for s, new in zip(slots, new_slots):
            s[rows] = quantize(new, dtype)
    return w, slots


TOLERANCE = {"float64": 1e-12, "float32": 2e-6, "float16": 4e-3, "bfloat16": 3e-2}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(CASES))
def test_kernel_fallback_reference(name, dtype):
    require_kernel_library()
    index_dtype = "int32" if dtype in ("float16", "float32") else "int64"
    w_kernel, s_kernel = run_optimizer(name, dtype, "kernel", index_dtype)
    w_tf, s_tf = run_optimizer(name, dtype, "tf", index_dtype)
    for what, a, b in [("weights", w_kernel, w_tf), *(("slot", a, b) for a, b in zip(s_kernel, s_tf))]:
        if (name, dtype) == ("ftrl-power", "float64"):
            # tf.pow in float64 is not correctly rounded; the C++ pow is (ftrl.h).
            np.testing.assert_allclose(a, b, rtol=1e-14, atol=0, err_msg=what)
        else:
            assert_bit_identical(a, b, f"{name} {dtype} {what}")
    w_ref, s_ref = reference(name, dtype)
    tol = TOLERANCE[dtype]
    scale = 1.0 + np.abs(w_ref)
    np.testing.assert_array_less(np.abs(as_f64(w_kernel) - w_ref), tol * 8 * scale + 1e-300)
    for got, want in zip(s_kernel, s_ref):
        np.testing.assert_array_less(np.abs(as_f64(got) - want),
                                     tol * 8 * (1.0 + np.abs(want)) + 1e-300)
    if not CASES[name][2]:  # lazy: untouched rows and their slots keep their start
        w0, _ = problem(dtype, zero_init=name.startswith("ftrl"))
        assert_bit_identical(w_kernel[9:], w0[9:], "untouched rows")


@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
@pytest.mark.parametrize("name", ["adagrad", "ftrl-l1-l2-beta", "adam-lazy"])
def test_index_dtypes_and_row_shapes(name, index_dtype, impl):
    got = run_optimizer(name, "float32", impl, index_dtype, row_shape=(2, 600))
    want = run_optimizer(name, "float32", impl, "int64" if index_dtype == "int32" else "int32",
                         row_shape=(2, 600))
    assert_bit_identical(got[0], want[0], "weights")
    w_ref, _ = reference(name, "float32", row_shape=(2, 600))
    np.testing.assert_allclose(got[0], w_ref, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["sgd", "adagrad", "ftrl-l1-l2-beta", "ftrl-power"])
def test_exact_rules_equal_the_dense_update(name, dtype, impl):
    sparse_w, sparse_s = run_optimizer(name, dtype, impl)
    cls, kwargs, _, _ = CASES[name]
    w0, grads = problem(dtype, zero_init=name.startswith("ftrl"))
    var = keras.Variable(w0, dtype=dtype)
    opt = cls(**kwargs)
    opt.build([var])
    for values, ix in grads:
        opt.apply([tf.convert_to_tensor(tf.IndexedSlices(values, ix, [ROWS, 3]))], [var])
    # Equal values (FTRL with l1 = 0 writes -0.0 for a row left at +0.0); only
    # tf.pow's vectorized tail rounding (ftrl.h) separates the fallback's powers.
    rtol = 1e-6 if (name, impl) == ("ftrl-power", "tf") else 0.0
    np.testing.assert_allclose(sparse_w, np.asarray(var), rtol=rtol, atol=0)
    for a, b in zip(sparse_s, opt.slots_for(var)):
        np.testing.assert_allclose(a, np.asarray(b), rtol=rtol, atol=0)


def test_without_lazy_the_dense_semantics_stay(impl):
    """Adam without lazy: rows not named at step 2 still move (momentum)."""
    w0, _ = problem("float32")
    var = keras.Variable(w0)
    opt = kerasopt.Adam(learning_rate=LR)
    for ix in ([3], [5]):
        opt.apply([tf.IndexedSlices(tf.ones([1, 3]), tf.constant(ix), tf.constant([ROWS, 3]))],
                  [var])
    w = np.asarray(var)
    assert not np.array_equal(w[3], w0[3]) and np.array_equal(w[9], w0[9])
    assert np.asarray(opt.slots_for(var)[0])[3, 0] == pytest.approx(0.09)  # decayed


@pytest.mark.parametrize("name", ["adagrad", "adam-lazy", "ftrl-l1-l2-beta"])
def test_empty_index_list(name, impl):
    cls, kwargs, _, _ = CASES[name]
    w0, _ = problem("float32")
    var = keras.Variable(w0)
    opt = cls(**kwargs)
    opt.build([var])
    before = [np.asarray(s).copy() for s in opt.slots_for(var)]
    grad = tf.IndexedSlices(tf.zeros([0, 3]), tf.zeros([0], tf.int64), tf.constant([ROWS, 3]))
    opt.apply([grad], [var])
    assert_bit_identical(np.asarray(var), w0, "weights")
    for a, b in zip(before, opt.slots_for(var)):
        assert_bit_identical(a, np.asarray(b), "slot")


@pytest.mark.parametrize("bad", [-1, ROWS, 10**6])
@pytest.mark.parametrize("name", ["adagrad", "adam-lazy", "ftrl-l1-l2-beta"])
def test_out_of_range_index_raises_and_writes_nothing(name, bad, impl):
    cls, kwargs, _, _ = CASES[name]
    w0, _ = problem("float32")
    var = keras.Variable(w0, name="table")
    opt = cls(**kwargs)
    opt.build([var])
    before = [np.asarray(s).copy() for s in opt.slots_for(var)]
    grad = tf.IndexedSlices(tf.ones([3, 3]), tf.constant([0, bad, 2]), tf.constant([ROWS, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"index {bad} \(at position 1 of indices\) is out of range "
                             rf"\[0, {ROWS}\) for variable 'table.*with {ROWS} rows"):
        opt.apply([grad], [var])
    assert_bit_identical(np.asarray(var), w0, "weights")
    for a, b in zip(before, opt.slots_for(var)):
        assert_bit_identical(a, np.asarray(b), "slot")


def test_wrong_values_shape_names_the_variable(impl):
    var = keras.Variable(np.zeros((ROWS, 3), np.float32), name="table")
    opt = kerasopt.Adagrad()
    grad = tf.IndexedSlices(tf.ones([2, 4]), tf.constant([0, 1]), tf.constant([ROWS, 4]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="'table.*values of shape"):
        opt.apply([grad], [var])


def test_op_checks_shapes_and_indices_itself():
    ops = require_kernel_library().ops
    var = tf.Variable(tf.zeros([ROWS, 3]), name="table")
    acc = tf.Variable(tf.zeros([ROWS, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="'table.*gradient values"):
        ops.kerasopt_sparse_apply_adagrad(features=[], var=var.handle, slots=[acc.handle],
                                          grad=tf.ones([2, 3]), indices=tf.constant([0, 1, 2]),
                                          learning_rate=0.1, step=1, epsilon=1e-7)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"index 11 \(at position 1"):
        ops.kerasopt_sparse_apply_adagrad(features=[], var=var.handle, slots=[acc.handle],
                                          grad=tf.ones([2, 3]), indices=tf.constant([0, 11]),
                                          learning_rate=0.1, step=1, epsilon=1e-7)


def _sgd_rows(features, features_on_sum=False, dtype=tf.float32, var=None):
    """Plain SGD (w -= lr * g) on rows 1, 4 (twice) and 6 of a zero table,
    through the sparse op with `features` (cc/kernels/step_features.h)."""
    ops = require_kernel_library().ops
    var = tf.Variable(tf.zeros([7, 2], dtype), name="table") if var is None else var
    values = tf.constant([[3.0, -0.25], [0.75, -2.0], [0.5, 0.5], [-4.0, 1.5]], dtype)
    ops.kerasopt_sparse_apply_sgd(
        var=var.handle, slots=[], grad=values, indices=tf.constant([4, 1, 4, 6]),
        learning_rate=tf.constant(1.0, tf.float64), step=tf.constant(1, tf.int64),
        momentum=tf.constant(0.0, tf.float64), features=tf.constant(features, tf.float64),
        features_on_sum=features_on_sum)
    return -var.numpy().astype(np.float64), values.numpy().astype(np.float64)


def _row_features(unscale=1.0, multiplier=1.0, divisor=1.0, clip=0.0, decay=0.0, ema=0.0,
                  overwrite=0.0, skip=0.0):
    return [unscale, multiplier, divisor, clip, decay, ema, overwrite, skip]


def test_sparse_op_takes_the_gradients_features_before_or_after_the_sum():
    """Keras's operations on an IndexedSlices (the loss scale's division,
    clip_by_norm's factors, clipvalue) act on each value before the duplicate
    rows are summed; global_clipnorm's scale (features_on_sum) on the sum."""
    require_kernel_library()
    rows = {1: [1], 4: [0, 2], 6: [3]}  # row -> positions of its values

    def expected(per_value, per_sum=lambda g: g):
        want = np.zeros((7, 2))
        for row, positions in rows.items():
            want[row] = per_sum(sum(per_value(values[p]) for p in positions))
        return want

    got, values = _sgd_rows(_row_features(clip=1.0))
    np.testing.assert_array_equal(got, expected(lambda v: np.clip(v, -1.0, 1.0)))
    got, _ = _sgd_rows(_row_features(unscale=4.0, multiplier=0.5, divisor=2.0))
    np.testing.assert_array_equal(got, expected(lambda v: v / 4.0 * 0.5 / 2.0))
    got, _ = _sgd_rows(_row_features(clip=1.0), features_on_sum=True)
    np.testing.assert_array_equal(got, expected(lambda v: v, lambda g: np.clip(g, -1.0, 1.0)))
    got, _ = _sgd_rows(_row_features(multiplier=0.25), features_on_sum=True)
    np.testing.assert_array_equal(got, expected(lambda v: v, lambda g: g * 0.25))
    got, _ = _sgd_rows([])  # a plain step
    np.testing.assert_array_equal(got, expected(lambda v: v))
    got, _ = _sgd_rows(_row_features(clip=1.0, skip=1.0))
    np.testing.assert_array_equal(got, 0.0)


@pytest.mark.parametrize("column,value", [(4, 0.1), (5, 0.9), (6, 1.0)])
def test_sparse_op_refuses_decay_and_ema(column, value):
    """Weight decay and the EMA act on every row, not on the rows named: the
    sparse op refuses them, naming the column, and writes nothing."""
    require_kernel_library()
    features = _row_features(clip=1.0)
    features[column] = value
    table = tf.Variable(tf.zeros([7, 2]), name="table")
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"column {column} is .*every row of a variable"):
        _sgd_rows(features, var=table)
    np.testing.assert_array_equal(table.numpy(), 0.0)


def test_sparse_op_refuses_features_on_16_bit_rows():
    require_kernel_library()
    with pytest.raises(tf.errors.InvalidArgumentError, match="float32 and float64 variables only"):
        _sgd_rows(_row_features(clip=1.0), dtype=tf.float16)


# --- determinism over thread counts (the pybind binding of the same driver) -----


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_driver_is_deterministic_over_thread_counts(dtype):
    from kerasopt import _kernels

    rng = np.random.default_rng(3)
    rows, width, n = 5000, 7, 20000
    indices = rng.integers(0, rows // 4, size=n).astype(np.int64)  # many duplicates
    values = (rng.standard_normal((n, width)) * 10.0 ** rng.uniform(-3, 3, (n, 1))).astype(
        np_dtype(dtype))
    results = []
    for threads in (1, 2, 3, 8):
        w = np.ones((rows, width), np_dtype(dtype))
        n_slot = np.full((rows, width), 0.1, np_dtype(dtype))
        z = np.zeros((rows, width), np_dtype(dtype))
        _kernels.sparse_ftrl(w, values, indices, n_slot, z, learning_rate=0.1,
                             learning_rate_power=-0.5, l1=0.01, l2=0.0, l2_shrinkage=0.0,
                             beta=0.0, num_threads=threads)
        results.append((w, n_slot, z))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert_bit_identical(a, b, "thread count")


def test_binding_matches_the_op():
    """The op (TensorFlow's thread pool) and the binding (1 thread) agree bit for bit."""
    from kerasopt import _kernels

    ops = require_kernel_library().ops
    rng = np.random.default_rng(4)
    indices = rng.integers(0, 300, size=2000).astype(np.int32)
    values = rng.standard_normal((2000, 16)).astype(np.float32)
    w0 = rng.standard_normal((300, 16)).astype(np.float32)
    var, m, v = tf.Variable(w0), tf.Variable(tf.zeros_like(w0)), tf.Variable(tf.zeros_like(w0))
    ops.kerasopt_sparse_apply_adam(features=[], var=var.handle, slots=[m.handle, v.handle], grad=values,
                                   indices=indices, learning_rate=0.01, beta_1=0.9, beta_2=0.999,
                                   epsilon=1e-7, step=tf.constant(3, tf.int64))
    w, m_np, v_np = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    _kernels.sparse_adam(w, values, indices, m_np, v_np, learning_rate=0.01, beta_1=0.9,
                         beta_2=0.999, epsilon=1e-7, step=3)
    assert_bit_identical(var.numpy(), w, "weights")
    assert_bit_identical(m.numpy(), m_np, "m")
    with pytest.raises(IndexError, match="index 300 is out of range"):
        _kernels.sparse_adagrad(w, values[:1], np.array([300], np.int32), m_np,
                                learning_rate=0.1, epsilon=1e-7)


# --- the lazy option ---------------------------------------------------------------


def test_lazy_config_round_trip():
    opt = kerasopt.Adam(lazy=True)
    config = opt.get_config()
    assert config["lazy"] is True
    assert kerasopt.Adam.from_config(config).lazy is True
    assert "lazy" not in kerasopt.Adam().get_config()  # the default config stays Keras's
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(restored, kerasopt.Adam) and restored.lazy


def test_lazy_errors():
    with pytest.raises(ValueError, match="Lamb has no lazy"):
        kerasopt.Lamb(lazy=True)
    with pytest.raises(ValueError, match="`lazy` must be True or False"):
        kerasopt.Adam(lazy="yes")


# --- keras.layers.Embedding in model.fit ------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: kerasopt.Ftrl(learning_rate=0.5, l1_regularization_strength=0.001),
    lambda: kerasopt.Adam(learning_rate=0.05, lazy=True),
    lambda: kerasopt.Adagrad(learning_rate=0.5),
], ids=["ftrl", "lazy-adam", "adagrad"])
def test_embedding_fit_updates_only_seen_rows(make, impl, monkeypatch):
    calls = []
    original = fused.FusedOptimizer._update_rows
    monkeypatch.setattr(fused.FusedOptimizer, "_update_rows",
                        lambda self, *a: calls.append(1) or original(self, *a))
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    vocabulary, seen = 1000, 200
    ids = rng.integers(0, seen, size=(512, 4))
    labels = (rng.standard_normal(seen)[ids].sum(axis=1) > 0).astype(np.float32)
    # Logistic regression over the ids: the logit is the sum of their weights.
    model = keras.Sequential([
        keras.Input((4,), dtype="int32"),
        keras.layers.Embedding(vocabulary, 1),
        keras.layers.Flatten(),
        keras.layers.Lambda(lambda x: keras.ops.sum(x, axis=1, keepdims=True)),
        keras.layers.Activation("sigmoid"),
    ])
    table_before = np.asarray(model.layers[0].embeddings).copy()
    model.compile(optimizer=make(), loss="binary_crossentropy")
    history = model.fit(ids, labels, batch_size=64, epochs=3, verbose=0)
    assert calls, "the IndexedSlices gradient did not take the row-wise path"
    table = np.asarray(model.layers[0].embeddings)
    assert_bit_identical(table[seen:], table_before[seen:], "rows never looked up")
    assert not np.array_equal(table[:seen], table_before[:seen])
    assert history.history["loss"][-1] < 0.95 * history.history["loss"][0]


def test_fallback_runs_under_xla():
    """Inside jit_compile the fallback serves (custom ops cannot), with the kernel's numbers."""
    require_kernel_library()
    results = []
    for jit in (False, True):
        w0, grads = problem("float32")
        var = keras.Variable(w0)
        opt = kerasopt.Adam(learning_rate=LR, lazy=True)
        opt.build([var])

        @tf.function(jit_compile=jit)
        def step(values, indices):
            opt.apply([tf.IndexedSlices(values, indices, tf.constant([ROWS, 3]))], [var])

        for values, ix in grads:
            step(tf.constant(values), tf.constant(ix))
        results.append(np.asarray(var))
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6, atol=1e-7)


def test_bench_sparse_runs(capsys):
    """python -m kerasopt.bench.sparse on a tiny table: every column runs and is reported."""
    require_kernel_library()
    from kerasopt.bench import sparse as bench_sparse

    bench_sparse.main(["--rows", "2000", "--width", "4", "--batch", "64", "--repeats", "2",
                       "--slow-repeats", "1", "--scaling-rows", "1000", "2000"])
    out = capsys.readouterr().out
    for column in ("keras.optimizers.Ftrl", "tf.raw_ops.ResourceSparseApplyFtrl",
                   "tf.raw_ops.ResourceSparseApplyAdagradV2", "kerasopt.Adam(lazy=True)",
                   "2,000 rows"):
        assert column in out


@pytest.mark.parametrize("name", ["sgd", "adagrad"])
def test_matches_keras_sparse_update_without_repeats(name, impl):
    """Keras's own sparse SGD/Adagrad apply repeats one by one; without repeats
    kerasopt's row-wise update gives the same float32 numbers."""
    results = []
    for cls in (getattr(keras.optimizers, {"sgd": "SGD", "adagrad": "Adagrad"}[name]),
                CASES[name][0]):
        w0, grads = problem("float32")
        var = keras.Variable(w0)
        opt = cls(learning_rate=LR)
        opt.build([var])
        for values, ix in grads:
            unique = np.unique(ix)
            opt.apply([tf.IndexedSlices(tf.constant(values[:len(unique)]), tf.constant(unique),
                                        tf.constant([ROWS, 3]))], [var])
        results.append(np.asarray(var))
    assert_bit_identical(results[1], results[0], f"{name} vs Keras")


def test_ctr_example_runs(monkeypatch, capsys):
    """examples/ctr_ftrl.py on a small stream: it trains and reports what it promises."""
    import runpy
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "ctr_ftrl.py"
    monkeypatch.setattr(sys, "argv", [str(example), "--train", "20000", "--test", "5000",
                                      "--table", "4096", "--values", "200", "--fields", "8"])
    runpy.run_path(str(example), run_name="__main__")
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "held-out AUC" in out and "exactly-zero weights" in out
    step_ms = float(out.split("kerasopt.Ftrl: median model.fit step ")[1].split(" ms")[0])
    assert step_ms > 0
    model_auc = float(out.split("held-out AUC:      model ")[1].split(",")[0])
    assert model_auc > 0.6


# --- every optimizer: the forms of IndexedSlices TensorFlow accepts -------------------------


@pytest.mark.parametrize("form", ["tuple", "list"])
@pytest.mark.parametrize("cls", optimizer_params())
def test_indices_and_dense_shape_as_python_sequences(cls, form, impl):
    """TensorFlow (and Keras's own optimizer tests) build IndexedSlices with
    Python tuples or lists as indices and dense_shape; they must give the bits
    of the tensor form."""
    sequence = tuple if form == "tuple" else list
    values = np.array([[0.5, -1.0], [2.0, 0.25]], np.float32)
    results = []
    for python_form in (False, True):
        variable = keras.Variable(np.arange(6, dtype=np.float32).reshape(3, 2), name="v")
        optimizer = cls()
        indices, dense_shape = sequence([0, 2]), sequence([3, 2])
        if not python_form:
            indices, dense_shape = tf.constant(indices), tf.constant(dense_shape)
        for _ in range(2):
            optimizer.apply_gradients([(tf.IndexedSlices(tf.constant(values), indices,
                                                         dense_shape), variable)])
        results.append([variable.numpy()] + [v.numpy() for v in optimizer.variables])
    for a, b in zip(*results, strict=True):
        assert_bit_identical(a, b, f"{cls.__name__} with {form} indices")
