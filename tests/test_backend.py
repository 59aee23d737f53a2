"""kerasopt needs Keras's TensorFlow backend: under another one, constructing an
optimizer fails at once, naming the backend and how to switch (before, it was
built silently and `fit` failed deep inside the step)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import keras
import pytest

import kerasopt


@pytest.mark.parametrize("make", [lambda: kerasopt.Adam(), lambda: kerasopt.Shampoo(),
                                  lambda: kerasopt.Ranger(),
                                  lambda: kerasopt.Lookahead(keras.optimizers.SGD())],
                         ids=["Adam", "Shampoo", "Ranger", "Lookahead"])
def test_other_backend_fails_at_construction(make, monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(RuntimeError) as info:
        make()
    message = str(info.value)
    assert "'jax'" in message and "KERAS_BACKEND=tensorflow" in message, message


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_keras_backend_jax_in_a_fresh_process(tmp_path):
    script = ("import kerasopt\n"
              "try:\n    kerasopt.Adam()\nexcept RuntimeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True,
                         check=True, cwd=tmp_path, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert "'jax'" in out.stdout and "KERAS_BACKEND=tensorflow" in out.stdout, out.stdout
