"""NovoGrad as composed TF ops: the same math as cc/kernels/novograd.h, with
||g||^2 summed exactly as cc/cpu/apply_layerwise.h sums it."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write
from kerasopt.fallback.lamb import sum_of_squares


def apply_novograd(variable, gradient, momentum, velocity, velocity_hat=None, *, learning_rate,
                   beta_1, beta_2, epsilon, weight_decay, step, grad_averaging, amsgrad=False):
    """One NovoGrad step on tf.Variables; `velocity` (and with amsgrad
    `velocity_hat`) has shape (); `step` is iterations + 1."""
    c = compute_dtype(variable.dtype)
    lr = tf.cast(tf.cast(learning_rate, tf.float64), c)  # the op takes lr as a double

    g = read(gradient, c)
    norm_sq = tf.cast(sum_of_squares(g), c)
    v_old = read(velocity, c)
    v = tf.where(tf.equal(step, 1), norm_sq,
                 constant(beta_2, c) * v_old + constant(1.0 - beta_2, c) * norm_sq)
    write(velocity, v)
    if amsgrad:
        v_hat_old = read(velocity_hat, c)
        v = tf.where(v_hat_old > v, v_hat_old, v)  # a NaN in v propagates, as in the kernel
        write(velocity_hat, v)
    denominator = tf.sqrt(v) + constant(epsilon, c)

    w = read(variable, c)
    u = g / denominator + constant(weight_decay, c) * w
    grad_scale = constant(1.0 - beta_1 if grad_averaging else 1.0, c)
    m = constant(beta_1, c) * read(momentum, c) + grad_scale * u
    write(momentum, m)
    write(variable, w - lr * m)
