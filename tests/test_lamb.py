"""Lamb: kernel, fallback and NumPy binding against the float64 reference
(tests/references.py), against each other, against Keras, across thread
counts (in tests/test_determinism.py), and as a Keras optimizer.

Tolerances against the reference, as in tests/test_ftrl.py: every path is
compared one step at a time from its own state before the step (widened to
float64), and |got - want| <= k * eps * (|want| + max|array|), with k = 4 for
16-bit storage (one rounding plus float32 compute) and k = 64 for float32 and
float64. The step is small against w (lr * ratio * r has norm lr * ||w||), so
the error is the rounding of w, relative to the array's scale. For 16-bit
variables the kernel computes r from the slots as stored (rounded), the
reference from the exact ones; that difference enters w scaled by lr only.

Keras parity. Keras sums float32 squares (ops.power(w, 2)) in float32 with
TensorFlow's tree reduction; kerasopt sums them in float64 in a fixed block
order (for determinism at any thread count), so the two trust ratios differ
by a few float32 ulps, and with them every element of the step. Over 100 steps
that moves each weight by up to about 2e-7 of the largest weight (measured:
<= 2.2e-7 at lr = 0.1), which is more than 1e-6 relative to an element that
happens to sit near 0. Hence atol = 1e-6 * max|w| next to rtol = 1e-6. The
slots (m, v do not involve the norms) and one-element variables (whose norms
are |w| and |r| exactly on both sides) are checked bit for bit.
"""

import inspect
import zlib

import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt import _kernels
import references  # tests/ is on sys.path (pytest prepends the test directory)
from conftest import graph_op_types

DTYPES = {
    "float16": (np.float16, 4 * 2.0 ** -11),
    "bfloat16": (ml_dtypes.bfloat16, 4 * 2.0 ** -8),
    "float32": (np.float32, 64 * 2.0 ** -24),
    "float64": (np.float64, 64 * 2.0 ** -53),
}
# (), (0,), small, and sizes spanning several 512-element blocks of the driver
# (the norms are summed per block): 513 = 2 blocks, 1400 = 3, 5000 = 10.
SHAPES = [(), (0,), (7,), (3, 5), (513,), (2, 700), (5000,)]
STEPS = 5

HYPER = [
    dict(learning_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    dict(learning_rate=0.1, beta_1=0.5, beta_2=0.9, epsilon=1e-3),
]


def _same_bits(a, b, what=""):
    a, b = np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1)
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=what)


def _close(got, want, eps, what):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    scale = np.max(np.abs(want)) if want.size else 0.0
    bound = eps * (np.abs(want) + scale)
    bad = ~(np.abs(got - want) <= bound)
    assert not bad.any(), (
        f"{what}: {bad.sum()} of {bad.size} differ, e.g. got {got[bad][:3]} want {want[bad][:3]}")


def _lr(hyper):
    # Keras hands the op the learning rate as a float32 variable's value.
    return float(np.float32(hyper["learning_rate"]))


def _reference(hyper, w, slots, g, step):
    return references.lamb(w, slots[0], slots[1], g, learning_rate=_lr(hyper),
                           beta_1=hyper["beta_1"], beta_2=hyper["beta_2"],
                           epsilon=hyper["epsilon"], step=step)


def _binding(hyper, w, slots, g, step):
    _kernels.lamb(w, g, slots[0], slots[1], learning_rate=_lr(hyper), beta_1=hyper["beta_1"],
                  beta_2=hyper["beta_2"], epsilon=hyper["epsilon"], step=step)


def _keras_steps(optimizer, dtype, grads, w0, implementation):
    """Runs `optimizer` on one variable; yields (w, slots) before and after each step."""
    var = keras.Variable(w0, dtype=dtype)
    optimizer.build([var])
    slots = optimizer.slots_for(kerasopt.optimizers.fused.tf_variable(var))

    def state():
        return np.array(var.numpy()), [np.array(s.numpy()) for s in slots]

    with kerasopt.implementation(implementation):
        for g in grads:
            before = state()
            optimizer.apply_gradients([(tf.constant(g), var)])
            yield before, state()


def _inputs(shape, np_dtype, seed):
    rng = np.random.default_rng(seed)
    w0 = np.asarray(rng.standard_normal(shape)).astype(np_dtype)
    grads = [np.asarray(rng.standard_normal(shape)).astype(np_dtype) for _ in range(STEPS)]
    return w0, grads


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("hyper_index", range(len(HYPER)))
def test_paths_match_reference_and_each_other(hyper_index, shape, dtype):
    hyper = HYPER[hyper_index]
    np_dtype, eps = DTYPES[dtype]
    w0, grads = _inputs(shape, np_dtype, seed=zlib.crc32(repr((hyper_index, shape, dtype)).encode()))
    results = {}
    for impl in ("kernel", "tf"):
        finals = []
        for step, ((w, slots), (w1, slots1)) in enumerate(
                _keras_steps(kerasopt.Lamb(**hyper), dtype, grads, w0, impl), start=1):
            assert w1.dtype == np_dtype and w1.shape == shape
            want = _reference(hyper, w, slots, grads[step - 1], step)
            _close(w1, want[0], eps, f"{impl} step {step} weight")
            for k, (s1, sw) in enumerate(zip(slots1, want[1:])):
                _close(s1, sw, eps, f"{impl} step {step} slot {k}")
            finals.append((w1, slots1))
        results[impl] = finals
    # The fallback sums the squares in the kernel's order: bit-identical, float64 included.
    for (wk, sk), (wf, sf) in zip(results["kernel"], results["tf"]):
        _same_bits(wk, wf, "kernel vs fallback weight")
        for a, b in zip(sk, sf):
            _same_bits(a, b, "kernel vs fallback slot")

    # The NumPy binding, from the same start, in place; the same bits as the kernel.
    w = w0.copy()
    slots = [np.zeros_like(w0), np.zeros_like(w0)]
    for step, g in enumerate(grads, start=1):
        before = (w.astype(np.float64), [s.astype(np.float64) for s in slots])
        _binding(hyper, w, slots, g, step)
        want = _reference(hyper, before[0], before[1], g, step)
        _close(w, want[0], eps, f"binding step {step} weight")
        _same_bits(w, results["kernel"][step - 1][0], "binding vs kernel")
        for a, b in zip(slots, results["kernel"][step - 1][1]):
            _same_bits(a, b, "binding vs kernel slot")


# ------------------------------------------------------------------ zero norms


@pytest.mark.parametrize("implementation", ["kernel", "tf"])
@pytest.mark.parametrize("case", ["zero_weights", "zero_gradient", "both"])
def test_zero_norms_give_ratio_one_like_keras(case, implementation):
    rng = np.random.default_rng(7)
    w0 = np.zeros(600, np.float32) if case in ("zero_weights", "both") else \
        rng.standard_normal(600).astype(np.float32)
    g = np.zeros(600, np.float32) if case in ("zero_gradient", "both") else \
        rng.standard_normal(600).astype(np.float32)
    out = []
    for make, impl in ((kerasopt.Lamb, implementation), (keras.optimizers.Lamb, None)):
        var = keras.Variable(w0)
        opt = make(learning_rate=0.01)
        if impl:
            with kerasopt.implementation(impl):
                opt.apply_gradients([(tf.constant(g), var)])
        else:
            opt.apply_gradients([(tf.constant(g), var)])
        out.append(var.numpy())
    # ratio = 1: the step is lr * r itself (r = 0 for a zero gradient: w unchanged).
    _same_bits(out[0], out[1], f"{case}: kerasopt vs Keras")
    if case != "zero_weights":
        _same_bits(out[0], w0, "a zero gradient leaves w as it is")


def test_binding_zero_variable_and_scalar():
    w = np.zeros(0, np.float32)
    _kernels.lamb(w, w.copy(), w.copy(), w.copy(), learning_rate=0.1, beta_1=0.9,
                  beta_2=0.999, epsilon=1e-7, step=1)
    w = np.array(2.0, np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    _kernels.lamb(w, np.array(-3.0), m, v, learning_rate=0.1, beta_1=0.9, beta_2=0.999,
                  epsilon=0.0, step=1)
    # r = g / |g| = -1, ratio = |w| / |r| = 2: w = 2 + 0.1 * 2.
    assert float(w) == pytest.approx(2.2, rel=1e-15)
    with pytest.raises(ValueError, match="step"):
        _kernels.lamb(w, np.array(1.0), m, v, learning_rate=0.1, beta_1=0.9, beta_2=0.999,
                      epsilon=0.0, step=0)


# LAMB's thread test (its norms with 1 and 2 intra-op threads, both paths):
# tests/test_determinism.py, in the interpreters of the other rules' one.


# ------------------------------------------------------------------ one op


@pytest.mark.parametrize("multi_tensor", [False, True])
def test_one_fused_op_per_variable(multi_tensor, monkeypatch):
    """One KerasoptApplyLamb per variable, or one KerasoptMultiApplyLamb for all."""
    monkeypatch.setenv("KERASOPT_MULTI_TENSOR", "1" if multi_tensor else "0")
    variables = [keras.Variable(np.ones(s, np.float32)) for s in [(3,), (4, 5), ()]]
    opt = kerasopt.Lamb()
    opt.build(variables)

    @tf.function
    def step(grads):
        opt.apply_gradients(zip(grads, variables))

    with kerasopt.implementation("kernel"):
        concrete = step.get_concrete_function(
            [tf.TensorSpec(v.shape, tf.float32) for v in variables])
    graph_def = concrete.graph.as_graph_def()
    nodes = [n.op for n in graph_def.node] + [
        n.op for f in graph_def.library.function for n in f.node_def]
    if multi_tensor:
        assert nodes.count("KerasoptMultiApplyLamb") == 1 and "KerasoptApplyLamb" not in nodes
    else:
        assert nodes.count("KerasoptApplyLamb") == len(variables)
    assert "Sum" not in graph_op_types(concrete)  # the norms are inside the op


# ------------------------------------------------------------------ Keras parity


def _run_parity(make, implementation, hyper, steps=100, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(37,), (600,), (4, 5), (), (1,)]
    inits = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(steps)]
    variables = [keras.Variable(w) for w in inits]
    optimizer = make(**hyper)
    optimizer.build(variables)

    @tf.function
    def apply(step_grads):
        optimizer.apply_gradients(zip(step_grads, variables))

    if implementation:
        with kerasopt.implementation(implementation):
            for step_grads in grads:
                apply([tf.constant(g) for g in step_grads])
    else:
        for step_grads in grads:
            apply([tf.constant(g) for g in step_grads])
    slots = {f"{i}:{v.path.rsplit('/', 1)[-1].rsplit('_', 1)[-1]}": v.numpy()
             for i, v in enumerate(optimizer.variables)}
    return [v.numpy() for v in variables], slots


_KERAS_PARITY = {}


def _keras_parity(hyper):
    """Keras's run of _run_parity, once per case: it does not depend on the
    kerasopt path the test is parametrized by."""
    key = repr(sorted(hyper.items()))
    if key not in _KERAS_PARITY:
        _KERAS_PARITY[key] = _run_parity(keras.optimizers.Lamb, None, hyper)
    return _KERAS_PARITY[key]


PARITY = [
    {},
    dict(learning_rate=0.01),
    dict(learning_rate=0.1, beta_1=0.5, beta_2=0.9, epsilon=1e-3),
    dict(learning_rate=0.01, weight_decay=0.05, clipnorm=1.0),
]


@pytest.mark.parametrize("implementation", ["kernel", "tf"])
@pytest.mark.parametrize("hyper", PARITY, ids=str)
def test_matches_keras_over_100_steps(hyper, implementation):
    ours_w, ours_s = _run_parity(kerasopt.Lamb, implementation, hyper)
    keras_w, keras_s = _keras_parity(hyper)
    for a, b in zip(ours_w, keras_w):  # atol: see the module docstring
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * float(np.max(np.abs(b))))
    for a, b in zip(ours_w[3:], keras_w[3:]):  # one element: |w| and |r| exactly
        _same_bits(a, b, "one-element variable vs Keras")
    assert sorted(ours_s) == sorted(keras_s)
    for key in keras_s:
        _same_bits(ours_s[key], keras_s[key], key)


# ------------------------------------------------------------------ Keras API


def test_signature_equals_keras():
    ours = inspect.signature(kerasopt.Lamb.__init__).parameters
    theirs = inspect.signature(keras.optimizers.Lamb.__init__).parameters
    assert [(p.name, p.default, p.kind) for p in ours.values()] == [
        (p.name, p.default, p.kind) for p in theirs.values()]


def test_exported():
    assert kerasopt.Lamb is kerasopt.optimizers.Lamb
    assert kerasopt.Lamb in kerasopt.optimizers.ALL
    assert "Lamb" in kerasopt.__all__ and "Lamb" in kerasopt.optimizers.__all__


def test_slot_names_equal_keras():
    ours, theirs = kerasopt.Lamb(), keras.optimizers.Lamb()
    var = keras.Variable(np.zeros(3, np.float32))
    for opt in (ours, theirs):
        opt.build([var])
    assert [v.name for v in ours.variables] == [v.name for v in theirs.variables]


def test_config_round_trip():
    theirs = keras.optimizers.Lamb().get_config()
    opt = kerasopt.Lamb()
    config = opt.get_config()
    assert set(config) == set(theirs)
    for key, value in theirs.items():
        if key != "name":
            assert config[key] == value, key
    clone = kerasopt.Lamb.from_config(config)
    assert type(clone) is kerasopt.Lamb and clone.get_config() == config
    # Saved under Keras's name (kerasopt/optimizers/saved_name.py). Keras
    # 3.15's optimizers.deserialize does not know Lamb; its saving library does.
    serialized = keras.saving.serialize_keras_object(opt)
    assert type(keras.saving.deserialize_keras_object(serialized)) is keras.optimizers.Lamb
    with kerasopt.patched("lamb"):
        restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is kerasopt.Lamb


def test_model_save_load_keeps_optimizer_state(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = rng.standard_normal((32, 1)).astype(np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(optimizer=kerasopt.Lamb(learning_rate=0.01), loss="mse")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    with kerasopt.patched("lamb"):
        loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is kerasopt.Lamb
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 8
    before = [(v.path.rsplit("_", 1)[-1], v.numpy()) for v in model.optimizer.variables]
    after = [(v.path.rsplit("_", 1)[-1], v.numpy()) for v in loaded.optimizer.variables]
    assert [k for k, _ in before] == [k for k, _ in after] and len(before) > 2
    for (key, b), (_, a) in zip(before, after):
        np.testing.assert_array_equal(a, b, err_msg=key)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


BAD = [
    dict(learning_rate=-0.1),
    dict(beta_1=1.0),
    dict(beta_1=-0.1),
    dict(beta_2=1.5),
    dict(beta_2=float("nan")),
    dict(epsilon=-1e-7),
    dict(epsilon="small"),
]


@pytest.mark.parametrize("kwargs", BAD, ids=str)
def test_bad_hyperparameters_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        kerasopt.Lamb(**kwargs)
