"""NovoGrad: NumPy binding, kernel and fallback against the float64 reference
(tests/references.py) and each other; the layer-wise second moment (a slot of
shape ()) and ||g|| computed inside the op; identities; weight decay as the
paper's d (not Keras's decoupled decay); convergence, Keras training, saving.

Tolerances are one-step bounds as in tests/test_adam_variants_from_papers.py:
|got - ref| <= 2 eps_s |ref| + 2 eps_c |ref| + 16 eps_c scale + tiny_s with
`scale` the magnitudes of the terms forming the value (for the weight,
|w| + lr (beta_1 |m| + |g| / (sqrt(v) + eps) + d |w|), since w - lr m and the
momentum's terms may cancel). ||g||^2 is summed in float64 and rounded once.
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
from conftest import SHAPES, assert_bit_identical, graph_op_types, regression_data, require_kernel_library
from problems import minimize, quadratic, rosenbrock

DTYPES = ["float16", "bfloat16", "float32", "float64"]
NP_DTYPE = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16,
            "float32": np.float32, "float64": np.float64}
HYPER = {
    "paper": dict(learning_rate=0.01, beta_1=0.8, beta_2=0.9, epsilon=1e-6, weight_decay=0.01),
    "averaging": dict(learning_rate=0.05, beta_1=0.5, beta_2=0.99, epsilon=1e-3,
                      weight_decay=0.0, grad_averaging=True),
}
STEPS = 6


def eps(dtype):
    return float(ml_dtypes.finfo(NP_DTYPE[dtype]).eps)


def compute_eps(dtype):
    return eps("float64") if dtype == "float64" else eps("float32")


def tiny(dtype):
    return float(ml_dtypes.finfo(NP_DTYPE[dtype]).smallest_subnormal)


def assert_close(got, want, scale, dtype, what):
    got = np.asarray(got, np.float64)
    e_s, e_c = eps(dtype), compute_eps(dtype)
    tol = 2 * e_s * np.abs(want) + 2 * e_c * np.abs(want) + 16 * e_c * scale + tiny(dtype)
    bad = ~(np.abs(got - want) <= tol)
    assert not bad.any(), (
        f"{what} ({dtype}): {bad.sum()} of {bad.size} elements off, e.g. got "
        f"{got[bad][:3]} want {want[bad][:3]}")


def check_step(hp, dtype, before, after, g, t, where):
    w, m, v = (np.asarray(x, np.float64) for x in before)
    g = np.asarray(g, np.float64)
    want = ref.novograd(w, g, m, v, step=t, **hp)
    den = np.sqrt(want[2]) + hp["epsilon"]
    scale = (1 - hp["beta_1"]) if hp.get("grad_averaging") else 1.0
    m_scale = hp["beta_1"] * np.abs(m) + scale * (np.abs(g) / den + hp["weight_decay"] * np.abs(w))
    w_scale = np.abs(w) + hp["learning_rate"] * m_scale
    for k, (label, sc) in enumerate([("weight", w_scale), ("momentum", m_scale),
                                     ("velocity", np.abs(want[2]))]):
        assert_close(after[k], want[k], sc, dtype, f"{where} step {t} {label}")


def binding_step(hp, arrays, g, t):
    _kernels.novograd(arrays[0], g, arrays[1], arrays[2], step=t, **hp)


# ------------------------------------------------------------ NumPy binding


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hyper", list(HYPER))
def test_binding_matches_reference_step_by_step(hyper, dtype):
    hp = HYPER[hyper]
    rng = np.random.default_rng(zlib.crc32(f"{hyper}-{dtype}".encode()))
    for shape in SHAPES:
        arrays = [rng.standard_normal(shape).astype(NP_DTYPE[dtype]),
                  np.zeros(shape, NP_DTYPE[dtype]), np.zeros((), NP_DTYPE[dtype])]
        for t in range(1, STEPS + 1):
            g = np.asarray(np.exp(rng.uniform(-2, 1)) * rng.standard_normal(shape)).astype(NP_DTYPE[dtype])
            before = [a.astype(np.float64) for a in arrays]
            binding_step(hp, arrays, g, t)
            assert arrays[2].shape == () and arrays[2].dtype == NP_DTYPE[dtype]
            check_step(hp, dtype, before, arrays, g, t, f"binding {shape}")


def test_binding_rejects_a_velocity_of_the_wrong_shape_or_dtype():
    hp = HYPER["paper"]
    w, g, m = np.ones(4, np.float32), np.ones(4, np.float32), np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="shape"):
        _kernels.novograd(w, g, m, np.zeros(4, np.float32), step=1, **hp)
    with pytest.raises(TypeError, match="dtype"):
        _kernels.novograd(w, g, m, np.zeros((), np.float64), step=1, **hp)
    with pytest.raises(ValueError, match="shape"):
        _kernels.novograd(w, g, np.zeros(3, np.float32), np.zeros((), np.float32), step=1, **hp)
    with pytest.raises(ValueError, match="step"):
        _kernels.novograd(w, g, m, np.zeros((), np.float32), step=0, **hp)
    np.testing.assert_array_equal(w, 1.0)
    np.testing.assert_array_equal(m, 0.0)


# ------------------------------------------------- kernel and fallback paths


def run_keras_steps(hp, dtype, implementation, seed):
    rng = np.random.default_rng(seed)
    variables = [keras.Variable(rng.standard_normal(s).astype(NP_DTYPE[dtype]), dtype=dtype)
                 for s in SHAPES]
    grads = [[(np.exp(rng.uniform(-2, 1)) * rng.standard_normal(s)).astype(NP_DTYPE[dtype])
              for s in SHAPES] for _ in range(STEPS)]
    opt = kerasopt.NovoGrad(**hp)
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


@pytest.mark.parametrize("hyper,dtype", [("paper", d) for d in DTYPES]
                         + [("averaging", "float32"), ("averaging", "bfloat16")])
def test_kernel_and_fallback_match_reference_and_each_other(hyper, dtype):
    hp = HYPER[hyper]
    ref_hp = dict(hp, learning_rate=float(np.float32(hp["learning_rate"])))
    seed = zlib.crc32(f"{hyper}-{dtype}-keras".encode())
    kernel, grads = run_keras_steps(hp, dtype, "kernel", seed)
    fallback, _ = run_keras_steps(hp, dtype, "tf", seed)
    for t in range(1, STEPS + 1):
        for i, shape in enumerate(SHAPES):
            assert kernel[t][i][2].shape == ()
            for a, b in zip(kernel[t][i], fallback[t][i]):
                assert_bit_identical(a, b, f"kernel vs fallback, {shape}, step {t}")
            check_step(ref_hp, dtype, kernel[t - 1][i], kernel[t][i], grads[t - 1][i], t,
                       f"kernel {shape}")
    i = SHAPES.index((1025,))
    arrays = [np.array(x) for x in kernel[0][i]]
    for t in range(1, STEPS + 1):
        binding_step(ref_hp, arrays, grads[t - 1][i], t)
        for a, b in zip(arrays, kernel[t][i]):
            assert_bit_identical(a, b, f"binding vs kernel, step {t}")


@pytest.mark.parametrize("multi_tensor", [False, True])
def test_one_fused_op_per_variable_with_the_norm_inside(multi_tensor, monkeypatch):
    """One KerasoptApplyNovoGrad per variable, or one KerasoptMultiApplyNovoGrad for all."""
    monkeypatch.setenv("KERASOPT_MULTI_TENSOR", "1" if multi_tensor else "0")
    variables = [keras.Variable(np.ones(s, np.float32)) for s in [(3,), (4, 5), ()]]
    opt = kerasopt.NovoGrad()
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
        assert (nodes.count("KerasoptMultiApplyNovoGrad") == 1
                and "KerasoptApplyNovoGrad" not in nodes)
    else:
        assert nodes.count("KerasoptApplyNovoGrad") == len(variables)
    assert not {"Sum", "Sqrt", "Cumsum"} & graph_op_types(concrete)


def test_op_rejects_a_velocity_slot_that_is_not_a_scalar():
    ops = require_kernel_library().ops
    w = tf.Variable(np.ones(3, np.float32))
    m, v = tf.Variable(np.zeros(3, np.float32)), tf.Variable(np.zeros(3, np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"one value per variable"):
        ops.kerasopt_apply_novo_grad(features=[], var=w.handle, slots=[m.handle, v.handle], grad=tf.ones(3),
                                     learning_rate=0.1, beta_1=0.9, beta_2=0.99, epsilon=1e-7,
                                     weight_decay=0.0, step=tf.constant(1, tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="step counts from 1"):
        ops.kerasopt_apply_novo_grad(features=[], var=w.handle, slots=[m.handle, tf.Variable(0.0).handle],
                                     grad=tf.ones(3), learning_rate=0.1, beta_1=0.9, beta_2=0.99,
                                     epsilon=1e-7, weight_decay=0.0,
                                     step=tf.constant(0, tf.int64))
    np.testing.assert_array_equal(w.numpy(), np.ones(3, np.float32))


def novograd_digests():
    """sha256 of NovoGrad's weight and velocity after 2 steps on 100_001
    float32 elements (196 blocks of the driver), per path."""
    import hashlib

    out = {}
    for impl in ("kernel", "tf"):
        rng = np.random.default_rng(0)
        var = keras.Variable(rng.standard_normal(100_001).astype("float32"))
        opt = kerasopt.NovoGrad(learning_rate=0.01)
        with kerasopt.implementation(impl):
            for _ in range(2):
                g = rng.standard_normal(100_001).astype("float32")
                opt.apply_gradients([(tf.constant(g), var)])
        out[impl] = hashlib.sha256(
            var.numpy().tobytes() + opt.variables[-1].numpy().tobytes()).hexdigest()
    return out


_ONE_THREAD = """
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
sys.path.insert(0, sys.argv[1])
import test_novograd
print(json.dumps(test_novograd.novograd_digests()))
"""


def test_same_bits_with_one_thread_or_all_on_both_paths(tmp_path):
    """||g||^2 summed over 196 blocks: the same bits with one intra-op thread
    (a subprocess) as with TensorFlow's default pool (this process), and the
    fallback sums in the kernel's order (the same bits again)."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    # -P: import the installed kerasopt, never a source tree in the working directory.
    run = subprocess.Popen([sys.executable, "-P", "-c", _ONE_THREAD, os.path.dirname(__file__)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           cwd=tmp_path)
    here = novograd_digests()
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr[-2000:]
    assert json.loads(stdout.strip().splitlines()[-1]) == here
    assert here["kernel"] == here["tf"]


# ------------------------------------------------------------ identities


@pytest.mark.parametrize("implementation", ["kernel", "tf"])
def test_update_is_invariant_to_the_scale_of_a_layers_gradient(implementation):
    """With epsilon = 0 and no decay the gradient enters only as g / ||g||-ish
    (v scales by c^2, sqrt(v) by c): scaling a variable's gradients by c = 8
    (exact in binary) gives the same bits."""
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((33, 17)).astype(np.float32)
    grads = [rng.standard_normal((33, 17)).astype(np.float32) for _ in range(5)]
    out = []
    for c in (1.0, 8.0):
        var = keras.Variable(w0)
        opt = kerasopt.NovoGrad(learning_rate=0.01, epsilon=0.0)
        with kerasopt.implementation(implementation):
            for g in grads:
                opt.apply_gradients([(tf.constant(c * g), var)])
        out.append(var.numpy())
    np.testing.assert_array_equal(out[0], out[1])


def test_first_step_is_the_papers_initialization():
    """Step 1: v_1 = ||g_1||^2, m_1 = g_1 / (||g_1|| + eps) + d w_0, w_1 = w_0 - lr m_1."""
    rng = np.random.default_rng(4)
    w0, g = rng.standard_normal(700), rng.standard_normal(700)
    w, m, v = w0.copy(), np.zeros(700), np.array(123.0)  # v's old value is ignored at t = 1
    _kernels.novograd(w, g, m, v, learning_rate=0.1, beta_1=0.9, beta_2=0.5, epsilon=1e-4,
                      weight_decay=0.01, step=1)
    norm = np.linalg.norm(g)
    np.testing.assert_allclose(float(v), norm ** 2, rtol=1e-14)
    np.testing.assert_allclose(m, g / (norm + 1e-4) + 0.01 * w0, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(w, w0 - 0.1 * m, rtol=1e-13, atol=1e-15)


def test_weight_decay_is_the_papers_d_not_keras_decoupled_decay():
    """weight_decay enters the momentum (d w), and Keras's generic decoupled
    decay (w -= lr wd w before the step) is NOT applied on top."""
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal(50).astype(np.float64)
    grads = [rng.standard_normal(50) for _ in range(4)]
    var = keras.Variable(w0, dtype="float64")
    opt = kerasopt.NovoGrad(learning_rate=0.1, weight_decay=0.3)
    for g in grads:
        opt.apply_gradients([(tf.constant(g), var)])
    w, m, v = w0.copy(), np.zeros(50), np.float64(0.0)
    for t, g in enumerate(grads, start=1):
        w, m, v = ref.novograd(w, g, m, v, learning_rate=float(np.float32(0.1)), beta_1=0.9,
                               beta_2=0.999, epsilon=1e-7, weight_decay=0.3, step=t)
    np.testing.assert_allclose(var.numpy(), w, rtol=1e-12)


def test_exclude_from_weight_decay_sets_d_to_zero():
    rng = np.random.default_rng(6)
    variables = [keras.Variable(rng.standard_normal(5), dtype="float64", name=n)
                 for n in ("kernel", "bias")]
    grads = [rng.standard_normal(5), rng.standard_normal(5)]
    opt = kerasopt.NovoGrad(learning_rate=0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"])
    plain = kerasopt.NovoGrad(learning_rate=0.1)
    twins = [keras.Variable(v.numpy(), dtype="float64", name=v.name) for v in variables]
    opt.apply_gradients(zip([tf.constant(g) for g in grads], variables))
    plain.apply_gradients(zip([tf.constant(g) for g in grads], twins))
    np.testing.assert_array_equal(variables[1].numpy(), twins[1].numpy())  # bias: no decay
    assert not np.allclose(variables[0].numpy(), twins[0].numpy())        # kernel: decayed


# ------------------------------------------------------------ convergence, Keras


def test_converges_on_rosenbrock_and_an_ill_conditioned_quadratic(impl):
    # One variable holding (x, y): NovoGrad normalizes the pair's gradient
    # jointly, so it cannot undo the quadratic's conditioning per coordinate
    # (it needs the larger rate there). Rates chosen with the float64 reference.
    value, point = minimize(kerasopt.NovoGrad(learning_rate=0.001), rosenbrock, [0.0, 0.0], 3000)
    assert value < 1e-5 and np.allclose(point, [1.0, 1.0], atol=0.01), (value, point)
    start = np.ones(10, np.float32)
    value, _ = minimize(kerasopt.NovoGrad(learning_rate=0.1), quadratic, start, 3000)
    assert value < 1e-5 * float(quadratic(tf.constant(start))), value


def test_fit_then_config_and_model_save_round_trip(tmp_path):
    opt = kerasopt.NovoGrad(learning_rate=0.1, beta_1=0.95, beta_2=0.98, weight_decay=0.001,
                            grad_averaging=True)
    config = opt.get_config()
    assert config["weight_decay"] == 0.001 and config["grad_averaging"] is True
    clone = kerasopt.NovoGrad.from_config(config)
    assert clone.get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(restored) is kerasopt.NovoGrad and restored.get_config() == config

    x, y = regression_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=opt, loss="mse")
    initial = float(model.evaluate(x, y, verbose=0))
    model.fit(x, y, batch_size=32, epochs=6, shuffle=False, verbose=0)
    final = float(model.evaluate(x, y, verbose=0))
    assert final < 0.2 * initial, (initial, final)

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is kerasopt.NovoGrad
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    before = [v.numpy() for v in model.optimizer.variables]
    after = [v.numpy() for v in loaded.optimizer.variables]
    assert len(before) == len(after) == 2 + 2 * 4  # iterations, learning rate, 2 slots x 4
    assert [np.shape(b) for b in before].count(()) == 2 + 4  # iterations, lr, 4 velocities
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_exported_and_listed():
    assert kerasopt.NovoGrad in kerasopt.optimizers.ALL
    assert "NovoGrad" in kerasopt.__all__ and "NovoGrad" in kerasopt.optimizers.__all__


BAD = [
    dict(learning_rate=-0.1),
    dict(beta_1=1.0),
    dict(beta_2=-0.5),
    dict(epsilon=-1e-7),
    dict(weight_decay=-0.01),
    dict(weight_decay="heavy"),
]


@pytest.mark.parametrize("kwargs", BAD, ids=str)
def test_bad_hyperparameters_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        kerasopt.NovoGrad(**kwargs)

