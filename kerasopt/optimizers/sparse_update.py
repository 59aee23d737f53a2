"""Row-wise updates for tf.IndexedSlices gradients (e.g. from keras.layers.Embedding).

:class:`~kerasopt.optimizers.fused.FusedOptimizer` sends an IndexedSlices
gradient here when updating only the rows it names is right for the optimizer:

* **exact**: the dense update of a row with a zero gradient leaves it unchanged
  (SGD without momentum, Adagrad, FTRL without shrinkage; see each optimizer's
  ``sparse_rows_exact``), so the row-wise update *is* the dense update;
* **lazy** (``lazy=True``): the user asked for only the touched rows of the
  variable and its slots to be updated (as TensorFlow Addons' LazyAdam), with the
  step-dependent terms (bias corrections) taken from the global step.

Either way duplicate indices are summed first (the gradient of the loss is
their sum) and the same per-element rule as the dense update runs over each
touched row: the ``KerasoptSparseApply<Algo>`` op, or the composed-TF fallback
(:mod:`kerasopt.fallback.sparse`), which gives the same numbers.
"""

from __future__ import annotations

import functools
import re

import tensorflow as tf

from kerasopt.fallback import sparse as sparse_fallback
from kerasopt.optimizers import step_checks


def sparse_op_attribute(kernel_name: str) -> str:
    """"Adamw" → "kerasopt_sparse_apply_adamw" (the op's Python name)."""
    return "kerasopt_sparse_apply_" + re.sub(r"(?<!^)(?=[A-Z])", "_", kernel_name).lower()


class SparseOps:
    """The op module as an optimizer's ``apply_kernel`` sees it, with each dense
    op ``kerasopt_apply_<algo>`` replaced by its sparse twin, which takes the
    same inputs plus ``indices`` (``grad`` being the IndexedSlices values).
    So each optimizer's one ``apply_kernel`` serves both."""

    def __init__(self, ops, indices):
        self._ops = ops
        self._indices = indices

    def __getattr__(self, name):
        if not name.startswith("kerasopt_apply_"):
            raise AttributeError(name)
        sparse = getattr(self._ops, name.replace("kerasopt_apply_", "kerasopt_sparse_apply_", 1))
        return functools.partial(sparse, indices=self._indices)


def has_sparse_op(ops, kernel_name: str, required: bool = False) -> bool:
    """Whether the op library has the sparse op (`required`: raise if not)."""
    found = bool(kernel_name) and hasattr(ops, sparse_op_attribute(kernel_name))
    if required and not found:
        raise RuntimeError(
            f"KERASOPT_IMPL=kernel, but the op library has no KerasoptSparseApply{kernel_name}")
    return found


def normalize(gradient, dtype) -> tf.IndexedSlices:
    """The IndexedSlices with values in `dtype` and int32/int64 indices."""
    gradient = step_checks.as_indexed_slices(gradient)
    indices = gradient.indices
    if indices.dtype not in (tf.int32, tf.int64):
        indices = tf.cast(indices, tf.int64)
    return tf.IndexedSlices(tf.cast(gradient.values, dtype), indices, gradient.dense_shape)


def check_sparse_shapes(variable, gradient, slots, name) -> None:
    """Raises InvalidArgumentError, naming the variable, when shapes disagree
    (while tracing; the op checks again when it runs)."""
    want = tf.TensorShape(variable.shape)
    values = tf.TensorShape(gradient.values.shape)
    indices = tf.TensorShape(gradient.indices.shape)

    def fail(what):
        raise tf.errors.InvalidArgumentError(
            None, None, f"kerasopt: variable '{name}' has shape {want.as_list()} but {what}")

    if values.rank is not None and want.rank is not None:
        if values.rank != want.rank or not want[1:].is_compatible_with(values[1:]):
            fail(f"its sparse gradient has values of shape {values.as_list()}")
    if indices.rank is not None and indices.rank != 1:
        fail(f"its sparse gradient has indices of shape {indices.as_list()}")
    for s in slots:
        if not want.is_compatible_with(tf.TensorShape(s.shape)):
            fail(f"its slot '{getattr(s, 'name', '?')}' has shape {tf.TensorShape(s.shape).as_list()}")


def apply_fallback_rows(optimizer, variable, gradient, slots, learning_rate, step, name):
    sparse_fallback.apply_rows(optimizer.apply_fallback, variable, gradient, slots,
                               learning_rate, step, name=name)
