"""``python -m kerasopt.bench.sparse``: one sparse (embedding) step, side by side.

What is measured
================

The wall time of ONE optimizer step on an embedding table of ``--rows`` x
``--width`` float32 whose gradient is a ``tf.IndexedSlices`` of ``--batch``
rows (random row ids, so a few repeat), in graph mode: each column is a
``tf.function`` (no XLA) taking no arguments that applies the fixed gradient
and returns one float gathered from the table after the update (so the clock,
``time.perf_counter`` around the call, stops only when the step is done; a
gather, because after TensorFlow's own sparse ops a plain read copies the whole
table, which would swamp their columns).
Each column gets its own table and slots, a few warm-up calls (the first
traces), then ``--repeats`` timed calls, the columns taking turns so slow
drifts of a shared machine hit all alike. The median and the best step are
reported, and each ratio is a ratio of medians (or of bests) measured in the
same run; on a busy machine the best step is the steadier estimate of what
the code itself costs.

Comparisons (1M x 32, 4096 rows by default):

* FTRL: ``kerasopt.Ftrl`` (row-wise: exact without shrinkage) against
  ``keras.optimizers.Ftrl`` (which densifies the gradient and updates the whole
  table) and ``tf.raw_ops.ResourceSparseApplyFtrl`` (TensorFlow's sparse op,
  in a bare tf.function).
* Adagrad: ``kerasopt.Adagrad`` against ``keras.optimizers.Adagrad`` and
  ``tf.raw_ops.ResourceSparseApplyAdagradV2``.
* Adam: ``kerasopt.Adam(lazy=True)`` against ``keras.optimizers.Adam``
  (dense semantics; TensorFlow has no sparse Adam op) and against kerasopt's
  composed-TF fallback of the same lazy update.

Then ``kerasopt.Ftrl`` and the raw FTRL op on tables of ``--scaling-rows``
(100K, 1M, 10M by default) with the same batch: the step time should not grow
with the table.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kerasopt  # noqa: E402
from kerasopt import op_library  # noqa: E402
from kerasopt.bench import retracing  # noqa: E402


def _gradient(rows, width, batch, seed=0):
    rng = np.random.default_rng(seed)
    indices = tf.constant(rng.integers(0, rows, size=batch), tf.int64)
    values = tf.constant(rng.standard_normal((batch, width)).astype(np.float32))
    return tf.IndexedSlices(values, indices, tf.constant([rows, width], tf.int64))


def _table(rows, width):
    return keras.Variable(tf.zeros([rows, width]), name="table")


def _first(variable):
    """One element of the table, read with a gather, the same for every column:
    TensorFlow's sparse ops put a variable in copy-on-read mode, where a plain
    read copies the whole table (which would swamp the measurement); kerasopt's
    do not (docs/sparse.md), and update such a table in place all the same."""
    return variable.sparse_read([0])[0, 0]


def keras_step(optimizer, rows, width, grad, path=None):
    """A step of a Keras (or kerasopt) optimizer on its own table."""
    table = _table(rows, width)
    optimizer.build([table])

    @tf.function
    def step():
        optimizer.apply([grad], [table])
        return _first(table.value)

    if path is None:
        return step
    with kerasopt.implementation(path):
        step.get_concrete_function()  # the path is fixed when the step is traced
    return step


def raw_ftrl_step(rows, width, grad, lr=0.01):
    var = tf.Variable(tf.zeros([rows, width]))
    accum = tf.Variable(tf.fill([rows, width], 0.1))
    linear = tf.Variable(tf.zeros([rows, width]))

    @tf.function
    def step():
        tf.raw_ops.ResourceSparseApplyFtrl(
            var=var.handle, accum=accum.handle, linear=linear.handle, grad=grad.values,
            indices=grad.indices, lr=lr, l1=0.0, l2=0.0, lr_power=-0.5)
        return _first(var)

    return step


def raw_adagrad_step(rows, width, grad, lr=0.01):
    var = tf.Variable(tf.zeros([rows, width]))
    accum = tf.Variable(tf.fill([rows, width], 0.1))

    @tf.function
    def step():
        tf.raw_ops.ResourceSparseApplyAdagradV2(
            var=var.handle, accum=accum.handle, lr=lr, epsilon=1e-7, grad=grad.values,
            indices=grad.indices)
        return _first(var)

    return step


def measure(columns: dict, repeats: int, warmup: int = 2) -> dict:
    """{column: (median, best) seconds per call}; the columns take turns."""
    for fn in columns.values():
        for _ in range(warmup):
            fn().numpy()
    times = {name: [] for name in columns}
    names = list(columns)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            for name in names[r % len(names):] + names[:r % len(names)]:
                start = time.perf_counter()
                columns[name]().numpy()
                times[name].append(time.perf_counter() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def _report(title, timings, baseline, target=None):
    """Median and best step of each column, and their ratios to the baseline's."""
    print(f"\n{title}{'':<38}   median (x faster than {baseline.split('.')[-1]})"
          f"     best (x faster)")
    base_median, base_best = timings[baseline]
    for name, (median, best) in timings.items():
        print(f"  {name:<42} {median * 1e3:9.3f} ms ({base_median / median:6.1f}x)"
              f" {best * 1e3:9.3f} ms ({base_best / best:6.1f}x)")
    if target:
        ours, other = target
        print(f"  -> {ours} / {other}: {timings[ours][0] / timings[other][0]:.2f} (medians), "
              f"{timings[ours][1] / timings[other][1]:.2f} (best)")


def compare(rows, width, batch, repeats, slow_repeats):
    grad = _gradient(rows, width, batch)
    print(f"table {rows:,} x {width} float32, gradient of {batch} rows "
          f"({len(np.unique(grad.indices.numpy()))} distinct)")
    # The densifying Keras steps are ~100x slower: time them with fewer repeats.
    slow = measure({"keras.optimizers.Ftrl": keras_step(keras.optimizers.Ftrl(0.01), rows, width, grad)},
                   slow_repeats, warmup=1)
    fast = measure({
        "kerasopt.Ftrl": keras_step(kerasopt.Ftrl(0.01), rows, width, grad, "kernel"),
        "tf.raw_ops.ResourceSparseApplyFtrl": raw_ftrl_step(rows, width, grad),
    }, repeats)
    _report("FTRL", {**slow, **fast}, "keras.optimizers.Ftrl",
            ("kerasopt.Ftrl", "tf.raw_ops.ResourceSparseApplyFtrl"))
    gc.collect()

    slow = measure({"keras.optimizers.Adagrad": keras_step(keras.optimizers.Adagrad(0.01), rows, width, grad)},
                   slow_repeats, warmup=1)
    fast = measure({
        "kerasopt.Adagrad": keras_step(kerasopt.Adagrad(0.01), rows, width, grad, "kernel"),
        "tf.raw_ops.ResourceSparseApplyAdagradV2": raw_adagrad_step(rows, width, grad),
    }, repeats)
    _report("Adagrad", {**slow, **fast}, "keras.optimizers.Adagrad",
            ("kerasopt.Adagrad", "tf.raw_ops.ResourceSparseApplyAdagradV2"))
    gc.collect()

    slow = measure({"keras.optimizers.Adam": keras_step(keras.optimizers.Adam(0.01), rows, width, grad)},
                   slow_repeats, warmup=1)
    fast = measure({
        "kerasopt.Adam(lazy=True)": keras_step(kerasopt.Adam(0.01, lazy=True), rows, width, grad, "kernel"),
        "kerasopt.Adam(lazy=True), TF fallback": keras_step(
            kerasopt.Adam(0.01, lazy=True), rows, width, grad, "tf"),
    }, repeats)
    _report("Adam", {**slow, **fast}, "keras.optimizers.Adam",
            ("kerasopt.Adam(lazy=True)", "kerasopt.Adam(lazy=True), TF fallback"))
    gc.collect()


def scaling(row_counts, width, batch, repeats):
    print(f"\nFTRL step time against table size (same {batch}-row gradient; "
          "in brackets: relative to the smallest table)")
    first = None
    for rows in row_counts:
        grad = _gradient(rows, width, batch)
        timings = measure({
            "kerasopt.Ftrl": keras_step(kerasopt.Ftrl(0.01), rows, width, grad, "kernel"),
            "raw op": raw_ftrl_step(rows, width, grad),
        }, repeats)
        first = first or timings
        cells = [f"{name} {median * 1e3:7.3f} ms median ({median / first[name][0]:.2f}x), "
                 f"{best * 1e3:7.3f} ms best ({best / first[name][1]:.2f}x)"
                 for name, (median, best) in timings.items()]
        print(f"  {rows:>12,} rows: " + "; ".join(cells))
        gc.collect()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--slow-repeats", type=int, default=5,
                        help="timed steps of the (densifying) Keras optimizers")
    parser.add_argument("--scaling-rows", type=int, nargs="*",
                        default=[100_000, 1_000_000, 10_000_000],
                        help="table sizes for the scaling run (none: skip it)")
    args = parser.parse_args(argv)
    retracing.hide_false_alarms()
    library = op_library.library()
    if not library.loaded:
        raise SystemExit(f"kerasopt's op library did not load: {library.error}")
    compare(args.rows, args.width, args.batch, args.repeats, args.slow_repeats)
    if args.scaling_rows:
        scaling(args.scaling_rows, args.width, args.batch, args.repeats)


if __name__ == "__main__":
    main()
