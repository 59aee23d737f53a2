"""Errors: shape and dtype mismatches, bad hyperparameters, bad arguments."""

from __future__ import annotations

import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt import _kernels, op_library

from conftest import np_dtype, require_kernel_library
from optimizer_table import representative_params

OPTIMIZERS = [
    pytest.param(lambda: kerasopt.Adam(learning_rate=0.1), id="adam"),
    pytest.param(lambda: kerasopt.Adam(learning_rate=0.1, amsgrad=True), id="amsgrad"),
    pytest.param(lambda: kerasopt.SGD(learning_rate=0.1), id="sgd"),
    pytest.param(lambda: kerasopt.SGD(learning_rate=0.1, momentum=0.9, nesterov=True), id="nesterov"),
]


def squeeze(message: str) -> str:
    return re.sub(r"\s+", "", message)


def dense_layer():
    layer = keras.layers.Dense(4, name="my_dense")
    layer.build((None, 3))  # kernel: (3, 4)
    return layer


def assert_names_variable_and_shapes(message, var_shape, grad_shape):
    text = squeeze(message)
    tail = message[-300:]  # graph errors start with a long traceback
    assert "my_dense/kernel" in message, f"variable not named in: ...{tail}"
    assert squeeze(str(list(var_shape))) in text, f"{var_shape} not in: ...{tail}"
    assert squeeze(str(list(grad_shape))) in text, f"{grad_shape} not in: ...{tail}"


# --- through opt.apply_gradients ----------------------------------------------------------


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_gradient_shape_mismatch_eager(make, impl):
    layer = dense_layer()
    before = layer.kernel.numpy()
    opt = make()
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        opt.apply_gradients([(tf.ones((4, 3)), layer.kernel)])
    assert_names_variable_and_shapes(str(info.value.message), (3, 4), (4, 3))
    np.testing.assert_array_equal(layer.kernel.numpy(), before)
    for v in opt.variables:
        if v.path.endswith(("_momentum", "_velocity", "_velocity_hat")):
            assert not np.any(v.numpy()), v.path
    assert int(opt.iterations.numpy()) == 0


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_gradient_shape_mismatch_in_tf_function(make, impl):
    layer = dense_layer()
    before = layer.kernel.numpy()
    opt = make()

    @tf.function
    def step(gradient):
        opt.apply_gradients([(gradient, layer.kernel)])

    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        step(tf.ones((4, 3)))
    assert_names_variable_and_shapes(str(info.value.message), (3, 4), (4, 3))
    np.testing.assert_array_equal(layer.kernel.numpy(), before)


@pytest.mark.parametrize("grad_shape", [(4, 3), (1, 4)])
@pytest.mark.parametrize("make", [OPTIMIZERS[0], OPTIMIZERS[3]])
def test_gradient_shape_mismatch_known_only_at_run_time(make, grad_shape, impl):
    """With unknown static shapes the mismatch is found when the step runs; it
    must still be an InvalidArgumentError naming the variable and both shapes,
    with nothing written, on both paths. A broadcastable gradient ((1, 4) for a
    (3, 4) weight) is a mismatch too: the kernel path rejects it, so the
    fallback must not silently broadcast it."""
    layer = dense_layer()
    before = layer.kernel.numpy()
    opt = make()
    opt.build([layer.kernel])
    # (iterations is left out: in a graph, Keras's increment does not wait
    # for the update, so it may run even though the update failed)
    slots = [v for v in opt.variables if "iteration" not in v.path]
    slots_before = [v.numpy() for v in slots]

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def step(gradient):
        opt.apply_gradients([(gradient, layer.kernel)])

    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        step(tf.ones(grad_shape))
    assert_names_variable_and_shapes(str(info.value.message), (3, 4), grad_shape)
    np.testing.assert_array_equal(layer.kernel.numpy(), before)
    for v, b in zip(slots, slots_before, strict=True):
        np.testing.assert_array_equal(v.numpy(), b, err_msg=v.path)


def test_matching_shapes_still_work_after_an_error(impl):
    layer = dense_layer()
    opt = kerasopt.Adam(learning_rate=0.1)
    with pytest.raises(tf.errors.InvalidArgumentError):
        opt.apply_gradients([(tf.ones((4, 3)), layer.kernel)])
    before = layer.kernel.numpy()
    opt.apply_gradients([(tf.ones((3, 4)), layer.kernel)])
    np.testing.assert_allclose(layer.kernel.numpy(), before - 0.1, rtol=1e-5, atol=1e-6)


# --- failures found while the step runs: nothing of the step is written -------------------
#
# Keras writes per-step state around update_step (weight decay before it; EMA,
# gradient accumulators and iterations around it). A check that fails when the
# step runs must stop all of it, on both paths, eagerly and in a graph.

STEP_STATE_CONFIGS = {
    "decay_ema": dict(weight_decay=0.5, use_ema=True),
    "accumulation": dict(gradient_accumulation_steps=2),
}


def all_state(optimizer, variables):
    """Weights, then every optimizer variable: slots, iterations, EMA copies,
    accumulators (Keras lists them all in optimizer.variables)."""
    return [(v.path, np.array(v.numpy())) for v in list(variables) + list(optimizer.variables)]


def assert_same_state(got, want):
    assert [p for p, _ in got] == [p for p, _ in want]
    for (path, a), (_, b) in zip(got, want):
        np.testing.assert_array_equal(a, b, err_msg=f"{path} was written by the failed step")


def table_and_bias():
    return [keras.Variable(np.ones((10, 4), np.float32), name="table"),
            keras.Variable(np.ones((4,), np.float32), name="bias")]


def good_step_inputs():
    """(values, indices, bias gradient) of a step touching rows 1 and 3."""
    return tf.fill([2, 4], 0.5), tf.constant([1, 3]), tf.fill([4], 0.25)


@pytest.mark.parametrize("config", list(STEP_STATE_CONFIGS))
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("cls", representative_params())
def test_out_of_range_index_writes_nothing_of_the_step(cls, compiled, config, impl):
    variables = table_and_bias()
    optimizer = cls(**STEP_STATE_CONFIGS[config])

    def step(values, indices, bias_gradient):
        optimizer.apply_gradients(zip(
            [tf.IndexedSlices(values, indices, tf.constant([10, 4])), bias_gradient], variables))

    step = tf.function(step) if compiled else step
    step(*good_step_inputs())
    step(*good_step_inputs())
    before = all_state(optimizer, variables)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        step(tf.fill([2, 4], 0.5), tf.constant([3, 10]), tf.fill([4], 0.25))
    message = str(info.value.message)
    assert "table" in message and "10" in message, message[-400:]
    assert_same_state(all_state(optimizer, variables), before)
    step(*good_step_inputs())  # and it goes on


@pytest.mark.parametrize("config", list(STEP_STATE_CONFIGS))
@pytest.mark.parametrize("cls", representative_params())
def test_shape_known_only_at_run_time_writes_nothing_of_the_step(cls, config, impl):
    variables = [keras.Variable(np.ones((3, 4), np.float32), name="kernel"),
                 keras.Variable(np.ones((4,), np.float32), name="bias")]
    optimizer = cls(**STEP_STATE_CONFIGS[config])

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32),
                                  tf.TensorSpec([None], tf.float32)])
    def step(kernel_gradient, bias_gradient):
        optimizer.apply_gradients(zip([kernel_gradient, bias_gradient], variables))

    step(tf.fill([3, 4], 0.5), tf.fill([4], 0.25))
    step(tf.fill([3, 4], 0.5), tf.fill([4], 0.25))
    before = all_state(optimizer, variables)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        step(tf.fill([4, 3], 0.5), tf.fill([4], 0.25))
    assert_names_variable_and_shapes_of(str(info.value.message), "kernel", (3, 4), (4, 3))
    assert_same_state(all_state(optimizer, variables), before)


def assert_names_variable_and_shapes_of(message, name, var_shape, grad_shape):
    text = squeeze(message)
    assert name in message and squeeze(str(list(var_shape))) in text \
        and squeeze(str(list(grad_shape))) in text, message[-400:]


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
def test_adagrad_weight_decay_is_not_applied_before_a_bad_index(compiled, impl):
    """The issue's repro: the decay of the whole table came before the index check."""
    table = keras.Variable(np.ones((10, 4), np.float32), name="table")
    optimizer = kerasopt.Adagrad(weight_decay=0.5)

    def step(indices):
        optimizer.apply_gradients([(tf.IndexedSlices(tf.ones([1, 4]), indices,
                                                     tf.constant([10, 4])), table)])

    step = tf.function(step) if compiled else step
    with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
        step(tf.constant([12]))
    np.testing.assert_array_equal(table.numpy(), 1.0)
    assert int(optimizer.iterations.numpy()) == 0


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
def test_sparse_values_and_indices_of_different_lengths(compiled, impl):
    table = keras.Variable(np.ones((10, 4), np.float32), name="table")
    optimizer = kerasopt.Adam(weight_decay=0.1, lazy=True)
    signature = [tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.int32)]

    def step(values, indices):
        optimizer.apply_gradients([(tf.IndexedSlices(values, indices, tf.constant([10, 4])),
                                    table)])

    step = tf.function(step, input_signature=signature) if compiled else step
    with pytest.raises(tf.errors.InvalidArgumentError, match="table"):
        step(tf.ones([3, 4]), tf.constant([1, 2]))
    np.testing.assert_array_equal(table.numpy(), 1.0)
    assert not any(np.any(v.numpy()) for v in optimizer.variables if "iteration" not in v.path
                   and "learning_rate" not in v.path)


@pytest.mark.parametrize("name", ["Adam", "SGD", "Lookahead"])
def test_integer_variables_are_refused_naming_them(name, impl):
    """The kernel path failed with TensorFlow's attr error, the fallback
    truncated silently (Adam turned [5, 7] into [4, 7])."""
    counts = keras.Variable(np.array([5, 7], np.int32), name="counts")
    optimizer = (kerasopt.Lookahead(kerasopt.Adam(0.5)) if name == "Lookahead"
                 else getattr(kerasopt, name)(0.5))
    for compiled in (False, True):
        def step():
            optimizer.apply_gradients([(tf.constant([1, 1], tf.int32), counts)])
        with pytest.raises(TypeError, match="'counts'.*int32"):
            (tf.function(step) if compiled else step)()
        np.testing.assert_array_equal(counts.numpy(), [5, 7])


# --- the raw ops ------------------------------------------------------------------------------


def raw_ops():
    return require_kernel_library().ops


def adam_args(**overrides):
    args = dict(learning_rate=tf.constant(0.1, tf.float64), beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                step=tf.constant(1, tf.int64))
    args.update(overrides)
    return args


def variables(*specs):
    """tf.Variables of ones (the weight) / zeros (slots): specs are (shape, dtype)."""
    out = []
    for i, (shape, dtype) in enumerate(specs):
        init = np.ones if i == 0 else np.zeros
        out.append(tf.Variable(init(shape, dtype), name=f"raw{i}"))
    return out


def snapshot(vs):
    return [v.numpy().copy() for v in vs]


def assert_unchanged(vs, before):
    for v, b in zip(vs, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), b, err_msg=v.name)


@pytest.mark.parametrize("bad", ["slot0", "slot1", "slot2", "grad"])
def test_raw_adam_shape_mismatch_writes_nothing(bad):
    ops = raw_ops()
    shapes = {"var": (3, 4), "slot0": (3, 4), "slot1": (3, 4), "slot2": (3, 4), "grad": (3, 4)}
    shapes[bad] = (4, 3)
    vs = variables(*[(shapes[k], np.float32) for k in ("var", "slot0", "slot1", "slot2")])
    before = snapshot(vs)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        ops.kerasopt_apply_adam(features=[], var=vs[0].handle, slots=[v.handle for v in vs[1:]],
                                grad=tf.ones(shapes[bad] if bad == "grad" else (3, 4)),
                                amsgrad=True, **adam_args())
    text = squeeze(info.value.message)
    assert "[3,4]" in text and "[4,3]" in text, info.value.message
    assert "raw0" in info.value.message
    assert_unchanged(vs, before)


def test_raw_sgd_shape_mismatch_writes_nothing():
    ops = raw_ops()
    vs = variables(((5,), np.float64), ((6,), np.float64))
    before = snapshot(vs)
    with pytest.raises(tf.errors.InvalidArgumentError, match="shape"):
        ops.kerasopt_apply_sgd(features=[], var=vs[0].handle, slots=[vs[1].handle],
                               grad=tf.ones((5,), tf.float64),
                               learning_rate=tf.constant(0.1, tf.float64), step=1, momentum=0.9)
    with pytest.raises(tf.errors.InvalidArgumentError, match="shape"):
        ops.kerasopt_apply_sgd(features=[], var=vs[0].handle, slots=[], grad=tf.ones((1,), tf.float64),
                               learning_rate=tf.constant(0.1, tf.float64), step=1, momentum=0.0)
    assert_unchanged(vs, before)


def test_raw_op_dtype_mismatch():
    ops = raw_ops()
    # gradient float64, variables float32
    vs = variables(((4,), np.float32), ((4,), np.float32), ((4,), np.float32))
    before = snapshot(vs)
    with pytest.raises(tf.errors.InvalidArgumentError, match="dtype"):
        ops.kerasopt_apply_adam(features=[], var=vs[0].handle, slots=[v.handle for v in vs[1:]],
                                grad=tf.ones((4,), tf.float64), **adam_args())
    assert_unchanged(vs, before)
    # one slot of another dtype
    vs = variables(((4,), np.float32), ((4,), np.float32), ((4,), np.float16))
    before = snapshot(vs)
    with pytest.raises(tf.errors.InvalidArgumentError, match="dtype"):
        ops.kerasopt_apply_adam(features=[], var=vs[0].handle, slots=[v.handle for v in vs[1:]],
                                grad=tf.ones((4,), tf.float32), **adam_args())
    assert_unchanged(vs, before)
    # SGD: weight float16, gradient and slot bfloat16
    vs = variables(((4,), np.float16), ((4,), np_dtype("bfloat16")))
    before = snapshot(vs)
    with pytest.raises(tf.errors.InvalidArgumentError, match="dtype"):
        ops.kerasopt_apply_sgd(features=[], var=vs[0].handle, slots=[vs[1].handle],
                               grad=tf.ones((4,), tf.bfloat16),
                               learning_rate=tf.constant(0.1, tf.float64), step=1, momentum=0.9)
    assert_unchanged(vs, before)


def test_raw_op_wrong_slot_count_and_scalars():
    ops = raw_ops()
    vs = variables(((4,), np.float32), ((4,), np.float32), ((4,), np.float32), ((4,), np.float32))
    before = snapshot(vs)
    grad = tf.ones((4,))
    # Adam needs 2 slots, AMSGrad 3
    with pytest.raises(tf.errors.InvalidArgumentError, match="slots"):
        ops.kerasopt_apply_adam(features=[], var=vs[0].handle, slots=[vs[1].handle], grad=grad, **adam_args())
    with pytest.raises(tf.errors.InvalidArgumentError, match="slots"):
        ops.kerasopt_apply_adam(features=[], var=vs[0].handle, slots=[vs[1].handle, vs[2].handle], grad=grad,
                                amsgrad=True, **adam_args())
    # SGD with momentum needs its slot; at most one slot
    with pytest.raises(tf.errors.InvalidArgumentError, match="momentum"):
        ops.kerasopt_apply_sgd(features=[], var=vs[0].handle, slots=[], grad=grad,
                               learning_rate=tf.constant(0.1, tf.float64), step=1,
                               momentum=0.9)
    with pytest.raises(tf.errors.InvalidArgumentError, match="slots"):
        ops.kerasopt_apply_sgd(features=[], var=vs[0].handle, slots=[vs[1].handle, vs[2].handle], grad=grad,
                               learning_rate=tf.constant(0.1, tf.float64), step=1,
                               momentum=0.9)
    # hyperparameters must be scalars
    with pytest.raises(tf.errors.InvalidArgumentError, match="scalar"):
        ops.kerasopt_apply_adam(features=[], var=vs[0].handle, slots=[vs[1].handle, vs[2].handle], grad=grad,
                                **adam_args(learning_rate=tf.constant([0.1, 0.2], tf.float64)))
    assert_unchanged(vs, before)


def test_raw_op_runs_when_valid():
    """The error tests above are not vacuous: the same call with consistent
    arguments works (and matches one Adam step by hand)."""
    ops = raw_ops()
    vs = variables(((4,), np.float32), ((4,), np.float32), ((4,), np.float32))
    ops.kerasopt_apply_adam(features=[], var=vs[0].handle, slots=[v.handle for v in vs[1:]],
                            grad=tf.fill((4,), 2.0), **adam_args())
    np.testing.assert_allclose(vs[1].numpy(), 0.2, rtol=1e-6)
    np.testing.assert_allclose(vs[2].numpy(), 0.004, rtol=1e-5)
    np.testing.assert_allclose(vs[0].numpy(), 0.9, rtol=1e-5)


# --- hyperparameters ------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    dict(learning_rate=-0.1), dict(learning_rate=-1e-9),
    dict(beta_1=-0.1), dict(beta_1=1.0), dict(beta_1=1.5), dict(beta_1=math.nan),
    dict(beta_2=-0.5), dict(beta_2=1.0), dict(beta_2=2.0), dict(beta_2=math.nan),
    dict(epsilon=-1e-7), dict(epsilon=math.nan),
], ids=repr)
def test_adam_rejects_bad_hyperparameters(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        kerasopt.Adam(**kwargs)


@pytest.mark.parametrize("kwargs", [
    dict(learning_rate=-0.01), dict(momentum=-0.1), dict(momentum=1.1), dict(momentum=math.nan),
    dict(momentum=5.0),
], ids=repr)
def test_sgd_rejects_bad_hyperparameters(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        kerasopt.SGD(**kwargs)


@pytest.mark.parametrize("make", [
    lambda: kerasopt.Adam(learning_rate=0.0, beta_1=0.0, beta_2=0.0, epsilon=0.0),
    lambda: kerasopt.Adam(beta_1=0.999999, beta_2=0.999999),
    lambda: kerasopt.SGD(learning_rate=0.0, momentum=0.0),
    lambda: kerasopt.SGD(momentum=1.0, nesterov=True),
])
def test_boundary_hyperparameters_are_accepted(make):
    make()


def test_keras_argument_errors_are_kept():
    with pytest.raises(ValueError):
        kerasopt.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError):
        kerasopt.SGD(gradient_accumulation_steps=1)
    with pytest.raises(ValueError):
        kerasopt.Adam(not_an_argument=1)


# --- implementation switch --------------------------------------------------------------


def test_set_implementation_rejects_unknown_names():
    before = kerasopt.get_implementation()
    with pytest.raises(ValueError, match="bogus"):
        kerasopt.set_implementation("bogus")
    with pytest.raises(ValueError, match="bogus"):
        with kerasopt.implementation("bogus"):
            pass
    assert kerasopt.get_implementation() == before


def test_bad_environment_value_is_an_error(monkeypatch):
    monkeypatch.setenv(op_library.ENV_IMPLEMENTATION, "fastest")
    kerasopt.set_implementation(None)
    with pytest.raises(ValueError, match="fastest"):
        kerasopt.get_implementation()
    monkeypatch.setenv(op_library.ENV_IMPLEMENTATION, " TF ")
    assert kerasopt.get_implementation() == "tf"


# --- the pybind module --------------------------------------------------------------------


def adam_kwargs(**overrides):
    kw = dict(learning_rate=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=1)
    kw.update(overrides)
    return kw


def arrays(n, dtype=np.float32, count=4):
    return [np.ones(n, dtype) if i == 0 else np.zeros(n, dtype) for i in range(count)]


@pytest.mark.parametrize("which", [1, 2, 3, 4])
def test_pybind_adam_rejects_shape_mismatch(which):
    a = arrays(6, count=5)
    a[which] = np.zeros(7 if which != 1 else 5, np.float32)
    before = [x.copy() for x in a]
    with pytest.raises(ValueError, match="shape"):
        _kernels.adam(*a, amsgrad=True, **adam_kwargs())
    for x, b in zip(a, before):
        np.testing.assert_array_equal(x, b)


def test_pybind_rejects_same_size_other_shape():
    w = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="shape"):
        _kernels.sgd(w, np.ones((3, 2), np.float32), learning_rate=0.1, momentum=0.0)
    with pytest.raises(ValueError, match="shape"):
        _kernels.sgd(w, np.ones(6, np.float32), learning_rate=0.1, momentum=0.0)
    with pytest.raises(ValueError, match="shape"):
        _kernels.sgd(w, np.ones((2, 3), np.float32), np.zeros((6, 1), np.float32),
                     learning_rate=0.1, momentum=0.9)
    np.testing.assert_array_equal(w, 1.0)


@pytest.mark.parametrize("other", ["float16", "bfloat16", "float64"])
def test_pybind_rejects_dtype_mismatch(other):
    w, m, v = arrays(5, np.float32, 3)
    with pytest.raises(TypeError, match="dtype"):
        _kernels.adam(w, np.ones(5, np_dtype(other)), m, v, **adam_kwargs())
    with pytest.raises(TypeError, match="dtype"):
        _kernels.adam(w, np.ones(5, np.float32), m.astype(np_dtype(other)), v, **adam_kwargs())
    with pytest.raises(TypeError, match="dtype"):
        _kernels.sgd(w, np.ones(5, np.float32), np.zeros(5, np_dtype(other)),
                     learning_rate=0.1, momentum=0.9)
    np.testing.assert_array_equal(w, 1.0)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.complex64, np.bool_, np.float128])
def test_pybind_rejects_unsupported_dtypes(dtype):
    with pytest.raises(TypeError, match="dtype"):
        _kernels.sgd(np.ones(3, dtype), np.ones(3, dtype), learning_rate=0.1, momentum=0.0)


def test_pybind_rejects_non_native_byte_order():
    """A big-endian float32 array is not float32 to the C++ code: it must be
    refused (or handled), not read as garbage."""
    w = np.ones(4, dtype=">f4")
    g = np.ones(4, dtype=">f4")
    try:
        _kernels.sgd(w, g, learning_rate=0.5, momentum=0.0)
    except (TypeError, ValueError):
        np.testing.assert_array_equal(w, 1.0)
        return
    np.testing.assert_array_equal(w, 0.5)


def test_pybind_rejects_non_contiguous_and_read_only():
    w = np.ones(8, np.float32)[::2]
    with pytest.raises(ValueError, match="contiguous"):
        _kernels.sgd(w, np.ones(4, np.float32), learning_rate=0.1, momentum=0.0)
    with pytest.raises(ValueError, match="contiguous"):
        _kernels.sgd(np.ones(4, np.float32), np.ones(8, np.float32)[::2], learning_rate=0.1,
                     momentum=0.0)
    w = np.ones((3, 4), np.float32).T  # Fortran order
    with pytest.raises(ValueError, match="contiguous"):
        _kernels.sgd(w, np.ones((4, 3), np.float32), learning_rate=0.1, momentum=0.0)
    w = np.ones(4, np.float32)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _kernels.sgd(w, np.ones(4, np.float32), learning_rate=0.1, momentum=0.0)
    m = np.zeros(4, np.float32)
    m.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _kernels.sgd(np.ones(4, np.float32), np.ones(4, np.float32), m,
                     learning_rate=0.1, momentum=0.9)
    # a read-only gradient is fine: it is only read
    g = np.ones(4, np.float32)
    g.flags.writeable = False
    w = np.ones(4, np.float32)
    _kernels.sgd(w, g, learning_rate=0.5, momentum=0.0)
    np.testing.assert_array_equal(w, 0.5)


def test_pybind_missing_slots():
    w, m, v = arrays(3, np.float32, 3)
    with pytest.raises(ValueError, match="velocity_hat"):
        _kernels.adam(w, np.ones(3, np.float32), m, v, amsgrad=True, **adam_kwargs())
    with pytest.raises(ValueError, match="momentum"):
        _kernels.sgd(w, np.ones(3, np.float32), learning_rate=0.1, momentum=0.9)
    np.testing.assert_array_equal(w, 1.0)


def test_pybind_rejects_non_arrays():
    with pytest.raises(TypeError):
        _kernels.sgd([1.0, 2.0], np.ones(2), learning_rate=0.1, momentum=0.0)


def test_pybind_adam_rejects_step_below_one():
    """Adam's bias correction divides by 1 - beta_1^t, which is 0 at t = 0:
    step=0 must be refused rather than writing NaN into the weights."""
    w, m, v = arrays(3, np.float32, 3)
    with pytest.raises(ValueError, match="step counts from 1"):
        _kernels.adam(w, np.ones(3, np.float32), m, v, **adam_kwargs(step=0))
    np.testing.assert_array_equal(w, 1.0)
    np.testing.assert_array_equal(m, 0.0)
    np.testing.assert_array_equal(v, 0.0)


# Every rule with a bias correction takes step = iterations + 1 and must refuse 0.
STEP_OPS = {
    "kerasopt_apply_adam": (2, dict(learning_rate=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-7)),
    "kerasopt_apply_adam_w": (2, dict(learning_rate=0.1, weight_decay=0.01, beta_1=0.9,
                                      beta_2=0.999, epsilon=1e-7)),
    "kerasopt_apply_adamax": (2, dict(learning_rate=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-7)),
    "kerasopt_apply_nadam": (2, dict(learning_rate=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                                     u_product=0.9)),
    "kerasopt_apply_lamb": (2, dict(learning_rate=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                                    weight_decay_rate=0.0)),
}


@pytest.mark.parametrize("op_name", sorted(STEP_OPS))
def test_ops_refuse_step_zero_and_write_nothing(op_name):
    ops = require_kernel_library().ops
    num_slots, scalars = STEP_OPS[op_name]
    w = tf.Variable(np.ones(3, np.float32))
    slots = [tf.Variable(np.zeros(3, np.float32)) for _ in range(num_slots)]
    with pytest.raises(tf.errors.InvalidArgumentError, match="step counts from 1"):
        getattr(ops, op_name)(features=[], var=w.handle, slots=[s.handle for s in slots],
                              grad=tf.ones(3), step=tf.constant(0, tf.int64), **scalars)
    np.testing.assert_array_equal(w.numpy(), np.ones(3, np.float32))
    for s in slots:
        np.testing.assert_array_equal(s.numpy(), np.zeros(3, np.float32))


# --- the words of the errors ----------------------------------------------------------------


@pytest.mark.parametrize("make, words", [
    (lambda: kerasopt.Adam(epsilon=-1.0), "`epsilon` must be >= 0, got -1.0"),
    (lambda: kerasopt.Adam(beta_1=1.5), "`beta_1` must be in [0, 1), got 1.5"),
    (lambda: kerasopt.Adamax(beta_2=2.0), "`beta_2` must be in [0, 1], got 2.0"),
])
def test_plain_range_messages(make, words):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value) == words


# Where Keras validates the same argument: its exception type and its words.
KERAS_VALIDATED = [
    ("SGD", dict(momentum=1.5)),
    ("SGD", dict(momentum=-0.1)),
    ("Lion", dict(beta_1=0.0)),
    ("Lion", dict(beta_1=1.5)),
    ("Ftrl", dict(learning_rate_power=0.5)),
    ("Ftrl", dict(initial_accumulator_value=-1.0)),
    ("Ftrl", dict(l1_regularization_strength=-1.0)),
    ("Ftrl", dict(l2_regularization_strength=-1.0)),
    ("Ftrl", dict(l2_shrinkage_regularization_strength=-1.0)),
    ("AdamW", dict(weight_decay=None)),
]


@pytest.mark.parametrize("name, kwargs", KERAS_VALIDATED, ids=str)
def test_keras_validated_arguments_fail_with_keras_words(name, kwargs):
    with pytest.raises(Exception) as keras_error:
        getattr(keras.optimizers, name)(**kwargs)
    with pytest.raises(Exception) as ours:
        getattr(kerasopt, name)(**kwargs)
    assert type(ours.value) is type(keras_error.value)
    assert str(ours.value) == str(keras_error.value)
