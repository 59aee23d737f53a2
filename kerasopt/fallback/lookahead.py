"""Lookahead's sync as composed TF ops: the same math as cc/kernels/lookahead.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, read, write


def lookahead_sync(slow, fast, *, slow_step_size):
    """slow = alpha * fast + (1 - alpha) * slow; fast = slow (tf.Variables)."""
    c = compute_dtype(fast.dtype)
    s = (tf.constant(slow_step_size, c) * read(fast, c)
         + tf.constant(1.0 - slow_step_size, c) * read(slow, c))
    write(slow, s)
    write(fast, s)
