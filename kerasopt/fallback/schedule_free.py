"""Schedule-Free AdamW and SGD as composed TF ops: the same math as
cc/kernels/schedule_free.h, in Keras's operation order."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, read, write
from kerasopt.fallback.decoupled_decay import decay


def apply_schedule_free(variable, gradient, momentum, velocity=None, *, learning_rate,
                        weight_decay, beta_1, warmup_steps, interpolate, step, beta_2=None,
                        epsilon=None):
    """One Schedule-Free step on tf.Variables; `step` is iterations + 1.

    `variable` holds y, `momentum` z; `velocity` (AdamW) is the second moment,
    None for SGD. `weight_decay` is 0 for variables excluded from it.
    `interpolate`: x is recovered from y with the z before the step (the
    paper's rule); False: with the z after it, as Keras 3.15 does (its
    `momentum.value` is the variable, read after the update), which makes y
    the running average of z.
    """
    c = compute_dtype(variable.dtype)
    t = tf.cast(step, c)
    lr = tf.cast(learning_rate, c)
    y = decay(read(variable, c), variable, weight_decay=weight_decay, learning_rate=lr)
    if warmup_steps > 0:
        lr = lr * tf.minimum(t / tf.constant(warmup_steps, c), tf.constant(1.0, c))
    b1 = tf.constant(beta_1, c)
    g = read(gradient, c)
    z_old = read(momentum, c)
    if velocity is None:
        z = z_old - lr * g
    else:
        b2 = tf.constant(beta_2, c)
        v = read(velocity, c)
        v = v + (g * g - v) * (1 - b2)
        write(velocity, v)
        z = z_old - (lr * g) / (tf.sqrt(v / (1 - tf.pow(b2, t))) + tf.constant(epsilon, c))
    weight = 1 / t
    x_old = (y - (1 - b1) * (z_old if interpolate else z)) / b1
    x = (1 - weight) * x_old + weight * z
    write(momentum, z)
    write(variable, (1 - b1) * z + b1 * x)


def averaged_weight(variable, momentum, *, beta_1):
    """x = (y - (1 - beta_1) z) / beta_1, the weights to evaluate (of the
    interpolating rule), in the variable's dtype."""
    c = compute_dtype(variable.dtype)
    b1 = tf.constant(beta_1, c)
    x = (read(variable, c) - (1 - b1) * read(momentum, c)) / b1
    return tf.cast(x, variable.dtype)
