"""kerasopt.SOAP: Adam in the eigenbasis of Shampoo's preconditioners.

Variables of rank >= 2: kerasopt/fallback/soap.py's step, whose element-wise
Adam part runs as the fused op KerasoptApplySOAP (cc/tf/soap_op.cc) and whose
first eigenbases come from KerasoptSymmetricEigenbasis on the kernel path; the
statistics, refreshes and rotations are TF ops on both paths.
Variables of rank <= 1: kerasopt's Adam op (or its fallback).
"""

import keras
import tensorflow as tf

from kerasopt import op_library
from kerasopt.fallback import adam as adam_fallback
from kerasopt.fallback import compute_dtype
from kerasopt.fallback import soap as fallback
from kerasopt.fallback.blocks import matrix_layout
from kerasopt.optimizers.fused import (
    check_hyperparameter, check_learning_rate, check_shapes, runtime_shape_checks, tf_variable)
from kerasopt.optimizers.preconditioned import (
    PreconditionedOptimizer, check_positive_int, slot_name)


@keras.saving.register_keras_serializable(package="kerasopt")
class SOAP(PreconditionedOptimizer):
    """SOAP (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam").

    A variable of rank >= 2 is viewed and tiled as ``kerasopt.Shampoo`` does
    (shape [..., n] as a [prod(...), n] matrix, tiles of at most
    ``block_size`` x ``block_size``, zero-padded). With t = iterations + 1,
    per tile G::

        t >= 2:  G' = Q_L^T G Q_R,  k = t - 1 (Adam's count)
                 m = beta_1 m + (1 - beta_1) G',  v = beta_2 v + (1 - beta_2) G'^2
                 w = w - learning_rate * sqrt(1 - beta_2^k) / (1 - beta_1^k)
                         * Q_L (m / (sqrt(v) + epsilon)) Q_R^T
        then     L = shampoo_beta L + (1 - shampoo_beta) G G^T,  R likewise with G^T G
        t = 1:   Q_L, Q_R = eigenvectors of L, R (float64, largest eigenvalue first)
        t = 1 + j * precondition_frequency, j >= 1:  Q_L, Q_R = one QR step of power
                 iteration (the paper's Algorithm 4: columns ordered by diag(Q^T L Q),
                 Q = qr(L Q)); m is rotated into the new basis exactly; v's rows and
                 columns follow the reordered vectors (it is not rotated: a rotated
                 diagonal second moment is no longer diagonal; the paper does the same)

    As in the authors' code, step 1 only gathers statistics and computes the
    bases, and a step never projects with a basis that has seen its own
    gradient: in that basis the gradient's rotation is diagonal, and Adam would
    turn the rounding noise off the diagonal into steps of its own.

    Weight decay is Keras's decoupled decay (w -= learning_rate * weight_decay * w
    before the step). Variables of rank <= 1 take Adam with the same betas and
    epsilon, from step 1 (kerasopt.Adam's op).

    Unlike the authors' code, Keras's weight decay also applies at step 1.

    State: the statistics, the bases (float32 for 16-bit variables) and m, v
    (tile-shaped, in the rotated basis) are optimizer variables, so
    ``model.save`` and checkpoints carry them.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.003 (the paper's).
        beta_1, beta_2: Adam's, in the rotated basis. Defaults to 0.95, 0.95.
        shampoo_beta: decay of the statistics L, R, in [0, 1). Defaults to 0.95.
        epsilon: Adam's epsilon, >= 0. Defaults to 1e-8.
        precondition_frequency: steps between basis refreshes, >= 1. Defaults to 10.
        block_size: largest tile dimension, >= 1. Defaults to 128.
        weight_decay: decoupled weight decay. Defaults to 0.01 (the paper's).
        clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps,
        name: as in ``keras.optimizers.Optimizer``.
    """

    kernel_name = "SOAP"

    def __init__(
        self,
        learning_rate=0.003,
        beta_1=0.95,
        beta_2=0.95,
        shampoo_beta=0.95,
        epsilon=1e-8,
        precondition_frequency=10,
        block_size=128,
        weight_decay=0.01,
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
        self.beta_1 = check_hyperparameter("beta_1", beta_1, 0.0, 1.0)
        self.beta_2 = check_hyperparameter("beta_2", beta_2, 0.0, 1.0)
        self.shampoo_beta = check_hyperparameter("shampoo_beta", shampoo_beta, 0.0, 1.0)
        self.epsilon = check_hyperparameter("epsilon", epsilon, low=0.0)
        self.precondition_frequency = check_positive_int(
            "precondition_frequency", precondition_frequency)
        self.block_size = check_positive_int("block_size", block_size)

    @staticmethod
    def preconditioned(variable) -> bool:
        """Rank >= 2 variables get SOAP's bases; the others Adam."""
        return len(variable.shape) >= 2

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._soap_slots = []  # per variable: (L, R, Q_L, Q_R, m, v) or (m, v) for Adam
        for variable in var_list:
            if self.preconditioned(variable):
                layout = matrix_layout(variable.shape, self.block_size)
                moments_shape = (layout.num_blocks, layout.block_rows, layout.block_cols)
                dtype = compute_dtype(variable.dtype).name
                slots = (
                    self.add_matrix_slot(variable, layout.left_shape, "left_statistics"),
                    self.add_matrix_slot(variable, layout.right_shape, "right_statistics"),
                    self.add_matrix_slot(variable, layout.left_shape, "left_eigenbasis", 1.0),
                    self.add_matrix_slot(variable, layout.right_shape, "right_eigenbasis", 1.0),
                    *(self.add_variable(shape=moments_shape, initializer="zeros", dtype=dtype,
                                        name=slot_name(variable, what))
                      for what in ("momentum", "velocity")),
                )
            else:
                slots = tuple(self.add_variable_from_reference(variable, what)
                              for what in ("momentum", "velocity"))
            self._soap_slots.append(slots)

    def _adam_arguments(self):
        return dict(beta_1=self.hyperparameter(self.beta_1),
                    beta_2=self.hyperparameter(self.beta_2),
                    epsilon=self.hyperparameter(self.epsilon))

    def update_step(self, gradient, variable, learning_rate):
        variable = tf_variable(variable)
        self.check_built_for(variable)
        gradient = tf.cast(tf.convert_to_tensor(gradient), variable.dtype)
        check_shapes(variable, gradient, [])
        slots = [tf_variable(s) for s in self._soap_slots[self._get_variable_index(variable)]]
        step, learning_rate_f64 = self.step_inputs(learning_rate)
        with tf.control_dependencies(runtime_shape_checks(variable, gradient)):
            kernel = op_library.use_kernel(variable)
            ops = op_library.library().ops if kernel else None
            if not self.preconditioned(variable):
                if kernel:
                    # (a plain step: Keras's own passes run for SOAP)
                    ops.kerasopt_apply_adam(var=variable.handle, features=[],
                                            slots=[s.handle for s in slots],
                                            grad=gradient, learning_rate=learning_rate_f64,
                                            step=step, amsgrad=False, **self._adam_arguments())
                else:
                    adam_fallback.apply_adam(variable, gradient, *slots,
                                             learning_rate=learning_rate, step=step,
                                             amsgrad=False, **self._adam_arguments())
                return
            arguments = self._adam_arguments()
            fused = eigenbasis = None
            if kernel:
                def eigenbasis(statistics):
                    return ops.kerasopt_symmetric_eigenbasis(matrix=statistics)

                def fused(rotated_gradient, adam_step):
                    return ops.kerasopt_apply_soap(
                        momentum=slots[4].handle, velocity=slots[5].handle,
                        rotated_grad=rotated_gradient, learning_rate=learning_rate_f64,
                        step=adam_step, **arguments)
            fallback.apply_soap(
                variable, gradient, *slots, learning_rate=learning_rate_f64,
                shampoo_beta=self.hyperparameter(self.shampoo_beta), step=step,
                precondition_frequency=self.precondition_frequency,
                fused_rotated_adam=fused, eigenbasis=eigenbasis, **arguments)

    def get_config(self):
        config = super().get_config()
        config.update({
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "shampoo_beta": self.shampoo_beta,
            "epsilon": self.epsilon,
            "precondition_frequency": self.precondition_frequency,
            "block_size": self.block_size,
        })
        return config
