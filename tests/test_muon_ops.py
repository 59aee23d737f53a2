"""kerasopt.Muon's fused step (kerasopt/optimizers/muon_step.py, cc/tf/muon_ops.cc).

* the traced step runs the fused ops: one KerasoptMuonMomentum, one
  KerasoptMuonUpdateWeights and 2 * ns_steps - 1 KerasoptMuonCombine for all
  Muon matrices (whatever their shapes and orientations), TensorFlow's
  MatMul for the products (3 per matrix and iteration, as Keras), and the
  AdamW variables in one KerasoptMultiApplyMuonAdamW;
* without Newton-Schulz iterations (ns_steps=0, no matrix product) the ops
  give the composed-TF fallback's bits: the momentum, the norm's summation
  order, the scaling, the decay and the write are the same arithmetic;
* with the iterations, kernel, fallback and one op chain per variable
  (KERASOPT_MULTI_TENSOR=0) agree to float32 rounding;
* bad inputs are refused with an error naming what is wrong, and nothing is
  written.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from conftest import graph_op_types, require_kernel_library
from kerasopt.optimizers import multi_tensor

# Three Muon matrices ((24, 40) in both orientations; (6, 6)), a 1-D and a
# 3-D variable (AdamW), an embedding (AdamW).
SHAPES = {"a": (24, 40), "b": (40, 24), "c": (6, 6), "bias": (40,), "cube": (2, 3, 4),
          "token_embedding": (10, 6)}


def _variables(dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    return [keras.Variable(rng.standard_normal(s).astype(dtype), name=n)
            for n, s in SHAPES.items()]


def _gradients(dtype, seed):
    rng = np.random.default_rng(100 + seed)
    return [tf.constant(rng.standard_normal(s).astype(dtype)) for s in SHAPES.values()]


def _train(implementation, steps=6, dtype="float32", multi="1", **kwargs):
    variables = _variables(dtype)
    optimizer = kerasopt.Muon(learning_rate=0.02, **kwargs)
    optimizer.build(variables)

    @tf.function
    def step(gradients):
        optimizer.apply_gradients(zip(gradients, variables))

    old = os.environ.get(multi_tensor.ENV_SWITCH)
    os.environ[multi_tensor.ENV_SWITCH] = multi
    try:
        with kerasopt.implementation(implementation):
            for seed in range(steps):
                step(_gradients(dtype, seed))
            op_types = graph_op_types(step.get_concrete_function(_gradients(dtype, 0)))
    finally:
        if old is None:
            del os.environ[multi_tensor.ENV_SWITCH]
        else:
            os.environ[multi_tensor.ENV_SWITCH] = old
    return [v.numpy() for v in variables + list(optimizer.variables)], op_types


def _count_ops(concrete_function, op_type):
    graph_def = concrete_function.graph.as_graph_def()
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes += function.node_def
    return sum(n.op == op_type for n in nodes)


def test_traced_step_runs_the_fused_ops_for_all_matrices_at_once():
    require_kernel_library()
    variables = _variables()
    optimizer = kerasopt.Muon()
    optimizer.build(variables)

    @tf.function
    def step(gradients):
        optimizer.apply_gradients(zip(gradients, variables))

    with kerasopt.implementation("kernel"):
        concrete = step.get_concrete_function(_gradients("float32", 0))
    types = graph_op_types(concrete)
    assert {"KerasoptMuonMomentum", "KerasoptMuonCombine", "KerasoptMuonUpdateWeights",
            "KerasoptMultiApplyMuonAdamW", "MatMul"} <= types, types
    assert _count_ops(concrete, "KerasoptMuonMomentum") == 1
    assert _count_ops(concrete, "KerasoptMuonUpdateWeights") == 1
    assert _count_ops(concrete, "KerasoptMultiApplyMuonAdamW") == 1
    assert _count_ops(concrete, "KerasoptMuonCombine") == 2 * 5 - 1
    assert _count_ops(concrete, "MatMul") == 3 * 3 * 5  # 3 matrices, 3 products, 5 iterations
    # Nothing element-wise is left to TensorFlow on the matrices (the AddV2s
    # count the step: iterations + 1).
    assert not types & {"Mul", "Transpose", "Sqrt", "RealDiv", "Sub"}, types
    assert _count_ops(concrete, "AddV2") <= 2


@pytest.mark.parametrize("kwargs", [dict(), dict(nesterov=False, rms_rate=None, momentum=0.8),
                                    dict(weight_decay=None, adam_weight_decay=0.1)])
@pytest.mark.parametrize("multi", ["1", "0"])
def test_without_iterations_the_ops_give_the_fallback_bits(kwargs, multi):
    require_kernel_library()
    ours, _ = _train("kernel", ns_steps=0, multi=multi, **kwargs)
    theirs, _ = _train("tf", ns_steps=0, **kwargs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_array_equal(a, b, err_msg=f"array {i}")


def _assert_close(ours, theirs, rtol):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        scale = np.max(np.abs(b)) if b.size else 0.0
        assert np.all(np.abs(a - b) <= rtol * (np.abs(b) + scale)), (i, np.max(np.abs(a - b)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernel_matches_fallback_with_iterations(dtype):
    require_kernel_library()
    ours, types = _train("kernel", dtype=dtype)
    assert "KerasoptMuonMomentum" in types
    theirs, fallback_types = _train("tf", dtype=dtype)
    assert not any(t.startswith("Kerasopt") for t in fallback_types)
    _assert_close(ours, theirs, 1e-5 if dtype == "float32" else 1e-12)
    # One op chain per variable (update_step) agrees as well.
    single, _ = _train("kernel", dtype=dtype, multi="0")
    _assert_close(single, theirs, 1e-5 if dtype == "float32" else 1e-12)


def test_bfloat16_variables_are_computed_in_float32():
    require_kernel_library()
    ours, _ = _train("kernel", dtype="float32", steps=1)
    variables = [keras.Variable(v, dtype="bfloat16", name=n)
                 for v, n in zip(_variables_values(), SHAPES)]
    optimizer = kerasopt.Muon(learning_rate=0.02)
    optimizer.build(variables)
    gradients = [tf.cast(g, tf.bfloat16) for g in _gradients("float32", 0)]
    with kerasopt.implementation("kernel"):
        tf.function(lambda: optimizer.apply_gradients(zip(gradients, variables)))()
    fallback_vars = [keras.Variable(v, dtype="bfloat16", name=n)
                     for v, n in zip(_variables_values(), SHAPES)]
    fallback = kerasopt.Muon(learning_rate=0.02)
    fallback.build(fallback_vars)
    with kerasopt.implementation("tf"):
        tf.function(lambda: fallback.apply_gradients(zip(gradients, fallback_vars)))()
    for a, b in zip(variables, fallback_vars):
        np.testing.assert_allclose(tf.cast(a, tf.float32).numpy(), tf.cast(b, tf.float32).numpy(),
                                   rtol=1e-2, atol=1e-2, err_msg=a.path)
    assert ours  # the float32 run above ran the same problem


def _variables_values():
    return [v.numpy() for v in _variables()]


# ------------------------------------------------------------------ bad inputs


def _ops():
    return require_kernel_library().ops


def test_momentum_op_refuses_a_gradient_of_another_shape_and_writes_nothing():
    ops = _ops()
    m = tf.Variable(tf.ones((3, 4)), name="slot_m")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"slot_m.*\[3,4\].*\[4,3\]"):
        ops.kerasopt_muon_momentum(momentums=[m.handle], grads=[tf.ones((4, 3))], momentum=0.9,
                                   nesterov=True, transposed=[False], C=tf.float32)
    np.testing.assert_array_equal(m.numpy(), np.ones((3, 4)))


def test_momentum_op_refuses_a_transposed_list_of_another_length():
    ops = _ops()
    m1, m2 = tf.Variable(tf.ones((3, 4)), name="first"), tf.Variable(tf.ones((3, 5)),
                                                                     name="second")
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="transposed"):
        ops.kerasopt_muon_momentum(momentums=[m1.handle, m2.handle],
                                   grads=[tf.ones((3, 4)), tf.ones((3, 5))], momentum=0.9,
                                   nesterov=True, transposed=[False], C=tf.float32)
    np.testing.assert_array_equal(m1.numpy(), np.ones((3, 4)))


def test_ops_refuse_other_than_2d_and_a_wrong_batch():
    ops = _ops()
    w = tf.Variable(tf.ones((3, 4)), name="weight")
    with pytest.raises(tf.errors.InvalidArgumentError, match="shape"):
        ops.kerasopt_muon_update_weights(
            vars=[w.handle], x=[tf.ones((4, 3))], product=[tf.ones((4, 3))], muon_a=3.0,
            learning_rate=0.1, weight_decay=0.0, rms_rate=0.2, transposed=[False],
            decayed=[False], scaled=True, combined=True, T=tf.float32)
    np.testing.assert_array_equal(w.numpy(), np.ones((3, 4)))
    v = tf.Variable(tf.ones((12,)), name="flat")
    with pytest.raises(tf.errors.InvalidArgumentError, match="2-D.*flat"):
        ops.kerasopt_muon_update_weights(
            vars=[v.handle], x=[tf.ones((1, 12))], product=[tf.ones((1, 12))], muon_a=3.0,
            learning_rate=0.1, weight_decay=0.0, rms_rate=0.2, transposed=[False],
            decayed=[False], scaled=True, combined=True, T=tf.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="'learning_rate' must be a scalar"):
        ops.kerasopt_muon_update_weights(
            vars=[w.handle], x=[tf.ones((3, 4))], product=[tf.ones((3, 4))], muon_a=3.0,
            learning_rate=[0.1, 0.2], weight_decay=0.0, rms_rate=0.2, transposed=[False],
            decayed=[False], scaled=True, combined=True, T=tf.float32)
    np.testing.assert_array_equal(w.numpy(), np.ones((3, 4)))


def test_momentum_op_refuses_a_momentum_of_another_dtype():
    ops = _ops()
    m = tf.Variable(tf.ones((3, 4), tf.float64), name="wide")
    with pytest.raises(tf.errors.InvalidArgumentError, match="dtype"):
        ops.kerasopt_muon_momentum(momentums=[m.handle], grads=[tf.ones((3, 4))], momentum=0.9,
                                   nesterov=True, transposed=[False], C=tf.float32)
