"""Muon as composed TF ops: the same math as cc/kernels/muon.h, in Keras's
operation order (its AdamW side is kerasopt/fallback/adam.py on the decayed
weight). The Frobenius norm is summed in float64 in lamb.sum_of_squares's
order; the matrix products are TensorFlow's."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write
from kerasopt.fallback.adam import apply_adam
from kerasopt.fallback.decoupled_decay import decay
from kerasopt.fallback.lamb import sum_of_squares

NORM_EPSILON = 1e-7  # Keras's x / (||x||_F + 1e-7)


def newton_schulz5(x, *, steps, a, b, c):
    """Keras's zeropower_via_newtonschulz5 on a 2-D tensor `x` (its dtype)."""
    transposed = x.shape[-2] > x.shape[-1]
    if transposed:
        x = tf.transpose(x)
    norm = tf.cast(tf.sqrt(sum_of_squares(x)), x.dtype)
    x = x / (norm + NORM_EPSILON)
    for _ in range(steps):
        gram = tf.matmul(x, tf.transpose(x))
        x = a * x + tf.matmul(b * gram + tf.matmul(c * gram, gram), x)
    return tf.transpose(x) if transposed else x


def apply_muon(variable, gradient, momentum, *, learning_rate, weight_decay, momentum_decay,
               nesterov, ns_steps, coefficients, rms_rate):
    """One Muon step on a 2-D tf.Variable; `momentum_decay` is Keras's `momentum`."""
    c = compute_dtype(variable.dtype)
    lr = tf.cast(learning_rate, c)
    w = decay(read(variable, c), variable, weight_decay=weight_decay, learning_rate=lr)
    g = read(gradient, c)
    m = read(momentum, c)
    increment = g + m * constant(momentum_decay - 1.0, c)
    if momentum.dtype == c:
        # As Keras, one AssignAdd: Grappler would regroup m + (g + m * k) as a
        # sum of three terms, which rounds differently.
        m = momentum.assign_add(increment).read_value()
    else:
        m = m + increment
        write(momentum, m)
    direction = g + constant(momentum_decay, c) * m if nesterov else m
    a, b, c_ = (constant(k, c) for k in coefficients)
    x = newton_schulz5(direction, steps=ns_steps, a=a, b=b, c=c_)
    if rms_rate is None:
        update = lr * x
    else:
        # Moonlight's scaling. Keras writes (lr * x) * sqrt(max(rows, cols)) *
        # rms_rate; in a graph Grappler folds the constants and multiplies the
        # scalars first: x * (lr * (sqrt(max) * rms_rate)). So does this.
        size_scale = tf.sqrt(tf.constant(float(max(variable.shape)), c))
        update = x * (lr * _product_kept_together(size_scale, constant(rms_rate, c)))
    write(variable, w - update)


def _product_kept_together(constant_factor, factor):
    """constant_factor * factor, rounded as one float32 (or float64) product,
    in a form Grappler cannot regroup with the factors around it.

    With `factor` a tensor (a hyperparameter variable), Grappler regroups
    lr * (sqrt(max) * rms_rate), a constant inside a product of scalars, so
    the step rounded differently from the same Python float, for which
    sqrt(max) * rms_rate is folded into one constant first: the 1-ulp
    difference of test_hyperparameter_variables[tf-Muon] (it went away with
    Grappler's constant folding or its arithmetic optimizer turned off, and
    with this form). Two float32 numbers
    multiply exactly in float64, so the float32 product rounded from it is
    the float32 product itself, and the casts keep Grappler out.
    """
    if constant_factor.dtype != tf.float32:
        return constant_factor * factor
    wide = tf.cast(constant_factor, tf.float64) * tf.cast(factor, tf.float64)
    return tf.cast(wide, tf.float32)


def apply_muon_adamw(variable, gradient, momentum, velocity, *, learning_rate, adam_lr_ratio,
                     weight_decay, beta_1, beta_2, epsilon, step):
    """Muon's AdamW step: the decay with `learning_rate`, Adam with
    `learning_rate * adam_lr_ratio`."""
    c = compute_dtype(variable.dtype)
    lr = tf.cast(learning_rate, c)
    w = decay(read(variable, c), variable, weight_decay=weight_decay, learning_rate=lr)
    apply_adam(variable, gradient, momentum, velocity,
               learning_rate=lr * constant(adam_lr_ratio, c),
               beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, step=step, amsgrad=False, weight=w)
