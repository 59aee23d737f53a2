"""KerasoptMultiGradientStats (cc/tf/gradient_stats_op.cc): every gradient's
sum of squares and one finiteness flag, in one read and one launch; what
``nonfinite.all_finite`` runs on the CPU for LossScaleOptimizer and the
``nonfinite=`` option (issue 19: the finite check reads the gradients once,
in one launch instead of two ops per gradient).

The sums are checked to the bit against a NumPy replay of the order
cc/cpu/gradient_stats.h documents (chunks, lanes, the lanes' tree), which
makes them independent of the thread count; the flag against NumPy's isfinite.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from conftest import graph_op_types, require_kernel_library
from kerasopt.optimizers import nonfinite

CHUNK = 16384  # cc/cpu/gradient_stats.h: kStatsChunk
LANES = 32  # kStatsLanes

# Sizes around the lanes' and chunks' edges, and one of many chunks.
SIZES = [1, 31, 32, 33, 513, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17, 200_003]


def _stats(grads):
    ops = require_kernel_library().ops
    sums, finite = ops.kerasopt_multi_gradient_stats([tf.constant(g) for g in grads])
    return sums.numpy(), bool(finite.numpy())


def replay(x) -> float:
    """The op's order in NumPy: per chunk, lane j % LANES summed in element
    order (cumsum is sequential), the lanes added as a tree of adjacent pairs;
    the chunks added in order. Squares of float64 values of 16/32-bit
    numbers are exact, so only these sums round."""
    x = np.asarray(x).astype(np.float64).ravel()
    total = 0.0
    for start in range(0, x.size, CHUNK):
        chunk = x[start:start + CHUNK]
        rows = np.concatenate([chunk, np.zeros(-chunk.size % LANES)]).reshape(-1, LANES)
        lanes = list(np.cumsum(rows * rows, axis=0)[-1])
        while len(lanes) > 1:
            lanes = [lanes[2 * i] + lanes[2 * i + 1] for i in range(len(lanes) // 2)]
        total += lanes[0]
    return total


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, ml_dtypes.bfloat16],
                         ids=["float32", "float64", "float16", "bfloat16"])
def test_sums_follow_the_documented_order(dtype):
    rng = np.random.default_rng(7)
    grads = [(3.0 * rng.standard_normal(n)).astype(dtype) for n in SIZES]
    sums, finite = _stats(grads)
    assert finite
    for g, got in zip(grads, sums):
        exact = np.sum(g.astype(np.float64) ** 2)
        assert got == replay(g), (g.size, got, replay(g))
        assert abs(got - exact) <= 1e-13 * exact


def test_shapes_and_an_empty_gradient():
    sums, finite = _stats([np.ones((3, 4, 5), np.float32), np.zeros((0, 7), np.float32)])
    assert finite and list(sums) == [60.0, 0.0]


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("where", [0, CHUNK + 5, 200_002])  # first, a later chunk, the tail
def test_one_nonfinite_element_anywhere(bad, where):
    rng = np.random.default_rng(8)
    grads = [rng.standard_normal(n).astype(np.float32) for n in (100, 200_003, 40)]
    grads[1][where] = bad
    assert not _stats(grads)[1]
    f64 = [g.astype(np.float64) for g in grads]
    assert not _stats(f64)[1]


def test_float64_squares_that_overflow_are_still_finite():
    # 1e200 ** 2 overflows float64: the sum is inf, the gradient is finite.
    sums, finite = _stats([np.full(100, 1e200), np.ones(3)])
    assert finite and sums[0] == np.inf and sums[1] == 3.0
    # float16's largest value squares exactly in float64.
    sums, finite = _stats([np.full(70_000, 65504.0, np.float16)])
    assert finite and sums[0] == 70_000 * 65504.0 ** 2


def test_all_finite_uses_one_launch_on_the_cpu():
    """nonfinite.all_finite (LossScaleOptimizer's check around kerasopt, and
    nonfinite="skip"/"raise"): one KerasoptMultiGradientStats per dtype and no
    per-gradient IsFinite; the composed check under the "tf" implementation;
    both give NumPy's answer. (Before this op: an IsFinite per gradient.)"""
    require_kernel_library()
    rng = np.random.default_rng(9)
    values = [rng.standard_normal(n).astype(np.float32) for n in (5, 300, 40_000)]
    values.append(rng.standard_normal(64).astype(np.float64))
    for poisoned in (None, 1, 3):
        grads = [v.copy() for v in values]
        if poisoned is not None:
            grads[poisoned][-1] = np.nan
        tensors = [tf.constant(g) for g in grads]
        tensors[0] = tf.IndexedSlices(tensors[0], tf.constant([0, 1, 2, 3, 4]), tf.constant([9]))
        answers = {}
        for impl in ("kernel", "tf"):
            with kerasopt.implementation(impl):
                check = tf.function(lambda: nonfinite.all_finite(tensors))
                answers[impl] = bool(check().numpy())
                types = graph_op_types(check.get_concrete_function())
            launches = "KerasoptMultiGradientStats" in types
            assert launches == (impl == "kernel"), (impl, types)
            if impl == "kernel":
                assert "IsFinite" not in types
        assert answers == {"kernel": poisoned is None, "tf": poisoned is None}, answers
