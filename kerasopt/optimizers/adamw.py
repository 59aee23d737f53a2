"""kerasopt.AdamW: Keras's AdamW, weight decay and Adam in one fused op per variable.

The math and its declaration (from which its ops are built): cc/kernels/adamw.h.
The fallback: kerasopt/fallback/adamw.py.
"""

import keras

from kerasopt.fallback import adamw as adamw_fallback
from kerasopt.optimizers.adam import Adam
from kerasopt.optimizers.fused import check_hyperparameter


@keras.saving.register_keras_serializable(package="kerasopt")
class AdamW(Adam, keras.optimizers.AdamW):
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    A drop-in replacement for ``keras.optimizers.AdamW``: same arguments,
    defaults, slot variables and numbers (float32 results match bit for bit).
    With ``t = iterations + 1``, for each variable::

        w = w - (w * weight_decay) * learning_rate   # skipped for excluded variables
        alpha_t = learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t)
        m = m + (g - m) * (1 - beta_1)
        v = v + (g^2 - v) * (1 - beta_2)
        v_hat = max(v_hat, v)                        # amsgrad only; then v := v_hat
        w = w - alpha_t * m / (sqrt(v) + epsilon)

    Keras applies the decay in a separate pass over all variables before the
    Adam updates (``Optimizer._apply_weight_decay``); here the decay is folded
    into the same fused op as the Adam step, in the same order (decay first,
    then Adam on the decayed weight), so the numbers are Keras's and each
    variable is still read and written once. ``exclude_from_weight_decay``
    works as in Keras (excluded variables get a decay of 0).

    Where Keras deviates from the paper (followed here): the paper's
    Algorithm 2 decays by ``eta_t * lambda * w`` with a schedule multiplier
    ``eta_t`` independent of Adam's step size, computed from the weight before
    the step; Keras scales the decay by the learning rate itself (so it
    follows learning-rate schedules) and applies it before the Adam step.
    ``epsilon`` is Adam's epsilon-hat. 16-bit variables are updated in float32
    arithmetic and rounded once.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        weight_decay: float >= 0 (not None). Defaults to 0.004.
        beta_1: decay of the first-moment estimate, in [0, 1). Defaults to 0.9.
        beta_2: decay of the second-moment estimate, in [0, 1). Defaults to 0.999.
        epsilon: added to sqrt(v), >= 0. Defaults to 1e-7.
        amsgrad: use the running maximum of v (AMSGrad). Defaults to False.
        lazy: with a sparse (``tf.IndexedSlices``) gradient, e.g. from an
            ``Embedding``, update only the rows it names, in the variable and
            its slots, with the bias corrections of the global step (as
            TensorFlow Addons' LazyAdam); the decoupled weight decay then
            applies to those rows only. Defaults to False: the gradient is
            densified and every row is updated, as in Keras. See
            docs/sparse.md.
        slot_dtype: None (slots take the variable's dtype, as in Keras) or
            "float32": float32 slots for bfloat16/float16 variables, so only
            the weight is rounded to 16 bits. See
            docs/slot-dtype.md.
        clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``.
    """

    kernel_name = "AdamW"
    supports_lazy = True

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=0.004,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
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
        if weight_decay is None:
            raise ValueError(
                "Argument `weight_decay` must be a float. Received: weight_decay=None"
            )
        check_hyperparameter("weight_decay", weight_decay, low=0.0)
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
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

    decays_in_rule = True

    def _apply_weight_decay(self, variables):
        # The decay is part of each variable's fused update (update_step).
        return

    def _decay_for(self, variable) -> float:
        return self.hyperparameter(self.weight_decay) if self._use_weight_decay(variable) else 0.0

    def kernel_hyperparameters(self, variable):
        return dict(self._hyperparameters(), weight_decay=self._decay_for(variable),
                    amsgrad=self.amsgrad)

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        adamw_fallback.apply_adamw(
            variable, gradient, *slots,
            learning_rate=learning_rate, weight_decay=self._decay_for(variable),
            step=step, amsgrad=self.amsgrad, **self._hyperparameters(),
        )
