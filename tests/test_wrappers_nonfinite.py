"""Every wrapper around one optimizer per update path of
``kerasopt.optimizers.ALL`` (optimizer_table.representative_params), with
``nonfinite="skip"`` and ``"raise"`` on the inner optimizer, on both paths.

A skipped inner step must be skipped by the wrapper too: after it, the state
(model weights, the wrapper's slow weights or averages and its step count, the
inner slots and ``iterations``) is what a twin that never saw the bad step
holds, bit for bit. A raised step writes nothing, the wrapper's state included.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt

from conftest import assert_bit_identical
from test_nonfinite import assert_same_state, gradients, make_variables, state
from test_nonfinite import stepper as nonfinite_stepper
from optimizer_table import representative_params

# Each wrapper with settings under which every step does wrapper work: a
# repeated sync or average would show.
WRAPPERS = {
    "Lookahead": lambda inner: kerasopt.Lookahead(inner, sync_period=2, slow_step_size=0.3),
    "Polyak": lambda inner: kerasopt.AveragedOptimizer(inner),
    "SWA": lambda inner: kerasopt.AveragedOptimizer(inner, method="swa", average_period=2),
}


def stepper(optimizer, variables):
    return nonfinite_stepper(optimizer, variables, compiled=True)


def run_skip(make, twin_make):
    """Steps g1, g2, bad, g3 against a twin stepping g1, g2, g3; returns both states."""
    variables, twin_variables = make_variables(), make_variables()
    optimizer, twin = make(), twin_make()
    step, twin_step = stepper(optimizer, variables), stepper(twin, twin_variables)
    for seed in (1, 2):
        step(gradients(seed))
        twin_step(gradients(seed))
    before = state(optimizer, variables)
    step(gradients(5, bad=math.nan))
    assert_same_state(state(optimizer, variables), before, "after the skipped step")
    step(gradients(3))
    twin_step(gradients(3))
    assert_same_state(state(optimizer, variables), state(twin, twin_variables),
                      "after the next step")
    assert int(optimizer.iterations.numpy()) == 3


def run_raise(make):
    variables = make_variables()
    optimizer = make()
    step = stepper(optimizer, variables)
    step(gradients(1))
    step(gradients(2))
    before = state(optimizer, variables)
    with pytest.raises(tf.errors.InvalidArgumentError, match="non-finite"):
        step(gradients(5, bad=math.inf))
    assert_same_state(state(optimizer, variables), before, "after the failed step")
    step(gradients(3))
    assert int(optimizer.iterations.numpy()) == 3


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
@pytest.mark.parametrize("cls", representative_params())
def test_wrapper_skips_with_its_inner_optimizer(cls, wrapper, impl):
    wrap = WRAPPERS[wrapper]
    run_skip(lambda: wrap(cls(nonfinite="skip")), lambda: wrap(cls(nonfinite="skip")))


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
@pytest.mark.parametrize("cls", representative_params())
def test_wrapper_raises_with_its_inner_optimizer_and_writes_nothing(cls, wrapper, impl):
    run_raise(lambda: WRAPPERS[wrapper](cls(nonfinite="raise")))


@pytest.mark.parametrize("mode", ["skip", "raise"])
def test_ranger_takes_nonfinite(mode, impl):
    make = lambda: kerasopt.Ranger(learning_rate=0.01, sync_period=2, slow_step_size=0.3,  # noqa: E731
                                   nonfinite=mode)
    if mode == "skip":
        run_skip(make, make)
    else:
        run_raise(make)
    config = make().get_config()
    assert config["nonfinite"] == mode
    assert kerasopt.Ranger.from_config(config).inner_optimizer.nonfinite == mode
    assert "nonfinite" not in kerasopt.Ranger().get_config()


def test_wrapper_follows_a_keras_loss_scale_skip(impl):
    """Keras's LossScaleOptimizer skips an overflowing step without an error:
    the average must not count the previous iterate again."""
    optimizer = kerasopt.AveragedOptimizer(
        keras.optimizers.LossScaleOptimizer(kerasopt.SGD(0.1), dynamic_growth_steps=1000))
    variables = make_variables()
    step = stepper(optimizer, variables)
    iterates = []
    for seed, bad in ((1, None), (2, None), (5, math.inf), (3, None)):
        step(gradients(seed, bad))
        if bad is None:
            iterates.append([v.numpy().copy() for v in variables])
    assert int(optimizer.iterations.numpy()) == 3
    for i, variable in enumerate(variables):
        np.testing.assert_allclose(optimizer.average_for(variable).numpy(),
                                   np.mean([it[i] for it in iterates], axis=0), rtol=1e-6)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
def test_polyak_average_over_a_skipped_step_is_the_mean_of_the_real_iterates(compiled, impl):
    """The issue's repro: g1, g2, NaN, g3 under Polyak averaging of SGD."""
    w = keras.Variable(np.array([1.0, 2.0], np.float32), name="w")
    optimizer = kerasopt.AveragedOptimizer(kerasopt.SGD(0.1, nonfinite="skip"))
    grads = [np.array([1.0, -1.0]), np.array([2.0, 0.5]), np.array([np.nan, 0.0]),
             np.array([-1.0, 1.0])]
    iterates = []

    def step(g):
        optimizer.apply_gradients([(tf.cast(g, tf.float32), w)])

    step = tf.function(step) if compiled else step
    for g in grads:
        step(g)
        if np.all(np.isfinite(g)):
            iterates.append(w.numpy().copy())
    np.testing.assert_allclose(optimizer.average_for(w).numpy(), np.mean(iterates, axis=0),
                               rtol=1e-6)
    assert int(optimizer.wrapper_steps()) == 3


def test_fit_ends_on_the_average_of_the_real_iterates():
    """fit over data whose third batch holds a NaN, with the inner optimizer
    skipping it, ends on the bits of fitting without that batch."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6 * 16, 5)).astype(np.float32)
    y = (x @ rng.standard_normal((5, 1))).astype(np.float32)
    x_bad = x.copy()
    x_bad[2 * 16 + 3, 1] = np.nan
    clean = np.r_[0:32, 48:96]

    def fit(x, y):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
        model.compile(optimizer=kerasopt.AveragedOptimizer(
            kerasopt.SGD(learning_rate=0.05, nonfinite="skip")), loss="mse")
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        return model

    skipped, reference = fit(x_bad, y), fit(x[clean], y[clean])
    for a, b in zip(skipped.get_weights(), reference.get_weights()):
        assert_bit_identical(a, b, "weights after fit (the averages)")
