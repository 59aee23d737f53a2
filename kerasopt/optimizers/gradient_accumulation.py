"""Keras's gradient accumulation (``gradient_accumulation_steps=k``) in kerasopt's ops.

Keras (``Optimizer._backend_apply_gradients``) keeps one accumulator per
variable (its ``"<var>_gradient_accumulator"`` variables) and, under
``ops.cond((iterations + 1) % k == 0, ...)``:

* on the k-1 accumulating steps, ``acc.assign(g + acc)`` for every variable;
* on the k-th, the applying step, the update with the mean ``(g + acc) / k``
  (clipped, decayed as usual), then every accumulator reset to zeros;

and, on every step, its EMA pass (if ``use_ema``). ``iterations`` counts
applying steps (``_iterations // k``). Each of these is a pass of its own over
every variable, an op launch per variable.

Here, for the element-wise rules (``fuses_step_features``), with every
variable's update on the CPU kernels:

* the accumulating steps are one ``KerasoptMultiAccumulateGradients`` launch
  (cc/tf/accumulate_gradients_op.cc; the accumulator handles packed into one
  tensor once, as the update ops' slots): each gradient and accumulator read once,
  the accumulator written once, in place (on a cycle's first step, when
  every accumulator is zero, ``g + 0`` is written without reading it);
  Keras's EMA pass (if ``use_ema``) stays as it is on these steps;
* the applying step is the fused update (step_features.py's StepPlan, dense
  and multi-tensor ops): each op takes its accumulator as one more slot and
  computes ``(g + acc) / k`` and zeroes the accumulator in the same pass
  (cc/kernels/step_features.h), before the clipping, decay and EMA it fuses
  already. ``clipnorm`` and ``global_clipnorm`` still need the norm of the
  mean, so for them Keras's mean is also computed as a tensor (its ``(g +
  acc) / k``: a read of g and acc, a write and a read of the mean) and only
  the norm is taken from it. The accumulators of variables without a
  gradient in that step are reset as Keras resets them (all of them);
* where every pass of the applying step is in the update ops
  (`_runs_without_cond`), no cond: both ops run on every step, and the one
  whose step it is not writes nothing (the accumulate op's ``skip``, the
  update ops' SKIP_STEP feature).

Everything else keeps Keras's own accumulation: a k that is not a power of
two (see `_divides_exactly`), the fallback and GPU
variables (as step_features.plan_for), a loss-scaled step, sparse
(IndexedSlices) gradients, float16/bfloat16 variables (Keras rounds ``g +
acc`` to 16 bits before dividing; the op computes in float32), float32 slots
of a 16-bit variable, tf.distribute strategies (under MirroredStrategy in a
tf.function, mirrored_conds.py's), and the rules that are not
element-wise (LAMB, LARS, NovoGrad, Muon, Adafactor, the preconditioned ones).
The variables, their names and checkpoints are Keras's own.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops as kops

from kerasopt import op_library
from kerasopt.optimizers import multi_tensor, step_features

_ACCUMULATE_OP = "KerasoptMultiAccumulateGradients"


def _accumulate_op():
    """The op library's accumulate op, or None (no library, or an older one)."""
    library = op_library.library()
    if library is None or library.ops is None:
        return None
    return getattr(library.ops, op_library.python_op_name(_ACCUMULATE_OP), None)


def fusable(optimizer, grads, trainable_variables, unscale=None) -> bool:
    """Whether this step's accumulation runs in kerasopt's ops (module doc)."""
    if not (optimizer.gradient_accumulation_steps and step_features.enabled()
            and getattr(optimizer, "fuses_step_features", False)
            and multi_tensor.no_replicas(optimizer) and unscale is None
            and _divides_exactly(optimizer.gradient_accumulation_steps)):
        return False
    if any(isinstance(g, tf.IndexedSlices) for g in grads):
        return False
    accumulators = accumulators_of(optimizer, trainable_variables)
    for variable, accumulator in zip(trainable_variables, accumulators):
        dtype = keras.backend.standardize_dtype(variable.dtype)
        if (dtype not in ("float32", "float64") or accumulator is None
                or keras.backend.standardize_dtype(accumulator.dtype) != dtype
                or optimizer._wide_slots(variable)):
            return False
    op = f"KerasoptApply{optimizer.kernel_name}"
    return all(op_library.kernel_unavailable_reason(
        v, op, wide_slots=optimizer._wide_slots(v)) is None and multi_tensor._on_cpu(v)
        for v in trainable_variables)


def _divides_exactly(steps) -> bool:
    """Whether k is a power of two. Keras's `(g + acc) / k` is a division
    when it runs eagerly, but in a tf.function Grappler's constant folding
    (ReduceDivToReciprocalMul) makes it a multiplication by the float32
    reciprocal of k, which rounds differently unless 1/k is exact. Only for
    those k do both give the op's numbers; other k keep Keras's accumulation."""
    steps = int(steps)
    return steps >= 2 and steps & (steps - 1) == 0


def accumulators_of(optimizer, trainable_variables):
    """Keras's accumulator of each variable (None where it has none)."""
    return [optimizer._accumulated_gradients[optimizer._get_variable_index(v)]
            for v in trainable_variables]


def _handle(variable):
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


def accumulate(optimizer, grads, accumulators, skip=False) -> None:
    """acc += g for every pair, one op launch per dtype (Keras's bits); with
    an op library that lacks the op, Keras's own operations. On a cycle's
    first step every accumulator is zero (Keras resets all of them when it
    applies, as `apply` does here), so the op writes g + 0 without reading
    them (cc/tf/accumulate_gradients_op.cc). `skip` (a bool tensor): the op
    writes nothing (the applying step, outside a cond)."""
    op = _accumulate_op()
    if op is None:
        optimizer._backend_increment_gradient_accumulators(grads, accumulators)
        return
    cycle_start = tf.equal(optimizer._iterations % optimizer.gradient_accumulation_steps, 0)
    by_dtype: dict = {}
    for g, acc in zip(grads, accumulators):
        entry = by_dtype.setdefault(tf.as_dtype(acc.dtype).name, ([], []))
        entry[0].append(_handle(acc))
        entry[1].append(tf.cast(tf.convert_to_tensor(g), acc.dtype))
    # The handles packed once, outside the step, as the update ops' slots are.
    packed_cache = optimizer.__dict__.setdefault("_packed_slot_handles", {})
    for handles, tensors in by_dtype.values():
        op(accumulators=multi_tensor.pack_handles(handles, packed_cache, handles[0]),
           grads=tensors, cycle_start=cycle_start, skip=skip)


def apply(optimizer, grads, trainable_variables) -> None:
    """Keras's accumulating-or-applying step, with kerasopt's ops (`fusable`)."""
    steps = optimizer.gradient_accumulation_steps
    accumulators = accumulators_of(optimizer, trainable_variables)
    is_update_step = (optimizer._iterations + 1) % steps == 0

    if _runs_without_cond(optimizer, accumulators):
        # Both ops run on every step and one of them writes nothing: the
        # accumulate op on the applying step, the update ops (SKIP_STEP) on
        # the others. A cond between them cost more than either op's own
        # per-variable work (a Switch per input, each step).
        accumulate(optimizer, grads, accumulators, skip=is_update_step)
        plan = step_features.StepPlan(optimizer, grads, trainable_variables,
                                      accumulators=accumulators,
                                      skip=tf.logical_not(is_update_step))
        optimizer._update_with_plan(plan, grads, trainable_variables)
        return

    def applying():
        plan = step_features.StepPlan(optimizer, grads, trainable_variables,
                                      accumulators=accumulators)
        optimizer._update_with_plan(plan, grads, trainable_variables)
        # The update ops zeroed this step's accumulators; Keras resets every
        # one, also those of variables without a gradient in this step.
        in_step = {id(a) for a in accumulators}
        for accumulator in optimizer._accumulated_gradients:
            if accumulator is not None and id(accumulator) not in in_step:
                accumulator.assign(kops.zeros(accumulator.shape, dtype=accumulator.dtype))

    def accumulating():
        accumulate(optimizer, grads, accumulators)
        if optimizer.use_ema:  # Keras's EMA runs on every step, as Keras's own pass here
            _keras_ema(optimizer)

    kops.cond(is_update_step, applying, accumulating)


def steps_in_update_alone(optimizer) -> bool:
    """Whether the optimizer's step is Keras's around update_step, with no
    pass of the class's own: no state advanced outside update_step (its own
    _backend_update_step, as Nadam's u_product) and no decay pass of its own
    (Keras's pass, the rule's own, or none)."""
    from kerasopt.optimizers.fused import FusedOptimizer
    if type(optimizer)._backend_update_step is not FusedOptimizer._backend_update_step:
        return False
    return (optimizer.weight_decay is None or optimizer.decays_in_rule
            or step_features._decays_in_keras_pass(optimizer))


def _runs_without_cond(optimizer, accumulators) -> bool:
    """Whether every pass of the applying step is inside the update ops, so
    that they can run on every step and write nothing on the others: no EMA
    (Keras's runs on every step), no norm to take of the mean, no decay pass
    of the class's own, no state the class advances outside its ops once per
    step (Nadam's u_product, in its _backend_update_step), and every
    accumulator among this step's (the others are reset on the applying step
    only)."""
    if optimizer.use_ema or step_features.clipping(optimizer) not in (None, "clipvalue"):
        return False
    if not steps_in_update_alone(optimizer):
        return False
    in_step = {id(a) for a in accumulators}
    return all(a is None or id(a) in in_step for a in optimizer._accumulated_gradients)


def _keras_ema(optimizer) -> None:
    """Keras's EMA (and overwrite) pass, as at the end of its
    ``_backend_apply_gradients``."""
    optimizer._update_model_variables_moving_average(optimizer._trainable_variables)
    if optimizer.ema_overwrite_frequency:
        should_overwrite = (optimizer.iterations + 1) % optimizer.ema_overwrite_frequency == 0
        kops.cond(should_overwrite,
                  lambda: optimizer._overwrite_model_variables_with_average_value(
                      optimizer._trainable_variables),
                  lambda: None)
