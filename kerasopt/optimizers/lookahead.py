"""kerasopt.Lookahead: k steps forward with any optimizer, 1 step back.

The sync's math: cc/kernels/lookahead.h; its op: cc/tf/lookahead_op.cc
(KerasoptLookaheadSync, one pass over the slow and fast weights of a variable);
its fallback: kerasopt/fallback/lookahead.py.
"""

import keras
import tensorflow as tf

from kerasopt import op_library
from kerasopt.fallback import lookahead as lookahead_fallback
from kerasopt.optimizers.fused import check_hyperparameter, tf_variable
from kerasopt.optimizers.wrapper import OptimizerWrapper, check_positive_int


@keras.saving.register_keras_serializable(package="kerasopt")
class Lookahead(OptimizerWrapper):
    """Lookahead (Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps
    forward, 1 step back", NeurIPS 2019, arXiv:1907.08610, Algorithm 1).

    Wraps any Keras optimizer (the "fast" one, e.g. ``kerasopt.Adam()``). The
    model's variables are the fast weights; for each, Lookahead keeps slow
    weights ``phi`` (an optimizer variable ``slow``, set to the variable's
    value at the wrapper's first step, before the inner update). After every ``sync_period``-th step of the
    inner optimizer (``iterations % k == 0``), with ``alpha = slow_step_size``::

        phi = phi + alpha * (w - phi)      (computed as alpha*w + (1-alpha)*phi)
        w   = phi

    in one fused op per variable (``KerasoptLookaheadSync``), or its
    composed-TF fallback where no kernel serves. ``alpha = 1`` gives the inner
    optimizer exactly (to the bit); so does ``k = 1, alpha = 1``.

    The slow weights are optimizer variables: ``model.save`` / load and
    ``tf.train.Checkpoint`` keep them, after the wrapper's own variables come
    the inner optimizer's. ``iterations`` and ``learning_rate`` are the inner
    optimizer's; ``get_config`` serializes it under ``"optimizer"``.
    The model keeps the fast weights when training ends (between syncs they
    are up to k - 1 steps ahead of the slow ones).

    A named combination (e.g. Ranger = RAdam inside Lookahead) is a subclass
    whose ``__init__`` builds the inner optimizer from its own arguments and
    calls ``super().__init__(inner, sync_period=..., slow_step_size=...)``,
    with ``get_config`` returning those arguments and ``from_config`` being
    ``cls(**config)``.

    Args:
        optimizer: the inner ``keras.optimizers.Optimizer`` (kerasopt's or
            Keras's). It must not use ``gradient_accumulation_steps``.
        sync_period: k, an integer >= 1. Defaults to 5 (the paper's choice).
        slow_step_size: alpha, in [0, 1]. Defaults to 0.5 (the paper's choice).
        name: the optimizer's name.
    """

    kernel_op = "KerasoptLookaheadSync"  # for `python -m kerasopt info`

    def __init__(self, optimizer, sync_period=5, slow_step_size=0.5, name=None, **kwargs):
        super().__init__(optimizer, name=name, **kwargs)
        self.sync_period = check_positive_int("sync_period", sync_period)
        self.slow_step_size = float(check_hyperparameter(
            "slow_step_size", slow_step_size, 0.0, 1.0, high_inclusive=True))

    def build_wrapper(self, var_list):
        # Zeros until the first step copies the weights in (see before_inner_step):
        # an initializer reading the model's variables could not be lifted out of
        # a train function that creates both (Keras builds lazily, XLA needs it).
        self._slow_weights = self.add_optimizer_variables(var_list, "slow")

    def slow_weights_for(self, variable):
        return self._slow_weights[self._get_variable_index(variable)]

    def before_inner_step(self, variables):
        def initialize():
            for variable, slow in zip(self._trainable_variables, self._slow_weights):
                if slow is not None:
                    tf_variable(slow).assign(tf_variable(variable).read_value())
            return tf.constant(True)

        tf.cond(tf.equal(self.wrapper_steps(), 0), initialize, lambda: tf.constant(False))

    def after_inner_step(self, variables):
        def sync():
            for variable in variables:
                self.sync_variable(variable)
            return tf.constant(True)

        due = tf.equal(self.step_count() % self.sync_period, 0)
        tf.cond(due, sync, lambda: tf.constant(False))

    def sync_variable(self, variable):
        """Runs the sync on one model variable and its slow weights."""
        slow = self.slow_weights_for(variable)
        if slow is None:  # overwrite_with_gradient variables get no slot (as in Keras)
            return
        slow, fast = tf_variable(slow), tf_variable(variable)
        if op_library.use_kernel(fast):
            op_library.library().ops.kerasopt_lookahead_sync(
                slow=slow.handle, fast=fast.handle, slow_step_size=self.slow_step_size,
                T=fast.dtype)
        else:
            lookahead_fallback.lookahead_sync(slow, fast, slow_step_size=self.slow_step_size)

    def get_config(self):
        config = super().get_config()
        config.update({"sync_period": self.sync_period, "slow_step_size": self.slow_step_size})
        return config
