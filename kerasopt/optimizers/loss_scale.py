"""``keras.optimizers.LossScaleOptimizer`` around a kerasopt optimizer: the
unscale inside the fused update.

Keras's LossScaleOptimizer (also what ``model.compile`` wraps the optimizer
in under the ``mixed_float16`` policy) checks the scaled gradients for inf and
NaN (is_finite then reduce_all: a bool written and read back per element),
and on a finite step divides every gradient by the
loss scale (one more read and a write of each) before its inner optimizer's
``apply``. With a kerasopt inner optimizer that fuses the step's features
(``fuses_step_features``), the division runs inside the update instead: the
ops' ``features`` take ``grad_unscale`` = the scale, and each element sees
Keras's own ``g / scale`` (same rounding: the float32 scale divides the
float32 gradient). Keras's ``tf.cond`` on the finite check stays (the
check itself reads each gradient once: nonfinite.all_finite): an
overflowing step still never reaches the inner optimizer, so it writes
nothing; and the inner's ``nonfinite="skip"`` shares that check (its own
would see finite gradients only).

Keras's division still runs (materialized) where the inner optimizer keeps
Keras's passes: no plan (step_features.plan_for: the fallback, GPU
variables, gradient accumulation, replicas), a variable updated by rows, or
with ``clipnorm``/``global_clipnorm`` (their norms are of the unscaled
gradients: computed from the scaled ones they would round otherwise).

Installed once, when kerasopt is imported: Keras's
``LossScaleOptimizer._stateful_handle_finite_grads`` and ``check_finite``
get replacements that hand any other inner optimizer to Keras's own
methods unchanged.
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops as kops
from keras.src.optimizers.loss_scale_optimizer import LossScaleOptimizer

_keras_handle_finite_grads = LossScaleOptimizer._stateful_handle_finite_grads


def _fuses_unscale(loss_scale_optimizer, grads, trainable_variables) -> bool:
    from kerasopt.optimizers import step_features
    from kerasopt.optimizers.fused import FusedOptimizer
    inner = loss_scale_optimizer.inner_optimizer
    if not isinstance(inner, FusedOptimizer) or not inner.fuses_step_features:
        return False
    if step_features.clipping(inner) in ("clipnorm", "global_clipnorm"):
        return False
    if any(loss_scale_optimizer._overwrite_variable_with_gradient(v)
           for v in trainable_variables):
        return False
    return step_features.plan_for(inner, grads, trainable_variables,
                                  unscale=loss_scale_optimizer.dynamic_scale) is not None


def _stateful_handle_finite_grads(self, grads, trainable_variables):
    variables = trainable_variables or self._trainable_variables
    if not _fuses_unscale(self, grads, variables):
        return _keras_handle_finite_grads(self, grads, trainable_variables)
    inner = self.inner_optimizer
    # Read by the inner step's plan (step_features.py). The scale's value,
    # set past Keras's attribute tracking: the variable itself would join
    # the inner optimizer's variables (and its checkpoint).
    object.__setattr__(inner, "_grad_unscale", tf.convert_to_tensor(self.dynamic_scale))
    try:
        inner.apply(grads, trainable_variables=trainable_variables)
    finally:
        object.__setattr__(inner, "_grad_unscale", None)

    # Keras's own scale update of a finite step.
    def upscale():
        self.step_counter.assign(0)
        self.dynamic_scale.assign(kops.multiply(self.dynamic_scale, 2.0))

    def increment():
        self.step_counter.assign_add(1)

    kops.cond(kops.equal(self.step_counter, self.dynamic_growth_steps - 1), upscale, increment)


_keras_check_finite = LossScaleOptimizer.check_finite


def _check_finite(self, grads):
    # Around a fusing kerasopt optimizer: nonfinite.all_finite, one read of
    # each gradient (Keras's writes and reads back a bool per element), with
    # Keras's result.
    from kerasopt.optimizers import nonfinite, step_features
    from kerasopt.optimizers.fused import FusedOptimizer
    inner = self.inner_optimizer
    if not (isinstance(inner, FusedOptimizer) and inner.fuses_step_features
            and step_features.enabled()):
        return _keras_check_finite(self, grads)
    return nonfinite.all_finite(grads)


def install():
    LossScaleOptimizer._stateful_handle_finite_grads = _stateful_handle_finite_grads
    LossScaleOptimizer.check_finite = _check_finite
