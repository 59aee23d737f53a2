"""kerasopt.AveragedOptimizer: Polyak-Ruppert averaging and SWA around any optimizer,
and the SwapAveragedWeights callback.

The average's math: cc/kernels/iterate_average.h; its op:
cc/tf/iterate_average_op.cc (KerasoptUpdateIterateAverage, one pass per
variable); its fallback: kerasopt/fallback/iterate_average.py.
"""

import contextlib

import keras
import tensorflow as tf

from kerasopt import op_library
from kerasopt.fallback import iterate_average as average_fallback
from kerasopt.optimizers.fused import tf_variable
from kerasopt.optimizers.wrapper import OptimizerWrapper, check_positive_int

METHODS = ("polyak", "swa")


@keras.saving.register_keras_serializable(package="kerasopt")
class AveragedOptimizer(OptimizerWrapper):
    """The arithmetic mean of the iterates of any optimizer.

    * ``method="polyak"``: Polyak-Ruppert averaging (Polyak & Juditsky, "
      Acceleration of Stochastic Approximation by Averaging", 1992; Ruppert
      1988), also called ASGD: the running mean of every iterate from
      ``start_step`` on.
    * ``method="swa"``: stochastic weight averaging (Izmailov et al.,
      "Averaging Weights Leads to Wider Optima and Better Generalization",
      UAI 2018, Algorithm 1): the mean of the iterates at ``start_step``,
      ``start_step + average_period``, ... (``average_period`` = the paper's
      cycle length c, e.g. the steps of one epoch).

    Steps count from 1 (``iterations`` after the inner update). After step
    ``t`` with ``t >= start_step`` and ``(t - start_step) % average_period ==
    0``, with ``n = (t - start_step) // average_period`` iterates already
    averaged, each variable's average (an optimizer variable ``average``) is
    updated in one fused op (``KerasoptUpdateIterateAverage``)::

        average = w                              if n == 0
        average = average + (w - average) / (n + 1)   otherwise

    The model keeps training on its own weights. To use the average:

    * ``with optimizer.averaged_weights(): model.evaluate(...)`` swaps the
      averages into the model and back;
    * ``swap_average_weights()`` swaps them (call again to swap back; do not
      train while swapped);
    * ``finalize_variable_values`` (called by ``model.fit`` when it ends)
      leaves the model on the averages, as Keras does with ``use_ema``; before
      ``start_step`` nothing is averaged and the weights stay as they are;
    * the ``SwapAveragedWeights`` callback evaluates on the averages during
      ``fit``.

    Keras's ``use_ema`` is the exponential form of averaging; this is the
    arithmetic one. The averages are optimizer variables (saved by
    ``model.save`` and ``tf.train.Checkpoint``); ``iterations`` and
    ``learning_rate`` are the inner optimizer's.

    Args:
        optimizer: the inner ``keras.optimizers.Optimizer``. It must not use
            ``gradient_accumulation_steps``.
        method: ``"polyak"`` (every step; ``average_period`` must be 1) or
            ``"swa"``.
        start_step: the first step whose iterate is averaged, an integer >= 1.
            Defaults to 1.
        average_period: steps between averaged iterates, an integer >= 1.
            Defaults to 1.
        name: the optimizer's name.
    """

    kernel_op = "KerasoptUpdateIterateAverage"  # for `python -m kerasopt info`

    def __init__(self, optimizer, method="polyak", start_step=1, average_period=1, name=None,
                 **kwargs):
        super().__init__(optimizer, name=name, **kwargs)
        if method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
        self.method = method
        self.start_step = check_positive_int("start_step", start_step)
        self.average_period = check_positive_int("average_period", average_period)
        if method == "polyak" and average_period != 1:
            raise ValueError("method='polyak' averages every step: `average_period` must be 1, "
                             f"got {average_period} (use method='swa' for a period)")

    def build_wrapper(self, var_list):
        self._averages = self.add_optimizer_variables(var_list, "average")

    def average_for(self, variable):
        return self._averages[self._get_variable_index(variable)]

    def averaged_count(self, step=None):
        """How many iterates the averages hold after `step` (default: now), int64."""
        t = self.step_count() if step is None else tf.cast(step, tf.int64)
        since_start = t - self.start_step
        return tf.where(since_start >= 0, since_start // self.average_period + 1,
                        tf.zeros_like(t))

    def after_inner_step(self, variables):
        t = self.step_count()
        since_start = t - self.start_step
        due = tf.logical_and(since_start >= 0, tf.equal(since_start % self.average_period, 0))
        count = since_start // self.average_period  # iterates already in the average

        def update():
            for variable in variables:
                self.update_average(variable, count)
            return tf.constant(True)

        tf.cond(due, update, lambda: tf.constant(False))

    def update_average(self, variable, count):
        """Adds `variable`'s value to its average, which holds `count` iterates."""
        average = self.average_for(variable)
        if average is None:
            return
        average = tf_variable(average)
        var = tf_variable(variable)
        if op_library.use_kernel(var):
            op_library.library().ops.kerasopt_update_iterate_average(
                average=average.handle, var=var.handle, count=count, T=var.dtype)
        else:
            average_fallback.update_iterate_average(average, var, count=count)

    # --- using the averages ----------------------------------------------------

    def _pairs(self):
        if not self.built:
            raise ValueError(f"{type(self).__name__} is not built: nothing is averaged yet")
        return [(v, a) for v, a in zip(self._trainable_variables, self._averages)
                if a is not None]

    def has_averaged_weights(self) -> bool:
        """True once an iterate has been averaged (there is something to swap in)."""
        return self.built and int(self.averaged_count()) > 0

    def swap_average_weights(self):
        """Exchanges the model's weights and their averages (again: swaps back).

        Raises ValueError when nothing has been averaged yet.
        """
        pairs = self._pairs()
        if int(self.averaged_count()) == 0:
            raise ValueError(
                f"{type(self).__name__}: no iterate has been averaged yet (averaging starts "
                f"at step {self.start_step}; the optimizer is at step {int(self.step_count())})")
        for variable, average in pairs:
            var, average = tf_variable(variable), tf_variable(average)
            current = tf.identity(var.read_value())
            var.assign(average.read_value())
            average.assign(current)

    @contextlib.contextmanager
    def averaged_weights(self):
        """Context manager: the model holds the averages inside, its own weights after."""
        self.swap_average_weights()
        try:
            yield self
        finally:
            self.swap_average_weights()

    def finalize_variable_values(self, var_list):
        super().finalize_variable_values(var_list)
        if not self.built:
            return
        has_average = self.averaged_count() > 0
        for variable in var_list:
            index = self._trainable_variables_indices.get(self._var_key(variable))
            average = None if index is None else self._averages[index]
            if average is not None:
                var = tf_variable(variable)
                var.assign(tf.where(has_average, tf_variable(average).read_value(), var.read_value()))

    def get_config(self):
        config = super().get_config()
        config.update({"method": self.method, "start_step": self.start_step,
                       "average_period": self.average_period})
        return config


class SwapAveragedWeights(keras.callbacks.Callback):
    """Evaluates on the averaged weights during ``fit``.

    Before each evaluation (``on_test_begin``: validation inside ``fit``, or
    ``evaluate`` given this callback) the model takes the averaged weights of
    its optimizer, and gets its own back after it, as
    ``keras.callbacks.SwapEMAWeights`` does for ``use_ema``. Works with
    ``kerasopt.AveragedOptimizer`` (nothing is swapped before its first
    averaged step) and the schedule-free optimizers (x, see
    ``ScheduleFreeAdamW``), also as the inner optimizers of a
    ``keras.optimizers.MultiOptimizer``.
    """

    def __init__(self):
        super().__init__()
        self._swapped = None  # the ExitStack of the swaps in effect

    def _averaging_optimizers(self):
        optimizer = self.model.optimizer
        candidates = [optimizer] + list(getattr(optimizer, "optimizers", None) or [])
        found = [o for o in candidates if hasattr(o, "averaged_weights")]
        if not found:
            raise ValueError("SwapAveragedWeights needs a model compiled with a "
                             "kerasopt.AveragedOptimizer or a schedule-free optimizer (or a "
                             "MultiOptimizer holding one), got "
                             f"{type(optimizer).__name__}")
        return found

    def on_test_begin(self, logs=None):
        stack = contextlib.ExitStack()
        for optimizer in self._averaging_optimizers():
            if optimizer.has_averaged_weights():
                stack.enter_context(optimizer.averaged_weights())
        self._swapped = stack

    def on_test_end(self, logs=None):
        if self._swapped is not None:
            self._swapped.close()
            self._swapped = None
