"""float64 NumPy references of the update rules, written from the papers.

Each function takes the state before one step (as float64 arrays) and returns
the state after it. Where Keras's formulation differs from the paper, the
reference follows Keras (and says so), since kerasopt promises Keras's numbers.
They are deliberately written in the papers' notation, not in the C++ rules'
operation order.
"""

import numpy as np


def adamw(w, g, m, v, v_hat, *, lr, weight_decay, beta_1, beta_2, epsilon, t, amsgrad=False):
    """AdamW (Loshchilov & Hutter 2019, Algorithm 2, Adam branch).

    Keras's form: the decay is lr * weight_decay * w, taken before the Adam
    step (the paper uses a schedule multiplier eta_t and the old w), and the
    Adam step is Kingma & Ba's "efficient" form with epsilon-hat.
    """
    w = w - lr * weight_decay * w
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g * g
    if amsgrad:
        v_hat = np.maximum(v_hat, v)
        denom_v = v_hat
    else:
        denom_v = v
    step_size = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    w = w - step_size * m / (np.sqrt(denom_v) + epsilon)
    return w, m, v, v_hat


def adamax(w, g, m, u, *, lr, beta_1, beta_2, epsilon, t):
    """Adamax (Kingma & Ba 2015, Section 7.1, Algorithm 2).

    Keras adds epsilon to u (the paper divides by u alone).
    """
    m = beta_1 * m + (1 - beta_1) * g
    u = np.maximum(beta_2 * u, np.abs(g))
    w = w - (lr / (1 - beta_1**t)) * m / (u + epsilon)
    return w, m, u


def nadam_mu(beta_1, t):
    """Keras's momentum schedule mu_t (Dozat's is 0.96^(t/250); Keras 3 uses 0.96^t)."""
    return beta_1 * (1 - 0.5 * 0.96**t)


def nadam_u_product(previous, beta_1, t):
    """prod_{i <= t} mu_i from prod_{i < t} mu_i."""
    return previous * nadam_mu(beta_1, t)


def nadam(w, g, m, v, u_product, *, lr, beta_1, beta_2, epsilon, t):
    """Nadam (Dozat 2016, Algorithm 2), Keras's form.

    `u_product` is prod_{i <= t} mu_i (this step included, see
    nadam_u_product). Keras keeps the constant beta_1 in the moment update.
    """
    mu_t = nadam_mu(beta_1, t)
    mu_next = nadam_mu(beta_1, t + 1)
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g * g
    m_hat = mu_next * m / (1 - u_product * mu_next) + (1 - mu_t) * g / (1 - u_product)
    v_hat = v / (1 - beta_2**t)
    w = w - lr * m_hat / (np.sqrt(v_hat) + epsilon)
    return w, m, v


def lion(w, g, m, *, lr, beta_1, beta_2):
    """Lion (Chen et al. 2023, Algorithm 2 without its weight decay term;
    Keras applies its generic weight decay separately)."""
    c = beta_1 * m + (1 - beta_1) * g
    w = w - lr * np.sign(c)
    m = beta_2 * m + (1 - beta_2) * g
    return w, m
