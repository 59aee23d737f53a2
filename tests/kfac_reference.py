"""A float64 NumPy K-FAC, independent of kerasopt.KFAC's TF code, for two small
networks (mean squared error): two Dense layers (tanh, then linear), and a
Conv2D (tanh), Flatten and Dense (linear). The preconditioned step solves the
damped Kronecker product kron(A_d, G_d) vec(V) = vec([dW; db]) directly instead
of multiplying by the two inverses, and the Conv2D factors are written as the
KFC paper (Grosse & Martens 2016) defines them: Omega = E[sum over positions
of a a^T] and Gamma = E[sum over positions of g g^T] / |T|, with the patches
cut out by explicit loops (not tf.image.extract_patches)."""

import numpy as np


def _kfac_steps(gradients_and_factors, apply, steps, learning_rate, damping, decay,
                inverse_frequency, kl_clip):
    """The K-FAC loop shared by both networks. gradients_and_factors() gives, per layer,
    ([dW; db], this batch's A, this batch's G); apply(steps) subtracts the steps.
    Returns the KL-clipping factor nu of each step."""
    factors, damped, nus = None, None, []
    for t in range(steps):
        layers = gradients_and_factors()
        if t == 0:
            factors = [[a, g] for _, a, g in layers]
            damped = [None] * len(layers)
        else:
            factors = [[decay * f + (1 - decay) * new for f, new in zip(old, (a, g))]
                       for old, (_, a, g) in zip(factors, layers)]
        if t % inverse_frequency == 0:
            for i, (a_fac, g_fac) in enumerate(factors):
                pi = np.sqrt((np.trace(a_fac) / len(a_fac)) / (np.trace(g_fac) / len(g_fac)))
                root = np.sqrt(damping)
                damped[i] = (a_fac + pi * root * np.eye(len(a_fac)),
                             g_fac + root / pi * np.eye(len(g_fac)))
        vs = [np.linalg.solve(np.kron(*damped[i]), grad.ravel()).reshape(grad.shape)
              for i, (grad, _, _) in enumerate(layers)]
        nu = 1.0
        if kl_clip is not None:
            v_dot_g = sum(np.sum(v * grad) for v, (grad, _, _) in zip(vs, layers))
            nu = min(1.0, np.sqrt(kl_clip / (learning_rate ** 2 * v_dot_g)))
        nus.append(nu)
        apply([learning_rate * nu * v for v in vs])
    return nus


def _with_ones(a):
    return np.hstack([a, np.ones((len(a), 1))])


def kfac_steps(weights, x, y, steps, learning_rate, damping, decay, inverse_frequency,
               kl_clip):
    """The two-Dense network. weights: [W1, b1, W2, b2]; returns them after `steps`
    full-batch steps and the KL-clipping factors nu of each step."""
    w1, b1, w2, b2 = (np.array(w, np.float64) for w in weights)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)

    def gradients_and_factors():
        h = np.tanh(x @ w1 + b1)
        out = h @ w2 + b2
        grad_out = 2 * (out - y) / (n * y.shape[1])  # d mean((out - y)^2) / d out
        grad_pre1 = (grad_out @ w2.T) * (1 - h ** 2)
        found = []
        for a, grad_pre in ((x, grad_pre1), (h, grad_out)):
            a1, g = _with_ones(a), grad_pre * n  # g: each example's own loss's gradient
            found.append((a1.T @ grad_pre, a1.T @ a1 / n, g.T @ g / n))
        return found

    def apply(vs):
        for v, (w, b) in zip(vs, ((w1, b1), (w2, b2))):
            w -= v[:-1]
            b -= v[-1]

    nus = _kfac_steps(gradients_and_factors, apply, steps, learning_rate, damping, decay,
                      inverse_frequency, kl_clip)
    return [w1, b1, w2, b2], nus


def _padding(size, kernel, stride, padding):
    """(output size, zeros before) along one axis, by TensorFlow's SAME / VALID rule."""
    if padding == "valid":
        return (size - kernel) // stride + 1, 0
    out = -(-size // stride)
    return out, max((out - 1) * stride + kernel - size, 0) // 2


def conv_patches(x, kernel_size, strides, padding):
    """(n, out_h, out_w, kh * kw * cin): each output position's input patch, zeros
    outside the input, flattened in the kernel's (kh, kw, cin) order."""
    n, height, width, channels = x.shape
    (kh, kw), (sh, sw) = kernel_size, strides
    out_h, top = _padding(height, kh, sh, padding)
    out_w, left = _padding(width, kw, sw, padding)
    patches = np.zeros((n, out_h, out_w, kh, kw, channels))
    for i in range(out_h):
        for j in range(out_w):
            for di in range(kh):
                for dj in range(kw):
                    row, col = i * sh - top + di, j * sw - left + dj
                    if 0 <= row < height and 0 <= col < width:
                        patches[:, i, j, di, dj, :] = x[:, row, col, :]
    return patches.reshape(n, out_h, out_w, kh * kw * channels)


def kfac_conv_steps(weights, x, y, steps, strides, padding, learning_rate, damping, decay,
                    inverse_frequency, kl_clip):
    """Conv2D (tanh; with or without bias), Flatten, Dense. weights: [K, (bias,) W, b]
    as Keras orders them; returns the weights after each step and each step's nu."""
    weights = [np.array(w, np.float64) for w in weights]
    conv_bias = len(weights) == 4
    kernel, w2, b2 = weights[0], weights[-2], weights[-1]
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n, cout = len(x), kernel.shape[-1]
    history = []

    def gradients_and_factors():
        patches = conv_patches(x, kernel.shape[:2], strides, padding)
        positions = patches.shape[1] * patches.shape[2]
        rows = patches.reshape(n * positions, -1)
        if conv_bias:
            rows = _with_ones(rows)
        pre = rows @ np.vstack([kernel.reshape(-1, cout)] + ([weights[1][None]] * conv_bias))
        h = np.tanh(pre).reshape(n, -1)  # Flatten: positions, then channels
        out = h @ w2 + b2
        grad_out = 2 * (out - y) / (n * y.shape[1])
        grad_pre = ((grad_out @ w2.T) * (1 - h ** 2)).reshape(n * positions, cout)
        g = grad_pre * n  # each example's own loss's gradient, per position
        omega = rows.T @ rows / n  # E over examples of the sum over positions
        gamma = g.T @ g / n / positions
        dense_a = _with_ones(h)
        return [(rows.T @ grad_pre, omega, gamma),
                (dense_a.T @ grad_out, dense_a.T @ dense_a / n,
                 (grad_out * n).T @ (grad_out * n) / n)]

    def apply(vs):
        conv_v, dense_v = vs
        fan_in = kernel.size // cout
        kernel[...] -= conv_v[:fan_in].reshape(kernel.shape)
        if conv_bias:
            weights[1][...] -= conv_v[fan_in]
        w2[...] -= dense_v[:-1]
        b2[...] -= dense_v[-1]
        history.append([w.copy() for w in weights])

    nus = _kfac_steps(gradients_and_factors, apply, steps, learning_rate, damping, decay,
                      inverse_frequency, kl_clip)
    return history, nus
