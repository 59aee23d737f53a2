"""AdamW as composed TF ops: the same math as cc/kernels/adamw.h.

The decay and the Adam step are computed together and written once (as the
fused kernel does), so 16-bit variables are rounded once, not twice.
"""

from kerasopt.fallback import compute_dtype, read
from kerasopt.fallback.adam import apply_adam
from kerasopt.fallback.decoupled_decay import decay


def apply_adamw(variable, gradient, momentum, velocity, velocity_hat=None, *,
                learning_rate, weight_decay, beta_1, beta_2, epsilon, step, amsgrad):
    """One AdamW step on tf.Variables; `step` is iterations + 1.

    `weight_decay` is 0 for variables excluded from weight decay.
    """
    w = decay(read(variable, compute_dtype(variable.dtype)), variable,
              weight_decay=weight_decay, learning_rate=learning_rate)
    apply_adam(variable, gradient, momentum, velocity, velocity_hat,
               learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
               epsilon=epsilon, step=step, amsgrad=amsgrad, weight=w)
