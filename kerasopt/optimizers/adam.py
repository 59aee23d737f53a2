"""kerasopt.Adam: Keras's Adam (and AMSGrad), one fused op per variable.

The math and its declaration (from which its ops are built): cc/kernels/adam.h.
The fallback: kerasopt/fallback/adam.py.
"""

import keras

from kerasopt.fallback import adam as adam_fallback
from kerasopt.optimizers.fused import FusedOptimizer, check_hyperparameter, check_learning_rate


@keras.saving.register_keras_serializable(package="kerasopt")
class Adam(FusedOptimizer, keras.optimizers.Adam):
    """Adam (Kingma & Ba, 2015), with the AMSGrad variant (Reddi et al., 2018).

    A drop-in replacement for ``keras.optimizers.Adam``: same arguments,
    defaults, slot variables and numbers (float32 results match bit for bit).
    Each variable is updated by one fused C++ op that reads the weight, the
    gradient and the slots once and writes them once.

    With ``t = iterations + 1``::

        alpha_t = learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t)
        m = m + (g - m) * (1 - beta_1)
        v = v + (g^2 - v) * (1 - beta_2)
        v_hat = max(v_hat, v)                 # amsgrad only; then v := v_hat
        w = w - alpha_t * m / (sqrt(v) + epsilon)

    This is the paper's "efficient" form (end of its Section 2), as in Keras, so
    ``epsilon`` is the paper's epsilon-hat, not the epsilon of Algorithm 1.
    16-bit variables are updated in float32 arithmetic and rounded once.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        beta_1: decay of the first-moment estimate, in [0, 1). Defaults to 0.9.
        beta_2: decay of the second-moment estimate, in [0, 1). Defaults to 0.999.
        epsilon: added to sqrt(v), >= 0. Defaults to 1e-7.
        amsgrad: use the running maximum of v (AMSGrad). Defaults to False.
        lazy: with a sparse (``tf.IndexedSlices``) gradient, e.g. from an
            ``Embedding``, update only the rows it names, in the variable and
            its slots, with the bias corrections of the global step (as TensorFlow Addons' LazyAdam). Defaults to
            False: the gradient is densified and every row is updated, as in
            Keras. See docs/sparse.md.
        slot_dtype: None (slots take the variable's dtype, as in Keras) or
            "float32": float32 slots for bfloat16/float16 variables, so only
            the weight is rounded to 16 bits. See
            docs/slot-dtype.md.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
        ema_momentum, ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``.
    """

    kernel_name = "Adam"
    fuses_step_features = True  # element-wise: see step_features.py
    supports_lazy = True

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
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
                    epsilon=self.hyperparameter(self.epsilon))

    def kernel_hyperparameters(self, variable):
        return dict(self._hyperparameters(), amsgrad=self.amsgrad)

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        adam_fallback.apply_adam(
            variable, gradient, *slots,
            learning_rate=learning_rate, step=step, amsgrad=self.amsgrad,
            **self._hyperparameters(),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "amsgrad": self.amsgrad,
            }
        )
        return config
