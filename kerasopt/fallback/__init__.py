"""The update rules as composed TensorFlow ops, for when no fused kernel serves.

Each function here computes exactly what its C++ rule in ``cc/kernels`` does, in
the same order and precision (16-bit variables in float32, rounded once), so
the two paths give the same numbers. They run inside Keras's ``tf.function``
train step, including XLA-compiled ones.
"""

import tensorflow as tf


def compute_dtype(dtype) -> tf.DType:
    """float64 stays float64; everything else is computed in float32."""
    return tf.float64 if tf.as_dtype(dtype) == tf.float64 else tf.float32


def constant(value, dtype) -> tf.Tensor:
    """A hyperparameter as a scalar of `dtype`: a Python number rounded once, or
    a tensor (a variable's value, read at each step) cast."""
    if tf.is_tensor(value):
        return tf.cast(value, dtype)
    return tf.constant(value, dtype)


def read(variable, dtype):
    return tf.cast(variable, dtype)  # reads the value (a no-op cast if equal)


def write(variable, value):
    variable.assign(tf.cast(value, variable.dtype))
