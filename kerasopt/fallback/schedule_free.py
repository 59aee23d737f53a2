"""Schedule-Free AdamW and SGD as composed TF ops: the same math as
cc/kernels/schedule_free.h (and schedule_free_{adamw,sgd}.h), in Keras's
operation order.

The divisions by constants and the grouping of the average are written as
Grappler rewrites Keras's traced graph (x / beta_1 as x * (1 / beta_1), the
scalars of (1 - 1/t) * (s * (1 / beta_1)) multiplied first for variables of
more than one element, other groupings for one element), not left to Grappler: so the bits are the same
eagerly, in a graph and with a hyperparameter variable (which Grappler would
not fold).
"""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write
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
        lr = lr * tf.minimum(t * (1 / tf.constant(warmup_steps, c)), tf.constant(1.0, c))
    b1 = constant(beta_1, c)
    g = read(gradient, c)
    z_old = read(momentum, c)
    if velocity is None:
        z = z_old - lr * g
    else:
        b2 = constant(beta_2, c)
        v = read(velocity, c)
        v = v + (g * g - v) * (1 - b2)
        write(velocity, v)
        z = z_old - (lr * g) / (tf.sqrt(v / (1 - tf.pow(b2, t))) + constant(epsilon, c))
    weight = 1 / t
    s = y - (1 - b1) * (z_old if interpolate else z)
    x = _old_part(s, weight, b1, variable.shape) + weight * z
    write(momentum, z)
    write(variable, (1 - b1) * z + b1 * x)


def _old_part(s, weight, b1, shape):
    """(1 - 1/t) * x_old = (1 - 1/t) * s / beta_1, grouped as Grappler groups
    Keras's product for this shape (cc/kernels/schedule_free.h)."""
    size = shape.num_elements()
    if size is None or size > 1:  # x_old's weight first, with its division by beta_1
        return s * ((1 - weight) * (1 / b1))
    if shape.rank == 0:
        return (1 - weight) * (s * (1 / b1))
    return ((1 - weight) * s) * (1 / b1)  # one element, rank >= 1


def averaged_weight(variable, momentum, *, beta_1):
    """x = (y - (1 - beta_1) z) / beta_1, the weights to evaluate (of the
    interpolating rule), in the variable's dtype."""
    c = compute_dtype(variable.dtype)
    b1 = constant(beta_1, c)
    x = (read(variable, c) - (1 - b1) * read(momentum, c)) / b1
    return tf.cast(x, variable.dtype)
