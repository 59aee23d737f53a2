"""SOAP (Vyas et al. 2024) as composed TF ops, for a variable of rank >= 2.

kerasopt.SOAP runs this whole step on its fallback path. On its kernel path
`rotated_adam` is replaced by the fused op KerasoptApplySOAP (cc/tf/soap_op.cc)
and the first bases' tf.linalg.eigh by KerasoptSymmetricEigenbasis (the
float64 Eigen decomposition of the matrix-root op); the statistics, the
refreshes (tf.linalg.qr in float64) and the rotations (TensorFlow's MatMul)
are these same TF ops on both paths.
"""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read, write
from kerasopt.fallback.blocks import BlockLayout, from_tiles, matrix_view, to_tiles


def step_size(learning_rate, beta_1, beta_2, step):
    """learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t) in float64, as the fused op."""
    t = tf.cast(step, tf.float64)
    b1, b2 = constant(beta_1, tf.float64), constant(beta_2, tf.float64)
    return constant(learning_rate, tf.float64) * (
        tf.sqrt(1.0 - tf.pow(b2, t)) / (1.0 - tf.pow(b1, t)))


def rotated_adam(momentum, velocity, rotated_gradient, *, learning_rate, beta_1, beta_2,
                 epsilon, step):
    """Adam's moments in the rotated basis (updated in place) and its step there, in
    Keras's Adam order: m += (g' - m)(1 - b1); v += (g'^2 - v)(1 - b2);
    s' = (m * step_size) / (sqrt(v) + eps)."""
    c = rotated_gradient.dtype
    m = read(momentum, c)
    v = read(velocity, c)
    m = m + (rotated_gradient - m) * (1.0 - constant(beta_1, c))
    v = v + (rotated_gradient * rotated_gradient - v) * (1.0 - constant(beta_2, c))
    write(momentum, m)
    write(velocity, v)
    size = tf.cast(step_size(learning_rate, beta_1, beta_2, step), c)
    return (m * size) / (tf.sqrt(v) + constant(epsilon, c))


def _descending_eigenbasis(statistics):
    _, vectors = tf.linalg.eigh(0.5 * (statistics + tf.linalg.matrix_transpose(statistics)))
    return tf.reverse(vectors, axis=[-1])


def _power_iteration(statistics, basis):
    """One QR step of power iteration from `basis`, its columns first put in the order of
    their estimated eigenvalues diag(Q^T S Q), largest first; returns (basis, order)."""
    estimates = tf.linalg.diag_part(
        tf.matmul(basis, tf.matmul(statistics, basis), transpose_a=True))
    order = tf.argsort(-estimates, axis=-1, stable=True)
    ordered = tf.gather(basis, order, axis=2, batch_dims=1)
    new_basis, _ = tf.linalg.qr(tf.matmul(statistics, ordered))
    return new_basis, order


def refresh_bases(left, right, left_basis, right_basis, momentum, velocity, step, frequency,
                  eigenbasis=None):
    """Writes the next step's bases, computed in float64 from the statistics `left`, `right`:
    eigenvectors at step 1, a power-iteration refresh at steps 1 + k * frequency (the
    first moment rotated into the new basis, the second moment's rows and columns
    following the reordered vectors); other steps write nothing (no cast round trip).
    `eigenbasis`: the step-1 decomposition (the kernel path passes the op
    KerasoptSymmetricEigenbasis); tf.linalg.eigh by default."""
    f64 = tf.float64
    eigenbasis = eigenbasis or _descending_eigenbasis
    left, right = tf.cast(left, f64), tf.cast(right, f64)

    def initial():
        write(left_basis, eigenbasis(left))
        write(right_basis, eigenbasis(right))
        return tf.constant(True)

    def refreshed():
        q_left, q_right = read(left_basis, f64), read(right_basis, f64)
        in_original_basis = tf.matmul(tf.matmul(q_left, read(momentum, f64)), q_right,
                                      transpose_b=True)
        new_left, left_order = _power_iteration(left, q_left)
        new_right, right_order = _power_iteration(right, q_right)
        moved = tf.matmul(tf.matmul(new_left, in_original_basis, transpose_a=True), new_right)
        reordered = tf.gather(read(velocity, velocity.dtype), left_order, axis=1, batch_dims=1)
        reordered = tf.gather(reordered, right_order, axis=2, batch_dims=1)
        write(left_basis, new_left)
        write(right_basis, new_right)
        write(momentum, moved)
        write(velocity, reordered)
        return tf.constant(True)

    def unchanged():
        return tf.constant(False)

    return tf.cond(tf.equal(step, 1), initial,
                   lambda: tf.cond(tf.equal((step - 1) % frequency, 0), refreshed, unchanged))


def apply_soap(variable, gradient, left_statistics, right_statistics, left_basis, right_basis,
               momentum, velocity, *, learning_rate, beta_1, beta_2, shampoo_beta, epsilon,
               step, precondition_frequency, fused_rotated_adam=None, eigenbasis=None):
    """One SOAP step on a variable of rank >= 2 (see kerasopt.SOAP): from step 2 on, Adam in
    the current bases and the weight write; then the statistics take the gradient and the
    bases are computed (step 1) or refreshed, so a step never projects with a basis that
    has seen its own gradient.

    `learning_rate`: a float64 scalar (or Python float). `fused_rotated_adam(rotated_gradient,
    adam_step)`, when given, replaces rotated_adam (the kernel path: the op updates the
    momentum and velocity variables itself); `eigenbasis`, when given, the first bases'
    decomposition (see refresh_bases)."""
    c = compute_dtype(variable.dtype)
    shape = variable.shape
    layout = BlockLayout(*matrix_view(shape), left_statistics.shape[1], right_statistics.shape[1])
    g = to_tiles(tf.reshape(read(gradient, c), [layout.rows, layout.cols]), layout)
    step = tf.convert_to_tensor(step)

    def adam_in_the_bases():
        q_left, q_right = read(left_basis, c), read(right_basis, c)
        rotated = tf.matmul(tf.matmul(q_left, g, transpose_a=True), q_right)
        adam_step = step - 1  # Adam's own count: step 1 only gathers statistics
        if fused_rotated_adam is None:
            rotated_step = rotated_adam(momentum, velocity, rotated, learning_rate=learning_rate,
                                        beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                                        step=adam_step)
        else:
            rotated_step = fused_rotated_adam(rotated, adam_step)
        update = tf.matmul(tf.matmul(q_left, rotated_step), q_right, transpose_b=True)
        write(variable, read(variable, c) - tf.reshape(from_tiles(update, layout), shape))
        return tf.constant(True)

    tf.cond(step > 1, adam_in_the_bases, lambda: tf.constant(False))

    keep = constant(shampoo_beta, c)
    left = read(left_statistics, c) * keep + tf.matmul(g, g, transpose_b=True) * (1.0 - keep)
    right = read(right_statistics, c) * keep + tf.matmul(g, g, transpose_a=True) * (1.0 - keep)
    write(left_statistics, left)
    write(right_statistics, right)
    refresh_bases(left, right, left_basis, right_basis, momentum, velocity, step,
                  precondition_frequency, eigenbasis)
