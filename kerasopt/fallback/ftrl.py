"""FTRL-Proximal as composed TF ops: the same math as cc/kernels/ftrl.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write


def _power(x, learning_rate_power, c):
    """x ** -learning_rate_power, correctly rounded as in the C++ rule."""
    if tf.is_tensor(learning_rate_power):  # a variable: the C++ rule's choice, made per step
        p = learning_rate_power
        return tf.where(tf.equal(p, -0.5), tf.sqrt(x),
                        tf.where(tf.equal(p, 0.0), tf.ones_like(x), _general_power(x, p, c)))
    if learning_rate_power == -0.5:
        return tf.sqrt(x)
    if learning_rate_power == 0.0:
        return tf.ones_like(x)
    return _general_power(x, learning_rate_power, c)


def _general_power(x, learning_rate_power, c):
    if c == tf.float64:
        return tf.pow(x, constant(-learning_rate_power, c))
    # float compute: the power in double, rounded once (as the C++ does).
    wide = tf.pow(tf.cast(x, tf.float64), tf.cast(constant(-learning_rate_power, c), tf.float64))
    return tf.cast(wide, c)


def apply_ftrl(variable, gradient, accumulator, linear, *, learning_rate,
               learning_rate_power, l1, l2, l2_shrinkage, beta):
    """One FTRL-Proximal step on tf.Variables."""
    c = compute_dtype(variable.dtype)
    lr = tf.cast(learning_rate, c)
    l2_reg = constant(l2, c) + constant(beta, c) / (constant(2.0, c) * lr)
    two_l2_reg = constant(2.0, c) * l2_reg
    l1_c = constant(l1, c)

    g = read(gradient, c)
    w = read(variable, c)
    n = read(accumulator, c)
    z = read(linear, c)
    g_shrunk = g + constant(2.0 * l2_shrinkage, c) * w
    n_new = n + g * g
    p_new = _power(n_new, learning_rate_power, c)
    z = z + (g_shrunk - ((p_new - _power(n, learning_rate_power, c)) / lr) * w)
    quadratic = p_new / lr + two_l2_reg
    clipped = tf.maximum(tf.minimum(z, l1_c), -l1_c)
    write(linear, z)
    write(variable, (clipped - z) / quadratic)
    write(accumulator, n_new)
