"""kerasopt optimizers in real Keras training: fit, save/load, XLA."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasopt
from kerasopt import op_library

from conftest import classification_data, regression_data, require_kernel_library

OPTIMIZERS = {
    "adam": lambda: kerasopt.Adam(learning_rate=0.01),
    "amsgrad": lambda: kerasopt.Adam(learning_rate=0.01, amsgrad=True),
    "sgd": lambda: kerasopt.SGD(learning_rate=0.02),
    "momentum": lambda: kerasopt.SGD(learning_rate=0.01, momentum=0.9),
    "nesterov": lambda: kerasopt.SGD(learning_rate=0.01, momentum=0.9, nesterov=True),
}


def regression_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(1, name="out"),
    ])


def classification_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(3, activation="softmax", name="out"),
    ])


def fit(model, x, y, epochs, **kwargs):
    return model.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0, **kwargs)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_fit_regression_loss_goes_down(name, impl):
    x, y = regression_data()
    model = regression_model()
    model.compile(optimizer=OPTIMIZERS[name](), loss="mse")
    initial = float(model.evaluate(x, y, verbose=0))
    history = fit(model, x, y, epochs=6)
    final = float(model.evaluate(x, y, verbose=0))
    assert np.all(np.isfinite(history.history["loss"]))
    assert final < 0.2 * initial, (initial, history.history["loss"], final)
    assert int(model.optimizer.iterations.numpy()) == 6 * 8


@pytest.mark.parametrize("name", ["adam", "nesterov"])
def test_fit_classification(name, impl):
    x, labels = classification_data()
    model = classification_model()
    model.compile(optimizer=OPTIMIZERS[name](), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    initial_loss, initial_accuracy = model.evaluate(x, labels, verbose=0)
    fit(model, x, labels, epochs=5)
    loss, accuracy = model.evaluate(x, labels, verbose=0)
    assert loss < 0.3 * initial_loss, (initial_loss, loss)
    assert accuracy > 0.9 > initial_accuracy + 0.1


@pytest.mark.parametrize("name", ["adam", "momentum"])
def test_fit_kernel_and_fallback_identical(name):
    require_kernel_library()
    x, y = regression_data()
    weights = {}
    for path in ("kernel", "tf"):
        with kerasopt.implementation(path):
            model = regression_model()
            model.compile(optimizer=OPTIMIZERS[name](), loss="mse")
            fit(model, x, y, epochs=3)
            weights[path] = model.get_weights()
    for a, b in zip(weights["kernel"], weights["tf"], strict=True):
        np.testing.assert_array_equal(a, b)


def optimizer_state(optimizer):
    """[(name, array)] of the optimizer's variables, in order.

    Keras restores optimizer variables by position; their paths may differ after
    loading (a slot built for "sequential_3/hidden/kernel" is named
    "sequential_3_hidden_kernel_momentum", its restored twin
    "hidden_kernel_momentum"), with keras.optimizers.Adam as well.
    """
    return [(v.path.rsplit("/", 1)[-1], v.numpy()) for v in optimizer.variables]


def assert_same_state(got, want):
    assert len(got) == len(want), ([k for k, _ in got], [k for k, _ in want])
    for (got_name, got_value), (want_name, want_value) in zip(got, want):
        assert want_name.endswith(got_name) or got_name.endswith(want_name), (got_name, want_name)
        np.testing.assert_array_equal(got_value, want_value, err_msg=want_name)


@pytest.mark.parametrize("name", ["adam", "amsgrad", "momentum", "nesterov"])
def test_save_load_round_trip_and_resume(name, impl, tmp_path):
    x, y = regression_data()
    model = regression_model()
    model.compile(optimizer=OPTIMIZERS[name](), loss="mse")
    fit(model, x, y, epochs=2)
    path = str(tmp_path / "m.keras")
    model.save(path)

    with kerasopt.patched():  # a class Keras has is saved under Keras's name
        loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 16
    before, after = optimizer_state(model.optimizer), optimizer_state(loaded.optimizer)
    assert_same_state(after, before)
    slots = [v for k, v in before if k.endswith(("_momentum", "_velocity", "_velocity_hat"))]
    assert len(slots) == {"adam": 8, "amsgrad": 12}.get(name, 4), [k for k, _ in before]
    assert all(np.any(v != 0) for v in slots)
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    # Continuing from the file gives exactly what continuing in memory gives.
    fit(model, x, y, epochs=2)
    fit(loaded, x, y, epochs=2)
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert_same_state(optimizer_state(loaded.optimizer), optimizer_state(model.optimizer))
    assert int(loaded.optimizer.iterations.numpy()) == 32


@pytest.mark.parametrize("name", ["adam", "amsgrad", "nesterov"])
def test_jit_compile_uses_fallback_and_matches(name, monkeypatch):
    x, y = regression_data()
    reasons = []
    original = op_library.kernel_unavailable_reason

    def spy(variable, *args, **kwargs):
        reason = original(variable, *args, **kwargs)
        reasons.append(reason)
        return reason

    monkeypatch.setattr(op_library, "kernel_unavailable_reason", spy)
    with kerasopt.implementation("auto"):
        xla = regression_model()
        xla.compile(optimizer=OPTIMIZERS[name](), loss="mse", jit_compile=True)
        history = fit(xla, x, y, epochs=4)
    assert reasons and all(r is not None and "XLA" in r for r in reasons), set(reasons)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses

    reasons.clear()
    with kerasopt.implementation("auto"):
        plain = regression_model()
        plain.compile(optimizer=OPTIMIZERS[name](), loss="mse", jit_compile=False)
        fit(plain, x, y, epochs=4)
    if op_library.library().loaded:
        assert reasons and all(r is None for r in reasons), set(reasons)  # the kernel ran
    for a, b in zip(xla.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["adam", "momentum"])
def test_jit_compile_with_kernel_implementation_raises(name):
    require_kernel_library()
    x, y = regression_data()
    model = regression_model()
    model.compile(optimizer=OPTIMIZERS[name](), loss="mse", jit_compile=True)
    with kerasopt.implementation("kernel"):
        with pytest.raises(RuntimeError, match="XLA"):
            fit(model, x, y, epochs=1)


@pytest.mark.parametrize("name", ["adam", "nesterov"])
def test_mixed_precision_matches_keras(name, impl):
    """Under the mixed_float16 policy Keras wraps the optimizer in a
    LossScaleOptimizer; kerasopt's must train exactly like Keras's."""
    keras_optimizers = {"adam": lambda: keras.optimizers.Adam(learning_rate=0.01),
                        "nesterov": lambda: keras.optimizers.SGD(learning_rate=0.01, momentum=0.9,
                                                                 nesterov=True)}
    x, y = regression_data()
    results = []
    previous = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        for optimizer in (OPTIMIZERS[name](), keras_optimizers[name]()):
            keras.utils.set_random_seed(0)
            model = keras.Sequential([
                keras.Input((8,)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(1, dtype="float32"),
            ])
            model.compile(optimizer=optimizer, loss="mse")
            history = fit(model, x, y, epochs=3)
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
            results.append((model.get_weights(), history.history["loss"]))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    (ours, our_loss), (theirs, their_loss) = results
    assert our_loss[-1] < our_loss[0]
    np.testing.assert_array_equal(our_loss, their_loss)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
