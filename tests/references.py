"""float64 NumPy references of the update rules, written from the papers.

Each takes float64 arrays (the weight and its slots, which it does not modify)
and returns the new ones. Where Keras 3 deviates from the paper, the reference
follows Keras (kerasopt's optimizers are drop-in replacements), and says so.
"""

import numpy as np


def ftrl(w, n, z, g, *, learning_rate, learning_rate_power, l1, l2, l2_shrinkage, beta):
    """FTRL-Proximal, McMahan et al. (KDD 2013), Algorithm 1, per coordinate.

    Paper: sigma = (sqrt(n + g^2) - sqrt(n)) / alpha; z += g - sigma w;
    n += g^2; w = 0 if |z| <= l1 else -(z - sgn(z) l1) / ((beta + sqrt(n)) / alpha + l2).
    Keras's formulation, followed here: power p = -learning_rate_power instead
    of 1/2, beta enters as beta / alpha (= 2 * beta / (2 alpha)), l2 is doubled,
    and the gradient gets the shrinkage term 2 * l2_shrinkage * w.
    """
    w, n, z, g = (np.asarray(a, np.float64) for a in (w, n, z, g))
    alpha, p = float(learning_rate), -float(learning_rate_power)
    g_shrunk = g + 2.0 * l2_shrinkage * w
    n_new = n + g * g
    sigma = (n_new ** p - n ** p) / alpha
    z_new = z + g_shrunk - sigma * w
    denominator = n_new ** p / alpha + beta / alpha + 2.0 * l2
    w_new = np.where(np.abs(z_new) <= l1, 0.0, -(z_new - np.sign(z_new) * l1) / denominator)
    return w_new, n_new, z_new


def lamb(w, m, v, g, *, learning_rate, beta_1, beta_2, epsilon, step):
    """LAMB, You et al. (ICLR 2020, arXiv:1904.00962), Algorithm 2, one layer.

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    r = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps);
    w -= lr * phi(||w||) / ||r|| * r, with phi the identity.
    Keras's formulation, followed here: no weight-decay term inside r (Keras's
    base optimizer applies decoupled weight decay separately), and the trust
    ratio is 1 when either norm is 0 (the paper leaves 0/0 undefined).
    """
    w, m, v, g = (np.asarray(a, np.float64) for a in (w, m, v, g))
    m_new = beta_1 * m + (1.0 - beta_1) * g
    v_new = beta_2 * v + (1.0 - beta_2) * g * g
    m_hat = m_new / (1.0 - beta_1 ** step)
    v_hat = v_new / (1.0 - beta_2 ** step)
    r = m_hat / (np.sqrt(v_hat) + epsilon)
    w_norm, r_norm = np.linalg.norm(w.ravel()), np.linalg.norm(r.ravel())
    ratio = w_norm / r_norm if w_norm > 0 and r_norm > 0 else 1.0
    return w - learning_rate * ratio * r, m_new, v_new
