"""The ``nonfinite=`` option of every kerasopt optimizer: what a step does when
a gradient holds inf or NaN.

* ``"propagate"`` (default, as Keras): the step runs; inf/NaN reach the
  weights and slots.
* ``"skip"``: the whole step is skipped: no variable, slot, EMA copy or
  gradient accumulator changes, and ``iterations`` does not advance. This is
  what Keras's ``LossScaleOptimizer`` does with an overflowing step (it never
  calls its inner optimizer, so the inner ``iterations`` stays put), so the
  two compose: a skipped step is a step that never happened, and the bias
  corrections of the next step use the same ``t`` they would have used.
* ``"raise"``: the step fails with ``InvalidArgumentError`` naming every
  variable whose gradient is not finite, before anything is written.

The check looks at all gradients of the step (the values of an
``IndexedSlices``) and, under ``tf.distribute``, at every replica's: all
replicas agree, so they skip (or fail) together and no collective is left
waiting. Inside an XLA-compiled step "skip" works (a ``tf.cond``), but XLA has
no run-time errors (``Assert`` compiles to nothing), so "raise" refuses to be
traced there rather than silently letting the step through.
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

MODES = ("propagate", "skip", "raise")


def check_mode(value) -> str:
    if value not in MODES:
        raise ValueError(f"`nonfinite` must be one of {MODES}, got {value!r}")
    return value


def _values(gradient):
    return gradient.values if isinstance(gradient, tf.IndexedSlices) else gradient


def _every_element_finite(values) -> tf.Tensor:
    # Keras's check (LossScaleOptimizer.check_finite): is_finite writes a
    # bool per element, which reduce_all reads back.
    return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in values]))


def all_finite(grads) -> tf.Tensor:
    """A scalar bool: every element of every (non-None) gradient is finite.

    On the CPU with the op library: KerasoptMultiGradientStats, one launch
    that reads every gradient once. Elsewhere, one read of each gradient with
    TensorFlow's ops: a sum is finite only if every element is (an
    inf or NaN element makes it inf or NaN), so a finite sum settles it; only
    a sum that is not (an overflowing step, or finite elements whose sum
    overflows) runs the element-wise check. The result is always the
    element-wise check's. 16-bit gradients, whose sums overflow easily, get
    the element-wise check directly. Shared by ``nonfinite`` and by
    ``LossScaleOptimizer`` around a kerasopt optimizer (loss_scale.py)."""
    values = [_values(g) for g in grads if g is not None]
    if not values:
        return tf.constant(True)
    if _stats_kernel_serves(values):
        return _finite_by_kernel(values)
    if any(v.dtype.size < 4 for v in values):
        return _every_element_finite(values)
    total = tf.add_n([tf.cast(tf.reduce_sum(v), tf.float64) for v in values])
    return tf.cond(tf.math.is_finite(total), lambda: tf.constant(True),
                   lambda: _every_element_finite(values))


STATS_OP = "KerasoptMultiGradientStats"


def _stats_kernel_serves(values) -> bool:
    """Whether KerasoptMultiGradientStats (cc/tf/gradient_stats_op.cc, CPU only)
    can check `values`: the op library is in use here, and every value is on
    the CPU (a value with no device yet counts only where there is no GPU: the
    op would pull it to the CPU)."""
    from kerasopt import op_library
    if any(op_library.kernel_unavailable_reason(v, STATS_OP) is not None for v in values):
        return False
    if any(not getattr(v, "device", "") for v in values) and tf.config.list_logical_devices("GPU"):
        return False
    return all(v.dtype in (tf.float16, tf.bfloat16, tf.float32, tf.float64) for v in values)


def _finite_by_kernel(values) -> tf.Tensor:
    """One launch per dtype, one read of each value (the op's all_finite is
    exactly "no element is inf or NaN", whatever the values' sizes)."""
    from kerasopt import op_library
    stats = op_library.library().ops.kerasopt_multi_gradient_stats
    by_dtype: dict = {}
    for v in values:
        by_dtype.setdefault(v.dtype, []).append(v)
    checks = [stats(group).all_finite for group in by_dtype.values()]
    return checks[0] if len(checks) == 1 else tf.reduce_all(tf.stack(checks))


def offending_names(grads, names) -> tf.Tensor:
    """A string tensor: the names whose gradient is not finite, comma separated.

    (No quotes: graph errors print the message with its quotes escaped.)
    """
    parts = [
        tf.where(tf.reduce_all(tf.math.is_finite(_values(g))), "", name)
        for g, name in zip(grads, names) if g is not None
    ]
    if not parts:
        return tf.constant("")
    found = tf.boolean_mask(tf.stack(parts), tf.not_equal(tf.stack(parts), ""))
    return tf.strings.reduce_join(found, separator=", ")


def message(names) -> tf.Tensor:
    return tf.strings.join([
        "kerasopt: non-finite gradient (inf or NaN) for variable(s) [", names,
        "] with nonfinite=raise; nothing was updated"])


def in_xla_context() -> bool:
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def xla_raise_error() -> ValueError:
    return ValueError(
        "kerasopt: nonfinite='raise' cannot stop an XLA-compiled step (XLA has no "
        "run-time errors); compile the model with jit_compile=False, or use "
        "nonfinite='skip'")


def guarded_apply(mode, apply, grads, trainable_variables, names):
    """Runs ``apply(grads, trainable_variables)`` (Keras's whole step, the
    ``iterations`` increment included) only if every gradient is finite;
    otherwise does nothing ("skip") or fails naming `names`' offenders
    ("raise"). The optimizer must be built: no variable can be created inside
    the ``tf.cond``."""
    raising = mode == "raise"
    if raising and not tf.executing_eagerly() and in_xla_context():
        raise xla_raise_error()

    def apply_step(grads, trainable_variables):
        apply(grads, trainable_variables)

    def reject(offenders):  # offenders(): the names, built only when raising
        if raising:
            tf.debugging.Assert(tf.constant(False), [message(offenders())])

    replica_context = tf.distribute.get_replica_context()
    if not tf.distribute.has_strategy() or replica_context is None:
        finite = all_finite(grads)
        if tf.executing_eagerly():
            if bool(finite):
                apply_step(grads, trainable_variables)
            elif raising:
                text = message(offending_names(grads, names)).numpy().decode()
                raise tf.errors.InvalidArgumentError(None, None, text)
            return
        tf.cond(finite, lambda: apply_step(grads, trainable_variables),
                lambda: reject(lambda: offending_names(grads, names)))
        return

    if tf.__internal__.distribute.strategy_supports_no_merge_call():
        # Replicas decide together: a replica that skipped would leave the
        # others waiting in the gradient all-reduce.
        bad = tf.cast(tf.logical_not(all_finite(grads)), tf.float32)
        bad = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, bad)
        tf.cond(bad == 0, lambda: apply_step(grads, trainable_variables),
                lambda: reject(lambda: offending_names(grads, names)))
        return

    def cross_replica(distribution, grads, trainable_variables):
        # As LossScaleOptimizer: a cond whose branch reaches merge_call (the
        # gradient all-reduce) must be taken in cross-replica context.
        def local(fn, *args):
            return distribution.experimental_local_results(
                distribution.extended.call_for_each_replica(fn, args=args))

        finite = tf.reduce_all(tf.stack(local(all_finite, grads)))

        def on_finite():
            distribution.extended.call_for_each_replica(
                apply_step, args=(grads, trainable_variables))

        def offenders():
            found = local(lambda g: offending_names(g, names), grads)
            return tf.strings.reduce_join(tf.stack(found), separator=" ")

        tf.cond(finite, on_finite, lambda: reject(offenders))

    replica_context.merge_call(cross_replica, args=(grads, trainable_variables))
