"""kerasopt.NovoGrad: NovoGrad, one fused op per variable, the layer-wise
second moment computed inside the op.

The math: cc/kernels/novograd.h. The driver (||g|| over the variable, then the
update): cc/cpu/apply_layerwise.h. Its ops are built from its declaration in
cc/kernels/novograd.h. The fallback: kerasopt/fallback/novograd.py.
"""

import keras

from kerasopt.fallback import novograd as novograd_fallback
from kerasopt.optimizers.fused import FusedOptimizer, check_hyperparameter, check_learning_rate


@keras.saving.register_keras_serializable(package="kerasopt")
class NovoGrad(FusedOptimizer):
    """NovoGrad (Ginsburg et al., "Stochastic Gradient Methods with Layer-wise
    Adaptive Moments for Training of Deep Networks", arXiv:1905.11286,
    Algorithm 1), each variable being one "layer".

    The second moment is ONE scalar per variable, from the norm of the whole
    gradient of that variable; the gradient is normalized by it before it
    enters the momentum, and weight decay is added there too. With
    ``t = iterations + 1`` and ``||g||`` the norm over the whole variable::

        v = ||g||^2                                    # t == 1
        v = beta_2 * v + (1 - beta_2) * ||g||^2        # t > 1
        m = beta_1 * m + (g / (sqrt(v) + epsilon) + weight_decay * w)
        w = w - learning_rate * m

    With ``grad_averaging=True`` the bracket is multiplied by ``1 - beta_1``
    (as in NVIDIA's implementations). With ``amsgrad=True`` (TensorFlow
    Addons' option) a running maximum ``v_hat = max(v_hat, v)``, one more
    value per variable (slot ``velocity_hat``, shape ``()``), replaces ``v``
    in the denominator: ``sqrt(v_hat) + epsilon``. The op computes ``||g||^2`` itself, in
    float64 and in a fixed block order, so the result does not depend on the
    number of threads.

    ``weight_decay`` is the paper's ``d``: it is added to the normalized
    gradient INSIDE the momentum, which is what NovoGrad means by decoupled
    weight decay. It replaces Keras's generic ``weight_decay`` (which would
    subtract ``learning_rate * weight_decay * w`` before the step): that one is
    not applied, so the argument keeps its Keras name and config key with the
    paper's meaning. ``exclude_from_weight_decay`` is honoured (excluded
    variables get ``d = 0``).

    Slots: ``momentum`` (the variable's shape) and ``velocity`` (shape ``()``,
    in the variable's dtype: with float16 variables ``||g||^2`` overflows above
    65504, so prefer float32 variables, e.g. Keras's mixed-precision policies).
    16-bit variables are updated in float32 arithmetic and rounded once.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        beta_1: momentum, in [0, 1). Defaults to 0.9.
        beta_2: decay of the layer-wise second moment, in [0, 1). Defaults to
            0.999.
        epsilon: added to sqrt(v), >= 0. Defaults to 1e-7.
        weight_decay: the paper's ``d`` (see above), None or >= 0. Defaults to
            None (no decay).
        grad_averaging: scale the new term by ``1 - beta_1``. Defaults to False
            (the paper's Algorithm 1). At every step, the first included
            (TensorFlow Addons skips it at the first step: see
            docs/tensorflow-addons.md).
        amsgrad: use the running maximum of ``v`` (above). Defaults to False.
        clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``.

    The defaults for the betas and epsilon are TensorFlow Addons' NovoGrad's;
    the paper tunes them per task.
    """

    kernel_name = "NovoGrad"
    supports_slot_dtype = False  # its layer-wise driver (apply_layerwise.h) takes slots of the variable's dtype

    @property
    def per_variable_slots(self):
        return 2 if self.amsgrad else 1  # velocity (and velocity_hat) have shape ()

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        weight_decay=None,
        grad_averaging=False,
        amsgrad=False,
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
        if weight_decay is not None:
            check_hyperparameter("weight_decay", weight_decay, low=0.0)
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
        self.grad_averaging = bool(grad_averaging)
        self.amsgrad = bool(amsgrad)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities, self._velocity_hats = [], [], []
        for variable in var_list:
            if self._overwrite_variable_with_gradient(variable):
                self._momentums.append(None)
                self._velocities.append(None)
                self._velocity_hats.append(None)
                continue
            self._momentums.append(self.add_variable_from_reference(variable, "momentum"))
            prefix = str(variable.path if hasattr(variable, "path") else variable.name)
            prefix = prefix.replace('/', '_').replace(':', '_')
            self._velocities.append(self.add_variable(
                shape=(), dtype=variable.dtype, name=f"{prefix}_velocity"))
            self._velocity_hats.append(self.add_variable(
                shape=(), dtype=variable.dtype, name=f"{prefix}_velocity_hat")
                if self.amsgrad else None)

    def slots_for(self, variable):
        i = self._get_variable_index(variable)
        slots = [self._momentums[i], self._velocities[i]]
        if self.amsgrad:
            slots.append(self._velocity_hats[i])
        return slots

    def _apply_weight_decay(self, variables):
        # The paper's decay is part of the momentum, inside the fused update.
        return

    def _decay_for(self, variable) -> float:
        if self.weight_decay is None or not self._use_weight_decay(variable):
            return 0.0
        return self.hyperparameter(self.weight_decay)

    def _hyperparameters(self, variable):
        return dict(beta_1=self.hyperparameter(self.beta_1),
                    beta_2=self.hyperparameter(self.beta_2),
                    epsilon=self.hyperparameter(self.epsilon),
                    weight_decay=self._decay_for(variable))

    def kernel_hyperparameters(self, variable):
        return dict(self._hyperparameters(variable), grad_averaging=self.grad_averaging,
                    amsgrad=self.amsgrad)

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        novograd_fallback.apply_novograd(
            variable, gradient, *slots, learning_rate=learning_rate, step=step,
            grad_averaging=self.grad_averaging, amsgrad=self.amsgrad,
            **self._hyperparameters(variable),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "grad_averaging": self.grad_averaging,
                "amsgrad": self.amsgrad,
            }
        )
        return config
