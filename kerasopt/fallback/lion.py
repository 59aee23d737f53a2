"""Lion as composed TF ops: the same math as cc/kernels/lion.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write


def apply_lion(variable, gradient, momentum, *, learning_rate, beta_1, beta_2):
    """One Lion step on tf.Variables."""
    c = compute_dtype(variable.dtype)
    lr = tf.cast(learning_rate, c)
    b1 = constant(beta_1, c)
    b2 = constant(beta_2, c)
    g = read(gradient, c)
    m = read(momentum, c)
    w = read(variable, c)
    write(variable, w - lr * tf.sign(m * b1 + g * (1 - b1)))
    write(momentum, m * b2 + g * (1 - b2))
