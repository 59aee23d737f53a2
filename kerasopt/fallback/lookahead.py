"""Lookahead's sync as composed TF ops: the same math as cc/kernels/lookahead.h."""


from kerasopt.fallback import compute_dtype, constant, read, write


def lookahead_sync(slow, fast, *, slow_step_size):
    """slow = alpha * fast + (1 - alpha) * slow; fast = slow (tf.Variables)."""
    c = compute_dtype(fast.dtype)
    s = (constant(slow_step_size, c) * read(fast, c)
         + constant(1.0 - slow_step_size, c) * read(slow, c))
    write(slow, s)
    write(fast, s)
