"""Checkpoints: stop at step K, restore in a fresh process, go on to step N.

For every optimizer: ``tf.train.Checkpoint`` and ``model.save`` at step K,
restored by another interpreter, continued to N, equal the uninterrupted run
bit for bit on the kernel path (one intra-op thread), within float tolerance
on the fallback path; a checkpoint written on one path restores into the
other and continues (within tolerance of the uninterrupted run).
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import isolated
from conftest import require_kernel_library
from optimizer_table import OPTIMIZERS

STEPS, STOP = 6, 3

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import numpy as np, keras, kerasopt

    stage, workdir, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    steps, stop = int(sys.argv[4]), int(sys.argv[5])

    def make_model(cls):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"),
                                  keras.layers.Dense(2)])
        model.compile(optimizer=cls(), loss="mse")
        return model

    def batch(step):
        rng = np.random.default_rng(100 + step)
        return (rng.standard_normal((8, 5)).astype(np.float32),
                rng.standard_normal((8, 2)).astype(np.float32))

    def train(model, first, last):
        for step in range(first, last):
            x, y = batch(step)
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(x) - y))
            grads = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables))

    def state(model):
        values = list(model.get_weights()) + [v.numpy() for v in model.optimizer.variables]
        return [float(x) for v in values for x in np.asarray(v, np.float64).ravel()]

    def checkpoint(model):
        return tf.train.Checkpoint(model=model, optimizer=model.optimizer)

    out = {}
    for name in names:
        cls = getattr(kerasopt, name)
        prefix = os.path.join(workdir, name)
        if stage == "first":
            for impl in ("kernel", "tf"):
                with kerasopt.implementation(impl):
                    model = make_model(cls)
                    train(model, 0, steps)
                    out[f"{name}/full/{impl}"] = state(model)
                    model = make_model(cls)
                    train(model, 0, stop)
                    checkpoint(model).write(f"{prefix}-{impl}/ckpt")
                    model.save(f"{prefix}-{impl}.keras")
        else:
            for written, resumed in (("kernel", "kernel"), ("tf", "tf"),
                                     ("tf", "kernel"), ("kernel", "tf")):
                with kerasopt.implementation(resumed):
                    model = make_model(cls)
                    model.optimizer.build(model.trainable_variables)
                    checkpoint(model).read(f"{prefix}-{written}/ckpt").assert_consumed()
                    assert int(model.optimizer.iterations.numpy()) == stop
                    train(model, stop, steps)
                    out[f"{name}/checkpoint/{written}->{resumed}"] = state(model)
                    if written == resumed:
                        with kerasopt.patched():  # a class Keras has is saved as Keras's
                            model = keras.saving.load_model(f"{prefix}-{written}.keras")
                        assert type(model.optimizer) is cls
                        train(model, stop, steps)
                        out[f"{name}/model.save/{written}->{resumed}"] = state(model)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    require_kernel_library()
    workdir = tmp_path_factory.mktemp("checkpoints")
    names = ",".join(cls.__name__ for cls in OPTIMIZERS)
    first = isolated.run(SCRIPT, "first", workdir, names, STEPS, STOP, cwd=workdir, timeout=400)
    resumed = isolated.run(SCRIPT, "resume", workdir, names, STEPS, STOP, cwd=workdir, timeout=400)
    return {**first, **resumed}


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=[c.__name__ for c in OPTIMIZERS])
def test_resume_in_a_fresh_process(cls, runs):
    name = cls.__name__
    full = {impl: np.array(runs[f"{name}/full/{impl}"]) for impl in ("kernel", "tf")}
    for impl in full:
        assert np.all(np.isfinite(full[impl])), (name, impl)
    for fmt in ("checkpoint", "model.save"):
        got = np.array(runs[f"{name}/{fmt}/kernel->kernel"])
        assert got.tobytes() == full["kernel"].tobytes(), (
            f"{name} {fmt}: kernel path resumed differs from uninterrupted, max diff "
            f"{np.max(np.abs(got - full['kernel']))}")
        np.testing.assert_allclose(runs[f"{name}/{fmt}/tf->tf"], full["tf"],
                                   rtol=1e-5, atol=1e-6, err_msg=f"{name} {fmt} fallback")
    # across paths: restored into the other path, within float tolerance
    np.testing.assert_allclose(runs[f"{name}/checkpoint/tf->kernel"], full["kernel"],
                               rtol=1e-5, atol=1e-6, err_msg=f"{name} fallback -> kernel")
    np.testing.assert_allclose(runs[f"{name}/checkpoint/kernel->tf"], full["tf"],
                               rtol=1e-5, atol=1e-6, err_msg=f"{name} kernel -> fallback")
    np.testing.assert_allclose(full["tf"], full["kernel"], rtol=1e-5, atol=1e-6)
