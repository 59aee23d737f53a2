"""kerasopt.Lamb: Keras's LAMB, one fused op per variable.

The math: cc/kernels/lamb.h. The driver (two passes, the norms inside the op):
cc/cpu/apply_with_norms.h. Its ops are built from its declaration in
cc/kernels/lamb.h. The fallback: kerasopt/fallback/lamb.py.
"""

import re

import keras

from kerasopt.fallback import lamb as lamb_fallback
from kerasopt.optimizers.fused import (FusedOptimizer, check_hyperparameter, check_learning_rate,
                                       is_constant)
from kerasopt.optimizers.lars import _name_patterns


@keras.saving.register_keras_serializable(package="kerasopt")
class Lamb(FusedOptimizer, keras.optimizers.Lamb):
    """LAMB (You et al., "Large Batch Optimization for Deep Learning: Training
    BERT in 76 minutes", ICLR 2020, arXiv:1904.00962, Algorithm 2), as Keras 3
    formulates it.

    A drop-in replacement for ``keras.optimizers.Lamb``: same arguments,
    defaults and slot variables (``momentum``, ``velocity``). Each variable is
    updated by one fused C++ op, which computes the two norms of the trust
    ratio over the whole variable itself: a first pass updates the moments and
    sums the squares, a second applies the step. With ``t = iterations + 1``
    and the norms over the whole variable::

        m     = m + (g - m) * (1 - beta_1)
        v     = v + (g^2 - v) * (1 - beta_2)
        r     = (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + epsilon)
        ratio = ||w|| / ||r||  if ||w|| > 0 and ||r|| > 0, else 1
        w     = w - (ratio * learning_rate) * r

    where ``||w||`` is taken before the update.

    Where Keras deviates from the paper (and kerasopt follows Keras): the
    paper's step is ``phi(||w||) / ||r + lambda w|| * (r + lambda w)`` with a
    scaling function ``phi`` (e.g. clipping); Keras uses ``phi = identity``,
    keeps weight decay out of the ratio (the base optimizer's decoupled
    ``weight_decay`` runs before the step) and sets the ratio to 1 when either
    norm is 0.

    Two options for TensorFlow Addons' ``LAMB`` users (docs/tensorflow-addons.md),
    off by default: ``weight_decay_rate`` is the paper's ``lambda``, added
    inside the trust ratio (``r = r + weight_decay_rate * w`` before both
    the norm and the step; TFA's ``weight_decay_rate``), beside Keras's
    decoupled ``weight_decay`` outside it; variables excluded with Keras's
    ``exclude_from_weight_decay`` get neither. ``exclude_from_layer_adaptation``
    gives the listed variables ``ratio = 1`` (TFA's argument; unlike TFA, an
    unset list does not fall back to the weight-decay exclusions, so a
    default ``Lamb`` adapts every variable, as Keras's does).

    Numbers: the per-element math is Keras's, in Keras's order; the sums of
    squares are taken in float64, in a fixed block order, so the result is the
    same for any number of threads (Keras sums float32 squares in float32, so
    float32 results agree with Keras to within a few ulps of the ratio, not bit
    for bit). 16-bit variables are updated in float32 arithmetic and rounded
    once.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        beta_1: decay of the first-moment estimate, in [0, 1). Defaults to 0.9.
        beta_2: decay of the second-moment estimate, in [0, 1). Defaults to 0.999.
        epsilon: added to sqrt(v_hat), >= 0. Defaults to 1e-7.
        weight_decay_rate: (keyword) the paper's decay inside the trust
            ratio (above), >= 0. Defaults to 0.0.
        exclude_from_layer_adaptation: (keyword) None or a list of strings
            (name substrings or regular expressions, searched in
            ``variable.name``): those variables get ``ratio = 1``. Defaults
            to None.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
        ema_momentum, ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``.
    """

    kernel_name = "Lamb"
    supports_slot_dtype = False  # its norm driver (apply_with_norms.h) takes slots of the variable's dtype

    keyword_options = {"weight_decay_rate": 0.0, "exclude_from_layer_adaptation": None}

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
        # kerasopt's options, keyword-only through **kwargs: the signature
        # stays keras.optimizers.Lamb's (tests/test_lamb.py).
        weight_decay_rate = kwargs.pop("weight_decay_rate", 0.0)
        exclude_from_layer_adaptation = kwargs.pop("exclude_from_layer_adaptation", None)
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
        self.weight_decay_rate = check_hyperparameter(
            "weight_decay_rate", weight_decay_rate, low=0.0)
        self._layer_adaptation_names = _name_patterns("exclude_from_layer_adaptation",
                                                      exclude_from_layer_adaptation)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )

    def slots_for(self, variable):
        i = self._get_variable_index(variable)
        return [self._momentums[i], self._velocities[i]]

    def _use_layer_adaptation(self, variable) -> bool:
        if not self._layer_adaptation_names:
            return True
        return re.search("|".join(self._layer_adaptation_names), variable.name) is None

    def _hyperparameters(self, variable):
        decays = self._use_weight_decay(variable)
        return dict(beta_1=self.hyperparameter(self.beta_1),
                    beta_2=self.hyperparameter(self.beta_2),
                    epsilon=self.hyperparameter(self.epsilon),
                    weight_decay_rate=self.hyperparameter(self.weight_decay_rate) if decays
                    else 0.0,
                    layer_adaptation=self._use_layer_adaptation(variable))

    def kernel_hyperparameters(self, variable):
        return self._hyperparameters(variable)

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        lamb_fallback.apply_lamb(
            variable, gradient, *slots, learning_rate=learning_rate, step=step,
            **self._hyperparameters(variable),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
            }
        )
        # Only when set: a default config stays Keras's own (loadable by
        # keras.optimizers.Lamb).
        if not (is_constant(self.weight_decay_rate) and float(self.weight_decay_rate) == 0.0):
            config["weight_decay_rate"] = self.weight_decay_rate
        if self._layer_adaptation_names:
            config["exclude_from_layer_adaptation"] = self._layer_adaptation_names
        return config
