"""Saved models move between kerasopt and a process with only Keras.

The Keras-only child makes ``import kerasopt`` fail, as if kerasopt were not
installed. For every optimizer both libraries have:

* a model saved with kerasopt's class under ``patch_keras()`` names Keras's
  class, and Keras alone loads it with the same optimizer state;
* one saved unpatched with Keras's options only names Keras's class too
  (``kerasopt/optimizers/saved_name.py``), so Keras alone loads it; with a
  kerasopt option (``lazy=True``), patched or not, it names ``kerasopt>Adam``
  and Keras alone refuses it;
* one saved by Keras alone loads into kerasopt's class under ``patch_keras()``.

In-process round trips: ``tests/test_patch_keras.py``.
"""

from __future__ import annotations

import copy
import inspect
import json
import pickle
import textwrap

import keras
import numpy as np
import pytest

import isolated
import kerasopt
from conftest import regression_data, small_regression_model
from kerasopt.patch import patchable_names

NAMES = patchable_names()

KERAS_ONLY = textwrap.dedent("""
    import json, sys
    sys.modules["kerasopt"] = None  # as if not installed: importing it fails
    import keras, numpy as np

    def described(model):
        optimizer = model.optimizer
        return {"type": f"{type(optimizer).__module__}.{type(optimizer).__name__}",
                "variables": [v.numpy().tolist() for v in optimizer.variables]}

    def data():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((32, 8)).astype("float32")
        return x, x[:, :1] * 0.5

    # One interpreter does every job (importing TensorFlow costs seconds):
    # argv[1] is a JSON list of [action, folder, names]; out[folder][name].
    out = {}
    for action, folder, names in json.loads(sys.argv[1]):
        out[folder] = {}
        for name in names:
            path = f"{folder}/{name}.keras"
            if action == "save":
                keras.utils.set_random_seed(0)
                model = keras.Sequential([keras.Input((8,)),
                                          keras.layers.Dense(4, activation="tanh"),
                                          keras.layers.Dense(1)])
                model.compile(optimizer=getattr(keras.optimizers, name)(learning_rate=0.01),
                              loss="mse")
                model.fit(*data(), batch_size=16, epochs=1, verbose=0)
                model.save(path)
                out[folder][name] = described(model)
                continue
            try:
                model = keras.models.load_model(path)
            except Exception as error:
                out[folder][name] = {"error": f"{type(error).__name__}: {error}"}
                continue
            out[folder][name] = described(model)
            model.fit(*data(), batch_size=16, epochs=1, verbose=0)  # and it trains on
            out[folder][name]["iterations"] = int(model.optimizer.iterations.numpy())
    print(json.dumps(out))
""")


def save_with_kerasopt(folder, names, **options):
    """Saves one model per name, compiled with kerasopt's class; {name: variables}."""
    x, y = regression_data(n=32, features=8)
    saved = {}
    for name in names:
        model = small_regression_model(getattr(kerasopt, name)(learning_rate=0.01, **options))
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        model.save(str(folder / f"{name}.keras"))
        saved[name] = [v.numpy() for v in model.optimizer.variables]
    return saved


def assert_same_state(arrays, from_child, name):
    """This process's optimizer variables equal the child's (JSON lists)."""
    assert len(arrays) == len(from_child), name
    for array, values in zip(arrays, from_child):
        np.testing.assert_array_equal(array, np.asarray(values, dtype=array.dtype), err_msg=name)


@pytest.fixture(autouse=True)
def _unpatched():
    assert not kerasopt.keras_is_patched()
    yield
    kerasopt.unpatch_keras()


@pytest.fixture(scope="module")
def keras_alone(tmp_path_factory):
    """The files the tests hand to Keras alone, and what one Keras-only child
    made of them: {folder: (path, kerasopt's saved state or None, child's result)}.

    "patched", "unpatched": every name saved by kerasopt under patch_keras() or
    not; "lazy-unpatched", "lazy-patched": Adam(lazy=True) likewise; "keras":
    saved by the child. One child loads and saves them all."""
    root = tmp_path_factory.mktemp("drop_in")
    names = {"patched": NAMES, "unpatched": NAMES, "lazy-unpatched": ["Adam"],
             "lazy-patched": ["Adam"], "keras": NAMES}
    folders = {key: root / key for key in names}
    for folder in folders.values():
        folder.mkdir()
    saved = {}
    try:
        kerasopt.patch_keras()
        saved["patched"] = save_with_kerasopt(folders["patched"], NAMES)
        kerasopt.unpatch_keras()
        saved["unpatched"] = save_with_kerasopt(folders["unpatched"], NAMES)
        saved["lazy-unpatched"] = save_with_kerasopt(folders["lazy-unpatched"], ["Adam"],
                                                     lazy=True)
        kerasopt.patch_keras("adam")
        saved["lazy-patched"] = save_with_kerasopt(folders["lazy-patched"], ["Adam"], lazy=True)
    finally:
        kerasopt.unpatch_keras()
    jobs = [["save" if key == "keras" else "load", str(folders[key]), names[key]]
            for key in names]
    child = isolated.run(KERAS_ONLY, json.dumps(jobs), cwd=root, timeout=600)
    return {key: (folders[key], saved.get(key), child[str(folders[key])]) for key in names}


@pytest.mark.parametrize("key", ["patched", "unpatched"])
def test_saved_loads_with_keras_alone(key, keras_alone):
    """Saved by kerasopt's class, under patch_keras() or not: Keras alone loads
    its own class with the same optimizer state, and trains on."""
    _, saved, loaded = keras_alone[key]
    for name in NAMES:
        assert loaded[name]["type"] == f"{getattr(keras.optimizers, name).__module__}.{name}", \
            loaded[name]
        assert_same_state(saved[name], loaded[name]["variables"], name)
        assert loaded[name]["iterations"] == 4


def test_saved_unpatched_loads_as_keras_unpatched_and_as_kerasopt_patched(tmp_path):
    saved = save_with_kerasopt(tmp_path, ["Adam"])["Adam"]
    path = str(tmp_path / "Adam.keras")
    optimizer = keras.models.load_model(path).optimizer
    assert type(optimizer) is keras.optimizers.Adam
    with kerasopt.patched("adam"):
        optimizer = keras.models.load_model(path).optimizer
    assert not kerasopt.keras_is_patched()
    assert type(optimizer) is kerasopt.Adam
    assert_same_state([v.numpy() for v in optimizer.variables], saved, "Adam")


@pytest.mark.parametrize("name", NAMES)
def test_saved_name_follows_the_options(name):
    cls = getattr(kerasopt, name)
    keras_name = f"keras.optimizers.{name}"
    plain = keras.optimizers.serialize(cls(learning_rate=0.01))
    assert (plain["module"], plain["class_name"], plain["registered_name"]) == \
        tuple(keras_name.rsplit(".", 1)) + (None,)
    assert type(cls()) is cls
    optioned = keras.optimizers.serialize(cls(learning_rate=0.01, nonfinite="skip"))
    assert optioned["registered_name"] == f"kerasopt>{name}"
    back = keras.optimizers.deserialize(copy.deepcopy(optioned))  # Keras edits it in place
    assert isinstance(back, cls) and back.nonfinite == "skip"
    assert keras.optimizers.serialize(back) == optioned


@pytest.mark.parametrize("options", [{"weight_decay_rate": 0.01},
                                     {"exclude_from_layer_adaptation": ["bias"]}])
def test_lamb_keyword_options_are_saved_under_kerasopts_name(options):
    assert keras.optimizers.serialize(kerasopt.Lamb())["registered_name"] is None
    serialized = keras.saving.serialize_keras_object(kerasopt.Lamb(**options))
    assert serialized["registered_name"] == "kerasopt>Lamb"
    back = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(back, kerasopt.Lamb) and back.get_config() == serialized["config"]


def test_the_kerasopt_options_listed_are_fused_optimizers_arguments():
    from kerasopt.optimizers import saved_name
    from kerasopt.optimizers.fused import FusedOptimizer
    parameters = inspect.signature(FusedOptimizer.__init__).parameters
    assert saved_name.KERASOPT_OPTIONS == {
        name: p.default for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY}


@pytest.mark.parametrize("options", [{}, {"lazy": True}], ids=["keras-options", "lazy"])
def test_a_pickled_optimizer_unpickles_as_kerasopt(options):
    optimizer = kerasopt.Adam(learning_rate=0.02, **options)
    copied = pickle.loads(pickle.dumps(optimizer))
    assert type(copied) is type(optimizer)
    assert copied.get_config() == optimizer.get_config()


@pytest.mark.parametrize("key", ["lazy-unpatched", "lazy-patched"])
def test_kerasopt_options_are_saved_under_kerasopts_name(key, keras_alone):
    """lazy=True is kerasopt's: Keras alone refuses the file (naming
    kerasopt>Adam) rather than drop the option; kerasopt loads it back as
    kerasopt.Adam with the option, patched or not."""
    folder, saved, loaded = keras_alone[key]
    assert "kerasopt>Adam" in loaded["Adam"]["error"], loaded
    optimizer = keras.models.load_model(str(folder / "Adam.keras")).optimizer
    assert isinstance(optimizer, kerasopt.Adam) and optimizer.lazy
    assert_same_state([v.numpy() for v in optimizer.variables], saved["Adam"], "Adam")


def test_saved_by_keras_alone_loads_into_kerasopt_patched(keras_alone):
    folder, _, saved = keras_alone["keras"]
    kerasopt.patch_keras()
    x, y = regression_data(n=32, features=8)
    for name in NAMES:
        model = keras.models.load_model(str(folder / f"{name}.keras"))
        assert isinstance(model.optimizer, getattr(kerasopt, name))
        assert_same_state([v.numpy() for v in model.optimizer.variables],
                          saved[name]["variables"], name)
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        assert int(model.optimizer.iterations.numpy()) == 4
    kerasopt.unpatch_keras()
    model = keras.models.load_model(str(folder / "Adam.keras"))
    assert type(model.optimizer) is keras.optimizers.Adam
