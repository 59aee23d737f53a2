"""kerasopt.Ftrl: Keras's FTRL-Proximal, one fused op per variable.

The math and its declaration (from which its ops are built): cc/kernels/ftrl.h.
The fallback: kerasopt/fallback/ftrl.py.
"""

import keras
import tensorflow as tf

from kerasopt.fallback import ftrl as ftrl_fallback
from kerasopt.optimizers.fused import (
    FusedOptimizer, check_hyperparameter, check_learning_rate, is_constant)


@keras.saving.register_keras_serializable(package="kerasopt")
class Ftrl(FusedOptimizer, keras.optimizers.Ftrl):
    """FTRL-Proximal (McMahan et al., "Ad Click Prediction: a View from the
    Trenches", KDD 2013), as Keras 3 formulates it.

    A drop-in replacement for ``keras.optimizers.Ftrl``: same arguments,
    defaults and slot variables (``accumulator``, initialised to
    ``initial_accumulator_value``, and ``linear``). Each variable is updated by
    one fused C++ op. With ``n`` the accumulator, ``z`` the linear slot and
    ``p = -learning_rate_power``::

        l2_reg = l2_regularization_strength + beta / (2 * learning_rate)
        g'     = g + 2 * l2_shrinkage_regularization_strength * w
        n_new  = n + g^2
        z      = z + g' - (n_new^p - n^p) / learning_rate * w
        w      = (clip(z, -l1, l1) - z) / (n_new^p / learning_rate + 2 * l2_reg)
        n      = n_new

    so ``w`` is exactly 0 wherever ``|z| <= l1_regularization_strength``
    (the sparsity the L1 term is for).

    Where Keras deviates from the paper (and kerasopt follows Keras): the paper
    fixes ``p = 1/2`` and puts ``beta`` next to ``sqrt(n)``
    (``(beta + sqrt(n)) / alpha``); Keras allows any ``p <= 0`` power and folds
    ``beta`` into the L2 term as ``beta / (2 * learning_rate)``, doubles the L2
    term (``2 * l2_reg``, as TensorFlow's ``ApplyFtrlV2``) and adds the
    shrinkage-type L2 gradient ``g'``, which is not in the paper.

    Powers are computed correctly rounded (``sqrt`` for ``p = 1/2``); Keras's
    TensorFlow ``pow`` is off by one ulp in about a quarter of float32
    elements, so float32 results agree with Keras within a few ulps, not bit
    for bit. 16-bit variables are updated in float32 arithmetic and rounded once.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        learning_rate_power: <= 0. Defaults to -0.5.
        initial_accumulator_value: >= 0. Defaults to 0.1.
        l1_regularization_strength: >= 0. Defaults to 0.
        l2_regularization_strength: >= 0. Defaults to 0.
        l2_shrinkage_regularization_strength: >= 0. Defaults to 0.
        beta: >= 0. Defaults to 0.
        lazy: apply sparse (``tf.IndexedSlices``) gradients to the rows they
            name only. Without shrinkage and at a constant learning rate (a
            float, not a schedule) that is exactly Keras's dense step and
            happens anyway; otherwise it is a different step, taken only on
            request: shrinkage then acts on active rows only (as Keras's
            docstring and TensorFlow's sparse FTRL describe), and rows left
            out keep the weight of the learning rate they last saw (a
            schedule moves every row of a dense step). By default such
            gradients are densified. A float learning rate you assign between
            steps (e.g. ``ReduceLROnPlateau``) changes the rate too; untouched
            rows then catch up when they are next touched. See
            docs/sparse.md.
        slot_dtype: None (slots take the variable's dtype, as in Keras) or
            "float32": float32 slots for bfloat16/float16 variables, so only
            the weight is rounded to 16 bits. See
            docs/slot-dtype.md.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
        ema_momentum, ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``.
    """

    kernel_name = "Ftrl"
    fuses_step_features = True  # element-wise: see step_features.py
    supports_lazy = True

    def __init__(
        self,
        learning_rate=0.001,
        learning_rate_power=-0.5,
        initial_accumulator_value=0.1,
        l1_regularization_strength=0.0,
        l2_regularization_strength=0.0,
        l2_shrinkage_regularization_strength=0.0,
        beta=0.0,
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
        self.learning_rate_power = check_hyperparameter(
            "learning_rate_power", learning_rate_power, high=0.0, high_inclusive=True,
            keras_message="`learning_rate_power` needs to be negative or zero. Received: "
                          "learning_rate_power={value}.")
        non_negative = {
            "initial_accumulator_value": initial_accumulator_value,
            "l1_regularization_strength": l1_regularization_strength,
            "l2_regularization_strength": l2_regularization_strength,
            "l2_shrinkage_regularization_strength": l2_shrinkage_regularization_strength,
        }
        for name, value in non_negative.items():  # Keras's checks, in its words
            setattr(self, name, check_hyperparameter(
                name, value, low=0.0,
                keras_message=f"`{name}` needs to be positive or zero. Received: "
                              f"{name}={{value}}."))
        self.beta = check_hyperparameter("beta", beta, low=0.0)

    def sparse_rows_exact(self):
        # Without shrinkage a zero gradient leaves n and z unchanged, and w is
        # then the FTRL solution of (z, n, learning rate) it already was (for
        # rows touched before or initialised to zero): the paper's
        # per-coordinate algorithm, and TensorFlow's sparse FTRL ops. Not so
        # when the learning rate changes (a schedule): w depends on it, so a
        # dense step moves untouched rows too. Shrinkage moves z by
        # 2 * l2_shrinkage * w even with a zero gradient.
        shrinkage = self.l2_shrinkage_regularization_strength
        return (is_constant(shrinkage) and float(shrinkage) == 0.0
                and not self.learning_rate_changes())

    def learning_rate_changes(self) -> bool:
        """True when the learning rate is a schedule or a callable (it changes
        from step to step); a float is kept in a variable that only changes
        when it is assigned."""
        rate = self._learning_rate
        return isinstance(rate, keras.optimizers.schedules.LearningRateSchedule) or (
            callable(rate) and not isinstance(rate, (tf.Variable, keras.Variable)))

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators, self._linears = self.add_optimizer_variables(
            var_list,
            ["accumulator", "linear"],
            initializer=[keras.initializers.Constant(self.initial_accumulator_value), "zeros"],
        )

    def slots_for(self, variable):
        i = self._get_variable_index(variable)
        return [self._accumulators[i], self._linears[i]]

    def _hyperparameters(self):
        return dict(
            learning_rate_power=self.hyperparameter(self.learning_rate_power),
            l1=self.hyperparameter(self.l1_regularization_strength),
            l2=self.hyperparameter(self.l2_regularization_strength),
            l2_shrinkage=self.hyperparameter(self.l2_shrinkage_regularization_strength),
            beta=self.hyperparameter(self.beta),
        )

    def kernel_hyperparameters(self, variable):
        return self._hyperparameters()

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        ftrl_fallback.apply_ftrl(
            variable, gradient, *slots, learning_rate=learning_rate,
            **self._hyperparameters(),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
                "beta": self.beta,
            }
        )
        return config
