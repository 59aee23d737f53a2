"""kerasopt.Nadam: Keras's Nadam, one fused op per variable.

The math and its declaration (from which its ops are built): cc/kernels/nadam.h.
The fallback: kerasopt/fallback/nadam.py.
"""

import keras
import tensorflow as tf

from kerasopt.fallback import constant
from kerasopt.fallback import nadam as nadam_fallback
from kerasopt.optimizers.fused import FusedOptimizer, check_hyperparameter, check_learning_rate


@keras.saving.register_keras_serializable(package="kerasopt")
class Nadam(FusedOptimizer, keras.optimizers.Nadam):
    """Nadam: Adam with Nesterov momentum (Dozat, 2016).

    A drop-in replacement for ``keras.optimizers.Nadam``: same arguments,
    defaults, slot variables (``momentum``, ``velocity``), scalar state
    (``u_product``) and numbers (float32 results match bit for bit).

    With ``t = iterations + 1`` and the momentum schedule
    ``mu_t = beta_1 * (1 - 0.5 * 0.96^t)``, once per step (not per variable)
    the scalar state is advanced, ``u_product = u_product * mu_t`` (so it holds
    ``mu_1 * ... * mu_t``), and then for each variable::

        m = m + (g - m) * (1 - beta_1)
        v = v + (g^2 - v) * (1 - beta_2)
        m_hat = mu_{t+1} * m / (1 - u_product * mu_{t+1}) + (1 - mu_t) * g / (1 - u_product)
        v_hat = v / (1 - beta_2^t)
        w = w - (m_hat * learning_rate) / (sqrt(v_hat) + epsilon)

    ``u_product`` is an optimizer variable: it is saved and restored with the
    optimizer, like ``iterations``.

    Where Keras deviates from the paper (followed here): Dozat's schedule is
    ``beta_1 * (1 - 0.5 * 0.96^(t/250))``; Keras 3 uses ``0.96^t``.
    ``epsilon`` is added to ``sqrt(v_hat)`` (Adam's epsilon-hat convention).
    16-bit variables are updated in float32 arithmetic and rounded once.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        beta_1: decay of the first-moment estimate, in [0, 1). Defaults to 0.9.
        beta_2: decay of the second-moment estimate, in [0, 1). Defaults to 0.999.
        epsilon: added to sqrt(v_hat), >= 0. Defaults to 1e-7.
        lazy: with a sparse (``tf.IndexedSlices``) gradient, e.g. from an
            ``Embedding``, update only the rows it names, in the variable and
            its slots, with the momentum schedule of the global step (as TensorFlow Addons' LazyAdam). Defaults to
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

    kernel_name = "Nadam"
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
        self.beta_2 = check_hyperparameter("beta_2", beta_2, 0.0, 1.0)
        self.epsilon = check_hyperparameter("epsilon", epsilon, low=0.0)

    _u_product_now = None  # (u_product, as float64) after this step's advance, during a step

    def build(self, var_list):
        if self.built:
            return
        # As Keras: the scalar state takes the dtype of the first variable.
        dtype = var_list[0].dtype if var_list else keras.backend.floatx()
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )
        self._u_product = keras.Variable(1.0, dtype=dtype)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # Advance u_product once per step, before the per-variable updates.
        u_product = tf.convert_to_tensor(self._u_product)
        c = u_product.dtype
        t = tf.cast(self.iterations + 1, c)
        mu_t = 1.0 - 0.5 * tf.pow(tf.constant(0.96, c), t)
        u_product = u_product * constant(self.hyperparameter(self.beta_1), c) * mu_t
        self._u_product.assign(u_product)
        # Shared by every variable of the step (the kernel takes it as float64).
        self._u_product_now = (u_product, tf.cast(u_product, tf.float64))
        try:
            super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._u_product_now = None

    def _current_u_product(self):
        """(u_product, u_product as float64) for this step."""
        if self._u_product_now is not None:
            return self._u_product_now
        u_product = tf.convert_to_tensor(self._u_product)  # update_step called on its own
        return u_product, tf.cast(u_product, tf.float64)

    def slots_for(self, variable):
        i = self._get_variable_index(variable)
        return [self._momentums[i], self._velocities[i]]

    def _hyperparameters(self):
        return dict(beta_1=self.hyperparameter(self.beta_1),
                    beta_2=self.hyperparameter(self.beta_2),
                    epsilon=self.hyperparameter(self.epsilon))

    def kernel_hyperparameters(self, variable):
        return dict(self._hyperparameters(), u_product=self._current_u_product()[1])

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        nadam_fallback.apply_nadam(
            variable, gradient, *slots,
            learning_rate=learning_rate, u_product=self._current_u_product()[0],
            step=step, **self._hyperparameters(),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
