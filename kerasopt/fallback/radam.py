"""RAdam as composed TF ops: the same math as cc/kernels/radam.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write


def warmup_learning_rate(lr, t, total_steps, warmup_proportion, min_lr):
    """TensorFlow Addons' warmup then linear decay of `lr` (float64), as
    WarmupLearningRate in cc/kernels/radam.h; used where total_steps > 0."""
    f64 = tf.float64
    total = constant(total_steps, f64)
    warmup_steps = total * constant(warmup_proportion, f64)
    decay_steps = tf.maximum(total - warmup_steps, constant(1.0, f64))
    decay_rate = (constant(min_lr, f64) - lr) / decay_steps
    return tf.where(t <= warmup_steps, lr * (t / warmup_steps),
                    lr + decay_rate * tf.minimum(t - warmup_steps, decay_steps))


def rectification(beta_2, t, sma_threshold=4.0):
    """(rectified, r_t) in float64 at float64 step `t`, as RAdamStep::Make in
    cc/kernels/radam.h: rectified where rho_t > 4 and rho_t >= sma_threshold;
    r_t is computed where rho_t > 4 (defined), and unused elsewhere."""
    f64 = tf.float64
    b2_power = tf.pow(constant(beta_2, f64), t)
    b2_correction = 1.0 - b2_power
    # A Python float, or a float64 tensor for a variable beta_2: the same double as the C++.
    rho_inf = 2.0 / (1.0 - beta_2) - 1.0
    rho_t = rho_inf - 2.0 * t * b2_power / b2_correction
    rectified = tf.logical_and(rho_t > 4.0, rho_t >= constant(sma_threshold, f64))
    # Evaluate the rectification term only where it is defined (no NaN in either branch).
    safe_rho = tf.where(rho_t > 4.0, rho_t, constant(5.0, f64))
    if tf.is_tensor(rho_inf):
        safe_inf = tf.where(rho_inf > 4.0, rho_inf, constant(5.0, f64))
        r = tf.where(rho_inf > 4.0, tf.sqrt((safe_rho - 4.0) * (safe_rho - 2.0) * safe_inf
                                            / ((safe_inf - 4.0) * (safe_inf - 2.0) * safe_rho)),
                     constant(0.0, f64))
    elif rho_inf > 4.0:
        r = tf.sqrt((safe_rho - 4.0) * (safe_rho - 2.0) * rho_inf
                    / ((rho_inf - 4.0) * (rho_inf - 2.0) * safe_rho))
    else:
        r = constant(0.0, f64)
    return rectified, r


def step_scalars(learning_rate, beta_1, beta_2, step, sma_threshold=4.0, total_steps=0.0,
                 warmup_proportion=0.0, min_lr=0.0):
    """(rectified, step_size) in float64, as RAdamStep::Make in cc/kernels/radam.h."""
    f64 = tf.float64
    t = tf.cast(step, f64)
    lr = tf.cast(learning_rate, f64)
    if total_steps > 0:  # a Python number (the optimizer refuses a variable)
        lr = warmup_learning_rate(lr, t, total_steps, warmup_proportion, min_lr)
    b1_correction = 1.0 - tf.pow(constant(beta_1, f64), t)
    b2_correction = 1.0 - tf.pow(constant(beta_2, f64), t)
    rectified, r = rectification(beta_2, t, sma_threshold)
    step_size = tf.where(rectified, lr * r * tf.sqrt(b2_correction) / b1_correction,
                         lr / b1_correction)
    return rectified, step_size


def apply_radam(variable, gradient, momentum, velocity, velocity_hat=None, *, learning_rate,
                beta_1, beta_2, epsilon, step, sma_threshold=4.0, total_steps=0.0,
                warmup_proportion=0.1, min_lr=0.0, amsgrad=False):
    """One RAdam step on tf.Variables; `step` is iterations + 1; `velocity_hat`
    with amsgrad only."""
    c = compute_dtype(variable.dtype)
    rectified, step_size = step_scalars(learning_rate, beta_1, beta_2, step, sma_threshold,
                                        total_steps, warmup_proportion, min_lr)
    step_size = tf.cast(step_size, c)

    g = read(gradient, c)
    m = constant(beta_1, c) * read(momentum, c) + constant(1.0 - beta_1, c) * g
    # tf.square, not g * g: Grappler would reassociate c * (g * g) (see adabelief.py).
    v = constant(beta_2, c) * read(velocity, c) + constant(1.0 - beta_2, c) * tf.square(g)
    write(momentum, m)
    write(velocity, v)
    v_used = v
    if amsgrad:
        v_hat_old = read(velocity_hat, c)
        v_used = tf.where(v_hat_old > v, v_hat_old, v)  # a NaN in v propagates, as in the kernel
        write(velocity_hat, v_used)
    w = read(variable, c)
    adaptive = m / (tf.sqrt(v_used) + constant(epsilon, c))
    write(variable, w - step_size * tf.where(rectified, adaptive, m))
