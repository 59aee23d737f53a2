"""kerasopt optimizers inside keras.optimizers.MultiOptimizer / OptimizerMap.

The common split: Muon for the 2-D weights, kerasopt.AdamW for the rest. The
inner kerasopt optimizers keep their fused ops (the AdamW variables go
through one KerasoptMultiApplyAdamW op, the Muon kernel through
KerasoptMuonMomentum / KerasoptMuonUpdateWeights), give the numbers of the same split
made with Keras's own classes, train through ``fit`` and come back from
``model.save`` with their state. A schedule-free optimizer inside a
MultiOptimizer evaluates on its averaged weights with SwapAveragedWeights.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from conftest import graph_op_types, regression_data


def _model():
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, name="hidden"),
                             keras.layers.Dense(1, name="out")])


def _split(muon, adamw):
    """Muon for the hidden kernel (2-D), AdamW for the biases and the output layer."""
    optimizer_map = keras.optimizers.OptimizerMap(
        default_optimizer=adamw(learning_rate=0.01, weight_decay=0.01))
    # (A loaded model's paths lack the model's name: "hidden/kernel", where the
    # model that was saved has "sequential_3/hidden/kernel".)
    optimizer_map["(.*/)?hidden/kernel"] = muon(learning_rate=0.02, exclude_layers=["out"])
    return keras.optimizers.MultiOptimizer(optimizer_map)


def test_fused_ops_are_used_inside_multi_optimizer():
    lib = kerasopt.op_library.library()
    assert lib.loaded, lib.error
    model = _model()
    optimizer = _split(kerasopt.Muon, kerasopt.AdamW)
    optimizer.build(model.trainable_variables)
    grads = [tf.ones_like(v) for v in model.trainable_variables]

    @tf.function
    def step():
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    with kerasopt.implementation("auto"):
        op_types = graph_op_types(step.get_concrete_function())
    assert "KerasoptMultiApplyAdamW" in op_types  # AdamW's three variables in one fused op
    # Muon's fused ops around TensorFlow's Newton-Schulz products.
    assert {"KerasoptMuonMomentum", "KerasoptMuonUpdateWeights", "MatMul"} <= op_types
    assert [type(o).__name__ for o in optimizer.optimizers] == ["Muon", "AdamW"]


def _fit(optimizer, epochs=3):
    x, y = regression_data(n=64, features=8)
    model = _model()
    model.compile(optimizer=optimizer, loss="mse")
    history = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, shuffle=False)
    return model, history.history["loss"]


def test_same_numbers_as_the_split_with_keras_classes():
    keras.utils.set_random_seed(1)
    ours, losses = _fit(_split(kerasopt.Muon, kerasopt.AdamW))
    keras.utils.set_random_seed(1)
    theirs, _ = _fit(_split(keras.optimizers.Muon, keras.optimizers.AdamW))
    assert losses[-1] < losses[0]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        scale = np.max(np.abs(b))
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale)
    assert len(ours.optimizer.variables) == len(theirs.optimizer.variables)
    for a, b in zip(ours.optimizer.variables, theirs.optimizer.variables):
        assert a.shape == b.shape
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4,
                                   atol=1e-4 * np.max(np.abs(b.numpy())), err_msg=a.path)


def test_save_load_keeps_the_inner_optimizers(tmp_path):
    model, _ = _fit(_split(kerasopt.Muon, kerasopt.AdamW), epochs=1)
    path = tmp_path / "model.keras"
    model.save(path)
    # Keras's MultiOptimizer file names each inner optimizer as Keras's class
    # (kerasopt/optimizers/saved_name.py): Keras alone reads it; patched, kerasopt.
    assert [type(o) for o in keras.models.load_model(path).optimizer.optimizers] == [
        keras.optimizers.Muon, keras.optimizers.AdamW]
    with kerasopt.patched():
        loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is keras.optimizers.MultiOptimizer
    assert [type(o) for o in loaded.optimizer.optimizers] == [kerasopt.Muon, kerasopt.AdamW]
    muon = loaded.optimizer.optimizers[0]
    assert muon.exclude_layers == ["out"] and float(muon.learning_rate) == pytest.approx(0.02)
    assert [v.shape for v in loaded.optimizer.variables] == [
        v.shape for v in model.optimizer.variables]
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert int(loaded.optimizer.optimizers[1].iterations.numpy()) == 4
    x, y = regression_data(n=64, features=8)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_schedule_free_inside_multi_optimizer_evaluates_on_x():
    x, y = regression_data(n=64, features=8)
    schedule_free = kerasopt.ScheduleFreeAdamW(learning_rate=0.01, interpolate=True)
    optimizer_map = keras.optimizers.OptimizerMap(default_optimizer=kerasopt.SGD(0.01))
    optimizer_map["(.*/)?hidden/.*"] = schedule_free
    model = _model()
    model.compile(optimizer=keras.optimizers.MultiOptimizer(optimizer_map), loss="mse")
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    hidden = model.get_layer("hidden")
    y_weights = [v.numpy() for v in hidden.weights]
    with schedule_free.averaged_weights():
        x_weights = [v.numpy() for v in hidden.weights]
        on_x = model.evaluate(x, y, verbose=0)
    for before, after in zip(y_weights, [v.numpy() for v in hidden.weights]):
        np.testing.assert_array_equal(before, after)  # y restored exactly
    assert not np.array_equal(x_weights[0], y_weights[0])

    seen = []

    class Record(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            seen.append([v.numpy() for v in hidden.weights])

    model.evaluate(x, y, verbose=0, callbacks=[kerasopt.SwapAveragedWeights(), Record()])
    np.testing.assert_array_equal(seen[0][0], x_weights[0])
    np.testing.assert_array_equal(hidden.weights[0].numpy(), y_weights[0])
    assert model.evaluate(x, y, verbose=0) != on_x
