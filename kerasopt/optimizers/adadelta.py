"""kerasopt.Adadelta: Keras's Adadelta, one fused op per variable.

The math and its declaration (from which its ops are built): cc/kernels/adadelta.h.
The fallback: kerasopt/fallback/adadelta.py.
"""

import keras

from kerasopt.fallback import adadelta as adadelta_fallback
from kerasopt.optimizers.fused import FusedOptimizer, check_hyperparameter, check_learning_rate


@keras.saving.register_keras_serializable(package="kerasopt")
class Adadelta(FusedOptimizer, keras.optimizers.Adadelta):
    """Adadelta (Zeiler, 2012), scaled by a learning rate as in Keras.

    A drop-in replacement for ``keras.optimizers.Adadelta``: same arguments,
    defaults, slot variables and numbers (float32 results match bit for bit).
    Each variable is updated by one fused C++ op::

        Eg  = rho * Eg + (1 - rho) * g^2                     # accumulated_grad
        dx  = -sqrt(Edx + epsilon) / sqrt(Eg + epsilon) * g  # with the previous Edx
        Edx = rho * Edx + (1 - rho) * dx^2                   # accumulated_delta_var
        w   = w + learning_rate * dx

    Reference: Zeiler, "ADADELTA: An Adaptive Learning Rate Method" (2012),
    Algorithm 1.

    Where Keras deviates from the paper (kerasopt follows Keras): the paper
    applies ``w = w + dx`` with no learning rate at all (doing without one is
    the point of the method); Keras multiplies ``dx`` by ``learning_rate``
    (0.001 by default), so only ``learning_rate=1.0`` is the paper's method.
    16-bit variables are updated in float32 arithmetic and rounded once.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        rho: decay rate of both accumulators, in [0, 1). Defaults to 0.95.
        epsilon: added inside both roots, >= 0. Defaults to 1e-7.
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

    kernel_name = "Adadelta"
    fuses_step_features = True  # element-wise: see step_features.py
    supports_lazy = True

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.95,
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
        self.rho = check_hyperparameter("rho", rho, 0.0, 1.0)
        self.epsilon = check_hyperparameter("epsilon", epsilon, low=0.0)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulated_grads, self._accumulated_delta_vars = self.add_optimizer_variables(
            var_list, ["accumulated_grad", "accumulated_delta_var"]
        )

    def slots_for(self, variable):
        i = self._get_variable_index(variable)
        return [self._accumulated_grads[i], self._accumulated_delta_vars[i]]

    def _hyperparameters(self):
        return dict(rho=self.hyperparameter(self.rho), epsilon=self.hyperparameter(self.epsilon))

    def kernel_hyperparameters(self, variable):
        return self._hyperparameters()

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        adadelta_fallback.apply_adadelta(
            variable, gradient, *slots,
            learning_rate=learning_rate, **self._hyperparameters(),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config
