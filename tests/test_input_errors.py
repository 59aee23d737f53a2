"""Bad input on every optimizer and every op (tests/test_errors.py has the
detailed Adam/SGD cases): clear errors naming what is wrong, nothing written.

* a variable the optimizer was not built for;
* hyperparameters given as arrays/tensors of the wrong rank, at construction;
* a gradient of the wrong shape or rank;
* each scalar input of each op (learning rate, betas, step, ...) given as a
  vector, and a gradient of another dtype, straight to the op.

The ops are reached through each optimizer's own ``apply_kernel`` with a
recorder in place of the op module, so a new optimizer is covered without
being listed here.
"""

from __future__ import annotations

import inspect
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import op_def_pb2
from tensorflow.python.client import pywrap_tf_session as c_api
from tensorflow.python.framework import op_def_registry

from conftest import require_kernel_library
from optimizer_table import optimizer_params, apply_kernel_params

# keras.optimizers.Optimizer's own arguments (Keras validates those).
KERAS_BASE_ARGUMENTS = {"weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema",
                        "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                        "gradient_accumulation_steps", "name"}


def snapshot(variables):
    return [np.array(v.numpy(), copy=True) for v in variables]


def assert_unchanged(variables, before):
    for v, b in zip(variables, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), b, err_msg=getattr(v, "path", v.name))


def built(cls):
    var = keras.Variable(np.linspace(-1, 1, 12).reshape(3, 4).astype(np.float32), name="known")
    optimizer = cls()
    optimizer.build([var])
    return var, optimizer


@pytest.mark.parametrize("cls", optimizer_params())
def test_unknown_variable_is_named(cls, impl):
    var, optimizer = built(cls)
    stranger = keras.Variable(np.ones((3, 4), np.float32), name="stranger")
    before = snapshot([var, stranger] + list(optimizer.variables))
    with pytest.raises(ValueError, match="stranger"):
        optimizer.apply_gradients([(tf.ones((3, 4)), stranger)])
    with pytest.raises(ValueError, match="stranger"):
        optimizer.update_step(tf.ones((3, 4)), stranger, optimizer.learning_rate)
    assert_unchanged([var, stranger] + list(optimizer.variables), before)


def float_hyperparameters(cls):
    """The constructor's own float arguments (not Keras's), with their defaults."""
    out = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name in KERAS_BASE_ARGUMENTS or name == "learning_rate":
            continue
        if isinstance(p.default, float) and not isinstance(p.default, bool):
            out[name] = p.default
    return out


@pytest.mark.parametrize("cls", optimizer_params())
def test_hyperparameters_of_the_wrong_rank_are_refused(cls):
    with pytest.raises(ValueError, match="learning_rate"):
        cls(learning_rate=np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="learning_rate"):
        cls(learning_rate=tf.constant([[0.1]]))
    for name, default in float_hyperparameters(cls).items():
        with pytest.raises(ValueError, match=name):
            cls(**{name: np.array([default, default])})
        with pytest.raises(ValueError, match=name):
            cls(**{name: tf.constant([default])})


@pytest.mark.parametrize("grad_shape", [(4, 3), (12,), (3, 4, 1), ()])
@pytest.mark.parametrize("cls", optimizer_params())
def test_gradient_of_the_wrong_shape_or_rank(cls, grad_shape, impl):
    var, optimizer = built(cls)
    before = snapshot([var] + list(optimizer.variables))
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        optimizer.apply_gradients([(tf.ones(grad_shape), var)])
    text = re.sub(r"\s+", "", str(info.value.message))
    assert "known" in text and "[3,4]" in text and str(list(grad_shape)).replace(" ", "") in text, text
    assert_unchanged([var] + list(optimizer.variables), before)


class _Recorder:
    """Stands in for the op module: records the op an optimizer would call."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def record(**kwargs):
            self.calls.append((name, kwargs))
        return record


def recorded_op_call(cls):
    """(op function name, its kwargs, variable, slots) of one kernel update."""
    var, optimizer = built(cls)
    variable = var.value
    slots = [s.value for s in optimizer.slots_for(variable)]
    recorder = _Recorder()
    optimizer.apply_kernel(recorder, variable, tf.ones((3, 4)), slots,
                           tf.constant(0.01, tf.float64), tf.constant(1, tf.int64))
    assert len(recorder.calls) == 1, recorder.calls
    name, kwargs = recorder.calls[0]
    return name, kwargs, [variable] + slots


def op_def(function_name):
    # The Python name drops the op name's casing (KerasoptApplySGD ->
    # kerasopt_apply_sgd): match without case.
    wanted = function_name.replace("_", "").lower()
    require_kernel_library()
    registered = op_def_pb2.OpList()
    registered.ParseFromString(c_api.TF_GetBuffer(c_api.TF_GetAllOpList()))
    names = [op.name for op in registered.op if op.name.lower() == wanted]
    assert len(names) == 1, (function_name, names)
    return op_def_registry.get(names[0])


@pytest.mark.parametrize("cls", apply_kernel_params())
def test_every_scalar_op_input_must_be_a_scalar(cls):
    ops = require_kernel_library().ops
    name, kwargs, variables = recorded_op_call(cls)
    definition = op_def(name)
    # (`features`, the step's features, is a vector: test_step_features.py.)
    scalars = [arg.name for arg in definition.input_arg
               if arg.type in (tf.float64.as_datatype_enum, tf.int64.as_datatype_enum)
               and arg.name != "features"]
    assert scalars, definition.name
    before = snapshot(variables)
    getattr(ops, name)(**kwargs)  # the recorded call itself is valid
    after_valid = snapshot(variables)
    for scalar in scalars:
        value = tf.convert_to_tensor(
            kwargs[scalar], dtype=tf.float64 if scalar != "step" else tf.int64)
        bad = dict(kwargs, **{scalar: tf.stack([value, value])})
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"'{scalar}' must be a scalar"):
            getattr(ops, name)(**bad)
        assert_unchanged(variables, after_valid)
    assert any(np.any(a != b) for a, b in zip(before, after_valid))


@pytest.mark.parametrize("cls", apply_kernel_params())
def test_op_refuses_a_gradient_of_another_dtype(cls):
    ops = require_kernel_library().ops
    name, kwargs, variables = recorded_op_call(cls)
    before = snapshot(variables)
    for dtype in (tf.float64, tf.float16):
        with pytest.raises(tf.errors.InvalidArgumentError, match="dtype"):
            getattr(ops, name)(**dict(kwargs, grad=tf.cast(kwargs["grad"], dtype)))
    assert_unchanged(variables, before)
