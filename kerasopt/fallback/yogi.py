"""Yogi as composed TF ops: the same math as cc/kernels/yogi.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write


def apply_yogi(variable, gradient, momentum, velocity, *, learning_rate, beta_1, beta_2,
               epsilon):
    """One Yogi step on tf.Variables (no bias correction: no step)."""
    c = compute_dtype(variable.dtype)
    lr = tf.cast(tf.cast(learning_rate, tf.float64), c)  # the op takes lr as a double

    g = read(gradient, c)
    m = constant(beta_1, c) * read(momentum, c) + constant(1.0 - beta_1, c) * g
    g2 = tf.square(g)  # not g * g: Grappler reassociates products with constants
    v = read(velocity, c)
    v = v - (constant(1.0 - beta_2, c) * tf.sign(v - g2)) * g2
    write(momentum, m)
    write(velocity, v)
    w = read(variable, c)
    write(variable, w - lr * (m / (tf.sqrt(v) + constant(epsilon, c))))
