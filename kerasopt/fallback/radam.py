"""RAdam as composed TF ops: the same math as cc/kernels/radam.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write


def step_scalars(learning_rate, beta_1, beta_2, step):
    """(rectified, step_size) in float64, as RAdamStep::Make in cc/kernels/radam.h."""
    f64 = tf.float64
    t = tf.cast(step, f64)
    lr = tf.cast(learning_rate, f64)
    b1_correction = 1.0 - tf.pow(constant(beta_1, f64), t)
    b2_power = tf.pow(constant(beta_2, f64), t)
    b2_correction = 1.0 - b2_power
    # A Python float, or a float64 tensor for a variable beta_2: the same double as the C++.
    rho_inf = 2.0 / (1.0 - beta_2) - 1.0
    rho_t = rho_inf - 2.0 * t * b2_power / b2_correction
    rectified = rho_t > 4.0
    # Evaluate the rectification term only where it is defined (no NaN in either branch).
    safe_rho = tf.where(rectified, rho_t, constant(5.0, f64))
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
    step_size = tf.where(rectified, lr * r * tf.sqrt(b2_correction) / b1_correction,
                         lr / b1_correction)
    return rectified, step_size


def apply_radam(variable, gradient, momentum, velocity, *, learning_rate, beta_1, beta_2,
                epsilon, step):
    """One RAdam step on tf.Variables; `step` is iterations + 1."""
    c = compute_dtype(variable.dtype)
    rectified, step_size = step_scalars(learning_rate, beta_1, beta_2, step)
    step_size = tf.cast(step_size, c)

    g = read(gradient, c)
    m = constant(beta_1, c) * read(momentum, c) + constant(1.0 - beta_1, c) * g
    # tf.square, not g * g: Grappler would reassociate c * (g * g) (see adabelief.py).
    v = constant(beta_2, c) * read(velocity, c) + constant(1.0 - beta_2, c) * tf.square(g)
    write(momentum, m)
    write(velocity, v)
    w = read(variable, c)
    adaptive = m / (tf.sqrt(v) + constant(epsilon, c))
    write(variable, w - step_size * tf.where(rectified, adaptive, m))
