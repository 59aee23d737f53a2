"""RMSprop (centered, momentum) as composed TF ops: the same math as cc/kernels/rmsprop.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write


def apply_rmsprop(variable, gradient, velocity, momentum_slot=None, average_gradient=None, *,
                  learning_rate, rho, momentum, epsilon, centered):
    """One RMSprop step on tf.Variables.

    `momentum_slot` is None unless momentum > 0; `average_gradient` is None
    unless `centered`.
    """
    c = compute_dtype(variable.dtype)
    rho_c = constant(rho, c)
    one_minus_rho = constant(1.0 - rho, c)
    g = read(gradient, c)
    v = rho_c * read(velocity, c) + one_minus_rho * (g * g)
    write(velocity, v)
    if centered:
        a = rho_c * read(average_gradient, c) + one_minus_rho * g
        write(average_gradient, a)
        denominator = (v - a * a) + constant(epsilon, c)
    else:
        denominator = v + constant(epsilon, c)
    increment = (tf.cast(learning_rate, c) * g) / tf.sqrt(denominator)
    w = read(variable, c)
    if momentum > 0:
        m = constant(momentum, c) * read(momentum_slot, c) + increment
        write(momentum_slot, m)
        write(variable, w - m)
    else:
        write(variable, w - increment)
