"""Keras's decoupled weight decay, w - w * weight_decay * learning_rate, as
the optimizers that fold it into their update compute it (the same math as
cc/kernels/decoupled_decay.h)."""

import tensorflow as tf

from kerasopt.fallback import constant


def decay(weight, variable, *, weight_decay, learning_rate):
    """`weight` (the variable's value in the compute dtype) after the decay.

    Keras writes w * wd * lr; in a graph (tf.function, model.fit) Grappler's
    arithmetic optimizer regroups it as w * (wd * lr) whenever w has more than
    one element, so the scalar product is rounded first. Variables of one
    element keep (w * wd) * lr. `weight_decay` is 0 for excluded variables.
    """
    if not tf.is_tensor(weight_decay) and weight_decay == 0:  # a variable may become nonzero
        return weight
    c = weight.dtype
    lr = tf.cast(learning_rate, c)
    wd = constant(weight_decay, c)
    size = variable.shape.num_elements()
    if size is None or size > 1:
        return weight - weight * (wd * lr)
    return weight - (weight * wd) * lr
