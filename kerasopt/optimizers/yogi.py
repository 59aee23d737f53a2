"""kerasopt.Yogi: Yogi, one fused op per variable.

The math and its declaration (from which its ops are built): cc/kernels/yogi.h.
The fallback: kerasopt/fallback/yogi.py.
"""

import keras

from kerasopt.fallback import yogi as yogi_fallback
from kerasopt.optimizers.fused import FusedOptimizer, check_hyperparameter, check_learning_rate


@keras.saving.register_keras_serializable(package="kerasopt")
class Yogi(FusedOptimizer):
    """Yogi (Zaheer, Reddi, Sachan, Kale & Kumar, "Adaptive Methods for
    Nonconvex Optimization", NeurIPS 2018, Algorithm 2).

    Adam with an additive second-moment update that moves ``v`` towards
    ``g^2`` by at most ``(1 - beta_2) g^2`` per step, so the effective
    learning rate cannot grow abruptly::

        m = beta_1 * m + (1 - beta_1) * g
        v = v - (1 - beta_2) * sign(v - g^2) * g^2
        w = w - learning_rate * m / (sqrt(v) + epsilon)

    ``m`` starts at 0 and ``v`` at ``initial_accumulator_value``. As in the
    paper's Algorithm 2 there is no bias correction. Other libraries differ:
    optax's ``scale_by_yogi`` divides ``m`` and ``v`` by Adam's corrections
    ``1 - beta^t`` (and starts ``m``, like ``v``, at
    ``initial_accumulator_value``); TensorFlow Addons' and TFF's Yogi correct
    too. Defaults: the
    paper's recommended learning rate 1e-2 and ``epsilon = 1e-3`` (larger than
    Adam's), ``beta_1 = 0.9``, ``beta_2 = 0.999``, and ``v_0 = 1e-6`` as in
    TensorFlow Addons and optax. 16-bit variables are updated in float32
    arithmetic and rounded once.

    TensorFlow Addons' options (docs/tensorflow-addons.md), off by default:
    ``activation="tanh"`` replaces ``sign(x)`` by ``tanh(10 x)`` in the
    update of ``v`` (computed in float64, rounded once); with
    ``l1_regularization_strength`` or ``l2_regularization_strength`` > 0
    the step is TFA's proximal one, with ``lr_w = learning_rate / (sqrt(v)
    + epsilon)`` and ``u = w - lr_w * m``::

        w = sign(u) * max(|u| - l1 * lr_w, 0) / (1 + l2 * lr_w)

    TFA also multiplies the learning rate by ``sqrt(1 - beta_2^t) / (1 -
    beta_1^t)``; kerasopt keeps the paper's rule (a learning-rate schedule
    with that factor gives TFA's numbers; see the docs).

    Slots: ``momentum`` and ``velocity``.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.01.
        beta_1: decay of the first moment, in [0, 1). Defaults to 0.9.
        beta_2: in [0, 1): ``1 - beta_2`` is the rate at which ``v`` moves.
            Defaults to 0.999.
        epsilon: added to sqrt(v), >= 0. Defaults to 1e-3.
        initial_accumulator_value: the starting value of ``v``, >= 0.
            Defaults to 1e-6.
        l1_regularization_strength: the proximal L1 term (above), >= 0.
            Defaults to 0.0.
        l2_regularization_strength: the proximal L2 term (above), >= 0.
            Defaults to 0.0.
        activation: ``"sign"`` (the paper) or ``"tanh"`` (TFA's soft
            sign, ``tanh(10 x)``). Defaults to ``"sign"``.
        slot_dtype: None (slots take the variable's dtype, as in Keras) or
            "float32": float32 slots for bfloat16/float16 variables, so only
            the weight is rounded to 16 bits. See
            docs/slot-dtype.md.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
        ema_momentum, ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``
        (``weight_decay`` is Keras's decoupled decay, applied before the step).
    """

    kernel_name = "Yogi"
    fuses_step_features = True  # element-wise: see step_features.py

    def __init__(
        self,
        learning_rate=0.01,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-3,
        initial_accumulator_value=1e-6,
        l1_regularization_strength=0.0,
        l2_regularization_strength=0.0,
        activation="sign",
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
        self.initial_accumulator_value = check_hyperparameter(
            "initial_accumulator_value", initial_accumulator_value, low=0.0)
        self.l1_regularization_strength = check_hyperparameter(
            "l1_regularization_strength", l1_regularization_strength, low=0.0)
        self.l2_regularization_strength = check_hyperparameter(
            "l2_regularization_strength", l2_regularization_strength, low=0.0)
        if activation not in ("sign", "tanh"):
            raise ValueError(f"`activation` must be \"sign\" or \"tanh\", got {activation!r}")
        self.activation = activation

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum")
        self._velocities = self.add_optimizer_variables(
            var_list, "velocity",
            initializer=keras.initializers.Constant(self.initial_accumulator_value))

    def slots_for(self, variable):
        i = self._get_variable_index(variable)
        return [self._momentums[i], self._velocities[i]]

    def _hyperparameters(self):
        return dict(beta_1=self.hyperparameter(self.beta_1),
                    beta_2=self.hyperparameter(self.beta_2),
                    epsilon=self.hyperparameter(self.epsilon),
                    l1=self.hyperparameter(self.l1_regularization_strength),
                    l2=self.hyperparameter(self.l2_regularization_strength))

    def kernel_hyperparameters(self, variable):
        return dict(self._hyperparameters(), tanh_activation=self.activation == "tanh")

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        yogi_fallback.apply_yogi(variable, gradient, *slots, learning_rate=learning_rate,
                                 tanh_activation=self.activation == "tanh",
                                 **self._hyperparameters())

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "activation": self.activation,
            }
        )
        return config
