"""kerasopt.ScheduleFreeAdamW (Keras's) and kerasopt.ScheduleFreeSGD (the same
rule without the second moment).

The math and the declarations (from which their fused ops are built):
cc/kernels/schedule_free.h (what both share), schedule_free_adamw.h,
schedule_free_sgd.h. The fallback: kerasopt/fallback/schedule_free.py. The evaluation weights x:
``averaged_weights()`` and the ``SwapAveragedWeights`` callback.
"""

import contextlib
import numbers

import keras
import tensorflow as tf

from kerasopt.fallback import schedule_free as schedule_free_fallback
from kerasopt.optimizers.fused import (FusedOptimizer, check_hyperparameter, check_learning_rate,
                                       tf_variable)


def check_beta_1(beta_1):
    """beta_1 in (0, 1]: x is recovered from the weight as (y - (1 - beta_1) z) / beta_1."""
    check_hyperparameter("beta_1", beta_1, 0.0, 1.0, high_inclusive=True)
    if float(beta_1) == 0.0:
        raise ValueError("`beta_1` must be in (0, 1] (x = (y - (1 - beta_1) z) / beta_1), got 0")
    return beta_1


def check_warmup_steps(warmup_steps):
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, numbers.Integral) \
            or warmup_steps < 0:
        raise ValueError(f"`warmup_steps` must be an integer >= 0, got {warmup_steps!r}")
    return warmup_steps


class ScheduleFreeBase(FusedOptimizer):
    """What the two schedule-free optimizers share: z (the ``momentum`` slot,
    initialized to the weights), the folded weight decay, the ``interpolate``
    switch and the evaluation weights."""

    uses_second_moment = True
    interpolate_default = True
    # Element-wise in y, z (and v): Keras's clipping and EMA (of y, the
    # weights) run inside the fused update (step_features.py); the decay is
    # the rule's own already (_apply_weight_decay below).
    fuses_step_features = True

    def __init__(self, *args, interpolate=None, **kwargs):
        super().__init__(*args, **kwargs)
        if interpolate is None:
            interpolate = self.interpolate_default
        if not isinstance(interpolate, bool):
            raise ValueError(f"`interpolate` must be True or False, got {interpolate!r}")
        self.interpolate = interpolate

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        if self.uses_second_moment:
            self._momentums, self._velocities = self.add_optimizer_variables(
                var_list, ["momentum", "velocity"])
        else:
            self._momentums = self.add_optimizer_variables(var_list, "momentum")
        # z starts at the initial weights (as Keras does), so x = y = z at step 0.
        # Eagerly, also when built while a step is traced: an assign traced
        # into the step would reset z at every step.
        with tf.init_scope():
            for momentum, variable in zip(self._momentums, var_list):
                if momentum is not None:
                    momentum.assign(tf.cast(variable, momentum.dtype))

    def slots_for(self, variable):
        i = self._get_variable_index(variable)
        if self.uses_second_moment:
            return [self._momentums[i], self._velocities[i]]
        return [self._momentums[i]]

    decays_in_rule = True

    def _apply_weight_decay(self, variables):
        # The decay is part of each variable's fused update (update_step).
        return

    def _decay_for(self, variable):
        if self.weight_decay is None or not self._use_weight_decay(variable):
            return 0.0
        return self.hyperparameter(self.weight_decay)

    def _rule_arguments(self, variable):
        """The rule's hyperparameters, as the op and the fallback name them
        (floats, or a hyperparameter variable's value read at this step)."""
        arguments = dict(weight_decay=self._decay_for(variable),
                         beta_1=self.hyperparameter(self.beta_1),
                         warmup_steps=int(self.warmup_steps), interpolate=self.interpolate)
        if self.uses_second_moment:
            arguments.update(beta_2=self.hyperparameter(self.beta_2),
                             epsilon=self.hyperparameter(self.epsilon))
        return arguments

    def kernel_hyperparameters(self, variable):
        arguments = self._rule_arguments(variable)
        arguments["warmup_steps"] = float(arguments["warmup_steps"])  # the op's scalars are float64
        # The average rounds as Keras's traced graph does for this shape
        # (cc/kernels/schedule_free.h); the op sees only the element count.
        arguments["scalar_variable"] = tf.TensorShape(variable.shape).rank == 0
        return arguments

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        schedule_free_fallback.apply_schedule_free(
            variable, gradient, *slots, learning_rate=learning_rate, step=step,
            **self._rule_arguments(variable))

    # --- the evaluation weights x --------------------------------------------

    def has_averaged_weights(self) -> bool:
        """True once built: x = y = z before the first step, so x is always defined."""
        return self.built

    @contextlib.contextmanager
    def averaged_weights(self):
        """Context manager: the model holds x (the weights to evaluate or
        export) inside, its training weights y again after (restored exactly).
        With ``interpolate=False`` the weights already are the average: nothing
        is swapped.

        Raises ValueError before the optimizer is built.
        """
        if not self.built:
            raise ValueError(f"{type(self).__name__} is not built: it has no averaged weights yet")
        swapped = []
        if not self.interpolate:
            yield self
            return
        try:
            for variable, momentum in zip(self._trainable_variables, self._momentums):
                if momentum is None:
                    continue
                var = tf_variable(variable)
                saved = tf.identity(var.read_value())
                x = schedule_free_fallback.averaged_weight(
                    var, tf_variable(momentum), beta_1=self.hyperparameter(self.beta_1))
                var.assign(x)
                swapped.append((var, saved))
            yield self
        finally:
            for var, saved in swapped:
                var.assign(saved)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "warmup_steps": self.warmup_steps})
        # Only when not the class's default: a default config stays Keras's own.
        if self.interpolate != self.interpolate_default:
            config["interpolate"] = self.interpolate
        if self.uses_second_moment:
            config.update({"beta_2": self.beta_2, "epsilon": self.epsilon})
        return config


_RULE_SWITCH_SCHEDULES_AND_EVALUATION = """
    ``interpolate`` chooses between two rules, which differ in the z used to
    recover x before the step (both give y = z after step 1):

    * ``True``, the paper's: x from the z before the step, so
      ``y = (1 - beta_1) z + beta_1 x`` interpolates between z and the
      average x of the z's, and the gradient is taken there.
    * ``False``, Keras 3.15.1's: its ``momentum.value`` is the variable
      itself, read after z's update, so x is recovered with the new z. Then
      ``y = (1 - 1/t) y + (1/t) z'``: the weight is the running average of z
      (the paper's beta = 1, "primal averaging") and ``beta_1`` cancels out of
      training.

    Evaluation: with ``interpolate=True`` the model trains on y and the
    weights to evaluate or export are ``x = (y - (1 - beta_1) z) / beta_1``:
    ``with optimizer.averaged_weights():`` puts x into the model and restores
    y exactly after (``model.evaluate``, ``model.save`` for export), and the
    ``kerasopt.SwapAveragedWeights`` callback does it around every
    evaluation inside ``fit``. With ``interpolate=False`` the weights already
    are the average, and both leave them as they are. Layers with statistics
    of their own (BatchNormalization) computed them on y: recompute them on x
    (a few forward passes in training mode) before evaluating. As in Keras,
    ``fit`` leaves y in the model; save the model *outside* the context to
    resume training (y and z are both needed; x is recovered from them).

    Learning-rate schedules: the schedule-free rule replaces a decaying
    schedule; ``learning_rate`` should normally be a constant, with
    ``warmup_steps`` for the warmup. A schedule (or a callback that changes
    the learning rate, such as ReduceLROnPlateau) is accepted, as in Keras,
    and scales z's steps, but the average keeps the weight 1/t for every
    step (Keras's choice; the paper weights step t by lr_t^2 / sum_i lr_i^2),
    so steps taken with a small learning rate (warmup, a decayed schedule)
    count as much as the others. Weight decay, as in Keras, decays the model
    weight y by ``learning_rate * weight_decay`` before the step (the
    learning rate without warmup), which the average absorbs; the paper adds
    ``lr_t * weight_decay * y`` to z's step.
"""


@keras.saving.register_keras_serializable(package="kerasopt")
class ScheduleFreeAdamW(ScheduleFreeBase, keras.optimizers.ScheduleFreeAdamW):
    """Schedule-Free AdamW (Defazio et al., "The Road Less Scheduled", NeurIPS
    2024, arXiv:2405.15682, Algorithm 1), as Keras 3.15 has it.

    A drop-in replacement for ``keras.optimizers.ScheduleFreeAdamW``: same
    arguments, defaults, slot variables (``momentum`` = z, initialized to the
    weights; ``velocity``) and numbers. The model's weight is y. With
    ``t = iterations + 1`` and ``lr_t = learning_rate * min(1, t / warmup_steps)``
    (``lr_t = learning_rate`` when ``warmup_steps == 0``), each variable is
    updated by one fused op::

        y   = y - y * weight_decay * learning_rate       # when weight_decay is set
        v   = v + (g^2 - v) * (1 - beta_2)
        z'  = z - lr_t * g / (sqrt(v / (1 - beta_2^t)) + epsilon)
        x   = (y - (1 - beta_1) z*) / beta_1             # z* = z' (default) or z
        x   = (1 - 1/t) x + (1/t) z'
        y   = (1 - beta_1) z' + beta_1 x;   z = z'

    Unlike Keras, z is initialized to the weights also when the optimizer is
    built inside a ``tf.function`` (Keras's assign then runs in the traced
    step and z starts at 0).
    """ + _RULE_SWITCH_SCHEDULES_AND_EVALUATION + """
    Args:
        learning_rate: float, schedule or callable. Defaults to 0.0025.
        beta_1: interpolation between z and x (the paper's beta), in (0, 1].
            Defaults to 0.9.
        beta_2: decay of the second-moment estimate, in [0, 1). Defaults to 0.999.
        epsilon: added to the bias-corrected sqrt(v), >= 0. Defaults to 1e-8.
        warmup_steps: steps of linear learning-rate warmup, an integer >= 0.
            Defaults to 0.
        interpolate: the paper's rule (True) or Keras 3.15's (False). Defaults
            to False, Keras's numbers.
        slot_dtype: None (slots take the variable's dtype, as in Keras) or
            "float32" for bfloat16/float16 variables.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
        ema_momentum, ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``.
    """

    kernel_name = "ScheduleFreeAdamW"
    interpolate_default = False

    def __init__(
        self,
        learning_rate=0.0025,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        warmup_steps=0,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name=None,
        **kwargs,
    ):
        super().__init__(
            learning_rate=check_learning_rate(learning_rate),
            name=name,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            **kwargs,
        )
        self.beta_1 = check_beta_1(beta_1)
        self.beta_2 = check_hyperparameter("beta_2", beta_2, 0.0, 1.0)
        self.epsilon = check_hyperparameter("epsilon", epsilon, low=0.0)
        self.warmup_steps = check_warmup_steps(warmup_steps)


@keras.saving.register_keras_serializable(package="kerasopt")
class ScheduleFreeSGD(ScheduleFreeBase):
    """Schedule-Free SGD (Defazio et al., NeurIPS 2024, arXiv:2405.15682):
    ``ScheduleFreeAdamW``'s rule with z's step ``lr_t * g`` (no second moment).

    Keras 3.15 has no ScheduleFreeSGD. This one takes the arguments of the
    class proposed to Keras (keras-team/keras#23353, open: ``learning_rate``
    0.0025, ``beta_1`` 0.9, ``warmup_steps`` 0) and runs the rule of
    kerasopt's ScheduleFreeAdamW: one slot ``momentum`` (z), the weight y, x
    recovered from them, the average weighted 1/t, the decay on y; but it
    interpolates by default (``interpolate=True``, the paper's rule; Keras
    3.15's AdamW does not, see below). (The proposal also stores x, weights
    the average by lr_t^2, adds the decay to the gradient and leaves x in the
    model after ``fit``.) With ``t = iterations + 1`` and ``lr_t`` as in
    ScheduleFreeAdamW::

        y   = y - y * weight_decay * learning_rate       # when weight_decay is set
        z'  = z - lr_t * g
        x   = (y - (1 - beta_1) z*) / beta_1             # z* = z (default) or z'
        x   = (1 - 1/t) x + (1/t) z'
        y   = (1 - beta_1) z' + beta_1 x;   z = z'
    """ + _RULE_SWITCH_SCHEDULES_AND_EVALUATION + """
    Args:
        learning_rate: float, schedule or callable. Defaults to 0.0025 (as
            proposed to Keras; SGD usually wants much larger values, the
            paper's reference implementation defaults to 1.0).
        beta_1: interpolation between z and x, in (0, 1]. Defaults to 0.9.
        warmup_steps: steps of linear learning-rate warmup, an integer >= 0.
            Defaults to 0.
        interpolate: the paper's rule (True) or Keras 3.15's AdamW's (False).
            Defaults to True.
        slot_dtype: None or "float32" (see ScheduleFreeAdamW).
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
        ema_momentum, ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``.
    """

    kernel_name = "ScheduleFreeSGD"
    uses_second_moment = False

    def __init__(
        self,
        learning_rate=0.0025,
        beta_1=0.9,
        warmup_steps=0,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name=None,
        **kwargs,
    ):
        super().__init__(
            learning_rate=check_learning_rate(learning_rate),
            name=name,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            **kwargs,
        )
        self.beta_1 = check_beta_1(beta_1)
        self.warmup_steps = check_warmup_steps(warmup_steps)
