"""Nadam as composed TF ops: the same math as cc/kernels/nadam.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write


def momentum_schedule(beta_1, step, dtype):
    """mu_t = beta_1 * (1 - 0.5 * 0.96^t), in `dtype`."""
    t = tf.cast(step, dtype)
    return constant(beta_1, dtype) * (1 - constant(0.5, dtype) * tf.pow(constant(0.96, dtype), t))


def apply_nadam(variable, gradient, momentum, velocity, *,
                learning_rate, beta_1, beta_2, epsilon, u_product, step):
    """One Nadam step on tf.Variables; `step` is iterations + 1 and
    `u_product` the product mu_1 ... mu_t (this step included)."""
    c = compute_dtype(variable.dtype)
    lr = tf.cast(learning_rate, c)
    step = tf.cast(step, tf.int64)
    u_t = momentum_schedule(beta_1, step, c)
    u_t_1 = momentum_schedule(beta_1, step + 1, c)
    u_product_t = tf.cast(u_product, c)
    u_product_t_1 = u_product_t * u_t_1
    b1 = constant(beta_1, c)
    b2 = constant(beta_2, c)
    one_minus_b2_power = 1 - tf.pow(b2, tf.cast(step, c))

    g = read(gradient, c)
    m = read(momentum, c)
    v = read(velocity, c)
    m = m + (g - m) * (1 - b1)
    v = v + (g * g - v) * (1 - b2)
    write(momentum, m)
    write(velocity, v)
    m_hat = (u_t_1 * m) / (1 - u_product_t_1) + ((1 - u_t) * g) / (1 - u_product_t)
    v_hat = v / one_minus_b2_power
    w = read(variable, c)
    write(variable, w - (m_hat * lr) / (tf.sqrt(v_hat) + constant(epsilon, c)))
