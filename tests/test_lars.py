"""Lars: kernel, fallback and NumPy binding against the float64 reference
(tests/references.py, written from the paper), against each other, the
per-variable exclusions, zero norms, convergence, and Keras integration.

Tolerances against the reference, as in tests/test_lamb.py: each path is
compared one step at a time from its own state before the step (widened to
float64), with |got - want| <= k * eps * (|want| + max|array|): k = 4 for
16-bit storage (one rounding plus float32 compute), 64 for float32 and
float64. Kernel and fallback sum the norms in the same order: bit-identical.
"""

import zlib

import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt import _kernels
import references  # tests/ is on sys.path
from conftest import graph_op_types

DTYPES = {
    "float16": (np.float16, 4 * 2.0 ** -11),
    "bfloat16": (ml_dtypes.bfloat16, 4 * 2.0 ** -8),
    "float32": (np.float32, 64 * 2.0 ** -24),
    "float64": (np.float64, 64 * 2.0 ** -53),
}
# (), (0,), small, and sizes over several of the driver's 512-element blocks.
SHAPES = [(), (0,), (7,), (3, 5), (513,), (2, 700)]
STEPS = 4

HYPER = [
    dict(learning_rate=1.0, momentum=0.9, weight_decay=0.01, eta=0.01),
    dict(learning_rate=0.5, momentum=0.8, weight_decay=0.0, eta=0.02, nesterov=True),
    dict(learning_rate=0.2, momentum=0.0, weight_decay=0.1, eta=0.05),
]


def _same_bits(a, b, what=""):
    a, b = np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1)
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=what)


def _close(got, want, eps, what):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    scale = np.max(np.abs(want)) if want.size else 0.0
    bad = ~(np.abs(got - want) <= eps * (np.abs(want) + scale))
    assert not bad.any(), (
        f"{what}: {bad.sum()} of {bad.size} differ, e.g. got {got[bad][:3]} want {want[bad][:3]}")


def _lr(hyper):
    return float(np.float32(hyper["learning_rate"]))  # Keras's float32 learning rate


def _reference(hyper, w, v, g, layer_adaptation=True, weight_decay=None):
    return references.lars(
        w, v if v is not None else np.zeros_like(np.asarray(w, np.float64)), g,
        learning_rate=_lr(hyper), momentum=hyper["momentum"],
        weight_decay=hyper["weight_decay"] if weight_decay is None else weight_decay,
        eta=hyper["eta"], nesterov=hyper.get("nesterov", False),
        layer_adaptation=layer_adaptation)


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


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("hyper_index", range(len(HYPER)))
def test_paths_match_reference_and_each_other(hyper_index, shape, dtype):
    hyper = HYPER[hyper_index]
    np_dtype, eps = DTYPES[dtype]
    rng = np.random.default_rng(zlib.crc32(repr((hyper_index, shape, dtype)).encode()))
    w0 = np.asarray(rng.standard_normal(shape)).astype(np_dtype)
    grads = [np.asarray(rng.standard_normal(shape)).astype(np_dtype) for _ in range(STEPS)]
    results = {}
    for impl in ("kernel", "tf"):
        finals = []
        steps = _keras_steps(kerasopt.Lars(**hyper), dtype, grads, w0, impl)
        for step, ((w, slots), (w1, slots1)) in enumerate(steps, start=1):
            assert w1.dtype == np_dtype and w1.shape == shape
            want_w, want_v = _reference(hyper, w, slots[0] if slots else None, grads[step - 1])
            _close(w1, want_w, eps, f"{impl} step {step} weight")
            if slots:
                _close(slots1[0], want_v, eps, f"{impl} step {step} momentum")
            finals.append((w1, slots1))
        results[impl] = finals
    for (wk, sk), (wf, sf) in zip(results["kernel"], results["tf"]):
        _same_bits(wk, wf, "kernel vs fallback weight")
        for a, b in zip(sk, sf):
            _same_bits(a, b, "kernel vs fallback momentum")

    # The NumPy binding, from the same start, in place: the kernel's bits.
    w = w0.copy()
    v = np.zeros_like(w0) if hyper["momentum"] else None
    for step, g in enumerate(grads, start=1):
        _kernels.lars(w, g, v, learning_rate=_lr(hyper), momentum=hyper["momentum"],
                      weight_decay=hyper["weight_decay"], eta=hyper["eta"],
                      nesterov=hyper.get("nesterov", False))
        _same_bits(w, results["kernel"][step - 1][0], "binding vs kernel")
        if v is not None:
            _same_bits(v, results["kernel"][step - 1][1][0], "binding vs kernel momentum")


def test_large_variable_kernel_equals_fallback():
    # 300k elements: the op's thread pool splits both passes; the sums of
    # squares are still taken in the fallback's fixed order, to the bit.
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal(300_001).astype(np.float32)
    grads = [rng.standard_normal(300_001).astype(np.float32) for _ in range(2)]
    out = {}
    for impl in ("kernel", "tf"):
        var = keras.Variable(w0)
        opt = kerasopt.Lars(learning_rate=0.5, weight_decay=1e-3, eta=0.01, nesterov=True)
        with kerasopt.implementation(impl):
            for g in grads:
                opt.apply_gradients([(tf.constant(g), var)])
        out[impl] = (var.numpy(), opt.momentums[0].numpy())
    for a, b in zip(out["kernel"], out["tf"]):
        _same_bits(a, b, "kernel vs fallback")


# ------------------------------------------------------------------ zero norms


@pytest.mark.parametrize("implementation", ["kernel", "tf"])
@pytest.mark.parametrize("case", ["zero_weights", "zero_gradient", "both"])
def test_zero_norms_give_local_rate_one(case, implementation):
    rng = np.random.default_rng(3)
    w0 = np.zeros(600) if case in ("zero_weights", "both") else rng.standard_normal(600)
    g = np.zeros(600) if case in ("zero_gradient", "both") else rng.standard_normal(600)
    var = keras.Variable(w0.astype(np.float64))
    opt = kerasopt.Lars(learning_rate=0.5, momentum=0.9, weight_decay=0.1, eta=0.001)
    with kerasopt.implementation(implementation):
        opt.apply_gradients([(tf.constant(g), var)])
    # lambda = 1: v = lr * (g + beta w), w = w - v.
    np.testing.assert_allclose(var.numpy(), w0 - 0.5 * (g + 0.1 * w0), rtol=1e-15, atol=0)
    assert np.all(np.isfinite(opt.momentums[0].numpy()))


# ------------------------------------------------------------------ exclusions


def _bn_model():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(6),
                             keras.layers.BatchNormalization(), keras.layers.Dense(1)])


def _flags(opt, model):
    opt.build(model.trainable_variables)
    return {f"{i}:{v.name}": (opt._variable_weight_decay[i], opt._variable_layer_adaptation[i])
            for i, v in enumerate(model.trainable_variables)}


def test_exclusions_by_name_pattern():
    model = _bn_model()
    opt = kerasopt.Lars(weight_decay=0.01, exclude_from_weight_decay=["bias", "gamma", "beta"])
    flags = _flags(opt, model)
    # exclude_from_layer_adaptation=None: the same variables as weight decay.
    assert flags == {"0:kernel": (0.01, True), "1:bias": (0.0, False), "2:gamma": (0.0, False),
                     "3:beta": (0.0, False), "4:kernel": (0.01, True), "5:bias": (0.0, False)}
    opt = kerasopt.Lars(weight_decay=0.01, exclude_from_weight_decay=["bias"],
                        exclude_from_layer_adaptation=["^gamma$", "beta"])
    flags = _flags(opt, _bn_model())
    assert flags == {"0:kernel": (0.01, True), "1:bias": (0.0, True), "2:gamma": (0.01, False),
                     "3:beta": (0.01, False), "4:kernel": (0.01, True), "5:bias": (0.0, True)}
    # Keras's method works too, and layer adaptation follows it by default.
    opt = kerasopt.Lars(weight_decay=0.01)
    model = _bn_model()
    opt.exclude_from_weight_decay(var_list=[model.trainable_variables[0]], var_names=["gamma"])
    flags = _flags(opt, model)
    assert flags["0:kernel"] == (0.0, False) and flags["2:gamma"] == (0.0, False)
    assert flags["4:kernel"] == (0.01, True)


@pytest.mark.parametrize("implementation", ["kernel", "tf"])
def test_excluded_variable_steps_like_momentum_sgd(implementation):
    rng = np.random.default_rng(1)
    w0, g = rng.standard_normal(50), rng.standard_normal(50)
    kernel = keras.Variable(w0, name="kernel")
    bias = keras.Variable(w0, name="bias")
    hyper = dict(learning_rate=0.3, momentum=0.9, weight_decay=0.05, eta=0.01)
    opt = kerasopt.Lars(**hyper, exclude_from_weight_decay=["bias"])
    with kerasopt.implementation(implementation):
        for _ in range(2):
            opt.apply_gradients([(tf.constant(g), kernel), (tf.constant(g), bias)])
    want_k, v = _reference(hyper, w0, None, g)
    want_k, _ = _reference(hyper, want_k, v, g)
    want_b, v = _reference(hyper, w0, None, g, layer_adaptation=False, weight_decay=0.0)
    want_b, _ = _reference(hyper, want_b, v, g, layer_adaptation=False, weight_decay=0.0)
    np.testing.assert_allclose(kernel.numpy(), want_k, rtol=1e-14)
    np.testing.assert_allclose(bias.numpy(), want_b, rtol=1e-14)
    # The bias is plain heavy-ball SGD: v = 0.9 v + lr g (lr: Keras's float32 0.3).
    lr = float(np.float32(0.3))
    np.testing.assert_allclose(bias.numpy(), w0 - lr * g - (0.9 * lr * g + lr * g), rtol=1e-14)


def test_no_decoupled_weight_decay_is_applied_on_top():
    # With lr = 1, eta tiny and beta = 0.5, Keras's decoupled decay would
    # shrink w by half before the step; LARS moves it by ~eta only.
    w0 = np.full(10, 2.0)
    var = keras.Variable(w0)
    opt = kerasopt.Lars(learning_rate=1.0, momentum=0.0, weight_decay=0.5, eta=1e-6)
    opt.apply_gradients([(tf.constant(np.ones(10)), var)])
    want, _ = _reference(dict(learning_rate=1.0, momentum=0.0, weight_decay=0.5, eta=1e-6),
                         w0, None, np.ones(10))
    np.testing.assert_allclose(var.numpy(), want, rtol=1e-15)
    assert np.all(var.numpy() > 1.99)
    assert opt.get_config()["weight_decay"] == 0.5


# ------------------------------------------------------------------ one op


@pytest.mark.parametrize("multi_tensor", [False, True])
def test_one_fused_op_per_variable_with_the_norms_inside(multi_tensor, monkeypatch):
    """One KerasoptApplyLars per variable, or one KerasoptMultiApplyLars for all."""
    monkeypatch.setenv("KERASOPT_MULTI_TENSOR", "1" if multi_tensor else "0")
    variables = [keras.Variable(np.ones(s, np.float32)) for s in [(3,), (4, 5), ()]]
    opt = kerasopt.Lars()
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
        assert nodes.count("KerasoptMultiApplyLars") == 1 and "KerasoptApplyLars" not in nodes
    else:
        assert nodes.count("KerasoptApplyLars") == len(variables)
    assert "Sum" not in graph_op_types(concrete)


# ------------------------------------------------------------------ convergence


def _minimize(opt, loss_fn, w0, steps):
    var = keras.Variable(np.asarray(w0, np.float32))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(var.value)
        opt.apply_gradients([(tape.gradient(loss, var.value), var)])
        return loss

    for _ in range(steps):
        step()
    return var.numpy(), float(loss_fn(tf.constant(var.numpy())))


def rosenbrock(w):
    return (1.0 - w[0]) ** 2 + 100.0 * (w[1] - w[0] ** 2) ** 2


def ill_conditioned_quadratic(w):
    curvature = tf.constant(np.logspace(0, 2, 10), tf.float32)  # condition number 100
    return 0.5 * tf.reduce_sum(curvature * (w - 1.0) ** 2)


def test_converges_on_rosenbrock_and_an_ill_conditioned_quadratic():
    # The kernel path (the fallback gives the same bits: see the tests above).
    implementation = "kernel"
    # The paper's polynomial decay of the global rate: gamma0 (1 - t/T)^2.
    def schedule(steps, lr):
        return keras.optimizers.schedules.PolynomialDecay(lr, steps, 0.0, power=2.0)

    with kerasopt.implementation(implementation):
        w, loss = _minimize(kerasopt.Lars(schedule(3000, 20.0), momentum=0.9, eta=0.001),
                            rosenbrock, [-1.2, 1.0], 3000)
        assert loss < 1e-4 and np.allclose(w, 1.0, atol=2e-2), (w, loss)
        w, loss = _minimize(kerasopt.Lars(schedule(1000, 20.0), momentum=0.9, eta=0.001),
                            ill_conditioned_quadratic, np.zeros(10) + 3.0, 1000)
        assert loss < 1e-4 * float(ill_conditioned_quadratic(tf.constant(np.full(10, 3.0), tf.float32))), loss


# ------------------------------------------------------------------ Keras API


def test_exported_and_listed():
    assert kerasopt.Lars is kerasopt.optimizers.Lars
    assert kerasopt.Lars in kerasopt.optimizers.ALL
    assert "Lars" in kerasopt.__all__ and "Lars" in kerasopt.optimizers.__all__
    from kerasopt import info
    assert info.collect()["algorithms"]["Lars"]["cpu"] is True


def test_config_round_trip():
    opt = kerasopt.Lars(learning_rate=2.0, momentum=0.8, weight_decay=1e-4, eta=0.002,
                        nesterov=True, exclude_from_weight_decay=["bias"],
                        exclude_from_layer_adaptation=["bias", "gamma"], clipnorm=1.0)
    config = opt.get_config()
    assert config["weight_decay"] == 1e-4 and config["eta"] == 0.002
    assert config["exclude_from_weight_decay"] == ["bias"]
    assert config["exclude_from_layer_adaptation"] == ["bias", "gamma"]
    clone = kerasopt.Lars.from_config(config)
    assert type(clone) is kerasopt.Lars and clone.get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(restored) is kerasopt.Lars and restored.get_config() == config


def test_fit_and_model_save_load_keep_optimizer_state(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = (x @ rng.standard_normal((4, 1))).astype(np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=kerasopt.Lars(learning_rate=0.1, eta=0.05, weight_decay=1e-4,
                                          exclude_from_weight_decay=["bias"]), loss="mse")
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=10, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.5 * first
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is kerasopt.Lars
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert len(model.optimizer.variables) > 2
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


BAD = [
    dict(learning_rate=-0.1),
    dict(momentum=1.5),
    dict(momentum=-0.1),
    dict(weight_decay=-1e-4),
    dict(weight_decay="some"),
    dict(eta=0.0),
    dict(eta=-0.001),
    dict(eta=float("nan")),
    dict(exclude_from_weight_decay="bias"),
    dict(exclude_from_layer_adaptation=["bias", 3]),
    dict(exclude_from_layer_adaptation=["(unclosed"]),
]


@pytest.mark.parametrize("kwargs", BAD, ids=str)
def test_bad_hyperparameters_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        kerasopt.Lars(**kwargs)


def test_binding_checks():
    w = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="momentum_slot"):
        _kernels.lars(w, w.copy(), None, learning_rate=0.1, momentum=0.9, weight_decay=0.0,
                      eta=0.001)
    with pytest.raises(TypeError, match="dtype"):
        _kernels.lars(w, np.ones(3), np.zeros(3, np.float32), learning_rate=0.1, momentum=0.9,
                      weight_decay=0.0, eta=0.001)
