"""kerasopt.Adafactor: Keras's Adafactor (factored second moments, update
clipping, relative step).

The math: cc/kernels/adafactor.h. The fallback: kerasopt/fallback/adafactor.py.
"""

import keras
import tensorflow as tf

from kerasopt.fallback import adafactor as adafactor_fallback
from kerasopt.optimizers.fused import (FusedOptimizer, check_hyperparameter, check_learning_rate,
                                       check_shapes, dense_gradient, tf_variable)


@keras.saving.register_keras_serializable(package="kerasopt")
class Adafactor(FusedOptimizer, keras.optimizers.Adafactor):
    """Adafactor (Shazeer & Stern, "Adafactor: Adaptive Learning Rates with
    Sublinear Memory Cost", ICML 2018, arXiv:1804.04235, Algorithms 4 and 5),
    as Keras 3.15 has it.

    A drop-in replacement for ``keras.optimizers.Adafactor``: same arguments,
    defaults, optimizer variables and numbers, to float32 rounding (Keras sums
    its means in float32; kerasopt sums them in float64 in a fixed order, the
    same for any number of threads). With ``t = iterations + 1``::

        rho   = min(learning_rate, 1 / sqrt(t))
        alpha = max(epsilon_2, RMS(w)) * rho
        beta  = 1 - t^beta_2_decay
        G2    = g^2 + epsilon_1
        rank >= 2 (the last two axes factored, one r and c per leading index):
            r = beta r + (1 - beta) mean(G2, axis=-1)     # row means
            c = beta c + (1 - beta) mean(G2, axis=-2)     # column means
            v = (r / mean(r, axis=-1))[..., :, None] * c[..., None, :]
        rank < 2:
            v = beta v + (1 - beta) G2
        u = g / sqrt(v)
        w = w - alpha * (u / max(1, RMS(u) / clip_threshold))

    RMS is the root mean square over the whole variable (taken of w before the
    update). The paper's row and column *sums* give the same v as Keras's means.

    Where Keras deviates from the paper (followed here): the relative step is
    capped by ``learning_rate`` (the paper: by 10^-2); ``relative_step`` has no
    effect in Keras 3.15 (``rho`` is ``min(learning_rate, 1/sqrt(t))`` either
    way, also for schedules); no first moment (the paper's beta_1 = 0 default).
    Keras keeps the full ``velocity`` v of every variable (for matrices, the
    outer product it recomputes each step), so the memory is not sublinear;
    kerasopt keeps the same variables so that saved models load in either.
    Variables of rank < 2 get Keras's two placeholder int32 scalars in place
    of r and c. Weight decay is Keras's own pass before the step.

    Args:
        learning_rate: float, schedule or callable; caps the relative step.
            Defaults to 0.001.
        beta_2_decay: the exponent of beta's schedule, < 0 for beta to grow
            to 1. Defaults to -0.8.
        epsilon_1: added to g^2, >= 0. Defaults to 1e-30.
        epsilon_2: lower bound of RMS(w) in the step size, >= 0. Defaults to 1e-3.
        clip_threshold: update clipping threshold d, > 0. Defaults to 1.0.
        relative_step: kept for Keras's signature (no effect, as in Keras).
            Defaults to True.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
        ema_momentum, ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``.
    """

    kernel_name = "Adafactor"
    supports_slot_dtype = False  # its op's statistics take slots of the variable's dtype
    # Its op (KerasoptApplyAdafactor, CPU) runs one variable at a time: no
    # multi-tensor or sparse op (cc/tf/factored_apply_op.h says why); GPU
    # variables take the fallback.

    def __init__(
        self,
        learning_rate=0.001,
        beta_2_decay=-0.8,
        epsilon_1=1e-30,
        epsilon_2=1e-3,
        clip_threshold=1.0,
        relative_step=True,
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
        self.beta_2_decay = check_hyperparameter("beta_2_decay", beta_2_decay, high=0.0,
                                                 high_inclusive=True)
        self.epsilon_1 = check_hyperparameter("epsilon_1", epsilon_1, low=0.0)
        self.epsilon_2 = check_hyperparameter("epsilon_2", epsilon_2, low=0.0)
        self.clip_threshold = check_hyperparameter("clip_threshold", clip_threshold, low=0.0)
        if float(clip_threshold) == 0.0:
            raise ValueError("`clip_threshold` must be > 0, got 0")
        self.relative_step = relative_step

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Keras's variables, in Keras's order: r, c, velocity per variable;
        # rank < 2: two int32 placeholders named after the variable for r, c.
        self._r, self._c, self._v = [], [], []
        for variable in var_list:
            overwritten = self._overwrite_variable_with_gradient(variable)
            if len(variable.shape) < 2:
                self._r.append(keras.Variable(0, name=variable.name, trainable=False))
                self._c.append(keras.Variable(0, name=variable.name, trainable=False))
            elif overwritten:
                self._r.append(None)
                self._c.append(None)
            else:
                shape = tuple(variable.shape)
                self._r.append(self.add_variable(shape=shape[:-1], dtype=variable.dtype,
                                                 name=variable.name))
                self._c.append(self.add_variable(shape=shape[:-2] + shape[-1:],
                                                 dtype=variable.dtype, name=variable.name))
            self._v.append(None if overwritten else self.add_variable_from_reference(
                reference_variable=variable, name="velocity"))

    def slots_for(self, variable):
        i = self._get_variable_index(variable)
        if len(variable.shape) >= 2:
            return [self._r[i], self._c[i], self._v[i]]
        return [self._v[i]]

    def _dense_inputs(self, variable, gradient):
        gradient = dense_gradient(gradient, variable)
        slots = [tf_variable(s) for s in self.slots_for(variable)]
        check_shapes(variable, gradient, slots[-1:])  # velocity; r and c are checked below
        if len(slots) == 3:
            shape = tf.TensorShape(variable.shape)
            for what, slot, want in (("r", slots[0], shape[:-1]),
                                     ("c", slots[1], shape[:-2].concatenate(shape[-1:]))):
                if not want.is_compatible_with(slot.shape):
                    raise tf.errors.InvalidArgumentError(
                        None, None, f"kerasopt: variable '{variable.name}' has shape "
                        f"{shape.as_list()} but its slot {what} has shape {slot.shape.as_list()}"
                        f" (want {want.as_list()})")
        return gradient, slots

    def kernel_hyperparameters(self, variable):
        # The op takes r and c for rank >= 2 only (slots_for): cc/kernels/adafactor.h.
        return {name: self.hyperparameter(getattr(self, name))
                for name in ("beta_2_decay", "epsilon_1", "epsilon_2", "clip_threshold")}

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        r, c, velocity = slots if len(slots) == 3 else (None, None, slots[0])
        adafactor_fallback.apply_adafactor(
            variable, gradient, r, c, velocity, learning_rate=learning_rate, step=step,
            **self.kernel_hyperparameters(variable))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_2_decay": self.beta_2_decay,
                "epsilon_1": self.epsilon_1,
                "epsilon_2": self.epsilon_2,
                "clip_threshold": self.clip_threshold,
                "relative_step": self.relative_step,
            }
        )
        return config
