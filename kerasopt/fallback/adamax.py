"""Adamax as composed TF ops: the same math as cc/kernels/adamax.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write


def apply_adamax(variable, gradient, momentum, norm, *,
                 learning_rate, beta_1, beta_2, epsilon, step):
    """One Adamax step on tf.Variables; `step` is iterations + 1."""
    c = compute_dtype(variable.dtype)
    lr = tf.cast(learning_rate, c)
    one_minus_b1_power = 1 - tf.pow(constant(beta_1, c), tf.cast(step, c))

    g = read(gradient, c)
    m = read(momentum, c)
    u = read(norm, c)
    m = m + (g - m) * constant(1.0 - beta_1, c)
    u = tf.maximum(constant(beta_2, c) * u, tf.abs(g))
    write(momentum, m)
    write(norm, u)
    w = read(variable, c)
    write(variable, w - (lr * m) / (one_minus_b1_power * (u + constant(epsilon, c))))
