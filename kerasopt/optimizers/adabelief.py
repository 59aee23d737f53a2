"""kerasopt.AdaBelief: AdaBelief (and its AMSGrad form), one fused op per variable.

The math and its declaration (from which its ops are built): cc/kernels/adabelief.h.
The fallback: kerasopt/fallback/adabelief.py.
"""

import keras

from kerasopt.fallback import adabelief as adabelief_fallback
from kerasopt.optimizers.fused import FusedOptimizer, check_hyperparameter, check_learning_rate


@keras.saving.register_keras_serializable(package="kerasopt")
class AdaBelief(FusedOptimizer):
    """AdaBelief (Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the
    Belief in Observed Gradients", NeurIPS 2020, arXiv:2010.07468, Algorithm 2).

    Adam with the second moment of the gradient's deviation from its running
    mean, ``(g - m)^2``, in place of ``g^2``: a gradient close to its
    prediction ``m`` (a "belief" confirmed) gets a large step. With
    ``t = iterations + 1``::

        m = beta_1 * m + (1 - beta_1) * g
        s = beta_2 * s + (1 - beta_2) * (g - m)^2 + epsilon
        s = max(s, s_previous)                          # amsgrad only
        m_hat = m / (1 - beta_1^t);  s_hat = s / (1 - beta_2^t)
        w = w - learning_rate * m_hat / (sqrt(s_hat) + epsilon)

    ``epsilon`` sits where the paper's Algorithm 2 puts it: added to ``s`` at
    every step and to ``sqrt(s_hat)``. ``amsgrad`` is the paper's form
    (``s_t <- max(s_t, s_{t-1})``, no extra slot); the authors' PyTorch code
    instead keeps a separate running maximum (so does TensorFlow Addons).

    ``rectify`` (the authors' and TensorFlow Addons' option) applies RAdam's
    rectification (:class:`kerasopt.RAdam`) to the same ``m`` and ``s``:
    where ``rho_t > 4`` and ``rho_t >= sma_threshold`` the step above is
    multiplied by ``r_t``; before that it is momentum SGD,
    ``w = w - learning_rate * m_hat``.

    Weight decay: Keras's ``weight_decay`` argument is decoupled, applied
    before the update as ``w = w - learning_rate * weight_decay * w``, which is
    exactly the authors' decoupled weight decay (``weight_decouple=True``,
    AdamW-style), so it is reused as is (``exclude_from_weight_decay`` works).

    Slots: ``momentum`` and ``belief`` (``s``). The scalars that depend only
    on ``t`` are computed in float64 and rounded once; 16-bit variables are
    updated in float32 arithmetic and rounded once.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        beta_1: decay of the first moment, in [0, 1). Defaults to 0.9.
        beta_2: decay of the belief ``s``, in [0, 1). Defaults to 0.999.
        epsilon: >= 0. Defaults to 1e-16, the authors' default (their
            README: AdaBelief's 1e-16 plays the role of Adam's 1e-8, since it
            enters ``s`` before the square root).
        amsgrad: keep ``s`` non-decreasing (the paper's AMSGrad form).
            Defaults to False.
        rectify: RAdam's rectification (above). Defaults to False
            (TensorFlow Addons: True).
        sma_threshold: with ``rectify``, the rectified step also needs
            ``rho_t >= sma_threshold``, >= 0. Defaults to 4.0 (the RAdam
            paper's ``rho_t > 4`` alone; TensorFlow Addons: 5.0).
        slot_dtype: None (slots take the variable's dtype, as in Keras) or
            "float32": float32 slots for bfloat16/float16 variables, so only
            the weight is rounded to 16 bits. See
            docs/slot-dtype.md.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
        ema_momentum, ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``.
    """

    kernel_name = "AdaBelief"
    fuses_step_features = True  # element-wise: see step_features.py

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-16,
        amsgrad=False,
        rectify=False,
        sma_threshold=4.0,
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
        self.rectify = bool(rectify)
        self.sma_threshold = check_hyperparameter("sma_threshold", sma_threshold, low=0.0)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._beliefs = self.add_optimizer_variables(
            var_list, ["momentum", "belief"]
        )

    def slots_for(self, variable):
        i = self._get_variable_index(variable)
        return [self._momentums[i], self._beliefs[i]]

    def _hyperparameters(self):
        return dict(beta_1=self.hyperparameter(self.beta_1),
                    beta_2=self.hyperparameter(self.beta_2),
                    epsilon=self.hyperparameter(self.epsilon),
                    sma_threshold=self.hyperparameter(self.sma_threshold))

    def kernel_hyperparameters(self, variable):
        return dict(self._hyperparameters(), amsgrad=self.amsgrad, rectify=self.rectify)

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        adabelief_fallback.apply_adabelief(
            variable, gradient, *slots, learning_rate=learning_rate, step=step,
            amsgrad=self.amsgrad, rectify=self.rectify, **self._hyperparameters(),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "amsgrad": self.amsgrad,
                "rectify": self.rectify,
                "sma_threshold": self.sma_threshold,
            }
        )
        return config
