"""kerasopt.Adamax: Keras's Adamax, one fused op per variable.

The math and its declaration (from which its ops are built): cc/kernels/adamax.h.
The fallback: kerasopt/fallback/adamax.py.
"""

import keras

from kerasopt.fallback import adamax as adamax_fallback
from kerasopt.optimizers.fused import FusedOptimizer, check_hyperparameter, check_learning_rate


@keras.saving.register_keras_serializable(package="kerasopt")
class Adamax(FusedOptimizer, keras.optimizers.Adamax):
    """Adamax (Kingma & Ba, 2015, Section 7.1): Adam with the infinity norm.

    A drop-in replacement for ``keras.optimizers.Adamax``: same arguments,
    defaults, slot variables (``momentum``, ``norm``) and numbers (float32
    results match bit for bit). With ``t = iterations + 1``::

        m = m + (g - m) * (1 - beta_1)
        u = max(beta_2 * u, |g|)
        w = w - (learning_rate * m) / ((1 - beta_1^t) * (u + epsilon))

    Where Keras deviates from the paper (followed here): the paper's
    Algorithm 2 divides by ``u`` alone; Keras adds ``epsilon`` to it.
    16-bit variables are updated in float32 arithmetic and rounded once.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        beta_1: decay of the first-moment estimate, in [0, 1). Defaults to 0.9.
        beta_2: decay of the infinity norm, in [0, 1]. Defaults to 0.999.
        epsilon: added to u, >= 0. Defaults to 1e-7.
        lazy: with a sparse (``tf.IndexedSlices``) gradient, e.g. from an
            ``Embedding``, update only the rows it names, in the variable and
            its slots, with the bias correction of the global step (as TensorFlow Addons' LazyAdam). Defaults to
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

    kernel_name = "Adamax"
    fuses_step_features = True  # element-wise: see step_features.py
    supports_lazy = True

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
        self.beta_2 = check_hyperparameter("beta_2", beta_2, 0.0, 1.0, high_inclusive=True)
        self.epsilon = check_hyperparameter("epsilon", epsilon, low=0.0)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._u = self.add_optimizer_variables(var_list, ["momentum", "norm"])

    def slots_for(self, variable):
        i = self._get_variable_index(variable)
        return [self._m[i], self._u[i]]

    def _hyperparameters(self):
        return dict(beta_1=self.hyperparameter(self.beta_1),
                    beta_2=self.hyperparameter(self.beta_2),
                    epsilon=self.hyperparameter(self.epsilon))

    def kernel_hyperparameters(self, variable):
        return self._hyperparameters()

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        adamax_fallback.apply_adamax(
            variable, gradient, *slots,
            learning_rate=learning_rate, step=step, **self._hyperparameters(),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
