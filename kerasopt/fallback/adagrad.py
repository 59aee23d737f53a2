"""Adagrad as composed TF ops: the same math as cc/kernels/adagrad.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write


def apply_adagrad(variable, gradient, accumulator, *, learning_rate, epsilon):
    """One Adagrad step on tf.Variables."""
    c = compute_dtype(variable.dtype)
    g = read(gradient, c)
    acc = read(accumulator, c) + g * g
    write(accumulator, acc)
    w = read(variable, c)
    lr = tf.cast(learning_rate, c)
    write(variable, w - (lr * g) / tf.sqrt(acc + constant(epsilon, c)))
