"""Float64 NumPy reference implementations of kerasopt's update rules.

Written from the papers' equations (not from the C++ in ``cc/kernels``), in the
most direct algebraic form, so that an ordering or sign slip in the kernels or
the fallback shows up as a disagreement with these.

Every rule is a pure function::

    new_w, new_state = rule(w, g, state, *, <hyperparameters>, step)

``w``, ``g`` and the arrays in ``state`` (a dict) are converted to float64; the
inputs are never modified. ``step`` is the 1-based step number t (Keras passes
``iterations + 1``). ``init_state(rule_name, w, **hyperparameters)`` gives the
zero state the optimizers start from.
"""

from __future__ import annotations

import numpy as np


def _f64(x):
    return np.array(x, dtype=np.float64, copy=True)


def adam(w, g, state, *, learning_rate, beta_1, beta_2, epsilon, step, amsgrad=False):
    """Adam (Kingma & Ba, ICLR 2015), optionally AMSGrad (Reddi et al., ICLR 2018).

    Adam, the "efficient" form given at the end of Section 2 of the paper
    (which moves the bias corrections into the step size, so epsilon is the
    paper's epsilon-hat)::

        m_t     = beta_1 * m_{t-1} + (1 - beta_1) * g_t
        v_t     = beta_2 * v_{t-1} + (1 - beta_2) * g_t^2
        alpha_t = alpha * sqrt(1 - beta_2^t) / (1 - beta_1^t)
        w_t     = w_{t-1} - alpha_t * m_t / (sqrt(v_t) + epsilon_hat)

    AMSGrad (Reddi et al., Algorithm 2) keeps the running maximum of the second
    moment and uses it in place of v_t::

        v_hat_t = max(v_hat_{t-1}, v_t)
        w_t     = w_{t-1} - alpha_t * m_t / (sqrt(v_hat_t) + epsilon_hat)

    (Keras, and kerasopt, keep the Adam bias correction in alpha_t for AMSGrad.)

    state: {"m": ..., "v": ...} plus {"v_hat": ...} when amsgrad.
    """
    w, g = _f64(w), _f64(g)
    m, v = _f64(state["m"]), _f64(state["v"])
    t = float(step)
    b1, b2 = float(beta_1), float(beta_2)

    m = b1 * m + (1.0 - b1) * g
    v = b2 * v + (1.0 - b2) * g**2
    alpha_t = float(learning_rate) * np.sqrt(1.0 - b2**t) / (1.0 - b1**t)
    new_state = {"m": m, "v": v}
    second_moment = v
    if amsgrad:
        v_hat = np.maximum(_f64(state["v_hat"]), v)
        new_state["v_hat"] = v_hat
        second_moment = v_hat
    w = w - alpha_t * m / (np.sqrt(second_moment) + float(epsilon))
    return w, new_state


def sgd(w, g, state, *, learning_rate, momentum=0.0, nesterov=False, step=None):
    """Stochastic gradient descent, plain, heavy-ball or Nesterov.

    Plain (Robbins & Monro)::

        w_t = w_{t-1} - lr * g_t

    Heavy-ball momentum (Polyak, 1964), with the velocity holding the step::

        m_t = mu * m_{t-1} - lr * g_t
        w_t = w_{t-1} + m_t

    Nesterov momentum as Keras formulates it (the "look-ahead" rewrite of
    Sutskever et al., 2013, in terms of the current weights)::

        m_t = mu * m_{t-1} - lr * g_t
        w_t = w_{t-1} + mu * m_t - lr * g_t

    state: {} when momentum == 0, else {"m": ...}. ``step`` is unused (SGD does
    not depend on t); it is accepted so all rules share one calling convention.
    """
    w, g = _f64(w), _f64(g)
    lr, mu = float(learning_rate), float(momentum)
    if mu == 0.0:
        return w - lr * g, {}
    m = mu * _f64(state["m"]) - lr * g
    if nesterov:
        w = w + mu * m - lr * g
    else:
        w = w + m
    return w, {"m": m}


RULES = {"adam": adam, "sgd": sgd}


def slot_names(rule: str, hyperparameters: dict) -> list[str]:
    """The state keys of `rule`, in the order the kernels take their slots."""
    if rule == "adam":
        return ["m", "v", "v_hat"] if hyperparameters.get("amsgrad") else ["m", "v"]
    if rule == "sgd":
        return ["m"] if hyperparameters.get("momentum", 0.0) != 0.0 else []
    raise KeyError(rule)


def init_state(rule: str, w, **hyperparameters) -> dict:
    """The all-zeros state an optimizer starts with for weight `w`."""
    zeros = np.zeros(np.shape(w), dtype=np.float64)
    return {name: zeros.copy() for name in slot_names(rule, hyperparameters)}


def run(rule: str, w, grads, hyperparameters: dict, *, first_step: int = 1,
        state: dict | None = None, round_to=None, return_scale: bool = False):
    """Applies `rule` for each gradient in `grads`; returns (w, state) in float64.

    ``round_to``: optional function applied to the weight and to every state
    array after each step, e.g. rounding to a 16-bit storage dtype, to model an
    implementation that stores its state in that dtype (the arithmetic itself
    stays float64).

    ``return_scale``: also return a dict of per-element error scales, for "w"
    and each state key: max_t |x_t| + sum_t |x_t - x_{t-1}|, the largest value
    the trajectory held plus its total variation. Each step of a
    floating-point implementation rounds quantities of about these magnitudes,
    so its accumulated error is a small multiple of eps times this scale.
    """
    fn = RULES[rule]
    w = _f64(w)
    state = init_state(rule, w, **hyperparameters) if state is None else {
        k: _f64(v) for k, v in state.items()}
    current = dict(state, w=w)
    peak = {k: np.abs(v) for k, v in current.items()}
    variation = {k: np.zeros_like(v) for k, v in current.items()}
    for i, g in enumerate(grads):
        w, state = fn(w, g, state, step=first_step + i, **hyperparameters)
        if round_to is not None:
            w = round_to(w)
            state = {k: round_to(v) for k, v in state.items()}
        new = dict(state, w=w)
        for k, v in new.items():
            variation[k] += np.abs(v - current[k])
            peak[k] = np.maximum(peak[k], np.abs(v))
        current = new
    if return_scale:
        return w, state, {k: peak[k] + variation[k] for k in peak}
    return w, state


# --- RMSprop, Adagrad, Adadelta --------------------------------------------


def rmsprop(w, g, velocity, momentum_slot=None, average_gradient=None, *,
            learning_rate, rho, momentum, epsilon, centered):
    """RMSprop: Tieleman & Hinton (2012), lecture 6.5; centered form Graves (2013), eqs. 38-41.

    Lecture: MeanSquare(w, t) = 0.9 MeanSquare(w, t-1) + 0.1 (dE/dw)^2, and the
    gradient is divided by sqrt(MeanSquare(w, t)). Graves: n = aleph n + (1 - aleph) e^2,
    g = aleph g + (1 - aleph) e, Delta = beth Delta - gimel e / sqrt(n - g^2 + daleth),
    w = w + Delta. Keras's form (followed here): epsilon inside the root in both
    forms, momentum accumulates the positive step and is subtracted, and there
    is no momentum at all when momentum == 0.
    Returns (w, velocity, momentum_slot, average_gradient).
    """
    mean_square = rho * velocity + (1.0 - rho) * np.square(g)
    if centered:
        mean_grad = rho * average_gradient + (1.0 - rho) * g
        scale = np.sqrt(mean_square - np.square(mean_grad) + epsilon)
    else:
        mean_grad = average_gradient
        scale = np.sqrt(mean_square + epsilon)
    step = learning_rate * g / scale
    if momentum > 0:
        momentum_slot = momentum * momentum_slot + step
        step = momentum_slot
    return w - step, mean_square, momentum_slot, mean_grad


def adagrad(w, g, accumulator, *, learning_rate, epsilon):
    """Adagrad: Duchi, Hazan & Singer (2011), diagonal update (their eq. after Fig. 1).

    Paper: x_{t+1} = x_t - eta * g_t / (delta + sqrt(sum_{tau<=t} g_tau^2)).
    Keras's form (followed here): the sum starts at initial_accumulator_value
    and epsilon sits inside the root: x - eta * g / sqrt(G + epsilon).
    Returns (w, accumulator).
    """
    sum_of_squares = accumulator + g**2
    return w - learning_rate * g / np.sqrt(sum_of_squares + epsilon), sum_of_squares


def adadelta(w, g, accumulated_grad, accumulated_delta_var, *, learning_rate, rho, epsilon):
    """Adadelta: Zeiler (2012), Algorithm 1.

        E[g^2]_t   = rho E[g^2]_{t-1} + (1 - rho) g_t^2
        Delta x_t  = - RMS[Delta x]_{t-1} / RMS[g]_t * g_t,   RMS[y] = sqrt(E[y^2] + eps)
        E[Dx^2]_t  = rho E[Dx^2]_{t-1} + (1 - rho) Delta x_t^2
        x_{t+1}    = x_t + Delta x_t

    Keras's form (followed here): the last line is x + learning_rate * Delta x;
    the paper has no learning rate (learning_rate=1.0 is the paper).
    Returns (w, accumulated_grad, accumulated_delta_var).
    """
    def rms(expectation):
        return np.sqrt(expectation + epsilon)

    e_g2 = rho * accumulated_grad + (1.0 - rho) * g**2
    delta_x = -(rms(accumulated_delta_var) / rms(e_g2)) * g
    e_dx2 = rho * accumulated_delta_var + (1.0 - rho) * delta_x**2
    return w + learning_rate * delta_x, e_g2, e_dx2


# --- AdamW, Adamax, Nadam, Lion --------------------------------------------


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


# --- FTRL ------------------------------------------------------------------


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


# --- LAMB ------------------------------------------------------------------


def lamb(w, m, v, g, *, learning_rate, beta_1, beta_2, epsilon, step, weight_decay_rate=0.0,
         layer_adaptation=True):
    """LAMB, You et al. (ICLR 2020, arXiv:1904.00962), Algorithm 2, one layer.

    Paper: m = beta_1 m + (1 - beta_1) g; v = beta_2 v + (1 - beta_2) g^2;
    m_hat = m / (1 - beta_1^t); v_hat = v / (1 - beta_2^t);
    r = m_hat / (sqrt(v_hat) + epsilon);
    w = w - eta * phi(||w||) / ||r + lambda w|| * (r + lambda w).
    Keras's form, followed here by default: lambda = 0 (weight decay is the
    base optimizer's, decoupled), phi = identity, and the ratio is 1 when ||w|| or
    ||r|| is 0. Norms over the whole variable, ||w|| before the update.
    weight_decay_rate is the paper's lambda (TensorFlow Addons' argument);
    layer_adaptation=False sets the ratio to 1 (TFA's exclusion).
    Returns (w, m, v).
    """
    w, m, v, g = (np.asarray(a, np.float64) for a in (w, m, v, g))
    m = beta_1 * m + (1.0 - beta_1) * g
    v = beta_2 * v + (1.0 - beta_2) * g * g
    m_hat = m / (1.0 - beta_1 ** step)
    v_hat = v / (1.0 - beta_2 ** step)
    r = m_hat / (np.sqrt(v_hat) + epsilon)
    if weight_decay_rate != 0.0:
        r = r + weight_decay_rate * w
    w_norm = np.sqrt(np.sum(w * w))
    r_norm = np.sqrt(np.sum(r * r))
    ratio = w_norm / r_norm if layer_adaptation and w_norm > 0 and r_norm > 0 else 1.0
    return w - learning_rate * ratio * r, m, v


# --- LARS ------------------------------------------------------------------


def lars(w, v, g, *, learning_rate, momentum, weight_decay, eta, nesterov=False,
         layer_adaptation=True):
    """LARS, You, Gitman & Ginsburg (2017, arXiv:1708.03888), Algorithm 1 with
    the trust coefficient eta of eq. 6, one layer.

    lambda = eta ||w|| / (||g|| + beta ||w||) (1 when a norm is 0, or when the
    layer is excluded from adaptation); v = m v + gamma lambda (g + beta w);
    w = w - v (Nesterov: w - (m v + gamma lambda (g + beta w))). No momentum:
    w = w - gamma lambda (g + beta w), v unchanged. Returns (w, v).
    """
    w, v, g = (np.asarray(a, np.float64) for a in (w, v, g))
    w_norm = np.sqrt(np.sum(w * w))
    g_norm = np.sqrt(np.sum(g * g))
    if layer_adaptation and w_norm > 0 and g_norm > 0:
        local = eta * w_norm / (g_norm + weight_decay * w_norm)
    else:
        local = 1.0
    step = learning_rate * local * (g + weight_decay * w)
    if momentum == 0:
        return w - step, v
    v = momentum * v + step
    return (w - (momentum * v + step) if nesterov else w - v), v


# --- Lookahead and iterate averaging ----------------------------------------


def lookahead_sync(slow, fast, *, slow_step_size):
    """Lookahead, Zhang et al. (NeurIPS 2019, arXiv:1907.08610), Algorithm 1:
    phi = phi + alpha (theta - phi); theta = phi. Returns (slow, fast)."""
    slow, fast = np.asarray(slow, np.float64), np.asarray(fast, np.float64)
    slow = slow + slow_step_size * (fast - slow)
    return slow, slow.copy()


def lookahead(inner_step, w0, grads, *, sync_period, slow_step_size):
    """Lookahead around `inner_step(w, g, t) -> w` (the inner optimizer, with its
    own state in the closure) over `grads`: the fast weights after each step."""
    fast = np.asarray(w0, np.float64)
    slow = fast.copy()
    out = []
    for t, g in enumerate(grads, start=1):
        fast = inner_step(fast, g, t)
        if t % sync_period == 0:
            slow, fast = lookahead_sync(slow, fast, slow_step_size=slow_step_size)
        out.append(fast.copy())
    return out


def iterate_average(iterates, *, start_step, average_period):
    """Polyak-Ruppert / SWA: the mean of iterates[t - 1] for t = start_step,
    start_step + average_period, ... (steps count from 1); None when none."""
    chosen = [np.asarray(w, np.float64) for t, w in enumerate(iterates, start=1)
              if t >= start_step and (t - start_step) % average_period == 0]
    return np.mean(chosen, axis=0) if chosen else None
# --- AdaBelief, RAdam, Yogi, NovoGrad ----------------------------------------


def adabelief(w, g, m, s, *, learning_rate, beta_1, beta_2, epsilon, step, amsgrad=False,
              rectify=False, sma_threshold=4.0):
    """AdaBelief, Zhuang et al. (NeurIPS 2020, arXiv:2010.07468), Algorithm 2.

    m_t = beta_1 m + (1 - beta_1) g; s_t = beta_2 s + (1 - beta_2)(g - m_t)^2 + eps;
    AMSGrad: s_t = max(s_t, s_{t-1}); m_hat = m_t / (1 - beta_1^t);
    s_hat = s_t / (1 - beta_2^t); w = w - alpha m_hat / (sqrt(s_hat) + eps).
    rectify (the authors' code, TensorFlow Addons): RAdam's r_t times that
    step where radam_rectification defines it, else w = w - alpha m_hat.
    Returns (w, m, s).
    """
    w, g, m, s = (np.asarray(a, np.float64) for a in (w, g, m, s))
    m_new = beta_1 * m + (1.0 - beta_1) * g
    s_new = beta_2 * s + (1.0 - beta_2) * (g - m_new) ** 2 + epsilon
    if amsgrad:
        s_new = np.maximum(s_new, s)
    m_hat = m_new / (1.0 - beta_1 ** step)
    s_hat = s_new / (1.0 - beta_2 ** step)
    scale = 1.0
    if rectify:
        scale = radam_rectification(beta_2, step, sma_threshold)
        if scale is None:
            return w - learning_rate * m_hat, m_new, s_new
    return w - learning_rate * scale * m_hat / (np.sqrt(s_hat) + epsilon), m_new, s_new


def radam_rho(beta_2, step):
    """(rho_inf, rho_t) of RAdam (Liu et al., Algorithm 2)."""
    rho_inf = 2.0 / (1.0 - beta_2) - 1.0
    return rho_inf, rho_inf - 2.0 * step * beta_2 ** step / (1.0 - beta_2 ** step)


def radam_rectification(beta_2, step, sma_threshold=4.0):
    """r_t where rho_t > 4 (the paper's condition) and rho_t >= sma_threshold
    (TensorFlow Addons' condition, 5 by default there), else None."""
    rho_inf, rho_t = radam_rho(beta_2, step)
    if not (rho_t > 4.0 and rho_t >= sma_threshold):
        return None
    return np.sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                   / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))


def tfa_warmup_learning_rate(learning_rate, step, total_steps, warmup_proportion, min_lr):
    """TensorFlow Addons' RectifiedAdam/AdaBelief learning rate with total_steps > 0:
    linear warmup over total_steps * warmup_proportion steps, then linear
    decay to min_lr at total_steps (held there after)."""
    warmup = total_steps * warmup_proportion
    decay = max(total_steps - warmup, 1.0)
    if step <= warmup:
        return learning_rate * step / warmup
    return learning_rate + (min_lr - learning_rate) / decay * min(step - warmup, decay)


def radam(w, g, m, v, v_hat=None, *, learning_rate, beta_1, beta_2, epsilon, step,
          amsgrad=False, sma_threshold=4.0, total_steps=0, warmup_proportion=0.1, min_lr=0.0):
    """RAdam, Liu et al. (ICLR 2020, arXiv:1908.03265), Algorithm 2.

    v = beta_2 v + (1 - beta_2) g^2; m = beta_1 m + (1 - beta_1) g;
    m_hat = m / (1 - beta_1^t); if rho_t > 4: l_t = sqrt((1 - beta_2^t) / v),
    w = w - alpha r_t m_hat l_t; else w = w - alpha m_hat.
    The paper's l_t has no epsilon; kerasopt (like Keras's Adam) adds it to
    sqrt(v): l_t = sqrt(1 - beta_2^t) / (sqrt(v) + eps).
    TensorFlow Addons' options: amsgrad (v_hat = max(v_hat, v) every step,
    used in l_t), sma_threshold, and with total_steps > 0 its warmup of alpha
    (tfa_warmup_learning_rate).
    Returns (w, m, v), and v_hat with amsgrad.
    """
    w, g, m, v = (np.asarray(a, np.float64) for a in (w, g, m, v))
    if total_steps > 0:
        learning_rate = tfa_warmup_learning_rate(learning_rate, step, total_steps,
                                                 warmup_proportion, min_lr)
    m = beta_1 * m + (1.0 - beta_1) * g
    v = beta_2 * v + (1.0 - beta_2) * g * g
    v_used = v
    if amsgrad:
        v_hat = np.maximum(np.asarray(v_hat, np.float64), v)
        v_used = v_hat
    extra = (v_hat,) if amsgrad else ()
    m_hat = m / (1.0 - beta_1 ** step)
    r = radam_rectification(beta_2, step, sma_threshold)
    if r is None:
        return (w - learning_rate * m_hat, m, v) + extra
    adaptive = np.sqrt(1.0 - beta_2 ** step) / (np.sqrt(v_used) + epsilon)
    return (w - learning_rate * r * m_hat * adaptive, m, v) + extra


def yogi(w, g, m, v, *, learning_rate, beta_1, beta_2, epsilon, l1=0.0, l2=0.0,
         tanh_activation=False):
    """Yogi, Zaheer et al. (NeurIPS 2018), Algorithm 2 (no bias correction).

    m = beta_1 m + (1 - beta_1) g; v = v - (1 - beta_2) sign(v - g^2) g^2;
    w = w - eta m / (sqrt(v) + eps). Returns (w, m, v).
    TensorFlow Addons' options: tanh_activation (sign(x) -> tanh(10 x)); with
    l1 or l2 > 0 its proximal step, lr_w = eta / (sqrt(v) + eps),
    u = w - lr_w m, w = sign(u) max(|u| - l1 lr_w, 0) / (1 + l2 lr_w).
    """
    w, g, m, v = (np.asarray(a, np.float64) for a in (w, g, m, v))
    m = beta_1 * m + (1.0 - beta_1) * g
    sign = np.tanh(10.0 * (v - g * g)) if tanh_activation else np.sign(v - g * g)
    v = v - (1.0 - beta_2) * sign * g * g
    if l1 > 0 or l2 > 0:
        lr_w = learning_rate / (np.sqrt(v) + epsilon)
        u = w - lr_w * m
        return np.sign(u) * np.maximum(np.abs(u) - l1 * lr_w, 0.0) / (1.0 + l2 * lr_w), m, v
    return w - learning_rate * m / (np.sqrt(v) + epsilon), m, v


def novograd(w, g, m, v, v_hat=None, *, learning_rate, beta_1, beta_2, epsilon, weight_decay,
             step, grad_averaging=False, amsgrad=False):
    """NovoGrad, Ginsburg et al. (arXiv:1905.11286), Algorithm 1, one layer.

    v_1 = ||g_1||^2, then v_t = beta_2 v + (1 - beta_2) ||g_t||^2 (a scalar);
    m_t = beta_1 m + (g_t / (sqrt(v_t) + eps) + d w); w = w - lambda m_t.
    grad_averaging (NVIDIA's implementations): the bracket times (1 - beta_1).
    The paper's first step m_1 = g_1 / sqrt(v_1) + d w is this with m_0 = 0.
    amsgrad (TensorFlow Addons): v_hat = max(v_hat, v_t) in place of v_t in
    the denominator.
    Returns (w, m, v), and v_hat with amsgrad.
    """
    w, g, m, v = (np.asarray(a, np.float64) for a in (w, g, m, v))
    norm_sq = float(np.sum(g * g))
    v = norm_sq if step == 1 else beta_2 * float(v) + (1.0 - beta_2) * norm_sq
    v_used = v
    if amsgrad:
        v_hat = max(float(v_hat), v) if not np.isnan(v) else v
        v_used = v_hat
    u = g / (np.sqrt(v_used) + epsilon) + weight_decay * w
    m = beta_1 * m + ((1.0 - beta_1) if grad_averaging else 1.0) * u
    extra = (np.float64(v_hat),) if amsgrad else ()
    return (w - learning_rate * m, m, np.float64(v)) + extra
