"""kerasopt.RAdam: Rectified Adam, one fused op per variable.

The math and its declaration (from which its ops are built): cc/kernels/radam.h.
The fallback: kerasopt/fallback/radam.py.
"""

import keras

from kerasopt.fallback import radam as radam_fallback
from kerasopt.optimizers.fused import FusedOptimizer, check_hyperparameter, check_learning_rate


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

    The threshold is the paper's (``rho_t > 4``; PyTorch uses 5, TensorFlow
    Addons 5 by default). With ``beta_2 = 0.999`` the first four steps are
    momentum SGD. The paper's adaptive term ``sqrt((1 - beta_2^t) / v)`` has
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

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )

    def slots_for(self, variable):
        i = self._get_variable_index(variable)
        return [self._momentums[i], self._velocities[i]]

    def _hyperparameters(self):
        return dict(beta_1=self.hyperparameter(self.beta_1),
                    beta_2=self.hyperparameter(self.beta_2),
                    epsilon=self.hyperparameter(self.epsilon))

    def kernel_hyperparameters(self, variable):
        return self._hyperparameters()

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        radam_fallback.apply_radam(
            variable, gradient, *slots, learning_rate=learning_rate, step=step,
            **self._hyperparameters(),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
            }
        )
        return config
