"""float64 NumPy references for the block-preconditioned optimizers, from the papers.

Written independently of the kernels: blocks are sliced (not padded), roots come
from numpy.linalg.eigh with the eigenvalues clipped at 0 before damping.
"""

from __future__ import annotations

import math

import numpy as np


def inverse_root(a, p, epsilon):
    """(A + eps I)^(-1/p) of symmetric PSD matrices [..., n, n] in float64."""
    a = np.asarray(a, np.float64)
    a = 0.5 * (a + np.swapaxes(a, -1, -2))
    lam, v = np.linalg.eigh(a)
    root = (np.maximum(lam, 0.0) + epsilon) ** (-1.0 / p)
    return (v * root[..., None, :]) @ np.swapaxes(v, -1, -2)


def _slices(n, block):
    return [slice(s, min(s + block, n)) for s in range(0, n, block)]


def full_matrix_adagrad(w0, grads, *, learning_rate, epsilon, block_size,
                        update_frequency=1, initial_accumulator_value=0.0):
    """Duchi, Hazan & Singer (2011), full-matrix AdaGrad per block of the flattened variable."""
    w = np.asarray(w0, np.float64).reshape(-1).copy()
    blocks = _slices(w.size, max(1, min(w.size, block_size)))
    stats = [initial_accumulator_value * np.eye(b.stop - b.start) for b in blocks]
    pre = [None] * len(blocks)
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, np.float64).reshape(-1)
        for k, b in enumerate(blocks):
            stats[k] += np.outer(g[b], g[b])
            if (t - 1) % update_frequency == 0:
                pre[k] = inverse_root(stats[k], 2, epsilon)
            w[b] -= learning_rate * pre[k] @ g[b]
    return w.reshape(np.shape(w0))


def shampoo(w0, grads, *, learning_rate, epsilon, block_size, precondition_frequency,
            start_preconditioning_step, grafting, beta_1=0.9, beta_2=0.999,
            grafting_epsilon=1e-7):
    """Gupta, Koren & Singer (2018), Algorithm 1 per tile, with per-variable grafting."""
    shape = np.shape(w0)
    rows, cols = math.prod(shape[:-1]), shape[-1]
    w = np.asarray(w0, np.float64).reshape(rows, cols).copy()
    row_blocks = _slices(rows, min(rows, block_size))
    col_blocks = _slices(cols, min(cols, block_size))
    tiles = [(r, c) for r in row_blocks for c in col_blocks]
    left = [np.zeros((r.stop - r.start,) * 2) for r, _ in tiles]
    right = [np.zeros((c.stop - c.start,) * 2) for _, c in tiles]
    left_pre = [np.zeros_like(x) for x in left]
    right_pre = [np.zeros_like(x) for x in right]
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, np.float64).reshape(rows, cols)
        precondition = t >= start_preconditioning_step
        recompute = precondition and (t - start_preconditioning_step) % precondition_frequency == 0
        direction = np.zeros_like(w)
        for k, (r, c) in enumerate(tiles):
            gk = g[r, c]
            left[k] += gk @ gk.T
            right[k] += gk.T @ gk
            if recompute:
                left_pre[k] = inverse_root(left[k], 4, epsilon)
                right_pre[k] = inverse_root(right[k], 4, epsilon)
            direction[r, c] = left_pre[k] @ gk @ right_pre[k]
        if grafting == "adam":
            m = beta_1 * m + (1 - beta_1) * g
            v = beta_2 * v + (1 - beta_2) * g * g
            alpha = math.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
            graft = alpha * m / (np.sqrt(v) + grafting_epsilon)
        else:
            graft = g
        if not precondition:
            w -= learning_rate * graft
        elif grafting is None:
            w -= learning_rate * direction
        elif np.linalg.norm(direction) > 0:
            w -= learning_rate * np.linalg.norm(graft) / np.linalg.norm(direction) * direction
        else:
            w -= learning_rate * graft
    return w.reshape(shape)
