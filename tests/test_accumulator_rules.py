"""RMSprop, Adagrad and Adadelta: kernel, fallback and NumPy binding against the
float64 references (tests/references.py), against Keras, and as Keras objects.

How the rule tests compare (``test_rule_matches_reference_step_by_step``)
------------------------------------------------------------------------
Each step starts from the state the kernel path holds (so errors cannot
compound), and the three implementations are checked separately:

* the fallback path and ``kerasopt._kernels`` must equal the kernel path BIT FOR
  BIT (same operations, same order, same precision);
* the kernel path must equal the float64 reference, applied to the same state
  and gradient, within ``C * eps(T) * (|before| + |after|) + tiny(T)``
  element-wise. ``|before| + |after|`` bounds every operand of the last
  add/subtract (the only place where cancellation happens), so that is the
  scale of any rounding error. float64 and float32 compute in their own
  precision: a handful of roundings per step, C = 8. float16 and bfloat16
  compute in float32 and round once to storage: at most half an ulp of T
  (<= eps(T)/2 relative) plus float32 noise, C = 1. ``tiny(T)`` is T's
  smallest subnormal, the absolute spacing where values underflow (Adadelta's
  delta accumulator is ~1e-7 and subnormal in float16).

``test_rule_trajectory`` then runs ``_kernels`` for many steps WITHOUT
re-syncing, in float64 and float32, with the bound growing linearly in steps.
"""

from __future__ import annotations

import inspect

import keras
import ml_dtypes
import zlib

import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt import _kernels, op_library
import references  # tests/ is on sys.path (pytest prepends the test directory)

# ----------------------------------------------------------------- the table

SHAPES = [(), (0,), (5,), (3, 7), (700,), (2, 1030)]  # 700, 2060 cross the 512 block
DTYPES = ["float16", "bfloat16", "float32", "float64"]
NP_DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16,
             "float32": np.float32, "float64": np.float64}

# (algorithm, hyperparameters); learning_rate included.
CONFIGS = [
    ("RMSprop", dict(learning_rate=0.01, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False)),
    ("RMSprop", dict(learning_rate=0.01, rho=0.8, momentum=0.9, epsilon=1e-6, centered=False)),
    ("RMSprop", dict(learning_rate=0.02, rho=0.9, momentum=0.0, epsilon=1e-7, centered=True)),
    ("RMSprop", dict(learning_rate=0.01, rho=0.95, momentum=0.5, epsilon=1e-4, centered=True)),
    ("Adagrad", dict(learning_rate=0.1, initial_accumulator_value=0.1, epsilon=1e-7)),
    ("Adagrad", dict(learning_rate=0.05, initial_accumulator_value=0.0, epsilon=1e-3)),
    ("Adadelta", dict(learning_rate=1.0, rho=0.95, epsilon=1e-6)),  # Zeiler's method
    ("Adadelta", dict(learning_rate=0.5, rho=0.9, epsilon=1e-7)),
]
CONFIG_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CONFIGS)]


def _split(name, hp):
    hp = dict(hp)
    return hp.pop("learning_rate"), hp


def reference_step(name, hp, w, g, slots):
    """The float64 reference on float64 arrays; returns (w, slots) in the op's slot order."""
    lr, hp = _split(name, hp)
    lr = float(np.float32(lr))  # Keras keeps the learning rate in a float32 variable
    if name == "RMSprop":
        rest = list(slots[1:])
        m = rest.pop(0) if hp["momentum"] > 0 else None
        a = rest.pop(0) if hp["centered"] else None
        w, v, m, a = references.rmsprop(w, g, slots[0], m, a, learning_rate=lr, **hp)
        return w, [v] + ([m] if hp["momentum"] > 0 else []) + ([a] if hp["centered"] else [])
    if name == "Adagrad":
        w, acc = references.adagrad(w, g, slots[0], learning_rate=lr, epsilon=hp["epsilon"])
        return w, [acc]
    w, eg, edx = references.adadelta(w, g, *slots, learning_rate=lr, **hp)
    return w, [eg, edx]


def kernels_step(name, hp, w, g, slots):
    """kerasopt._kernels on NumPy arrays, in place."""
    lr, hp = _split(name, hp)
    lr = float(np.float32(lr))
    if name == "RMSprop":
        rest = list(slots[1:])
        m = rest.pop(0) if hp["momentum"] > 0 else None
        a = rest.pop(0) if hp["centered"] else None
        _kernels.rmsprop(w, g, slots[0], m, a, learning_rate=lr, **hp)
    elif name == "Adagrad":
        _kernels.adagrad(w, g, slots[0], learning_rate=lr, epsilon=hp["epsilon"])
    else:
        _kernels.adadelta(w, g, *slots, learning_rate=lr, **hp)


def _state(optimizer, variables):
    """(weights, slots per variable) as NumPy copies, slots in the op's order."""
    out = []
    for v in variables:
        slots = optimizer.slots_for(kerasopt.optimizers.fused.tf_variable(v))
        out.append((np.array(v.numpy()), [np.array(s.numpy()) for s in slots]))
    return out


def _tolerance_check(actual, ref, before, dtype, what, extra_scale=0.0):
    np_dtype = NP_DTYPES[dtype]
    info = ml_dtypes.finfo(np_dtype)
    c = 1.0 if dtype in ("float16", "bfloat16") else 8.0
    actual = actual.astype(np.float64)
    scale = np.abs(before) + np.abs(ref) + extra_scale
    bound = c * float(info.eps) * scale + float(info.smallest_subnormal)
    err = np.abs(actual - ref)
    bad = ~(err <= bound)
    assert not bad.any(), (
        f"{what}: {bad.sum()} of {bad.size} elements off, worst |err|={err.max():.3g}, "
        f"e.g. actual={actual[bad][:3]} ref={ref[bad][:3]}")


def _bit_equal(a, b, what):
    assert a.dtype == b.dtype and a.shape == b.shape, what
    np.testing.assert_array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8),
                                  err_msg=what)


# --------------------------------------------------------- (a) rule vs reference


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,hp", CONFIGS, ids=CONFIG_IDS)
def test_rule_matches_reference_step_by_step(name, hp, dtype):
    steps = 8
    # A stable seed per case (hash() of a str changes with PYTHONHASHSEED).
    rng = np.random.default_rng(zlib.crc32(repr((name, dtype, sorted(hp.items()))).encode()))
    np_dtype = NP_DTYPES[dtype]
    init = [np.asarray(rng.standard_normal(s)).astype(np_dtype) for s in SHAPES]
    kernel_vars = [keras.Variable(x, dtype=dtype, name=f"w{i}") for i, x in enumerate(init)]
    fallback_vars = [keras.Variable(x, dtype=dtype, name=f"w{i}") for i, x in enumerate(init)]
    kernel_opt = getattr(kerasopt, name)(**hp)
    fallback_opt = getattr(kerasopt, name)(**hp)
    kernel_opt.build(kernel_vars)
    fallback_opt.build(fallback_vars)

    for step in range(steps):
        # Gradients of growing and shrinking size, so slots see a spread of magnitudes.
        scale = 10.0 ** rng.uniform(-2, 1)
        grads = [np.asarray(scale * rng.standard_normal(s)).astype(np_dtype) for s in SHAPES]
        before = _state(kernel_opt, kernel_vars)
        with kerasopt.implementation("kernel"):
            kernel_opt.apply_gradients([(tf.constant(g), v) for g, v in zip(grads, kernel_vars)])
        with kerasopt.implementation("tf"):
            fallback_opt.apply_gradients([(tf.constant(g), v) for g, v in zip(grads, fallback_vars)])
        after = _state(kernel_opt, kernel_vars)
        after_fallback = _state(fallback_opt, fallback_vars)

        for i, g in enumerate(grads):
            where = f"{name} {dtype} shape {SHAPES[i]} step {step}"
            (w0, slots0), (w1, slots1), (wf, slotsf) = before[i], after[i], after_fallback[i]
            # fallback == kernel, bit for bit
            _bit_equal(wf, w1, f"fallback weight, {where}")
            for k, (sf, s1) in enumerate(zip(slotsf, slots1)):
                _bit_equal(sf, s1, f"fallback slot {k}, {where}")
            # _kernels == kernel, bit for bit
            w_np, slots_np = w0.copy(), [s.copy() for s in slots0]
            kernels_step(name, hp, w_np, g.copy(), slots_np)
            _bit_equal(w_np, w1, f"_kernels weight, {where}")
            for k, (sn, s1) in enumerate(zip(slots_np, slots1)):
                _bit_equal(sn, s1, f"_kernels slot {k}, {where}")
            # kernel vs the float64 reference from the same state
            f64 = lambda x: x.astype(np.float64)  # noqa: E731
            w_ref, slots_ref = reference_step(name, hp, f64(w0), f64(g), [f64(s) for s in slots0])
            # With momentum, the step m = momentum*m + lr*g/sqrt(v + eps) can be a
            # small difference of terms as large as the old momentum: rounding
            # errors scale with those terms, not with the result.
            extra = 0.0
            if name == "RMSprop" and hp["momentum"] > 0:
                extra = np.abs(f64(slots0[1])) + np.abs(slots_ref[1])
            _tolerance_check(w1, w_ref, f64(w0), dtype, f"weight, {where}", extra)
            assert len(slots_ref) == len(slots1)
            for k, (s1, sr, s0) in enumerate(zip(slots1, slots_ref, slots0)):
                _tolerance_check(s1, sr, f64(s0), dtype, f"slot {k}, {where}")
    assert int(kernel_opt.iterations.numpy()) == steps


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,hp", CONFIGS, ids=CONFIG_IDS)
def test_rule_trajectory(name, hp, dtype):
    """_kernels for many steps without re-syncing: errors may compound, linearly at most."""
    steps = 150
    rng = np.random.default_rng(7)
    np_dtype = NP_DTYPES[dtype]
    w = rng.standard_normal(1030).astype(np_dtype)
    init_slot = hp.get("initial_accumulator_value", 0.0)
    n_slots = {"RMSprop": 1 + (hp.get("momentum", 0) > 0) + bool(hp.get("centered")),
               "Adagrad": 1, "Adadelta": 2}[name]
    slots = [np.full_like(w, init_slot) for _ in range(n_slots)]
    w_ref, slots_ref = w.astype(np.float64), [s.astype(np.float64) for s in slots]
    for _ in range(steps):
        g = rng.standard_normal(w.shape).astype(np_dtype)
        kernels_step(name, hp, w, g, slots)
        w_ref, slots_ref = reference_step(name, hp, w_ref, g.astype(np.float64), slots_ref)
    eps = float(np.finfo(np_dtype).eps)
    tol = 8 * steps * eps
    np.testing.assert_allclose(w, w_ref, rtol=tol, atol=tol * np.abs(w_ref).max())
    for s, sr in zip(slots, slots_ref):
        np.testing.assert_allclose(s, sr, rtol=tol, atol=tol * np.abs(sr).max())
    assert np.abs(w_ref - rng.standard_normal(1)).max() > 0  # something happened


def test_rmsprop_binding_rejects_slots_that_do_not_match_the_flags():
    w, g, v = (np.zeros(3, np.float32) for _ in range(3))
    with pytest.raises(ValueError, match="momentum_slot"):
        _kernels.rmsprop(w, g, v, learning_rate=0.1, rho=0.9, momentum=0.5, epsilon=1e-7)
    with pytest.raises(ValueError, match="average_gradient"):
        _kernels.rmsprop(w, g, v, learning_rate=0.1, rho=0.9, momentum=0.0, epsilon=1e-7,
                         centered=True)


def test_rmsprop_op_rejects_momentum_without_its_slot():
    ops = op_library.library().ops
    w, v = tf.Variable(tf.zeros(4)), tf.Variable(tf.zeros(4))
    with pytest.raises(tf.errors.InvalidArgumentError, match="momentum slot"):
        ops.kerasopt_apply_rm_sprop(features=[], var=w.handle, slots=[v.handle], grad=tf.ones(4),
                                    learning_rate=0.1, step=1, rho=0.9, momentum=0.5,
                                    epsilon=1e-7)
    with pytest.raises(tf.errors.InvalidArgumentError, match="slots"):
        ops.kerasopt_apply_rm_sprop(features=[], var=w.handle, slots=[v.handle], grad=tf.ones(4),
                                    learning_rate=0.1, step=1, rho=0.9, momentum=0.0,
                                    epsilon=1e-7, centered=True)


# --------------------------------------------------------- (b) parity with Keras


@pytest.fixture(params=["grappler-default", "no-arithmetic-optimization"])
def grappler(request):
    """Runs with TensorFlow's Grappler as it comes, or without its arithmetic optimizer.

    Grappler's arithmetic optimizer rewrites ``x / sqrt(y)`` into
    ``x * rsqrt(y)`` (and similar) inside Keras's own traced update, which
    rounds differently from Keras's eager result. The fused op is one node
    it cannot rewrite, so it matches Keras as Keras's code is written (eager,
    or traced without that rewrite) bit for bit, and a rewritten Keras graph
    to a last-ulp difference per step.
    """
    if request.param == "grappler-default":
        yield request.param
        return
    previous = tf.config.optimizer.get_experimental_options().get("arithmetic_optimization")
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    try:
        yield request.param
    finally:
        tf.config.optimizer.set_experimental_options(
            {"arithmetic_optimization": True if previous is None else previous})


@pytest.mark.parametrize("implementation", ["kernel", "tf"])
@pytest.mark.parametrize("name,hp", CONFIGS, ids=CONFIG_IDS)
def test_matches_keras_over_100_steps(name, hp, implementation, grappler):
    steps = 100
    rng = np.random.default_rng(3)
    shapes = [(3, 4), (600,)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [tf.constant(rng.standard_normal((steps,) + s).astype(np.float32)) for s in shapes]

    def run(optimizer):
        variables = [keras.Variable(x, name=f"w{i}") for i, x in enumerate(init)]
        optimizer.build(variables)

        @tf.function
        def step(i):
            optimizer.apply_gradients([(g[i], v) for g, v in zip(grads, variables)])

        for i in range(steps):
            step(tf.constant(i))
        slots = {v.path.split("/")[-1]: v.numpy() for v in optimizer.variables[2:]}
        return [v.numpy() for v in variables], slots, int(optimizer.iterations.numpy())

    want_w, want_slots, want_it = run(getattr(keras.optimizers, name)(**hp))
    with kerasopt.implementation(implementation):
        got_w, got_slots, got_it = run(getattr(kerasopt, name)(**hp))
    assert got_it == want_it == steps
    assert got_slots.keys() == want_slots.keys()
    pairs = [(f"w{i}", g, w) for i, (g, w) in enumerate(zip(got_w, want_w))]
    pairs += [(k, got_slots[k], want_slots[k]) for k in want_slots]
    for (key, got, want), start in zip(pairs, init):
        assert not np.array_equal(want, start), f"{key} did not move"
    for key, got, want in pairs:
        if grappler == "grappler-default":
            # Keras's graph is rewritten (see the fixture): elements that passed
            # near zero carry a last-ulp difference of some step, hence the atol.
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=key)
            np.testing.assert_array_equal(got, want, err_msg=f"{key}: not bit-identical")


# ------------------------------------------------------ (c) as Keras objects

NAMES = ["RMSprop", "Adagrad", "Adadelta"]


@pytest.mark.parametrize("name", NAMES)
def test_signature_and_kernel_name(name):
    ours, theirs = getattr(kerasopt, name), getattr(keras.optimizers, name)
    assert inspect.signature(ours.__init__) == inspect.signature(theirs.__init__)
    assert ours in kerasopt.optimizers.ALL
    ops = op_library.library().ops
    assert hasattr(ops, op_library.python_op_name(f"KerasoptApply{ours.kernel_name}"))
    assert name in kerasopt.__all__


NON_DEFAULT = {
    "RMSprop": dict(learning_rate=0.02, rho=0.8, momentum=0.3, epsilon=1e-5, centered=True,
                    clipnorm=1.0),
    "Adagrad": dict(learning_rate=0.2, initial_accumulator_value=0.5, epsilon=1e-6,
                    weight_decay=0.01),
    "Adadelta": dict(learning_rate=1.0, rho=0.9, epsilon=1e-6, use_ema=True),
}


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip(name):
    optimizer = getattr(kerasopt, name)(**NON_DEFAULT[name])
    config = optimizer.get_config()
    keras_config = getattr(keras.optimizers, name)(**NON_DEFAULT[name]).get_config()
    assert config.keys() == keras_config.keys()
    for key, value in NON_DEFAULT[name].items():
        assert config[key] == pytest.approx(value), key
    clone = type(optimizer).from_config(config)
    assert type(clone) is type(optimizer)
    assert clone.get_config() == config
    with kerasopt.patched():  # saved under Keras's name
        restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is type(optimizer) and restored.get_config() == config


@pytest.mark.parametrize("name", NAMES)
def test_model_save_load_keeps_optimizer_state(name, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 5)).astype(np.float32)
    y = rng.standard_normal((32, 1)).astype(np.float32)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(optimizer=getattr(kerasopt, name)(**{k: v for k, v in NON_DEFAULT[name].items()
                                                         if k != "use_ema"}), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    with kerasopt.patched():  # saved under Keras's name
        loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert int(loaded.optimizer.iterations.numpy()) == 4
    # Layer names get fresh unique prefixes on load; order and slot names are kept.
    def slot_name(v):
        return v.path.split("/")[-1].split("kernel_")[-1].split("bias_")[-1]

    before = [(slot_name(v), v.numpy()) for v in model.optimizer.variables]
    after = [(slot_name(v), v.numpy()) for v in loaded.optimizer.variables]
    assert [k for k, _ in before] == [k for k, _ in after]
    assert len(before) > 2 and all(np.any(v != 0) for _, v in before[2:])
    for (key, b), (_, a) in zip(before, after):
        np.testing.assert_array_equal(a, b, err_msg=key)
    # and training goes on identically from the restored state
    model.train_on_batch(x[:8], y[:8])
    loaded.train_on_batch(x[:8], y[:8])
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------- (d) bad hyperparameters

BAD = [
    ("RMSprop", dict(learning_rate=-0.1)),
    ("RMSprop", dict(rho=-0.1)),
    ("RMSprop", dict(rho=1.0)),
    ("RMSprop", dict(momentum=-0.5)),
    ("RMSprop", dict(momentum=1.5)),
    ("RMSprop", dict(epsilon=-1e-7)),
    ("RMSprop", dict(epsilon=float("nan"))),
    ("RMSprop", dict(rho="high")),
    ("Adagrad", dict(learning_rate=-1.0)),
    ("Adagrad", dict(initial_accumulator_value=-0.1)),
    ("Adagrad", dict(epsilon=-1.0)),
    ("Adadelta", dict(learning_rate=-1.0)),
    ("Adadelta", dict(rho=1.5)),
    ("Adadelta", dict(rho=-0.01)),
    ("Adadelta", dict(epsilon=-1e-7)),
]


@pytest.mark.parametrize("name,kwargs", BAD, ids=[f"{n}-{k}" for n, k in BAD])
def test_bad_hyperparameters_raise(name, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        getattr(kerasopt, name)(**kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_and_edges_are_accepted(name):
    getattr(kerasopt, name)()
    edges = {"RMSprop": dict(rho=0.0, momentum=1.0, epsilon=0.0),
             "Adagrad": dict(initial_accumulator_value=0.0, epsilon=0.0, learning_rate=0.0),
             "Adadelta": dict(rho=0.0, epsilon=0.0)}[name]
    getattr(kerasopt, name)(**edges)
