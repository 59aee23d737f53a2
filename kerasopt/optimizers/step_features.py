"""Keras's passes around the update, folded into kerasopt's fused update.

Keras's ``Optimizer._backend_apply_gradients`` runs, around the per-variable
``update_step``, one pass over every gradient for clipping (``clipnorm``,
``clipvalue``, ``global_clipnorm``), one over every weight for decoupled weight
decay (``weight_decay``, minus ``exclude_from_weight_decay``), and, after the
update, one over every weight and its average for ``use_ema`` (and
``ema_overwrite_frequency``). A ``LossScaleOptimizer`` around the optimizer
adds a division of every gradient by the loss scale (``unscale``:
loss_scale.py). For the element-wise rules (``fuses_step_features``)
kerasopt runs all of them inside the fused update instead: the dense and
multi-tensor ops take the step's ``features`` (cc/kernels/step_features.h),
and the EMA average (Keras's own ``<var>_average`` variable) as one more slot.

What stays a pass of its own: the global norm of ``global_clipnorm`` (one
read of every gradient, :func:`_sum_of_squares`), and the per-variable norm
of ``clipnorm`` (``tf.clip_by_norm``'s operations). Both give Keras's sums to
the bit, so the scale the update applies is Keras's.

A :class:`StepPlan` holds one step's values (the scale, the EMA momentum of
this step, whether it overwrites). Each variable is then updated by one of:

* the kernel (dense or multi-tensor op): the features go in as an input;
* a sparse (row) update, or an IndexedSlices gradient Keras clips as such:
  Keras's own per-variable operations around it
  (:meth:`StepPlan.before_update`);

and :meth:`StepPlan.finish` runs Keras's EMA for the variables no kernel
averaged (those without a gradient this step, or with float32 slots of a
16-bit variable). Not fused (Keras's passes as before): a step with any
variable the dense kernel cannot update (the fallback: ``KERASOPT_IMPL=tf``,
XLA, a GPU variable, whose kernels take no features yet), tf.distribute
strategies, and optimizers whose rule is not element-wise (Muon too: its
matrices go through its list ops). Gradient accumulation has its own plan
(gradient_accumulation.py): on its applying step a StepPlan made with the
accumulators hands each op its accumulator as one more slot.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf
from keras import ops as kops

# Layout of the ops' `features` input (cc/kernels/step_features.h: StepFeature).
GRAD_UNSCALE, GRAD_MULTIPLIER, GRAD_DIVISOR, CLIP_VALUE, WEIGHT_DECAY, EMA_MOMENTUM, \
    EMA_OVERWRITE, SKIP_STEP = range(8)
NUM_FEATURES = 8


def enabled() -> bool:
    """``KERASOPT_STEP_FEATURES=0`` keeps Keras's own passes (for comparisons)."""
    return os.environ.get("KERASOPT_STEP_FEATURES", "1") != "0"


def _positive(value) -> bool:
    return value is not None and value > 0


def clipping(optimizer) -> str | None:
    """Keras's clipping mode of `optimizer` (its ``_clip_gradients`` order)."""
    if _positive(optimizer.clipnorm):
        return "clipnorm"
    if _positive(optimizer.global_clipnorm):
        return "global_clipnorm"
    if _positive(optimizer.clipvalue):
        return "clipvalue"
    return None


def _decays_in_keras_pass(optimizer) -> bool:
    """Whether Keras's decay pass would run (a class that folds the decay into
    its own rule, as AdamW, overrides ``_apply_weight_decay``)."""
    from keras.src.backend.tensorflow.optimizer import TFOptimizer
    return (optimizer.weight_decay is not None
            and type(optimizer)._apply_weight_decay is TFOptimizer._apply_weight_decay)


def plan_for(optimizer, grads, trainable_variables, unscale=None) -> "StepPlan | None":
    """The step's plan, or None where Keras's own passes run as before.

    `unscale`: the loss scale the gradients are to be divided by
    (loss_scale.py), or None."""
    from kerasopt.optimizers import multi_tensor
    if not (enabled() and getattr(optimizer, "fuses_step_features", False)):
        return None
    if optimizer.gradient_accumulation_steps or not multi_tensor.no_replicas(optimizer):
        return None
    if not (clipping(optimizer) or _decays_in_keras_pass(optimizer) or optimizer.use_ema
            or unscale is not None):
        return None
    # Only when every variable's dense update is the kernel: the fallback
    # (KERASOPT_IMPL=tf, XLA, no op library), GPU variables (their kernels
    # take no features yet) keep Keras's passes, which are Keras's numbers to
    # the bit; Keras's operations moved next to the fallback's inside the
    # update were regrouped by Grappler (SGD, global_clipnorm: 1 ulp off).
    from kerasopt import op_library
    op = f"KerasoptApply{optimizer.kernel_name}"
    if any(op_library.kernel_unavailable_reason(v, op, wide_slots=optimizer._wide_slots(v))
           is not None or not multi_tensor._on_cpu(v) for v in trainable_variables):
        return None
    return StepPlan(optimizer, grads, trainable_variables, unscale)


def _f64(value, dtype):
    """`value` rounded to `dtype` (as Keras casts it), as the ops' float64."""
    return tf.cast(tf.cast(value, dtype), tf.float64)


class StepPlan:
    """One step's clipping, decay and EMA values, shared by every variable."""

    def __init__(self, optimizer, grads, trainable_variables, unscale=None, accumulators=None,
                 skip=None):
        self.optimizer = optimizer
        # A bool tensor: when true the ops write nothing (SKIP_STEP), for an
        # update op that runs on every step, outside a cond (gradient_accumulation.py).
        self.skip = tf.constant(0.0, tf.float64) if skip is None else tf.cast(skip, tf.float64)
        self.unscale = unscale
        self.clipping = clipping(optimizer)
        self.decay = _decays_in_keras_pass(optimizer)
        self.use_ema = bool(optimizer.use_ema)
        self.global_scale = None
        # The applying step of gradient accumulation (gradient_accumulation.py):
        # each op takes its variable's accumulator and computes Keras's mean
        # (g + acc) / k itself. Only the norms need the mean as a tensor
        # (Keras's order: the norm of the rounded mean).
        self.accumulation_steps = 0
        self._accumulators = {}  # var key -> Keras's "<var>_gradient_accumulator"
        self._means = {}  # var key -> Keras's mean, where a norm needs it
        if accumulators is not None:
            self.accumulation_steps = int(optimizer.gradient_accumulation_steps)
            for variable, accumulator in zip(trainable_variables, accumulators):
                self._accumulators[optimizer._var_key(variable)] = accumulator
            if self.clipping in ("global_clipnorm", "clipnorm"):
                grads = [None if g is None else (g + acc) / self.accumulation_steps
                         for g, acc in zip(grads, accumulators)]
                for variable, mean in zip(trainable_variables, grads):
                    self._means[optimizer._var_key(variable)] = mean
        if self.clipping == "global_clipnorm":
            self.global_scale = _global_clip_scale(grads, optimizer.global_clipnorm,
                                                   rows=optimizer.lazy)
        if self.use_ema:
            # Keras: momentum = cast(iterations != 0) * ema_momentum (in the
            # variable's dtype: the op rounds the float64 alike).
            not_first = tf.cast(tf.not_equal(optimizer.iterations, 0), tf.float64)
            self.ema_momentum = not_first * float(optimizer.ema_momentum)
            if optimizer.ema_overwrite_frequency:
                self.overwrite = tf.cast(tf.equal(
                    (optimizer.iterations + 1) % optimizer.ema_overwrite_frequency, 0),
                    tf.float64)
            else:
                self.overwrite = tf.constant(0.0, tf.float64)
        self._shared = {}  # (dtype, decayed, rows) -> features tensor
        self._averaged = set()  # keys of the variables a kernel averaged

    # --- the kernel path -------------------------------------------------

    def average_for(self, variable):
        """Keras's EMA average of `variable` to pass as the op's last slot, or
        None (no EMA, or float32 slots of a 16-bit variable: the average keeps
        the variable's dtype, the op takes slots of one dtype)."""
        opt = self.optimizer
        if not self.use_ema or opt._wide_slots(variable):
            return None
        return opt._model_variables_moving_average[opt._get_variable_index(variable)]

    def features_for(self, variable, gradient, rows=False):
        """The op's `features` row for `variable` (float64 [NUM_FEATURES]);
        with `rows`, the sparse op's: the gradient's features only."""
        dtype = variable.dtype
        decayed = not rows and self.decay and self.optimizer._use_weight_decay(variable)
        if self.clipping == "clipnorm":
            mean = self._means.get(self.optimizer._var_key(variable))
            return self._features(dtype, decayed, gradient if mean is None else mean,
                                  averaged=not rows)
        key = (tf.as_dtype(dtype).name, decayed, rows)
        if key not in self._shared:
            self._shared[key] = self._features(dtype, decayed, None, averaged=not rows)
        return self._shared[key]

    def _features(self, dtype, decayed, gradient, averaged=True):
        opt = self.optimizer
        one = tf.constant(1.0, tf.float64)
        zero = tf.constant(0.0, tf.float64)
        unscale = one if self.unscale is None else _f64(self.unscale, dtype)
        multiplier, divisor, clip = one, one, zero
        if self.clipping == "global_clipnorm":
            multiplier = _f64(self.global_scale, dtype)
        elif self.clipping == "clipnorm":
            multiplier, divisor = _clipnorm_factors(gradient, opt.clipnorm)
        elif self.clipping == "clipvalue":
            clip = _f64(opt.clipvalue, dtype)
        decay = _f64(opt.weight_decay, dtype) if decayed else zero
        ema = self.ema_momentum if self.use_ema and averaged else zero
        overwrite = self.overwrite if self.use_ema and averaged else zero
        return tf.stack([unscale, multiplier, divisor, clip, decay, ema, overwrite, self.skip])

    def kernel_inputs(self, variable, gradient, slots):
        """(slots with the average and the accumulator appended, extra op
        keywords) for the kernel."""
        average = self.average_for(variable)
        if average is not None:
            self._averaged.add(self.optimizer._var_key(variable))
            slots = list(slots) + [_tf(average)]
        extra = {}
        if self.accumulation_steps:
            slots = list(slots) + [_tf(self._accumulators[self.optimizer._var_key(variable)])]
            extra["accumulation_steps"] = self.accumulation_steps
        return slots, dict(features=self.features_for(variable, gradient),
                           with_average=average is not None, **extra)

    # --- the sparse kernel: the gradient's features on its rows ----------

    def fuses_rows(self, variable, gradient) -> bool:
        """Whether the sparse op takes this step's gradient features for the
        IndexedSlices `gradient`: the loss scale's division, clipnorm
        (tf.clip_by_norm's, as Keras's TensorFlow backend clips: the norm of
        the values, each value scaled) and clipvalue, on each value before
        the duplicates are summed (as those operations on an IndexedSlices
        act), and global_clipnorm's scale, on each row's sum (as Keras's
        `v * scale` of the dense tensor). Not for 16-bit variables (Keras
        rounds each operation to 16 bits) or an accumulated mean: Keras's
        operations. Decay and the EMA act on every row: Keras's passes."""
        return (isinstance(gradient, tf.IndexedSlices)
                and tf.as_dtype(variable.dtype) in (tf.float32, tf.float64)
                and self.optimizer._var_key(variable) not in self._accumulators)

    def row_kernel_inputs(self, variable, values):
        """The sparse op's `features` and `features_on_sum` for `variable`,
        whose IndexedSlices gradient has `values` (clipnorm's norm is theirs)."""
        return dict(features=self.features_for(variable, values, rows=True),
                    features_on_sum=self.clipping == "global_clipnorm")

    # --- any other path: Keras's own operations, per variable ------------

    def before_update(self, variable, gradient):
        """Keras's clipping of `gradient` and decay of `variable` (for a path
        that takes no features); returns the clipped gradient."""
        opt = self.optimizer
        self._averaged.discard(opt._var_key(variable))
        accumulator = self._accumulators.get(opt._var_key(variable))
        if accumulator is not None:  # Keras's mean, and its reset
            gradient = (gradient + accumulator) / self.accumulation_steps
            accumulator.assign(kops.zeros(accumulator.shape, dtype=accumulator.dtype))
        if self.unscale is not None:  # LossScaleOptimizer's own division
            gradient = kops.divide(gradient, self.unscale)
        if self.clipping == "global_clipnorm":
            gradient = globally_clipped(gradient, self.global_scale)
        elif self.clipping:
            gradient = opt._clip_gradients([gradient])[0]
        self.decay_in_keras_pass(variable)
        return gradient

    def decay_in_keras_pass(self, variable):
        """Keras's decay of `variable` (every row), where it is to be decayed."""
        opt = self.optimizer
        if self.decay and opt._use_weight_decay(variable):
            lr = tf.cast(opt.learning_rate, variable.dtype)
            wd = tf.cast(opt.weight_decay, variable.dtype)
            variable.assign_sub(variable * wd * lr)

    def finish(self):
        """Keras's EMA (and overwrite) for the variables no kernel averaged."""
        if not self.use_ema:
            return
        opt = self.optimizer
        rest = [(var, avg) for var, avg in zip(opt._trainable_variables,
                                               opt._model_variables_moving_average)
                if opt._var_key(var) not in self._averaged]
        if not rest:
            return
        variables = [v for v, _ in rest]
        averages = [a for _, a in rest]
        keras.optimizers.Optimizer._update_model_variables_moving_average.__get__(
            _AveragesOf(opt, averages))(variables)
        if opt.ema_overwrite_frequency:
            def overwrite():
                for var, average in rest:
                    var.assign(average)
            kops.cond(tf.cast(self.overwrite, tf.bool), overwrite, lambda: None)


def _tf(variable):
    """The tf.Variable behind a keras.Variable (the ops take its handle)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


class _AveragesOf:
    """`optimizer` seen with only some of its EMA averages (for Keras's own
    ``_update_model_variables_moving_average`` over a subset)."""

    def __init__(self, optimizer, averages):
        self.use_ema = optimizer.use_ema
        self.ema_momentum = optimizer.ema_momentum
        self.iterations = optimizer.iterations
        self._model_variables_moving_average = averages


def _sum_of_squares(gradient, rows=False):
    """Keras's ``ops.sum(ops.square(g))`` in one read of `g`.

    ``2 * tf.nn.l2_loss(g)``: TensorFlow's L2Loss sums g^2 / 2 with the same
    Eigen reduction as ``reduce_sum`` (the same tree over the same elements),
    and halving and doubling are exact, so the sum is Keras's to the bit
    (checked against Keras in tests/test_keras_parity.py and
    tests/test_step_features.py; only squares below float32's normal range,
    under 1e-38, would round differently). Keras's pair writes g^2 to memory
    and reads it back: for one 8M gradient, 6.6 ms against 2.5 ms here.
    An IndexedSlices keeps Keras's operations (its rows are squared, then
    made a dense tensor, summed); with `rows`, the sum of its rows' squares
    without that tensor, as TensorFlow's global_norm (and Keras 2's
    clip_by_global_norm) took it: for ``lazy=True``, which has no Keras 3
    counterpart and updates only the rows named.
    """
    if isinstance(gradient, tf.IndexedSlices):
        if rows:
            return 2.0 * tf.nn.l2_loss(gradient.values)
        return kops.sum(kops.square(gradient))
    return 2.0 * tf.nn.l2_loss(gradient)


def globally_clipped(gradient, scale):
    """Keras's ``v * scale`` of ``clip_by_global_norm``. An IndexedSlices is
    made a dense tensor there first (its duplicate rows summed by
    unsorted_segment_sum), then scaled: a pass over the whole variable, and a
    row update (``lazy=True``, ``sparse_rows_exact``) would then update every
    row. Here its duplicates are summed by the same op in the same order and
    only those rows scaled: the values of Keras's tensor on those rows, bit
    for bit, still as rows."""
    if not isinstance(gradient, tf.IndexedSlices):
        return gradient * tf.cast(scale, gradient.dtype)
    rows, positions = tf.unique(gradient.indices)
    summed = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(rows)[0])
    return tf.IndexedSlices(summed * tf.cast(scale, summed.dtype), rows, gradient.dense_shape)


def keras_global_clip_scale(grads, clip_norm, rows=False):
    """The scale of Keras's ``clip_by_global_norm``, with Keras's own norm
    (for its passes: `_global_clip_scale` is its fused, one-read form); with
    `rows`, the norm of IndexedSlices rows as `_sum_of_squares` takes it."""
    if rows:
        return _global_clip_scale(grads, clip_norm, rows=True)
    from keras.src.optimizers.base_optimizer import global_norm
    use_norm = global_norm(grads)
    scale_for_finite = clip_norm * kops.minimum(1.0 / use_norm, 1.0 / clip_norm)
    return scale_for_finite + (use_norm - use_norm)


def _global_clip_scale(grads, clip_norm, rows=False):
    """Keras's ``clip_by_global_norm`` scale (its global_norm's order)."""
    squared_norms = [_sum_of_squares(g, rows) for g in grads if g is not None]
    use_norm = kops.sqrt(kops.sum(kops.stack(squared_norms)))
    scale_for_finite = clip_norm * kops.minimum(1.0 / use_norm, 1.0 / clip_norm)
    return scale_for_finite + (use_norm - use_norm)


def _clipnorm_factors(gradient, clip_norm):
    """tf.clip_by_norm's (clip_norm, max(||g||, clip_norm)) for `gradient`:
    its result is g * clip_norm / max(||g||, clip_norm), in that order."""
    values = tf.convert_to_tensor(gradient)
    l2sum = _sum_of_squares(values)  # its reduce_sum(values * values), one read
    pred = l2sum > 0
    l2sum_safe = tf.where(pred, l2sum, tf.ones_like(l2sum))
    l2norm = tf.where(pred, tf.sqrt(l2sum_safe), l2sum)
    clip = tf.cast(clip_norm, values.dtype)
    divisor = tf.maximum(l2norm, clip)
    return tf.cast(clip, tf.float64), tf.cast(divisor, tf.float64)
