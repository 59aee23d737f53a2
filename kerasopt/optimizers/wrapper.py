"""The base of kerasopt's wrapper optimizers (Lookahead, AveragedOptimizer).

A wrapper holds an inner optimizer (any Keras optimizer: kerasopt's or
Keras's own), lets it do each step, and then does its own work on the model's
variables (Lookahead's sync, the iterate average) with its own optimizer
variables. As ``keras.optimizers.LossScaleOptimizer`` does:

* ``variables`` are the wrapper's own followed by the inner optimizer's, so
  ``model.save`` / load and ``tf.train.Checkpoint`` keep both;
* ``iterations`` and ``learning_rate`` are the inner optimizer's (schedules,
  callbacks such as ReduceLROnPlateau and TensorBoard see the real ones);
* ``get_config`` serializes the inner optimizer under ``"optimizer"``;
* the arguments of the base optimizer (clipping, EMA, ...) belong to the inner
  optimizer and are refused here.

Subclasses implement ``build_wrapper`` (create their variables),
``after_inner_step(variables)`` (run after each inner update) and may
implement ``before_inner_step(variables)``. The wrapper's own ``_iterations``
counts its steps (``wrapper_steps()``: 0 before the first one). A step the
inner optimizer skips (its ``iterations`` does not advance: ``nonfinite="skip"``,
or ``LossScaleOptimizer`` on an overflow) is skipped by the wrapper too:
neither ``after_inner_step`` nor the wrapper's count runs.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras.src import backend
from keras.src.utils import tracking

from kerasopt.backend_check import require_tensorflow_backend
from kerasopt.optimizers import saved_name, step_checks

# Base-optimizer arguments and their defaults: set them on the inner optimizer.
_INNER_ONLY = {
    "learning_rate": None,
    "weight_decay": None,
    "clipnorm": None,
    "global_clipnorm": None,
    "clipvalue": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
    return value


class OptimizerWrapper(keras.optimizers.Optimizer):
    """An optimizer that runs `optimizer` and then its own per-step work."""

    kernel_op: str = ""  # the wrapper's own fused op, e.g. "KerasoptLookaheadSync"

    def __init__(self, optimizer, name=None, **kwargs):
        cls = type(self).__name__
        require_tensorflow_backend(cls)
        for arg, default in _INNER_ONLY.items():
            if arg in kwargs:
                value = kwargs.pop(arg)
                if value != default:
                    raise ValueError(f"{cls} does not take `{arg}`: set it on the inner "
                                     f"optimizer (`optimizer`), got {arg}={value!r}")
        if kwargs:
            raise ValueError(f"{cls} got unknown argument(s): {', '.join(sorted(kwargs))}")
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(f"{cls}: `optimizer` must be a keras.optimizers.Optimizer "
                            f"instance, got {optimizer!r}")
        if getattr(optimizer, "gradient_accumulation_steps", None):
            # Its iterations count only the real updates while apply() runs on
            # every micro-batch: the wrapper's step would be ambiguous.
            raise ValueError(f"{cls}: the inner optimizer must not use "
                             "gradient_accumulation_steps")
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = optimizer

    # --- what subclasses provide -------------------------------------------------

    def build_wrapper(self, var_list):
        """Creates the wrapper's own optimizer variables for `var_list`."""
        raise NotImplementedError

    def before_inner_step(self, variables):
        """Runs before each inner step (default: nothing)."""

    def after_inner_step(self, variables):
        """Runs after each inner step on the variables it updated."""
        raise NotImplementedError

    def wrapper_steps(self):
        """Steps this wrapper has taken (int64); its own counter, not the inner one's."""
        return tf.cast(self._iterations, tf.int64)

    # --- Keras optimizer protocol ---------------------------------------------

    @tracking.no_automatic_dependency_tracking
    def build(self, var_list):
        if self.built:
            return
        var_list = list(var_list)
        if not self.inner_optimizer.built:
            self.inner_optimizer.build(var_list)
        super().build(var_list)
        self.build_wrapper(var_list)

    @property
    def variables(self):
        return self._variables[:] + list(self.inner_optimizer.variables)

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            if not self.built:
                raise ValueError(f"{type(self).__name__} must be built (or given the "
                                 "variables) before apply(grads)")
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        if not self.built:
            with backend.name_scope(self.name, caller=self):
                self.build(trainable_variables)
        grads = step_checks.normalize_gradients(grads)
        if len(grads) == 0:
            return
        # The checks of the whole step gate the wrapper's writes too.
        with step_checks.gated(grads, trainable_variables):
            self.before_inner_step(trainable_variables)
            steps_before = tf.identity(self.step_count())
            self.inner_optimizer.apply(grads, trainable_variables)
            # Variables the inner optimizer skipped (no gradient) are left as they are.
            updated = [v for g, v in zip(grads, trainable_variables) if g is not None]
            self._after_inner_apply(updated, steps_before)

    def _after_inner_apply(self, updated, steps_before):
        """The wrapper's own step, only if the inner optimizer really stepped.

        An inner step can be skipped without an error: ``nonfinite="skip"``, or
        ``LossScaleOptimizer`` with an overflowing gradient. Its ``iterations``
        then stays put, and so must everything of the wrapper (the average
        must not count the same iterate twice, nor Lookahead sync twice).
        """
        def wrapper_step():
            if updated:
                self.after_inner_step(updated)
            self._iterations.assign_add(1)

        stepped = tf.not_equal(self.step_count(), steps_before)
        if tf.executing_eagerly():
            if bool(stepped):
                wrapper_step()
            return
        tf.cond(stepped, wrapper_step, lambda: None)

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        raise NotImplementedError(f"{type(self).__name__} runs on the TensorFlow backend only")

    def step_count(self):
        """Inner updates so far (int64), read after this step's update."""
        return tf.cast(self.inner_optimizer.iterations, tf.int64)

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    def scale_loss(self, loss):
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    def get_config(self):
        # Under kerasopt's name even with Keras's options: only kerasopt reads
        # this config, and from_config must give back kerasopt's class.
        with saved_name.under_kerasopts_name(self.inner_optimizer):
            inner = keras.saving.serialize_keras_object(self.inner_optimizer)
        return {"name": self.name, "optimizer": inner}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        optimizer = keras.saving.deserialize_keras_object(
            config.pop("optimizer"), custom_objects=custom_objects)
        return cls(optimizer, **config)
