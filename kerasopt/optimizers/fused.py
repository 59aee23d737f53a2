"""The base class of kerasopt's optimizers: Keras semantics, fused updates.

Keras's ``Optimizer.apply`` does everything around the update itself (learning
rate schedules, gradient clipping and scaling, weight decay, gradient
accumulation, EMA, ``iterations``) and calls ``update_step`` once per
variable. kerasopt keeps all of that and only replaces ``update_step``: it
sends the variable, its gradient and its slots either to the fused C++ op or to
the composed-TF fallback (see :mod:`kerasopt.op_library` for the choice).

A subclass provides ``build`` (its slots, named as in Keras), ``slots_for``,
``kernel_hyperparameters`` (its op's inputs besides the learning rate and the
step) and ``apply_fallback``.

Sparse gradients (``tf.IndexedSlices``, e.g. from ``keras.layers.Embedding``)
update only the rows they name when that is exact for the rule
(``sparse_rows_exact``) or the optimizer was built with ``lazy=True`` (where
``supports_lazy``); otherwise they are densified and the dense update runs.
See :mod:`kerasopt.optimizers.sparse_update`.
"""

from __future__ import annotations

import contextlib
import numbers

import keras
import tensorflow as tf

from kerasopt import op_library
from kerasopt.backend_check import require_tensorflow_backend
from kerasopt.optimizers import multi_tensor, saved_name, slot_storage, sparse_update, step_checks
from kerasopt.optimizers import gradient_accumulation, mirrored_conds, step_features
from kerasopt.optimizers import nonfinite as nonfinite_policy
from kerasopt.optimizers.step_checks import variable_name


def tf_variable(variable):
    """The tf.Variable behind a keras.Variable (or the argument itself)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def check_shapes(variable, gradient, slots) -> None:
    """Raises InvalidArgumentError, naming the variable, when shapes disagree.

    (The op checks again at run time; this catches it while tracing, with the
    variable's name.)
    """
    want = tf.TensorShape(variable.shape)
    others = [("its gradient", gradient)] + [
        (f"its slot '{variable_name(s)}'", s) for s in slots
    ]
    for what, tensor in others:
        got = tf.TensorShape(tensor.shape)
        if not want.is_compatible_with(got):
            raise tf.errors.InvalidArgumentError(
                None, None,
                f"kerasopt: variable '{variable_name(variable)}' has shape "
                f"{want.as_list()} but {what} has shape {got.as_list()}",
            )


def runtime_shape_checks(variable, gradient) -> list:
    """Assert ops for a gradient whose shape is only known when the step runs."""
    if tf.executing_eagerly() or tf.TensorShape(gradient.shape).is_fully_defined():
        return []  # check_shapes settled it while tracing
    want = tf.TensorShape(variable.shape).as_list()
    got = tf.strings.reduce_join(tf.strings.as_string(tf.shape(gradient)), separator=", ")
    message = tf.strings.join([
        f"kerasopt: variable '{variable_name(variable)}' has shape {want} "
        "but its gradient has shape [", got, "]"])
    same = tf.equal(got, ", ".join(str(d) for d in want))
    return [tf.debugging.Assert(same, [message])]


def _bounds_text(low, high, high_inclusive) -> str:
    def number(x):
        return f"{x:g}"
    if low is not None and high is not None:
        return f"in [{number(low)}, {number(high)}{']' if high_inclusive else ')'}"
    if low is not None:
        return f">= {number(low)}"
    return f"<= {number(high)}" if high_inclusive else f"< {number(high)}"


def check_hyperparameter(name, value, low=None, high=None, high_inclusive=False,
                         keras_message=None):
    """Validates a float hyperparameter at construction; returns it unchanged.

    ``low`` is inclusive; ``high`` is exclusive unless ``high_inclusive``. A
    variable is checked at its value now (it is read again at each step; see
    :func:`hyperparameter`). ``keras_message``: where Keras validates the same
    argument, its wording (``{value}`` is replaced), so code that matches
    Keras's messages keeps working; the exception is Keras's ValueError.
    """
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) != 0:
        raise ValueError(f"`{name}` must be a scalar, got shape {tuple(shape)}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        try:  # accept 0-d tensors, variables and NumPy scalars, as Keras does
            number = float(tf.convert_to_tensor(value))
        except (TypeError, ValueError):
            raise ValueError(f"`{name}` must be a float, got {value!r}") from None
    else:
        number = float(value)
    too_low = low is not None and not number >= low
    too_high = high is not None and not (number <= high if high_inclusive else number < high)
    if too_low or too_high or number != number:
        if keras_message is not None:
            raise ValueError(keras_message.format(value=value))
        raise ValueError(f"`{name}` must be {_bounds_text(low, high, high_inclusive)}, "
                         f"got {value!r}")
    return value


def is_constant(value) -> bool:
    """True for a hyperparameter that cannot change: a Python or NumPy number,
    or an eager tensor. A variable (tf.Variable, keras.Variable) can."""
    if isinstance(value, (tf.Variable, keras.Variable)):
        return False
    return not tf.is_tensor(value) or hasattr(value, "numpy")


def hyperparameter(value):
    """A hyperparameter as the ops and fallbacks take it.

    A constant is a Python float (the ops take it as a constant input). A
    variable is read at each step, as Keras reads its own hyperparameters:
    its value as a float64 tensor (exact for float32 and float64 values), so
    assigning it a new value changes the next step.
    """
    if is_constant(value):
        return float(value)
    return tf.cast(tf.convert_to_tensor(value), tf.float64)


def check_constant(name, value, message=None):
    """Raises ValueError unless `value` is a constant (see is_constant): for a
    hyperparameter that decides which slots exist. `message` (with
    ``{value}``) replaces the default words."""
    if not is_constant(value):
        raise ValueError((message or (
            f"`{name}` must be a float, not a variable or tensor: its value decides which "
            f"slots the optimizer keeps. Received: {name}={{value}}")).format(value=value))
    return value


def check_learning_rate(learning_rate):
    """Negative constant learning rates are rejected; schedules are taken as they are.

    A tensor or array must be a scalar (the ops take one learning rate per step).
    """
    if isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool):
        check_hyperparameter("learning_rate", learning_rate, low=0.0)
    shape = getattr(learning_rate, "shape", None)
    if shape is not None and not callable(learning_rate) and len(shape) != 0:
        raise ValueError(f"`learning_rate` must be a scalar, got shape {tuple(shape)}")
    return learning_rate


# Keras's base optimizer. A kerasopt class that Keras also has derives from
# Keras's class too (``class Adam(FusedOptimizer, keras.optimizers.Adam)``), for
# its type only: FusedOptimizer comes first in the MRO and calls this base
# directly where Keras's algorithm classes override it (``__init__``, ``build``,
# ``get_config``, ``_backend_update_step``), so none of their code runs; the
# kerasopt class makes the same attributes and optimizer variables itself.
KERAS_BASE = keras.optimizers.Optimizer


def keras_counterpart(cls):
    """The Keras optimizer class `cls` derives from under its own name (e.g.
    ``keras.optimizers.Adam`` for ``kerasopt.Adam``), or None."""
    for base in cls.__mro__[1:]:
        if (base.__name__ == cls.__name__ and issubclass(base, KERAS_BASE)
                and base.__module__.split(".")[0] == "keras"):
            return base
    return None


def dense_gradient(gradient, variable):
    """`gradient` (a tensor or IndexedSlices) as a dense tensor of the variable's
    dtype. A densified IndexedSlices traced in a graph has no static shape; it
    gets the variable's (checked when it runs), as fallbacks that read static
    dimensions (Adafactor's) need it."""
    sparse = isinstance(gradient, tf.IndexedSlices)
    gradient = tf.cast(tf.convert_to_tensor(gradient), variable.dtype)
    # Only a densified IndexedSlices: a dense gradient of unknown shape is
    # left to the step's checks, whose error names the variable.
    if sparse and not gradient.shape.is_fully_defined() and \
            gradient.shape.is_compatible_with(variable.shape):
        gradient = tf.ensure_shape(gradient, variable.shape)
    return gradient


class FusedOptimizer(KERAS_BASE):
    """A Keras optimizer whose per-variable update is a fused kernel (or its fallback).

    Every subclass takes ``nonfinite="propagate" | "skip" | "raise"`` (see
    :mod:`kerasopt.optimizers.nonfinite`) through its ``**kwargs``, and those
    with ``supports_slot_dtype`` ``slot_dtype=None | "float32"`` (float32
    slots for bfloat16/float16 variables; see
    :mod:`kerasopt.optimizers.slot_storage`).
    """

    # Name of the update rule, as declared in cc/kernels: "Adam" → ops
    # KerasoptApplyAdam (dense), KerasoptSparseApplyAdam, KerasoptMultiApplyAdam
    # when they exist.
    kernel_name: str = ""

    # How many of slots_for's trailing slots hold one value per variable
    # (shape ()), like NovoGrad's layer-wise second moment; the others have
    # the variable's shape.
    per_variable_slots: int = 0

    # Whether `lazy=True` is accepted: the rule is per element, so running it
    # over the touched rows only is well defined (not for per-variable norms).
    supports_lazy: bool = False

    # Whether `slot_dtype="float32"` is accepted: the kernels' drivers take
    # float32 slots for 16-bit variables (the per-element drivers do; the norm,
    # layer-wise and preconditioned ones do not yet).
    supports_slot_dtype: bool = True

    # Float hyperparameters that must be Python numbers, not variables (the
    # constructor refuses a variable): their value decides which slots exist
    # (momentum). Every other float hyperparameter may be a variable, read at
    # each step as Keras reads its own (see `hyperparameter`).
    constant_hyperparameters: tuple = ()

    # Whether Keras's clipping, weight decay and EMA passes run inside this
    # optimizer's fused update (kerasopt/optimizers/step_features.py): the
    # classes whose rule is element-wise (their dense and multi-tensor ops
    # take the step's features) say so.
    fuses_step_features: bool = False

    # Whether the weight decay is the rule's own (AdamW's, in its op): then
    # `_apply_weight_decay` does nothing, and Keras's decay pass is none.
    decays_in_rule: bool = False

    # kerasopt's own options that the class takes through **kwargs (so that
    # its signature stays Keras's), with their defaults: set to anything else,
    # the optimizer is saved under kerasopt's name (saved_name.py).
    keyword_options: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        keras_class = keras_counterpart(cls)
        if keras_class is not None:
            saved_name.register(cls, keras_class)

    def __new__(cls, *args, **kwargs):
        # With one of kerasopt's options, an instance of the private subclass
        # saved under kerasopt's name rather than Keras's (saved_name.py).
        return super().__new__(saved_name.class_for(cls, args, kwargs))

    def __reduce__(self):
        # pickle goes through Keras's saving library: saved under kerasopt's
        # name (not Keras's, as a file is), so it unpickles as kerasopt's.
        with saved_name.under_kerasopts_name(self):
            _, arguments = super().__reduce__()
        return saved_name.public_class(type(self))._unpickle_model, arguments

    def __init__(self, *args, lazy=False, nonfinite="propagate", slot_dtype=None, **kwargs):
        require_tensorflow_backend(type(self).__name__)
        KERAS_BASE.__init__(self, *args, **kwargs)  # not a Keras algorithm class's (see KERAS_BASE)
        self.nonfinite = nonfinite_policy.check_mode(nonfinite)
        if not isinstance(lazy, bool):
            raise ValueError(f"`lazy` must be True or False, got {lazy!r}")
        if lazy and not self.supports_lazy:
            raise ValueError(
                f"{type(self).__name__} has no lazy sparse update (`lazy=True`): "
                "its update is not per element")
        self.lazy = lazy
        self.slot_dtype = slot_storage.check_slot_dtype(slot_dtype, self)

    def sparse_rows_exact(self) -> bool:
        """True when a zero gradient leaves a row (and its slots) unchanged, so
        updating only the rows an IndexedSlices gradient names is the dense update."""
        return False

    def get_config(self):
        config = KERAS_BASE.get_config(self)
        # Only when set: a default config stays Keras's own (loadable by the
        # keras.optimizers class of the same name).
        if self.lazy:
            config["lazy"] = True
        if self.nonfinite != "propagate":
            config["nonfinite"] = self.nonfinite
        if self.slot_dtype is not None:
            config["slot_dtype"] = self.slot_dtype
        return config

    _building_keras_state = False

    def build(self, var_list):
        # Keras's own per-variable state (EMA averages, gradient accumulators)
        # keeps the variable's dtype; only the slots the subclass adds after
        # this follow slot_dtype.
        self._building_keras_state = True
        try:
            KERAS_BASE.build(self, var_list)
        finally:
            self._building_keras_state = False

    def add_variable_from_reference(self, reference_variable, name=None, initializer="zeros"):
        """Keras's slot creation; with ``slot_dtype="float32"``, 16-bit
        variables get float32 slots (see :mod:`kerasopt.optimizers.slot_storage`)."""
        dtype = slot_storage.slot_dtype_for(self.slot_dtype, reference_variable.dtype)
        if (self._building_keras_state
                or dtype == keras.backend.standardize_dtype(reference_variable.dtype)):
            return super().add_variable_from_reference(reference_variable, name, initializer)
        # Keras (and its tf.distribute colocation) create the slot through
        # add_variable, with the reference's dtype: swap in the slot dtype there.
        self._slot_dtype_override = dtype
        try:
            return super().add_variable_from_reference(reference_variable, name, initializer)
        finally:
            self._slot_dtype_override = None

    _slot_dtype_override = None

    def add_variable(self, *args, **kwargs):
        if self._slot_dtype_override is not None:
            kwargs["dtype"] = self._slot_dtype_override
        return super().add_variable(*args, **kwargs)

    def _wide_slots(self, variable) -> bool:
        """True when `variable`'s slots are stored wider than it (float32 slots)."""
        return slot_storage.slot_dtype_for(self.slot_dtype, variable.dtype) != \
            keras.backend.standardize_dtype(variable.dtype)

    def slots_for(self, variable) -> list:
        """The slot variables of `variable`, in the op's order (only those in use)."""
        raise NotImplementedError

    def kernel_hyperparameters(self, variable) -> dict:
        """The rule's scalar inputs and flags for `variable`, named as its op
        names them (cc/kernels/<rule>.h: kScalars, kFlags)."""
        raise NotImplementedError

    def apply_kernel(self, ops, variable, gradient, slots, learning_rate_f64, step):
        """Runs the fused op (`learning_rate_f64`: the op's scalars are float64).

        `ops` is the op module, or a stand-in with the same names (the sparse
        ops, the multi-tensor recorder): the call is the same for all."""
        op = getattr(ops, op_library.python_op_name(f"KerasoptApply{self.kernel_name}"))
        slots, features = self._step_feature_inputs(ops, variable, gradient, slots)
        op(var=variable.handle, slots=[s.handle for s in slots], grad=gradient,
           learning_rate=learning_rate_f64, step=step, **features,
           **self.kernel_hyperparameters(variable))

    _step_plan = None  # this step's step_features.StepPlan, when they are fused
    # The loss scale a LossScaleOptimizer left for this step to divide the
    # gradients by (loss_scale.py; it checked them finite), or None.
    _grad_unscale = None
    _no_features = None  # this step's empty `features` (one tensor: multi-tensor groups share it)

    def _step_feature_inputs(self, ops, variable, gradient, slots):
        """(slots, op keywords): the step's features for the dense and
        multi-tensor ops (the EMA average appended to the slots), and the
        gradient's for the sparse ones (update_step decided which)."""
        if self._step_plan is not None:
            if isinstance(ops, sparse_update.SparseOps):
                return slots, self._step_plan.row_kernel_inputs(variable, gradient)
            return self._step_plan.kernel_inputs(variable, gradient, slots)
        if self._no_features is None:
            return slots, dict(features=tf.zeros([0], tf.float64))
        return slots, dict(features=self._no_features)

    def apply_fallback(self, variable, gradient, slots, learning_rate, step):
        raise NotImplementedError

    _step_inputs = None  # (learning_rate, step, learning_rate as float64) of one apply
    _hyperparameter_reads = None  # variable hyperparameters read in this step, by id

    def hyperparameter(self, value):
        """:func:`hyperparameter`, read once per step: every variable of the
        step shares the tensor (so the multi-tensor ops still group them)."""
        if is_constant(value) or self._hyperparameter_reads is None:
            return hyperparameter(value)
        read = self._hyperparameter_reads.get(id(value))
        if read is None:
            read = self._hyperparameter_reads[id(value)] = (value, hyperparameter(value))
        return read[1]


    def apply(self, grads, trainable_variables=None):
        """Keras's apply, after the checks of the whole step and guarded by the
        ``nonfinite`` policy.

        Every check that can fail (shapes, sparse indices; see
        :mod:`kerasopt.optimizers.step_checks`) gates every write of the step,
        Keras's own (weight decay, Nadam's ``u_product``, EMA, accumulators,
        ``iterations``) included: a failed step writes nothing.
        """
        grads = step_checks.normalize_gradients(grads)
        step_checks.check_strategy(self)
        if trainable_variables is not None:
            trainable_variables = list(trainable_variables)
            if not self.built and grads:
                # Built before the checks and outside them (and outside the
                # nonfinite tf.cond: no variable can be created in a branch).
                with keras.name_scope(self.name, caller=self):
                    self.build(trainable_variables)
                self.built = True
        if not grads or (trainable_variables is None and not self.built):
            return super().apply(grads, trainable_variables)  # Keras's no-op or error
        variables = trainable_variables if trainable_variables is not None else \
            self._trainable_variables
        with step_checks.gated(grads, variables):
            if self.nonfinite == "propagate" or self._grad_unscale is not None:
                # (Under a LossScaleOptimizer the gradients were checked
                # finite: its check is the nonfinite policy's too.)
                return super().apply(grads, trainable_variables)
            names = [variable_name(v) for v in variables]
            nonfinite_policy.guarded_apply(self.nonfinite, super().apply, grads,
                                           trainable_variables, names)
        return None

    def _clip_gradients(self, grads):
        """Keras's, except that ``global_clipnorm`` keeps an IndexedSlices
        gradient as rows (step_features.globally_clipped: the values of
        Keras's clipped tensor on those rows), where Keras's ``v * scale``
        makes it a dense tensor: a pass over the whole variable, and a row
        update (``lazy=True``) would then move every row. With ``lazy=True``
        the norm, too, is of the rows (step_features._sum_of_squares)."""
        if step_features.clipping(self) != "global_clipnorm" or not any(
                isinstance(g, tf.IndexedSlices) for g in grads):
            return super()._clip_gradients(grads)
        scale = step_features.keras_global_clip_scale(grads, self.global_clipnorm,
                                                      rows=self.lazy)
        return [None if g is None else step_features.globally_clipped(g, scale)
                for g in grads]

    def _backend_apply_gradients(self, grads, trainable_variables):
        """Keras's, with its clipping, decay and EMA passes inside the fused
        update where the plan says so (step_features.py), its gradient
        accumulation in kerasopt's ops where they can (gradient_accumulation.py),
        and, in a tf.function under MirroredStrategy, its two conds around a
        cross-replica update, which Keras cannot run there (mirrored_conds.py)."""
        if mirrored_conds.runs_accumulation(self):
            # Keras accumulates the unscaled gradients.
            mirrored_conds.apply_accumulation(self, self._unscaled(grads), trainable_variables)
            if self.use_ema:  # Keras's, on every step
                self._update_model_variables_moving_average(self._trainable_variables)
        elif gradient_accumulation.fusable(self, grads, trainable_variables,
                                           unscale=self._grad_unscale):
            gradient_accumulation.apply(self, grads, trainable_variables)
        else:
            plan = step_features.plan_for(self, grads, trainable_variables,
                                          unscale=self._grad_unscale)
            if plan is None:
                super()._backend_apply_gradients(self._unscaled(grads), trainable_variables)
            else:
                self._update_with_plan(plan, grads, trainable_variables)
        if mirrored_conds.runs_overwrite(self):
            mirrored_conds.overwrite_with_average(self)
        return None

    def _unscaled(self, grads):
        """`grads` divided by LossScaleOptimizer's scale where the update does
        not take it in (loss_scale.py), as LossScaleOptimizer's own division."""
        if self._grad_unscale is None:
            return grads
        return [g if g is None else keras.ops.divide(g, self._grad_unscale) for g in grads]

    def _overwrite_model_variables_with_average_value(self, trainable_variables):
        # In a MirroredStrategy replica's tf.function Keras calls this inside
        # its cond, where the update cannot run; the step runs it after
        # (_backend_apply_gradients, mirrored_conds.py).
        if mirrored_conds.in_mirrored_replica_function():
            return
        super()._overwrite_model_variables_with_average_value(trainable_variables)

    def _update_with_plan(self, plan, grads, trainable_variables):
        """The update with `plan`'s clipping, decay and EMA fused into the ops
        (step_features.py), then Keras's EMA for the variables no op averaged."""
        if self.weight_decay is not None and not plan.decay and not self.decays_in_rule:
            self._apply_weight_decay(trainable_variables)  # a class's own pass
        self._step_plan = plan
        try:
            self._backend_update_step(grads, trainable_variables, self.learning_rate)
        finally:
            self._step_plan = None
        plan.finish()

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        with self._update_inputs(learning_rate):
            if self._multi_tensor_allowed():
                grads, trainable_variables = self._multi_tensor_update(
                    grads, trainable_variables)
            if trainable_variables:
                KERAS_BASE._backend_update_step(self, grads, trainable_variables, learning_rate)

    @contextlib.contextmanager
    def _update_inputs(self, learning_rate):
        """The inputs update_step reads, for the updates made inside.
        The step count and the learning rate are the same for every variable
        of a step: computed once, not once per variable (with 1000 small
        variables, per-variable ops are most of the step's cost)."""
        self._step_inputs = (learning_rate, tf.cast(self.iterations, tf.int64) + 1,
                             tf.cast(learning_rate, tf.float64))
        self._hyperparameter_reads = {}
        self._no_features = tf.zeros([0], tf.float64)
        try:
            yield
        finally:
            self._step_inputs = None
            self._hyperparameter_reads = None
            self._no_features = None

    def _multi_tensor_allowed(self) -> bool:
        # A subclass that overrides update_step wants every variable to go
        # through it; so do tf.distribute strategies (see multi_tensor.py).
        return (multi_tensor.enabled() and multi_tensor.no_replicas(self)
                and type(self).update_step is FusedOptimizer.update_step)

    def _multi_tensor_update(self, grads, trainable_variables):
        """Updates what it can with KerasoptMultiApply ops; returns the rest."""
        _, step, learning_rate_f64 = self._step_inputs
        entries, rest = [], []
        multi_op = f"KerasoptMultiApply{self.kernel_name}"
        for gradient, variable in zip(grads, trainable_variables):
            var = tf_variable(variable)
            # Not use_kernel: a variable without a multi-tensor kernel on its
            # device (e.g. a GPU without the CUDA build) goes to update_step,
            # which applies KERASOPT_IMPL's policy to its per-variable op.
            if not (multi_tensor.dense_and_known(gradient, var)
                    and op_library.kernel_unavailable_reason(
                        var, multi_op, wide_slots=self._wide_slots(var)) is None):
                rest.append((gradient, variable))
                continue
            entries.append((var, *self._dense_inputs(var, gradient)))
        ops = op_library.library().ops if entries else None  # (use_kernel: it loaded)
        if ops is None:
            return grads, trainable_variables
        groups, leftovers = multi_tensor.plan(self, ops, entries, learning_rate_f64, step)
        packed_cache = self.__dict__.setdefault("_packed_slot_handles", {})
        for group in groups:
            group.run(ops, packed_cache)
        rest.extend((gradient, var) for var, gradient, _ in leftovers)
        return [g for g, _ in rest], [v for _, v in rest]

    def check_built_for(self, variable):
        """Raises ValueError, naming `variable`, unless this optimizer was built for it."""
        if self._var_key(variable) not in self._trainable_variables_indices:
            raise ValueError(
                f"kerasopt: variable '{variable_name(variable)}' is not one this "
                f"optimizer was built for (build it with all the variables it will "
                f"update)")

    def _dense_inputs(self, variable, gradient):
        """(gradient as a dense tensor of the variable's dtype, its slots), shapes checked."""
        gradient = dense_gradient(gradient, variable)
        slots = [tf_variable(s) for s in self.slots_for(variable)]
        check_shapes(variable, gradient, slots[:len(slots) - self.per_variable_slots])
        return gradient, slots

    def _shared_step_inputs(self, learning_rate):
        """(step, learning rate as float64 or None) for this update."""
        shared = self._step_inputs
        if shared is None or shared[0] is not learning_rate:  # called on its own
            shared = (learning_rate, tf.cast(self.iterations, tf.int64) + 1, None)
        return shared[1], shared[2]

    def _updates_rows(self, gradient, variable) -> bool:
        return (isinstance(gradient, tf.IndexedSlices)
                and (self.sparse_rows_exact() or self.lazy)
                and tf.TensorShape(variable.shape).rank != 0)

    def _uses_sparse_kernel(self, variable) -> bool:
        return op_library.use_kernel(
            variable, f"KerasoptSparseApply{self.kernel_name}",
            wide_slots=self._wide_slots(variable)) and sparse_update.has_sparse_op(
                op_library.library().ops, self.kernel_name,
                required=op_library.get_implementation() == "kernel")

    def _update_rows(self, gradient, variable, learning_rate):
        """Updates only the rows the IndexedSlices `gradient` names."""
        gradient = sparse_update.normalize(gradient, variable.dtype)
        slots = [tf_variable(s) for s in self.slots_for(variable)]
        name = variable_name(variable)
        sparse_update.check_sparse_shapes(variable, gradient, slots, name)
        step, learning_rate_f64 = self._shared_step_inputs(learning_rate)
        if self._uses_sparse_kernel(variable):
            if learning_rate_f64 is None:
                learning_rate_f64 = tf.cast(learning_rate, tf.float64)
            ops = sparse_update.SparseOps(op_library.library().ops, gradient.indices)
            self.apply_kernel(ops, variable, gradient.values, slots, learning_rate_f64, step)
        else:
            sparse_update.apply_fallback_rows(
                self, variable, gradient, slots, learning_rate, step, name)

    def update_step(self, gradient, variable, learning_rate):
        variable = tf_variable(variable)
        self.check_built_for(variable)
        plan = self._step_plan
        if plan is not None and self._updates_rows(gradient, variable) and \
                plan.fuses_rows(variable, gradient) and self._uses_sparse_kernel(variable):
            # The sparse op applies the gradient's features to its rows;
            # Keras's decay (and, after the step, its EMA) of every row stay.
            plan.decay_in_keras_pass(variable)
            return self._update_rows(gradient, variable, learning_rate)
        if plan is not None and (not self._uses_dense_kernel(gradient, variable) or (
                plan.clipping in ("clipnorm", "clipvalue")
                and isinstance(gradient, tf.IndexedSlices))):
            # No features on this path (or Keras clips the IndexedSlices's
            # rows before it sums their duplicates): Keras's own operations,
            # on this variable only. (global_clipnorm scales the summed
            # gradient, as the dense op's features do.)
            gradient = plan.before_update(variable, gradient)
            self._step_plan = None
            try:
                return self._update_step(gradient, variable, learning_rate)
            finally:
                self._step_plan = plan
        return self._update_step(gradient, variable, learning_rate)

    def _uses_dense_kernel(self, gradient, variable) -> bool:
        return not self._updates_rows(gradient, variable) and op_library.use_kernel(
            variable, f"KerasoptApply{self.kernel_name}", wide_slots=self._wide_slots(variable))

    def _update_step(self, gradient, variable, learning_rate):
        if self._updates_rows(gradient, variable):
            return self._update_rows(gradient, variable, learning_rate)
        # Dense semantics: an IndexedSlices gradient is densified (repeated
        # indices summed) and every row is updated.
        gradient, slots = self._dense_inputs(variable, gradient)
        step, learning_rate_f64 = self._shared_step_inputs(learning_rate)
        with tf.control_dependencies(runtime_shape_checks(variable, gradient)):
            if op_library.use_kernel(variable, f"KerasoptApply{self.kernel_name}",
                                     wide_slots=self._wide_slots(variable)):
                if learning_rate_f64 is None:
                    learning_rate_f64 = tf.cast(learning_rate, tf.float64)
                ops = op_library.library().ops
                self.apply_kernel(ops, variable, gradient, slots, learning_rate_f64, step)
            else:
                self.apply_fallback(variable, gradient, slots, learning_rate, step)
