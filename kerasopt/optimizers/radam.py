"""kerasopt.RAdam: Rectified Adam, one fused op per variable.

The math and its declaration (from which its ops are built): cc/kernels/radam.h.
The fallback: kerasopt/fallback/radam.py.
"""

import numbers

import keras

from kerasopt.fallback import radam as radam_fallback
from kerasopt.optimizers.fused import (FusedOptimizer, check_constant, check_hyperparameter,
                                       check_learning_rate)


def check_total_steps(total_steps):
    """TensorFlow Addons' `total_steps`: an integer >= 0 (0: no warmup). An
    integral float is taken too (TFA's RectifiedAdam saves it as a float)."""
    check_constant("total_steps", total_steps,
                   "`total_steps` must be a Python integer, not a variable or tensor "
                   "(it decides whether the warmup runs). Received: total_steps={value}")
    if (isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Real)
            or not float(total_steps).is_integer() or total_steps < 0):
        raise ValueError(f"`total_steps` must be an integer >= 0 (0: no warmup), "
                         f"got {total_steps!r}")
    return int(total_steps)


@keras.saving.register_keras_serializable(package="kerasopt")
class RAdam(FusedOptimizer):
    """RAdam (Liu et al., "On the Variance of the Adaptive Learning Rate and
    Beyond", ICLR 2020, arXiv:1908.03265, Algorithm 2).

    Adam whose adaptive learning rate is switched on only once its variance is
    tractable, and then scaled by the rectification term ``r_t``; before that
    the update is SGD with bias-corrected momentum. With ``t = iterations + 1``::

        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g^2
        rho_inf = 2 / (1 - beta_2) - 1
        rho_t = rho_inf - 2 * t * beta_2^t / (1 - beta_2^t)
        if rho_t > 4:
            r_t = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t))
            w = w - learning_rate * r_t * sqrt(1 - beta_2^t) / (1 - beta_1^t)
                    * m / (sqrt(v) + epsilon)
        else:
            w = w - learning_rate * m / (1 - beta_1^t)

    The default threshold is the paper's (``rho_t > 4``; PyTorch uses 5,
    TensorFlow Addons 5 by default): ``sma_threshold`` raises it (the
    rectified step needs ``rho_t > 4`` and ``rho_t >= sma_threshold``). With
    ``beta_2 = 0.999`` the first four steps are momentum SGD (five with
    ``sma_threshold=5``).

    TensorFlow Addons' ``RectifiedAdam`` options (docs/tensorflow-addons.md):
    ``amsgrad`` keeps ``v_hat = max(v_hat, v)`` and uses it in place of ``v``
    in the rectified step; ``total_steps > 0`` replaces the learning rate by
    TFA's warmup and linear decay, with ``warmup = total_steps *
    warmup_proportion`` and ``decay = max(total_steps - warmup, 1)``::

        lr_t = lr * t / warmup                                      # t <= warmup
        lr_t = lr + (min_lr - lr) / decay * min(t - warmup, decay)  # after

    where ``lr`` is the (possibly scheduled) learning rate of the step.
    TFA adds its ``epsilon`` to ``sqrt(v / (1 - beta_2^t))``, kerasopt to
    ``sqrt(v)`` (Keras's Adam): the same step for ``epsilon``
    ``sqrt(1 - beta_2^t)`` times smaller. The paper's adaptive term ``sqrt((1 - beta_2^t) / v)`` has
    no epsilon; here ``epsilon`` is added to ``sqrt(v)`` as in Keras's Adam,
    so a rectified step is ``r_t`` times Adam's step from the same ``m`` and
    ``v``. Everything that depends only on ``t`` (``rho_t``, ``r_t``, the
    branch, the step size) is computed in float64 and rounded once; 16-bit
    variables are updated in float32 arithmetic and rounded once.

    Slots: ``momentum`` and ``velocity``, as Keras's Adam.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        beta_1: decay of the first moment, in [0, 1). Defaults to 0.9.
        beta_2: decay of the second moment, in [0, 1). Defaults to 0.999.
            (For ``beta_2 <= 0.6``, ``rho_inf <= 4`` and the rule stays
            momentum SGD.)
        epsilon: added to sqrt(v), >= 0. Defaults to 1e-7.
        amsgrad: use the running maximum ``v_hat`` of ``v`` (an extra slot,
            ``velocity_hat``). Defaults to False.
        sma_threshold: the rectified step also needs ``rho_t >=
            sma_threshold``, >= 0. Defaults to 4.0 (the paper's rule alone;
            TensorFlow Addons: 5.0).
        total_steps: an integer >= 0; > 0 turns on TFA's warmup and decay
            of the learning rate (above). Defaults to 0 (off).
        warmup_proportion: the warmup's share of ``total_steps``, in [0, 1].
            Defaults to 0.1.
        min_lr: the learning rate at ``total_steps``, >= 0. Defaults to 0.0.
        slot_dtype: None (slots take the variable's dtype, as in Keras) or
            "float32": float32 slots for bfloat16/float16 variables, so only
            the weight is rounded to 16 bits. See
            docs/slot-dtype.md.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
        ema_momentum, ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``
        (``weight_decay`` is Keras's decoupled decay, applied before the step).
    """

    kernel_name = "RAdam"
    fuses_step_features = True  # element-wise: see step_features.py

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        sma_threshold=4.0,
        total_steps=0,
        warmup_proportion=0.1,
        min_lr=0.0,
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
        self.beta_1 = check_hyperparameter("beta_1", beta_1, 0.0, 1.0)
        self.beta_2 = check_hyperparameter("beta_2", beta_2, 0.0, 1.0)
        self.epsilon = check_hyperparameter("epsilon", epsilon, low=0.0)
        self.amsgrad = bool(amsgrad)
        self.sma_threshold = check_hyperparameter("sma_threshold", sma_threshold, low=0.0)
        self.total_steps = check_total_steps(total_steps)
        self.warmup_proportion = check_hyperparameter(
            "warmup_proportion", warmup_proportion, 0.0, 1.0, high_inclusive=True)
        self.min_lr = check_hyperparameter("min_lr", min_lr, low=0.0)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )
        if self.amsgrad:
            self._velocity_hats = self.add_optimizer_variables(var_list, "velocity_hat")

    def slots_for(self, variable):
        i = self._get_variable_index(variable)
        slots = [self._momentums[i], self._velocities[i]]
        if self.amsgrad:
            slots.append(self._velocity_hats[i])
        return slots

    def _hyperparameters(self):
        return dict(beta_1=self.hyperparameter(self.beta_1),
                    beta_2=self.hyperparameter(self.beta_2),
                    epsilon=self.hyperparameter(self.epsilon),
                    sma_threshold=self.hyperparameter(self.sma_threshold),
                    total_steps=float(self.total_steps),
                    warmup_proportion=self.hyperparameter(self.warmup_proportion),
                    min_lr=self.hyperparameter(self.min_lr))

    def kernel_hyperparameters(self, variable):
        return dict(self._hyperparameters(), amsgrad=self.amsgrad)

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        radam_fallback.apply_radam(
            variable, gradient, *slots, learning_rate=learning_rate, step=step,
            amsgrad=self.amsgrad, **self._hyperparameters(),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "amsgrad": self.amsgrad,
                "sma_threshold": self.sma_threshold,
                "total_steps": self.total_steps,
                "warmup_proportion": self.warmup_proportion,
                "min_lr": self.min_lr,
            }
        )
        return config
