"""kerasopt.Adagrad: Keras's Adagrad, one fused op per variable.

The math and its declaration (from which its ops are built): cc/kernels/adagrad.h.
The fallback: kerasopt/fallback/adagrad.py.
"""

import keras

from kerasopt.fallback import adagrad as adagrad_fallback
from kerasopt.optimizers.fused import FusedOptimizer, check_hyperparameter, check_learning_rate


@keras.saving.register_keras_serializable(package="kerasopt")
class Adagrad(FusedOptimizer, keras.optimizers.Adagrad):
    """Adagrad (Duchi, Hazan & Singer, 2011), diagonal form.

    A drop-in replacement for ``keras.optimizers.Adagrad``: same arguments,
    defaults, slot variables and numbers (float32 results match bit for bit).
    Each variable is updated by one fused C++ op::

        acc = acc + g^2                  # acc starts at initial_accumulator_value
        w = w - learning_rate * g / sqrt(acc + epsilon)

    Reference: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online
    Learning and Stochastic Optimization", JMLR 12 (2011).

    Where Keras deviates from the paper (kerasopt follows Keras): the paper's
    diagonal update is ``w - eta * g / (delta + sqrt(sum g^2))``, with delta
    outside the root and the sum starting at 0; Keras puts ``epsilon`` inside
    the root and starts the sum at ``initial_accumulator_value``.
    16-bit variables are updated in float32 arithmetic and rounded once.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        initial_accumulator_value: starting value of the accumulators, >= 0.
            Defaults to 0.1.
        epsilon: added to the accumulator inside the root, >= 0. Defaults to 1e-7.
        lazy: accepted for symmetry; it changes nothing here. A sparse
            (``tf.IndexedSlices``) gradient always updates only the rows it
            names: with a zero gradient Adagrad leaves a row unchanged, so this
            is exactly the dense update. See docs/sparse.md.
        slot_dtype: None (slots take the variable's dtype, as in Keras) or
            "float32": float32 slots for bfloat16/float16 variables, so only
            the weight is rounded to 16 bits. See
            docs/slot-dtype.md.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
        ema_momentum, ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``.
    """

    kernel_name = "Adagrad"
    fuses_step_features = True  # element-wise: see step_features.py
    supports_lazy = True

    def __init__(
        self,
        learning_rate=0.001,
        initial_accumulator_value=0.1,
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
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )
        self.initial_accumulator_value = check_hyperparameter(
            "initial_accumulator_value", initial_accumulator_value, low=0.0)
        self.epsilon = check_hyperparameter("epsilon", epsilon, low=0.0)

    def sparse_rows_exact(self):
        # acc += 0 and w -= lr * 0 / sqrt(acc + eps) leave a row unchanged.
        return True

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        initializer = keras.initializers.Constant(self.initial_accumulator_value)
        self._accumulators = self.add_optimizer_variables(
            var_list, "accumulator", initializer=initializer
        )

    def slots_for(self, variable):
        return [self._accumulators[self._get_variable_index(variable)]]

    def kernel_hyperparameters(self, variable):
        return dict(epsilon=self.hyperparameter(self.epsilon))

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        adagrad_fallback.apply_adagrad(
            variable, gradient, slots[0],
            learning_rate=learning_rate, epsilon=self.hyperparameter(self.epsilon),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon,
            }
        )
        return config
