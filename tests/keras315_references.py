"""Float64 NumPy references for the optimizers Keras 3.15 added: Adafactor,
Muon, Schedule-Free AdamW, and Schedule-Free SGD on the same rule.

Written from the papers' equations (not from kerasopt's C++ or TensorFlow
code), in the papers' own algebraic form where it differs from Keras's (row
and column *sums* for Adafactor, the three sequences x, z, y for
Schedule-Free), so that an ordering or sign slip in the kernels or the
fallbacks shows up as a disagreement. Where Keras deviates from a paper the
docstring says so, and the reference follows Keras (kerasopt promises Keras's
numbers).

Every function takes and returns float64 arrays and never modifies its inputs.
``step`` is the 1-based step t (Keras's ``iterations + 1``).
"""

from __future__ import annotations

import numpy as np

import references  # tests/references.py: Adam with Keras's decoupled decay


def _f64(x):
    return np.array(x, dtype=np.float64, copy=True)


def rms(x):
    """Root mean square over every element (Shazeer & Stern's RMS)."""
    x = _f64(x)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


# --- Adafactor ---------------------------------------------------------------


def adafactor_relative_step(learning_rate, step):
    """rho_t = min(learning_rate, 1 / sqrt(t)).

    The paper's relative step size is min(10^-2, 1/sqrt(t)); Keras caps it by
    the learning rate instead, with or without ``relative_step`` (in Keras 3.15
    ``relative_step=False`` leaves the same min in place).
    """
    return min(float(learning_rate), 1.0 / np.sqrt(float(step)))


def adafactor(w, g, state, *, learning_rate, beta_2_decay, epsilon_1, epsilon_2,
              clip_threshold, step):
    """Adafactor, Shazeer & Stern (ICML 2018, arXiv:1804.04235), Algorithm 4
    (matrices, factored) and Algorithm 5 (vectors), with update clipping and
    relative step sizes, no first moment (beta_1 = 0)::

        alpha_t = max(eps_2, RMS(X_{t-1})) rho_t
        beta_t  = 1 - t^beta_2_decay                        (paper: 1 - t^-0.8)
        R_t     = beta_t R_{t-1} + (1 - beta_t) (G^2 + eps_1) 1_m   (row sums)
        C_t     = beta_t C_{t-1} + (1 - beta_t) 1_n^T (G^2 + eps_1) (column sums)
        V_t     = R_t C_t / (1_n^T R_t)
        U_t     = G / sqrt(V_t)
        X_t     = X_{t-1} - alpha_t U_t / max(1, RMS(U_t) / d)

    Vectors and scalars (rank < 2) keep V_t = beta_t V_{t-1} + (1 - beta_t)
    (G^2 + eps_1) unfactored. Rank > 2: the last two dimensions are factored,
    one R, C per index of the leading ones (as Keras does).

    Keras keeps row and column *means* r = R / m, c = C / n and forms V as
    (r / mean(r)) c, which is the same V; this reference keeps the paper's sums.

    state: {"R", "C", "V"} (factored; V is the last V_t, which Keras also
    stores) or {"V"}. Returns (w, state).
    """
    w, g = _f64(w), _f64(g)
    t = float(step)
    alpha = max(float(epsilon_2), rms(w)) * adafactor_relative_step(learning_rate, step)
    beta = 1.0 - t ** float(beta_2_decay)
    regulated = g * g + float(epsilon_1)
    if w.ndim >= 2:
        row_sums = beta * _f64(state["R"]) + (1.0 - beta) * regulated.sum(axis=-1)
        col_sums = beta * _f64(state["C"]) + (1.0 - beta) * regulated.sum(axis=-2)
        total = row_sums.sum(axis=-1)[..., None, None]
        v = row_sums[..., :, None] * col_sums[..., None, :] / total
        new_state = {"R": row_sums, "C": col_sums, "V": v}
    else:
        v = beta * _f64(state["V"]) + (1.0 - beta) * regulated
        new_state = {"V": v}
    u = g / np.sqrt(v)
    u_hat = u / max(1.0, rms(u) / float(clip_threshold))
    return w - alpha * u_hat, new_state


def adafactor_init_state(w):
    w = _f64(w)
    zeros = np.zeros_like(w)
    if w.ndim >= 2:
        return {"R": np.zeros(w.shape[:-1]), "C": np.zeros(w.shape[:-2] + w.shape[-1:]),
                "V": zeros}
    return {"V": zeros}


def adafactor_keras_slots(w, state):
    """Keras's (r, c, velocity) from the paper's state: r = R / m, c = C / n."""
    w = _f64(w)
    if w.ndim >= 2:
        n, m = w.shape[-2], w.shape[-1]
        return state["R"] / m, state["C"] / n, state["V"]
    return None, None, state["V"]


# --- Muon --------------------------------------------------------------------

MUON_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz5(x, *, steps, a, b, c):
    """The quintic Newton-Schulz iteration of Muon (Jordan et al. 2024,
    github.com/KellerJordan/Muon): an approximate U V^T of x = U S V^T.

    X_0 = x / (||x||_F + 1e-7) (so the spectral norm is at most 1), in the
    orientation with no more rows than columns; then ``steps`` times
    X <- a X + (b A + c A^2) X with A = X X^T.
    """
    x = _f64(x)
    transposed = x.shape[-2] > x.shape[-1]
    if transposed:
        x = np.swapaxes(x, -1, -2)
    x = x / (np.linalg.norm(x) + 1e-7)
    for _ in range(steps):
        gram = x @ np.swapaxes(x, -1, -2)
        x = a * x + (b * gram + c * gram @ gram) @ x
    return np.swapaxes(x, -1, -2) if transposed else x


def muon(w, g, m, *, learning_rate, momentum, nesterov, ns_steps, weight_decay, rms_rate,
         coefficients=MUON_COEFFICIENTS):
    """Muon's step for a 2-D weight (Jordan et al. 2024), with Moonlight's
    update scaling and decoupled decay (Liu et al. 2025, "Muon is Scalable for
    LLM Training", arXiv:2502.16982, eq. 4)::

        M_t = mu M_{t-1} + G_t
        D_t = G_t + mu M_t  (Nesterov)  or  M_t
        O_t = NewtonSchulz5(D_t)
        W_t = W_{t-1} - lr (lambda W_{t-1} + rms_rate sqrt(max(A, B)) O_t)

    ``rms_rate=None`` drops the scaling (Keras: ``lr * O_t``). Keras applies the
    decay to W in a separate pass before the step; the step does not depend on
    W, so that is the same W_t. Returns (w, m).
    """
    w, g, m = _f64(w), _f64(g), _f64(m)
    a, b, c = coefficients
    m = momentum * m + g
    direction = g + momentum * m if nesterov else m
    ortho = newton_schulz5(direction, steps=ns_steps, a=a, b=b, c=c)
    scale = 1.0 if rms_rate is None else rms_rate * np.sqrt(max(w.shape[0], w.shape[1]))
    lr = float(learning_rate)
    return w - lr * weight_decay * w - lr * scale * ortho, m


def muon_adamw(w, g, m, v, *, learning_rate, adam_lr_ratio, adam_weight_decay, beta_1, beta_2,
               epsilon, step):
    """Muon's AdamW side (variables that are not 2-D, embeddings, excluded
    layers): the decay uses the learning rate, the Adam step learning_rate *
    adam_lr_ratio. Returns (w, m, v)."""
    lr = float(learning_rate)
    w = _f64(w)
    w = w - lr * adam_weight_decay * w
    w, m, v, _ = references.adamw(w, _f64(g), _f64(m), _f64(v), None, lr=lr * adam_lr_ratio,
                                  weight_decay=0.0, beta_1=beta_1, beta_2=beta_2,
                                  epsilon=epsilon, t=step)
    return w, m, v


# --- Schedule-Free ----------------------------------------------------------


def schedule_free(x, z, v, g, *, learning_rate, beta_1, step, warmup_steps=0, weight_decay=0.0,
                  adam=True, beta_2=0.999, epsilon=1e-8, interpolate=True):
    """Schedule-Free AdamW / SGD, Defazio et al. ("The Road Less Scheduled",
    NeurIPS 2024, arXiv:2405.15682), Algorithm 1, on the three sequences::

        y_t     = (1 - beta_1) z_t + beta_1 x_t           (where g is taken)
        v_t     = beta_2 v_{t-1} + (1 - beta_2) g_t^2      (AdamW only)
        gamma_t = lr min(1, t / warmup_steps)
        z_{t+1} = z_t - gamma_t g_t / (sqrt(v_t / (1 - beta_2^t)) + eps)   (SGD: - gamma_t g_t)
        x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}

    returning the new (x, z, v) and y_{t+1}, the weight the model holds.

    Where Keras 3.15 deviates from the paper (followed here):

    * c_{t+1} = 1 / t. The paper weights c_{t+1} = gamma_t^2 / sum_i gamma_i^2,
      which is 1 / t only while gamma_t is constant (no warmup, no schedule).
    * weight decay: the paper adds gamma_t lambda y_t to z's step; Keras's base
      optimizer decays the weight y_t by lr lambda y_t before the step (the
      learning rate without warmup), and the step recovers x_t from that
      decayed y, so x_t absorbs the decay (divided by beta_1) instead of z.

    * ``interpolate=False`` is Keras 3.15.1's ScheduleFreeAdamW as it runs:
      it recovers x_t from y_t with z_{t+1} in place of z_t (its
      ``momentum.value`` is the variable, read after z's update), which works
      out to the paper's rule with beta_1 = 1 ("primal averaging"): y_t = x_t,
      the running average of z. This reference then runs with beta_1 = 1.

    ``g`` is the gradient at the (undecayed) y_t the caller computed it at.
    """
    if not interpolate:
        beta_1 = 1.0
    x, z, g = _f64(x), _f64(z), _f64(g)
    t = float(step)
    lr = float(learning_rate)
    gamma = lr * min(1.0, t / warmup_steps) if warmup_steps > 0 else lr
    y = (1.0 - beta_1) * z + beta_1 * x
    if weight_decay:
        y = y - lr * weight_decay * y
        x = (y - (1.0 - beta_1) * z) / beta_1
    if adam:
        v = beta_2 * _f64(v) + (1.0 - beta_2) * g * g
        z = z - gamma * g / (np.sqrt(v / (1.0 - beta_2 ** t)) + epsilon)
    else:
        z = z - gamma * g
    c = 1.0 / t
    x = (1.0 - c) * x + c * z
    return x, z, v, (1.0 - beta_1) * z + beta_1 * x


def schedule_free_x(y, z, beta_1):
    """x from the weight y and z: y = (1 - beta_1) z + beta_1 x."""
    return (_f64(y) - (1.0 - beta_1) * _f64(z)) / beta_1
