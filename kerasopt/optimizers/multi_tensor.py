"""One op launch per step for all variables: the multi-tensor path.

Keras calls ``update_step`` once per variable, so a model with 1000 small
variables pays 1000 op launches per step (~30 µs each on a CPU). When every
condition below holds, :class:`~kerasopt.optimizers.fused.FusedOptimizer`
instead sends all of a step's variables to one ``KerasoptMultiApply<Algo>`` op
per group (same op, dtype and hyperparameters), which updates them in one
parallel launch and gives the same bits as one op per variable.

A variable takes the multi-tensor path when:
  * the op library has the algorithm's multi-tensor op with a kernel for the
    variable's device (CPU; GPU in the CUDA build), not under XLA, not forced
    to the fallback;
  * its gradient is a dense tensor of fully known shape (IndexedSlices go to
    ``update_step``: the sparse ops);
  * there is no tf.distribute strategy (with replicas, Keras updates each
    variable through ``strategy.extended.update``; that path is kept).
Every other variable goes through ``update_step`` as before. A group never
mixes devices (the variable's device is part of its key); on GPUs the slot
handles are packed by ``KerasoptPackHandles`` (TensorFlow's Pack has no GPU
kernel for resources), and slot-free rules run per variable (an empty resource
tensor cannot be built there).

The optimizer's own ``apply_kernel`` says what its op needs: it is called with
a recorder in place of the op library, and the recorded keyword arguments
(variable, slots, gradient, scalars, attrs) are regrouped into the list op's
inputs. So each algorithm's per-variable choices (AdamW's weight decay of 0
for excluded variables, slot lists that depend on options) carry over without
any per-algorithm code here.
"""

from __future__ import annotations

import contextlib
import os

import tensorflow as tf
from tensorflow.python.ops import gen_resource_variable_ops

# Set KERASOPT_MULTI_TENSOR=0 to update every variable with its own op.
ENV_SWITCH = "KERASOPT_MULTI_TENSOR"


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1") not in ("0", "false", "off")


class _Call:
    """One recorded per-variable op call: its op name and keyword arguments."""

    def __init__(self, name, args, kwargs):
        self.name, self.args, self.kwargs = name, args, kwargs


class _Recorder:
    """Stands in for the op library in ``apply_kernel``: records, runs nothing."""

    def __init__(self):
        self.calls: list[_Call] = []

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append(_Call(name, args, kwargs))

        return record


def _multi_op_name(per_variable_name: str) -> str:
    # kerasopt_apply_adam -> kerasopt_multi_apply_adam
    return per_variable_name.replace("kerasopt_apply_", "kerasopt_multi_apply_", 1)


def _group_key_part(value):
    # Tensors and variables (the step, the float64 learning rate) are shared by
    # every variable of a step: the same object. Python scalars by value.
    if isinstance(value, (tf.Tensor, tf.Variable)) or hasattr(value, "handle"):
        return ("object", id(value))
    return ("value", type(value).__name__, value)


_PER_VARIABLE_INPUTS = ("var", "slots", "grad")


def _on_cpu(variable) -> bool:
    device = getattr(variable, "device", "") or ""
    return (tf.DeviceSpec.from_string(device).device_type or "CPU").upper() == "CPU"


def _all_initialized(handles) -> bool:
    """Whether every (eager) handle's variable holds a value now."""
    with tf.init_scope():
        return all(bool(gen_resource_variable_ops.var_is_initialized_op(h)) for h in handles)


def pack_handles(handles, cache: dict, empty_like, pack=tf.stack):
    """The slot handles as one 1-D resource tensor (the op's ``slots`` input).

    Made once, outside the traced step, when every handle is an eager tensor
    of an initialized variable: the step then captures one tensor instead of
    one per slot (each capture costs every call a few microseconds). Otherwise
    the handles are packed in the graph: symbolic handles (variables created in
    a graph), and slots not yet initialized, i.e. created while this step is
    traced, whose initial values tf.function may assign inside the step. The
    op must then take the handles themselves, so that TensorFlow's automatic
    control dependencies order it after those assignments (a tensor packed
    outside hides them: the op could read a slot before it is initialized).
    ``empty_like`` is a handle to slice an empty list from (a resource tensor
    cannot be built from nothing). ``pack`` makes the tensor from the list
    (``tf.stack`` on the CPU).
    """
    if not handles:  # (an empty resource tensor cannot be captured: slice in the step)
        return tf.stack([empty_like])[:0]
    key = tuple(id(h) for h in handles)
    hit = cache.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], handles)):
        return hit[1]
    eager = not any(tf.is_symbolic_tensor(h) for h in handles) and _all_initialized(handles)
    with tf.init_scope() if eager else contextlib.nullcontext():
        packed = pack(handles)
    if eager:
        cache[key] = (list(handles), packed)  # the list keeps the ids unique
    return packed


class Group:
    """Variables updated by one multi-tensor op launch."""

    def __init__(self, op_name, shared_kwargs, num_slots, on_cpu=True):
        self.op_name = op_name
        self.shared_kwargs = shared_kwargs
        self.num_slots = num_slots
        self.on_cpu = on_cpu
        self.vars, self.slots, self.grads, self.features = [], [], [], []

    def run(self, ops, packed_cache: dict):
        # Off the CPU, our own pack op: its output sits with the variables.
        pack = tf.stack if self.on_cpu else (
            lambda handles: ops.kerasopt_pack_handles(handles=handles))
        getattr(ops, self.op_name)(
            vars=self.vars, slots=pack_handles(self.slots, packed_cache, self.vars[0], pack),
            grads=self.grads, num_slots=self.num_slots, **self._features(),
            **self.shared_kwargs)

    def _features(self) -> dict:
        # The step's features (step_features.py): one row for the whole group
        # when every variable has the same tensor (or none), else one row each.
        if not self.features:
            return {}
        first = self.features[0]
        if all(f is first for f in self.features):
            return dict(features=first)
        return dict(features=tf.stack(self.features))


def plan(optimizer, ops, entries, learning_rate_f64, step):
    """Groups (variable, gradient, slots) entries into multi-tensor launches.

    Returns (groups, leftovers): leftovers are the entries whose op call could
    not be regrouped (no multi-tensor op, or an ``apply_kernel`` that does not
    make exactly one keyword-only call); the caller updates them one by one.
    """
    groups: dict = {}
    leftovers = []
    for entry in entries:
        variable, gradient, slots = entry
        recorder = _Recorder()
        optimizer.apply_kernel(recorder, variable, gradient, slots, learning_rate_f64, step)
        call = recorder.calls[0] if len(recorder.calls) == 1 else None
        multi_name = _multi_op_name(call.name) if call is not None else None
        if (call is None or call.args or multi_name == call.name
                or not all(k in call.kwargs for k in _PER_VARIABLE_INPUTS)
                or not hasattr(ops, multi_name)):
            leftovers.append(entry)
            continue
        shared = {k: v for k, v in call.kwargs.items()
                  if k not in _PER_VARIABLE_INPUTS and k != "features"}
        features = call.kwargs.get("features")
        slot_handles = list(call.kwargs["slots"])
        on_cpu = _on_cpu(variable)
        if not slot_handles and (tf.executing_eagerly() or not on_cpu):
            # Eager TensorFlow reads the device of a resource input from its
            # first handle, so an empty ``slots`` tensor is refused ("Empty
            # resource handle"); off the CPU the empty slice would need a
            # resource kernel TensorFlow has only for CPUs. Slot-free rules
            # run per variable there.
            leftovers.append(entry)
            continue
        # One group per device (one op runs on one device) and per slot storage
        # (an op takes slots of one dtype: the variable's, or float32 with
        # slot_dtype; see slot_storage.py).
        slot_dtypes = tuple(sorted({tf.as_dtype(s.dtype).name for s in slots}))
        # (Features are per variable, stacked by Group; a group's rows are all
        # empty or all full.)
        features_size = None if features is None else tf.TensorShape(features.shape).as_list()
        key = (multi_name, variable.device, variable.dtype.name, slot_dtypes, len(slot_handles),
               str(features_size),
               tuple(sorted((k, _group_key_part(v)) for k, v in shared.items())))
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(multi_name, shared, len(slot_handles), on_cpu)
        group.vars.append(call.kwargs["var"])
        group.slots.extend(slot_handles)
        group.grads.append(call.kwargs["grad"])
        if features is not None:
            group.features.append(features)
    return list(groups.values()), leftovers


def dense_and_known(gradient, variable) -> bool:
    """A dense gradient whose shape is fully known and equals the variable's."""
    if isinstance(gradient, tf.IndexedSlices) or not hasattr(gradient, "shape"):
        return False
    shape = tf.TensorShape(gradient.shape)
    return shape.is_fully_defined() and shape == tf.TensorShape(variable.shape)


def no_replicas(optimizer) -> bool:
    """True when no tf.distribute strategy (with replicas) is in charge."""
    if tf.distribute.has_strategy():
        return False
    strategy = getattr(optimizer, "_distribution_strategy", None)
    return strategy is None or strategy.num_replicas_in_sync == 1
