"""LAMB as composed TF ops: the same math as cc/kernels/lamb.h, with the norms
summed exactly as cc/cpu/apply_with_norms.h sums them."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write

BLOCK = 512  # cc/cpu/apply_dense.h's kBlock


def block_sums(terms):
    """Sums of float64 `terms` along the last axis, in the C++ drivers' order.

    Per block of BLOCK terms (the tail padded with zeros) a halving tree:
    t[..., :h] + t[..., h:] for h = BLOCK/2, ..., 1; then the block partials
    added left to right (a cumulative sum's last element, started from 0).
    """
    n = terms.shape[-1]
    if n is None:
        n = tf.shape(terms)[-1]
    lead = tf.shape(terms)[:-1]
    padded = tf.pad(terms, [[0, 0]] * (len(terms.shape) - 1) + [[0, (BLOCK - n % BLOCK) % BLOCK]])
    tree = tf.reshape(padded, tf.concat([lead, [-1, BLOCK]], axis=0))
    h = BLOCK // 2
    while h >= 1:
        tree = tree[..., :h] + tree[..., h:]
        h //= 2
    partials = tf.concat([tf.zeros(tf.concat([lead, [1]], axis=0), tf.float64), tree[..., 0]],
                         axis=-1)
    return tf.math.cumsum(partials, axis=-1)[..., -1]


def sum_of_squares(x):
    """sum(x^2) in float64, in the C++ driver's order (for the same bits):
    the squares taken in float64, then :func:`block_sums` over the flattened x."""
    x = tf.reshape(tf.cast(x, tf.float64), [-1])
    return block_sums(x * x)


def apply_lamb(variable, gradient, momentum, velocity, *, learning_rate, beta_1, beta_2,
               epsilon, step, weight_decay_rate=0.0, layer_adaptation=True):
    """One LAMB step on tf.Variables; `step` is iterations + 1."""
    c = compute_dtype(variable.dtype)
    t = tf.cast(step, c)
    b1_correction = 1 - tf.pow(constant(beta_1, c), t)
    b2_correction = 1 - tf.pow(constant(beta_2, c), t)

    g = read(gradient, c)
    m = read(momentum, c)
    v = read(velocity, c)
    m = m + (g - m) * constant(1.0 - beta_1, c)
    v = v + (g * g - v) * constant(1.0 - beta_2, c)
    write(momentum, m)
    write(velocity, v)
    r = (m / b1_correction) / (tf.sqrt(v / b2_correction) + constant(epsilon, c))

    w = read(variable, c)
    # The paper's decay inside the ratio; lambda = 0 adds nothing (as the kernel).
    if tf.is_tensor(weight_decay_rate):
        r = tf.where(tf.not_equal(weight_decay_rate, 0.0),
                     r + constant(weight_decay_rate, c) * w, r)
    elif weight_decay_rate != 0.0:
        r = r + constant(weight_decay_rate, c) * w
    lr = tf.cast(learning_rate, c)
    if not layer_adaptation:
        write(variable, w - lr * r)
        return
    w_norm = tf.cast(tf.sqrt(sum_of_squares(w)), c)
    r_norm = tf.cast(tf.sqrt(sum_of_squares(r)), c)
    one = constant(1.0, c)
    ratio = tf.where(w_norm > 0, tf.where(r_norm > 0, w_norm / r_norm, one), one)
    write(variable, w - (ratio * lr) * r)
