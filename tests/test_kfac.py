"""kerasopt.KFAC through kerasopt.KFACModel: the float64 Kronecker-factored
reference (tests/kfac_reference.py) for Dense and Conv2D layers, training
through fit, config, saving, bad input."""

import warnings

import keras
import numpy as np
import pytest

import kerasopt
from tests.kfac_reference import kfac_conv_steps, kfac_steps


def two_layer_problem(seed=0, n=16, sizes=(5, 6, 3)):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((sizes[0],)),
                              keras.layers.Dense(sizes[1], activation="tanh",
                                                 bias_initializer="random_normal"),
                              keras.layers.Dense(sizes[2], bias_initializer="random_normal")])
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, sizes[0])).astype(np.float32)
    y = rng.standard_normal((n, sizes[2])).astype(np.float32)
    return model, x, y


def conv_problem(seed=0, n=6, use_bias=True, strides=(1, 1), padding="same"):
    """Conv2D (a 3 x 2 kernel: the two kernel axes must not be swapped), Flatten, Dense."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((5, 4, 2)),
        keras.layers.Conv2D(3, (3, 2), strides=strides, padding=padding, activation="tanh",
                            use_bias=use_bias, bias_initializer="random_normal"),
        keras.layers.Flatten(),
        keras.layers.Dense(2, bias_initializer="random_normal")])
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5, 4, 2)).astype(np.float32)
    y = rng.standard_normal((n, 2)).astype(np.float32)
    return model, x, y


# kl_clip None: the plain K-FAC step; 1e-4: the clip is active (nu < 1, asserted).
@pytest.mark.parametrize("kl_clip", [None, 1e-4])
def test_matches_float64_kronecker_reference(kl_clip):
    hyper = dict(learning_rate=0.2, damping=1e-2, decay=0.8, inverse_frequency=2,
                 kl_clip=kl_clip)
    inner, x, y = two_layer_problem()
    start = [w.numpy() for w in inner.weights]
    model = kerasopt.KFACModel(inner)
    model.compile(optimizer=kerasopt.KFAC(**hyper), loss="mse")
    model.fit(x, y, batch_size=len(x), epochs=3, shuffle=False, verbose=0)
    expected, nus = kfac_steps(start, x, y, steps=3, **hyper)
    if kl_clip is not None:
        assert max(nus) < 1, "the clipping case must clip"
    for got, want in zip(inner.weights, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=2e-4, atol=2e-6)


# One step, then two more (inverses every 2 steps: the third runs on stale ones).
@pytest.mark.parametrize("use_bias, strides, padding, kl_clip", [
    (True, (1, 1), "same", None),
    (False, (2, 1), "valid", None),
    (True, (2, 2), "same", 1e-4),  # the clip is active (nu < 1, asserted)
])
def test_conv2d_matches_float64_kronecker_reference(use_bias, strides, padding, kl_clip):
    hyper = dict(learning_rate=0.2, damping=1e-2, decay=0.8, inverse_frequency=2,
                 kl_clip=kl_clip)
    inner, x, y = conv_problem(use_bias=use_bias, strides=strides, padding=padding)
    start = [w.numpy() for w in inner.weights]
    model = kerasopt.KFACModel(inner)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every layer is supported: no warning
        model.compile(optimizer=kerasopt.KFAC(**hyper), loss="mse")
    assert [l.name for l in model.kfac_layers] == [inner.layers[0].name, inner.layers[2].name]
    history, nus = kfac_conv_steps(start, x, y, steps=3, strides=strides, padding=padding,
                                   **hyper)
    if kl_clip is not None:
        assert max(nus) < 1, "the clipping case must clip"
    for epochs, expected in ((1, history[0]), (2, history[2])):
        model.fit(x, y, batch_size=len(x), epochs=epochs, shuffle=False, verbose=0)
        for got, want in zip(inner.weights, expected):
            np.testing.assert_allclose(got.numpy(), want, rtol=2e-4, atol=2e-6)


def test_cnn_fit_decreases_loss_and_unsupported_conv_takes_first_order():
    keras.utils.set_random_seed(3)
    dilated = keras.layers.Conv2D(4, 3, dilation_rate=2, padding="same", activation="relu")
    inner = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu"),
        dilated, keras.layers.Flatten(), keras.layers.Dense(3)])
    rng = np.random.default_rng(3)
    x = rng.standard_normal((128, 8, 8, 1)).astype(np.float32)
    y = np.stack([x[:, :4].mean((1, 2, 3)), x[:, 4:].mean((1, 2, 3)),
                  np.abs(x).mean((1, 2, 3))], axis=1).astype(np.float32) * 4
    model = kerasopt.KFACModel(inner)
    with pytest.warns(UserWarning, match=rf"{dilated.name}.*dilation_rate=\(2, 2\)"):
        model.compile(optimizer=kerasopt.KFAC(0.1, inverse_frequency=5, kl_clip=1e-2,
                                              first_order=kerasopt.Adam(1e-2)), loss="mse")
    assert [l.name for l in model.kfac_layers] == [inner.layers[0].name, inner.layers[3].name]
    kernel = dilated.kernel.numpy()
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0], history
    assert not np.allclose(dilated.kernel.numpy(), kernel), "the dilated Conv2D did not train"


def test_unsupported_layers_are_named_with_their_reasons():
    inner = keras.Sequential([
        keras.Input((6, 6, 4)),
        keras.layers.Conv2D(4, 3, groups=2, name="grouped"),
        keras.layers.Conv2D(4, 1, data_format="channels_first", name="first"),
        keras.layers.Conv2D(4, 1, name="plain"),
        keras.layers.Flatten(),
        keras.layers.Dense(2, name="lora"),
        keras.layers.Dense(2, name="frozen", trainable=False)])
    inner.get_layer("lora").enable_lora(1)
    reasons = kerasopt.KFACModel(inner).first_order_layers
    assert list(reasons) == ["grouped", "first", "lora"], reasons
    assert "groups=2" in reasons["grouped"]
    assert "channels_first" in reasons["first"]
    assert "LoRA" in reasons["lora"]
    assert [l.name for l in kerasopt.KFACModel(inner).kfac_layers] == ["plain"]


def test_fit_decreases_loss_and_first_order_trains_the_rest():
    keras.utils.set_random_seed(1)
    norm = keras.layers.LayerNormalization()
    inner = keras.Sequential([keras.Input((10,)), keras.layers.Dense(32, activation="relu"),
                              norm, keras.layers.Dense(4)])
    rng = np.random.default_rng(1)
    x = rng.standard_normal((256, 10)).astype(np.float32)
    y = (x[:, :4] * 2 + np.sin(x[:, 4:8])).astype(np.float32)
    model = kerasopt.KFACModel(inner)
    model.compile(optimizer=kerasopt.KFAC(0.1, inverse_frequency=5, kl_clip=1e-2,
                                          first_order=kerasopt.Adam(1e-2)), loss="mse")
    gamma = norm.gamma.numpy()
    history = model.fit(x, y, batch_size=64, epochs=4, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0], history
    assert not np.allclose(norm.gamma.numpy(), gamma), "the LayerNormalization did not train"
    assert [l.name for l in model.kfac_layers] == [inner.layers[0].name, inner.layers[2].name]


def test_config_round_trip():
    optimizer = kerasopt.KFAC(0.03, damping=1e-2, decay=0.9, inverse_frequency=7, kl_clip=None,
                              first_order=kerasopt.Adam(2e-3))
    config = optimizer.get_config()
    again = kerasopt.KFAC.from_config(config)
    assert again.get_config() == config
    assert isinstance(again.first_order, kerasopt.Adam)
    assert again.first_order.learning_rate.numpy() == pytest.approx(2e-3)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, kerasopt.KFAC) and restored.get_config() == config


@pytest.mark.parametrize("kwargs, error, match", [
    ({"damping": 0}, ValueError, "damping"),
    ({"damping": -1e-3}, ValueError, "damping"),
    ({"decay": 1.0}, ValueError, "decay"),
    ({"decay": -0.1}, ValueError, "decay"),
    ({"inverse_frequency": 0}, ValueError, "inverse_frequency"),
    ({"inverse_frequency": 2.5}, ValueError, "inverse_frequency"),
    ({"kl_clip": 0}, ValueError, "kl_clip"),
    ({"learning_rate": -1.0}, ValueError, "learning_rate"),
    ({"first_order": "adam"}, TypeError, "first_order"),
    ({"weight_decay": 1e-4}, ValueError, "weight_decay"),
    ({"clipnorm": 1.0}, ValueError, "clipnorm"),
    ({"use_ema": True}, ValueError, "use_ema"),
    ({"gradient_accumulation_steps": 2}, ValueError, "gradient_accumulation_steps"),
])
def test_bad_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        kerasopt.KFAC(**kwargs)


def test_misuse_is_refused_and_writes_nothing():
    inner, x, y = two_layer_problem()
    with pytest.raises(TypeError, match="KFACModel wraps a keras.Model"):
        kerasopt.KFACModel(inner.layers[0])
    with pytest.raises(TypeError, match="kerasopt.KFAC optimizer"):
        kerasopt.KFACModel(inner).compile(optimizer=kerasopt.Adam(), loss="mse")
    # A plain model with KFAC: apply() cannot see the layer statistics.
    inner.compile(optimizer=kerasopt.KFAC(), loss="mse")
    before = [w.numpy() for w in inner.weights]
    with pytest.raises(RuntimeError, match="KFACModel"):
        inner.train_on_batch(x, y)
    for got, want in zip(inner.weights, before):
        np.testing.assert_array_equal(got.numpy(), want)


def test_rank3_dense_inputs_are_refused():
    inner = keras.Sequential([keras.Input((3, 4)), keras.layers.Dense(2)])
    model = kerasopt.KFACModel(inner)
    model.compile(optimizer=kerasopt.KFAC(), loss="mse")
    with pytest.raises(ValueError, match="rank-2 inputs"):
        model.train_on_batch(np.ones((2, 3, 4), np.float32), np.ones((2, 3, 2), np.float32))


@pytest.mark.parametrize("problem", [two_layer_problem, conv_problem])
def test_saved_model_loads_and_trains_on_identically(tmp_path, problem):
    inner, x, y = problem()
    model = kerasopt.KFACModel(inner)
    model.compile(optimizer=kerasopt.KFAC(0.1, inverse_frequency=2), loss="mse")
    model.fit(x, y, batch_size=len(x), epochs=3, verbose=0)
    model.save(tmp_path / "kfac.keras")
    loaded = keras.saving.load_model(tmp_path / "kfac.keras")
    assert isinstance(loaded, kerasopt.KFACModel) and isinstance(loaded.optimizer, kerasopt.KFAC)
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    for got, want in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    for m in (model, loaded):  # step 4 steps with the loaded inverses (no refresh at 3)
        m.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    for got, want in zip(loaded.weights, model.weights):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-7)


def test_kernel_constraint_is_applied_after_the_step():
    keras.utils.set_random_seed(2)
    dense = keras.layers.Dense(3, kernel_constraint=keras.constraints.NonNeg())
    model = kerasopt.KFACModel(keras.Sequential([keras.Input((4,)), dense]))
    model.compile(optimizer=kerasopt.KFAC(1.0, kl_clip=None), loss="mse")
    x = np.random.default_rng(2).standard_normal((8, 4)).astype(np.float32)
    model.train_on_batch(x, -np.abs(x[:, :3]) - 1)  # pulls the kernel negative
    assert dense.kernel.numpy().min() >= 0
