"""The checks of a whole step, made before the step writes anything.

Keras's ``Optimizer.apply`` writes per-step state before ``update_step``
(weight decay, Nadam's ``u_product``, gradient accumulators) and after it (the
EMA copies, ``iterations``). A check that fails only inside ``update_step``
would leave those writes behind. So kerasopt's ``apply`` (and the wrappers')
checks every gradient against its variable first:

* while tracing (:func:`check_traced`): shapes and ranks that are known, as
  ``InvalidArgumentError`` naming the variable;
* when the step runs (:func:`runtime_checks`): what only the values tell, an
  ``IndexedSlices`` index outside the table, and shapes that were unknown
  while tracing (a ``tf.function`` with ``None`` dimensions). In eager mode a
  failed check raises at once; in a graph every write of the step is created
  under ``tf.control_dependencies`` on them (:func:`gated`), so a failed
  check fails the step before any of its writes runs.

XLA has no run-time errors (``Assert`` compiles to nothing), so inside an
XLA-compiled step the run-time checks are left out: shapes are static there
(XLA compiles one program per shape, so :func:`check_traced` sees them all),
and an out-of-range index is ignored (XLA drops scatters and gathers out of
range), while the rest of the step (weight decay, ``iterations``, ...) runs.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf
from tensorflow.python.ops import control_flow_util


def variable_name(variable) -> str:
    return getattr(variable, "path", None) or getattr(variable, "name", "<unnamed>")


def as_indexed_slices(gradient: tf.IndexedSlices) -> tf.IndexedSlices:
    """The IndexedSlices with tensors for values, indices and dense_shape.

    TensorFlow accepts Python tuples and lists there (Keras's own tests build
    gradients that way); kerasopt's code reads their dtype and shape.
    """
    values = tf.convert_to_tensor(gradient.values)
    indices = gradient.indices
    if not tf.is_tensor(indices):
        indices = tf.convert_to_tensor(indices, dtype_hint=tf.int64)
    dense_shape = gradient.dense_shape
    if dense_shape is not None and not tf.is_tensor(dense_shape):
        dense_shape = tf.convert_to_tensor(dense_shape, dtype_hint=tf.int64)
    if values is gradient.values and indices is gradient.indices \
            and dense_shape is gradient.dense_shape:
        return gradient
    return tf.IndexedSlices(values, indices, dense_shape)


def normalize_gradients(grads) -> list:
    """`grads` with every IndexedSlices in tensor form (see as_indexed_slices)."""
    return [as_indexed_slices(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]


def _fail(variable, what):
    raise tf.errors.InvalidArgumentError(
        None, None,
        f"kerasopt: variable '{variable_name(variable)}' has shape "
        f"{tf.TensorShape(variable.shape).as_list()} but {what}; nothing was updated")


def check_strategy(optimizer) -> None:
    """Raises ValueError, before the step writes anything, where a
    MirroredStrategy (or MultiWorkerMirroredStrategy) replica traces a step
    with ``gradient_accumulation_steps`` that mirrored_conds.py cannot run
    (a class with a decay pass or per-step state of its own): Keras's step
    puts its update inside a ``cond``, and tf.distribute refuses the
    ``merge_call`` in it with a long RuntimeError about nested tf.functions,
    Keras's own optimizers alike (keras-team/keras#20582). Eagerly
    (``run_eagerly=True``) the ``cond`` is Python's ``if`` and Keras's step
    runs; so it does under OneDeviceStrategy."""
    from kerasopt.optimizers import mirrored_conds
    if not (optimizer.gradient_accumulation_steps
            and mirrored_conds.in_mirrored_replica_function()
            and not mirrored_conds.accumulation_supported(optimizer)):
        return
    strategy = tf.distribute.get_strategy()
    raise ValueError(
        f"kerasopt: {type(optimizer).__name__}'s gradient_accumulation_steps="
        f"{optimizer.gradient_accumulation_steps} cannot run in a tf.function under "
        f"{type(strategy).__name__}: Keras's step puts the cross-replica update inside a "
        "cond, which tf.distribute refuses (keras.optimizers fails the same way: "
        "keras-team/keras#20582), and kerasopt runs it there only for the optimizers "
        "without a decay pass or per-step state of their own. Run the step eagerly "
        "(model.compile(run_eagerly=True)), train without the strategy, or use a larger "
        "batch instead; nothing was updated")


FLOAT_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)


def check_dtype(variable) -> None:
    """Raises TypeError, naming the variable, unless it is a float variable."""
    dtype = tf.as_dtype(variable.dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"kerasopt: variable '{variable_name(variable)}' has dtype {dtype.name}, but "
            "optimizers update float variables only (float16, bfloat16, float32, float64): "
            "make it non-trainable or a float variable")


def check_traced(variable, gradient) -> None:
    """Raises InvalidArgumentError (TypeError for a non-float variable), naming
    the variable, for what is known while tracing."""
    check_dtype(variable)
    want = tf.TensorShape(variable.shape)
    if not isinstance(gradient, tf.IndexedSlices):
        got = tf.TensorShape(gradient.shape)
        if not want.is_compatible_with(got):
            _fail(variable, f"its gradient has shape {got.as_list()}")
        return
    values = tf.TensorShape(gradient.values.shape)
    indices = tf.TensorShape(gradient.indices.shape)
    if values.rank is not None and want.rank is not None and (
            values.rank != want.rank or not want[1:].is_compatible_with(values[1:])):
        _fail(variable, f"its sparse gradient has values of shape {values.as_list()}")
    if indices.rank is not None and indices.rank != 1:
        _fail(variable, f"its sparse gradient has indices of shape {indices.as_list()}")
    if indices.rank == 1 and values.rank and not values[:1].is_compatible_with(indices):
        _fail(variable, f"its sparse gradient has {indices[0]} indices for values of shape "
                        f"{values.as_list()}")
    dense_shape = None if gradient.dense_shape is None else tf.get_static_value(
        gradient.dense_shape)
    if dense_shape is not None and not want.is_compatible_with(tf.TensorShape(dense_shape)):
        _fail(variable, f"its sparse gradient has dense_shape {list(dense_shape)}")


def _in_xla() -> bool:
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _require(ok, message):
    """Fails with `message()` (a string tensor) unless `ok`: at once in eager
    mode (returns None), else returns a tensor to make the step's writes wait
    for. The message is built only when the check fails."""
    if tf.executing_eagerly():
        if not bool(ok):
            raise tf.errors.InvalidArgumentError(None, None, message().numpy().decode())
        return None

    def failed():
        with tf.control_dependencies([tf.debugging.Assert(tf.constant(False), [message()])]):
            return tf.constant(False)

    return tf.cond(ok, lambda: tf.constant(True), failed)


def _shape_text(shape) -> tf.Tensor:
    return tf.strings.reduce_join(tf.strings.as_string(shape), separator=", ")


def _prefix(variable) -> str:
    return (f"kerasopt: variable '{variable_name(variable)}' has shape "
            f"{tf.TensorShape(variable.shape).as_list()} but ")


def _dynamic_shape_check(variable, shape_of, what):
    """`shape_of` (a tensor's shape, known only at run time) must equal the variable's."""
    got = _shape_text(shape_of)
    want = ", ".join(str(d) for d in tf.TensorShape(variable.shape).as_list())
    return _require(tf.equal(got, want), lambda: tf.strings.join(
        [_prefix(variable), what, " [", got, "]; nothing was updated"]))


def _index_check(variable, indices):
    rows = tf.cast(tf.shape(variable)[0], indices.dtype)
    in_range = tf.logical_and(tf.reduce_all(indices >= 0), tf.reduce_all(indices < rows))

    def message():
        bad = tf.reshape(tf.where(tf.logical_or(indices < 0, indices >= rows)), [-1])[:1]
        return tf.strings.format(
            "kerasopt: index {} (at position {} of indices) is out of range [0, {}) for "
            "variable '" + variable_name(variable) + "' with {} rows; nothing was updated",
            (tf.gather(indices, bad)[0], bad[0], rows, rows))

    return _require(in_range, message)


def runtime_checks(variable, gradient) -> list:
    """Checks of `gradient` that only its values (or run-time shape) can settle;
    a list of tensors to wait for (empty in eager mode, where they raised)."""
    if gradient is None or (not tf.executing_eagerly() and _in_xla()):
        return []
    checks = []
    if isinstance(gradient, tf.IndexedSlices):
        if tf.TensorShape(variable.shape).rank == 0:
            return []
        if not tf.TensorShape(gradient.values.shape)[1:].is_fully_defined() or \
                gradient.values.shape.rank is None:
            checks.append(_dynamic_shape_check(
                variable, tf.concat([tf.shape(variable)[:1], tf.shape(gradient.values)[1:]], 0),
                "its sparse gradient has rows of shape"))
        rows = tf.TensorShape(gradient.values.shape)[:1]
        indices = tf.TensorShape(gradient.indices.shape)
        if not (rows.is_fully_defined() and indices.is_fully_defined()):
            count = tf.shape(gradient.values, out_type=tf.int64)[0]
            checks.append(_require(
                tf.equal(count, tf.size(gradient.indices, out_type=tf.int64)),
                lambda: tf.strings.join([
                    _prefix(variable), "its sparse gradient has ",
                    tf.strings.as_string(tf.size(gradient.indices)), " indices for ",
                    tf.strings.as_string(count), " rows of values; nothing was updated"])))
        if gradient.dense_shape is not None and tf.get_static_value(gradient.dense_shape) is None:
            checks.append(_dynamic_shape_check(variable, gradient.dense_shape,
                                               "its sparse gradient has dense_shape"))
        checks.append(_index_check(variable, gradient.indices))
    elif not tf.TensorShape(gradient.shape).is_fully_defined():
        checks.append(_dynamic_shape_check(variable, tf.shape(gradient),
                                           "its gradient has shape"))
    return [c for c in checks if c is not None]


@contextlib.contextmanager
def gated(grads, variables):
    """Checks every (gradient, variable) pair, then runs the body with every
    op it creates waiting for the run-time checks."""
    checks = []
    for gradient, variable in zip(grads, variables):
        if gradient is None:
            continue
        check_traced(variable, gradient)
        checks.extend(runtime_checks(variable, gradient))
    if not checks:
        yield
        return
    with tf.control_dependencies(checks):
        yield
