"""Sparse updates keep TensorFlow's copy-on-write protocol (issue 18).

TensorFlow's sparse ops switch a variable to copy-on-read mode, where every
plain read (ReadVariableOp: Keras's Embedding reads its table so before
gathering) copies the whole buffer. kerasopt's KerasoptSparseApply<Algo> ops
instead copy a buffer only while a reader still holds it, and update rows in
place otherwise:

* after a sparse step, reads of the table and of its slots share one buffer
  (no copy-on-read), and a training step of an Embedding model allocates far
  less than a table (TensorFlow's CPU allocator statistics);
* a tensor read before a sparse step (eager, or inside the same tf.function)
  never changes under its reader; the variable still gets the update, the same
  bits as the in-place update;
* a variable another op put in copy-on-read mode is updated correctly.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from conftest import assert_bit_identical, np_dtype, require_kernel_library

ROWS, WIDTH = 40, 3

# name: (optimizer class, kwargs); every kind of sparse rule, and float32
# slots of a bfloat16 table (a copy must keep each slot's own dtype).
OPTIMIZERS = {
    "sgd": (kerasopt.SGD, {}),
    "adagrad": (kerasopt.Adagrad, {}),
    "ftrl": (kerasopt.Ftrl, dict(l1_regularization_strength=0.01)),
    "adam-lazy": (kerasopt.Adam, dict(lazy=True)),
    "rmsprop-centered-lazy": (kerasopt.RMSprop, dict(momentum=0.5, centered=True, lazy=True)),
}
DTYPE_CASES = [("float32", None), ("bfloat16", None), ("bfloat16", "float32")]


def _setup(name, dtype="float32", slot_dtype=None, seed=0):
    cls, kwargs = OPTIMIZERS[name]
    rng = np.random.default_rng(seed)
    var = keras.Variable(rng.standard_normal((ROWS, WIDTH)).astype(np_dtype(dtype)), dtype=dtype)
    if slot_dtype:
        kwargs = dict(kwargs, slot_dtype=slot_dtype)
    opt = cls(learning_rate=0.05, **kwargs)
    opt.build([var])
    return var, opt


def _gradient(dtype, seed):
    rng = np.random.default_rng(seed)
    indices = tf.constant([3, 7, 3, 0, 21], tf.int64)
    values = tf.constant(rng.standard_normal((5, WIDTH)), dtype=dtype)
    return tf.IndexedSlices(values, indices, tf.constant([ROWS, WIDTH], tf.int64))


def _variables(var, opt):
    """The table and its slots, as tf.Variables."""
    return [var.value] + [s.value for s in opt.slots_for(var)]


def _buffer(tf_variable) -> int:
    """Address of the buffer a plain read returns (np.asarray shares it)."""
    return np.asarray(tf_variable.read_value()).__array_interface__["data"][0]


def _shares_buffer(tf_variable) -> bool:
    """Two plain reads give the same buffer: not in copy-on-read mode."""
    return _buffer(tf_variable) == _buffer(tf_variable)


def _values(var, opt):
    return [np.asarray(v.read_value()).copy() for v in _variables(var, opt)]


@pytest.mark.parametrize("dtype,slot_dtype", DTYPE_CASES)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_reads_after_a_sparse_step_copy_nothing(name, dtype, slot_dtype):
    require_kernel_library()
    var, opt = _setup(name, dtype, slot_dtype)
    with kerasopt.implementation("kernel"):
        opt.apply([_gradient(dtype, 1)], [var])
        tf.function(lambda: opt.apply([_gradient(dtype, 2)], [var]))()
    for v in _variables(var, opt):
        assert _shares_buffer(v), f"{v.name}: every read copies it (copy-on-read mode)"


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_the_fallback_leaves_reads_copy_free(name):
    """The composed-TF fallback writes rows with TensorFlow scatters, which
    switch a variable to copy-on-read mode; it switches the table and its
    slots back after the step (as TensorFlow's own read_value_no_copy does)."""
    var, opt = _setup(name)
    with kerasopt.implementation("tf"):
        opt.apply([_gradient("float32", 1)], [var])
        tf.function(lambda: opt.apply([_gradient("float32", 2)], [var]))()
    for v in _variables(var, opt):
        assert _shares_buffer(v), f"{v.name}: every read copies it (copy-on-read mode)"


@pytest.mark.parametrize("in_function", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("dtype,slot_dtype", DTYPE_CASES)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_a_read_before_the_step_never_changes(name, dtype, slot_dtype, in_function):
    """A reader holds the table and its slots across the step: the step updates
    a copy, with the same bits as the update in place."""
    require_kernel_library()
    in_place, in_place_opt = _setup(name, dtype, slot_dtype)
    held, held_opt = _setup(name, dtype, slot_dtype)
    before = _values(held, held_opt)
    grad = _gradient(dtype, 1)

    def step_holding_reads():
        reads = [v.read_value() for v in _variables(held, held_opt)]
        with tf.control_dependencies(reads):
            held_opt.apply([grad], [held])
        return reads

    with kerasopt.implementation("kernel"):
        in_place_opt.apply([grad], [in_place])
        reads = (tf.function(step_holding_reads) if in_function else step_holding_reads)()
    for read, old in zip(reads, before):
        assert_bit_identical(np.asarray(read), old, "a read taken before the step")
    for got, want in zip(_values(held, held_opt), _values(in_place, in_place_opt)):
        assert_bit_identical(got, want, "the update of a held table vs in place")
    assert not np.array_equal(_values(held, held_opt)[0], before[0])


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_a_table_in_copy_on_read_mode_is_updated(name):
    """A TensorFlow scatter puts the table and slots in copy-on-read mode first;
    the sparse step still updates them as it would in copy-on-write mode, and
    a read taken before it keeps its values."""
    require_kernel_library()
    results = []
    for scatter_first in (False, True):
        var, opt = _setup(name)
        variables = _variables(var, opt)
        if scatter_first:
            for v in variables:
                row = v.sparse_read([5])
                v.scatter_update(tf.IndexedSlices(row, [5]))  # same values, new mode
            assert not _shares_buffer(variables[0])
        before = _values(var, opt)
        read = variables[0].read_value()
        with kerasopt.implementation("kernel"):
            opt.apply([_gradient("float32", 1)], [var])
        assert_bit_identical(np.asarray(read), before[0], "a read taken before the step")
        results.append(_values(var, opt))
    for got, want in zip(*results):
        assert_bit_identical(got, want, "copy-on-read vs copy-on-write table")


def _embedding_model(rows, width):
    ids = keras.Input((4,), dtype="int32")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(rows, width)(ids))
    return keras.Model(ids, keras.layers.Dense(1)(embedded))


@pytest.mark.parametrize("make", [
    lambda: kerasopt.Adagrad(0.05),
    lambda: kerasopt.Ftrl(0.05),
    lambda: kerasopt.Adam(0.01, lazy=True),
], ids=["adagrad", "ftrl", "adam-lazy"])
def test_embedding_fit_step_copies_no_table(make):
    """Measured with TensorFlow's CPU allocator statistics: after the first
    steps, a model.fit step of an Embedding model allocates far less than its
    table (each plain read of a copy-on-read table would allocate all of it)."""
    require_kernel_library()
    rows, width, batch = 100_000, 32, 64
    table_bytes = rows * width * 4
    keras.utils.set_random_seed(0)
    model = _embedding_model(rows, width)
    model.compile(optimizer=make(), loss="mse", jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.integers(0, rows, (batch * 4, 4)).astype(np.int32)
    y = rng.standard_normal((batch * 4, 1)).astype(np.float32)
    with kerasopt.implementation("kernel"):
        model.fit(x, y, batch_size=batch, epochs=2, verbose=0)  # traced, slots built
        tf.config.experimental.reset_memory_stats("CPU:0")
        start = tf.config.experimental.get_memory_info("CPU:0")["current"]
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    assert peak - start < table_bytes // 4, (
        f"a step allocated {peak - start:,} bytes; the table has {table_bytes:,}")
    assert _shares_buffer(model.layers[1].embeddings.value)
