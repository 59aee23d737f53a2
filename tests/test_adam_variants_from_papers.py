"""AdaBelief, RAdam and Yogi: NumPy binding, kernel and fallback against the
float64 references (tests/references.py), against each other, identities that
follow from the papers' equations, convergence, Keras training and saving.

Tolerances against the references follow tests/test_adam_variants_in_keras.py:
each comparison is ONE step from the stored state (widened to float64), so
the bound is that of a single step computed in C (eps_c) and rounded once to
the storage dtype (eps_s):

    |got - ref| <= 2 eps_s |ref| + 2 eps_c |ref| + 16 eps_c scale + tiny_s

where `scale` is the sum of the magnitudes of the terms that form the value
(what the roundings are relative to, cancellations included). The weight's
scale also carries the error of the denominator it divides by: AdaBelief's
s = beta_2 s + (1 - beta_2)(g - m)^2 + eps can lose relative accuracy when
g - m cancels, and half that relative error reaches the step.
Yogi's sign(v - g^2) may legitimately flip where v is within rounding of g^2;
there the slot and the weight may take either branch.
"""

import zlib

import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt import _kernels
import references as ref  # tests/ is on sys.path
from conftest import SHAPES, assert_bit_identical, graph_op_types, regression_data
from problems import minimize, quadratic, rosenbrock

DTYPES = ["float16", "bfloat16", "float32", "float64"]
NP_DTYPE = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16,
            "float32": np.float32, "float64": np.float64}

# name -> (class, hyperparameters for the reference checks, slot count)
CASES = {
    "AdaBelief": (kerasopt.AdaBelief,
                  dict(learning_rate=0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-8)),
    "AdaBelief-amsgrad": (kerasopt.AdaBelief,
                          dict(learning_rate=0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-8,
                               amsgrad=True)),
    # beta_2 = 0.99: rho_t > 4 from t = 5 on, so 10 steps cover both branches.
    "RAdam": (kerasopt.RAdam, dict(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-6)),
    "Yogi": (kerasopt.Yogi, dict(learning_rate=0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-3,
                                 initial_accumulator_value=1e-6)),
}
STEPS = 10


def eps(dtype):
    return float(ml_dtypes.finfo(NP_DTYPE[dtype]).eps)


def compute_eps(dtype):
    return eps("float64") if dtype == "float64" else eps("float32")


def tiny(dtype):
    return float(ml_dtypes.finfo(NP_DTYPE[dtype]).smallest_subnormal)


def assert_close(got, want, scale, dtype, what, allowed=None):
    got = np.asarray(got, np.float64)
    e_s, e_c = eps(dtype), compute_eps(dtype)
    tol = 2 * e_s * np.abs(want) + 2 * e_c * np.abs(want) + 16 * e_c * scale + tiny(dtype)
    if allowed is not None:
        tol = np.maximum(tol, allowed)
    bad = ~(np.abs(got - want) <= tol)
    assert not bad.any(), (
        f"{what} ({dtype}): {bad.sum()} of {bad.size} elements off, e.g. got "
        f"{got[bad][:3]} want {want[bad][:3]}")


def reference_step(name, hp, state, g, t):
    """(want, scales, allowed) for one step from `state` = [w, m, second] (float64).

    The weight moves by coef * m; its scale is coef * (the momentum's scale),
    which covers a momentum that cancels, plus |step| times the relative
    error scale of the denominator.
    """
    w, m, second = state
    b1, b2, lr = hp["beta_1"], hp["beta_2"], hp["learning_rate"]
    m_scale = b1 * np.abs(m) + (1 - b1) * np.abs(g)
    allowed = [None, None, None]
    if name.startswith("AdaBelief"):
        want = ref.adabelief(w, g, m, second, learning_rate=lr, beta_1=b1, beta_2=b2,
                             epsilon=hp["epsilon"], step=t, amsgrad=hp.get("amsgrad", False))
        s_scale = (b2 * np.abs(second) + (1 - b2) * (np.abs(g) + np.abs(want[1])) ** 2
                   + hp["epsilon"])
        coef = lr / (1 - b1 ** t) / (np.sqrt(want[2] / (1 - b2 ** t)) + hp["epsilon"])
        w_scale = coef * m_scale + np.abs(want[0] - w) * s_scale / want[2]
        return want, [w_scale, m_scale, s_scale], allowed
    if name == "RAdam":
        want = ref.radam(w, g, m, second, learning_rate=lr, beta_1=b1, beta_2=b2,
                         epsilon=hp["epsilon"], step=t)
        r = ref.radam_rectification(b2, t)
        coef = lr / (1 - b1 ** t)
        if r is not None:
            coef = coef * r * np.sqrt(1 - b2 ** t) / (np.sqrt(want[2]) + hp["epsilon"])
        return want, [coef * m_scale + np.abs(want[0] - w), m_scale, np.abs(want[2])], allowed
    if name == "Yogi":
        kw = dict(learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=hp["epsilon"])
        want = ref.yogi(w, g, m, second, **kw)
        g2 = g * g
        v_scale = np.abs(second) + (1 - b2) * g2
        # Where v is within rounding of g^2 the sign may go either way.
        near = np.abs(second - g2) <= 4 * 2.0 ** -23 * (np.abs(second) + g2)
        v_alt = second - (1 - b2) * np.where(near, -np.sign(second - g2), 0.0) * g2
        w_alt = w - lr * want[1] / (np.sqrt(v_alt) + hp["epsilon"])
        allowed = [np.where(near, 2 * np.abs(w_alt - want[0]), 0.0), None,
                   np.where(near, 2.5 * (1 - b2) * g2, 0.0)]
        coef = lr / (np.sqrt(want[2]) + hp["epsilon"])
        w_scale = coef * m_scale + np.abs(want[0] - w) * v_scale / want[2]
        return want, [w_scale, m_scale, v_scale], allowed
    raise AssertionError(name)


def check_step(name, hp, dtype, before, after, g, t, where):
    old = [np.asarray(x, np.float64) for x in before]
    want, scales, allowed = reference_step(name, hp, old, np.asarray(g, np.float64), t)
    for k, label in enumerate(["weight", "slot 0", "slot 1"]):
        assert_close(after[k], want[k], scales[k], dtype, f"{name} {where} step {t} {label}",
                     allowed[k])


def binding_step(name, hp, arrays, g, t):
    w, m, second = arrays
    kw = dict(learning_rate=hp["learning_rate"], beta_1=hp["beta_1"], beta_2=hp["beta_2"],
              epsilon=hp["epsilon"])
    if name.startswith("AdaBelief"):
        _kernels.adabelief(w, g, m, second, step=t, amsgrad=hp.get("amsgrad", False), **kw)
    elif name == "RAdam":
        _kernels.radam(w, g, m, second, step=t, **kw)
    else:
        _kernels.yogi(w, g, m, second, **kw)


def initial_second(name, hp, shape, dtype):
    value = hp.get("initial_accumulator_value", 0.0) if name == "Yogi" else 0.0
    return np.full(shape, value, NP_DTYPE[dtype])


# ------------------------------------------------------------ NumPy binding


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(CASES))
def test_binding_matches_reference_step_by_step(name, dtype):
    hp = CASES[name][1]
    rng = np.random.default_rng(zlib.crc32(f"{name}-{dtype}".encode()))
    for shape in SHAPES:
        arrays = [rng.standard_normal(shape).astype(NP_DTYPE[dtype]),
                  np.zeros(shape, NP_DTYPE[dtype]), initial_second(name, hp, shape, dtype)]
        start = arrays[0].astype(np.float64)
        for t in range(1, STEPS + 1):
            # Gradient scales vary per step, so the second moments go up and down.
            g = np.asarray(np.exp(rng.uniform(-2, 1)) * rng.standard_normal(shape)).astype(NP_DTYPE[dtype])
            before = [a.astype(np.float64) for a in arrays]
            binding_step(name, hp, arrays, g, t)
            check_step(name, hp, dtype, before, arrays, g, t, f"binding {shape}")
        if np.prod(shape) > 100:
            assert not np.array_equal(arrays[0].astype(np.float64), start)


# ------------------------------------------------- kernel and fallback paths


def run_keras_steps(cls, hp, dtype, implementation, steps, seed):
    """Steps a kerasopt optimizer over variables of every SHAPE in a tf.function."""
    rng = np.random.default_rng(seed)
    variables = [keras.Variable(rng.standard_normal(s).astype(NP_DTYPE[dtype]), dtype=dtype)
                 for s in SHAPES]
    grads = [[(np.exp(rng.uniform(-2, 1)) * rng.standard_normal(s)).astype(NP_DTYPE[dtype])
              for s in SHAPES] for _ in range(steps)]
    opt = cls(**hp)
    opt.build(variables)

    def snapshot():
        return [[v.numpy()] + [s.numpy() for s in opt.slots_for(v.value)] for v in variables]

    with kerasopt.implementation(implementation):
        @tf.function
        def step(gs):
            opt.apply_gradients(zip(gs, variables))

        history = [snapshot()]
        for gs in grads:
            step([tf.constant(g) for g in gs])
            history.append(snapshot())
    return history, grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(CASES))
def test_kernel_and_fallback_match_reference_and_each_other(name, dtype):
    cls, hp = CASES[name]
    # Keras keeps the learning rate in a float32 variable: the reference gets that value.
    ref_hp = dict(hp, learning_rate=float(np.float32(hp["learning_rate"])))
    seed = zlib.crc32(f"{name}-{dtype}-keras".encode())
    kernel, grads = run_keras_steps(cls, hp, dtype, "kernel", STEPS, seed)
    fallback, _ = run_keras_steps(cls, hp, dtype, "tf", STEPS, seed)
    for t in range(1, STEPS + 1):
        for i, shape in enumerate(SHAPES):
            for a, b in zip(kernel[t][i], fallback[t][i]):
                assert_bit_identical(a, b, f"kernel vs fallback, {shape}, step {t}")
            check_step(name, ref_hp, dtype, kernel[t - 1][i], kernel[t][i], grads[t - 1][i], t,
                       f"kernel {shape}")
    # The NumPy binding runs the same C++: the same bits as the kernel.
    i = SHAPES.index((1025,))
    arrays = [np.array(x) for x in kernel[0][i]]
    for t in range(1, STEPS + 1):
        binding_step(name, ref_hp, arrays, grads[t - 1][i], t)
        for a, b in zip(arrays, kernel[t][i]):
            assert_bit_identical(a, b, f"binding vs kernel, step {t}")


@pytest.mark.parametrize("multi_tensor", [False, True])
@pytest.mark.parametrize("name", ["AdaBelief", "RAdam", "Yogi"])
def test_one_fused_op_per_variable(name, multi_tensor, monkeypatch):
    """One KerasoptApply<Algo> per variable, or one KerasoptMultiApply<Algo> for all."""
    monkeypatch.setenv("KERASOPT_MULTI_TENSOR", "1" if multi_tensor else "0")
    cls = CASES[name][0]
    variables = [keras.Variable(np.ones(s, np.float32)) for s in [(3,), (4, 5), ()]]
    opt = cls()
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
        assert (nodes.count(f"KerasoptMultiApply{cls.kernel_name}") == 1
                and f"KerasoptApply{cls.kernel_name}" not in nodes)
    else:
        assert nodes.count(f"KerasoptApply{cls.kernel_name}") == len(variables)
    assert "Sqrt" not in graph_op_types(concrete)  # the math is inside the op


# ------------------------------------------------------------ identities


def test_adabelief_on_a_constant_gradient_against_adam():
    """Constant g: m_k = (1 - b1^k) g, so g - m_k = b1^k g and
    s_t = sum_{k<=t} b2^(t-k) ((1 - b2) b1^(2k) g^2 + eps) in closed form: every
    AdaBelief step is lr g / (sqrt(s_t / (1 - b2^t)) + eps). Adam's m_hat = g and
    v_hat = g^2 give steps of lr sign(g). Since s_hat_t <= b1^2 g^2 (+ eps terms),
    AdaBelief's step is over 1 / b1 times Adam's from the first step, and grows
    as the "belief" in g is confirmed (g - m_t -> 0)."""
    lr, b1, b2, e = 1e-3, 0.9, 0.999, 1e-16
    g = np.array([3.0, -0.5, 1e-3, 0.0])
    w = np.zeros(4)
    m, s = np.zeros(4), np.zeros(4)
    w_adam, m_adam, v_adam = np.zeros(4), np.zeros(4), np.zeros(4)
    ratios = []
    for t in range(1, 61):
        before, before_adam = w.copy(), w_adam.copy()
        _kernels.adabelief(w, g, m, s, learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=e, step=t)
        _kernels.adam(w_adam, g, m_adam, v_adam, learning_rate=lr, beta_1=b1, beta_2=b2,
                      epsilon=1e-30, step=t)
        k = np.arange(1, t + 1)
        s_closed = np.sum(b2 ** (t - k)[:, None] * ((1 - b2) * b1 ** (2 * k)[:, None] * g ** 2 + e),
                          axis=0)
        np.testing.assert_allclose(s, s_closed, rtol=1e-12)
        want = -lr * g / (np.sqrt(s_closed / (1 - b2 ** t)) + e)
        np.testing.assert_allclose(w - before, want, rtol=1e-12, atol=0)
        np.testing.assert_allclose(w_adam - before_adam, -lr * np.sign(g), rtol=1e-12, atol=0)
        ratios.append((w - before)[:3] / (w_adam - before_adam)[:3])
    ratios = np.array(ratios)
    assert np.all(ratios > 0.9999 / b1)             # ~1 / b1 times Adam's at step 1
    assert np.all(np.diff(ratios, axis=0) > 0)       # and growing every step
    assert np.all(ratios[-1] > 3.5), ratios[-1]      # 3.7x Adam's by step 60


def test_adabelief_with_beta_1_zero_is_sgd_with_a_fixed_rate():
    """beta_1 = 0: m = g exactly, g - m = 0, s_t = eps (1 - b2^t) / (1 - b2), so
    s_hat = eps / (1 - b2) at every step and the update is SGD with the rate
    lr / (sqrt(eps / (1 - b2)) + eps)."""
    lr, b2, e = 0.1, 0.99, 1e-4
    rng = np.random.default_rng(0)
    w = rng.standard_normal(600)
    w_sgd = w.copy()
    m, s = np.zeros(600), np.zeros(600)
    rate = lr / (np.sqrt(e / (1 - b2)) + e)
    for t in range(1, 21):
        g = rng.standard_normal(600)
        _kernels.adabelief(w, g, m, s, learning_rate=lr, beta_1=0.0, beta_2=b2, epsilon=e, step=t)
        w_sgd -= rate * g
        np.testing.assert_array_equal(m, g)
    np.testing.assert_allclose(w, w_sgd, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("implementation", ["kernel", "tf"])
def test_radam_early_steps_with_beta_1_zero_are_sgd_bit_for_bit(implementation):
    """While rho_t <= 4 RAdam is SGD with bias-corrected momentum; with beta_1 = 0
    that is plain SGD, w -= lr g: the same bits as kerasopt.SGD."""
    b2 = 0.999
    early = [t for t in range(1, 20) if ref.radam_rectification(b2, t) is None]
    assert early == [1, 2, 3, 4]
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((40, 13)).astype(np.float32)
    grads = [rng.standard_normal((40, 13)).astype(np.float32) for _ in early]
    out = []
    for opt in (kerasopt.RAdam(learning_rate=0.05, beta_1=0.0, beta_2=b2),
                kerasopt.SGD(learning_rate=0.05)):
        var = keras.Variable(w0)
        with kerasopt.implementation(implementation):
            for g in grads:
                opt.apply_gradients([(tf.constant(g), var)])
        out.append(var.numpy())
    np.testing.assert_array_equal(out[0], out[1])


def test_radam_bias_corrected_momentum_then_rectified_adam():
    """Constant gradient: m_hat = g exactly, so the first four steps (rho_t <= 4)
    each move w by lr g; from step 5 the step is r_t times Adam's step from the
    same state (RAdam's epsilon sits where Keras's Adam puts it)."""
    lr, b1, b2, e = 0.01, 0.9, 0.999, 1e-7
    g = np.array([2.0, -0.25, 1e-4])
    w, m, v = np.zeros(3), np.zeros(3), np.zeros(3)
    for t in range(1, 16):
        before = (w.copy(), m.copy(), v.copy())
        _kernels.radam(w, g, m, v, learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=e, step=t)
        r = ref.radam_rectification(b2, t)
        if t <= 4:
            assert r is None
            np.testing.assert_allclose(w - before[0], -lr * g, rtol=1e-12)
        else:
            w_adam, m_adam, v_adam = (x.copy() for x in before)
            _kernels.adam(w_adam, g, m_adam, v_adam, learning_rate=lr, beta_1=b1, beta_2=b2,
                          epsilon=e, step=t)
            assert 0 < r < 1
            np.testing.assert_allclose(w - before[0], r * (w_adam - before[0]), rtol=1e-12)


def test_yogi_second_moment_is_additive_while_below_g_squared():
    """Yogi's v moves by (1 - b2) g^2 per step towards g^2: for a constant g and
    v_0 < g^2 it grows linearly, v_t = v_0 + t (1 - b2) g^2 (Adam's would be
    (1 - b2^t) g^2); once above g^2 it shrinks by the same amount."""
    b2, v0 = 0.9, 1e-6
    g = np.array([1.5, -2.0])
    w, m, v = np.zeros(2), np.zeros(2), np.full(2, v0)
    for t in range(1, 10):
        _kernels.yogi(w, g, m, v, learning_rate=0.01, beta_1=0.9, beta_2=b2, epsilon=1e-3)
        np.testing.assert_allclose(v, v0 + t * (1 - b2) * g * g, rtol=1e-13)
    g_small = g / 4  # now v > g_small^2: v decreases by (1 - b2) g_small^2 per step
    before = v.copy()
    _kernels.yogi(w, g_small, m, v, learning_rate=0.01, beta_1=0.9, beta_2=b2, epsilon=1e-3)
    np.testing.assert_allclose(v, before - (1 - b2) * g_small ** 2, rtol=1e-13)


# ------------------------------------------------------------ convergence


# Learning rates per problem (Rosenbrock, quadratic), chosen once with the
# float64 references; RAdam's first four steps are plain momentum SGD, so its
# rate must suit the raw gradients (curvature 1000: lr < 2e-3).
CONVERGENCE = {
    "AdaBelief": (kerasopt.AdaBelief, 0.002, 0.002),
    "RAdam": (kerasopt.RAdam, 0.002, 0.002),
    "Yogi": (kerasopt.Yogi, 0.005, 0.005),
}


@pytest.mark.parametrize("name", list(CONVERGENCE))
def test_converges_on_rosenbrock_and_an_ill_conditioned_quadratic(name, impl):
    cls, lr_rosenbrock, lr_quadratic = CONVERGENCE[name]
    value, point = minimize(cls(learning_rate=lr_rosenbrock), rosenbrock, [0.0, 0.0], 3000)
    assert value < 1e-5 and np.allclose(point, [1.0, 1.0], atol=0.01), (value, point)
    start = np.ones(10, np.float32)
    value, _ = minimize(cls(learning_rate=lr_quadratic), quadratic, start, 3000)
    assert value < 1e-5 * float(quadratic(tf.constant(start))), value


# ------------------------------------------------------------ Keras


FIT = {
    "AdaBelief": lambda: kerasopt.AdaBelief(learning_rate=0.01, amsgrad=True, weight_decay=1e-3),
    # beta_2 = 0.99: a shorter warm-up (r_t grows faster) for 48 steps of training.
    "RAdam": lambda: kerasopt.RAdam(learning_rate=0.03, beta_2=0.99),
    "Yogi": lambda: kerasopt.Yogi(learning_rate=0.01, initial_accumulator_value=1e-3),
}


@pytest.mark.parametrize("name", list(FIT))
def test_fit_then_config_and_model_save_round_trip(name, tmp_path):
    opt = FIT[name]()
    config = opt.get_config()
    clone = type(opt).from_config(config)
    assert type(clone) is type(opt) and clone.get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(restored) is type(opt) and restored.get_config() == config

    # fit: the loss goes down.
    x, y = regression_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=opt, loss="mse")
    initial = float(model.evaluate(x, y, verbose=0))
    model.fit(x, y, batch_size=32, epochs=6, shuffle=False, verbose=0)
    final = float(model.evaluate(x, y, verbose=0))
    assert final < 0.2 * initial, (initial, final)

    # model.save / load_model keep the optimizer, its config and its state ...
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is type(opt)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(loaded.optimizer.iterations.numpy()) == 48
    before = [v.numpy() for v in model.optimizer.variables]
    after = [v.numpy() for v in loaded.optimizer.variables]
    assert len(before) == len(after) == 2 + 2 * 4  # iterations, learning rate, 2 slots x 4
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)
    # ... so training resumes exactly where it stopped.
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_exported_and_listed():
    for cls in (kerasopt.AdaBelief, kerasopt.RAdam, kerasopt.Yogi):
        assert cls in kerasopt.optimizers.ALL
        assert cls.__name__ in kerasopt.__all__ and cls.__name__ in kerasopt.optimizers.__all__


def test_slot_names_and_yogi_initial_accumulator():
    var = keras.Variable(np.zeros(3, np.float32), name="w")
    names = {}
    for cls in (kerasopt.AdaBelief, kerasopt.RAdam, kerasopt.Yogi):
        opt = cls()
        opt.build([var])
        names[cls.__name__] = [v.name.rsplit("_", 1)[-1] for v in opt.variables[2:]]
        if cls is kerasopt.Yogi:
            np.testing.assert_array_equal(opt.variables[-1].numpy(), np.full(3, 1e-6, np.float32))
    assert names == {"AdaBelief": ["momentum", "belief"], "RAdam": ["momentum", "velocity"],
                     "Yogi": ["momentum", "velocity"]}


BAD = [
    (kerasopt.AdaBelief, dict(learning_rate=-1.0)),
    (kerasopt.AdaBelief, dict(beta_1=1.0)),
    (kerasopt.AdaBelief, dict(beta_2=-0.1)),
    (kerasopt.AdaBelief, dict(epsilon=-1e-16)),
    (kerasopt.RAdam, dict(beta_1=float("nan"))),
    (kerasopt.RAdam, dict(beta_2=1.0)),
    (kerasopt.RAdam, dict(epsilon="tiny")),
    (kerasopt.Yogi, dict(beta_2=2.0)),
    (kerasopt.Yogi, dict(epsilon=-1.0)),
    (kerasopt.Yogi, dict(initial_accumulator_value=-1e-6)),
]


@pytest.mark.parametrize("cls,kwargs", BAD, ids=[f"{c.__name__}-{k}" for c, k in BAD])
def test_bad_hyperparameters_raise(cls, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        cls(**kwargs)


@pytest.mark.parametrize("op_name,num_slots,scalars", [
    ("kerasopt_apply_ada_belief", 2, dict(learning_rate=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                                          sma_threshold=4.0)),
    ("kerasopt_apply_r_adam", 2, dict(learning_rate=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                                      sma_threshold=4.0, total_steps=0.0, warmup_proportion=0.1,
                                      min_lr=0.0)),
])
def test_ops_refuse_step_zero_and_write_nothing(op_name, num_slots, scalars):
    from conftest import require_kernel_library

    ops = require_kernel_library().ops
    w = tf.Variable(np.ones(3, np.float32))
    slots = [tf.Variable(np.zeros(3, np.float32)) for _ in range(num_slots)]
    with pytest.raises(tf.errors.InvalidArgumentError, match="step counts from 1"):
        getattr(ops, op_name)(features=[], var=w.handle, slots=[s.handle for s in slots], grad=tf.ones(3),
                              step=tf.constant(0, tf.int64), **scalars)
    np.testing.assert_array_equal(w.numpy(), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="step"):
        _kernels.radam(np.ones(3), np.ones(3), np.zeros(3), np.zeros(3), learning_rate=0.1,
                       beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=0)


def test_xla_compiled_steps_run_the_fallback_and_match_the_kernel():
    """Inside jit_compile=True the fallback runs (XLA cannot compile the custom
    ops), for all four optimizers of issue 4 (NovoGrad's ||g||^2 included); it
    gives the kernel's numbers up to XLA's own fusion of the arithmetic."""
    rng = np.random.default_rng(9)
    w0 = rng.standard_normal((37, 5)).astype(np.float32)
    grads = [rng.standard_normal((37, 5)).astype(np.float32) for _ in range(6)]
    makers = [lambda: kerasopt.AdaBelief(learning_rate=0.01, amsgrad=True),
              lambda: kerasopt.RAdam(learning_rate=0.01, beta_2=0.99),
              lambda: kerasopt.Yogi(learning_rate=0.01),
              lambda: kerasopt.NovoGrad(learning_rate=0.01, weight_decay=0.01)]
    for make in makers:
        out = []
        for jit in (True, False):
            var = keras.Variable(w0)
            opt = make()
            opt.build([var])
            step = tf.function(lambda g: opt.apply_gradients([(g, var)]), jit_compile=jit)
            with kerasopt.implementation("auto"):
                for g in grads:
                    step(tf.constant(g))
            out.append(var.numpy())
        assert not np.array_equal(out[1], w0)
        np.testing.assert_allclose(out[0], out[1], rtol=1e-5, atol=1e-6,
                                   err_msg=type(make()).__name__)
