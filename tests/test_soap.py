"""kerasopt.SOAP: the fused op and the fallback against the float64 reference of
second_order_references.py (over basis refreshes), against Shampoo on the
ill-conditioned least-squares problem, saving, and bad arguments.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt

from conftest import classification_data, require_kernel_library
from second_order_references import soap
from test_second_order import (
    least_squares_problem, mlp, random_run, relative_error, run_steps, steps_to_target)

# (shape, block_size, precondition_frequency, weight_decay). Tiles whose statistics'
# null space after step 1 has at most one dimension: there the eigenbasis is unique up
# to signs, which the update does not depend on (in a larger null space eigh may pick
# any basis, and the second moment would then see a different one on each path).
CASES = [
    ((7, 8), 4, 3, 0.0),    # 2 x 2 tiles, the bottom ones padded; refreshes at steps 4, 7
    ((2, 2, 3), 128, 2, 0.1),  # rank 3 as 4 x 3, one tile; weight decay
    ((5,), 128, 2, 0.0),    # rank 1: Adam
]
HYPER = dict(learning_rate=0.0625, beta_1=0.9, beta_2=0.95, shampoo_beta=0.9, epsilon=1e-6)


@pytest.mark.parametrize("shape,block_size,frequency,weight_decay", CASES)
def test_soap_matches_reference(shape, block_size, frequency, weight_decay, impl):
    w0, grads = random_run(shape, 7, "float64")
    hyper = dict(HYPER, block_size=block_size, precondition_frequency=frequency,
                 weight_decay=weight_decay or None)
    got = run_steps(kerasopt.SOAP(**hyper), w0, grads, "float64")
    want = soap(w0, grads, **dict(hyper, weight_decay=weight_decay))
    err = relative_error(got - w0, want - w0)  # error of the total update
    assert err < 1e-7, err


def test_soap_fused_op_equals_fallback_in_float32():
    """The kernel path (KerasoptApplySOAP between TF's matrix products) and the fallback,
    over a refresh, in float32: the same bits; and both within float32 rounding of the
    float64 reference."""
    require_kernel_library()
    w0, grads = random_run((7, 8), 7, "float32")
    hyper = dict(HYPER, block_size=4, precondition_frequency=3, weight_decay=None)
    results = {}
    for path in ("kernel", "tf"):
        with kerasopt.implementation(path):
            results[path] = run_steps(kerasopt.SOAP(**hyper), w0, grads, "float32")
    np.testing.assert_array_equal(results["kernel"], results["tf"])
    want = soap(w0, grads, **dict(hyper, weight_decay=0.0))
    assert relative_error(results["kernel"] - w0, want - w0) < 2e-6


def test_soap_needs_no_more_steps_than_shampoo_on_ill_conditioned_least_squares():
    """The issue's target, on test_second_order's problem (Hessian condition number 1e6):
    steps to cut the loss by 1e4, each optimizer at its best setting of one grid over
    beta_1 (SOAP's Adam momentum; Shampoo's grafted Adam's) and the learning rate,
    beta_2 0.999 for both. beta_1 is in the grid for both because it is SOAP's most
    telling setting here: SOAP's direction carries the momentum, so on this noiseless
    quadratic its loss falls no faster than about beta_1^t (ln 1e-4 / ln 0.8 = 41 steps;
    180 at the paper's 0.95), while Shampoo's direction has none (beta_1 only smooths
    its grafted step norm). Tuning beta_1 for SOAP alone (as this test once did) favoured
    SOAP: at beta_1 0.8 for both Shampoo needs 32 steps, SOAP 42. Learning rates 1 and 2
    only, for CI time: the wider sweep in docs/second-order.md (0.2 to 5) finds each
    within 1 step of its best there (SOAP 18 at 0.7, Shampoo 32 at 2)."""
    problem = least_squares_problem(seed=0)
    budget = 60
    grid = [(beta_1, lr) for beta_1 in (0.5, 0.8) for lr in (1.0, 2.0)]

    def steps(make):
        return {(beta_1, lr): steps_to_target(make(beta_1, lr), problem, 1e-4, budget)
                for beta_1, lr in grid}

    shampoo_steps = steps(lambda beta_1, lr: kerasopt.Shampoo(
        learning_rate=lr, beta_1=beta_1, beta_2=0.999, block_size=16, precondition_frequency=5,
        start_preconditioning_step=1, epsilon=1e-10))
    soap_steps = steps(lambda beta_1, lr: kerasopt.SOAP(
        learning_rate=lr, beta_1=beta_1, beta_2=0.999, epsilon=1e-10, block_size=16,
        precondition_frequency=5, weight_decay=None))
    print(f"\nsteps to 1e-4 of the initial loss, by (beta_1, learning rate): "
          f"Shampoo {shampoo_steps}; SOAP {soap_steps}")
    best_shampoo, best_soap = min(shampoo_steps.values()), min(soap_steps.values())
    assert best_shampoo < budget and best_soap <= best_shampoo, (soap_steps, shampoo_steps)


def test_config_and_save_round_trip(impl, tmp_path):
    optimizer = kerasopt.SOAP(learning_rate=0.01, block_size=8, precondition_frequency=3)
    clone = kerasopt.SOAP.from_config(optimizer.get_config())
    assert clone.get_config() == optimizer.get_config()

    x, labels = classification_data()
    model = mlp()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(x, labels, batch_size=32, epochs=1, shuffle=False, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer) is kerasopt.SOAP
    assert loaded.optimizer.get_config() == optimizer.get_config()
    state = [(v.path, v.numpy()) for v in model.optimizer.variables]
    loaded_state = [(v.path, v.numpy()) for v in loaded.optimizer.variables]
    assert len(state) == len(loaded_state)
    assert any(p.endswith("eigenbasis") for p, _ in state), [p for p, _ in state]
    for (p, value), (loaded_path, loaded_value) in zip(state, loaded_state):
        assert p.rsplit("_", 1)[-1] == loaded_path.rsplit("_", 1)[-1], (p, loaded_path)
        np.testing.assert_array_equal(loaded_value, value, err_msg=p)
    # Continuing from the file gives exactly what continuing in memory gives.
    model.fit(x, labels, batch_size=32, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, labels, batch_size=32, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs,match", [
    ({"beta_1": 1.0}, "beta_1"),
    ({"beta_2": -0.1}, "beta_2"),
    ({"shampoo_beta": 1.5}, "shampoo_beta"),
    ({"epsilon": -1e-8}, "epsilon"),
    ({"precondition_frequency": 0}, "precondition_frequency"),
    ({"block_size": 2.5}, "block_size"),
    ({"learning_rate": -0.1}, "learning_rate"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kerasopt.SOAP(**kwargs)


def test_op_rejects_bad_input_and_writes_nothing():
    lib = require_kernel_library()
    m = tf.Variable(tf.ones((2, 3, 3)), name="m")
    v = tf.Variable(tf.ones((2, 3, 3)), name="v")
    short = tf.Variable(tf.ones((1, 3, 3)), name="short")
    args = dict(learning_rate=0.1, step=1, beta_1=0.9, beta_2=0.95, epsilon=1e-8)
    with pytest.raises(tf.errors.InvalidArgumentError, match="velocity 'short"):
        lib.ops.kerasopt_apply_soap(momentum=m.handle, velocity=short.handle,
                                    rotated_grad=tf.ones((2, 3, 3)), **args)
    with pytest.raises(tf.errors.InvalidArgumentError, match="'beta_2' must be in"):
        lib.ops.kerasopt_apply_soap(momentum=m.handle, velocity=v.handle,
                                    rotated_grad=tf.ones((2, 3, 3)), **dict(args, beta_2=1.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="step counts from 1"):
        lib.ops.kerasopt_apply_soap(momentum=m.handle, velocity=v.handle,
                                    rotated_grad=tf.ones((2, 3, 3)), **dict(args, step=0))
    for variable in (m, v, short):
        np.testing.assert_array_equal(variable.numpy(), 1.0)


def test_eigenbasis_op_matches_numpy_up_to_signs():
    lib = require_kernel_library()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 5, 5))
    a = a @ np.swapaxes(a, -1, -2)
    got = lib.ops.kerasopt_symmetric_eigenbasis(matrix=a).numpy()
    _, vectors = np.linalg.eigh(a)
    want = vectors[..., ::-1]
    signs = np.sign(np.sum(got * want, axis=-2, keepdims=True))
    np.testing.assert_allclose(got * signs, want, atol=1e-12)
    nan = lib.ops.kerasopt_symmetric_eigenbasis(matrix=np.full((2, 2), np.nan)).numpy()
    assert np.all(np.isnan(nan))
    with pytest.raises(tf.errors.InvalidArgumentError, match="square"):
        lib.ops.kerasopt_symmetric_eigenbasis(matrix=np.zeros((2, 3)))
