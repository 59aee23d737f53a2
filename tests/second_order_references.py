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


def _eigenbasis(a):
    """Eigenvectors of the symmetric matrix `a`, columns by decreasing eigenvalue."""
    _, v = np.linalg.eigh(0.5 * (a + a.T))
    return v[:, ::-1]


def _power_iteration_basis(a, q):
    """Vyas et al. (2024), Algorithm 4: one QR step of power iteration from the basis q,
    its columns first ordered by their estimated eigenvalues diag(q^T a q), largest first.
    Returns the new basis and that order (the second moment follows it)."""
    order = np.argsort(-np.diag(q.T @ a @ q), kind="stable")
    basis, _ = np.linalg.qr(a @ q[:, order])
    return basis, order


def soap(w0, grads, *, learning_rate, beta_1, beta_2, shampoo_beta, epsilon, block_size,
         precondition_frequency, weight_decay=0.0):
    """Vyas et al. (2024), "SOAP: Improving and Stabilizing Shampoo using Adam", Algorithm 3
    per tile of a variable of rank >= 2 (tiles sliced, not padded), in the authors' order:
    the first step only gathers statistics and computes the bases, and each step projects
    with bases computed before its own gradient was seen:

        t >= 2, k = t - 1:  G' = Q_L^T G Q_R;  m = b1 m + (1 - b1) G';  v = b2 v + (1 - b2) G'^2
                            W -= lr sqrt(1 - b2^k) / (1 - b1^k) Q_L (m / (sqrt(v) + eps)) Q_R^T
        then  L = shampoo_beta L + (1 - shampoo_beta) G G^T,   R likewise with G^T G
        t = 1: Q_L, Q_R = eigenvectors of L, R (largest eigenvalue first)
        t = 1 + j precondition_frequency (j >= 1): Q_L, Q_R = one QR power-iteration step
            (Algorithm 4); the first moment, kept in the rotated basis, is rotated into
            the new one; the second moment's entries follow the reordered eigenvectors
        every step: W -= lr wd W (decoupled, before the step)

    Rank <= 1 variables: Adam from step 1.
    """
    shape = np.shape(w0)
    w = np.asarray(w0, np.float64)
    if len(shape) < 2:
        return _adam(w, grads, learning_rate, beta_1, beta_2, epsilon, weight_decay)
    rows, cols = math.prod(shape[:-1]), shape[-1]
    w = w.reshape(rows, cols).copy()
    tiles = [(r, c) for r in _slices(rows, min(rows, block_size))
             for c in _slices(cols, min(cols, block_size))]
    left = [np.zeros((r.stop - r.start,) * 2) for r, _ in tiles]
    right = [np.zeros((c.stop - c.start,) * 2) for _, c in tiles]
    q_left = [np.eye(x.shape[0]) for x in left]
    q_right = [np.eye(x.shape[0]) for x in right]
    m = [np.zeros((r.stop - r.start, c.stop - c.start)) for r, c in tiles]
    v = [np.zeros_like(x) for x in m]
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, np.float64).reshape(rows, cols)
        w = w - learning_rate * weight_decay * w
        for k, (r, c) in enumerate(tiles):
            gk = g[r, c]
            if t >= 2:
                n = t - 1
                rotated = q_left[k].T @ gk @ q_right[k]
                m[k] = beta_1 * m[k] + (1 - beta_1) * rotated
                v[k] = beta_2 * v[k] + (1 - beta_2) * rotated * rotated
                alpha = math.sqrt(1 - beta_2 ** n) / (1 - beta_1 ** n)
                w[r, c] -= learning_rate * alpha * (
                    q_left[k] @ (m[k] / (np.sqrt(v[k]) + epsilon)) @ q_right[k].T)
            left[k] = shampoo_beta * left[k] + (1 - shampoo_beta) * gk @ gk.T
            right[k] = shampoo_beta * right[k] + (1 - shampoo_beta) * gk.T @ gk
            if t == 1:
                q_left[k], q_right[k] = _eigenbasis(left[k]), _eigenbasis(right[k])
            elif (t - 1) % precondition_frequency == 0:
                first_moment = q_left[k] @ m[k] @ q_right[k].T  # in the original basis
                q_left[k], left_order = _power_iteration_basis(left[k], q_left[k])
                q_right[k], right_order = _power_iteration_basis(right[k], q_right[k])
                m[k] = q_left[k].T @ first_moment @ q_right[k]
                v[k] = v[k][left_order][:, right_order]
    return w.reshape(shape)


def _adam(w, grads, learning_rate, beta_1, beta_2, epsilon, weight_decay):
    """Kingma & Ba (2015) with decoupled weight decay, in float64."""
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        w = w - learning_rate * weight_decay * w
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        alpha = math.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        w = w - learning_rate * alpha * m / (np.sqrt(v) + epsilon)
    return w
