"""Concurrency: two threads updating the same variables never tear a write.

The kernel locks the variable and its slots for the whole update (in address
order, as TensorFlow's own training ops with use_locking=True), so concurrent
updates serialize. The check: every element of the variable starts equal and
every update applies the same function f (same gradient everywhere, same
step), so however the two threads interleave, a serialized run ends at
f^(2N) in every element and slot, exactly what 2N updates in one thread give.
A torn or lost write leaves some elements at another power of f.

(The composed-TF fallback, like Keras's own optimizers, reads, computes and
assigns in separate ops: concurrent updates through it can lose writes. In
this very harness, Adagrad's accumulator ended at 72.16 instead of 80.16 on
the fallback, 8 of 80 updates lost, and exactly at 80.16 on the kernel: the
threads do overlap here.)
"""

from __future__ import annotations

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt

from conftest import assert_bit_identical, require_kernel_library
from optimizer_table import optimizer_params

UPDATES = 40  # per thread


def size_of(cls):
    """Elements of the shared variable: enough that the threads overlap.
    FullMatrixAdagrad's blocked full-matrix step costs about a thousand times
    an element-wise one per element: at 200,000 elements its case alone took
    two minutes."""
    return 8_192 if cls is kerasopt.FullMatrixAdagrad else 200_000


def prepared(cls):
    """A variable of equal elements and an optimizer one ordinary step in."""
    size = size_of(cls)
    var = keras.Variable(np.full(size, 0.5, np.float32), name="shared")
    optimizer = cls()
    optimizer.apply_gradients([(tf.fill((size,), 0.25), var)])
    return var, optimizer


def state(var, optimizer):
    return [var.numpy()] + [v.numpy() for v in optimizer.variables]


@pytest.mark.parametrize("cls", optimizer_params())
def test_two_threads_serialize(cls):
    require_kernel_library()
    gradient = tf.fill((size_of(cls),), 0.25)
    with kerasopt.implementation("kernel"):
        var, optimizer = prepared(cls)
        twin_var, twin = prepared(cls)

        def update(opt, v):
            opt.update_step(gradient, v, opt.learning_rate)

        start = threading.Barrier(2)
        errors = []

        def worker():
            try:
                start.wait()
                for _ in range(UPDATES):
                    update(optimizer, var)
            except Exception as e:  # reported below, not lost in the thread
                errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "threads did not finish"
        assert not errors, errors

        history = []
        for _ in range(2 * UPDATES):
            update(twin, twin_var)
            # First elements only: no copy of the twin's whole state after
            # every update (the time went to FullMatrixAdagrad's size, above).
            history.append(tuple(float(tf.reshape(v, [-1])[0])
                                 for v in [twin_var, *twin.variables]))
    # Each update changes the state, so a lost update would show.
    assert len(set(history)) == len(history), f"{cls.__name__}: f^k repeats"
    got, want = state(var, optimizer), state(twin_var, twin)
    for i, (a, b) in enumerate(zip(got, want)):
        assert_bit_identical(a, b, f"{cls.__name__}: array {i}")
