"""Sparse (tf.IndexedSlices) updates as composed TF ops: the same numbers as
the sparse kernels (cc/cpu/apply_sparse.h), built from the dense fallbacks.

Duplicate indices are summed first (``tf.math.unsorted_segment_sum`` in the
compute dtype, adding in position order from 0, as the C++ does); then the
touched rows of the variable and its slots are gathered, the algorithm's dense
fallback runs on them unchanged, and each write goes back with a scatter update.
Only the touched rows are read or written, so the cost follows the batch, not
the table (and it all compiles under XLA).

A scatter puts its variable in TensorFlow's copy-on-read mode, where every plain
read copies the whole buffer (Keras's Embedding reads its table so on each
forward pass); outside XLA the variable and its slots are switched back to
copy-on-write after the step, as the sparse kernels leave them (see
cc/tf/sparse_apply_op.h).
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

from kerasopt.fallback import compute_dtype


def sum_duplicates(values, indices, dtype):
    """(summed rows [num_unique, row...] in `dtype`, unique indices).

    Rows come in order of first appearance; each row's gradient is the sum of
    its values, added in position order.
    """
    unique, positions = tf.unique(indices)
    summed = tf.math.unsorted_segment_sum(
        tf.cast(values, dtype), positions, tf.shape(unique, out_type=positions.dtype)[0])
    return summed, unique


class Rows:
    """The rows `indices` of a tf.Variable, standing in for the variable in a
    dense fallback: reads give the gathered rows, writes scatter them back.

    ``shape`` is the shape the rows had as a gradient (see ``apply_rows``);
    ``dtype`` and every other attribute are the variable's.
    """

    def __init__(self, variable, indices, shape):
        self.variable = variable
        self.indices = indices
        self.dtype = variable.dtype
        self.shape = shape
        self.value = tf.gather(variable, indices)

    def __getattr__(self, name):
        # Anything else (name, path, _unique_id for Keras's weight-decay
        # bookkeeping) is the variable's.
        return getattr(self.variable, name)

    def assign(self, value):
        value = tf.cast(value, self.dtype)
        self.variable.scatter_update(tf.IndexedSlices(value, self.indices))
        self.value = value  # later reads in the same rule see the write


tf.register_tensor_conversion_function(
    Rows, lambda rows, dtype=None, name=None, as_ref=False: tf.convert_to_tensor(
        rows.value, dtype=dtype, name=name))


def check_indices(indices, num_rows, name):
    """An Assert op: InvalidArgumentError naming the first bad index and the
    table size when an index is outside [0, num_rows)."""
    indices = tf.convert_to_tensor(indices)
    num_rows = tf.cast(num_rows, indices.dtype)
    bad = tf.reshape(tf.where(tf.logical_or(indices < 0, indices >= num_rows)), [-1])
    position = tf.concat([bad, tf.zeros([1], bad.dtype)], 0)[0]  # the first bad one
    first = tf.gather(tf.concat([indices, tf.zeros([1], indices.dtype)], 0), position)
    message = tf.strings.format(
        "kerasopt: index {} (at position {} of indices) is out of range [0, {}) for variable '"
        + name + "' with {} rows; nothing was updated", (first, position, num_rows, num_rows))
    return tf.debugging.Assert(tf.equal(tf.size(bad), 0), [message])


def apply_rows(apply_dense, variable, gradient, slots, *args, name="", **kwargs):
    """Runs ``apply_dense(variable, gradient, slots, *args, **kwargs)`` (an
    optimizer's ``apply_fallback``) on the rows named by the IndexedSlices
    `gradient`, with duplicate indices summed. Every index is checked before
    anything is read or written (`name` names the variable in the error),
    except under XLA.
    """
    c = compute_dtype(variable.dtype)
    # XLA compiles no Assert or string ops: inside it the indices go unchecked
    # (XLA clamps out-of-range gathers and drops out-of-range scatters).
    in_xla = control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
    checks = [] if in_xla else [check_indices(gradient.indices, tf.shape(variable)[0], name)]
    with tf.control_dependencies(checks):
        summed, unique = sum_duplicates(gradient.values, gradient.indices, c)
    shape = gradient.values.shape  # what the kernel sees as its gradient
    rows = Rows(variable, unique, shape)
    slot_rows = [Rows(s, unique, shape) for s in slots]
    apply_dense(rows, summed, slot_rows, *args, **kwargs)
    if not in_xla:
        # Ordered after the scatters: each takes the resource it switches.
        for v in [variable, *slots]:
            tf.raw_ops.DisableCopyOnRead(resource=v.handle)
