"""AdamW as composed TF ops: the same math as cc/kernels/adamw.h.

The decay and the Adam step are computed together and written once (as the
fused kernel does), so 16-bit variables are rounded once, not twice.
"""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, read, write


def apply_adamw(variable, gradient, momentum, velocity, velocity_hat=None, *,
                learning_rate, weight_decay, beta_1, beta_2, epsilon, step, amsgrad):
    """One AdamW step on tf.Variables; `step` is iterations + 1.

    `weight_decay` is 0 for variables excluded from weight decay.
    """
    c = compute_dtype(variable.dtype)
    lr = tf.cast(learning_rate, c)
    t = tf.cast(step, c)
    beta_1_power = tf.pow(tf.constant(beta_1, c), t)
    beta_2_power = tf.pow(tf.constant(beta_2, c), t)
    alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)

    w = read(variable, c)
    if weight_decay != 0:
        wd = tf.constant(weight_decay, c)
        # As Keras's w * wd * lr after Grappler's regrouping (see adamw.h).
        size = variable.shape.num_elements()
        if size is None or size > 1:
            w = w - w * (wd * lr)
        else:
            w = w - (w * wd) * lr
    g = read(gradient, c)
    m = read(momentum, c)
    v = read(velocity, c)
    m = m + (g - m) * tf.constant(1.0 - beta_1, c)
    v = v + (g * g - v) * tf.constant(1.0 - beta_2, c)
    write(momentum, m)
    write(velocity, v)
    if amsgrad:
        v = tf.maximum(read(velocity_hat, c), v)
        write(velocity_hat, v)
    write(variable, w - (m * alpha) / (tf.sqrt(v) + tf.constant(epsilon, c)))
