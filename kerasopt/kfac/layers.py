"""The layers K-FAC preconditions, and per layer kind: the forward pass that
also records what the factors need, the factors' sizes, and one batch's factors.

Dense (Martens & Grosse 2015): a = the layer's inputs, g = the gradient of
the loss with respect to its pre-activations, one row per example.

Conv2D (KFC, Grosse & Martens 2016): a = each extracted input patch
(kh * kw * cin values, in the order of the kernel's first three axes), g = the
pre-activation gradient at each output position; one row per (example,
position). A is their mean over all rows; G sums over the |T| positions of an
example and averages over examples (|T| times the mean over all rows), so
that A (x) G is the paper's Omega (x) Gamma, |T| E[a a^T] (x) E[g g^T].
"""

import keras
import tensorflow as tf


def layers_within(model):
    """Every layer of a model, nested models included, each once, in order."""
    found, seen = [], set()

    def walk(layer):
        for sub in getattr(layer, "layers", []):
            if id(sub) not in seen:
                seen.add(id(sub))
                found.append(sub)
                walk(sub)

    walk(model)
    return found


def _unsupported(layer):
    """Why K-FAC does not precondition this Dense or Conv2D layer, or None if it does."""
    if getattr(layer, "quantization_mode", None):
        return f"quantized ({layer.quantization_mode})"
    if getattr(layer, "lora_enabled", False):
        return "LoRA is enabled"
    if type(layer) is keras.layers.Conv2D:
        if layer.groups != 1:
            return f"groups={layer.groups} (only groups=1 is supported)"
        if tuple(layer.dilation_rate) != (1, 1):
            return (f"dilation_rate={tuple(layer.dilation_rate)} "
                    "(only (1, 1) is supported)")
        if layer.data_format != "channels_last":
            return f"data_format={layer.data_format!r} (only 'channels_last' is supported)"
    return None


def _candidates(model):
    return [layer for layer in layers_within(model)
            if type(layer) in (keras.layers.Dense, keras.layers.Conv2D) and layer.trainable]


def kfac_layers(model):
    """The trainable Dense and Conv2D layers K-FAC preconditions."""
    return [layer for layer in _candidates(model) if _unsupported(layer) is None]


def first_order_layers(model):
    """{name: reason} for the trainable Dense and Conv2D layers that K-FAC leaves to
    its first-order optimizer."""
    return {layer.name: reason for layer in _candidates(model)
            if (reason := _unsupported(layer)) is not None}


def factor_sizes(layer):
    """(rows of A, rows of G): the kernel as a (fan_in [+ 1 for the bias], units) matrix."""
    shape = layer.kernel.shape
    fan_in = 1
    for size in shape[:-1]:
        fan_in *= size
    return fan_in + (1 if layer.bias is not None else 0), shape[-1]


def pre_activation(layer, inputs):
    """The layer's output before its activation, as the layer's own call computes it."""
    if type(layer) is keras.layers.Dense:
        if len(inputs.shape) != 2:
            raise ValueError(
                f"KFACModel: Dense layer {layer.name!r} gets inputs of rank "
                f"{len(inputs.shape)}; K-FAC here supports rank-2 inputs (batch, features)")
        pre = tf.matmul(inputs, layer.kernel)
    else:
        pre = layer.convolution_op(inputs, layer.kernel)
    if layer.bias is not None:
        pre = pre + layer.bias  # the last axis: channels_last (the only one tracked)
    return pre


def _patches(layer, inputs):
    """(batch * positions, kh * kw * cin): each output position's input patch."""
    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    patches = tf.image.extract_patches(inputs, sizes=[1, kh, kw, 1], strides=[1, sh, sw, 1],
                                       rates=[1, 1, 1, 1], padding=layer.padding.upper())
    return tf.reshape(patches, [-1, patches.shape[-1]])


def batch_factors(layer, inputs, pre_grad):
    """This batch's (A, G) in float32. pre_grad is the gradient of the batch-mean loss
    with respect to the pre-activation (each example's row carries 1/batch)."""
    inputs, pre_grad = tf.cast(inputs, tf.float32), tf.cast(pre_grad, tf.float32)
    batch = tf.cast(tf.shape(pre_grad)[0], tf.float32)
    if type(layer) is keras.layers.Conv2D:
        a = _patches(layer, inputs)
        g = tf.reshape(pre_grad, [-1, pre_grad.shape[-1]])
    else:
        a, g = inputs, pre_grad
    if layer.bias is not None:
        a = tf.concat([a, tf.ones_like(a[:, :1])], axis=1)
    rows = tf.cast(tf.shape(a)[0], tf.float32)  # batch * positions (positions 1 for Dense)
    per_example = g * batch  # undoes the loss's batch mean
    a_factor = tf.matmul(a, a, transpose_a=True) / rows
    g_factor = tf.matmul(per_example, per_example, transpose_a=True) / batch
    return a_factor, g_factor
