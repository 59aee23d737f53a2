"""The op library loader: version check, missing files, and falling back."""

from __future__ import annotations

import os
import shutil
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt import op_library

import references as R
from conftest import graph_op_types, require_kernel_library

MARKER = b"KERASOPT_BUILT_FOR_TENSORFLOW="


@pytest.fixture
def real_library_path():
    lib = require_kernel_library()
    assert lib.path and os.path.exists(lib.path)
    return lib.path


@pytest.fixture
def no_load(monkeypatch):
    """Makes tf.load_op_library record its calls instead of loading anything."""
    calls = []

    def fake(path):
        calls.append(path)
        return object()

    monkeypatch.setattr(tf, "load_op_library", fake)
    return calls


def patched_copy(src, dst, version: bytes):
    """Copies the library with its recorded TensorFlow version replaced (same length)."""
    with open(src, "rb") as f:
        data = f.read()
    start = data.find(MARKER)
    assert start >= 0, "the library carries no build marker"
    assert data.find(MARKER, start + 1) < 0, "more than one build marker"
    end = data.index(b";", start)
    old = data[start + len(MARKER):end]
    assert len(version) == len(old), (old, version)
    with open(dst, "wb") as f:
        f.write(data[:start + len(MARKER)] + version + data[end:])
    return old.decode()


def test_real_library_records_running_tensorflow(real_library_path):
    assert op_library.read_built_for(real_library_path) == tf.__version__
    lib = op_library.library()
    assert lib.loaded and lib.error is None and lib.built_for == tf.__version__
    assert hasattr(lib.ops, "kerasopt_apply_adam") and hasattr(lib.ops, "kerasopt_apply_sgd")


def test_refuses_library_built_for_another_tensorflow(real_library_path, tmp_path, no_load):
    fake_version = b"1.99." + b"0" * (len(tf.__version__) - len("1.99."))
    path = str(tmp_path / "_kerasopt_ops.so")
    built = patched_copy(real_library_path, path, fake_version)
    assert built == tf.__version__
    assert op_library.read_built_for(path) == fake_version.decode()

    lib = op_library._load(path)
    assert isinstance(lib, op_library.OpLibrary)
    assert not lib.loaded and lib.ops is None
    assert lib.built_for == fake_version.decode()
    assert fake_version.decode() in lib.error and tf.__version__ in lib.error, lib.error
    assert no_load == [], "a library built for another TensorFlow was loaded"


def test_refuses_other_minor_release(real_library_path, tmp_path, no_load):
    major, minor = tf.__version__.split(".")[:2]
    other = f"{major}.{int(minor) + 1}."
    version = (other + "0" * 10)[:len(tf.__version__)].encode()
    path = str(tmp_path / "lib.so")
    patched_copy(real_library_path, path, version)
    lib = op_library._load(path)
    assert not lib.loaded and version.decode() in lib.error and no_load == []


def test_accepts_another_patch_release(real_library_path, tmp_path, no_load):
    """TensorFlow keeps its ABI within a minor release: 2.21.x loads."""
    major, minor = tf.__version__.split(".")[:2]
    version = (f"{major}.{minor}." + "9" * 10)[:len(tf.__version__)].encode()
    path = str(tmp_path / "lib.so")
    patched_copy(real_library_path, path, version)
    lib = op_library._load(path)
    assert lib.error is None and lib.loaded and no_load == [path]


def test_library_without_marker(tmp_path, no_load):
    path = tmp_path / "plain.so"
    path.write_bytes(b"\x7fELF not really a library")
    lib = op_library._load(str(path))
    assert not lib.loaded and "version" in lib.error and str(path) in lib.error
    assert no_load == []


def test_missing_path_gives_a_clear_error(tmp_path, no_load):
    path = str(tmp_path / "nowhere" / "_kerasopt_ops.so")
    lib = op_library._load(path)
    assert not lib.loaded and lib.path == path
    assert "not found" in lib.error and path in lib.error
    lib = op_library._load(None)
    assert not lib.loaded and "op library" in lib.error
    assert no_load == []


def test_load_failure_is_reported_not_raised(tmp_path, monkeypatch, real_library_path):
    path = str(tmp_path / "lib.so")
    shutil.copy(real_library_path, path)

    def broken(p):
        raise tf.errors.NotFoundError(None, None, "undefined symbol: _ZN10tensorflow3FooEv")

    monkeypatch.setattr(tf, "load_op_library", broken)
    lib = op_library._load(path)
    assert not lib.loaded and "undefined symbol" in lib.error and path in lib.error


def test_environment_overrides_library_path(monkeypatch, tmp_path):
    path = str(tmp_path / "custom.so")
    monkeypatch.setenv(op_library.ENV_LIBRARY, path)
    assert op_library.default_library_path() == path


def test_library_warns_once_when_it_cannot_load(monkeypatch, tmp_path):
    monkeypatch.setattr(op_library, "_library", None)
    monkeypatch.setenv(op_library.ENV_LIBRARY, str(tmp_path / "missing.so"))
    with pytest.warns(RuntimeWarning, match="fallback"):
        lib = op_library.library()
    assert not lib.loaded
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert op_library.library() is lib


# --- optimizers when the library failed -------------------------------------------------


@pytest.fixture
def failed_library(monkeypatch):
    failed = op_library.OpLibrary("/nowhere/_kerasopt_ops.so", None, None,
                                  "simulated load failure for the test")
    monkeypatch.setattr(op_library, "_library", failed)
    return failed


@pytest.mark.parametrize("make,rule,hp", [
    (lambda: kerasopt.Adam(learning_rate=0.1), "adam",
     dict(learning_rate=float(np.float32(0.1)), beta_1=0.9, beta_2=0.999, epsilon=1e-7)),
    (lambda: kerasopt.SGD(learning_rate=0.1, momentum=0.9), "sgd",
     dict(learning_rate=float(np.float32(0.1)), momentum=0.9)),
])
def test_auto_falls_back_and_trains(failed_library, make, rule, hp):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(10)
    grads = [rng.standard_normal(10) for _ in range(5)]
    var = keras.Variable(w0.astype(np.float32))
    opt = make()

    @tf.function
    def step(g):
        opt.apply_gradients([(g, var)])

    with kerasopt.implementation("auto"):
        for g in grads:
            step(tf.constant(g, tf.float32))
        ops = graph_op_types(step.get_concrete_function(tf.constant(grads[0], tf.float32)))
    assert not any(t.startswith("Kerasopt") for t in ops), ops
    want, _ = R.run(rule, w0.astype(np.float32), [g.astype(np.float32) for g in grads], hp)
    np.testing.assert_allclose(var.numpy(), want, rtol=1e-5, atol=1e-6)


def test_auto_falls_back_in_model_fit(failed_library):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 4)).astype(np.float32)
    y = x @ rng.standard_normal((4, 1)).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=kerasopt.Adam(0.05), loss="mse")
    with kerasopt.implementation("auto"):
        history = model.fit(x, y, batch_size=32, epochs=5, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("make", [lambda: kerasopt.Adam(), lambda: kerasopt.SGD(momentum=0.5)])
def test_kernel_implementation_raises_when_library_failed(failed_library, make):
    var = keras.Variable(np.ones(3, np.float32))
    opt = make()
    with kerasopt.implementation("kernel"):
        with pytest.raises(RuntimeError, match="simulated load failure"):
            opt.apply_gradients([(tf.ones(3), var)])
    np.testing.assert_array_equal(var.numpy(), 1.0)


def test_tf_implementation_never_touches_the_library(monkeypatch):
    def boom():
        raise AssertionError("library() was called under implementation('tf')")

    monkeypatch.setattr(op_library, "library", boom)
    var = keras.Variable(np.ones(3, np.float32))
    with kerasopt.implementation("tf"):
        kerasopt.SGD(learning_rate=0.5).apply_gradients([(tf.ones(3), var)])
    np.testing.assert_allclose(var.numpy(), 0.5)


# --- the implementation switch ------------------------------------------------------------


def test_implementation_context_nests_and_restores(monkeypatch):
    monkeypatch.delenv(op_library.ENV_IMPLEMENTATION, raising=False)
    kerasopt.set_implementation(None)
    assert kerasopt.get_implementation() == "auto"
    with kerasopt.implementation("tf"):
        assert kerasopt.get_implementation() == "tf"
        with kerasopt.implementation("kernel"):
            assert kerasopt.get_implementation() == "kernel"
        assert kerasopt.get_implementation() == "tf"
    assert kerasopt.get_implementation() == "auto"
    with pytest.raises(KeyError):
        with kerasopt.implementation("kernel"):
            raise KeyError("restored even on error")
    assert kerasopt.get_implementation() == "auto"


def test_environment_chooses_when_not_set(monkeypatch):
    kerasopt.set_implementation(None)
    monkeypatch.setenv(op_library.ENV_IMPLEMENTATION, "tf")
    assert kerasopt.get_implementation() == "tf"
    kerasopt.set_implementation("kernel")
    assert kerasopt.get_implementation() == "kernel"  # explicit choice wins
    kerasopt.set_implementation(None)
    monkeypatch.setenv(op_library.ENV_IMPLEMENTATION, "")
    assert kerasopt.get_implementation() == "auto"


def test_traced_function_keeps_its_path():
    require_kernel_library()
    var = keras.Variable(np.ones(3, np.float32))
    opt = kerasopt.SGD(learning_rate=0.25)

    @tf.function
    def step(g):
        opt.apply_gradients([(g, var)])

    with kerasopt.implementation("tf"):
        step(tf.ones(3))
    with kerasopt.implementation("kernel"):
        step(tf.ones(3))  # already traced: still the fallback
    assert "KerasoptApplySGD" not in graph_op_types(step.get_concrete_function(tf.ones(3)))
    np.testing.assert_allclose(var.numpy(), 0.5)

    @tf.function
    def fresh(g):
        opt.apply_gradients([(g, var)])

    with kerasopt.implementation("kernel"):
        fresh(tf.ones(3))
    fresh_ops = graph_op_types(fresh.get_concrete_function(tf.ones(3)))
    assert "KerasoptApplySGD" in fresh_ops or "KerasoptMultiApplySGD" in fresh_ops
    np.testing.assert_allclose(var.numpy(), 0.25)


def test_an_op_not_built_for_the_cpu_sends_the_variable_to_the_fallback():
    """A CPU variable uses a kernel only when its op is registered for the CPU
    (an algorithm whose op is not built yet, as those in AWAITING_KERNELS):
    auto takes the fallback, kernel names the missing op."""
    require_kernel_library()
    variable = tf.Variable(np.ones(3, np.float32))
    with kerasopt.implementation("auto"):
        assert op_library.use_kernel(variable, "KerasoptApplyAdam")
        assert op_library.use_kernel(variable)
        assert not op_library.use_kernel(variable, "KerasoptApplyNoSuchRule")
    with kerasopt.implementation("kernel"):
        with pytest.raises(RuntimeError, match="KerasoptApplyNoSuchRule is built for CPU"):
            op_library.use_kernel(variable, "KerasoptApplyNoSuchRule")
    # An optimizer whose op is missing trains on its fallback under auto
    # (a stand-in: the optimizers awaiting their ops get them one by one).
    class Unbuilt(kerasopt.ScheduleFreeSGD):
        kernel_name = "NoSuchRule"

    optimizer = Unbuilt(learning_rate=0.1)
    weights = keras.Variable(np.ones(3, np.float32))
    with kerasopt.implementation("auto"):
        tf.function(lambda: optimizer.apply_gradients([(tf.ones(3), weights)]))()
    assert np.all(weights.numpy() < 1.0)
