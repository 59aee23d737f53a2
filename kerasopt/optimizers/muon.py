"""kerasopt.Muon: Keras's Muon (Newton-Schulz-orthogonalized momentum for 2-D
weights, AdamW for the rest).

The math: cc/kernels/muon.h (momentum, scaling, decay, and the AdamW side,
a declared rule with ops KerasoptApplyMuonAdamW / KerasoptMultiApplyMuonAdamW).
The 2-D (Muon) variables take kerasopt/optimizers/muon_step.py: fused ops
around TensorFlow's matrix products, batched by shape. The fallback:
kerasopt/fallback/muon.py.
"""

import numbers
import re

import keras

import tensorflow as tf

from kerasopt import op_library
from kerasopt.fallback import constant
from kerasopt.fallback import muon as muon_fallback
from kerasopt.optimizers import multi_tensor, muon_step
from kerasopt.optimizers.fused import (FusedOptimizer, check_hyperparameter, check_learning_rate,
                                       runtime_shape_checks, tf_variable)


def _check_optional_decay(name, value):
    if value is not None:
        check_hyperparameter(name, value, low=0.0)
    return value


@keras.saving.register_keras_serializable(package="kerasopt")
class Muon(FusedOptimizer, keras.optimizers.Muon):
    """Muon (Jordan et al. 2024, github.com/KellerJordan/Muon), with
    Moonlight's update scaling (Liu et al. 2025, "Muon is Scalable for LLM
    Training", arXiv:2502.16982), as Keras 3.15 has it.

    A drop-in replacement for ``keras.optimizers.Muon``: same arguments,
    defaults, slot variables (``momentum`` for every variable, ``velocity``
    for the AdamW ones) and numbers, to float32 rounding (the matrix products
    and the norm are summed in other orders than Keras's).

    Which rule a variable gets, as in Keras: AdamW for variables that are not
    2-D, for those whose path contains "embedding" (``exclude_embeddings``)
    and for those whose path matches a regular expression of
    ``exclude_layers``; Muon for the other 2-D weights. Typically pass the
    output layer's name in ``exclude_layers``.

    Muon step, with lr the learning rate (``weight_decay`` None counts as 0)::

        w = w - w * weight_decay * lr
        m = m + (g + m * (momentum - 1))                 # = momentum m + g
        d = g + momentum * m   (nesterov)   or   m
        o = NewtonSchulz5(d)                             # ns_steps iterations
        w = w - lr * o * sqrt(max(rows, cols)) * rms_rate   (rms_rate None: lr * o)

    NewtonSchulz5 (in the orientation with no more rows than columns):
    ``x = d / (||d||_F + 1e-7)``, then ``ns_steps`` times
    ``A = x x^T; x = muon_a x + (muon_b A + muon_c A A) x``.

    AdamW step, with ``t = iterations + 1`` (``adam_weight_decay`` None counts as 0)::

        w = w - w * adam_weight_decay * lr
        Adam with learning rate lr * adam_lr_ratio, beta_1 = adam_beta_1,
        beta_2 = adam_beta_2, epsilon (Keras's Adam, epsilon-hat form)

    Keras applies both decays in a separate pass over all variables before
    the updates; here each is folded into its variable's update, in the same
    order. 16-bit variables are computed in float32 and rounded once.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        adam_beta_1, adam_beta_2: Adam's decays, in [0, 1). Default 0.9, 0.999.
        adam_weight_decay: decay of the AdamW variables, >= 0 or None.
            Defaults to 0.004.
        epsilon: Adam's epsilon, >= 0. Defaults to 1e-7.
        weight_decay: decay of the Muon variables, >= 0 or None. Defaults to 0.004.
        exclude_layers: regular expressions; variables whose path matches
            one take AdamW. Defaults to None (none).
        exclude_embeddings: variables whose path contains "embedding" take
            AdamW. Defaults to True.
        muon_a, muon_b, muon_c: the quintic's coefficients. Defaults 3.4445,
            -4.7750, 2.0315.
        adam_lr_ratio: the AdamW learning rate over the Muon one, >= 0.
            Defaults to 1.
        momentum: Muon's momentum, in [0, 1]. Defaults to 0.95.
        ns_steps: Newton-Schulz iterations, an integer >= 0. Defaults to 5.
        nesterov: Nesterov momentum. Defaults to True.
        rms_rate: Moonlight's update scale, >= 0, or None (no scaling).
            Defaults to 0.2.
        clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``.
    """

    kernel_name = "MuonAdamW"  # the AdamW side's declared rule; the Muon side: muon_step.py
    supports_slot_dtype = False  # its op (matrix products) takes slots of the variable's dtype

    def __init__(
        self,
        learning_rate=0.001,
        adam_beta_1=0.9,
        adam_beta_2=0.999,
        adam_weight_decay=0.004,
        epsilon=1e-7,
        weight_decay=0.004,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name=None,
        exclude_layers=None,
        exclude_embeddings=True,
        muon_a=3.4445,
        muon_b=-4.7750,
        muon_c=2.0315,
        adam_lr_ratio=1,
        momentum=0.95,
        ns_steps=5,
        nesterov=True,
        rms_rate=0.2,
        **kwargs,
    ):
        super().__init__(
            learning_rate=check_learning_rate(learning_rate),
            name=name,
            weight_decay=_check_optional_decay("weight_decay", weight_decay),
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
        self.adam_beta_1 = check_hyperparameter("adam_beta_1", adam_beta_1, 0.0, 1.0)
        self.adam_beta_2 = check_hyperparameter("adam_beta_2", adam_beta_2, 0.0, 1.0)
        self.epsilon = check_hyperparameter("epsilon", epsilon, low=0.0)
        for coefficient, value in (("muon_a", muon_a), ("muon_b", muon_b), ("muon_c", muon_c)):
            check_hyperparameter(coefficient, value)
        self.muon_a = muon_a
        self.muon_b = muon_b
        self.muon_c = muon_c
        self.adam_lr_ratio = check_hyperparameter("adam_lr_ratio", adam_lr_ratio, low=0.0)
        self.momentum = check_hyperparameter("momentum", momentum, 0.0, 1.0, high_inclusive=True)
        if isinstance(ns_steps, bool) or not isinstance(ns_steps, numbers.Integral) or ns_steps < 0:
            raise ValueError(f"`ns_steps` must be an integer >= 0, got {ns_steps!r}")
        self.ns_steps = ns_steps
        self.nesterov = nesterov
        self.exclude_embeddings = exclude_embeddings
        if exclude_layers is not None and (
                isinstance(exclude_layers, str)
                or not all(isinstance(k, str) for k in exclude_layers)):
            raise ValueError("`exclude_layers` must be a list of regular expressions (strings), "
                             f"got {exclude_layers!r}")
        self.exclude_layers = list(exclude_layers or [])
        for keyword in self.exclude_layers:
            try:
                re.compile(keyword)  # a bad expression fails here, not in build
            except re.error as e:
                raise ValueError(f"`exclude_layers`: {keyword!r} is not a regular expression "
                                 f"({e})") from None
        self.adam_weight_decay = _check_optional_decay("adam_weight_decay", adam_weight_decay)
        self.rms_rate = None if rms_rate is None else check_hyperparameter(
            "rms_rate", rms_rate, low=0.0)

    def _should_use_adamw(self, variable):
        """Keras's choice: AdamW unless 2-D and neither an embedding nor excluded."""
        if len(variable.shape) != 2:
            return True
        if self.exclude_embeddings and "embedding" in variable.path.lower():
            return True
        return any(re.search(keyword, variable.path) for keyword in self.exclude_layers)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # As Keras: a momentum for every variable, a velocity for the AdamW ones
        # (its presence is what marks them).
        self.momentums = [None] * len(var_list)
        self.adam_velocities = [None] * len(var_list)
        for variable in var_list:
            if self._overwrite_variable_with_gradient(variable):
                continue
            i = self._get_variable_index(variable)
            self.momentums[i] = self.add_variable_from_reference(variable, name="momentum")
            if self._should_use_adamw(variable):
                self.adam_velocities[i] = self.add_variable_from_reference(
                    variable, name="velocity")

    def slots_for(self, variable):
        i = self._get_variable_index(variable)
        if self.adam_velocities[i] is not None:
            return [self.momentums[i], self.adam_velocities[i]]
        return [self.momentums[i]]

    def _apply_weight_decay(self, variables):
        # Both decays are part of each variable's fused update (update_step).
        return

    def _decayed(self, variable, uses_adamw) -> bool:
        value = self.adam_weight_decay if uses_adamw else self.weight_decay
        return value is not None and self._use_weight_decay(variable)

    def _decay_for(self, variable, uses_adamw):
        """The variable's decay: 0 when it has none, else its value (read at each step)."""
        if not self._decayed(variable, uses_adamw):
            return 0.0
        return self.hyperparameter(self.adam_weight_decay if uses_adamw else self.weight_decay)

    def _uses_muon(self, variable) -> bool:
        """Built with a momentum and no velocity: Keras's mark of a Muon variable."""
        i = self._get_variable_index(variable)
        return self.momentums[i] is not None and self.adam_velocities[i] is None

    def kernel_hyperparameters(self, variable):
        # The AdamW side (apply_kernel is only called for it: see update_step).
        return dict(adam_lr_ratio=self.hyperparameter(self.adam_lr_ratio),
                    weight_decay=self._decay_for(variable, True),
                    beta_1=self.hyperparameter(self.adam_beta_1),
                    beta_2=self.hyperparameter(self.adam_beta_2),
                    epsilon=self.hyperparameter(self.epsilon))

    def _multi_tensor_allowed(self) -> bool:
        # update_step is overridden for the Muon variables only; the AdamW
        # side still goes through apply_kernel, so the list ops serve it.
        return multi_tensor.enabled() and multi_tensor.no_replicas(self)

    def _multi_tensor_update(self, grads, trainable_variables):
        """The Muon variables in batches of one shape (muon_step.py); the
        AdamW ones in KerasoptMultiApplyMuonAdamW ops; returns the rest."""
        batches, rest = {}, []
        for gradient, variable in zip(grads, trainable_variables):
            var = tf_variable(variable)
            if not (self._uses_muon(var) and multi_tensor.dense_and_known(gradient, var)
                    and op_library.kernel_unavailable_reason(var, muon_step.MOMENTUM_OP) is None):
                rest.append((gradient, variable))
                continue
            self.check_built_for(var)
            gradient, slots = self._dense_inputs(var, gradient)
            batches.setdefault(muon_step.batch_key(var), []).append((var, gradient, slots[0]))
        if batches:
            _, _, learning_rate_f64 = self._step_inputs
            for entries in batches.values():
                self._run_muon_batch(op_library.library().ops, entries, learning_rate_f64)
        if not rest:
            return [], []
        return super()._multi_tensor_update([g for g, _ in rest], [v for _, v in rest])

    def _run_muon_batch(self, ops, entries, learning_rate_f64):
        rms_rate = None if self.rms_rate is None else self.hyperparameter(self.rms_rate)
        weight_decay = self.weight_decay
        muon_step.run_batch(
            ops, entries, learning_rate=learning_rate_f64,
            momentum=self.hyperparameter(self.momentum), nesterov=self.nesterov,
            coefficients=self._coefficients(), ns_steps=self.ns_steps,
            weight_decay=0.0 if weight_decay is None else self.hyperparameter(weight_decay),
            decayed=[self._decayed(v, False) for v, _, _ in entries], rms_rate=rms_rate)

    def update_step(self, gradient, variable, learning_rate):
        """The AdamW variables as every kerasopt optimizer (apply_kernel); a
        Muon variable, when the multi-tensor path did not take it, as a batch of one."""
        variable = tf_variable(variable)
        self.check_built_for(variable)
        if not self._uses_muon(variable):
            return super().update_step(gradient, variable, learning_rate)
        gradient, slots = self._dense_inputs(variable, gradient)
        step, learning_rate_f64 = self._shared_step_inputs(learning_rate)
        with tf.control_dependencies(runtime_shape_checks(variable, gradient)):
            if op_library.use_kernel(variable, muon_step.MOMENTUM_OP):
                if learning_rate_f64 is None:
                    learning_rate_f64 = tf.cast(learning_rate, tf.float64)
                self._run_muon_batch(op_library.library().ops, [(variable, gradient, slots[0])],
                                     learning_rate_f64)
            else:
                self.apply_fallback(variable, gradient, slots, learning_rate, step)

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        if len(slots) == 2:
            muon_fallback.apply_muon_adamw(
                variable, gradient, *slots, learning_rate=learning_rate,
                adam_lr_ratio=self.hyperparameter(self.adam_lr_ratio),
                weight_decay=self._decay_for(variable, True),
                beta_1=self.hyperparameter(self.adam_beta_1),
                beta_2=self.hyperparameter(self.adam_beta_2),
                epsilon=self.hyperparameter(self.epsilon), step=step)
        else:
            muon_fallback.apply_muon(
                variable, gradient, *slots, learning_rate=learning_rate,
                weight_decay=self._decay_for(variable, False),
                momentum_decay=self.hyperparameter(self.momentum), nesterov=bool(self.nesterov),
                ns_steps=self.ns_steps, coefficients=self._coefficients(),
                rms_rate=None if self.rms_rate is None else self.hyperparameter(self.rms_rate))

    def _coefficients(self):
        return tuple(self.hyperparameter(k) for k in (self.muon_a, self.muon_b, self.muon_c))

    def zeropower_via_newtonschulz5(self, x, steps: int):
        """Keras's method: the Newton-Schulz orthogonalization of a 2-D tensor."""
        x = tf.convert_to_tensor(x)
        a, b, c = (constant(k, x.dtype) for k in self._coefficients())
        return muon_fallback.newton_schulz5(x, steps=steps, a=a, b=b, c=c)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "adam_beta_1": self.adam_beta_1,
                "adam_beta_2": self.adam_beta_2,
                "epsilon": self.epsilon,
                "exclude_layers": self.exclude_layers,
                "muon_a": self.muon_a,
                "muon_b": self.muon_b,
                "muon_c": self.muon_c,
                "adam_lr_ratio": self.adam_lr_ratio,
                "momentum": self.momentum,
                "ns_steps": self.ns_steps,
                "nesterov": self.nesterov,
                "exclude_embeddings": self.exclude_embeddings,
                "adam_weight_decay": self.adam_weight_decay,
                "rms_rate": self.rms_rate,
            }
        )
        return config
