"""kerasopt.FullMatrixAdagrad: AdaGrad with full (block-diagonal) matrix statistics.

The op: declared in cc/kernels/full_matrix_adagrad.h, run by
cc/tf/preconditioned_apply_op.h (KerasoptApplyFullMatrixAdagrad).
The fallback: kerasopt/fallback/full_matrix_adagrad.py.
"""

import keras
import tensorflow as tf

from kerasopt import op_library
from kerasopt.fallback import full_matrix_adagrad as fallback
from kerasopt.fallback.blocks import full_matrix_layout
from kerasopt.optimizers.fused import (
    check_hyperparameter, check_learning_rate, check_shapes, runtime_shape_checks, tf_variable)
from kerasopt.optimizers.preconditioned import (
    PreconditionedOptimizer, check_epsilon, check_positive_int)


@keras.saving.register_keras_serializable(package="kerasopt")
class FullMatrixAdagrad(PreconditionedOptimizer):
    """Full-matrix AdaGrad (Duchi, Hazan & Singer 2011), block-diagonal for large variables.

    The variable is flattened to g in R^d and cut into blocks of ``block_size``
    coordinates (the last one zero-padded; a variable with d <= block_size is
    one block, i.e. exact full-matrix AdaGrad). With t = iterations + 1, per
    block k::

        G_k = G_k + g_k g_k^T                   # G_k starts at initial_accumulator_value * I
        P_k = (G_k + epsilon I)^(-1/2)          # when (t - 1) % update_frequency == 0
        w_k = w_k - learning_rate * P_k g_k

    The inverse square root comes from a symmetric eigendecomposition in
    float64 (cc/kernels/matrix_root.h) and is recomputed only every
    ``update_frequency`` steps; in between, the stored P_k is used. With
    ``block_size=1`` this is Keras's diagonal Adagrad. Memory is
    2 * d * block_size numbers (statistics and preconditioner), in float32 for
    16-bit variables. With ``update_frequency > 1`` a gradient outside the span
    of the statistics the stored P_k was computed from is scaled by up to
    (initial_accumulator_value + epsilon)^(-1/2): keep that damping of the order
    of the squared gradients.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        initial_accumulator_value: G starts at this times the identity, >= 0
            (as Keras's Adagrad's accumulators). Defaults to 0.1.
        epsilon: damping of the root, > 0. Defaults to 1e-7.
        block_size: coordinates per block, >= 1. Defaults to 64.
        update_frequency: recompute the roots every this many steps. Defaults to 1.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
        ema_momentum, ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``.
    """

    kernel_name = "FullMatrixAdagrad"
    constant_hyperparameters = ("epsilon",)  # the damping of roots computed every few steps

    def __init__(
        self,
        learning_rate=0.001,
        initial_accumulator_value=0.1,
        epsilon=1e-7,
        block_size=64,
        update_frequency=1,
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
        self.initial_accumulator_value = check_hyperparameter(
            "initial_accumulator_value", initial_accumulator_value, low=0.0)
        self.epsilon = check_epsilon(epsilon)
        self.block_size = check_positive_int("block_size", block_size)
        self.update_frequency = check_positive_int("update_frequency", update_frequency)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._statistics, self._preconditioners = [], []
        for variable in var_list:
            layout = full_matrix_layout(variable.shape, self.block_size)
            self._statistics.append(self.add_matrix_slot(
                variable, layout.left_shape, "statistics",
                identity_scale=self.initial_accumulator_value))
            self._preconditioners.append(
                self.add_matrix_slot(variable, layout.left_shape, "preconditioner"))

    def update_step(self, gradient, variable, learning_rate):
        variable = tf_variable(variable)
        self.check_built_for(variable)
        gradient = tf.cast(tf.convert_to_tensor(gradient), variable.dtype)
        check_shapes(variable, gradient, [])
        i = self._get_variable_index(variable)
        statistics = tf_variable(self._statistics[i])
        preconditioner = tf_variable(self._preconditioners[i])
        step, learning_rate_f64 = self.step_inputs(learning_rate)
        with tf.control_dependencies(runtime_shape_checks(variable, gradient)):
            if op_library.use_kernel(variable):
                # (The op recomputes on the same steps, from step and update_frequency.)
                op_library.library().ops.kerasopt_apply_full_matrix_adagrad(
                    var=variable.handle, slots=[statistics.handle, preconditioner.handle],
                    features=[],  # (a plain step: Keras's own passes run for it)
                    grad=gradient, learning_rate=learning_rate_f64, step=step,
                    epsilon=self.epsilon, update_frequency=self.update_frequency)
            else:
                recompute = tf.equal((step - 1) % self.update_frequency, 0)
                fallback.apply_full_matrix_adagrad(
                    variable, gradient, statistics, preconditioner,
                    learning_rate=learning_rate, epsilon=self.epsilon, recompute=recompute)

    def get_config(self):
        config = super().get_config()
        config.update({
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
            "block_size": self.block_size,
            "update_frequency": self.update_frequency,
        })
        return config
