"""Damped matrix inverse p-th roots as TF ops: the math of cc/kernels/matrix_root.h."""

import numpy as np
import tensorflow as tf


def matrix_inverse_root(matrix, p: int, epsilon):
    """(A + epsilon I)^(-1/p) for symmetric PSD matrices [..., n, n], computed in float64.

    As the kernel: A is symmetrized, eigenvalues below n * DBL_EPSILON * |lambda|_max
    (round-off of the decomposition) are raised to that floor, then damped.
    """
    a = tf.cast(matrix, tf.float64)
    a = 0.5 * (a + tf.linalg.matrix_transpose(a))
    n = tf.shape(a)[-1]
    # A matrix with inf or NaN has an all-NaN root, as in the kernel (eigh
    # itself would fail on it): decompose the identity in its place.
    finite = tf.reduce_all(tf.math.is_finite(a), axis=[-2, -1], keepdims=True)
    a = tf.where(finite, a, tf.eye(n, dtype=tf.float64))
    lam, v = tf.linalg.eigh(a)
    scale = tf.reduce_max(tf.abs(lam), axis=-1, keepdims=True)
    floor = tf.cast(n, tf.float64) * np.finfo(np.float64).eps * scale
    # A Python float straight to float64 (tf.cast would round it through float32 first).
    epsilon = tf.cast(epsilon, tf.float64) if tf.is_tensor(epsilon) else tf.constant(epsilon, tf.float64)
    root = tf.pow(tf.maximum(lam, floor) + epsilon,
                  tf.constant(-1.0 / p, tf.float64))
    result = tf.matmul(v * root[..., tf.newaxis, :], v, adjoint_b=True)
    result = tf.where(finite, result, tf.constant(np.nan, tf.float64))
    return tf.cast(result, matrix.dtype)
