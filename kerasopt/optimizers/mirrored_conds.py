"""Keras's two conds around a cross-replica update, in a tf.function under MirroredStrategy.

Keras's step (``Optimizer._backend_apply_gradients``) has two ``ops.cond``
whose branches update mirrored variables, which on the TensorFlow backend is
a ``merge_call``: gradient accumulation (accumulate, or apply the mean) and
``ema_overwrite_frequency`` (copy the EMA average into the variables).
tf.distribute refuses a ``merge_call`` inside a ``cond``, so in a
tf.function under MirroredStrategy (``model.fit``'s step) keras.optimizers
fails with a RuntimeError about nested tf.functions (keras-team/keras#20582).
Eagerly the ``cond`` is Python's ``if`` and Keras's step runs; its numbers are
the ones kept here. Nothing here sits between a ``cond`` and a
``merge_call``: the ``cond`` moves inside each variable's cross-replica
update (``extended.update``, on the variable's devices), where no
``merge_call`` happens.

Gradient accumulation (`apply_accumulation`). Keras's eager step:

* each replica accumulates its own gradients: its copy of the accumulator
  holds its own sum (the increment updates each device's copy with that
  device's gradient);
* on the applying step each replica takes its mean ``(g + acc) / k`` and
  clips it (Keras clips before the all-reduce), the means are summed across
  replicas, and every variable is decayed and updated with the sum; every
  accumulator is reset.

Here, on every step: the mean and its clipping in the replica, each
replica's accumulators written through their local handles (``g + acc``, or
zeros on the applying step: no cross-replica write), the all-reduce of the
clipped means; then, in each variable's cross-replica update, ``tf.cond`` on
the applying step around Keras's decay and the optimizer's ``update_step``.
The cost: an all-reduce and a clipping on every step, not every k-th. The
decay is Keras's expression (``w - w * wd * lr``); the classes with a decay
pass or per-step state of their own (LARS, NovoGrad, Muon, Nadam) are refused
instead (step_checks.check_strategy).

The EMA overwrite (`overwrite_with_average`): after the step, the copy of
each average into its variable, under a ``cond`` on Keras's
``(iterations + 1) % ema_overwrite_frequency == 0`` inside each variable's
update; Keras's own overwrite (in its cond) does nothing then
(FusedOptimizer._overwrite_model_variables_with_average_value).
"""

from __future__ import annotations

import tensorflow as tf

from kerasopt.optimizers import gradient_accumulation


def in_mirrored_replica_function() -> bool:
    """Whether this is a MirroredStrategy (or MultiWorkerMirroredStrategy)
    replica's step being traced: where Keras's conds around a merge_call fail."""
    if (not tf.inside_function() or not tf.distribute.has_strategy()
            or tf.distribute.in_cross_replica_context()):
        return False
    from tensorflow.python.distribute import mirrored_strategy
    return isinstance(tf.distribute.get_strategy().extended, mirrored_strategy.MirroredExtended)


def accumulation_supported(optimizer) -> bool:
    """Whether this module can run the optimizer's accumulation: it runs the
    decay and update_step only (gradient_accumulation.steps_in_update_alone)."""
    return gradient_accumulation.steps_in_update_alone(optimizer)


def runs_accumulation(optimizer) -> bool:
    """Whether this step's accumulation is this module's."""
    return bool(optimizer.gradient_accumulation_steps) and in_mirrored_replica_function() \
        and accumulation_supported(optimizer)


def runs_overwrite(optimizer) -> bool:
    """Whether this step's EMA overwrite is this module's."""
    return bool(optimizer.use_ema and optimizer.ema_overwrite_frequency) \
        and in_mirrored_replica_function()


def _local_assign(variable, value):
    """Writes this replica's copy of a mirrored variable (its handle in a
    replica context is the local one's), with no cross-replica merge."""
    return tf.raw_ops.AssignVariableOp(resource=variable.handle, value=value)


def apply_accumulation(optimizer, grads, trainable_variables) -> None:
    """One replica's accumulating-or-applying step (module doc)."""
    from kerasopt.optimizers.fused import tf_variable
    steps = optimizer.gradient_accumulation_steps
    is_update_step = tf.equal((optimizer._iterations + 1) % steps, 0)
    variables = [tf_variable(v) for v in trainable_variables]
    accumulators = gradient_accumulation.accumulators_of(optimizer, trainable_variables)
    grads = [tf.convert_to_tensor(g) for g in grads]  # an IndexedSlices sums as Keras's + does
    acc_values = [a.value.read_value() for a in accumulators]
    means = [(g + acc) / steps for g, acc in zip(grads, acc_values)]  # Keras's expression
    writes = []
    for g, acc, accumulator in zip(grads, acc_values, accumulators):
        writes.append(_local_assign(accumulator.value, tf.where(
            is_update_step, tf.zeros_like(acc), g + acc)))
    in_step = {id(a) for a in accumulators}
    for accumulator in optimizer._accumulated_gradients:  # Keras resets every one
        if accumulator is not None and id(accumulator) not in in_step:
            value = accumulator.value.read_value()
            writes.append(_local_assign(accumulator.value, tf.where(
                is_update_step, tf.zeros_like(value), value)))
    with tf.control_dependencies(writes):
        means = [tf.identity(m) for m in means]
    means = optimizer._clip_gradients(means)
    grads_and_vars = optimizer._all_reduce_sum_gradients(list(zip(means, variables)))
    tf.__internal__.distribute.interim.maybe_merge_call(
        lambda distribution, *args: _update_on_applying_step(distribution, optimizer, *args),
        optimizer._distribution_strategy, grads_and_vars, is_update_step)


def _update_on_applying_step(distribution, optimizer, grads_and_vars, is_update_step):
    """Cross-replica: each variable's decay and update, on its devices, under
    a cond on the applying step (no merge_call in it)."""
    learning_rate = optimizer.learning_rate
    keras_decay = optimizer.weight_decay is not None and not optimizer.decays_in_rule

    def update(variable, gradient, is_update_step):
        def applying():
            if keras_decay and optimizer._use_weight_decay(variable):
                lr = tf.cast(learning_rate, variable.dtype)
                wd = tf.cast(optimizer.weight_decay, variable.dtype)
                variable.assign_sub(variable * wd * lr)
            optimizer.update_step(gradient, variable, learning_rate)
            return tf.constant(True)
        return tf.cond(is_update_step, applying, lambda: tf.constant(False))

    with optimizer._update_inputs(learning_rate):
        for gradient, variable in grads_and_vars:
            if gradient is None:
                continue
            distribution.extended.update(variable, update, args=(gradient, is_update_step),
                                         group=False)


def overwrite_with_average(optimizer) -> None:
    """Keras's EMA overwrite, with its cond inside each variable's update."""
    should_overwrite = tf.equal(
        (optimizer.iterations + 1) % optimizer.ema_overwrite_frequency, 0)

    def overwrite(variable, average, should_overwrite):
        return tf.cond(should_overwrite, lambda: tf.identity(variable.assign(average)),
                       lambda: tf.identity(variable))

    def merged(distribution, should_overwrite):
        from kerasopt.optimizers.fused import tf_variable
        for variable, average in zip(optimizer._trainable_variables,
                                     optimizer._model_variables_moving_average):
            distribution.extended.update(tf_variable(variable), overwrite,
                                         args=(average.value, should_overwrite), group=False)

    tf.__internal__.distribute.interim.maybe_merge_call(
        merged, optimizer._distribution_strategy, should_overwrite)
