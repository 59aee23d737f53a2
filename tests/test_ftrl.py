"""Ftrl: kernel, fallback and NumPy binding against the float64 reference
(tests/references.py), against Keras, and as a Keras optimizer.

Tolerances against the reference. Every path is compared one step at a time:
the reference takes the path's own state before the step (widened to float64)
and the two results are compared, so errors do not accumulate over steps and
the bound can be tight. A step computes in float32 (float64 for float64
variables) and rounds once to the storage type, so the error is about one ulp
of the storage type (bfloat16 2^-8, float16 2^-11) plus the float32 compute
error. The rule has cancellations (n_new^p - n^p and clip(z) - z), so the bound is relative to the size of
the quantities involved: |got - want| <= k * eps * (|want| + max|array|), with
k = 4 for 16-bit storage (one rounding plus compute), k = 64 for float32 and
float64 (a handful of roundings, each amplified at most by those cancellations).
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

DTYPES = {
    "float16": (np.float16, 4 * 2.0 ** -11),
    "bfloat16": (ml_dtypes.bfloat16, 4 * 2.0 ** -8),
    "float32": (np.float32, 64 * 2.0 ** -24),
    "float64": (np.float64, 64 * 2.0 ** -53),
}
# (), (0,), small, and sizes crossing the 512-element block of the CPU driver.
SHAPES = [(), (0,), (7,), (3, 5), (513,), (2, 700)]
STEPS = 6


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


# ------------------------------------------------------------------ algorithms


class Spec:
    """How to drive one algorithm through the three paths and the reference."""

    def __init__(self, cls, hyper, reference, binding, slot_init, grad_scale=1.0):
        self.cls, self.hyper, self.reference = cls, hyper, reference
        self.binding, self.slot_init, self.grad_scale = binding, slot_init, grad_scale

    def optimizer(self):
        return self.cls(**self.hyper)


def _ftrl_reference(hyper):
    def ref(w, slots, g, step):
        return references.ftrl(
            w, slots[0], slots[1], g, learning_rate=float(np.float32(hyper["learning_rate"])),
            learning_rate_power=hyper["learning_rate_power"],
            l1=hyper["l1_regularization_strength"], l2=hyper["l2_regularization_strength"],
            l2_shrinkage=hyper["l2_shrinkage_regularization_strength"], beta=hyper["beta"])
    return ref


def _ftrl_binding(hyper):
    def run(w, slots, g, step):
        _kernels.ftrl(w, g, slots[0], slots[1], learning_rate=float(np.float32(hyper["learning_rate"])),
                      learning_rate_power=hyper["learning_rate_power"],
                      l1=hyper["l1_regularization_strength"],
                      l2=hyper["l2_regularization_strength"],
                      l2_shrinkage=hyper["l2_shrinkage_regularization_strength"],
                      beta=hyper["beta"])
    return run


FTRL_HYPER = [
    dict(learning_rate=0.1, learning_rate_power=-0.5, initial_accumulator_value=0.1,
         l1_regularization_strength=0.0, l2_regularization_strength=0.0,
         l2_shrinkage_regularization_strength=0.0, beta=0.0),
    dict(learning_rate=0.05, learning_rate_power=-0.7, initial_accumulator_value=0.5,
         l1_regularization_strength=0.01, l2_regularization_strength=0.02,
         l2_shrinkage_regularization_strength=0.03, beta=0.1),
    dict(learning_rate=0.2, learning_rate_power=0.0, initial_accumulator_value=0.0,
         l1_regularization_strength=0.05, l2_regularization_strength=0.0,
         l2_shrinkage_regularization_strength=0.0, beta=0.5),
]


def ftrl_spec(hyper):
    return Spec(kerasopt.Ftrl, hyper, _ftrl_reference(hyper), _ftrl_binding(hyper),
                slot_init=[hyper["initial_accumulator_value"], 0.0])


SPECS = {f"ftrl{i}": ftrl_spec(h) for i, h in enumerate(FTRL_HYPER)}


# ------------------------------------------------------------------ drivers


def _keras_steps(optimizer, shape, dtype, grads, w0, implementation=None):
    """Runs `optimizer` on one variable; yields (w, slots) before and after each step."""
    var = keras.Variable(w0, dtype=dtype)
    optimizer.build([var])
    slots = optimizer.slots_for(kerasopt.optimizers.fused.tf_variable(var))

    def state():
        return np.array(var.numpy()), [np.array(s.numpy()) for s in slots]

    ctx = kerasopt.implementation(implementation) if implementation else _null()
    with ctx:
        for g in grads:
            before = state()
            optimizer.apply_gradients([(tf.constant(g), var)])
            yield before, state()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _inputs(shape, np_dtype, spec, seed):
    rng = np.random.default_rng(seed)
    w0 = np.asarray(rng.standard_normal(shape)).astype(np_dtype)
    grads = [np.asarray(spec.grad_scale * rng.standard_normal(shape)).astype(np_dtype)
             for _ in range(STEPS)]
    return w0, grads


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(SPECS))
def test_paths_match_reference_and_each_other(name, shape, dtype):
    spec = SPECS[name]
    np_dtype, eps = DTYPES[dtype]
    w0, grads = _inputs(shape, np_dtype, spec, seed=zlib.crc32(repr((name, shape, dtype)).encode()))
    results = {}
    for impl in ("kernel", "tf"):
        finals = []
        for step, ((w, slots), (w1, slots1)) in enumerate(
                _keras_steps(spec.optimizer(), shape, dtype, grads, w0, impl), start=1):
            assert w1.dtype == np_dtype and w1.shape == shape
            want = spec.reference(w, slots, grads[step - 1], step)
            _close(w1, want[0], eps, f"{impl} step {step} weight")
            for k, (s1, sw) in enumerate(zip(slots1, want[1:])):
                _close(s1, sw, eps, f"{impl} step {step} slot {k}")
            finals.append((w1, slots1))
            if step == 1:
                initial_slots = slots  # as the optimizer built them (Keras's initializers)
        results[impl] = finals
    # Kernel and fallback compute the same thing in the same order: bit-identical.
    # Except Ftrl's general power in float64: TensorFlow's float64 pow and the C
    # library's differ in the last bits, so there a few ulps.
    same = _same_bits
    if spec.cls is kerasopt.Ftrl and dtype == "float64" and \
            spec.hyper["learning_rate_power"] not in (-0.5, 0.0):
        def same(a, b, what):
            scale = float(np.max(np.abs(b))) if b.size else 0.0
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13 * scale, err_msg=what)
    for (wk, sk), (wf, sf) in zip(results["kernel"], results["tf"]):
        same(wk, wf, "kernel vs fallback weight")
        for a, b in zip(sk, sf):
            same(a, b, "kernel vs fallback slot")

    # The NumPy binding, from the same start, in place; the same bits as the kernel.
    w = w0.copy()
    slots = [np.array(s, copy=True) for s in initial_slots]
    for step, g in enumerate(grads, start=1):
        before = (w.astype(np.float64), [s.astype(np.float64) for s in slots])
        spec.binding(w, slots, g, step)
        want = spec.reference(before[0], before[1], g, step)
        _close(w, want[0], eps, f"binding step {step} weight")
        same(w, results["kernel"][step - 1][0], "binding vs kernel")


# ------------------------------------------------------------------ Keras parity


def _keras_twin(cls):
    return getattr(keras.optimizers, cls.__name__)


def _run_parity(make, implementation, hyper, steps=100, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(37,), (600,), (4, 5)]
    inits = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(steps)]
    variables = [keras.Variable(w) for w in inits]
    optimizer = make(**hyper)
    optimizer.build(variables)
    ctx = kerasopt.implementation(implementation) if implementation else _null()
    with ctx:
        for step_grads in grads:
            optimizer.apply_gradients(
                [(tf.constant(g), v) for g, v in zip(step_grads, variables)])
    # In build order, keyed by position and slot kind (names carry unique numbers).
    slots = {f"{i}:{v.path.rsplit('/', 1)[-1].rsplit('_', 1)[-1]}": v.numpy() for i, v in enumerate(optimizer.variables)}
    return [v.numpy() for v in variables], slots


_KERAS_PARITY = {}


def _keras_parity(cls, hyper):
    """Keras's run of _run_parity, once per case: it does not depend on the
    kerasopt path the test is parametrized by."""
    key = (cls, repr(sorted(hyper.items())))
    if key not in _KERAS_PARITY:
        _KERAS_PARITY[key] = _run_parity(_keras_twin(cls), None, hyper)
    return _KERAS_PARITY[key]


PARITY = [(kerasopt.Ftrl, h) for h in FTRL_HYPER] + [
    (kerasopt.Ftrl, dict(l1_regularization_strength=0.5, learning_rate=0.5)),
    (kerasopt.Ftrl, {}),
]


@pytest.mark.parametrize("implementation", ["kernel", "tf"])
@pytest.mark.parametrize("cls,hyper", PARITY, ids=lambda x: getattr(x, "__name__", None) or str(len(x)))
def test_matches_keras_over_100_steps(cls, hyper, implementation):
    ours_w, ours_s = _run_parity(cls, implementation, hyper)
    keras_w, keras_s = _keras_parity(cls, hyper)
    # Ftrl: Keras's TensorFlow pow is not correctly rounded and ours is; an
    # element whose value comes out of a cancellation (n_new^p - n^p, or
    # clip(z) - z near |z| = l1) can then differ by more than 1e-6 relative
    # to itself while being within 1e-6 of the array's scale: that is the atol.
    # With p = 0 (no pow) the results are bit-identical (FTRL_HYPER[2]).
    def atol(b):
        return 1e-6 * float(np.max(np.abs(b))) if cls is kerasopt.Ftrl and b.size else 0.0

    for a, b in zip(ours_w, keras_w):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=atol(b))
    assert sorted(ours_s) == sorted(keras_s)
    for key in keras_s:
        np.testing.assert_allclose(ours_s[key], keras_s[key], rtol=1e-6, atol=atol(keras_s[key]),
                                   err_msg=key)
    if cls is kerasopt.Ftrl and hyper.get("learning_rate_power", -0.5) == 0.0:
        for a, b in zip(ours_w, keras_w):
            _same_bits(a, b, "Ftrl with learning_rate_power=0 vs Keras")


# ------------------------------------------------------------------ Ftrl specifics


@pytest.mark.parametrize("implementation", ["kernel", "tf"])
def test_ftrl_strong_l1_gives_exact_zeros(implementation):
    rng = np.random.default_rng(3)
    var = keras.Variable(rng.standard_normal((50,)).astype(np.float32))
    opt = kerasopt.Ftrl(learning_rate=0.1, l1_regularization_strength=1000.0)
    with kerasopt.implementation(implementation):
        for _ in range(3):
            opt.apply_gradients([(tf.constant(rng.standard_normal(50).astype(np.float32)), var)])
    w = var.numpy()
    assert np.all(w == 0.0) and not np.signbit(w).any()
    # ... while weak L1 leaves them non-zero.
    var2 = keras.Variable(rng.standard_normal((50,)).astype(np.float32))
    opt2 = kerasopt.Ftrl(learning_rate=0.1, l1_regularization_strength=1e-6)
    with kerasopt.implementation(implementation):
        opt2.apply_gradients([(tf.constant(rng.standard_normal(50).astype(np.float32)), var2)])
    assert np.count_nonzero(var2.numpy()) == 50


def test_ftrl_binding_strong_l1_gives_exact_zeros():
    rng = np.random.default_rng(4)
    w = rng.standard_normal(1000).astype(np.float32)
    n, z = np.full_like(w, 0.1), np.zeros_like(w)
    _kernels.ftrl(w, rng.standard_normal(1000).astype(np.float32), n, z, learning_rate=0.1,
                  learning_rate_power=-0.5, l1=1000.0, l2=0.0, l2_shrinkage=0.0, beta=0.0)
    assert np.all(w == 0.0)


# ------------------------------------------------------------------ Keras API

ALL_G3 = [kerasopt.Ftrl]


@pytest.mark.parametrize("cls", ALL_G3, ids=lambda c: c.__name__)
def test_signature_equals_keras(cls):
    ours = inspect.signature(cls.__init__).parameters
    theirs = inspect.signature(_keras_twin(cls).__init__).parameters
    assert [(p.name, p.default, p.kind) for p in ours.values()] == [
        (p.name, p.default, p.kind) for p in theirs.values()]


@pytest.mark.parametrize("cls", ALL_G3, ids=lambda c: c.__name__)
def test_config_round_trip(cls):
    theirs = _keras_twin(cls)().get_config()
    opt = cls()
    config = opt.get_config()
    assert set(config) == set(theirs)
    for key, value in theirs.items():
        if key != "name":
            assert config[key] == value, key
    clone = cls.from_config(config)
    assert type(clone) is cls and clone.get_config() == config
    with kerasopt.patched():  # saved under Keras's name (kerasopt/optimizers/saved_name.py)
        restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(restored) is cls


@pytest.mark.parametrize("cls", ALL_G3, ids=lambda c: c.__name__)
def test_model_save_load_keeps_optimizer_state(cls, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = rng.standard_normal((32, 1)).astype(np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(optimizer=cls(learning_rate=0.01), loss="mse")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    with kerasopt.patched():  # saved under Keras's name
        loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is cls
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 8
    # In build order (layer names in the paths may be renumbered on load).
    before = [(v.path.rsplit("_", 1)[-1], v.numpy()) for v in model.optimizer.variables]
    after = [(v.path.rsplit("_", 1)[-1], v.numpy()) for v in loaded.optimizer.variables]
    assert [k for k, _ in before] == [k for k, _ in after] and len(before) > 2
    for (key, b), (_, a) in zip(before, after):
        np.testing.assert_array_equal(a, b, err_msg=key)
    # Training continues identically from the restored state.
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


BAD = [
    (kerasopt.Ftrl, dict(learning_rate=-0.1)),
    (kerasopt.Ftrl, dict(learning_rate_power=0.5)),
    (kerasopt.Ftrl, dict(initial_accumulator_value=-1.0)),
    (kerasopt.Ftrl, dict(l1_regularization_strength=-1.0)),
    (kerasopt.Ftrl, dict(l2_regularization_strength=-1.0)),
    (kerasopt.Ftrl, dict(l2_shrinkage_regularization_strength=-0.1)),
    (kerasopt.Ftrl, dict(beta=-1.0)),
    (kerasopt.Ftrl, dict(l1_regularization_strength=float("nan"))),
]


@pytest.mark.parametrize("cls,kwargs", BAD, ids=lambda x: getattr(x, "__name__", None) or str(x))
def test_bad_hyperparameters_raise(cls, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        cls(**kwargs)


# ------------------------------------------------------------------ sparse gradients, schedules


def _embedding_steps(optimizer, steps=6):
    """Steps on a 20 x 3 table with IndexedSlices gradients touching a few rows."""
    rng = np.random.default_rng(3)
    table = keras.Variable(np.zeros((20, 3), np.float32), name="table")
    for step in range(steps):
        rows = rng.choice(20, size=4, replace=False).astype(np.int32)
        values = rng.standard_normal((4, 3)).astype(np.float32)
        optimizer.apply_gradients([(tf.IndexedSlices(tf.constant(values), tf.constant(rows),
                                                     tf.constant([20, 3])), table)])
    return table.numpy()


def _schedule():
    return keras.optimizers.schedules.ExponentialDecay(0.5, decay_steps=1, decay_rate=0.5)


@pytest.mark.parametrize("implementation", ["kernel", "tf"])
def test_sparse_steps_under_a_schedule_equal_keras(implementation):
    """With a learning-rate schedule a dense FTRL step moves untouched rows (w
    depends on the rate), so the row-wise step is not exact: kerasopt must
    take the dense step and give Keras's numbers."""
    hyper = dict(l1_regularization_strength=0.01, l2_regularization_strength=0.1)
    want = _embedding_steps(keras.optimizers.Ftrl(learning_rate=_schedule(), **hyper))
    with kerasopt.implementation(implementation):
        got = _embedding_steps(kerasopt.Ftrl(learning_rate=_schedule(), **hyper))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_sparse_steps_at_a_constant_rate_stay_row_wise():
    assert kerasopt.Ftrl(learning_rate=0.1).sparse_rows_exact()
    assert not kerasopt.Ftrl(learning_rate=_schedule()).sparse_rows_exact()
    assert not kerasopt.Ftrl(learning_rate=lambda: 0.1).sparse_rows_exact()
    # lazy=True asks for the row-wise step under a schedule: untouched rows stay.
    optimizer = kerasopt.Ftrl(learning_rate=_schedule(), lazy=True)
    table = keras.Variable(np.ones((5, 2), np.float32))
    optimizer.apply_gradients([(tf.IndexedSlices(tf.ones((1, 2)), tf.constant([1]),
                                                 tf.constant([5, 2])), table)])
    np.testing.assert_array_equal(table.numpy()[[0, 2, 3, 4]], 1.0)
