"""``kerasopt.patch_keras()`` / ``unpatch_keras()``: existing Keras code gets
kerasopt's optimizers, and unpatching restores Keras exactly.

For every optimizer both libraries have: ``keras.optimizers.Adam(...)``,
``keras.optimizers.get("adam")``, ``model.compile(optimizer="adam")``,
``deserialize`` and ``load_model`` of a config naming Keras's class give
kerasopt's class, whose step runs the fused op (the traced op types say so);
``tf.train.Checkpoint`` moves state between the two classes. A process that
imports kerasopt and never patches is Keras's own (a subprocess compares it
with one that never imports kerasopt), and ``python -m kerasopt.patch`` runs
a program patched. Saved files across Keras-only processes:
``tests/test_drop_in_files.py``.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import api_export
from keras.src import optimizers as keras_src_optimizers
from keras.src.saving import object_registration

import isolated
import kerasopt
from conftest import graph_op_types, regression_data, small_regression_model
from kerasopt.optimizers.fused import keras_counterpart
from kerasopt.patch import API_MODULES, patchable_names, patched_names

NAMES = patchable_names()
ORIGINAL = {name: getattr(keras.optimizers, name) for name in NAMES}  # read unpatched


def keras_state():
    """Everything patch_keras could touch, or Keras resolves names with."""
    modules = [importlib.import_module(name) for name in API_MODULES]
    return ([dict(vars(module)) for module in modules],
            dict(api_export.REGISTERED_NAMES_TO_OBJS),
            dict(api_export.REGISTERED_OBJS_TO_NAMES),
            dict(keras_src_optimizers.ALL_OBJECTS_DICT),
            dict(object_registration.GLOBAL_CUSTOM_OBJECTS),
            dict(object_registration.GLOBAL_CUSTOM_NAMES))


def string_names(name):
    """The strings Keras itself resolves to this optimizer (Keras 3.15 has no "lamb")."""
    return [name, name.lower()] if name.lower() in keras_src_optimizers.ALL_OBJECTS_DICT else []


@pytest.fixture(autouse=True)
def _unpatched():
    assert not kerasopt.keras_is_patched(), "a test before this one left Keras patched"
    yield
    kerasopt.unpatch_keras()


# --- the four ways Keras code names an optimizer ---------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_patched_name_gives_kerasopts_class_everywhere(name):
    original, ours = ORIGINAL[name], getattr(kerasopt, name)
    keras_config = keras.optimizers.serialize(original(learning_rate=0.05))
    assert keras_config["module"] == "keras.optimizers" and keras_config["registered_name"] is None

    kerasopt.patch_keras(name)
    assert keras.optimizers.__dict__[name] is ours
    assert type(getattr(keras.optimizers, name)(learning_rate=0.1)) is ours
    assert type(getattr(tf.keras.optimizers, name)()) is ours
    for identifier in string_names(name):
        assert type(keras.optimizers.get(identifier)) is ours, identifier
        assert type(small_regression_model(identifier).optimizer) is ours, identifier
    for deserialize in (keras.optimizers.deserialize, keras.saving.deserialize_keras_object):
        if deserialize is keras.optimizers.deserialize and not string_names(name):
            continue  # Keras 3.15's deserialize does not know "Lamb" (Keras's own gap)
        got = deserialize(copy.deepcopy(keras_config))
        assert type(got) is ours and float(got.learning_rate) == pytest.approx(0.05)
    # Saved under Keras's name: what Keras writes for its own class.
    assert keras.optimizers.serialize(ours(learning_rate=0.05, name="opt")) == \
        keras.optimizers.serialize(original(learning_rate=0.05, name="opt"))
    # kerasopt's class still derives from Keras's original class.
    assert keras_counterpart(ours) is original and isinstance(ours(), original)

    kerasopt.unpatch_keras()
    assert getattr(keras.optimizers, name) is original
    for identifier in string_names(name):
        assert type(keras.optimizers.get(identifier)) is original
    assert type(keras.saving.deserialize_keras_object(copy.deepcopy(keras_config))) is original


@pytest.mark.parametrize("name", NAMES)
def test_model_saved_by_keras_loads_into_kerasopt_when_patched(name, tmp_path):
    x, y = regression_data(n=32, features=8)
    model = small_regression_model(ORIGINAL[name](learning_rate=0.01))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = str(tmp_path / "keras.keras")
    model.save(path)
    saved = [v.numpy() for v in model.optimizer.variables]

    kerasopt.patch_keras()
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is getattr(kerasopt, name)
    assert len(loaded.optimizer.variables) == len(saved)
    for got, want in zip(loaded.optimizer.variables, saved):
        np.testing.assert_array_equal(got.numpy(), want, err_msg=got.path)
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0)  # and it trains on
    assert int(loaded.optimizer.iterations.numpy()) == 4

    kerasopt.unpatch_keras()
    assert type(keras.models.load_model(path).optimizer) is ORIGINAL[name]


# --- the fused op ----------------------------------------------------------------------

FUSED = [name for name in NAMES if getattr(kerasopt, name) in kerasopt.optimizers.ALL]


def train_step_op_types(model, x, y):
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # builds the model and the optimizer
    step = tf.function(lambda x, y: model.train_step((x, y)))
    return graph_op_types(step.get_concrete_function(tf.constant(x[:16]), tf.constant(y[:16])))


@pytest.mark.parametrize("name", FUSED)
def test_patched_compile_string_steps_with_the_fused_op(name):
    x, y = regression_data(n=32, features=8)
    identifier = string_names(name)[-1] if string_names(name) else None
    make = (lambda: identifier) if identifier else (lambda: keras.optimizers.Lamb())
    kernel_name = getattr(kerasopt, name).kernel_name

    def fused_ops(types):
        return sorted(t for t in types if t.startswith("Kerasopt") and t.endswith(kernel_name))

    unpatched = train_step_op_types(small_regression_model(make()), x, y)
    assert not [t for t in unpatched if t.startswith("Kerasopt")]
    kerasopt.patch_keras()
    model = small_regression_model(make())
    assert type(model.optimizer) is getattr(kerasopt, name)
    assert fused_ops(train_step_op_types(model, x, y)), name


def test_patched_fit_gives_keras_numbers():
    x, y = regression_data(n=64, features=8)
    keras_model = small_regression_model("adam")
    keras_model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    kerasopt.patch_keras()
    ours = small_regression_model("adam")
    ours.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert type(ours.optimizer) is kerasopt.Adam
    for a, b in zip(ours.get_weights(), keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # Adam's float32 bits are Keras's


# --- tf.train.Checkpoint ----------------------------------------------------------------


@pytest.mark.parametrize("written_patched", [False, True], ids=["keras-to-kerasopt",
                                                               "kerasopt-to-keras"])
def test_checkpoint_moves_between_the_classes(written_patched, tmp_path):
    x, y = regression_data(n=32, features=8)
    if written_patched:
        kerasopt.patch_keras()
    writer = small_regression_model(keras.optimizers.Adam(learning_rate=0.01))
    writer.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tf.train.Checkpoint(model=writer, optimizer=writer.optimizer).write(
        str(tmp_path / "ckpt"))
    want = [v.numpy() for v in writer.optimizer.variables] + writer.get_weights()
    if written_patched:
        kerasopt.unpatch_keras()
    else:
        kerasopt.patch_keras()

    reader = small_regression_model(keras.optimizers.Adam(learning_rate=0.01))
    expected = ORIGINAL["Adam"] if written_patched else kerasopt.Adam
    assert type(reader.optimizer) is expected
    reader.optimizer.build(reader.trainable_variables)
    tf.train.Checkpoint(model=reader, optimizer=reader.optimizer).read(path).assert_consumed()
    got = [v.numpy() for v in reader.optimizer.variables] + reader.get_weights()
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    reader.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert int(reader.optimizer.iterations.numpy()) == 4


# --- patch / unpatch semantics ------------------------------------------------------


def test_unpatch_restores_keras_exactly():
    before = keras_state()
    kerasopt.patch_keras()
    assert keras_state() != before
    assert set(patched_names()) == set(NAMES)
    kerasopt.unpatch_keras()
    assert keras_state() == before
    assert not kerasopt.keras_is_patched()


def test_patching_twice_and_unpatching_nothing_are_harmless():
    before = keras_state()
    kerasopt.unpatch_keras()
    assert keras_state() == before
    kerasopt.patch_keras()
    patched = keras_state()
    kerasopt.patch_keras()
    kerasopt.patch_keras(["adam", "Adam", "ADAM"])
    assert keras_state() == patched
    kerasopt.unpatch_keras()
    assert keras_state() == before
    kerasopt.unpatch_keras()
    assert keras_state() == before


def test_patched_block_undoes_only_what_it_patched():
    before = keras_state()
    with kerasopt.patched():
        assert set(patched_names()) == set(NAMES)
    assert keras_state() == before
    kerasopt.patch_keras("sgd")
    with pytest.raises(RuntimeError, match="inside"):
        with kerasopt.patched(["adam", "sgd"]):
            assert patched_names() == ("Adam", "SGD")
            raise RuntimeError("inside")
    assert patched_names() == ("SGD",)
    kerasopt.unpatch_keras()
    assert keras_state() == before


def test_names_limit_the_patch():
    before = keras_state()
    kerasopt.patch_keras(["adam", "sgd"])
    assert patched_names() == ("Adam", "SGD")
    assert kerasopt.keras_is_patched("adam") and not kerasopt.keras_is_patched("RMSprop")
    assert type(keras.optimizers.get("adam")) is kerasopt.Adam
    assert type(keras.optimizers.get("sgd")) is kerasopt.SGD
    assert type(keras.optimizers.get("rmsprop")) is ORIGINAL["RMSprop"]
    assert keras.optimizers.AdamW is ORIGINAL["AdamW"]
    kerasopt.patch_keras("rmsprop")  # adds to what is patched
    assert patched_names() == ("Adam", "RMSprop", "SGD")
    kerasopt.unpatch_keras("sgd")
    assert patched_names() == ("Adam", "RMSprop")
    assert type(keras.optimizers.get("sgd")) is ORIGINAL["SGD"]
    kerasopt.unpatch_keras()
    assert keras_state() == before


@pytest.mark.parametrize("names", [["adam", "Yogi"], "adagrad_da", ["sgd", 3]])
def test_unknown_name_raises_and_patches_nothing(names):
    before = keras_state()
    with pytest.raises(ValueError, match="no optimizer of both Keras and kerasopt") as error:
        kerasopt.patch_keras(names)
    assert "Adam" in str(error.value)  # it lists the names
    assert keras_state() == before
    with pytest.raises(ValueError):
        kerasopt.unpatch_keras(names)


def test_replaced_after_patching_is_left_alone():
    """Unpatch undoes only what is still kerasopt's."""
    kerasopt.patch_keras("adam")

    class Theirs(ORIGINAL["Adam"]):
        pass
    keras.optimizers.Adam = Theirs
    try:
        kerasopt.unpatch_keras()
        assert keras.optimizers.Adam is Theirs
        assert type(keras.optimizers.get("adam")) is ORIGINAL["Adam"]  # the registry is back
    finally:
        keras.optimizers.Adam = ORIGINAL["Adam"]


# --- a process that never patches; the runner ------------------------------------------

FINGERPRINT = textwrap.dedent("""
    import json, sys, keras
    if sys.argv[1] == "kerasopt":
        import kerasopt
        from kerasopt.patch import patchable_names
        assert kerasopt.keras_is_patched() is False
        for name in patchable_names():  # each makes its Keras-named subclass
            getattr(kerasopt, name)()
    from keras.src import api_export
    from keras.src import optimizers as src
    def name(obj):
        return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"
    out = {
        "attributes": {k: name(v) for k, v in vars(keras.optimizers).items() if isinstance(v, type)},
        "names_to_objs": {k: name(v) for k, v in api_export.REGISTERED_NAMES_TO_OBJS.items()},
        "objs_to_names": sorted([name(k), v] for k, v in api_export.REGISTERED_OBJS_TO_NAMES.items()
                                if not k.__module__.startswith("kerasopt.")),
        "kerasopt_to_names": sorted([name(k), v] for k, v in api_export.REGISTERED_OBJS_TO_NAMES.items()
                                    if k.__module__.startswith("kerasopt.")),
        "all_objects": {k: name(v) for k, v in src.ALL_OBJECTS_DICT.items()},
        "get": {k: name(type(keras.optimizers.get(k))) for k in src.ALL_OBJECTS_DICT
                if k not in ("optimizer", "lossscaleoptimizer", "multioptimizer", "optimizermap")},
    }
    print(json.dumps(out))
""")


def test_a_process_that_never_patches_is_kerass_own(tmp_path):
    keras_only = isolated.start(FINGERPRINT, "keras", cwd=tmp_path)
    with_kerasopt = isolated.start(FINGERPRINT, "kerasopt", cwd=tmp_path)
    want, got = isolated.finish(keras_only, 300), isolated.finish(with_kerasopt, 300)
    # kerasopt's only entry: each class Keras also has, made with Keras's
    # options, is written under Keras's name (saved_as_keras.py); reading that
    # name still gives Keras's class, as "names_to_objs" and "get" show.
    assert want.pop("kerasopt_to_names") == []
    assert got.pop("kerasopt_to_names") == sorted(
        [f"{getattr(kerasopt, name).__module__}.{name}", f"keras.optimizers.{name}"]
        for name in patchable_names())
    assert got == want
    assert want["get"]["adam"] == "keras.src.optimizers.adam.Adam"


RUNNER_SCRIPT = textwrap.dedent("""
    import json, sys
    import keras
    print(json.dumps({"argv": sys.argv, "name": __name__,
                      "adam": type(keras.optimizers.get("adam")).__module__,
                      "sgd": keras.optimizers.SGD.__module__}))
""")


def run_patched(args, cwd):
    return subprocess.run([sys.executable, "-m", "kerasopt.patch", *args], cwd=cwd,
                          env=isolated.child_env(), capture_output=True, text=True, timeout=300)


def test_runner_patches_then_runs_the_program(tmp_path):
    (tmp_path / "program.py").write_text(RUNNER_SCRIPT)
    done = run_patched(["program.py", "--flag", "x"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"argv": ["program.py", "--flag", "x"], "name": "__main__",
                   "adam": "kerasopt.optimizers.adam", "sgd": "kerasopt.optimizers.sgd"}


def test_runner_takes_names_and_modules(tmp_path):
    (tmp_path / "program_module.py").write_text(RUNNER_SCRIPT)
    done = run_patched(["--names", "sgd", "-m", "program_module", "a"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["adam"] == "keras.src.optimizers.adam"
    assert out["sgd"] == "kerasopt.optimizers.sgd"
    assert out["argv"][1:] == ["a"] and out["name"] == "__main__"


def test_runner_refuses_an_unknown_name_or_program(tmp_path):
    (tmp_path / "program.py").write_text("raise SystemExit('must not run')")
    done = run_patched(["--names", "adam,nosuch", "program.py"], tmp_path)
    assert done.returncode == 2
    assert "'nosuch'" in done.stderr and "must not run" not in done.stderr
    done = run_patched(["missing.py", "x"], tmp_path)
    assert done.returncode == 2 and "can't open file 'missing.py'" in done.stderr
