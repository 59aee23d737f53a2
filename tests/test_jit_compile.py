"""Every optimizer trains under jit_compile=True (XLA cannot run custom ops).

On a GPU, Keras's default jit_compile="auto" turns XLA on, so this is the path
GPU users get by default: inside XLA kerasopt uses its composed-TF fallback
(op_library.kernel_unavailable_reason). Checked here on the CPU, for every
optimizer not already covered elsewhere: tests/test_training.py compares XLA
and kernel numbers for Adam and SGD, tests/test_second_order.py trains
FullMatrixAdagrad and Shampoo under XLA.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasopt
from kerasopt.optimizers import ALL, AWAITING_KERNELS
from conftest import regression_data

# Learning rates that make a visible dent in 3 epochs for every rule.
LEARNING_RATES = {"Adadelta": 1.0, "Ftrl": 0.1, "Lion": 0.003, "SGD": 0.01}


COVERED_ELSEWHERE = ("Adam", "SGD", "FullMatrixAdagrad", "Shampoo")


@pytest.mark.parametrize("optimizer_class",
                         [c for c in ALL + AWAITING_KERNELS
                          if c.__name__ not in COVERED_ELSEWHERE],
                         ids=lambda c: c.__name__)
def test_jit_compiled_fit_trains_with_the_fallback(optimizer_class):
    x, y = regression_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1)])
    learning_rate = LEARNING_RATES.get(optimizer_class.__name__, 0.01)
    # "auto": the kernel where it can run, the fallback inside XLA (no error).
    with kerasopt.implementation("auto"):
        model.compile(optimizer=optimizer_class(learning_rate=learning_rate), loss="mse",
                      jit_compile=True)
        # The loss before training, computed eagerly: model.evaluate would
        # compile a test function with XLA too, for one number.
        initial = float(np.mean((model(x).numpy() - y) ** 2))
        history = model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < initial, (initial, losses)
    assert int(model.optimizer.iterations.numpy()) > 0
