"""Adafactor as composed TF ops: the same math as cc/kernels/adafactor.h, in
Keras's operation order, with every mean summed in float64 in a fixed order
(so the kernel can give the same bits):

* over the whole variable (RMS(w), RMS(u)): lamb.sum_of_squares's order;
* along the last axis (row sums, the mean of r): lamb.block_sums per row;
* along the second-last axis (column sums): per chunk of ROWS rows in row
  order, then the chunks in order.
"""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write
from kerasopt.fallback.lamb import block_sums, sum_of_squares

ROWS = 64  # rows per chunk of the column sums (cc/kernels/adafactor.h's kRowsPerChunk)


def column_sums(terms, n):
    """Sums of float64 `terms` [..., n, m] along axis -2: [..., m]. `n` is the
    variable's static dimension (a gradient's may be unknown while tracing)."""
    if n == 0:  # zeros [..., m] (the chunk sums below would have no chunk to take)
        return tf.reduce_sum(terms, axis=-2)
    lead = tf.shape(terms)[:-2]
    m = tf.shape(terms)[-1:]
    pad = [[0, 0]] * (len(terms.shape) - 2) + [[0, (ROWS - n % ROWS) % ROWS], [0, 0]]
    chunks = tf.reshape(tf.pad(terms, pad), tf.concat([lead, [-1, ROWS], m], axis=0))
    per_chunk = tf.math.cumsum(chunks, axis=-2)[..., -1, :]  # [..., chunks, m]
    zero = tf.zeros_like(per_chunk[..., :1, :])
    return tf.math.cumsum(tf.concat([zero, per_chunk], axis=-2), axis=-2)[..., -1, :]


def mean_from_sum(total, count, c):
    """total / count rounded once to `c` (0 for an empty axis, where Keras gives NaN)."""
    if count == 0:
        return tf.zeros_like(tf.cast(total, c))
    return tf.cast(total / count, c)


def rms(x, c, size):
    """sqrt(mean(x^2)) over the `size` elements of x, from the float64 sum of squares."""
    if size == 0:
        return tf.constant(0, c)
    return tf.cast(tf.sqrt(sum_of_squares(x) / size), c)


def apply_adafactor(variable, gradient, r, c_slot, velocity, *, learning_rate, beta_2_decay,
                    epsilon_1, epsilon_2, clip_threshold, step):
    """One Adafactor step on tf.Variables; `step` is iterations + 1. The
    hyperparameters are Python floats or float tensors (variables read each step).

    `r` and `c_slot` are the row and column statistics of a variable of rank
    >= 2 (None otherwise); `velocity` is the second moment (for rank >= 2 the
    outer product Keras stores).
    """
    c = compute_dtype(variable.dtype)
    t = tf.cast(step, c)
    rho = tf.minimum(tf.cast(learning_rate, c), 1 / tf.sqrt(t))
    w = read(variable, c)
    size = variable.shape.num_elements()  # (a gradient's shape may be unknown while tracing)
    alpha = tf.maximum(constant(epsilon_2, c), rms(w, c, size)) * rho
    beta = 1 - tf.pow(t, constant(beta_2_decay, c))
    g = read(gradient, c)
    regulated = g * g + constant(epsilon_1, c)
    if r is not None:
        n, m = variable.shape[-2], variable.shape[-1]
        terms = tf.cast(regulated, tf.float64)
        row_mean = mean_from_sum(block_sums(terms), m, c)
        col_mean = mean_from_sum(column_sums(terms, n), n, c)
        new_r = beta * read(r, c) + (1 - beta) * row_mean
        new_c = beta * read(c_slot, c) + (1 - beta) * col_mean
        write(r, new_r)
        write(c_slot, new_c)
        r_mean = mean_from_sum(block_sums(tf.cast(new_r, tf.float64)), n, c)
        v = tf.expand_dims(new_r / tf.expand_dims(r_mean, -1), -1) * tf.expand_dims(new_c, -2)
    else:
        v = beta * read(velocity, c) + (1 - beta) * regulated
    write(velocity, v)
    # divide_no_nan, not g / sqrt(v): in a graph Grappler rewrites the latter
    # as g * rsqrt(v), whose vectorized rsqrt is not correctly rounded (so the
    # kernel could not give the same bits). It differs from g / sqrt(v) only
    # where v == 0 (epsilon_1 == 0 and a zero gradient): a zero step, not NaN.
    u = tf.math.divide_no_nan(g, tf.sqrt(v))
    rms_u = rms(u, c, size)
    clip = tf.maximum(tf.constant(1, c), rms_u / constant(clip_threshold, c))
    write(variable, w - alpha * (u / clip))
