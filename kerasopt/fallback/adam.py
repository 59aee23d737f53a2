"""Adam / AMSGrad as composed TF ops: the same math as cc/kernels/adam.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write


def apply_adam(variable, gradient, momentum, velocity, velocity_hat=None, *,
               learning_rate, beta_1, beta_2, epsilon, step, amsgrad, weight=None):
    """One Adam step on tf.Variables; `step` is iterations + 1.

    `weight`, if given, is the value (in the compute dtype) to step from instead
    of the variable's: AdamW passes its decayed weight.
    """
    c = compute_dtype(variable.dtype)
    t = tf.cast(step, c)
    beta_1_power = tf.pow(constant(beta_1, c), t)
    beta_2_power = tf.pow(constant(beta_2, c), t)
    alpha = tf.cast(learning_rate, c) * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)

    g = read(gradient, c)
    m = read(momentum, c)
    v = read(velocity, c)
    m = m + (g - m) * constant(1.0 - beta_1, c)
    v = v + (g * g - v) * constant(1.0 - beta_2, c)
    write(momentum, m)
    write(velocity, v)
    if amsgrad:
        v = tf.maximum(read(velocity_hat, c), v)
        write(velocity_hat, v)
    w = read(variable, c) if weight is None else weight
    write(variable, w - (m * alpha) / (tf.sqrt(v) + constant(epsilon, c)))
