"""kerasopt.SGD: Keras's SGD with (Nesterov) momentum, one fused op per variable.

The math and its declaration (from which its ops are built): cc/kernels/sgd.h.
The fallback: kerasopt/fallback/sgd.py.
"""

import keras

from kerasopt.fallback import sgd as sgd_fallback
from kerasopt.optimizers.fused import (
    FusedOptimizer, check_constant, check_hyperparameter, check_learning_rate)


@keras.saving.register_keras_serializable(package="kerasopt")
class SGD(FusedOptimizer, keras.optimizers.SGD):
    """Gradient descent with optional heavy-ball or Nesterov momentum.

    A drop-in replacement for ``keras.optimizers.SGD``: same arguments,
    defaults, slot variables and numbers (float32 results match bit for bit)::

        momentum == 0:  w = w - learning_rate * g
        otherwise:      m = momentum * m - learning_rate * g
                        w = w + m                                  (heavy ball, Polyak 1964)
                        w = w + momentum * m - learning_rate * g   (nesterov=True)

    The Nesterov form is the "look-ahead" reformulation of Sutskever et al.
    (2013) that Keras uses, applied with the freshly updated ``m``.
    16-bit variables are updated in float32 arithmetic and rounded once.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.01.
        momentum: float in [0, 1]. Defaults to 0 (no momentum slot is created).
        nesterov: use Nesterov momentum. Defaults to False.
        lazy: with momentum, apply a sparse (``tf.IndexedSlices``) gradient,
            e.g. from an ``Embedding``, to the rows it names only, in the
            variable and its momentum. Defaults to False: the gradient is
            densified and every row is updated, as in Keras. Without momentum
            sparse gradients always update only their rows (that is exact).
            See docs/sparse.md.
        slot_dtype: None (slots take the variable's dtype, as in Keras) or
            "float32": float32 slots for bfloat16/float16 variables, so only
            the weight is rounded to 16 bits. See
            docs/slot-dtype.md.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
        ema_momentum, ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``.
    """

    kernel_name = "SGD"
    fuses_step_features = True  # element-wise: see step_features.py
    constant_hyperparameters = ("momentum",)
    supports_lazy = True

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.0,
        nesterov=False,
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
        # Keras's check and words; the ints 0 and 1 are taken too. A variable is
        # refused, as Keras does: the momentum decides whether the slot exists.
        keras_momentum = "`momentum` must be a float between [0, 1]."
        check_constant("momentum", momentum, keras_momentum)
        self.momentum = float(check_hyperparameter("momentum", momentum, 0.0, 1.0,
                                                   high_inclusive=True,
                                                   keras_message=keras_momentum))
        self.nesterov = bool(nesterov)

    def sparse_rows_exact(self):
        return self.momentum == 0  # w -= lr * 0 leaves a row unchanged

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = []
        if self.momentum != 0:
            self.momentums = self.add_optimizer_variables(variables, "momentum")

    def slots_for(self, variable):
        if self.momentum == 0:
            return []
        return [self.momentums[self._get_variable_index(variable)]]

    def kernel_hyperparameters(self, variable):
        return dict(momentum=self.momentum, nesterov=self.nesterov)

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        sgd_fallback.apply_sgd(
            variable, gradient, slots[0] if slots else None,
            learning_rate=learning_rate, momentum=self.momentum, nesterov=self.nesterov,
        )

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config
