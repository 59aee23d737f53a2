"""Muon's fused step on its 2-D variables: kerasopt ops around TensorFlow's
matrix products.

The Newton-Schulz iterations are matrix products, which stay TensorFlow's
MatMul on each matrix, as Keras runs them (an Eigen product inside a custom
op was 8x slower than TensorFlow's MatMul on a transformer's matrices; a
batched BatchMatMulV2 over matrices of one shape was slower than one MatMul
each on the 512 x 512 ones). Everything around them is fused into the list
ops of cc/tf/muon_ops.cc, one op per stage for all of a step's Muon
matrices (of one dtype and device), instead of Keras's chain of small
element-wise ops per matrix:

    x  = KerasoptMuonMomentum(...)          momentum (Nesterov), orientation,
                                             x / (||x||_F + 1e-7)
    ns_steps times:
        A  = x x^T;  AA = A A                TensorFlow's MatMul, per matrix
        B  = KerasoptMuonCombine(A, AA, b, c)      b A + c AA
        Bx = B x                              TensorFlow's MatMul, per matrix
        x  = KerasoptMuonCombine(x, Bx, a, 1)      a x + Bx (not after the last)
    KerasoptMuonUpdateWeights(...)           decay, a x + Bx, scaled step, the write

Keras writes the iteration as ``b A + (c A) A``; the fused form scales the
product instead, ``b A + c (A A)``: the same math, rounded differently (the
results stay within Keras's float32 noise, tests/test_keras315_in_keras.py).
"""

from __future__ import annotations

import tensorflow as tf

from kerasopt.fallback import compute_dtype

# The op whose kernel decides whether a Muon variable takes this path.
MOMENTUM_OP = "KerasoptMuonMomentum"


def orientation(shape) -> tuple[tuple[int, int], bool]:
    """(the shape the iterations use, whether it is the transpose): Keras
    iterates on the orientation with no more rows than columns."""
    rows, cols = (int(d) for d in shape)
    return ((cols, rows), True) if rows > cols else ((rows, cols), False)


def batch_key(variable):
    """Variables with the same key share the list ops of one step."""
    return (variable.dtype.name, variable.device)


def run_batch(ops, entries, *, learning_rate, momentum, nesterov, coefficients, ns_steps,
              weight_decay, decayed, rms_rate):
    """One fused Muon step on `entries` [(variable, gradient, momentum slot)]
    of one batch_key.

    Scalars (learning_rate, momentum, coefficients, weight_decay, rms_rate)
    are Python floats or float64 tensors; `decayed` says per variable whether
    the weight decay applies; rms_rate None: no Moonlight scaling.
    """
    variables = [v for v, _, _ in entries]
    transposed = [orientation(v.shape)[1] for v in variables]
    c_dtype = compute_dtype(variables[0].dtype)
    a, b, c = coefficients
    x = ops.kerasopt_muon_momentum(
        momentums=[m.handle for _, _, m in entries], grads=[g for _, g, _ in entries],
        momentum=momentum, nesterov=bool(nesterov), transposed=transposed, C=c_dtype)
    product = x
    for iteration in range(ns_steps):
        if iteration > 0:
            x = ops.kerasopt_muon_combine(x=x, y=product, alpha=a, beta=1.0)
        gram = [tf.linalg.matmul(m, m, transpose_b=True) for m in x]
        square = [tf.linalg.matmul(g, g) for g in gram]
        polynomial = ops.kerasopt_muon_combine(x=gram, y=square, alpha=b, beta=c)
        product = [tf.linalg.matmul(p, m) for p, m in zip(polynomial, x)]
    ops.kerasopt_muon_update_weights(
        vars=[v.handle for v in variables], x=x, product=product, muon_a=a,
        learning_rate=learning_rate, weight_decay=weight_decay,
        rms_rate=0.0 if rms_rate is None else rms_rate, transposed=transposed,
        decayed=list(decayed), scaled=rms_rate is not None, combined=ns_steps > 0,
        T=variables[0].dtype)
