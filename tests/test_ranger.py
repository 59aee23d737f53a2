"""kerasopt.Ranger: RAdam inside Lookahead, as a named optimizer. Its math is
RAdam's and Lookahead's (tested in their own files); here: the identities
that define it, its flat config, and model.save / load."""

import keras
import numpy as np
import pytest

import kerasopt
from test_lookahead_averaging import _problem, _run, _same_bits  # tests/ is on sys.path


@pytest.mark.parametrize("implementation", ["kernel", "tf"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float32", "float64"])
def test_ranger_with_k1_alpha1_is_radam(implementation, dtype):
    w0, grads = _problem(steps=8)  # past RAdam's rectification threshold (step 5)
    ranger = _run(kerasopt.Ranger(learning_rate=0.01, sync_period=1, slow_step_size=1.0),
                  w0, grads, implementation, dtype)
    radam = _run(kerasopt.RAdam(learning_rate=0.01, beta_1=0.95, epsilon=1e-5),
                 w0, grads, implementation, dtype)
    for t, (a, b) in enumerate(zip(ranger, radam), start=1):
        _same_bits(a, b, f"step {t}")


def test_ranger_is_lookahead_of_radam():
    w0, grads = _problem(steps=13)
    ranger = _run(kerasopt.Ranger(learning_rate=0.02, sync_period=4, slow_step_size=0.3),
                  w0, grads)
    composed = _run(kerasopt.Lookahead(
        kerasopt.RAdam(learning_rate=0.02, beta_1=0.95, epsilon=1e-5),
        sync_period=4, slow_step_size=0.3), w0, grads)
    for t, (a, b) in enumerate(zip(ranger, composed), start=1):
        _same_bits(a, b, f"step {t}")
    assert not np.array_equal(ranger[-1], _run(kerasopt.RAdam(0.02, beta_1=0.95, epsilon=1e-5),
                                               w0, grads)[-1])


def test_ranger_defaults_and_bad_arguments():
    opt = kerasopt.Ranger()
    inner = opt.inner_optimizer
    assert isinstance(inner, kerasopt.RAdam)
    assert (inner.beta_1, inner.beta_2, inner.epsilon) == (0.95, 0.999, 1e-5)
    assert (opt.sync_period, opt.slow_step_size) == (6, 0.5)
    with pytest.raises(ValueError, match="sync_period"):
        kerasopt.Ranger(sync_period=0)
    with pytest.raises(ValueError, match="beta_1"):
        kerasopt.Ranger(beta_1=1.5)


def test_ranger_config_and_model_save_round_trip(tmp_path):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, 10, 0.9)
    for learning_rate in (0.03, schedule):
        opt = kerasopt.Ranger(learning_rate=learning_rate, sync_period=3, weight_decay=1e-3)
        config = opt.get_config()
        assert "optimizer" not in config  # flat, like any named optimizer
        clone = kerasopt.Ranger.from_config(config)
        assert clone.get_config() == config
        assert keras.optimizers.deserialize(keras.optimizers.serialize(opt)).get_config() == config

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x @ rng.standard_normal((4, 1))).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=kerasopt.Ranger(learning_rate=0.05, sync_period=3), loss="mse")
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=4, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.7 * first

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is kerasopt.Ranger
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        _same_bits(a.numpy(), b.numpy(), a.path)  # slow weights and RAdam's moments
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        _same_bits(a, b, "training goes on identically after load")
