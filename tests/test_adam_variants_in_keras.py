"""AdamW, Adamax, Nadam and Lion: kernel, fallback and NumPy binding against the
float64 references (tests/references.py), against each other, and against Keras.

Tolerances against the references. Each comparison is ONE step from the same
stored state (the reference is fed the state the code under test holds before
the step, widened to float64), repeated over many steps, so errors cannot
accumulate and the bound is that of a single step. A rule computes in C
(float32 for 16-bit and float32 storage, float64 for float64) with eps_c, then
rounds once to the storage dtype with eps_s. For each stored quantity (weight
and slots) with new value `ref` and old value `old`:

    |got - ref| <= 2 eps_s |ref| + 2 eps_c |ref| + 16 eps_c |ref - old| + tiny_s

2 eps_s |ref| covers the final rounding (half an ulp) with a factor 2; 2 eps_c
|ref| the few subtractions/additions at the scale of the value in C; 16 eps_c
|ref - old| the ~10 roundings in forming the update (each eps_c / 2 relative);
tiny_s (the smallest subnormal of the storage dtype) values that underflow.
Where the update is a sum of terms that can cancel, |ref - old| is replaced by
the sum of the terms' magnitudes (update_scale below): AdamW's decay and Adam
step, Nadam's two m_hat terms.
float64 thus gets ~1e-15 relative bounds, float32 ~1e-7.

Lion's sign(c) may legitimately differ where c is within rounding of 0
(|c| <= 4 eps_c (|beta_1 m| + |(1 - beta_1) g|)); there the weight may differ
by up to 2 lr.
"""

import inspect
import math
import zlib

import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt import _kernels
import references as ref  # tests/ is on sys.path (pytest's rootdir-less import mode)

DTYPES = ["float16", "bfloat16", "float32", "float64"]
SHAPES = [(), (0,), (7,), (3, 5), (1100,)]  # 1100 crosses the 512-element block twice
NP_DTYPE = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16,
            "float32": np.float32, "float64": np.float64}

# Hyperparameters for the reference checks (away from the defaults where that
# exercises more: larger steps, larger decay).
HP = {
    "AdamW": dict(learning_rate=0.01, weight_decay=0.05, beta_1=0.8, beta_2=0.95, epsilon=1e-6),
    "Adamax": dict(learning_rate=0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-6),
    "Nadam": dict(learning_rate=0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-6),
    "Lion": dict(learning_rate=0.01, beta_1=0.8, beta_2=0.95),
}
SLOTS = {"AdamW": 2, "Adamax": 2, "Nadam": 2, "Lion": 1}


def eps(dtype):
    return float(ml_dtypes.finfo(NP_DTYPE[dtype]).eps)


def compute_eps(dtype):
    return eps("float64") if dtype == "float64" else eps("float32")


def tiny(dtype):
    return float(ml_dtypes.finfo(NP_DTYPE[dtype]).smallest_subnormal)


def assert_one_step_close(got, want, old, dtype, what, allowed=None, scale=None):
    got = np.asarray(got, np.float64)
    e_s, e_c = eps(dtype), compute_eps(dtype)
    scale = np.abs(want - old) if scale is None else scale
    tol = 2 * e_s * np.abs(want) + 2 * e_c * np.abs(want) + 16 * e_c * scale + tiny(dtype)
    if allowed is not None:
        tol = np.maximum(tol, allowed)
    bad = ~(np.abs(got - want) <= tol)
    assert not bad.any(), (
        f"{what} ({dtype}): {bad.sum()} of {bad.size} elements off, e.g. got "
        f"{got[bad][:3]} want {want[bad][:3]}")


# ----------------------------------------------------------- reference steps
# step(state, g, t, hp) -> new state (all float64); state = [w, *slots, (u_product)]


def ref_step(name, state, g, t, hp, u_product=None):
    lr = hp["learning_rate"]
    if name == "AdamW":
        w, m, v, _ = ref.adamw(state[0], g, state[1], state[2], None, lr=lr,
                               weight_decay=hp["weight_decay"], beta_1=hp["beta_1"],
                               beta_2=hp["beta_2"], epsilon=hp["epsilon"], t=t)
        return [w, m, v]
    if name == "Adamax":
        return list(ref.adamax(state[0], g, state[1], state[2], lr=lr, beta_1=hp["beta_1"],
                               beta_2=hp["beta_2"], epsilon=hp["epsilon"], t=t))
    if name == "Nadam":
        return list(ref.nadam(state[0], g, state[1], state[2], u_product, lr=lr,
                              beta_1=hp["beta_1"], beta_2=hp["beta_2"],
                              epsilon=hp["epsilon"], t=t))
    if name == "Lion":
        return list(ref.lion(state[0], g, state[1], lr=lr, beta_1=hp["beta_1"], beta_2=hp["beta_2"]))
    raise AssertionError(name)


def update_scale(name, state, g, t, hp, u_product):
    """Sum of magnitudes of the terms of the weight update (None: |new - old|)."""
    lr, w, m, v = hp["learning_rate"], state[0], state[1], state[-1]
    if name == "AdamW":
        m = hp["beta_1"] * m + (1 - hp["beta_1"]) * g
        v = hp["beta_2"] * v + (1 - hp["beta_2"]) * g * g
        alpha = lr * np.sqrt(1 - hp["beta_2"] ** t) / (1 - hp["beta_1"] ** t)
        return lr * hp["weight_decay"] * np.abs(w) + alpha * np.abs(m) / (np.sqrt(v) + hp["epsilon"])
    if name == "Nadam":
        b1 = hp["beta_1"]
        mu_t, mu_next = ref.nadam_mu(b1, t), ref.nadam_mu(b1, t + 1)
        m = b1 * m + (1 - b1) * g
        v = hp["beta_2"] * v + (1 - hp["beta_2"]) * g * g
        terms = (np.abs(mu_next * m / (1 - u_product * mu_next))
                 + np.abs((1 - mu_t) * g / (1 - u_product)))
        return lr * terms / (np.sqrt(v / (1 - hp["beta_2"] ** t)) + hp["epsilon"])
    return None


def lion_allowed(state, g, hp, dtype):
    """Where Lion's sign may flip by rounding, the weight may move by 2 lr."""
    b1 = hp["beta_1"]
    m = state[1]
    c = b1 * m + (1 - b1) * g
    near_zero = np.abs(c) <= 4 * compute_eps(dtype) * (np.abs(b1 * m) + np.abs((1 - b1) * g))
    return np.where(near_zero, 2 * hp["learning_rate"] * (1 + 4 * eps(dtype)), 0.0)


def check_against_reference(name, dtype, before, after, g, t, hp, u_product=None, where=""):
    old = [np.asarray(x, np.float64) for x in before]
    want = ref_step(name, old, np.asarray(g, np.float64), t, hp, u_product)
    names = ["weight"] + [f"slot {k}" for k in range(len(want) - 1)]
    for k, (got, w, o, n) in enumerate(zip(after, want, old, names)):
        g64 = np.asarray(g, np.float64)
        allowed = lion_allowed(old, g64, hp, dtype) if name == "Lion" and k == 0 else None
        scale = update_scale(name, old, g64, t, hp, u_product) if k == 0 else None
        assert_one_step_close(got, w, o, dtype, f"{name} {where} step {t} {n}", allowed, scale)


# ------------------------------------------------ (a) NumPy binding vs reference


def numpy_step(name, arrays, g, t, hp, u_product=None):
    lr = hp["learning_rate"]
    if name == "AdamW":
        _kernels.adamw(arrays[0], g, arrays[1], arrays[2], learning_rate=lr,
                       weight_decay=hp["weight_decay"], beta_1=hp["beta_1"],
                       beta_2=hp["beta_2"], epsilon=hp["epsilon"], step=t)
    elif name == "Adamax":
        _kernels.adamax(arrays[0], g, arrays[1], arrays[2], learning_rate=lr,
                        beta_1=hp["beta_1"], beta_2=hp["beta_2"], epsilon=hp["epsilon"], step=t)
    elif name == "Nadam":
        _kernels.nadam(arrays[0], g, arrays[1], arrays[2], learning_rate=lr,
                       beta_1=hp["beta_1"], beta_2=hp["beta_2"], epsilon=hp["epsilon"],
                       u_product=u_product, step=t)
    elif name == "Lion":
        _kernels.lion(arrays[0], g, arrays[1], learning_rate=lr, beta_1=hp["beta_1"],
                      beta_2=hp["beta_2"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["AdamW", "Adamax", "Nadam", "Lion"])
def test_numpy_binding_matches_reference_step_by_step(name, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{name}-{dtype}".encode()))
    hp = HP[name]
    steps = 25
    for shape in SHAPES:
        arrays = [rng.standard_normal(shape).astype(NP_DTYPE[dtype])]
        arrays += [np.zeros(shape, NP_DTYPE[dtype]) for _ in range(SLOTS[name])]
        u_product = 1.0
        for t in range(1, steps + 1):
            g = rng.standard_normal(shape).astype(NP_DTYPE[dtype])
            before = [a.astype(np.float64) for a in arrays]
            new_u = ref.nadam_u_product(u_product, hp["beta_1"], t) if name == "Nadam" else None
            numpy_step(name, arrays, g, t, hp, new_u)
            check_against_reference(name, dtype, before, arrays, g, t, hp, new_u, f"numpy {shape}")
            u_product = new_u
        if shape == (1100,):  # the weights really moved
            assert not np.array_equal(arrays[0].astype(np.float64), before[0])


def test_numpy_adamw_zero_decay_is_adam():
    rng = np.random.default_rng(0)
    a = [rng.standard_normal(600).astype(np.float32), np.zeros(600, np.float32), np.zeros(600, np.float32)]
    b = [x.copy() for x in a]
    for t in range(1, 6):
        g = rng.standard_normal(600).astype(np.float32)
        _kernels.adamw(a[0], g, a[1], a[2], learning_rate=0.01, weight_decay=0.0, beta_1=0.9,
                       beta_2=0.999, epsilon=1e-7, step=t)
        _kernels.adam(b[0], g, b[1], b[2], learning_rate=0.01, beta_1=0.9, beta_2=0.999,
                      epsilon=1e-7, step=t)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# ------------------------------ (a) kernel and fallback paths vs reference + each other


def make_optimizer(name, hp):
    return getattr(kerasopt, name)(**hp)


def run_optimizer_steps(name, dtype, implementation, hp, steps, seed):
    """Steps a kerasopt optimizer in a tf.function; returns per-step snapshots."""
    rng = np.random.default_rng(seed)
    shapes = [s for s in SHAPES]
    variables = [keras.Variable(rng.standard_normal(s).astype(NP_DTYPE[dtype]), dtype=dtype)
                 for s in shapes]
    grads = [[rng.standard_normal(s).astype(NP_DTYPE[dtype]) for s in shapes] for _ in range(steps)]
    opt = make_optimizer(name, hp)
    opt.build(variables)

    def snapshot():
        snap = []
        for v in variables:
            slots = opt.slots_for(v.value)
            snap.append([v.numpy().astype(np.float64)] + [s.numpy().astype(np.float64) for s in slots])
        u = float(opt._u_product.numpy()) if name == "Nadam" else None
        return snap, u

    with kerasopt.implementation(implementation):
        @tf.function
        def step(gs):
            opt.apply_gradients(zip(gs, variables))

        history = [snapshot()]
        for gs in grads:
            step([tf.constant(g) for g in gs])
            history.append(snapshot())
    return history, grads, shapes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["AdamW", "Adamax", "Nadam", "Lion"])
def test_kernel_and_fallback_paths_match_reference_and_each_other(name, dtype):
    # Keras keeps the learning rate in a float32 variable, whatever the dtype
    # of the weights: the reference gets that value.
    hp = dict(HP[name], learning_rate=float(np.float32(HP[name]["learning_rate"])))
    steps = 12
    seed = zlib.crc32(f"{name}-{dtype}-tf".encode())
    kernel, grads, shapes = run_optimizer_steps(name, dtype, "kernel", HP[name], steps, seed)
    fallback, _, _ = run_optimizer_steps(name, dtype, "tf", HP[name], steps, seed)
    for t in range(1, steps + 1):
        (k_snap, k_u), (f_snap, f_u) = kernel[t], fallback[t]
        assert k_u == f_u
        for i, shape in enumerate(shapes):
            for a, b in zip(k_snap[i], f_snap[i]):
                np.testing.assert_array_equal(a, b, err_msg=f"kernel != fallback, {shape}, step {t}")
            u_now = None
            if name == "Nadam":
                u_prev = kernel[t - 1][1]
                want_u = ref.nadam_u_product(u_prev, hp["beta_1"], t)
                assert abs(k_u - want_u) <= 4 * eps(dtype) * abs(want_u), (k_u, want_u)
                u_now = k_u
            check_against_reference(name, dtype, kernel[t - 1][0][i], k_snap[i], grads[t - 1][i],
                                    t, hp, u_now, f"kernel {shape}")


# ------------------------------------------------------------ (b) Keras parity

PARITY = [
    ("AdamW", {}),
    ("AdamW", dict(learning_rate=0.02, weight_decay=0.1, beta_1=0.8, beta_2=0.99, epsilon=1e-5, amsgrad=True)),
    ("AdamW", dict(learning_rate=keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9),
                   weight_decay=0.3, exclude_names=["bias"])),
    ("Adamax", {}),
    ("Adamax", dict(learning_rate=0.02, beta_1=0.5, beta_2=0.9, epsilon=1e-3, weight_decay=0.01)),
    ("Nadam", {}),
    ("Nadam", dict(learning_rate=0.02, beta_1=0.7, beta_2=0.9, epsilon=1e-5)),
    ("Nadam", dict(learning_rate=0.01, gradient_accumulation_steps=2)),
    ("Lion", {}),
    ("Lion", dict(learning_rate=3e-3, beta_1=0.5, beta_2=0.9, weight_decay=0.05)),
]


def run_parity(cls, hp, implementation=None, steps=100):
    hp = dict(hp)
    exclude = hp.pop("exclude_names", None)
    rng = np.random.default_rng(7)
    specs = [("kernel", (4, 6)), ("bias", (6,)), ("scalar", ()), ("big", (600,))]
    variables = [keras.Variable(rng.standard_normal(s).astype(np.float32), name=n) for n, s in specs]
    grads = [[rng.standard_normal(s).astype(np.float32) for _, s in specs] for _ in range(steps)]
    opt = cls(**hp)
    if exclude:
        opt.exclude_from_weight_decay(var_names=exclude)
    opt.build(variables)

    @tf.function
    def step(gs):
        opt.apply_gradients(zip(gs, variables))

    ctx = kerasopt.implementation(implementation) if implementation else _null()
    with ctx:
        for gs in grads:
            step([tf.constant(g) for g in gs])
    return [v.numpy() for v in variables], [v.numpy() for v in opt.variables]


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@pytest.mark.parametrize("name,hp", PARITY, ids=[f"{n}-{i}" for i, (n, _) in enumerate(PARITY)])
def test_keras_parity_100_steps(name, hp):
    want_w, want_state = run_parity(getattr(keras.optimizers, name), hp)
    for implementation in ("kernel", "tf"):
        got_w, got_state = run_parity(getattr(kerasopt, name), hp, implementation)
        for a, b in zip(got_w, want_w):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=0, err_msg=f"{name} {implementation}")
        assert len(got_state) == len(want_state)
        for a, b in zip(got_state, want_state):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=0, err_msg=f"{name} {implementation} state")


def test_adamw_exclusion_really_excludes():
    # The excluded variable must follow plain Adam (no decay) and the others must not.
    hp = dict(learning_rate=0.01, weight_decay=0.5, exclude_names=["bias"])
    w, _ = run_parity(kerasopt.AdamW, hp, "kernel", steps=5)
    adam_w, _ = run_parity(kerasopt.Adam, dict(learning_rate=0.01), "kernel", steps=5)
    np.testing.assert_array_equal(w[1], adam_w[1])  # bias: excluded
    assert not np.allclose(w[0], adam_w[0])          # kernel: decayed


def test_nadam_u_product_advances_once_per_step():
    opt = kerasopt.Nadam(beta_1=0.9)
    variables = [keras.Variable(np.ones(3, np.float32)) for _ in range(5)]
    opt.build(variables)
    for _ in range(3):
        opt.apply_gradients([(tf.ones(3), v) for v in variables])
    want = 1.0
    for t in (1, 2, 3):
        want = ref.nadam_u_product(want, 0.9, t)
    assert opt._u_product.numpy() == pytest.approx(want, rel=1e-6)


# --------------------------------------------- (c) signature, config, saving


@pytest.mark.parametrize("name", ["AdamW", "Adamax", "Nadam", "Lion"])
def test_signature_is_keras(name):
    ours = inspect.signature(getattr(kerasopt, name).__init__)
    theirs = inspect.signature(getattr(keras.optimizers, name).__init__)
    assert list(ours.parameters) == list(theirs.parameters)
    for p in theirs.parameters:
        assert ours.parameters[p].default == theirs.parameters[p].default, p
        assert ours.parameters[p].kind == theirs.parameters[p].kind, p


CONFIG_HP = {
    "AdamW": dict(learning_rate=0.02, weight_decay=0.1, beta_1=0.8, beta_2=0.9, epsilon=1e-5, amsgrad=True),
    "Adamax": dict(learning_rate=0.02, beta_1=0.8, beta_2=0.9, epsilon=1e-5, clipnorm=1.0),
    "Nadam": dict(learning_rate=0.02, beta_1=0.8, beta_2=0.9, epsilon=1e-5, global_clipnorm=2.0),
    "Lion": dict(learning_rate=0.02, beta_1=0.8, beta_2=0.9, weight_decay=0.2),
}


@pytest.mark.parametrize("name", ["AdamW", "Adamax", "Nadam", "Lion"])
def test_config_round_trip_matches_keras(name):
    cls = getattr(kerasopt, name)
    opt = cls(**CONFIG_HP[name])
    config = opt.get_config()
    keras_config = getattr(keras.optimizers, name)(**CONFIG_HP[name]).get_config()
    unnamed = lambda c: {k: v for k, v in c.items() if k != "name"}  # names are uniquified
    assert unnamed(config) == unnamed(keras_config)
    again = cls.from_config(config)
    assert type(again) is cls and again.get_config() == config
    with kerasopt.patched():  # saved under Keras's name
        restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(restored) is cls and restored.get_config() == config


@pytest.mark.parametrize("name", ["AdamW", "Adamax", "Nadam", "Lion"])
def test_model_save_load_keeps_optimizer_state(name, tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 5)).astype(np.float32)
    y = rng.standard_normal((32, 1)).astype(np.float32)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer=getattr(kerasopt, name)(**CONFIG_HP[name]), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    with kerasopt.patched():  # saved under Keras's name
        loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is getattr(kerasopt, name)
    assert int(loaded.optimizer.iterations.numpy()) == 4
    before = [v.numpy() for v in model.optimizer.variables]
    after = [v.numpy() for v in loaded.optimizer.variables]
    assert len(before) == len(after)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    if name == "Nadam":  # the scalar state is among them and has moved
        assert loaded.optimizer._u_product.numpy() == model.optimizer._u_product.numpy() != 1.0
    # Training on continues identically.
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


# -------------------------------------------------------- (d) bad hyperparameters

BAD = [
    ("AdamW", dict(learning_rate=-1.0)), ("AdamW", dict(weight_decay=None)),
    ("AdamW", dict(weight_decay=-0.1)), ("AdamW", dict(beta_1=1.0)), ("AdamW", dict(beta_2=-0.1)),
    ("AdamW", dict(epsilon=-1e-7)), ("AdamW", dict(beta_1=math.nan)),
    ("Adamax", dict(learning_rate=-0.1)), ("Adamax", dict(beta_1=1.0)), ("Adamax", dict(beta_2=1.5)),
    ("Adamax", dict(epsilon=-1.0)), ("Adamax", dict(beta_1="x")),
    ("Nadam", dict(learning_rate=-0.1)), ("Nadam", dict(beta_1=-0.5)), ("Nadam", dict(beta_2=1.0)),
    ("Nadam", dict(epsilon=-1.0)),
    ("Lion", dict(learning_rate=-0.1)), ("Lion", dict(beta_1=0.0)), ("Lion", dict(beta_1=1.5)),
    ("Lion", dict(beta_2=-0.1)), ("Lion", dict(beta_2=2.0)),
]


@pytest.mark.parametrize("name,hp", BAD, ids=[f"{n}-{list(h.items())[0]}" for n, h in BAD])
def test_bad_hyperparameters_raise(name, hp):
    with pytest.raises(ValueError):
        getattr(kerasopt, name)(**hp)


@pytest.mark.parametrize("name", ["AdamW", "Adamax", "Nadam", "Lion"])
def test_edge_hyperparameters_accepted(name):
    extra = {"Adamax": dict(beta_2=1.0), "Lion": dict(beta_1=1.0, beta_2=0.0),
             "AdamW": dict(weight_decay=0.0, beta_1=0.0), "Nadam": dict(beta_1=0.0, epsilon=0.0)}[name]
    getattr(kerasopt, name)(**extra)
