"""What a user sees: no TensorFlow error lines from kerasopt's commands on a
machine without a GPU, and the MNIST example says which path ran."""

import importlib.util
import os
import pathlib
import subprocess
import sys

import keras

import kerasopt

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _env_without_log_level():
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def test_python_m_kerasopt_prints_no_tensorflow_errors(tmp_path):
    # TensorFlow logs "E... failed call to cuInit" where no GPU driver is loaded.
    done = subprocess.run([sys.executable, "-P", "-m", "kerasopt", "info"], cwd=tmp_path,
                          capture_output=True, text=True, env=_env_without_log_level(), check=True)
    errors = [line for line in done.stderr.splitlines() if line.startswith("E0000")]
    assert errors == []


def test_importing_kerasopt_keeps_tensorflows_log_level(tmp_path):
    done = subprocess.run(
        [sys.executable, "-P", "-c",
         "import os, kerasopt; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"],
        cwd=tmp_path, capture_output=True, text=True, env=_env_without_log_level(), check=True)
    assert done.stdout.strip() == "None"


def _example():
    spec = importlib.util.spec_from_file_location("mnist_fit", ROOT / "examples" / "mnist_fit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compiled(jit_compile):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = kerasopt.Adam()
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile)
    return model, optimizer


def test_mnist_example_says_which_path_the_updates_run_on():
    example = _example()
    assert example.update_path(*_compiled(False)).startswith("the fused C++ kernels (")
    assert "XLA-compiled" in example.update_path(*_compiled(True))
    with kerasopt.implementation("tf"):
        assert example.update_path(*_compiled(False)) == \
            "the composed-TF fallback: KERASOPT_IMPL=tf was requested"
