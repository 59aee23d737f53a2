"""The update rules against float64 references, on every path and dtype.

Three implementations of each rule are run for STEPS steps on the same random
problem (one variable per shape in conftest.SHAPES, fresh random gradients at
every step):

  (a) kerasopt's optimizer through ``opt.apply_gradients`` in a ``tf.function``
      on the kernel path (the fused C++ op),
  (b) the same on the fallback path (composed TF ops),
  (c) the pybind module ``kerasopt._kernels`` on NumPy arrays,

and each is compared with ``tests/references.py``.

Tolerances. For every element, the reference also gives an error scale
S = max_t |x_t| + sum_t |x_t - x_{t-1}| (the largest magnitude the value had,
plus how far it travelled); each step of a floating-point implementation
rounds quantities of those magnitudes, so the accumulated error is a small
multiple of eps * S:

* float64: |err| <= 1e-12 * S (observed: a few eps, ~1e-15).
* float32: |err| <= 1e-5 * S. The largest term is not storage rounding but
  Adam's bias correction computed in float32 as Keras does: beta_2 = 0.999 is
  itself rounded to float32 (relative error ~1.3e-8), and 1 - beta_2^t divides
  that by ~(1 - beta_2), so alpha_t is off by ~6e-6 relative (observed
  ~5e-6 * S for beta_2 = 0.999, ~5e-7 otherwise).
* float16 / bfloat16: the arithmetic is float32 and each stored value (weight,
  slots) is rounded once per step. Against the float64 reference with the same
  once-per-step rounding to the storage dtype (``round_to``), only the rare
  float32-vs-float64 difference that flips a rounding remains:
  |err| <= 4 * eps16 * S (observed <= 1.6). Against the unrounded float64
  reference, each of the N steps adds up to eps16/2 relative from rounding the
  weight, and the rounded slots perturb the updates by the same order:
  |err| <= N/2 * eps16 * S (observed <= ~5.5 eps16 * S for N = 40).

The kernel and the fallback compute in the same order and precision, so they
must also agree bit for bit, in every dtype; and the pybind module runs the
same C++ as the op, so it must agree with the kernel path bit for bit.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt import _kernels

import references as R
from conftest import (
    DTYPES,
    FLOAT16_DTYPES,
    SHAPES,
    as_f64,
    assert_bit_identical,
    finfo,
    graph_op_types,
    make_problem,
    np_dtype,
    require_kernel_library,
    rounder,
)

STEPS = 40

# name -> (rule, hyperparameters). Learning rates are large enough that every
# step moves the weights by many ulps, even in float64.
CASES = {
    "adam-default": ("adam", dict(learning_rate=0.05, beta_1=0.9, beta_2=0.999,
                                  epsilon=1e-7, amsgrad=False)),
    "adam-fast-betas": ("adam", dict(learning_rate=0.01, beta_1=0.5, beta_2=0.9,
                                     epsilon=1e-3, amsgrad=False)),
    "adam-beta1-0-big-eps": ("adam", dict(learning_rate=0.1, beta_1=0.0, beta_2=0.99,
                                          epsilon=0.1, amsgrad=False)),
    "amsgrad-default": ("adam", dict(learning_rate=0.05, beta_1=0.9, beta_2=0.999,
                                     epsilon=1e-7, amsgrad=True)),
    "amsgrad-fast-betas": ("adam", dict(learning_rate=0.01, beta_1=0.5, beta_2=0.9,
                                        epsilon=1e-3, amsgrad=True)),
    "amsgrad-beta1-0-big-eps": ("adam", dict(learning_rate=0.1, beta_1=0.0, beta_2=0.99,
                                             epsilon=0.1, amsgrad=True)),
    "sgd": ("sgd", dict(learning_rate=0.05, momentum=0.0, nesterov=False)),
    "sgd-lr0.3": ("sgd", dict(learning_rate=0.3, momentum=0.0, nesterov=False)),
    "momentum-0.9": ("sgd", dict(learning_rate=0.05, momentum=0.9, nesterov=False)),
    "momentum-0.5": ("sgd", dict(learning_rate=0.1, momentum=0.5, nesterov=False)),
    "nesterov-0.9": ("sgd", dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
    "nesterov-0.5": ("sgd", dict(learning_rate=0.1, momentum=0.5, nesterov=True)),
}
CASE_IDS = list(CASES)

KERNEL_OP = {"adam": "KerasoptApplyAdam", "sgd": "KerasoptApplySGD"}


def reference_hyperparameters(name):
    """The hyperparameters as the optimizers hold them.

    Keras keeps a constant learning rate in a float32 variable, so the rule
    sees float32(learning_rate) even for float64 weights; the references are
    given that same value so float64 can be checked at 1e-12.
    """
    rule, hp = CASES[name]
    return rule, dict(hp, learning_rate=float(np.float32(hp["learning_rate"])))


@functools.lru_cache(maxsize=None)
def problem(name, dtype):
    seed = CASE_IDS.index(name)
    return make_problem(SHAPES, dtype, STEPS, seed=seed)


@functools.lru_cache(maxsize=None)
def reference(name, dtype, rounded):
    """Per shape: (w, state, scale) from the float64 reference."""
    rule, hp = reference_hyperparameters(name)
    weights, grads = problem(name, dtype)
    round_to = rounder(dtype) if rounded else None
    out = []
    for i, w0 in enumerate(weights):
        out.append(R.run(rule, w0, [g[i] for g in grads], hp, round_to=round_to,
                         return_scale=True))
    return out


def make_optimizer(name):
    rule, hp = CASES[name]
    if rule == "adam":
        return kerasopt.Adam(**hp)
    return kerasopt.SGD(**hp)


@functools.lru_cache(maxsize=None)
def run_optimizer(name, dtype, path):
    """Runs kerasopt's optimizer for STEPS steps under implementation(path).

    Returns (weights, slots, op_types): final arrays in the storage dtype, the
    slots of each weight in the kernel's order, and the op types in the traced
    step.
    """
    rule, hp = CASES[name]
    weights, grads = problem(name, dtype)
    with kerasopt.implementation(path):
        opt = make_optimizer(name)
        variables = [keras.Variable(w, dtype=dtype, name=f"w{i}")
                     for i, w in enumerate(weights)]

        @tf.function
        def step(gradients):
            opt.apply_gradients(zip(gradients, variables))

        for step_grads in grads:
            tensors = [tf.constant(g) for g in step_grads]
            step(tensors)
        op_types = graph_op_types(step.get_concrete_function(tensors))
    assert int(opt.iterations.numpy()) == STEPS
    out_weights = [v.numpy() for v in variables]
    out_slots = [[s.numpy() for s in opt.slots_for(v)] for v in variables]
    return out_weights, out_slots, frozenset(op_types)


@functools.lru_cache(maxsize=None)
def run_pybind(name, dtype):
    """Runs kerasopt._kernels in place on NumPy arrays; returns (weights, slots)."""
    rule, hp = reference_hyperparameters(name)
    weights, grads = problem(name, dtype)
    out_weights, out_slots = [], []
    for i, w0 in enumerate(weights):
        w = w0.copy()
        slots = [np.zeros_like(w) for _ in R.slot_names(rule, hp)]
        for t, step_grads in enumerate(grads, start=1):
            g = step_grads[i]
            if rule == "adam":
                velocity_hat = slots[2] if hp["amsgrad"] else None
                _kernels.adam(w, g, slots[0], slots[1], velocity_hat,
                              learning_rate=hp["learning_rate"], beta_1=hp["beta_1"],
                              beta_2=hp["beta_2"], epsilon=hp["epsilon"], step=t,
                              amsgrad=hp["amsgrad"])
            else:
                _kernels.sgd(w, g, slots[0] if slots else None,
                             learning_rate=hp["learning_rate"], momentum=hp["momentum"],
                             nesterov=hp["nesterov"])
        out_weights.append(w)
        out_slots.append(slots)
    return out_weights, out_slots


def assert_within(got, want, scale, tol, what):
    """|got - want| <= tol * scale, element by element (all finite)."""
    got = as_f64(got)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    if got.size == 0:
        return
    assert np.all(np.isfinite(got)), f"{what}: non-finite values"
    err = np.abs(got - want)
    bad = err > tol * scale
    if bad.any():
        ratio = err / np.where(scale > 0, scale, np.inf)
        i = np.unravel_index(np.argmax(np.where(bad, ratio, -1)), err.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {err.size} elements off by more than "
            f"{tol:.3g} * scale; worst at {i}: got {got[i]!r}, reference {want[i]!r}, "
            f"|err|/scale = {ratio[i]:.3g}")


def check_against_references(name, dtype, weights, slots, label):
    rule, hp = reference_hyperparameters(name)
    names = R.slot_names(rule, hp)
    eps = float(finfo(dtype).eps)
    if dtype in FLOAT16_DTYPES:
        checks = [(True, 4 * eps, "rounded-storage reference"),
                  (False, STEPS / 2 * eps, "float64 reference")]
    else:
        checks = [(False, {"float32": 1e-5, "float64": 1e-12}[dtype], "float64 reference")]
    for rounded, tol, ref_label in checks:
        for i, shape in enumerate(SHAPES):
            w_ref, state_ref, scale = reference(name, dtype, rounded)[i]
            assert weights[i].dtype == np_dtype(dtype), (label, weights[i].dtype)
            assert weights[i].shape == shape
            where = f"{label} {name} {dtype} shape {shape} vs {ref_label}"
            assert_within(weights[i], w_ref, scale["w"], tol, f"{where}: weight")
            assert len(slots[i]) == len(names), (where, len(slots[i]), names)
            for slot, key in zip(slots[i], names):
                assert slot.dtype == np_dtype(dtype)
                assert_within(slot, state_ref[key], scale[key], tol, f"{where}: slot {key}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CASE_IDS)
def test_optimizer_matches_reference(name, dtype, impl):
    """(a) kernel path and (b) fallback path, through opt.apply_gradients."""
    weights, slots, op_types = run_optimizer(name, dtype, impl)
    kernel_op = KERNEL_OP[CASES[name][0]]
    if impl == "kernel":
        multi_op = kernel_op.replace("KerasoptApply", "KerasoptMultiApply")  # one launch for all
        assert kernel_op in op_types or multi_op in op_types, (
            f"the kernel path ran neither {kernel_op} nor {multi_op}")
    else:
        assert not any(t.startswith("Kerasopt") for t in op_types), (
            f"the fallback path ran a kerasopt op: {sorted(op_types)}")
    check_against_references(name, dtype, weights, slots, f"optimizer[{impl}]")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CASE_IDS)
def test_pybind_matches_reference(name, dtype):
    """(c) kerasopt._kernels on NumPy arrays."""
    weights, slots = run_pybind(name, dtype)
    check_against_references(name, dtype, weights, slots, "kerasopt._kernels")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CASE_IDS)
def test_kernel_and_fallback_bit_identical(name, dtype):
    """Same operations in the same order and precision: the same bits, every dtype."""
    require_kernel_library()
    k_weights, k_slots, _ = run_optimizer(name, dtype, "kernel")
    f_weights, f_slots, _ = run_optimizer(name, dtype, "tf")
    for i, shape in enumerate(SHAPES):
        assert_bit_identical(k_weights[i], f_weights[i], f"{name} {dtype} {shape} weight")
        for j, (a, b) in enumerate(zip(k_slots[i], f_slots[i], strict=True)):
            assert_bit_identical(a, b, f"{name} {dtype} {shape} slot {j}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CASE_IDS)
def test_pybind_bit_identical_to_kernel_op(name, dtype):
    """The NumPy binding runs the same C++ as the TF op (only the threading differs)."""
    require_kernel_library()
    k_weights, k_slots, _ = run_optimizer(name, dtype, "kernel")
    p_weights, p_slots = run_pybind(name, dtype)
    for i, shape in enumerate(SHAPES):
        assert_bit_identical(k_weights[i], p_weights[i], f"{name} {dtype} {shape} weight")
        for j, (a, b) in enumerate(zip(k_slots[i], p_slots[i], strict=True)):
            assert_bit_identical(a, b, f"{name} {dtype} {shape} slot {j}")


# --- the references and the problems are themselves sensitive -----------------------


def test_reference_adam_first_step_by_hand():
    # t = 1: m = (1 - b1) g, v = (1 - b2) g^2, alpha = lr sqrt(1 - b2) / (1 - b1),
    # so the step is lr * |g| sqrt(1 - b2) / (|g| sqrt(1 - b2) + eps) ~ lr.
    w, state = R.adam(np.array([1.0, -2.0]), np.array([0.5, -4.0]),
                      R.init_state("adam", np.zeros(2)), learning_rate=0.1,
                      beta_1=0.9, beta_2=0.999, epsilon=1e-8, step=1)
    np.testing.assert_allclose(state["m"], [0.05, -0.4], rtol=1e-15)
    np.testing.assert_allclose(state["v"], [0.00025, 0.016], rtol=1e-14)
    root = np.sqrt(0.001) * np.array([0.5, 4.0])
    np.testing.assert_allclose(w, [1.0 - 0.1 * root[0] / (root[0] + 1e-8),
                                   -2.0 + 0.1 * root[1] / (root[1] + 1e-8)], rtol=1e-15)


def test_reference_adam_second_step_by_hand():
    lr, b1, b2, eps = 0.01, 0.8, 0.9, 1e-3
    g1, g2 = 2.0, -1.0
    w, s = R.adam(3.0, g1, R.init_state("adam", 0.0), learning_rate=lr, beta_1=b1,
                  beta_2=b2, epsilon=eps, step=1)
    w, s = R.adam(w, g2, s, learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=eps, step=2)
    m = b1 * (1 - b1) * g1 + (1 - b1) * g2
    v = b2 * (1 - b2) * g1**2 + (1 - b2) * g2**2
    a1 = lr * np.sqrt(1 - b2) / (1 - b1)
    a2 = lr * np.sqrt(1 - b2**2) / (1 - b1**2)
    want = 3.0 - a1 * (1 - b1) * g1 / (np.sqrt((1 - b2) * g1**2) + eps) - a2 * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(w, want, rtol=1e-15)
    np.testing.assert_allclose(s["m"], m, rtol=1e-15)
    np.testing.assert_allclose(s["v"], v, rtol=1e-15)


def test_reference_amsgrad_uses_running_max():
    hp = dict(learning_rate=0.1, beta_1=0.0, beta_2=0.5, epsilon=0.0, amsgrad=True)
    w, s = R.run("adam", [0.0], [[4.0], [0.0]], hp)
    # v: 8 then 4; v_hat stays 8. Step 2 has m = 0, so only step 1 moves w.
    np.testing.assert_allclose(s["v"], [4.0])
    np.testing.assert_allclose(s["v_hat"], [8.0])
    w3, s3 = R.adam(w, np.array([1.0]), s, step=3, **hp)
    alpha = 0.1 * np.sqrt(1 - 0.5**3)
    v = 0.5 * 4.0 + 0.5 * 1.0
    np.testing.assert_allclose(s3["v_hat"], [8.0])
    np.testing.assert_allclose(w3, w - alpha * 1.0 / np.sqrt(8.0), rtol=1e-15)
    assert v < 8.0


def test_reference_sgd_by_hand():
    lr, mu = 0.1, 0.9
    w, s = R.run("sgd", 1.0, [2.0, -1.0], dict(learning_rate=lr, momentum=0.0))
    np.testing.assert_allclose(w, 1.0 - 0.2 + 0.1)
    assert s == {}
    # heavy ball: m1 = -0.2, w1 = 0.8; m2 = 0.9 * -0.2 + 0.1 = -0.08, w2 = 0.72
    w, s = R.run("sgd", 1.0, [2.0, -1.0], dict(learning_rate=lr, momentum=mu))
    np.testing.assert_allclose([w, s["m"]], [0.72, -0.08], rtol=1e-14)
    # nesterov: w1 = 1 + 0.9 * -0.2 - 0.2 = 0.62; w2 = 0.62 + 0.9 * -0.08 + 0.1 = 0.648
    w, s = R.run("sgd", 1.0, [2.0, -1.0], dict(learning_rate=lr, momentum=mu, nesterov=True))
    np.testing.assert_allclose([w, s["m"]], [0.648, -0.08], rtol=1e-14)


def test_references_are_pure():
    w, g = np.ones(3), np.full(3, 0.5)
    state = {"m": np.ones(3), "v": np.ones(3), "v_hat": np.full(3, 2.0)}
    saved = {k: v.copy() for k, v in state.items()}
    R.adam(w, g, state, learning_rate=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
           step=3, amsgrad=True)
    R.sgd(w, g, state, learning_rate=0.1, momentum=0.9, nesterov=True)
    np.testing.assert_array_equal(w, np.ones(3))
    np.testing.assert_array_equal(g, np.full(3, 0.5))
    for k in state:
        np.testing.assert_array_equal(state[k], saved[k])


VARIANT_PAIRS = [("amsgrad-default", "adam-default"), ("amsgrad-fast-betas", "adam-fast-betas"),
                 ("amsgrad-beta1-0-big-eps", "adam-beta1-0-big-eps"),
                 ("nesterov-0.9", "momentum-0.9"), ("nesterov-0.5", "momentum-0.5")]


@pytest.mark.parametrize(
    "dtype,a,b",
    [("float32", a, b) for a, b in VARIANT_PAIRS]
    # In 16 bits only the variants that differ by more than a few ulps can be
    # told apart (with beta_2 = 0.999, v barely ever decreases in 40 steps, so
    # AMSGrad changes little); the bit-identity tests cover the rest, since the
    # 16-bit types run the same templated rule as float32.
    + [("float16", "amsgrad-fast-betas", "adam-fast-betas"),
       ("float16", "nesterov-0.9", "momentum-0.9"),
       ("float16", "nesterov-0.5", "momentum-0.5")])
def test_problems_tell_the_variants_apart(dtype, a, b):
    """The random problems are sensitive enough that an implementation running
    the wrong variant (AMSGrad off, heavy ball instead of Nesterov) would fail
    the comparisons above."""
    eps = float(finfo(dtype).eps)
    tol = 1e-5 if dtype == "float32" else 4 * eps
    rounded = dtype != "float32"
    big = SHAPES.index((1025,))
    rule, hp_b = reference_hyperparameters(b)
    weights, grads = problem(a, dtype)
    w_b, _ = R.run(rule, weights[big], [g[big] for g in grads], hp_b,
                   round_to=rounder(dtype) if rounded else None)
    w_a, _, scale = reference(a, dtype, rounded)[big]
    assert np.max(np.abs(w_a - w_b) / scale["w"]) > 2 * tol, (a, b)


# --- large variables: the op shards the work over TensorFlow's thread pool --------------

LARGE_SHAPES = ((300_007,), (1000, 333))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["amsgrad-fast-betas", "nesterov-0.9"])
def test_large_variables_sharded_over_threads(name, dtype):
    """Large enough that the op splits each variable over several threads, at
    boundaries that are not multiples of the 512-element block: the result must
    not depend on the split (kernel == single-threaded pybind == fallback)."""
    require_kernel_library()
    rule, hp = reference_hyperparameters(name)
    weights, grads = make_problem(LARGE_SHAPES, dtype, steps=3, seed=7)
    results = {}
    for path in ("kernel", "tf"):
        with kerasopt.implementation(path):
            opt = make_optimizer(name)
            variables = [keras.Variable(w, dtype=dtype) for w in weights]

            @tf.function
            def step(gradients):
                opt.apply_gradients(zip(gradients, variables))

            for step_grads in grads:
                step([tf.constant(g) for g in step_grads])
            results[path] = [v.numpy() for v in variables] + [
                s.numpy() for v in variables for s in opt.slots_for(v)]
    pybind = []
    slots_all = []
    for i, w0 in enumerate(weights):
        w = w0.copy()
        slots = [np.zeros_like(w) for _ in R.slot_names(rule, hp)]
        for t, step_grads in enumerate(grads, start=1):
            if rule == "adam":
                _kernels.adam(w, step_grads[i], *slots, learning_rate=hp["learning_rate"],
                              beta_1=hp["beta_1"], beta_2=hp["beta_2"], epsilon=hp["epsilon"],
                              step=t, amsgrad=hp["amsgrad"])
            else:
                _kernels.sgd(w, step_grads[i], *slots, learning_rate=hp["learning_rate"],
                             momentum=hp["momentum"], nesterov=hp["nesterov"])
        pybind.append(w)
        slots_all.extend(slots)
    pybind += slots_all
    for j, (a, b, c) in enumerate(zip(results["kernel"], pybind, results["tf"], strict=True)):
        assert_bit_identical(a, b, f"{name} {dtype} array {j}: kernel vs pybind")
        assert_bit_identical(a, c, f"{name} {dtype} array {j}: kernel vs fallback")
