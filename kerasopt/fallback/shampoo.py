"""Blocked Shampoo with grafting as composed TF ops: the math of
cc/tf/preconditioned_apply_op.cc (KerasoptApplyShampoo)."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write
from kerasopt.fallback.blocks import BlockLayout, from_tiles, matrix_view, to_tiles
from kerasopt.fallback.matrix_root import matrix_inverse_root


def _grafted_step(g, graft_slots, grafting, beta_1, beta_2, graft_epsilon, step, c):
    """The grafted optimizer's step with the learning rate factored out."""
    if grafting != "adam":
        return g
    momentum, velocity = graft_slots
    t = tf.cast(step, c)
    alpha = tf.sqrt(1 - tf.pow(constant(beta_2, c), t)) / (1 - tf.pow(constant(beta_1, c), t))
    m = read(momentum, c)
    v = read(velocity, c)
    m = m + (g - m) * constant(1.0 - beta_1, c)
    v = v + (g * g - v) * constant(1.0 - beta_2, c)
    write(momentum, m)
    write(velocity, v)
    return (m * alpha) / (tf.sqrt(v) + constant(graft_epsilon, c))


def apply_shampoo(variable, gradient, left_statistics, right_statistics,
                  left_preconditioner, right_preconditioner, graft_slots=(), *,
                  learning_rate, epsilon, beta_1, beta_2, graft_epsilon, step,
                  recompute, precondition, grafting):
    """One Shampoo step on a variable of rank >= 2 (see kerasopt.Shampoo)."""
    c = compute_dtype(variable.dtype)
    shape = variable.shape
    layout = BlockLayout(*matrix_view(shape), left_statistics.shape[1], right_statistics.shape[1])
    g_full = read(gradient, c)
    g = to_tiles(tf.reshape(g_full, [layout.rows, layout.cols]), layout)
    left = read(left_statistics, c) + tf.matmul(g, g, transpose_b=True)
    right = read(right_statistics, c) + tf.matmul(g, g, transpose_a=True)
    write(left_statistics, left)
    write(right_statistics, right)
    recompute = tf.convert_to_tensor(recompute)
    left_pre = tf.cond(recompute, lambda: matrix_inverse_root(left, 4, epsilon),
                       lambda: read(left_preconditioner, c))
    right_pre = tf.cond(recompute, lambda: matrix_inverse_root(right, 4, epsilon),
                        lambda: read(right_preconditioner, c))
    write(left_preconditioner, left_pre)
    write(right_preconditioner, right_pre)
    direction = tf.reshape(from_tiles(tf.matmul(tf.matmul(left_pre, g), right_pre), layout), shape)

    lr = tf.cast(learning_rate, c)
    w = read(variable, c)
    if grafting == "none":
        # Before preconditioning starts, plain SGD.
        update = tf.where(tf.convert_to_tensor(precondition), direction, g_full)
        write(variable, w - lr * update)
        return
    graft = _grafted_step(g_full, graft_slots, grafting, beta_1, beta_2, graft_epsilon, step, c)
    graft_norm = tf.norm(tf.cast(graft, tf.float64))
    direction_norm = tf.norm(tf.cast(direction, tf.float64))
    use_direction = tf.logical_and(tf.convert_to_tensor(precondition), direction_norm > 0)
    scale = tf.where(use_direction, graft_norm / tf.where(use_direction, direction_norm, 1.0), 1.0)
    update = tf.where(use_direction, direction, graft)
    write(variable, w - (lr * tf.cast(scale, c)) * update)
