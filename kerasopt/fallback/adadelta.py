"""Adadelta as composed TF ops: the same math as cc/kernels/adadelta.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write


def apply_adadelta(variable, gradient, accumulated_grad, accumulated_delta_var, *,
                   learning_rate, rho, epsilon):
    """One Adadelta step on tf.Variables (Keras's form: the step is scaled by learning_rate)."""
    c = compute_dtype(variable.dtype)
    rho_c = constant(rho, c)
    one_minus_rho = constant(1.0 - rho, c)
    eps = constant(epsilon, c)
    g = read(gradient, c)
    eg = rho_c * read(accumulated_grad, c) + one_minus_rho * (g * g)
    write(accumulated_grad, eg)
    edx = read(accumulated_delta_var, c)
    delta = (tf.sqrt(edx + eps) * g) / tf.sqrt(eg + eps)
    write(accumulated_delta_var, rho_c * edx + one_minus_rho * (delta * delta))
    w = read(variable, c)
    write(variable, w - tf.cast(learning_rate, c) * delta)
