"""``python -m kerasopt.bench.slot_dtype``: bfloat16 Adam with 16-bit vs float32 slots.

Three columns on one variable of ``--size`` elements (4M by default):

* ``bfloat16, bfloat16 slots``: ``kerasopt.Adam()`` on a bfloat16 variable;
* ``bfloat16, float32 slots``: ``kerasopt.Adam(slot_dtype="float32")``;
* ``float32``: ``kerasopt.Adam()`` on a float32 variable.

Speed: the median and best wall time of one step (a ``tf.function`` applying
a fixed gradient, then reading one element so the clock stops after the
update), over ``--repeats`` steps, the columns taking turns.

Accuracy: ``--steps`` steps (40) from the same bfloat16 start with the same
bfloat16 gradients (fresh each step), against the same steps on float64
variables: the mean relative error of the weights, mean|w - w64| / mean|w64|
(and of the slots m and v, the same way).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kerasopt  # noqa: E402
from kerasopt.bench import retracing  # noqa: E402

COLUMNS = (("bfloat16, bfloat16 slots", "bfloat16", None),
           ("bfloat16, float32 slots", "bfloat16", "float32"),
           ("float32", "float32", None))


def _bf16(x):
    return np.asarray(x, np.float32).astype(ml_dtypes.bfloat16)


def _stepper(dtype, slot_dtype, start, learning_rate):
    variable = keras.Variable(start.astype(dtype), dtype=dtype)
    opt = kerasopt.Adam(learning_rate=learning_rate, slot_dtype=slot_dtype)
    opt.build([variable])

    @tf.function
    def step(gradient):
        opt.apply_gradients([(gradient, variable)])
        return variable.value[0]

    return (variable, *opt.slots_for(variable)), step


def _relative_error(got, want):
    return float(np.mean(np.abs(got.numpy().astype(np.float64) - want)) / np.mean(np.abs(want)))


def time_steps(size, repeats, learning_rate):
    rng = np.random.default_rng(0)
    start = _bf16(rng.standard_normal(size))
    gradient = _bf16(rng.standard_normal(size))
    runs = []
    for name, dtype, slot_dtype in COLUMNS:
        _, step = _stepper(dtype, slot_dtype, start, learning_rate)
        g = tf.constant(gradient.astype(dtype))
        for _ in range(3):
            step(g).numpy()
        runs.append((name, step, g, []))
    for _ in range(repeats):
        for _, step, g, times in runs:
            began = time.perf_counter()
            step(g).numpy()
            times.append(time.perf_counter() - began)
    return [(name, statistics.median(t) * 1e3, min(t) * 1e3) for name, _, _, t in runs]


def accuracy(size, steps, learning_rate):
    rng = np.random.default_rng(1)
    start = _bf16(rng.standard_normal(size))
    columns = [(name, *_stepper(dtype, slot_dtype, start, learning_rate))
               for name, dtype, slot_dtype in COLUMNS[:2]]
    reference, reference_step = _stepper("float64", None, start, learning_rate)
    for _ in range(steps):
        gradient = _bf16(rng.standard_normal(size))
        reference_step(tf.constant(gradient.astype(np.float64)))
        for _, _, step in columns:
            step(tf.constant(gradient))
    # (weight, m, v) errors of each column
    want = [x.numpy() for x in reference]
    return [(name, [_relative_error(a, b) for a, b in zip(state, want)])
            for name, state, _ in columns]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--learning-rates", default="0.001,0.01")
    args = parser.parse_args(argv)
    retracing.hide_false_alarms()
    print(f"Adam, one variable of {args.size} elements")
    print("| column | median ms/step | best ms/step |")
    print("|---|---|---|")
    for name, median, best in time_steps(args.size, args.repeats, 0.001):
        print(f"| {name} | {median:.2f} | {best:.2f} |")
    print(f"\nmean relative error after {args.steps} steps vs float64: weights (m, v)")
    print("| learning rate | " + " | ".join(n for n, _, _ in COLUMNS[:2]) + " |")
    print("|---|---|---|")
    for lr in (float(x) for x in args.learning_rates.split(",")):
        errors = accuracy(args.size, args.steps, lr)
        print(f"| {lr:g} | " + " | ".join(
            f"{w:.3e} ({m:.1e}, {v:.1e})" for _, (w, m, v) in errors) + " |")


if __name__ == "__main__":
    main()
