"""kerasopt.KFAC: Kronecker-factored approximate curvature (Martens & Grosse 2015)
for ``keras.layers.Dense``, and for ``keras.layers.Conv2D`` as KFC (Grosse &
Martens 2016), in composed TensorFlow ops (no fused C++ op).

An optimizer's ``apply`` sees gradients only; K-FAC also needs each tracked
layer's inputs ``a`` and the gradients ``g`` of the loss with respect to its
pre-activations. :class:`kerasopt.KFACModel` records both in its
``train_step`` and calls :meth:`KFAC.apply_kfac`; see docs/second-order.md.
"""

import keras
import tensorflow as tf

from kerasopt.kfac import layers as layer_kinds
from kerasopt.optimizers import saved_name
from kerasopt.optimizers.sgd import SGD


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"KFAC: `{name}` must be a number > 0, got {value!r}")


# Keras's base-optimizer options apply() would honour, and apply_kfac does not:
# refused unless left at their defaults.
_UNSUPPORTED_OPTIONS = {"weight_decay": None, "clipnorm": None, "clipvalue": None,
                        "global_clipnorm": None, "use_ema": False,
                        "ema_overwrite_frequency": None, "loss_scale_factor": None,
                        "gradient_accumulation_steps": None}


@keras.saving.register_keras_serializable(package="kerasopt")
class KFAC(keras.optimizers.Optimizer):
    """K-FAC natural-gradient steps for Dense and Conv2D layers; a first-order
    optimizer for the rest.

    Per tracked layer with kernel ``W`` (as a ``fan_in x out`` matrix; a
    Conv2D kernel ``(kh, kw, cin, out)`` reshaped to ``(kh * kw * cin, out)``)
    and optional bias ``b``:

        a = [inputs, 1]  (the 1 only with a bias),  g = dloss/d(pre-activation) * batch
            (Conv2D: a row per extracted input patch, g a row per output position)
        A = decay * A + (1 - decay) * mean(a a^T)      (the first step takes mean(a a^T))
        G = decay * G + (1 - decay) * positions * mean(g g^T)   (positions 1 for Dense)
        every `inverse_frequency` steps (from the first):
            pi = sqrt((trace(A) / dim A) / (trace(G) / dim G))       (factored damping)
            A_inv = (A + pi sqrt(damping) I)^-1,  G_inv = (G + sqrt(damping) / pi I)^-1
        V = A_inv [dW; db] G_inv
    then over all tracked layers (KL clipping, Ba et al. 2017):
        nu = min(1, sqrt(kl_clip / (learning_rate^2 * sum(V . [dW; db]))))
        [W; b] = [W; b] - learning_rate * nu * V

    ``G`` is the empirical Fisher's factor: ``g`` comes from the training
    labels, not from targets sampled from the model's distribution.

    Args:
        learning_rate: float or schedule. Defaults to 0.01.
        damping: Tikhonov damping lambda (> 0). Defaults to 1e-3.
        decay: running-average decay of A and G, in [0, 1). Defaults to 0.95.
        inverse_frequency: steps between inverse refreshes (int >= 1). Defaults to 10.
        kl_clip: the KL trust region (> 0), or None for no clipping. Defaults to 1e-3.
        first_order: the optimizer for variables outside tracked layers, or None
            for ``kerasopt.SGD(learning_rate, momentum=0.9)``.
    """

    def __init__(self, learning_rate=0.01, damping=1e-3, decay=0.95, inverse_frequency=10,
                 kl_clip=1e-3, first_order=None, name="kfac", **kwargs):
        for option, default in _UNSUPPORTED_OPTIONS.items():
            if kwargs.get(option, default) != default:
                raise ValueError(f"KFAC does not support `{option}` (got {kwargs[option]!r}); "
                                 "give the first-order optimizer its own if it needs one")
        _check_positive("damping", damping)
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
            raise ValueError(f"KFAC: `decay` must be a number in [0, 1), got {decay!r}")
        if isinstance(inverse_frequency, bool) or not isinstance(inverse_frequency, int) \
                or inverse_frequency < 1:
            raise ValueError(
                f"KFAC: `inverse_frequency` must be an int >= 1, got {inverse_frequency!r}")
        if kl_clip is not None:
            _check_positive("kl_clip", kl_clip)
        if isinstance(first_order, dict):
            first_order = keras.saving.deserialize_keras_object(first_order)
        if first_order is not None and not isinstance(first_order, keras.optimizers.Optimizer):
            raise TypeError("KFAC: `first_order` must be a keras.optimizers.Optimizer or None, "
                            f"got {type(first_order).__name__}")
        if isinstance(learning_rate, (int, float)) and not isinstance(learning_rate, bool):
            _check_positive("learning_rate", learning_rate)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.damping = float(damping)
        self.decay = float(decay)
        self.inverse_frequency = inverse_frequency
        self.kl_clip = None if kl_clip is None else float(kl_clip)
        if first_order is None:
            first_order = SGD(learning_rate=learning_rate, momentum=0.9)
        self.first_order = first_order
        self._layers = []

    def track_layers(self, layers):
        """The Dense and Conv2D layers to precondition (KFACModel calls this before build)."""
        if self.built:
            raise ValueError("KFAC: track_layers() must come before the optimizer is built")
        self._layers = list(layers)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._kfac_ids = set()
        self._factors = []  # per layer: (A, G, A_inv, G_inv)
        for i, layer in enumerate(self._layers):
            a_dim, g_dim = layer_kinds.factor_sizes(layer)
            made = []
            for label, dim in (("A", a_dim), ("G", g_dim), ("A_inverse", a_dim),
                               ("G_inverse", g_dim)):
                made.append(self.add_variable((dim, dim), initializer="zeros",
                                              dtype="float32", name=f"kfac_{i}_{label}"))
            self._factors.append(tuple(made))
            self._kfac_ids.add(id(layer.kernel))
            if layer.bias is not None:
                self._kfac_ids.add(id(layer.bias))
        self.first_order.build([v for v in var_list if id(v) not in self._kfac_ids])

    def apply(self, grads, trainable_variables=None):
        raise RuntimeError(
            "KFAC needs each Dense and Conv2D layer's inputs and pre-activation gradients, which "
            "apply()/apply_gradients() do not see: wrap the model as "
            "kerasopt.KFACModel(model) and train it with fit() or train_on_batch()")

    def _maybe_refresh_inverses(self, refresh, factors):
        def refreshed():
            self._refresh_inverses(factors)
            return tf.constant(True)

        tf.cond(refresh, refreshed, lambda: tf.constant(False))

    def _refresh_inverses(self, factors):
        a, g, a_inv, g_inv = factors
        # Factored damping (Martens & Grosse 2015, section 6.3): pi balances the
        # two factors' average eigenvalues (trace norm).
        a_mean = tf.linalg.trace(a) / tf.cast(tf.shape(a)[0], tf.float32)
        g_mean = tf.linalg.trace(g) / tf.cast(tf.shape(g)[0], tf.float32)
        tiny = 1e-12
        pi = tf.sqrt(tf.maximum(a_mean, tiny) / tf.maximum(g_mean, tiny))
        root = tf.sqrt(tf.constant(self.damping, tf.float32))
        for factor, inverse, shift in ((a, a_inv, pi * root), (g, g_inv, root / pi)):
            # The inverse in float64: damped factors can still span many decades.
            damped = tf.cast(factor + shift * tf.eye(tf.shape(factor)[0]), tf.float64)
            inverse.assign(tf.cast(tf.linalg.inv(damped), tf.float32))

    def apply_kfac(self, grads, trainable_variables, records):
        """One step. records: per tracked layer, (inputs, pre-activation gradient), the
        batch first, in track_layers' order."""
        if not self.built:
            # As Keras's apply(): TF's trainer builds the optimizer on the first trace.
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
        grad_of = {id(v): g for g, v in zip(grads, trainable_variables)}
        first = tf.equal(self.iterations, 0)
        refresh = tf.equal(self.iterations % self.inverse_frequency, 0)
        steps = []
        for layer, factors, (inputs, pre_grad) in zip(self._layers, self._factors, records):
            a_fac, g_fac = factors[0], factors[1]
            batch_a, batch_g = layer_kinds.batch_factors(layer, inputs, pre_grad)
            for factor, new in ((a_fac, batch_a), (g_fac, batch_g)):
                factor.assign(tf.where(first, new, self.decay * factor + (1 - self.decay) * new))
            self._maybe_refresh_inverses(refresh, factors)
            units = layer.kernel.shape[-1]
            d_w = tf.reshape(tf.cast(grad_of[id(layer.kernel)], tf.float32), [-1, units])
            if layer.bias is not None:
                d_w = tf.concat([d_w, tf.cast(grad_of[id(layer.bias)], tf.float32)[None, :]],
                                axis=0)
            step = tf.matmul(tf.matmul(factors[2], d_w), factors[3])
            steps.append((layer, d_w, step))
        rate = tf.cast(self.learning_rate, tf.float32)
        scale = tf.constant(1.0)
        if self.kl_clip is not None and steps:
            v_dot_g = tf.add_n([tf.reduce_sum(step * d_w) for _, d_w, step in steps])
            scale = tf.minimum(1.0, tf.sqrt(self.kl_clip / tf.maximum(rate * rate * v_dot_g,
                                                                      1e-30)))
        for layer, _, step in steps:
            step = rate * scale * step
            rows = step.shape[0] - (1 if layer.bias is not None else 0)
            layer.kernel.assign_sub(tf.cast(tf.reshape(step[:rows], layer.kernel.shape),
                                            layer.kernel.dtype))
            if layer.bias is not None:
                layer.bias.assign_sub(tf.cast(step[rows], layer.bias.dtype))
            for variable in (layer.kernel, layer.bias):
                if variable is not None and variable.constraint is not None:
                    variable.assign(variable.constraint(variable))  # as Keras's apply()
        rest = [(g, v) for g, v in zip(grads, trainable_variables) if id(v) not in self._kfac_ids]
        if rest:
            self.first_order.apply([g for g, _ in rest], [v for _, v in rest])
        self.iterations.assign_add(1)

    def get_config(self):
        config = super().get_config()
        # Under kerasopt's name: only kerasopt reads this config, and it must give
        # back kerasopt's class (as kerasopt.Lookahead does for its inner optimizer).
        with saved_name.under_kerasopts_name(self.first_order):
            first_order = keras.saving.serialize_keras_object(self.first_order)
        config.update({
            "damping": self.damping,
            "decay": self.decay,
            "inverse_frequency": self.inverse_frequency,
            "kl_clip": self.kl_clip,
            "first_order": first_order,
        })
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["first_order"] = keras.saving.deserialize_keras_object(
            config["first_order"], custom_objects=custom_objects)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = keras.optimizers.schedules.deserialize(
                config["learning_rate"], custom_objects=custom_objects)
        return cls(**config)
