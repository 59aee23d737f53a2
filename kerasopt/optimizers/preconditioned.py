"""What FullMatrixAdagrad and Shampoo share: argument checks, matrix slots, the step.

Their statistics and preconditioners are [num_blocks, b, b] optimizer variables
(see kerasopt/fallback/blocks.py), stored in float32 for 16-bit variables and
in float64 for float64 ones, so that ``model.save`` and checkpoints carry them.
"""

from __future__ import annotations

import numbers

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant
from kerasopt.optimizers.fused import FusedOptimizer, hyperparameter, variable_name


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
    return int(value)


def check_epsilon(value):
    """The damping of the inverse roots: > 0 keeps them finite."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 \
            or value == float("inf"):
        raise ValueError(f"`epsilon` must be a finite float > 0 (it keeps the inverse roots "
                         f"finite), got {value!r}")
    return float(value)


def slot_name(variable, what: str) -> str:
    """As Keras names slots: the variable's path with '/' (and ':') replaced."""
    return f"{variable_name(variable).replace('/', '_').replace(':', '_')}_{what}"


class PreconditionedOptimizer(FusedOptimizer):
    """Base of the block-preconditioned optimizers: one op per variable and step."""

    # Their matrix slots are already float32 (compute_dtype) for 16-bit
    # variables; the graft slots are not, and slot_dtype is not offered.
    supports_slot_dtype = False

    def add_matrix_slot(self, variable, shape, what, identity_scale=0.0):
        """A [num_blocks, b, b] statistics or preconditioner variable for `variable`."""
        dtype = compute_dtype(variable.dtype).name

        def initializer(shape, dtype):  # runs eagerly: a variable scale is read here
            scale = constant(hyperparameter(identity_scale), dtype)
            return scale * tf.eye(shape[1], batch_shape=[shape[0]], dtype=dtype)

        return self.add_variable(shape=shape, initializer=initializer, dtype=dtype,
                                 name=slot_name(variable, what))

    def step_inputs(self, learning_rate):
        """(step = iterations + 1 as int64, learning rate as float64), shared within one apply."""
        step, learning_rate_f64 = self._shared_step_inputs(learning_rate)
        if learning_rate_f64 is None:
            learning_rate_f64 = tf.cast(learning_rate, tf.float64)
        return step, learning_rate_f64

    # FusedOptimizer's per-element hooks do not apply: update_step is overridden.
    def slots_for(self, variable):
        raise NotImplementedError(f"{type(self).__name__} updates through update_step")
