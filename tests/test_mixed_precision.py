"""Mixed precision: every optimizer trains under the mixed_float16 (wrapped by
Keras in a LossScaleOptimizer) and mixed_bfloat16 policies, and a step that
overflows is skipped without touching weights, slots or iterations (one
optimizer per update path: optimizer_table.representative_params)."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt

from conftest import assert_bit_identical, regression_data, require_kernel_library
from optimizer_table import OPTIMIZERS, representative_params

# Every optimizer on the kernel path; the fallback for Adam (the paths agree
# elsewhere, tests/test_rules.py and friends).
CASES = [pytest.param(cls, "kernel", id=f"{cls.__name__}-kernel") for cls in OPTIMIZERS] + [
    pytest.param(kerasopt.Adam, "tf", id="Adam-tf")]


@pytest.fixture
def policy(request):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy(previous)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
@pytest.mark.parametrize("cls, path", CASES)
def test_trains_under_policy(cls, path, policy):
    if path == "kernel":
        require_kernel_library()
    x, y = regression_data(n=128)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1, dtype="float32")])
    model.compile(optimizer=cls(), loss="mse")
    before = [w.copy() for w in model.get_weights()]
    with kerasopt.implementation(path):  # "kernel": raises rather than falls back
        history = model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    optimizer = model.optimizer
    if policy == "mixed_float16":
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        optimizer = optimizer.inner_optimizer
    assert type(optimizer) is cls
    assert model.layers[0].compute_dtype == policy.split("_")[1]
    assert model.layers[0].kernel.dtype == "float32"
    if policy == "mixed_float16":
        # Dynamic loss scaling starts at 2**15 and skips a step whose scaled
        # gradients overflow float16 (skips are tested exactly below).
        assert 0 < int(optimizer.iterations.numpy()) <= 8
    else:
        assert int(optimizer.iterations.numpy()) == 8
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)), losses
    after = model.get_weights()
    assert all(np.all(np.isfinite(w)) for w in after)
    assert any(np.any(a != b) for a, b in zip(after, before)), "weights did not move"


def loss_scaled(cls, dtype):
    variables = [keras.Variable(np.linspace(-1, 1, 12).reshape(3, 4).astype(dtype), name="a"),
                 keras.Variable(np.linspace(1, 2, 700).astype(dtype), name="b")]
    optimizer = keras.optimizers.LossScaleOptimizer(cls(), initial_scale=1024.0)
    return variables, optimizer


def grads(dtype, overflow=False):
    g = [np.full((3, 4), 3.0, dtype), np.linspace(-50, 50, 700).astype(dtype)]
    if overflow:
        g[1][123] = np.inf
    return [tf.constant(x) for x in g]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("cls", representative_params())
def test_overflow_step_is_skipped(cls, dtype, impl):
    variables, optimizer = loss_scaled(cls, dtype)

    @tf.function
    def step(g):
        optimizer.apply_gradients(zip(g, variables))

    step(grads(dtype))
    inner = optimizer.inner_optimizer
    snapshot = [v.numpy().copy() for v in variables + list(inner.variables)]
    scale = float(optimizer.dynamic_scale.numpy())
    step(grads(dtype, overflow=True))
    for before, v in zip(snapshot, variables + list(inner.variables)):
        assert_bit_identical(v.numpy(), before, f"{v.path} after an overflowing step")
    assert int(inner.iterations.numpy()) == 1
    assert float(optimizer.dynamic_scale.numpy()) == scale / 2
    step(grads(dtype))
    assert int(inner.iterations.numpy()) == 2
    assert all(np.all(np.isfinite(v.numpy())) for v in variables)


def test_loss_scale_composes_with_nonfinite_skip(impl):
    """Keras skips an overflowing step before kerasopt sees it; with
    nonfinite='skip' inside, both count the step the same way (not at all)."""
    variables, optimizer = loss_scaled(lambda: kerasopt.Adam(nonfinite="skip"), "float32")
    optimizer.apply_gradients(zip(grads("float32", overflow=True), variables))
    assert int(optimizer.iterations.numpy()) == 0
    optimizer.apply_gradients(zip(grads("float32"), variables))
    assert int(optimizer.iterations.numpy()) == 1
    assert not math.isnan(float(variables[0].numpy()[0, 0]))
