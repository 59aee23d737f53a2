"""kerasopt.Lion: Keras's Lion, one fused op per variable.

The math and its declaration (from which its ops are built): cc/kernels/lion.h.
The fallback: kerasopt/fallback/lion.py.
"""

import keras
import tensorflow as tf

from kerasopt.fallback import lion as lion_fallback
from kerasopt.optimizers.fused import FusedOptimizer, check_hyperparameter, check_learning_rate


@keras.saving.register_keras_serializable(package="kerasopt")
class Lion(FusedOptimizer, keras.optimizers.Lion):
    """Lion, sign momentum (Chen et al., 2023, "Symbolic Discovery of
    Optimization Algorithms").

    A drop-in replacement for ``keras.optimizers.Lion``: same arguments,
    defaults, slot variable (``momentum``) and numbers (float32 results match
    bit for bit)::

        w = w - learning_rate * sign(m * beta_1 + g * (1 - beta_1))
        m = m * beta_2 + g * (1 - beta_2)

    Where Keras deviates from the paper (followed here): the paper's
    Algorithm 2 includes decoupled weight decay in the update
    (``w -= lr * (sign(c) + lambda * w)``, after forming ``c``); Keras has no
    Lion-specific decay, and its generic ``weight_decay`` (``w -= w * wd * lr``
    before the update) plays that role. As in Keras, ``beta_1`` must be in
    (0, 1] (0 would make Lion signSGD). 16-bit variables are updated in
    float32 arithmetic and rounded once.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        beta_1: interpolation of momentum and gradient for the update, in
            (0, 1]. Defaults to 0.9.
        beta_2: decay of the momentum, in [0, 1]. Defaults to 0.99.
        lazy: with a sparse (``tf.IndexedSlices``) gradient, e.g. from an
            ``Embedding``, update only the rows it names, in the variable and
            its slots (as TensorFlow Addons' LazyAdam). Defaults to
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

    kernel_name = "Lion"
    fuses_step_features = True  # element-wise: see step_features.py
    supports_lazy = True

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.99,
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
        keras_beta_1 = ("Argument `beta_1` must be in the [0, 1] range. Otherwise, the "
                        "optimizer degenerates to SignSGD. Received: beta_1={value}.")
        check_hyperparameter("beta_1", beta_1, 0.0, 1.0, high_inclusive=True,
                             keras_message=keras_beta_1)
        if float(tf.convert_to_tensor(beta_1)) == 0.0:  # Keras refuses 0 too, in these words
            raise ValueError(keras_beta_1.format(value=beta_1))
        self.beta_1 = beta_1
        self.beta_2 = check_hyperparameter("beta_2", beta_2, 0.0, 1.0, high_inclusive=True)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum")

    def slots_for(self, variable):
        return [self._momentums[self._get_variable_index(variable)]]

    def kernel_hyperparameters(self, variable):
        return dict(beta_1=self.hyperparameter(self.beta_1),
                    beta_2=self.hyperparameter(self.beta_2))

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        lion_fallback.apply_lion(
            variable, gradient, *slots, learning_rate=learning_rate,
            beta_1=self.hyperparameter(self.beta_1), beta_2=self.hyperparameter(self.beta_2),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2})
        return config
