"""FullMatrixAdagrad, Shampoo and the matrix inverse-root kernel.

Kernel and fallback against the float64 NumPy references of
second_order_references.py, near-singular roots, an ill-conditioned
least-squares race against Adam, training, config and saving, bad arguments.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt.fallback.matrix_root import matrix_inverse_root as fallback_root

from conftest import classification_data, np_dtype, require_kernel_library, tf_dtype
from second_order_references import full_matrix_adagrad, inverse_root, shampoo

# Relative error allowed against the float64 references, per storage dtype.
TOLERANCE = {"float64": 1e-7, "float32": 2e-4, "float16": 3e-2, "bfloat16": 6e-2}


def relative_error(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300)


def random_spd(rng, batch, n, condition=1e3):
    """Random SPD matrices with eigenvalues spread log-uniformly over `condition`."""
    q, _ = np.linalg.qr(rng.standard_normal((batch, n, n)))
    lam = np.logspace(0, -np.log10(condition), n)
    return (q * lam[None, None, :]) @ np.swapaxes(q, -1, -2)


# --- the inverse-root kernel -------------------------------------------------------


def kernel_roots(a, p, epsilon):
    """The same root through the pybind binding, the TF op and the fallback."""
    lib = require_kernel_library()
    from kerasopt import _kernels

    return {
        "binding": _kernels.matrix_inverse_root(a, p, epsilon),
        "op": lib.ops.kerasopt_matrix_inverse_root(matrix=a, epsilon=epsilon, p=p).numpy(),
        "fallback": fallback_root(tf.constant(a), p, epsilon).numpy(),
    }


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("p", [2, 4])
def test_inverse_root_matches_numpy_on_random_spd(dtype, p):
    rng = np.random.default_rng(p)
    for n in (1, 5, 33):
        a64 = random_spd(rng, 3, n, condition=1e2 if dtype in ("float16", "bfloat16") else 1e4)
        a = a64.astype(np_dtype(dtype))
        want = inverse_root(a.astype(np.float64), p, 1e-6)  # the root of the stored input
        for path, got in kernel_roots(a, p, 1e-6).items():
            assert got.dtype == a.dtype and got.shape == a.shape, path
            err = relative_error(got, want)
            assert err < TOLERANCE[dtype], (path, n, err)


def test_inverse_root_near_singular_is_finite_and_damped():
    rng = np.random.default_rng(0)
    n, rank = 24, 3
    b = rng.standard_normal((2, n, rank))
    singular = b @ np.swapaxes(b, -1, -2)  # rank 3: 21 zero eigenvalues
    singular[1] -= 1e-12 * np.eye(n)       # and slightly negative ones
    zero = np.zeros((1, n, n))
    for a, epsilon in ((singular, 1e-4), (singular, 1e-8), (zero, 1e-6)):
        want = inverse_root(a, 4, epsilon)
        # The kernel raises eigenvalues below the decomposition's round-off
        # (n * DBL_EPSILON * lambda_max) to that floor; the reference clips at 0.
        floor = n * np.finfo(np.float64).eps * np.abs(np.linalg.eigvalsh(a)).max()
        for path, got in kernel_roots(a, 4, epsilon).items():
            assert np.all(np.isfinite(got)), path
            assert relative_error(got, want) < floor / epsilon + 1e-9, (path, epsilon)
            # The damping bounds the root: no eigenvalue above epsilon^(-1/4).
            assert np.linalg.eigvalsh(got).max() <= epsilon ** -0.25 * (1 + 1e-9), path
    for path, got in kernel_roots(zero, 2, 1e-6).items():
        np.testing.assert_allclose(got[0], 1e3 * np.eye(n), rtol=1e-9, err_msg=path)


@pytest.mark.parametrize("p", [2, 4])
def test_inverse_root_of_float32_statistics_is_accurate_to_float32_rounding(p):
    """kappa = 1e7 float32 statistics: the float64 decomposition inside leaves only the
    rounding of the float32 result (about 2.5e-8 relative; float32 LAPACK gives 2e-7)."""
    require_kernel_library()
    from kerasopt import _kernels

    a = random_spd(np.random.default_rng(1), 1, 64, condition=1e7).astype(np.float32)
    want = inverse_root(a.astype(np.float64), p, 1e-9)
    assert relative_error(_kernels.matrix_inverse_root(a, p, 1e-9), want) < 6e-8


def test_inverse_root_rejects_bad_input():
    lib = require_kernel_library()
    from kerasopt import _kernels

    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match="square"):
        lib.ops.kerasopt_matrix_inverse_root(matrix=np.zeros((2, 3)), epsilon=1e-3, p=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="epsilon"):
        lib.ops.kerasopt_matrix_inverse_root(matrix=np.eye(2), epsilon=-1.0, p=2)
    with pytest.raises(ValueError, match=r"\[\.\.\., n, n\]"):
        _kernels.matrix_inverse_root(np.zeros((2, 3)), 2, 1e-3)
    with pytest.raises(ValueError, match="p must be"):
        _kernels.matrix_inverse_root(np.eye(2), 0, 1e-3)
    nan = _kernels.matrix_inverse_root(np.full((2, 2), np.nan), 2, 1e-3)
    assert np.all(np.isnan(nan))


# --- the optimizers against the references -------------------------------------------


def run_steps(optimizer, w0, grads, dtype):
    variable = tf.Variable(w0.astype(np_dtype(dtype)), dtype=tf_dtype(dtype))
    step = tf.function(lambda g: optimizer.apply([g], [variable]))
    for g in grads:
        step(tf.constant(g.astype(np_dtype(dtype))))
    return variable.numpy().astype(np.float64)


def random_run(shape, steps, dtype, seed=0):
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(shape).astype(np_dtype(dtype)).astype(np.float64)
    grads = [rng.standard_normal(shape).astype(np_dtype(dtype)).astype(np.float64)
             for _ in range(steps)]
    return w0, grads


FULL_MATRIX_CASES = [  # (shape, block_size, update_frequency)
    ((10,), 64, 1),    # one block: exact full-matrix AdaGrad
    ((3, 5), 4, 1),    # 4 blocks, the last one padded
    ((2, 3, 4), 8, 3),  # stale preconditioners between recomputations
]


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("shape,block_size,update_frequency", FULL_MATRIX_CASES)
def test_full_matrix_adagrad_matches_reference(shape, block_size, update_frequency, dtype, impl):
    w0, grads = random_run(shape, 6, dtype)
    hyper = dict(learning_rate=0.125, epsilon=1e-7, block_size=block_size,
                 update_frequency=update_frequency, initial_accumulator_value=0.1)
    got = run_steps(kerasopt.FullMatrixAdagrad(**hyper), w0, grads, dtype)
    want = full_matrix_adagrad(w0, grads, **hyper)
    err = relative_error(got - w0, want - w0)  # error of the total update
    assert err < TOLERANCE[dtype] * (1 if dtype in ("float32", "float64") else 4), err


def test_full_matrix_adagrad_with_block_size_one_is_adagrad(impl):
    w0, grads = random_run((4, 6), 5, "float64")
    # 0.125: exact in float32, as Keras holds the learning rate and the initial value.
    hyper = dict(learning_rate=0.125, initial_accumulator_value=0.125)
    got = run_steps(kerasopt.FullMatrixAdagrad(block_size=1, **hyper), w0, grads, "float64")
    diagonal = run_steps(kerasopt.Adagrad(**hyper), w0, grads, "float64")
    np.testing.assert_allclose(got, diagonal, rtol=1e-12)


SHAMPOO_CASES = [  # (shape, block_size, grafting)
    ((6, 5), 4, "adam"),      # 2 x 2 tiles, padded on both sides
    ((2, 3, 4), 128, "sgd"),  # rank 3 viewed as 6 x 4, one tile
    ((5, 7), 3, None),
]


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("shape,block_size,grafting", SHAMPOO_CASES)
def test_shampoo_matches_reference(shape, block_size, grafting, dtype, impl):
    w0, grads = random_run(shape, 7, dtype)
    hyper = dict(learning_rate=0.0625, epsilon=1e-4, block_size=block_size,
                 precondition_frequency=2, start_preconditioning_step=2, grafting=grafting)
    got = run_steps(kerasopt.Shampoo(**hyper), w0, grads, dtype)
    want = shampoo(w0, grads, **hyper)
    err = relative_error(got - w0, want - w0)
    assert err < TOLERANCE[dtype] * (1 if dtype in ("float32", "float64") else 4), err


@pytest.mark.parametrize("grafting", ["adam", "sgd", None])
def test_shampoo_one_dimensional_variables_take_the_diagonal_update(grafting, impl):
    w0, grads = random_run((9,), 4, "float32")
    got = run_steps(kerasopt.Shampoo(learning_rate=0.1, grafting=grafting, epsilon=1e-7),
                    w0, grads, "float32")
    diagonal = {"adam": lambda: kerasopt.Adam(learning_rate=0.1),
                "sgd": lambda: kerasopt.SGD(learning_rate=0.1),
                None: lambda: kerasopt.Adagrad(learning_rate=0.1, initial_accumulator_value=0.0,
                                               epsilon=1e-7)}[grafting]()
    np.testing.assert_array_equal(got, run_steps(diagonal, w0, grads, "float32"))


# --- an ill-conditioned least-squares problem in a matrix variable -----------------


def least_squares_problem(n=16, seed=0):
    """f(W) = ||A W B - C||^2 / (2 n^2) with rotated A, B: the Hessian (B B^T) kron (A^T A)
    has condition number 1e4 * 1e2 = 1e6 and no axis-aligned structure for Adam to use."""
    rng = np.random.default_rng(seed)
    qa, _ = np.linalg.qr(rng.standard_normal((n, n)))
    qb, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = qa @ np.diag(np.logspace(0, -2, n)) @ qa.T   # kappa(A^T A) = 1e4
    b = qb @ np.diag(np.logspace(0, -1, n)) @ qb.T   # kappa(B B^T) = 1e2
    w_star = rng.standard_normal((n, n))
    return tf.constant(a), tf.constant(b), tf.constant(a @ w_star @ b)


def steps_to_target(optimizer, problem, target, max_steps):
    """Steps until the loss is below target * its initial value (max_steps if never)."""
    a, b, c = problem
    n = a.shape[0]
    w = tf.Variable(tf.zeros((n, n), tf.float64))

    def loss():
        return tf.reduce_sum(tf.square(a @ w @ b - c)) / (2 * n * n)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            value = loss()
        optimizer.apply([tape.gradient(value, w)], [w])
        return value

    initial = float(loss())
    for t in range(max_steps):
        if float(step()) <= target * initial:
            return t
    return max_steps


@pytest.mark.parametrize("seed", [0, 1])
def test_shampoo_beats_adam_on_ill_conditioned_least_squares(seed):
    """Each optimizer with its best learning rate from one grid that brackets both optima;
    Shampoo (grafted to Adam, so the same learning rates apply) needs at least 4x fewer
    steps to cut the loss by 1e4. Kernel path (the fallback's numbers are tested above)."""
    problem = least_squares_problem(seed=seed)
    learning_rates = [0.3, 1.0, 3.0]
    budget = 1000

    def best(make):
        steps = [steps_to_target(make(lr), problem, 1e-4, budget) for lr in learning_rates]
        assert min(steps) < budget, steps
        return min(steps), steps

    adam, adam_steps = best(lambda lr: kerasopt.Adam(learning_rate=lr))
    shampoo_best, shampoo_steps = best(lambda lr: kerasopt.Shampoo(
        learning_rate=lr, block_size=16, precondition_frequency=5, start_preconditioning_step=1,
        epsilon=1e-10))
    # Adam's optimum lies inside the grid (the grid is not just too small for Adam).
    assert adam_steps[1] < adam_steps[0] and adam_steps[1] < adam_steps[2], adam_steps
    assert shampoo_best * 4 <= adam, (shampoo_steps, adam_steps)


# --- Keras: fit, config, saving, arguments --------------------------------------------------


OPTIMIZERS = {
    "full_matrix_adagrad": lambda: kerasopt.FullMatrixAdagrad(learning_rate=0.05, block_size=16,
                                                              update_frequency=2),
    "shampoo": lambda: kerasopt.Shampoo(learning_rate=0.01, block_size=8, precondition_frequency=3,
                                        start_preconditioning_step=2),
}


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_fit_trains(name, impl):
    x, labels = classification_data()
    model = mlp()
    model.compile(optimizer=OPTIMIZERS[name](), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    initial_loss, _ = model.evaluate(x, labels, verbose=0)
    model.fit(x, labels, batch_size=32, epochs=5, shuffle=False, verbose=0)
    loss, accuracy = model.evaluate(x, labels, verbose=0)
    assert loss < 0.3 * initial_loss and accuracy > 0.9, (initial_loss, loss, accuracy)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_config_and_save_round_trip_with_statistics(name, impl, tmp_path):
    optimizer = OPTIMIZERS[name]()
    clone = type(optimizer).from_config(optimizer.get_config())
    assert clone.get_config() == optimizer.get_config()

    x, labels = classification_data()
    model = mlp()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(x, labels, batch_size=32, epochs=1, shuffle=False, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer) is type(optimizer)
    assert loaded.optimizer.get_config() == optimizer.get_config()
    # Variables come back in creation order (names differ: Keras numbers layers and optimizers).
    state = [(v.path, v.numpy()) for v in model.optimizer.variables]
    loaded_state = [(v.path, v.numpy()) for v in loaded.optimizer.variables]
    assert len(state) == len(loaded_state)
    statistics = [value for path, value in state if path.endswith("statistics")]
    assert statistics and all(np.any(value != 0) for value in statistics), [p for p, _ in state]
    for (path, value), (loaded_path, loaded_value) in zip(state, loaded_state):
        assert path.rsplit("_", 1)[-1] == loaded_path.rsplit("_", 1)[-1], (path, loaded_path)
        np.testing.assert_array_equal(loaded_value, value, err_msg=path)
    # Continuing from the file gives exactly what continuing in memory gives.
    model.fit(x, labels, batch_size=32, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, labels, batch_size=32, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls,kwargs,match", [
    (kerasopt.FullMatrixAdagrad, {"block_size": 0}, "block_size"),
    (kerasopt.FullMatrixAdagrad, {"update_frequency": 1.5}, "update_frequency"),
    (kerasopt.FullMatrixAdagrad, {"epsilon": 0.0}, "epsilon"),
    (kerasopt.FullMatrixAdagrad, {"initial_accumulator_value": -1.0}, "initial_accumulator_value"),
    (kerasopt.Shampoo, {"grafting": "adagrad"}, "grafting"),
    (kerasopt.Shampoo, {"precondition_frequency": 0}, "precondition_frequency"),
    (kerasopt.Shampoo, {"start_preconditioning_step": -2}, "start_preconditioning_step"),
    (kerasopt.Shampoo, {"epsilon": float("nan")}, "epsilon"),
    (kerasopt.Shampoo, {"beta_2": 1.0}, "beta_2"),
    (kerasopt.Shampoo, {"learning_rate": -0.1}, "learning_rate"),
])
def test_bad_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_op_rejects_mismatched_statistics():
    lib = require_kernel_library()
    var = tf.Variable(tf.zeros((10,)), name="w")
    stats = tf.Variable(tf.zeros((3, 4, 4)), name="stats")  # 10 coordinates need 3 blocks of 4
    bad = tf.Variable(tf.zeros((2, 4, 4)), name="bad")
    with pytest.raises(tf.errors.InvalidArgumentError, match="statistics 'bad"):
        lib.ops.kerasopt_apply_full_matrix_adagrad(
            features=[], var=var.handle, slots=[bad.handle, bad.handle], grad=tf.ones((10,)),
            learning_rate=0.1, step=1, epsilon=1e-3, update_frequency=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="epsilon"):
        lib.ops.kerasopt_apply_full_matrix_adagrad(
            features=[], var=var.handle, slots=[stats.handle, stats.handle], grad=tf.ones((10,)),
            learning_rate=0.1, step=1, epsilon=0.0, update_frequency=1)
    np.testing.assert_array_equal(var.numpy(), 0)  # nothing half-written
    with pytest.raises(tf.errors.InvalidArgumentError, match="rank >= 2"):
        lib.ops.kerasopt_apply_shampoo(
            features=[], var=var.handle, slots=[stats.handle] * 4, grad=tf.ones((10,)), learning_rate=0.1,
            step=1, epsilon=1e-3, beta_1=0.9, beta_2=0.999, graft_epsilon=1e-7,
            precondition_frequency=1, start_preconditioning_step=1, sgd_grafting=True)


def test_jit_compile_runs_the_fallback_and_trains():
    """XLA cannot run custom ops: the composed-TF fallback (tf.linalg.eigh roots) serves."""
    x, labels = classification_data()
    model = mlp()
    model.compile(optimizer=OPTIMIZERS["shampoo"](), loss="sparse_categorical_crossentropy",
                  jit_compile=True)
    initial_loss = model.evaluate(x, labels, verbose=0)
    model.fit(x, labels, batch_size=32, epochs=3, shuffle=False, verbose=0)
    assert model.evaluate(x, labels, verbose=0) < 0.3 * initial_loss
