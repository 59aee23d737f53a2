"""nonfinite="propagate" | "skip" | "raise" on every optimizer, both paths,
eager, tf.function and XLA.

"skip" must make a bad step a step that never happened: after it, the next
good step gives the same bits as a twin optimizer that never saw the bad one.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt

from conftest import assert_bit_identical
from optimizer_table import OPTIMIZERS, optimizer_params


def make_variables():
    rng = np.random.default_rng(0)
    return [keras.Variable(rng.standard_normal((3, 4)).astype(np.float32), name="good_weight"),
            keras.Variable(rng.standard_normal((600,)).astype(np.float32), name="bad_weight")]


def gradients(seed, bad=None):
    """Finite gradients for make_variables(); `bad` puts that value into the second."""
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal((3, 4)).astype(np.float32),
             rng.standard_normal((600,)).astype(np.float32)]
    if bad is not None:
        grads[1][517] = bad
    return [tf.constant(g) for g in grads]


def state(optimizer, variables):
    return [v.numpy().copy() for v in variables] + [v.numpy().copy() for v in optimizer.variables]


def assert_same_state(got, want, what):
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        assert_bit_identical(a, b, f"{what}: array {i}")


def stepper(optimizer, variables, compiled):
    def step(grads):
        optimizer.apply_gradients(zip(grads, variables))
    return tf.function(step) if compiled else step


@pytest.mark.parametrize("cls", optimizer_params())
def test_config_round_trip(cls):
    assert "nonfinite" not in cls().get_config()  # the default keeps Keras's config
    assert cls.from_config(cls().get_config()).nonfinite == "propagate"
    for mode in ("skip", "raise"):
        optimizer = cls(nonfinite=mode)
        config = optimizer.get_config()
        assert config["nonfinite"] == mode
        assert type(optimizer).from_config(config).get_config() == config
        revived = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
        assert isinstance(revived, cls) and revived.nonfinite == mode
    with pytest.raises(ValueError, match="nonfinite"):
        cls(nonfinite="ignore")


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("cls", optimizer_params())
def test_skip_is_a_step_that_never_happened(cls, compiled, impl):
    variables, twin_variables = make_variables(), make_variables()
    optimizer, twin = cls(nonfinite="skip"), cls(nonfinite="skip")
    step, twin_step = stepper(optimizer, variables, compiled), stepper(twin, twin_variables, compiled)
    step(gradients(1))
    twin_step(gradients(1))
    before = state(optimizer, variables)
    assert int(optimizer.iterations.numpy()) == 1

    for bad in (math.inf, -math.inf, math.nan):
        step(gradients(2, bad=bad))
        assert_same_state(state(optimizer, variables), before, f"after skipping {bad}")
        assert int(optimizer.iterations.numpy()) == 1

    step(gradients(3))
    twin_step(gradients(3))
    assert_same_state(state(optimizer, variables), state(twin, twin_variables), "next step")
    assert int(optimizer.iterations.numpy()) == 2
    assert all(np.all(np.isfinite(v)) for v in state(optimizer, variables))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("cls", optimizer_params())
def test_raise_names_the_variable_and_writes_nothing(cls, compiled, impl):
    variables = make_variables()
    optimizer = cls(nonfinite="raise")
    step = stepper(optimizer, variables, compiled)
    step(gradients(1))
    before = state(optimizer, variables)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        step(gradients(2, bad=math.nan))
    text = str(info.value.message)
    assert "[bad_weight]" in text and "good_weight" not in text, text[-500:]
    assert "non-finite" in text, text[-500:]
    assert_same_state(state(optimizer, variables), before, "after the failed step")
    step(gradients(3))  # and it goes on
    assert int(optimizer.iterations.numpy()) == 2


@pytest.mark.parametrize("cls", optimizer_params())
def test_propagate_lets_nan_through_as_keras(cls, impl):
    variables = make_variables()
    optimizer = cls()  # the default
    optimizer.apply_gradients(zip(gradients(1), variables))
    optimizer.apply_gradients(zip(gradients(2, bad=math.nan), variables))
    assert int(optimizer.iterations.numpy()) == 2
    assert not all(np.all(np.isfinite(v)) for v in state(optimizer, variables))


@pytest.mark.parametrize("cls", optimizer_params())
def test_skip_inside_xla(cls):
    """jit_compile: the fallback runs, and the tf.cond skips the step."""
    variables = make_variables()
    optimizer = cls(nonfinite="skip")

    @tf.function(jit_compile=True)
    def step(grads):
        optimizer.apply_gradients(zip(grads, variables))

    step(gradients(1))
    before = state(optimizer, variables)
    step(gradients(2, bad=math.inf))
    assert_same_state(state(optimizer, variables), before, "after the skipped step")
    step(gradients(3))
    assert int(optimizer.iterations.numpy()) == 2


def test_raise_refuses_xla():
    variables = make_variables()
    optimizer = kerasopt.Adam(nonfinite="raise")

    @tf.function(jit_compile=True)
    def step(grads):
        optimizer.apply_gradients(zip(grads, variables))

    with pytest.raises(ValueError, match="jit_compile=False"):
        step(gradients(1))


def test_skip_with_indexed_slices_gradient(impl):
    table = keras.Variable(np.ones((10, 4), np.float32), name="table")
    optimizer = kerasopt.Adam(nonfinite="skip")

    @tf.function
    def step(rows, scale):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(table.value, rows)) * scale
        gradient = tape.gradient(loss, table.value)
        assert isinstance(gradient, tf.IndexedSlices)
        optimizer.apply_gradients([(gradient, table)])

    step(tf.constant([1, 3]), tf.constant(1.0))
    before = state(optimizer, [table])
    step(tf.constant([2]), tf.constant(math.inf))
    assert_same_state(state(optimizer, [table]), before, "after the skipped step")


@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_fit_skips_the_batch_with_nan(name):
    """model.fit with nonfinite='skip' over data whose third batch holds a NaN
    gives the bits of fitting on the data without that batch."""
    cls = getattr(kerasopt, name)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6 * 16, 5)).astype(np.float32)
    y = (x @ rng.standard_normal((5, 1))).astype(np.float32)
    x_bad = x.copy()
    x_bad[2 * 16 + 3, 1] = np.nan
    clean = np.r_[0:32, 48:96]

    def fit(x, y):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="tanh"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=cls(learning_rate=0.01, nonfinite="skip"), loss="mse")
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        return model

    skipped, reference = fit(x_bad, y), fit(x[clean], y[clean])
    assert int(skipped.optimizer.iterations.numpy()) == int(reference.optimizer.iterations.numpy()) == 10
    for a, b in zip(skipped.get_weights(), reference.get_weights()):
        assert_bit_identical(a, b, "weights")

