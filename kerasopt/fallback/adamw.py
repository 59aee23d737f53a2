"""AdamW as composed TF ops: the same math as cc/kernels/adamw.h.

The decay and the Adam step are computed together and written once (as the
fused kernel does), so 16-bit variables are rounded once, not twice.
"""

import tensorflow as tf

from kerasopt.fallback import compute_dtype, constant, read
from kerasopt.fallback.adam import apply_adam


def apply_adamw(variable, gradient, momentum, velocity, velocity_hat=None, *,
                learning_rate, weight_decay, beta_1, beta_2, epsilon, step, amsgrad):
    """One AdamW step on tf.Variables; `step` is iterations + 1.

    `weight_decay` is 0 for variables excluded from weight decay.
    """
    c = compute_dtype(variable.dtype)
    w = read(variable, c)
    if tf.is_tensor(weight_decay) or weight_decay != 0:  # a variable may become nonzero
        lr = tf.cast(learning_rate, c)
        wd = constant(weight_decay, c)
        # As Keras's w * wd * lr after Grappler's regrouping (see adamw.h).
        size = variable.shape.num_elements()
        if size is None or size > 1:
            w = w - w * (wd * lr)
        else:
            w = w - (w * wd) * lr
    apply_adam(variable, gradient, momentum, velocity, velocity_hat,
               learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
               epsilon=epsilon, step=step, amsgrad=amsgrad, weight=w)
