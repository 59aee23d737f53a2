"""A float64 NumPy K-FAC for a two-Dense-layer network (tanh, then linear; mean
squared error), independent of kerasopt.KFAC's TF code: the preconditioned step
solves the damped Kronecker product kron(A_d, G_d) v = vec([dW; db]) directly
instead of multiplying by the two inverses."""

import numpy as np


def kfac_steps(weights, x, y, steps, learning_rate, damping, decay, inverse_frequency,
               kl_clip):
    """weights: [W1, b1, W2, b2]; returns them after `steps` full-batch steps and the
    KL-clipping factors nu of each step."""
    w1, b1, w2, b2 = (np.array(w, np.float64) for w in weights)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)
    factors = [[None, None], [None, None]]  # per layer: A, G
    damped = [None, None]  # per layer: (A_d, G_d) at the last refresh
    nus = []
    for t in range(steps):
        h = np.tanh(x @ w1 + b1)
        out = h @ w2 + b2
        grad_out = 2 * (out - y) / (n * y.shape[1])  # d mean((out - y)^2) / d out
        grad_pre1 = (grad_out @ w2.T) * (1 - h ** 2)
        layers = [(x, grad_pre1, x.T @ grad_pre1, grad_pre1.sum(0)),
                  (h, grad_out, h.T @ grad_out, grad_out.sum(0))]
        steps_v, stacked = [], []
        for i, (a, grad_pre, d_w, d_b) in enumerate(layers):
            a1 = np.hstack([a, np.ones((n, 1))])
            g = grad_pre * n
            new = (a1.T @ a1 / n, g.T @ g / n)
            factors[i] = list(new) if t == 0 else [decay * f + (1 - decay) * b
                                                   for f, b in zip(factors[i], new)]
            if t % inverse_frequency == 0:
                a_fac, g_fac = factors[i]
                pi = np.sqrt((np.trace(a_fac) / len(a_fac)) / (np.trace(g_fac) / len(g_fac)))
                root = np.sqrt(damping)
                damped[i] = (a_fac + pi * root * np.eye(len(a_fac)),
                             g_fac + root / pi * np.eye(len(g_fac)))
            grad = np.vstack([d_w, d_b[None, :]])
            v = np.linalg.solve(np.kron(*damped[i]), grad.ravel()).reshape(grad.shape)
            steps_v.append(v)
            stacked.append(grad)
        nu = 1.0
        if kl_clip is not None:
            v_dot_g = sum(np.sum(v * grad) for v, grad in zip(steps_v, stacked))
            nu = min(1.0, np.sqrt(kl_clip / (learning_rate ** 2 * v_dot_g)))
        nus.append(nu)
        for v, (w, b) in zip(steps_v, ((w1, b1), (w2, b2))):
            w -= learning_rate * nu * v[:-1]
            b -= learning_rate * nu * v[-1]
    return [w1, b1, w2, b2], nus
