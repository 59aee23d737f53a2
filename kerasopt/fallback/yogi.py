"""Yogi as composed TF ops: the same math as cc/kernels/yogi.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write


def _is_zero(value) -> bool:
    return not tf.is_tensor(value) and value == 0.0


def apply_yogi(variable, gradient, momentum, velocity, *, learning_rate, beta_1, beta_2,
               epsilon, l1=0.0, l2=0.0, tanh_activation=False):
    """One Yogi step on tf.Variables (no bias correction: no step)."""
    c = compute_dtype(variable.dtype)
    lr = tf.cast(tf.cast(learning_rate, tf.float64), c)  # the op takes lr as a double

    g = read(gradient, c)
    m = constant(beta_1, c) * read(momentum, c) + constant(1.0 - beta_1, c) * g
    g2 = tf.square(g)  # not g * g: Grappler reassociates products with constants
    v = read(velocity, c)
    diff = v - g2
    if tanh_activation:
        # In float64, rounded once, as the kernel does (TensorFlow's float32
        # tanh is an approximation of its own).
        sign = tf.cast(tf.tanh(10.0 * tf.cast(diff, tf.float64)), c)
    else:
        sign = tf.sign(diff)
    v = v - (constant(1.0 - beta_2, c) * sign) * g2
    write(momentum, m)
    write(velocity, v)
    w = read(variable, c)
    plain = w - lr * (m / (tf.sqrt(v) + constant(epsilon, c)))
    if _is_zero(l1) and _is_zero(l2):
        write(variable, plain)
        return
    # The proximal step of TensorFlow Addons (l1 or l2 > 0).
    l1, l2 = constant(l1, c), constant(l2, c)
    lr_w = lr / (tf.sqrt(v) + constant(epsilon, c))
    u = w - lr_w * m
    shrink = 1.0 + l2 * lr_w
    threshold = l1 * lr_w
    zero = tf.where(tf.math.is_nan(u), u, tf.zeros_like(u))  # a NaN u stays NaN, as the kernel
    shrunk = tf.where(tf.abs(u) > threshold, (u - threshold * tf.sign(u)) / shrink, zero)
    proximal = tf.where(l1 > 0.0, shrunk, u / shrink)
    write(variable, tf.where(tf.logical_or(l1 > 0.0, l2 > 0.0), proximal, plain))
