"""ScheduleFreeAdamW / ScheduleFreeSGD: the evaluation weights x (the
``averaged_weights()`` context and the SwapAveragedWeights callback), the
``interpolate`` switch, z's start when the optimizer is built inside a traced
step, and training with ``fit``."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from conftest import regression_data

CLASSES = [kerasopt.ScheduleFreeAdamW, kerasopt.ScheduleFreeSGD]


def _trained(cls, interpolate, steps=5):
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.standard_normal((4, 3)).astype(np.float32), name="k"),
                 keras.Variable(rng.standard_normal(3).astype(np.float32), name="b")]
    optimizer = cls(learning_rate=0.05, interpolate=interpolate)
    optimizer.build(variables)

    @tf.function
    def step(gradients):
        optimizer.apply_gradients(zip(gradients, variables))

    for _ in range(steps):
        step([tf.constant(rng.standard_normal(v.shape).astype(np.float32)) for v in variables])
    return optimizer, variables


@pytest.mark.parametrize("cls", CLASSES)
def test_averaged_weights_hold_x_and_restore_y_exactly(cls):
    optimizer, variables = _trained(cls, interpolate=True)
    y = [v.numpy() for v in variables]
    z = [optimizer.slots_for(v)[0].numpy() for v in variables]
    with optimizer.averaged_weights():
        inside = [v.numpy() for v in variables]
    for y_i, z_i, x_i in zip(y, z, inside):
        want = (y_i.astype(np.float64) - 0.1 * z_i) / 0.9  # beta_1 = 0.9
        np.testing.assert_allclose(x_i, want, rtol=1e-5, atol=1e-6)
        assert not np.array_equal(x_i, y_i)
    for before, variable in zip(y, variables):
        np.testing.assert_array_equal(variable.numpy(), before)


@pytest.mark.parametrize("cls", CLASSES)
def test_without_interpolation_the_weights_are_the_average(cls):
    optimizer, variables = _trained(cls, interpolate=False)
    y = [v.numpy() for v in variables]
    with optimizer.averaged_weights():
        for before, variable in zip(y, variables):
            np.testing.assert_array_equal(variable.numpy(), before)


def test_averaged_weights_need_a_built_optimizer():
    with pytest.raises(ValueError, match="not built"):
        with kerasopt.ScheduleFreeAdamW().averaged_weights():
            pass


def test_averaged_weights_are_restored_after_an_error():
    optimizer, variables = _trained(kerasopt.ScheduleFreeSGD, interpolate=True)
    y = [v.numpy() for v in variables]
    with pytest.raises(RuntimeError):
        with optimizer.averaged_weights():
            raise RuntimeError("evaluation failed")
    for before, variable in zip(y, variables):
        np.testing.assert_array_equal(variable.numpy(), before)


@pytest.mark.parametrize("cls", CLASSES)
def test_z_starts_at_the_weights_when_built_inside_the_step(cls):
    """Keras 3.15.1 assigns z inside ``build``; built inside a tf.function that
    assign is traced into the step, and z starts at 0 (with a learning rate of
    0 its weights then become 0). kerasopt assigns it eagerly."""
    def run(optimizer):
        variable = keras.Variable(np.array([1.0, 2.0, -3.0], np.float32))

        @tf.function
        def step():
            optimizer.apply_gradients([(tf.ones(3), variable)])

        step()
        step()
        return variable.numpy()

    np.testing.assert_array_equal(run(cls(learning_rate=0.0)), [1.0, 2.0, -3.0])
    if cls is kerasopt.ScheduleFreeAdamW:  # Keras's behavior, which this differs from
        np.testing.assert_array_equal(run(keras.optimizers.ScheduleFreeAdamW(learning_rate=0.0)),
                                      [0.0, 0.0, 0.0])


def test_callback_evaluates_on_x_during_fit():
    x, y = regression_data(n=64, features=8)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    optimizer = kerasopt.ScheduleFreeAdamW(learning_rate=0.05, interpolate=True)
    model.compile(optimizer=optimizer, loss="mse")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            kernel = model.weights[0]
            z = optimizer.slots_for(kernel)[0]
            seen.append((kernel.numpy(), z.numpy()))

        def on_epoch_end(self, epoch, logs=None):
            seen.append(("epoch end", model.weights[0].numpy()))

    model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x, y),
              callbacks=[kerasopt.SwapAveragedWeights(), Record()])
    evaluations = [s for s in seen if not isinstance(s[0], str)]
    assert len(evaluations) == 2
    with optimizer.averaged_weights():
        x_now = model.weights[0].numpy()
    np.testing.assert_array_equal(evaluations[-1][0], x_now)  # the last evaluation saw x
    assert not np.array_equal(x_now, model.weights[0].numpy())  # fit leaves y


@pytest.mark.parametrize("name", ["ScheduleFreeAdamW", "ScheduleFreeSGD", "Adafactor", "Muon"])
def test_fit_reduces_the_loss(name):
    x, y = regression_data(n=256, features=8)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dense(1)])
    lr = {"ScheduleFreeSGD": 0.05, "Adafactor": 0.05}.get(name, 0.02)
    model.compile(optimizer=getattr(kerasopt, name)(learning_rate=lr), loss="mse")
    history = model.fit(x, y, batch_size=32, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses


def test_config_keeps_interpolate_only_when_not_the_default():
    assert "interpolate" not in kerasopt.ScheduleFreeAdamW().get_config()
    assert kerasopt.ScheduleFreeAdamW(interpolate=True).get_config()["interpolate"] is True
    assert "interpolate" not in kerasopt.ScheduleFreeSGD().get_config()
    config = kerasopt.ScheduleFreeSGD(interpolate=False, warmup_steps=3).get_config()
    again = kerasopt.ScheduleFreeSGD.from_config(config)
    assert again.interpolate is False and again.warmup_steps == 3


@pytest.mark.parametrize("cls", CLASSES)
def test_float32_slots_for_bfloat16_weights(cls):
    """slot_dtype="float32": z (and v) in float32, z starting at the widened
    weights; training follows the float32 run to bfloat16 precision."""
    rng = np.random.default_rng(5)
    start = rng.standard_normal(64).astype(np.float32)
    grads = [rng.standard_normal(64).astype(np.float32) for _ in range(4)]
    runs = {}
    for dtype, slot_dtype in (("bfloat16", "float32"), ("float32", None)):
        variable = keras.Variable(start, dtype=dtype)
        optimizer = cls(learning_rate=0.05, slot_dtype=slot_dtype)
        optimizer.build([variable])
        for slot in optimizer.slots_for(variable):
            assert slot.dtype == "float32"
        np.testing.assert_array_equal(optimizer.slots_for(variable)[0].numpy(),
                                      variable.numpy().astype(np.float32))
        for g in grads:
            optimizer.apply_gradients([(tf.constant(g, dtype), variable)])
        runs[dtype] = variable.numpy().astype(np.float32)
    np.testing.assert_allclose(runs["bfloat16"], runs["float32"], rtol=2e-2, atol=2e-2)
