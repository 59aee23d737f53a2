"""The running mean of iterates as composed TF ops: the same math as
cc/kernels/iterate_average.h."""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, read, write


def update_iterate_average(average, variable, *, count):
    """average = variable if count == 0 else average + (variable - average) / (count + 1).

    `count` (int64, may be a tensor): iterates already in the average.
    """
    c = compute_dtype(variable.dtype)
    a = read(average, c)
    w = read(variable, c)
    count = tf.cast(count, tf.int64)
    count_plus_one = tf.cast(tf.cast(count, tf.float64) + 1.0, c)
    write(average, tf.where(tf.equal(count, 0), w, a + (w - a) / count_plus_one))
