"""kerasopt.RMSprop: Keras's RMSprop (centered, momentum), one fused op per variable.

The math and its declaration (from which its ops are built): cc/kernels/rmsprop.h.
The fallback: kerasopt/fallback/rmsprop.py.
"""

import keras

from kerasopt.fallback import rmsprop as rmsprop_fallback
from kerasopt.optimizers.fused import (
    FusedOptimizer, check_constant, check_hyperparameter, check_learning_rate)


@keras.saving.register_keras_serializable(package="kerasopt")
class RMSprop(FusedOptimizer, keras.optimizers.RMSprop):
    """RMSprop (Tieleman & Hinton, 2012), with the centered form of Graves (2013).

    A drop-in replacement for ``keras.optimizers.RMSprop``: same arguments,
    defaults, slot variables and numbers (float32 results match bit for bit).
    Each variable is updated by one fused C++ op::

        v = rho * v + (1 - rho) * g^2
        a = rho * a + (1 - rho) * g                  # centered only
        d = v - a^2 + epsilon   if centered   else   v + epsilon
        inc = learning_rate * g / sqrt(d)
        m = momentum * m + inc;  w = w - m           # momentum > 0
        w = w - inc                                  # momentum == 0

    References: Tieleman & Hinton, "Lecture 6.5 - rmsprop", COURSERA: Neural
    Networks for Machine Learning (2012); Graves, "Generating Sequences With
    Recurrent Neural Networks" (2013), Section 4.

    Where Keras deviates from the papers (kerasopt follows Keras): the lecture
    divides by ``sqrt(v)`` with no epsilon, Keras adds ``epsilon`` inside the
    root; the lecture has no momentum, Keras's momentum accumulates the
    normalised step as Graves's does. The ``momentum`` slot exists only when
    ``momentum > 0`` and ``average_gradient`` only when ``centered``.
    16-bit variables are updated in float32 arithmetic and rounded once.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        rho: decay of the mean square (and mean) of the gradient, in [0, 1).
            Defaults to 0.9.
        momentum: in [0, 1]. Defaults to 0.0 (no momentum slot).
        epsilon: added to the mean square inside the root, >= 0. Defaults to 1e-7.
        centered: divide by the estimated standard deviation of the gradient
            rather than its root mean square (Graves, 2013). Defaults to False.
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

    kernel_name = "RMSprop"
    fuses_step_features = True  # element-wise: see step_features.py
    constant_hyperparameters = ("momentum",)
    supports_lazy = True

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-7,
        centered=False,
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
        check_constant("momentum", momentum)  # it decides whether the momentum slot exists
        self.momentum = check_hyperparameter("momentum", momentum, 0.0, 1.0, high_inclusive=True)
        self.epsilon = check_hyperparameter("epsilon", epsilon, low=0.0)
        self.centered = bool(centered)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._velocities = self.add_optimizer_variables(var_list, "velocity")
        self._momentums = []
        if self.momentum > 0:
            self._momentums = self.add_optimizer_variables(var_list, "momentum")
        self._average_gradients = []
        if self.centered:
            self._average_gradients = self.add_optimizer_variables(var_list, "average_gradient")

    def slots_for(self, variable):
        i = self._get_variable_index(variable)
        slots = [self._velocities[i]]
        if self.momentum > 0:
            slots.append(self._momentums[i])
        if self.centered:
            slots.append(self._average_gradients[i])
        return slots

    def _hyperparameters(self):
        return dict(rho=self.hyperparameter(self.rho), momentum=float(self.momentum),
                    epsilon=self.hyperparameter(self.epsilon))

    def kernel_hyperparameters(self, variable):
        return dict(self._hyperparameters(), centered=self.centered)

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        slots = list(slots)
        velocity = slots.pop(0)
        momentum_slot = slots.pop(0) if self.momentum > 0 else None
        average_gradient = slots.pop(0) if self.centered else None
        rmsprop_fallback.apply_rmsprop(
            variable, gradient, velocity, momentum_slot, average_gradient,
            learning_rate=learning_rate, centered=self.centered, **self._hyperparameters(),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rho": self.rho,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "centered": self.centered,
            }
        )
        return config
