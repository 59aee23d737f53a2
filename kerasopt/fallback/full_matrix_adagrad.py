"""Block-diagonal full-matrix AdaGrad as composed TF ops: the math of
cc/tf/preconditioned_apply_op.h (KerasoptApplyFullMatrixAdagrad)."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, read, write
from kerasopt.fallback.blocks import from_tiles, full_matrix_layout, to_tiles
from kerasopt.fallback.matrix_root import matrix_inverse_root


def apply_full_matrix_adagrad(variable, gradient, statistics, preconditioner, *,
                              learning_rate, epsilon, recompute):
    """One step: G_k += g_k g_k^T; P_k = (G_k + eps I)^(-1/2) if `recompute`; w -= lr P g."""
    c = compute_dtype(variable.dtype)
    block_rows = statistics.shape[1]
    layout = full_matrix_layout(variable.shape, block_rows)
    g = to_tiles(tf.reshape(read(gradient, c), [-1, 1]), layout)  # [blocks, b, 1]
    stats = read(statistics, c) + tf.matmul(g, g, transpose_b=True)
    write(statistics, stats)
    pre = tf.cond(tf.convert_to_tensor(recompute),
                  lambda: matrix_inverse_root(stats, 2, epsilon),
                  lambda: read(preconditioner, c))
    write(preconditioner, pre)
    direction = tf.reshape(from_tiles(tf.matmul(pre, g), layout), variable.shape)
    write(variable, read(variable, c) - tf.cast(learning_rate, c) * direction)
