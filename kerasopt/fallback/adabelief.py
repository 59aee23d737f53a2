"""AdaBelief as composed TF ops: the same math as cc/kernels/adabelief.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write
from kerasopt.fallback.radam import rectification


def apply_adabelief(variable, gradient, momentum, belief, *, learning_rate, beta_1, beta_2,
                    epsilon, step, amsgrad, sma_threshold=4.0, rectify=False):
    """One AdaBelief step on tf.Variables; `step` is iterations + 1."""
    c = compute_dtype(variable.dtype)
    # Per-step scalars in float64, rounded once (as the C++ Make does).
    t = tf.cast(step, tf.float64)
    lr = tf.cast(learning_rate, tf.float64)
    b1_correction = 1.0 - tf.pow(constant(beta_1, tf.float64), t)
    adaptive = None  # rectify: whether this step uses the adaptive term
    if rectify:
        adaptive, r = rectification(beta_2, t, sma_threshold)
        step_size = tf.cast(tf.where(adaptive, lr * r / b1_correction, lr / b1_correction), c)
    else:
        step_size = tf.cast(lr / b1_correction, c)
    inv_b2_correction = tf.cast(1.0 / (1.0 - tf.pow(constant(beta_2, tf.float64), t)), c)
    eps = constant(epsilon, c)

    g = read(gradient, c)
    m = constant(beta_1, c) * read(momentum, c) + constant(1.0 - beta_1, c) * g
    d = g - m
    s_old = read(belief, c)
    # The form of cc/kernels/adabelief.h, chosen so that TensorFlow's graph
    # optimizer cannot regroup it: no sum of three terms, and tf.square
    # rather than d * d (it reassociates c * (d * d)).
    s = (constant(beta_2, c) * s_old
         + constant(1.0 - beta_2, c) * (tf.square(d) + constant(epsilon / (1.0 - beta_2), c)))
    if amsgrad:
        s = tf.where(s_old > s, s_old, s)  # a NaN in s propagates, as in the kernel
    write(momentum, m)
    write(belief, s)
    w = read(variable, c)
    direction = m / (tf.sqrt(s * inv_b2_correction) + eps)
    if adaptive is not None:
        direction = tf.where(adaptive, direction, m)
    write(variable, w - step_size * direction)
