"""kerasopt.KFACModel: a model wrapper whose train_step feeds K-FAC its statistics.

During the forward pass of ``train_step`` each tracked Dense and Conv2D layer's ``call``
is replaced (on the instance, for that pass only) by the same math that also
keeps the layer's inputs and its pre-activation tensor; the tape then gives
the loss's gradient with respect to those pre-activations beside the weights'
gradients, and :meth:`kerasopt.KFAC.apply_kfac` takes all of it.
"""

import contextlib
import warnings

import keras
import tensorflow as tf

from kerasopt.kfac import layers as layer_kinds
from kerasopt.kfac.optimizer import KFAC


@contextlib.contextmanager
def _recording(layers):
    """Within: each layer's call also records (inputs, pre-activation) in records[i]."""
    records = [None] * len(layers)

    def recorder(i, layer):
        def call(inputs, training=None):
            if records[i] is not None:
                raise ValueError(
                    f"KFACModel: layer {layer.name!r} is called more than once per step; "
                    "K-FAC's factors here assume one call (shared layers are not supported)")
            pre = layer_kinds.pre_activation(layer, inputs)
            records[i] = (inputs, pre)
            return pre if layer.activation is None else layer.activation(pre)
        return call

    for i, layer in enumerate(layers):
        layer.call = recorder(i, layer)
    try:
        yield records
    finally:
        for layer in layers:
            del layer.call  # the class's call again


@keras.saving.register_keras_serializable(package="kerasopt")
class KFACModel(keras.Model):
    """Wraps a model so that ``fit`` trains its Dense and Conv2D layers with
    :class:`kerasopt.KFAC` (the other layers with its first-order optimizer)::

        model = kerasopt.KFACModel(keras.Sequential([...]))
        model.compile(optimizer=kerasopt.KFAC(0.01), loss="mse")
        model.fit(x, y)

    Calling the wrapper calls the wrapped model; only training differs.
    """

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, dict):
            model = keras.saving.deserialize_keras_object(model)
        if not isinstance(model, keras.Model):
            raise TypeError(f"KFACModel wraps a keras.Model, got {type(model).__name__}")
        self.wrapped = model

    def call(self, inputs, training=None):
        return self.wrapped(inputs, training=training)

    def compile(self, optimizer="rmsprop", **kwargs):
        if not isinstance(optimizer, KFAC):
            raise TypeError("KFACModel trains with a kerasopt.KFAC optimizer, got "
                            f"{optimizer!r}")
        super().compile(optimizer=optimizer, **kwargs)
        optimizer.track_layers(self.kfac_layers)
        skipped = self.first_order_layers
        if skipped:
            warnings.warn("KFACModel: these layers take the first-order optimizer, not K-FAC: "
                          + "; ".join(f"{name!r}: {why}" for name, why in skipped.items()),
                          stacklevel=2)

    def compile_from_config(self, config):
        # Keras skips a custom compile() on load; this one only adds
        # track_layers, so loading may run it as Keras runs its own.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)  # to load its variables into

    @property
    def kfac_layers(self):
        # Found afresh, not kept in an attribute: Keras would save the layers'
        # weights under that attribute, first, and load would then miss them.
        return layer_kinds.kfac_layers(self.wrapped)

    @property
    def first_order_layers(self):
        """{name: reason} for the Dense and Conv2D layers left to the first-order optimizer."""
        return layer_kinds.first_order_layers(self.wrapped)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            with _recording(self.kfac_layers) as records:
                y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                     training=True)
        missing = [l.name for l, r in zip(self.kfac_layers, records) if r is None]
        if missing:
            raise ValueError(f"KFACModel: layers {missing} were not called in the "
                             "forward pass; K-FAC needs every tracked layer's statistics")
        variables = self.trainable_variables
        pre_activations = [pre for _, pre in records]
        grads = tape.gradient(loss, variables + pre_activations)
        weight_grads, pre_grads = grads[:len(variables)], grads[len(variables):]
        self.optimizer.apply_kfac(weight_grads, variables,
                                  [(inputs, g) for (inputs, _), g in zip(records, pre_grads)])
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss, sample_weight=tf.shape(tf.nest.flatten(x)[0])[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def get_config(self):
        config = super().get_config()
        config["model"] = keras.saving.serialize_keras_object(self.wrapped)
        return config
