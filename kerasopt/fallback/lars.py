"""LARS as composed TF ops: the same math as cc/kernels/lars.h, with the norms
summed exactly as the op sums them (kerasopt/fallback/lamb.py's sum_of_squares)."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write
from kerasopt.fallback.lamb import sum_of_squares


def apply_lars(variable, gradient, momentum_slot, *, learning_rate, momentum, weight_decay,
               eta, nesterov, layer_adaptation):
    """One LARS step on tf.Variables (`momentum_slot` is None when momentum == 0).

    `weight_decay` is the variable's beta (0 when it is excluded from weight
    decay); `layer_adaptation=False` sets the local rate to 1.
    """
    c = compute_dtype(variable.dtype)
    w = read(variable, c)
    g = read(gradient, c)
    scale = tf.cast(learning_rate, c)
    beta = constant(weight_decay, c)
    if layer_adaptation:
        w_norm = tf.cast(tf.sqrt(sum_of_squares(w)), c)
        g_norm = tf.cast(tf.sqrt(sum_of_squares(g)), c)
        both_positive = tf.logical_and(w_norm > 0, g_norm > 0)
        local = tf.where(both_positive,
                         (constant(eta, c) * w_norm) / (g_norm + beta * w_norm),
                         constant(1.0, c))
        scale = scale * local
    u = g + beta * w
    if momentum == 0:
        write(variable, w - scale * u)
        return
    mu = constant(momentum, c)
    v = mu * read(momentum_slot, c) + scale * u
    write(momentum_slot, v)
    if nesterov:
        write(variable, w - (mu * v + scale * u))
    else:
        write(variable, w - v)
