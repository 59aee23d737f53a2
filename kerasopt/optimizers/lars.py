"""kerasopt.Lars: layer-wise adaptive rate scaling, one fused op per variable.

The math: cc/kernels/lars.h. The driver (the norms inside the op, then one
dense pass): cc/cpu/apply_after_norms.h. The op: cc/tf/lars_op.cc. The
fallback: kerasopt/fallback/lars.py.
"""

import re

import keras
import tensorflow as tf

from kerasopt.fallback import lars as lars_fallback
from kerasopt.optimizers.fused import (
    FusedOptimizer, check_constant, check_hyperparameter, check_learning_rate)


def _name_patterns(argument, names):
    """None, or a list of regular expressions (validated) from a list of strings."""
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"`{argument}` must be a list of strings (name substrings or "
                         f"regular expressions), got {names!r}")
    names = list(names)
    for n in names:
        try:
            re.compile(n)
        except re.error as e:
            raise ValueError(f"`{argument}`: {n!r} is not a regular expression: {e}") from None
    return names


@keras.saving.register_keras_serializable(package="kerasopt")
class Lars(FusedOptimizer):
    """LARS (You, Gitman & Ginsburg, "Large Batch Training of Convolutional
    Networks", 2017, arXiv:1708.03888, Algorithm 1 with the trust coefficient
    of eq. 6).

    Each variable ("layer") gets its own rate from the norms of its weights and
    gradient, computed inside the fused op (a first pass sums the squares, a
    second applies the step)::

        lambda = eta * ||w|| / (||g|| + weight_decay * ||w||)
        u      = g + weight_decay * w
        v      = momentum * v + (learning_rate * lambda) * u
        w      = w - v                                      (nesterov=False)
        w      = w - (momentum * v + (learning_rate * lambda) * u)  (nesterov=True)

    with ``||w||`` taken before the update and of the raw gradient ``g``
    (after Keras's clipping). Without momentum there is no ``v`` slot and
    ``w = w - (learning_rate * lambda) * u``.

    Zero norms: when ``||w|| = 0`` or ``||g|| = 0`` the local rate ``lambda``
    is 1 (as in the reference TensorFlow and optax implementations), so a
    zero-initialized variable (e.g. a bias) still learns at ``learning_rate``
    and no ``epsilon`` is needed. A variable excluded from layer adaptation has
    ``lambda = 1``; one excluded from weight decay has ``weight_decay = 0``,
    both in ``lambda`` and in ``u``.

    ``weight_decay`` is the paper's beta, folded into the update as above. It
    is NOT Keras's decoupled weight decay (``w -= learning_rate *
    weight_decay * w`` before the step), which this class never applies; it
    keeps Keras's name so that ``get_config`` and
    ``exclude_from_weight_decay(var_list=..., var_names=...)`` work as usual.

    Numbers: per-element math in float32 for 16-bit and float32 variables
    (float64 for float64), the sums of squares in float64 in a fixed block
    order, so results do not depend on the number of threads, and the fused op
    and its composed-TF fallback agree bit for bit.

    Args:
        learning_rate: the global rate (gamma in the paper): float, schedule or
            callable. Defaults to 1.0 (with ``eta = 0.001`` each step moves a
            layer by about 0.1% of its norm).
        momentum: float in [0, 1]. Defaults to 0.9 (0: no momentum slot).
        weight_decay: beta, >= 0. Defaults to 0.
        eta: trust coefficient, > 0. Defaults to 0.001.
        nesterov: Nesterov momentum. Defaults to False.
        exclude_from_weight_decay: list of strings; a variable whose ``name``
            matches one (``re.search``, as Keras's
            ``exclude_from_weight_decay(var_names=...)``) gets no weight decay.
            Biases and normalization weights are usually excluded, e.g.
            ``["bias", "gamma", "beta"]``. Defaults to None (none excluded).
        exclude_from_layer_adaptation: list of strings, matched the same way; a
            matching variable gets ``lambda = 1``. Defaults to None: the
            variables excluded from weight decay (by this argument or by the
            ``exclude_from_weight_decay`` method).
        clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``.
    """

    kernel_name = "Lars"
    constant_hyperparameters = ("momentum",)
    supports_slot_dtype = False  # its norm driver (apply_after_norms.h) takes slots of the variable's dtype

    def __init__(
        self,
        learning_rate=1.0,
        momentum=0.9,
        weight_decay=0.0,
        eta=0.001,
        nesterov=False,
        exclude_from_weight_decay=None,
        exclude_from_layer_adaptation=None,
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
            weight_decay=None,  # set below: beta is folded into the update, never decoupled
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
        check_constant("momentum", momentum)  # it decides whether the momentum slot exists
        self.momentum = float(check_hyperparameter("momentum", momentum, 0.0, 1.0, high_inclusive=True))
        # Read at each step (a variable may change them; see fused.hyperparameter).
        self.weight_decay = check_hyperparameter(
            "weight_decay", 0.0 if weight_decay is None else weight_decay, low=0.0)
        self.eta = check_hyperparameter("eta", eta, low=0.0)
        if float(tf.convert_to_tensor(self.eta)) == 0.0:
            raise ValueError("`eta` must be > 0, got 0 (it scales every step)")
        self.nesterov = bool(nesterov)
        self._weight_decay_names = _name_patterns("exclude_from_weight_decay",
                                                  exclude_from_weight_decay)
        self._layer_adaptation_names = _name_patterns("exclude_from_layer_adaptation",
                                                      exclude_from_layer_adaptation)
        if self._weight_decay_names:
            super().exclude_from_weight_decay(var_names=self._weight_decay_names)

    def _apply_weight_decay(self, variables):
        """No decoupled decay: LARS folds weight_decay into its step (see the class doc)."""

    def _use_layer_adaptation(self, variable):
        if self._layer_adaptation_names is None:
            return self._use_weight_decay(variable)
        pattern = "|".join(self._layer_adaptation_names)
        return not self._layer_adaptation_names or re.search(pattern, variable.name) is None

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = []
        if self.momentum != 0:
            self.momentums = self.add_optimizer_variables(variables, "momentum")
        # Per variable, fixed at build (as Keras fixes exclude_from_weight_decay).
        self._variable_weight_decay = [
            self.weight_decay if self._use_weight_decay(v) else 0.0 for v in variables]
        self._variable_layer_adaptation = [bool(self._use_layer_adaptation(v)) for v in variables]

    def slots_for(self, variable):
        if self.momentum == 0:
            return []
        return [self.momentums[self._get_variable_index(variable)]]

    def _per_variable(self, variable):
        i = self._get_variable_index(variable)
        return dict(momentum=self.momentum,
                    weight_decay=self.hyperparameter(self._variable_weight_decay[i]),
                    eta=self.hyperparameter(self.eta), nesterov=self.nesterov,
                    layer_adaptation=self._variable_layer_adaptation[i])

    def apply_kernel(self, ops, variable, gradient, slots, learning_rate_f64, step):
        ops.kerasopt_apply_lars(
            var=variable.handle,
            slots=[s.handle for s in slots],
            grad=gradient,
            lr=learning_rate_f64,
            **self._per_variable(variable),
        )

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        lars_fallback.apply_lars(
            variable, gradient, slots[0] if slots else None,
            learning_rate=learning_rate, **self._per_variable(variable),
        )

    def get_config(self):
        config = super().get_config()
        config.update({
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "eta": self.eta,
            "nesterov": self.nesterov,
            "exclude_from_weight_decay": self._weight_decay_names,
            "exclude_from_layer_adaptation": self._layer_adaptation_names,
        })
        return config
