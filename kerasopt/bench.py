"""``python -m kerasopt.bench``: one optimizer step, kerasopt against Keras.

What is measured
================

The wall time of ONE ``apply_gradients`` step, in graph mode: the step is a
``tf.function`` (no XLA) that takes no arguments, applies fixed gradients to
fixed variables and returns one float read from a variable after the update.
The clock (``time.perf_counter``) runs around the call and the ``.numpy()`` of
that scalar, so it stops only once the step has finished: TensorFlow runs every
stateful op of a function before the call returns, and the scalar read is
ordered after the update of its variable. Every column pays that same
one-element read.

Gradients are created once (random normal, not timed). Each column has its own
variables, created once with the same initial values, and its own optimizer,
built before tracing. Each column is first called ``--warmup`` times (the first
call traces), then ``--repeats`` timed steps follow, the columns taking turns
(in a rotating order) so that slow drifts of the machine hit all of them alike.
Python's garbage collector is off while timing. The number reported is the
median step.

Columns:

* ``Keras``: ``keras.optimizers.Adam`` (or ``SGD``), the baseline.
* ``kerasopt kernel``: ``kerasopt.Adam`` traced under
  ``kerasopt.implementation("kernel")``: one fused C++ op per variable.
* ``kerasopt tf``: the same optimizer under ``kerasopt.implementation("tf")``,
  its composed-TensorFlow fallback.
* ``raw op``: TensorFlow's own fused training op (``tf.raw_ops.ResourceApplyAdam``,
  ``ResourceApplyKerasMomentum`` for SGD), one op per variable, in a
  ``tf.function`` with only what the op needs around it (no Keras optimizer):
  a reference for what one C++ op per variable costs.

Cases: (a) one tensor of 8M float32 parameters, (b) 200 tensors of 40K,
(c) 1000 tensors of 1K. (a) and (b) move the same bytes: their difference is
the cost per variable at large sizes; (c) is dominated by per-op overhead.

How to read the numbers
=======================

For every case and column a cell shows

* the median time of one step, in milliseconds (lower is better);
* ``×`` the speedup against Keras: Keras's median divided by this column's
  (above 1: faster than Keras; the Keras column is 1.00× by definition);
* ``GB/s``: the memory traffic the update must do, divided by the median time.
  Adam reads w, g, m, v and writes w, m, v: 7 float32 = 28 bytes per
  parameter; SGD with momentum reads w, g, m and writes w, m: 16 bytes. Compare
  it with the machine's memory bandwidth (case (a)'s arrays are much larger
  than caches; case (c)'s 1M parameters may partly stay in cache).

``--device gpu`` runs every column on the first GPU (variables, gradients and
steps placed there); each cell then also gives the step's traffic as a
percentage of the device's measured device-to-device copy bandwidth
(:mod:`kerasopt.bench_device`), the most a memory-bound update can reach.

The line below each table gives the largest difference between each column's
weights and Keras's after the same number of steps (0: bit-identical), a check
that every column did the same work. ``--json PATH`` writes all of it, with
each timed step, the spread (quartiles) and the time of the first (tracing)
call, as JSON.

Adding an algorithm is one entry in :data:`ALGORITHMS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable

import numpy as np

from kerasopt.bench_device import DEVICES, check_device, copy_bandwidth_gbps, gpu_name


# --------------------------------------------------------------------- cases


@dataclasses.dataclass(frozen=True)
class Case:
    key: str
    tensors: int
    size: int  # float32 parameters per tensor

    @property
    def params(self) -> int:
        return self.tensors * self.size

    @property
    def label(self) -> str:
        return f"{self.key}: {self.tensors} × {_count(self.size)}"


def _count(n: int) -> str:
    for unit, scale in (("M", 1_000_000), ("K", 1_000)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


CASES = {
    "a": Case("a", 1, 8_000_000),
    "b": Case("b", 200, 40_000),
    "c": Case("c", 1000, 1_000),
}


# ---------------------------------------------------------------- algorithms


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """One update rule, benchmarked in every column.

    ``keras`` and ``kerasopt`` build the two Keras optimizers with the same
    hyperparameters. ``raw(tf_variables)`` creates the slots TensorFlow's own
    training op needs and returns ``apply(gradients)``, to be traced.
    """

    name: str
    bytes_per_param: int
    traffic: str
    raw_op: str
    keras: Callable
    kerasopt: Callable
    raw: Callable | None  # None: TensorFlow has no matching op (the column shows n/a)


ADAM = dict(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
SGD = dict(learning_rate=1e-2, momentum=0.9)
ADAMW = dict(learning_rate=1e-3, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
ADAMAX = dict(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
NADAM = dict(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
LION = dict(learning_rate=1e-4, beta_1=0.9, beta_2=0.99)
LAMB = dict(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
LARS = dict(learning_rate=1.0, momentum=0.9, weight_decay=1e-4, eta=1e-3)
ADABELIEF = dict(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-16)
RADAM = dict(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
YOGI = dict(learning_rate=1e-2, beta_1=0.9, beta_2=0.999, epsilon=1e-3)
NOVOGRAD = dict(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)


def _raw_adam(variables):
    import tensorflow as tf

    ms = [tf.Variable(tf.zeros_like(v)) for v in variables]
    vs = [tf.Variable(tf.zeros_like(v)) for v in variables]
    iterations = tf.Variable(0, dtype=tf.int64)
    hp = {k: tf.constant(x, tf.float32) for k, x in ADAM.items()}

    def apply(gradients):
        t = tf.cast(iterations + 1, tf.float32)
        beta1_power = tf.pow(hp["beta_1"], t)
        beta2_power = tf.pow(hp["beta_2"], t)
        for var, m, v, g in zip(variables, ms, vs, gradients):
            tf.raw_ops.ResourceApplyAdam(
                var=var.handle, m=m.handle, v=v.handle,
                beta1_power=beta1_power, beta2_power=beta2_power,
                lr=hp["learning_rate"], beta1=hp["beta_1"], beta2=hp["beta_2"],
                epsilon=hp["epsilon"], grad=g,
            )
        iterations.assign_add(1)

    return apply


def _raw_sgd(variables):
    import tensorflow as tf

    accums = [tf.Variable(tf.zeros_like(v)) for v in variables]
    lr = tf.constant(SGD["learning_rate"], tf.float32)
    momentum = tf.constant(SGD["momentum"], tf.float32)

    def apply(gradients):
        # Keras's form: m = momentum * m - lr * g; w = w + m.
        for var, accum, g in zip(variables, accums, gradients):
            tf.raw_ops.ResourceApplyKerasMomentum(
                var=var.handle, accum=accum.handle, lr=lr, grad=g,
                momentum=momentum, use_nesterov=False,
            )

    return apply


RMSPROP = dict(learning_rate=1e-3, rho=0.9, momentum=0.0, epsilon=1e-7)
ADAGRAD = dict(learning_rate=1e-3, initial_accumulator_value=0.1, epsilon=1e-7)
ADADELTA = dict(learning_rate=1e-3, rho=0.95, epsilon=1e-7)


def _raw_rmsprop(variables):
    import tensorflow as tf

    # TF's op always takes a momentum slot; with momentum 0 it is written but unused.
    mss = [tf.Variable(tf.zeros_like(v)) for v in variables]
    moms = [tf.Variable(tf.zeros_like(v)) for v in variables]
    hp = {k: tf.constant(x, tf.float32) for k, x in RMSPROP.items()}

    def apply(gradients):
        for var, ms, mom, g in zip(variables, mss, moms, gradients):
            tf.raw_ops.ResourceApplyRMSProp(
                var=var.handle, ms=ms.handle, mom=mom.handle, lr=hp["learning_rate"],
                rho=hp["rho"], momentum=hp["momentum"], epsilon=hp["epsilon"], grad=g,
            )

    return apply


def _raw_adagrad(variables):
    import tensorflow as tf

    accums = [tf.Variable(tf.fill(tf.shape(v), ADAGRAD["initial_accumulator_value"])) for v in variables]
    lr = tf.constant(ADAGRAD["learning_rate"], tf.float32)
    epsilon = tf.constant(ADAGRAD["epsilon"], tf.float32)

    def apply(gradients):
        # TF's form puts epsilon outside the root: w -= lr * g / (sqrt(acc) + eps).
        for var, accum, g in zip(variables, accums, gradients):
            tf.raw_ops.ResourceApplyAdagradV2(
                var=var.handle, accum=accum.handle, lr=lr, epsilon=epsilon, grad=g,
            )

    return apply


def _raw_adadelta(variables):
    import tensorflow as tf

    accums = [tf.Variable(tf.zeros_like(v)) for v in variables]
    updates = [tf.Variable(tf.zeros_like(v)) for v in variables]
    hp = {k: tf.constant(x, tf.float32) for k, x in ADADELTA.items()}

    def apply(gradients):
        for var, accum, update, g in zip(variables, accums, updates, gradients):
            tf.raw_ops.ResourceApplyAdadelta(
                var=var.handle, accum=accum.handle, accum_update=update.handle,
                lr=hp["learning_rate"], rho=hp["rho"], epsilon=hp["epsilon"], grad=g,
            )

    return apply


def _raw_adamax(variables):
    import tensorflow as tf

    ms = [tf.Variable(tf.zeros_like(v)) for v in variables]
    us = [tf.Variable(tf.zeros_like(v)) for v in variables]
    iterations = tf.Variable(0, dtype=tf.int64)
    hp = {k: tf.constant(x, tf.float32) for k, x in ADAMAX.items()}

    def apply(gradients):
        beta1_power = tf.pow(hp["beta_1"], tf.cast(iterations + 1, tf.float32))
        for var, m, u, g in zip(variables, ms, us, gradients):
            tf.raw_ops.ResourceApplyAdaMax(
                var=var.handle, m=m.handle, v=u.handle, beta1_power=beta1_power,
                lr=hp["learning_rate"], beta1=hp["beta_1"], beta2=hp["beta_2"],
                epsilon=hp["epsilon"], grad=g,
            )
        iterations.assign_add(1)

    return apply


FTRL = dict(learning_rate=1e-2, learning_rate_power=-0.5, initial_accumulator_value=0.1,
            l1_regularization_strength=1e-3, l2_regularization_strength=1e-3,
            l2_shrinkage_regularization_strength=0.0, beta=0.0)


def _raw_ftrl(variables):
    import tensorflow as tf

    accums = [tf.Variable(tf.fill(tf.shape(v), FTRL["initial_accumulator_value"])) for v in variables]
    linears = [tf.Variable(tf.zeros_like(v)) for v in variables]
    hp = {k: tf.constant(x, tf.float32) for k, x in FTRL.items()}

    def apply(gradients):
        # Keras's form (beta = 0): TensorFlow's ApplyFtrlV2.
        for var, accum, linear, g in zip(variables, accums, linears, gradients):
            tf.raw_ops.ResourceApplyFtrlV2(
                var=var.handle, accum=accum.handle, linear=linear.handle, grad=g,
                lr=hp["learning_rate"], l1=hp["l1_regularization_strength"],
                l2=hp["l2_regularization_strength"],
                l2_shrinkage=hp["l2_shrinkage_regularization_strength"],
                lr_power=hp["learning_rate_power"],
            )

    return apply


def _keras(name, **hp):
    def make():
        import keras

        return getattr(keras.optimizers, name)(**hp)

    return make


def _not_in_keras(name):
    def make():
        raise RuntimeError(f"Keras has no {name}")

    return make


def _kerasopt(name, **hp):
    def make():
        import kerasopt

        return getattr(kerasopt, name)(**hp)

    return make


ALGORITHMS = {
    "adam": Algorithm(
        name="Adam", bytes_per_param=28, traffic="read w, g, m, v; write w, m, v",
        raw_op="ResourceApplyAdam",
        keras=_keras("Adam", **ADAM), kerasopt=_kerasopt("Adam", **ADAM), raw=_raw_adam,
    ),
    "sgd": Algorithm(
        name="SGD (momentum 0.9)", bytes_per_param=16, traffic="read w, g, m; write w, m",
        raw_op="ResourceApplyKerasMomentum",
        keras=_keras("SGD", **SGD), kerasopt=_kerasopt("SGD", **SGD), raw=_raw_sgd,
    ),
    "rmsprop": Algorithm(
        name="RMSprop", bytes_per_param=20, traffic="read w, g, v; write w, v",
        raw_op="ResourceApplyRMSProp",
        keras=_keras("RMSprop", **RMSPROP), kerasopt=_kerasopt("RMSprop", **RMSPROP),
        raw=_raw_rmsprop,
    ),
    "adagrad": Algorithm(
        name="Adagrad", bytes_per_param=20, traffic="read w, g, acc; write w, acc",
        raw_op="ResourceApplyAdagradV2",
        keras=_keras("Adagrad", **ADAGRAD), kerasopt=_kerasopt("Adagrad", **ADAGRAD),
        raw=_raw_adagrad,
    ),
    "adadelta": Algorithm(
        name="Adadelta", bytes_per_param=28,
        traffic="read w, g, Eg2, Edx2; write w, Eg2, Edx2",
        raw_op="ResourceApplyAdadelta",
        keras=_keras("Adadelta", **ADADELTA), kerasopt=_kerasopt("Adadelta", **ADADELTA),
        raw=_raw_adadelta,
    ),
    "adamw": Algorithm(
        name="AdamW", bytes_per_param=28, traffic="read w, g, m, v; write w, m, v",
        raw_op="n/a (TF has no AdamW op)",
        keras=_keras("AdamW", **ADAMW), kerasopt=_kerasopt("AdamW", **ADAMW), raw=None,
    ),
    "adamax": Algorithm(
        name="Adamax", bytes_per_param=28, traffic="read w, g, m, u; write w, m, u",
        raw_op="ResourceApplyAdaMax",
        keras=_keras("Adamax", **ADAMAX), kerasopt=_kerasopt("Adamax", **ADAMAX), raw=_raw_adamax,
    ),
    "nadam": Algorithm(
        name="Nadam", bytes_per_param=28, traffic="read w, g, m, v; write w, m, v",
        raw_op="n/a (TF has no Nadam op)",
        keras=_keras("Nadam", **NADAM), kerasopt=_kerasopt("Nadam", **NADAM), raw=None,
    ),
    "lion": Algorithm(
        name="Lion", bytes_per_param=16, traffic="read w, g, m; write w, m",
        raw_op="n/a (TF has no Lion op)",
        keras=_keras("Lion", **LION), kerasopt=_kerasopt("Lion", **LION), raw=None,
    ),
    "ftrl": Algorithm(
        name="Ftrl", bytes_per_param=28, traffic="read w, g, n, z; write w, n, z",
        raw_op="ResourceApplyFtrlV2",
        keras=_keras("Ftrl", **FTRL), kerasopt=_kerasopt("Ftrl", **FTRL), raw=_raw_ftrl,
    ),
    "lamb": Algorithm(
        # Two passes: 1 reads w, g, m, v and writes m, v; 2 reads w, m, v and writes w.
        name="Lamb", bytes_per_param=40,
        traffic="read w, g, m, v; write m, v; then read w, m, v; write w",
        raw_op="n/a (TF has no Lamb op)",
        keras=_keras("Lamb", **LAMB), kerasopt=_kerasopt("Lamb", **LAMB), raw=None,
    ),
    "lars": Algorithm(
        # Two passes: 1 reads w, g (the norms); 2 reads w, g, v and writes w, v.
        # Keras has no LARS: its column (the speedup baseline) shows n/a.
        name="Lars", bytes_per_param=28,
        traffic="read w, g; then read w, g, v; write w, v",
        raw_op="n/a (TF has no Lars op)",
        keras=_not_in_keras("Lars"), kerasopt=_kerasopt("Lars", **LARS), raw=None,
    # Keras has none of the four below: its column runs Adam (the nearest
    # rule, the same traffic) as the baseline; TensorFlow has no op for them.
    "adabelief": Algorithm(
        name="AdaBelief (Keras column: Adam)", bytes_per_param=28,
        traffic="read w, g, m, s; write w, m, s",
        raw_op="n/a (TF has no AdaBelief op)",
        keras=_keras("Adam", **ADAM), kerasopt=_kerasopt("AdaBelief", **ADABELIEF), raw=None,
    ),
    "radam": Algorithm(
        name="RAdam (Keras column: Adam)", bytes_per_param=28,
        traffic="read w, g, m, v; write w, m, v",
        raw_op="n/a (TF has no RAdam op)",
        keras=_keras("Adam", **ADAM), kerasopt=_kerasopt("RAdam", **RADAM), raw=None,
    ),
    "yogi": Algorithm(
        name="Yogi (Keras column: Adam)", bytes_per_param=28,
        traffic="read w, g, m, v; write w, m, v",
        raw_op="n/a (TF has no Yogi op)",
        keras=_keras("Adam", **ADAM), kerasopt=_kerasopt("Yogi", **YOGI), raw=None,
    ),
    "novograd": Algorithm(
        # Pass 1 reads g (for ||g||); pass 2 reads w, g, m and writes w, m.
        name="NovoGrad (Keras column: Adam)", bytes_per_param=24,
        traffic="read g; then read w, g, m; write w, m",
        raw_op="n/a (TF has no NovoGrad op)",
        keras=_keras("Adam", **ADAM), kerasopt=_kerasopt("NovoGrad", **NOVOGRAD), raw=None,
    ),
}


# ------------------------------------------------------------------- columns


@dataclasses.dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: str  # "keras", "kerasopt" or "raw"
    implementation: str | None = None  # kerasopt.implementation(...) while traced and run


COLUMNS = (
    Column("keras", "Keras", "keras"),
    Column("kernel", "kerasopt kernel", "kerasopt", "kernel"),
    Column("tf", "kerasopt tf", "kerasopt", "tf"),
    Column("raw", "raw op", "raw"),
)
BASELINE = "keras"


@dataclasses.dataclass
class Result:
    algorithm: str
    case: str
    column: str
    title: str
    tensors: int
    params_per_tensor: int
    params: int
    bytes_per_param: int
    times_ms: list = dataclasses.field(default_factory=list)
    first_call_s: float | None = None
    graph_ops: int | None = None
    kerasopt_ops: int | None = None
    error: str | None = None
    max_abs_diff_vs_keras: float | None = None
    speedup_vs_keras: float | None = None
    copy_gbps: float | None = None  # --device gpu: the device's copy bandwidth

    @property
    def percent_of_copy(self) -> float | None:
        if not self.ok or not self.copy_gbps:
            return None
        return 100.0 * self.gbps / self.copy_gbps

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.times_ms)

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.times_ms) if self.ok else None

    def quartiles_ms(self):
        if not self.ok:
            return None, None
        if len(self.times_ms) < 2:
            return self.times_ms[0], self.times_ms[0]
        q = statistics.quantiles(self.times_ms, n=4, method="inclusive")
        return q[0], q[2]

    @property
    def gbps(self) -> float | None:
        if not self.ok:
            return None
        return self.params * self.bytes_per_param / (self.median_ms * 1e-3) / 1e9

    def to_json(self) -> dict:
        q1, q3 = self.quartiles_ms()
        return {
            "algorithm": self.algorithm,
            "case": self.case,
            "column": self.column,
            "title": self.title,
            "tensors": self.tensors,
            "params_per_tensor": self.params_per_tensor,
            "params": self.params,
            "bytes_per_param": self.bytes_per_param,
            "median_ms": self.median_ms,
            "min_ms": min(self.times_ms) if self.ok else None,
            "q1_ms": q1,
            "q3_ms": q3,
            "mean_ms": statistics.fmean(self.times_ms) if self.ok else None,
            "speedup_vs_keras": self.speedup_vs_keras,
            "gbps": self.gbps,
            "percent_of_copy_bandwidth": self.percent_of_copy,
            "first_call_s": self.first_call_s,
            "graph_ops": self.graph_ops,
            "kerasopt_ops": self.kerasopt_ops,
            "max_abs_diff_vs_keras": self.max_abs_diff_vs_keras,
            "error": self.error,
            "times_ms": self.times_ms,
        }


# ------------------------------------------------------------------- running


class _Runner:
    """One column's variables, optimizer and traced step for one case."""

    def __init__(self, column: Column, algorithm: Algorithm, initial, gradients):
        import keras
        import tensorflow as tf

        from kerasopt.optimizers.fused import tf_variable

        self.column = column
        self.variables = [
            keras.Variable(w, dtype="float32", name=f"w{i}") for i, w in enumerate(initial)
        ]
        tf_vars = [tf_variable(v) for v in self.variables]
        last = tf_vars[-1]

        def probe():
            # One element of the last variable, read after its update.
            return tf.raw_ops.ResourceGather(resource=last.handle, indices=0, dtype=last.dtype)

        if column.kind == "raw":
            if algorithm.raw is None:
                raise RuntimeError(f"no TensorFlow op: {algorithm.raw_op}")
            apply = algorithm.raw(tf_vars)

            def step():
                apply(gradients)
                return probe()
        else:
            make = algorithm.keras if column.kind == "keras" else algorithm.kerasopt
            optimizer = make()
            optimizer.build(self.variables)
            pairs = list(zip(gradients, self.variables))

            def step():
                optimizer.apply_gradients(pairs)
                return probe()

            self.optimizer = optimizer
        self.step = tf.function(step, jit_compile=False)

    def _context(self):
        import contextlib

        import kerasopt

        if self.column.implementation is None:
            return contextlib.nullcontext()
        return kerasopt.implementation(self.column.implementation)

    def call(self) -> float:
        """Runs one step; returns its wall time in seconds."""
        with self._context():
            start = time.perf_counter()
            self.step().numpy()
            return time.perf_counter() - start

    def weights(self):
        return [v.numpy() for v in self.variables]

    def op_counts(self) -> tuple[int, int]:
        """(all ops, kerasopt ops) in the traced step, nested functions included."""
        with self._context():
            graph_def = self.step.get_concrete_function().graph.as_graph_def()
        nodes = list(graph_def.node)
        for function in graph_def.library.function:
            nodes += function.node_def
        return len(nodes), sum(n.op.startswith("Kerasopt") for n in nodes)


def _error_line(e: Exception) -> str:
    """The gist of an exception (tf.function wraps it in a traceback: the last line)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    message = lines[-1] if lines else ""
    return message if message.startswith(type(e).__name__) else f"{type(e).__name__}: {message}"


def run_case(algorithm_key: str, case: Case, columns, repeats: int, warmup: int,
             seed: int = 0) -> list[Result]:
    import tensorflow as tf

    algorithm = ALGORITHMS[algorithm_key]
    rng = np.random.default_rng(seed)
    initial = [rng.standard_normal(case.size, dtype=np.float32) for _ in range(case.tensors)]
    gradients = [
        tf.constant(rng.standard_normal(case.size, dtype=np.float32))
        for _ in range(case.tensors)
    ]

    results, runners = {}, {}
    for column in columns:
        results[column.key] = Result(
            algorithm=algorithm_key, case=case.key, column=column.key, title=column.title,
            tensors=case.tensors, params_per_tensor=case.size, params=case.params,
            bytes_per_param=algorithm.bytes_per_param,
        )
        try:
            runner = _Runner(column, algorithm, initial, gradients)
            results[column.key].first_call_s = runner.call()
            for _ in range(max(warmup - 1, 0)):
                runner.call()
            ops, fused = runner.op_counts()
            results[column.key].graph_ops, results[column.key].kerasopt_ops = ops, fused
            # The kernel column must run the fused ops, the others must not.
            wanted = case.tensors if column.implementation == "kernel" else 0
            if fused != wanted:
                raise RuntimeError(f"the traced step has {fused} kerasopt ops, expected {wanted}")
            runners[column.key] = runner
        except Exception as e:  # e.g. the op library did not load
            results[column.key].error = _error_line(e)
    del initial

    live = [c.key for c in columns if c.key in runners]
    gc.collect()
    gc.disable()
    try:
        for r in range(repeats):
            shift = r % len(live) if live else 0
            for key in live[shift:] + live[:shift]:
                results[key].times_ms.append(runners[key].call() * 1e3)
    finally:
        gc.enable()

    # Every column made the same number of steps from the same start.
    if BASELINE in runners:
        reference = runners[BASELINE].weights()
        for key, runner in runners.items():
            diff = max(float(np.max(np.abs(a - b))) for a, b in zip(runner.weights(), reference))
            results[key].max_abs_diff_vs_keras = diff
    base = results.get(BASELINE)
    for res in results.values():
        if base is not None and base.ok and res.ok:
            res.speedup_vs_keras = base.median_ms / res.median_ms
    del runners
    gc.collect()
    return [results[c.key] for c in columns]


# ------------------------------------------------------------------ printing


def _cell(res: Result) -> str:
    if not res.ok:
        return "[red]n/a[/red]"
    ratio = f"{res.speedup_vs_keras:.2f}×" if res.speedup_vs_keras is not None else "–"
    cell = f"[bold]{res.median_ms:.3f} ms[/bold]\n{ratio}\n{res.gbps:.1f} GB/s"
    if res.percent_of_copy is not None:
        cell += f"\n{res.percent_of_copy:.0f}% of copy"
    return cell


def _diff(x: float | None) -> str:
    if x is None:
        return "–"
    return "0" if x == 0 else f"{x:.1e}"


def print_algorithm(console, algorithm_key: str, results: list[Result], columns, repeats: int):
    from rich.table import Table

    algorithm = ALGORITHMS[algorithm_key]
    titles = {c.key: c.title for c in columns}
    if "raw" in titles:
        titles["raw"] = f"raw op\n{algorithm.raw_op}"
    table = Table(
        title=f"{algorithm.name}: one apply_gradients step, median of {repeats}",
        caption=f"{algorithm.bytes_per_param} bytes/param ({algorithm.traffic}); "
                "cell: median ms / speedup vs Keras / GB/s",
        show_lines=True,
    )
    table.add_column("case", no_wrap=True)
    for c in columns:
        table.add_column(titles[c.key], justify="right", no_wrap=True)
    by_case: dict[str, dict[str, Result]] = {}
    for res in results:
        by_case.setdefault(res.case, {})[res.column] = res
    for case_key, row in by_case.items():
        case = CASES[case_key]
        table.add_row(f"{case.label}\n{_count(case.params)} params",
                      *[_cell(row[c.key]) for c in columns])
    console.print(table)
    for case_key, row in by_case.items():
        diffs = ", ".join(
            f"{row[c.key].title} {_diff(row[c.key].max_abs_diff_vs_keras)}"
            for c in columns if c.key != BASELINE and row[c.key].ok
        )
        if diffs:
            console.print(f"  case {case_key}: max |w - w_Keras| after the same steps: {diffs}")
    for res in results:
        if res.error:
            console.print(f"  [red]case {res.case}, {res.title}: not run: {res.error}[/red]")
    console.print()


def _environment() -> dict:
    import keras
    import tensorflow as tf

    import kerasopt
    from kerasopt import op_library

    lib = op_library.library()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "kerasopt": kerasopt.__version__,
        "op_library": lib.path,
        "op_library_error": lib.error,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }


# ---------------------------------------------------------------------- main


def _choices(value: str, known: dict, what: str) -> list[str]:
    keys = [k.strip().lower() for k in value.split(",") if k.strip()]
    unknown = [k for k in keys if k not in known]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}"
        )
    return list(dict.fromkeys(keys))


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kerasopt.bench",
        description="Times one apply_gradients step of kerasopt's optimizers against "
                    "Keras's (graph mode, no XLA); see the module docstring.",
    )
    parser.add_argument("--cases", default="a,b,c",
                        type=lambda v: _choices(v, CASES, "case"),
                        help="comma-separated: " + "; ".join(c.label for c in CASES.values())
                        + " (default: a,b,c)")
    parser.add_argument("--algorithms", default="adam,sgd",
                        type=lambda v: _choices(v, ALGORITHMS, "algorithm"),
                        help=f"comma-separated from {', '.join(ALGORITHMS)} (default: adam,sgd)")
    parser.add_argument("--repeats", type=_positive, default=20,
                        help="timed steps per column (default: 20); the median is reported")
    parser.add_argument("--warmup", type=_positive, default=3,
                        help="untimed steps per column first, including the tracing call (default: 3)")
    parser.add_argument("--device", choices=sorted(DEVICES), default="cpu",
                        help="where variables and steps live (default: cpu); gpu also reports "
                             "%% of the GPU's measured copy bandwidth")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)

    from rich.console import Console

    width = None
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        width = 120  # logs and files: do not squeeze the tables to 80 columns
    console = Console(width=width, highlight=False)
    log = Console(stderr=True, width=width, highlight=False)

    import tensorflow as tf

    unavailable = check_device(args.device)
    if unavailable:
        log.print(f"[red]--device {args.device}: {unavailable}[/red]")
        return 2
    env = _environment()
    env["device"] = args.device
    copy_gbps = None
    if args.device == "gpu":
        env["gpu"] = gpu_name()
        copy_gbps = copy_bandwidth_gbps(DEVICES["gpu"])
        env["copy_gbps"] = copy_gbps
        console.print(f"GPU {env['gpu']}: measured device-to-device copy bandwidth "
                      f"{copy_gbps:.0f} GB/s")
    console.print(
        f"kerasopt {env['kerasopt']}, TensorFlow {env['tensorflow']}, Keras {env['keras']}, "
        f"Python {env['python']}; {env['cpu_count']} CPUs "
        f"(intra-op threads {env['intra_op_threads'] or 'default'}, "
        f"inter-op {env['inter_op_threads'] or 'default'})"
    )
    if env["op_library_error"]:
        console.print(f"[red]op library not loaded: {env['op_library_error']}[/red]")
    console.print(
        f"graph mode (tf.function, no XLA); {args.warmup} warmup + {args.repeats} timed steps "
        f"per column, columns interleaved; float32 on {args.device}\n"
    )

    started = time.perf_counter()
    all_results = []
    for algorithm_key in args.algorithms:
        results = []
        for case_key in args.cases:
            with log.status(f"{ALGORITHMS[algorithm_key].name}, case {CASES[case_key].label}"), \
                    tf.device(DEVICES[args.device]):
                case_results = run_case(algorithm_key, CASES[case_key], COLUMNS,
                                        args.repeats, args.warmup)
            for res in case_results:
                res.copy_gbps = copy_gbps
            results += case_results
        print_algorithm(console, algorithm_key, results, COLUMNS, args.repeats)
        all_results += results
    elapsed = time.perf_counter() - started

    summary = _summary_table(all_results)
    console.print(summary)
    console.print(f"total {elapsed:.1f} s")

    if args.json:
        document = {
            "benchmark": "kerasopt.bench",
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "settings": {
                "repeats": args.repeats, "warmup": args.warmup, "mode": "tf.function, no XLA",
                "dtype": "float32", "cases": args.cases, "algorithms": args.algorithms,
                "device": args.device,
                "columns": [dataclasses.asdict(c) for c in COLUMNS],
            },
            "environment": env,
            "elapsed_s": elapsed,
            "results": [r.to_json() for r in all_results],
        }
        directory = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(directory, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(document, f, indent=2)
        console.print(f"wrote {args.json}")
    return 0


def _summary_table(results: list[Result]):
    from rich.table import Table

    table = Table(title="median ms per step (speedup vs Keras)")
    table.add_column("algorithm")
    table.add_column("case")
    for c in COLUMNS:
        table.add_column(c.title, justify="right")
    rows: dict[tuple, dict[str, Result]] = {}
    for res in results:
        rows.setdefault((res.algorithm, res.case), {})[res.column] = res
    for (algorithm_key, case_key), row in rows.items():
        cells = []
        for c in COLUMNS:
            res = row.get(c.key)
            if res is None or not res.ok:
                cells.append("n/a")
            else:
                cells.append(f"{res.median_ms:.3f} ({res.speedup_vs_keras:.2f}×)"
                             if res.speedup_vs_keras is not None else f"{res.median_ms:.3f}")
        table.add_row(ALGORITHMS[algorithm_key].name.split()[0], CASES[case_key].label, *cells)
    return table


if __name__ == "__main__":
    sys.exit(main())
