"""SGD with (Nesterov) momentum as composed TF ops: the same math as cc/kernels/sgd.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write


def apply_sgd(variable, gradient, momentum_slot=None, *, learning_rate, momentum, nesterov):
    """One SGD step on tf.Variables (`momentum_slot` is None when momentum == 0)."""
    c = compute_dtype(variable.dtype)
    lr = tf.cast(learning_rate, c)
    g = read(gradient, c)
    w = read(variable, c)
    if momentum == 0:
        write(variable, w - g * lr)
        return
    mu = constant(momentum, c)
    m = read(momentum_slot, c) * mu - g * lr
    write(momentum_slot, m)
    write(variable, w + (m * mu - g * lr) if nesterov else w + m)
