"""Hyperparameters given as variables (``beta_1=tf.Variable(0.9)``), on every
optimizer of ``kerasopt.optimizers.ALL``, both paths, inside ``tf.function``.

Keras reads such a hyperparameter at each step; so must kerasopt. Every float
argument of every optimizer (found from its signature) is made a variable at
once; the steps must give the bits of the same optimizer built with those
values as Python floats, and after the variables are assigned new values, the
bits of an optimizer built with the new values that continues from the same
state. The arguments an optimizer lists in ``constant_hyperparameters`` (they
decide which slots exist) must instead be refused at construction, naming
them. Where Keras has the optimizer, ``fit`` gives Keras's numbers before and
after the change.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt

from conftest import assert_bit_identical
from optimizer_table import float_hyperparameters, optimizer_params


def new_value(default: float) -> float:
    return 0.1 if default == 0.0 else default / 2


def float32(value: float) -> float:
    """Keras keeps hyperparameter variables in float32: the float that holds."""
    return float(np.float32(value))


def variable_arguments(cls):
    return {name: default for name, default in float_hyperparameters(cls).items()
            if name not in cls.constant_hyperparameters}


def make_variables():
    rng = np.random.default_rng(0)
    return [keras.Variable(rng.standard_normal((6, 5)).astype(np.float32), name="kernel"),
            keras.Variable(rng.standard_normal((5,)).astype(np.float32), name="bias")]


def gradients(seed):
    rng = np.random.default_rng(seed)
    return [tf.constant(rng.standard_normal((6, 5)).astype(np.float32)),
            tf.constant(rng.standard_normal((5,)).astype(np.float32))]


def state(optimizer, variables):
    return [np.array(v.numpy()) for v in list(variables) + list(optimizer.variables)]


def run(optimizer, variables, seeds):
    @tf.function
    def step(grads):
        optimizer.apply_gradients(zip(grads, variables))

    for seed in seeds:
        step(gradients(seed))


def assert_same(got, want, what):
    assert len(got) == len(want), what
    for i, (a, b) in enumerate(zip(got, want)):
        assert_bit_identical(a, b, f"{what}: array {i}")


@pytest.mark.parametrize("cls", optimizer_params())
def test_variable_hyperparameters_are_read_at_each_step(cls, impl):
    defaults = variable_arguments(cls)
    if not defaults:
        pytest.skip(f"{cls.__name__}'s float hyperparameters all decide its slots "
                    f"({', '.join(cls.constant_hyperparameters)})")
    hyper = {name: tf.Variable(float32(value), dtype=tf.float32) for name, value in defaults.items()}
    variables, twin_variables = make_variables(), make_variables()
    optimizer = cls(learning_rate=0.01, **hyper)
    twin = cls(learning_rate=0.01, **{n: float32(v) for n, v in defaults.items()})
    run(optimizer, variables, (1, 2, 3))
    run(twin, twin_variables, (1, 2, 3))
    assert_same(state(optimizer, variables), state(twin, twin_variables), "with the first values")

    for name, value in defaults.items():
        hyper[name].assign(float32(new_value(value)))
    # The same optimizer built with the new values, from the twin's state.
    changed = cls(learning_rate=0.01, **{n: float32(new_value(v)) for n, v in defaults.items()})
    changed.build(twin_variables)
    for target, source in zip(changed.variables, twin.variables, strict=True):
        target.assign(source)
    run(optimizer, variables, (4, 5))
    run(changed, twin_variables, (4, 5))
    assert_same(state(optimizer, variables), state(changed, twin_variables),
                f"after assigning new values to {sorted(defaults)}")


@pytest.mark.parametrize("cls", optimizer_params())
def test_hyperparameters_that_decide_the_slots_refuse_variables(cls):
    for name in cls.constant_hyperparameters:
        default = float_hyperparameters(cls)[name]
        with pytest.raises(ValueError, match=name):
            cls(**{name: tf.Variable(max(default, 0.5))})


# Keras's own optimizers: through fit, with Keras's numbers before and after the change.
KERAS_HAS = ["Adam", "AdamW", "Adamax", "Nadam", "RMSprop", "Adagrad", "Adadelta", "Lion",
             "Lamb", "Ftrl"]


def fit_twice(optimizer, hyper, x, y):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse", jit_compile=False)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for variable in hyper.values():
        variable.assign(float32(new_value(float(variable.numpy()))))
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    return model.get_weights()


def fit_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    return x, np.sin(x.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_twice_with(module, name):
    defaults = variable_arguments(getattr(kerasopt, name))
    hyper = {n: tf.Variable(float32(v), dtype=tf.float32) for n, v in defaults.items()}
    return fit_twice(getattr(module, name)(learning_rate=0.01, **hyper), hyper, *fit_data())


@functools.lru_cache(maxsize=None)
def keras_numbers(name):
    """Keras's own weights after fit_twice: once per name, not per kerasopt path."""
    return tuple(fit_twice_with(keras.optimizers, name))


@pytest.mark.parametrize("name", KERAS_HAS)
def test_fit_with_variable_hyperparameters_gives_keras_numbers(name, impl):
    results = [keras_numbers(name), fit_twice_with(kerasopt, name)]
    for got, want in zip(results[1], results[0], strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
