"""kerasopt.Shampoo: blocked Shampoo with learning-rate grafting.

The op: declared in cc/kernels/shampoo.h, run by cc/tf/preconditioned_apply_op.h
(KerasoptApplyShampoo). The fallback:
kerasopt/fallback/shampoo.py. Variables of rank <= 1 take the grafted
optimizer's own fused op (Adam, SGD, or Adagrad without grafting).
"""

import keras
import tensorflow as tf

from kerasopt import op_library
from kerasopt.fallback import adagrad as adagrad_fallback
from kerasopt.fallback import adam as adam_fallback
from kerasopt.fallback import sgd as sgd_fallback
from kerasopt.fallback import shampoo as fallback
from kerasopt.fallback.blocks import matrix_layout
from kerasopt.optimizers.fused import (
    check_hyperparameter, check_learning_rate, check_shapes, runtime_shape_checks,
    tf_variable)
from kerasopt.optimizers.preconditioned import (
    PreconditionedOptimizer, check_epsilon, check_positive_int)

GRAFTINGS = ("adam", "sgd", None)


@keras.saving.register_keras_serializable(package="kerasopt")
class Shampoo(PreconditionedOptimizer):
    """Shampoo (Gupta, Koren & Singer 2018) with blocking and grafting (Anil et al. 2020).

    A variable of rank >= 2 is viewed as a matrix G of shape
    [prod(shape[:-1]), shape[-1]] and cut into tiles of at most
    ``block_size`` x ``block_size`` (zero-padded at the edges). With
    t = iterations + 1, per tile::

        L = L + G G^T,   R = R + G^T G                       # every step
        P_L = (L + epsilon I)^(-1/4),  P_R = (R + epsilon I)^(-1/4)
                  # when t >= start_preconditioning_step and
                  # (t - start_preconditioning_step) % precondition_frequency == 0
        D = P_L G P_R

    and the variable takes the grafted optimizer's step size with Shampoo's
    direction (one norm per variable)::

        A = grafted step without the learning rate  # Adam: alpha_t m / (sqrt(v) + grafting_epsilon)
                                                    # SGD: g
        w = w - learning_rate * (|A| / |D|) * D       # A itself while t < start or D = 0
        w = w - learning_rate * D                     # grafting=None (SGD while t < start)

    so Shampoo takes Adam's (or SGD's) learning rates. Adam's moments use
    Keras's Adam formulas (``beta_1``, ``beta_2``, ``grafting_epsilon``).
    Variables of rank <= 1 get the diagonal update of the grafted optimizer
    (kerasopt's Adam or SGD op; with grafting=None, Adagrad's diagonal
    accumulator starting at 0, the rank-1 case of Shampoo). The inverse
    fourth roots come from symmetric eigendecompositions in float64
    (cc/kernels/matrix_root.h) and run only on the recompute steps; the
    statistics, preconditioners and grafting moments are optimizer variables,
    so ``model.save`` and checkpoints carry them.

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.001.
        block_size: largest tile dimension, >= 1. Defaults to 128.
        precondition_frequency: steps between root recomputations, >= 1. Defaults to 20.
        start_preconditioning_step: first step that uses the preconditioners, >= 1;
            the grafted optimizer runs alone before it. Defaults to 10.
        epsilon: damping of the roots, > 0. Defaults to 1e-6.
        grafting: "adam", "sgd" or None. Defaults to "adam".
        beta_1, beta_2, grafting_epsilon: the grafted Adam's. Defaults 0.9, 0.999, 1e-7.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
        ema_momentum, ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps, name: as in ``keras.optimizers.Optimizer``.
    """

    kernel_name = "Shampoo"
    constant_hyperparameters = ("epsilon",)  # the damping of roots computed every few steps

    def __init__(
        self,
        learning_rate=0.001,
        block_size=128,
        precondition_frequency=20,
        start_preconditioning_step=10,
        epsilon=1e-6,
        grafting="adam",
        beta_1=0.9,
        beta_2=0.999,
        grafting_epsilon=1e-7,
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
        self.block_size = check_positive_int("block_size", block_size)
        self.precondition_frequency = check_positive_int(
            "precondition_frequency", precondition_frequency)
        self.start_preconditioning_step = check_positive_int(
            "start_preconditioning_step", start_preconditioning_step)
        self.epsilon = check_epsilon(epsilon)
        if isinstance(grafting, str) and grafting.lower() == "none":
            grafting = None
        if grafting not in GRAFTINGS:
            raise ValueError(f"`grafting` must be one of {GRAFTINGS}, got {grafting!r}")
        self.grafting = grafting
        self.beta_1 = check_hyperparameter("beta_1", beta_1, 0.0, 1.0)
        self.beta_2 = check_hyperparameter("beta_2", beta_2, 0.0, 1.0)
        self.grafting_epsilon = check_hyperparameter("grafting_epsilon", grafting_epsilon, low=0.0)

    @staticmethod
    def preconditioned(variable) -> bool:
        """Rank >= 2 variables get Shampoo's matrices; the others the diagonal update."""
        return len(variable.shape) >= 2

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._matrices = []     # per variable: (L, R, P_L, P_R) or ()
        self._graft_slots = []  # per variable: (m, v) for Adam, (acc,) for 1-D without grafting
        for variable in var_list:
            matrices = ()
            if self.preconditioned(variable):
                layout = matrix_layout(variable.shape, self.block_size)
                matrices = (
                    self.add_matrix_slot(variable, layout.left_shape, "left_statistics"),
                    self.add_matrix_slot(variable, layout.right_shape, "right_statistics"),
                    self.add_matrix_slot(variable, layout.left_shape, "left_preconditioner"),
                    self.add_matrix_slot(variable, layout.right_shape, "right_preconditioner"),
                )
            if self.grafting == "adam":
                graft = tuple(self.add_variable_from_reference(variable, name)
                              for name in ("momentum", "velocity"))
            elif self.grafting is None and not matrices:
                graft = (self.add_variable_from_reference(variable, "accumulator"),)
            else:
                graft = ()
            self._matrices.append(matrices)
            self._graft_slots.append(graft)

    def _adam_arguments(self):
        return dict(beta_1=self.hyperparameter(self.beta_1),
                    beta_2=self.hyperparameter(self.beta_2),
                    epsilon=self.hyperparameter(self.grafting_epsilon))

    def update_step(self, gradient, variable, learning_rate):
        variable = tf_variable(variable)
        self.check_built_for(variable)
        gradient = tf.cast(tf.convert_to_tensor(gradient), variable.dtype)
        check_shapes(variable, gradient, [])
        i = self._get_variable_index(variable)
        matrices = [tf_variable(s) for s in self._matrices[i]]
        graft = [tf_variable(s) for s in self._graft_slots[i]]
        step, learning_rate_f64 = self.step_inputs(learning_rate)
        with tf.control_dependencies(runtime_shape_checks(variable, gradient)):
            kernel = op_library.use_kernel(variable)
            if matrices:
                self._shampoo_step(kernel, variable, gradient, matrices, graft,
                                   learning_rate, learning_rate_f64, step)
            else:
                self._diagonal_step(kernel, variable, gradient, graft,
                                    learning_rate, learning_rate_f64, step)

    def _shampoo_step(self, kernel, variable, gradient, matrices, graft,
                      learning_rate, learning_rate_f64, step):
        beta_1, beta_2, graft_epsilon = (self.hyperparameter(self.beta_1),
                                         self.hyperparameter(self.beta_2),
                                         self.hyperparameter(self.grafting_epsilon))
        if kernel:
            # (The op preconditions and recomputes on the same steps as below.)
            op_library.library().ops.kerasopt_apply_shampoo(
                var=variable.handle, slots=[s.handle for s in matrices + graft], grad=gradient,
                features=[],  # (a plain step: Keras's own passes run for Shampoo)
                learning_rate=learning_rate_f64, step=step, epsilon=self.epsilon,
                beta_1=beta_1, beta_2=beta_2, graft_epsilon=graft_epsilon,
                precondition_frequency=self.precondition_frequency,
                start_preconditioning_step=self.start_preconditioning_step,
                adam_grafting=self.grafting == "adam", sgd_grafting=self.grafting == "sgd")
        else:
            start = self.start_preconditioning_step
            precondition = step >= start
            recompute = tf.logical_and(
                precondition, tf.equal((step - start) % self.precondition_frequency, 0))
            fallback.apply_shampoo(
                variable, gradient, *matrices, graft,
                learning_rate=learning_rate, epsilon=self.epsilon, beta_1=beta_1,
                beta_2=beta_2, graft_epsilon=graft_epsilon, step=step, recompute=recompute,
                precondition=precondition, grafting=self.grafting or "none")

    def _diagonal_step(self, kernel, variable, gradient, graft,
                       learning_rate, learning_rate_f64, step):
        ops = op_library.library().ops if kernel else None
        if self.grafting == "adam":
            if kernel:
                ops.kerasopt_apply_adam(var=variable.handle, features=[], slots=[s.handle for s in graft],
                                        grad=gradient, learning_rate=learning_rate_f64,
                                        step=step, amsgrad=False, **self._adam_arguments())
            else:
                adam_fallback.apply_adam(variable, gradient, *graft, learning_rate=learning_rate,
                                         step=step, amsgrad=False, **self._adam_arguments())
        elif self.grafting == "sgd":
            if kernel:
                ops.kerasopt_apply_sgd(var=variable.handle, features=[], slots=[], grad=gradient,
                                       learning_rate=learning_rate_f64, step=step,
                                       momentum=0.0, nesterov=False)
            else:
                sgd_fallback.apply_sgd(variable, gradient, None, learning_rate=learning_rate,
                                       momentum=0.0, nesterov=False)
        else:
            if kernel:
                ops.kerasopt_apply_adagrad(var=variable.handle, features=[], slots=[graft[0].handle],
                                           grad=gradient, learning_rate=learning_rate_f64,
                                           step=step, epsilon=self.epsilon)
            else:
                adagrad_fallback.apply_adagrad(variable, gradient, graft[0],
                                               learning_rate=learning_rate, epsilon=self.epsilon)

    def get_config(self):
        config = super().get_config()
        config.update({
            "block_size": self.block_size,
            "precondition_frequency": self.precondition_frequency,
            "start_preconditioning_step": self.start_preconditioning_step,
            "epsilon": self.epsilon,
            "grafting": self.grafting,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "grafting_epsilon": self.grafting_epsilon,
        })
        return config
