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

``--steps-per-call K`` makes every call run K steps, in a ``tf.while_loop``
inside the step's ``tf.function`` (as Keras's ``steps_per_execution`` runs its
train steps), and reports the call's time divided by K; torch makes K steps
per timed call too, so every column still makes the same steps. It shows what
remains when the cost of calling the function (per captured variable handle
and gradient, large in case c) is spread over K steps; what a loop costs per
iteration and per captured tensor remains.

Columns:

* ``Keras``: ``keras.optimizers.Adam`` (or ``SGD``, ...), the baseline.
* ``Keras XLA``: the same, with the step compiled by XLA (``jit_compile=True``).
* ``kerasopt``: ``kerasopt.Adam`` traced under
  ``kerasopt.implementation("kernel")``: one multi-tensor op for all variables.
* ``kerasopt 1 op/var``: the same with the multi-tensor path switched off
  (``KERASOPT_MULTI_TENSOR=0``): one fused C++ op per variable.
* ``kerasopt tf``: the same optimizer under ``kerasopt.implementation("tf")``,
  its composed-TensorFlow fallback.
* ``raw op``: TensorFlow's own fused training op (``tf.raw_ops.ResourceApplyAdam``,
  ``ResourceApplyKerasMomentum`` for SGD), one op per variable, in a
  ``tf.function`` with only what the op needs around it (no Keras optimizer):
  a reference for what one C++ op per variable costs.
* ``torch foreach`` / ``torch fused`` (when torch is installed): the same
  algorithm in ``torch.optim`` with ``foreach=True`` / ``fused=True``, on the
  same initial values and gradients. They are timed in a child process
  (kerasopt/bench/torch_child.py explains why), so they take turns with each other
  but not with the TensorFlow columns.

Cases: (a) one tensor of 8M float32 parameters, (b) 200 tensors of 40K,
(c) 1000 tensors of 1K; (t) a 12-layer transformer's variables, (m) the same
with a token embedding (Muon's case: its kernels take Muon, the rest AdamW);
(f) case (a)'s 8M parameters as one 4000 × 2000 matrix (Adafactor's factored
case; other algorithms see it flat). (a) and (b) move the same bytes: their difference is
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

from kerasopt.bench import retracing, torch_child
from kerasopt.bench.device import DEVICES, check_device, copy_bandwidth_gbps, gpu_name


# --------------------------------------------------------------------- cases


@dataclasses.dataclass(frozen=True)
class Case:
    key: str
    tensors: int
    size: int  # float32 parameters per tensor (when all tensors are alike)
    shapes: tuple | None = None  # the variable list of a model (then size is unused)
    name: str | None = None
    names: tuple | None = None  # the variables' names (default w0, w1, ...)

    @property
    def sizes(self) -> list[int]:
        if self.shapes is None:
            return [self.size] * self.tensors
        return [int(np.prod(s)) for s in self.shapes]

    @property
    def params(self) -> int:
        return sum(self.sizes)

    @property
    def label(self) -> str:
        if self.name:
            return f"{self.key}: {self.name}"
        return f"{self.key}: {self.tensors} × {_count(self.size)}"


def transformer_shapes(layers: int = 12, d_model: int = 512, d_ff: int = 2048) -> tuple:
    """The trainable variables of a transformer encoder stack, layer by layer:
    q/k/v/o kernels and biases, two layer norms (gamma, beta), two MLP kernels
    and biases."""
    shapes = []
    for _ in range(layers):
        for _ in "qkvo":
            shapes += [(d_model, d_model), (d_model,)]
        shapes += [(d_model,), (d_model,)] * 2  # layer norms
        shapes += [(d_model, d_ff), (d_ff,), (d_ff, d_model), (d_model,)]
    return tuple(shapes)


def _count(n: int) -> str:
    for unit, scale in (("M", 1_000_000), ("K", 1_000)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


_TRANSFORMER = transformer_shapes()
CASES = {
    "a": Case("a", 1, 8_000_000),
    "b": Case("b", 200, 40_000),
    "c": Case("c", 1000, 1_000),
    "t": Case("t", len(_TRANSFORMER), 0, _TRANSFORMER,
              f"transformer 12 × d512 ({len(_TRANSFORMER)} vars)"),
    # Muon's case: the transformer's variables and a token embedding (named
    # so, as Keras's Muon sends embeddings to AdamW); 72 matrices take Muon.
    "m": Case("m", len(_TRANSFORMER) + 1, 0, ((32_000, 512),) + _TRANSFORMER,
              f"transformer 12 × d512 + embedding 32000 × 512 ({len(_TRANSFORMER) + 1} vars)",
              names=("token_embedding",) + tuple(f"w{i}" for i in range(len(_TRANSFORMER)))),
    # Case (a)'s 8M parameters as one matrix: Adafactor factors it (row and
    # column statistics); flat, (a) keeps its full second moment.
    "f": Case("f", 1, 8_000_000, ((4000, 2000),), "1 × 8M as a 4000 × 2000 matrix"),
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
    torch: TorchOptimizer | None = None  # None: torch has no such optimizer
    # The variables keep the case's shapes (case t: the transformer's matrices),
    # for rules that depend on them (Muon's 2-D weights, Adafactor's factoring);
    # otherwise every variable is flat.
    shaped: bool = False
    # How many kerasopt ops the kernel column's traced step has, when it is
    # not one multi-tensor op (or one op per variable): fused_ops(case, multi_tensor).
    fused_ops: Callable | None = None


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
ADAFACTOR = dict(learning_rate=1e-3)  # Keras's defaults
MUON = dict(learning_rate=1e-3)
SCHEDULE_FREE_ADAMW = dict(learning_rate=2.5e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8)


def _muon_fused_ops(case: Case, multi_tensor: bool, ns_steps: int = 5) -> int:
    """kerasopt.Muon's ops (kerasopt/optimizers/muon_step.py): for all its Muon
    matrices together (one op chain per matrix without the multi-tensor path),
    the momentum, 2 * ns_steps - 1 sums and the weight write; the AdamW
    variables in one multi-tensor op (or one each)."""
    shapes = case.shapes if case.shapes is not None else [(n,) for n in case.sizes]
    names = case.names or [f"w{i}" for i in range(len(shapes))]
    muon = [s for s, name in zip(shapes, names) if len(s) == 2 and "embedding" not in name]
    per_chain = 2 + max(2 * ns_steps - 1, 0)
    adamw = len(shapes) - len(muon)
    if multi_tensor:
        return (per_chain if muon else 0) + (1 if adamw else 0)
    return per_chain * len(muon) + adamw


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


@dataclasses.dataclass(frozen=True)
class TorchOptimizer:
    """A ``torch.optim`` class and its hyperparameters, for the torch columns
    (timed in a child process: kerasopt/bench/torch_child.py)."""

    name: str
    hyperparameters: dict


def _torch(name, **hp):
    """The torch.optim optimizer with the same hyperparameters (names mapped)."""
    return TorchOptimizer(name, hp)


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
        torch=_torch("Adam", lr=1e-3, betas=(0.9, 0.999), eps=1e-7),
    ),
    "sgd": Algorithm(
        name="SGD (momentum 0.9)", bytes_per_param=16, traffic="read w, g, m; write w, m",
        raw_op="ResourceApplyKerasMomentum",
        keras=_keras("SGD", **SGD), kerasopt=_kerasopt("SGD", **SGD), raw=_raw_sgd,
        torch=_torch("SGD", lr=1e-2, momentum=0.9),
    ),
    "rmsprop": Algorithm(
        name="RMSprop", bytes_per_param=20, traffic="read w, g, v; write w, v",
        raw_op="ResourceApplyRMSProp",
        keras=_keras("RMSprop", **RMSPROP), kerasopt=_kerasopt("RMSprop", **RMSPROP),
        raw=_raw_rmsprop,
        torch=_torch("RMSprop", lr=1e-3, alpha=0.9, eps=1e-7),
    ),
    "adagrad": Algorithm(
        name="Adagrad", bytes_per_param=20, traffic="read w, g, acc; write w, acc",
        raw_op="ResourceApplyAdagradV2",
        keras=_keras("Adagrad", **ADAGRAD), kerasopt=_kerasopt("Adagrad", **ADAGRAD),
        raw=_raw_adagrad,
        torch=_torch("Adagrad", lr=1e-3, initial_accumulator_value=0.1, eps=1e-7),
    ),
    "adadelta": Algorithm(
        name="Adadelta", bytes_per_param=28,
        traffic="read w, g, Eg2, Edx2; write w, Eg2, Edx2",
        raw_op="ResourceApplyAdadelta",
        keras=_keras("Adadelta", **ADADELTA), kerasopt=_kerasopt("Adadelta", **ADADELTA),
        raw=_raw_adadelta,
        torch=_torch("Adadelta", lr=1e-3, rho=0.95, eps=1e-7),
    ),
    "adamw": Algorithm(
        name="AdamW", bytes_per_param=28, traffic="read w, g, m, v; write w, m, v",
        raw_op="n/a (TF has no AdamW op)",
        keras=_keras("AdamW", **ADAMW), kerasopt=_kerasopt("AdamW", **ADAMW), raw=None,
        torch=_torch("AdamW", lr=1e-3, betas=(0.9, 0.999), eps=1e-7, weight_decay=0.004),
    ),
    "adamax": Algorithm(
        name="Adamax", bytes_per_param=28, traffic="read w, g, m, u; write w, m, u",
        raw_op="ResourceApplyAdaMax",
        keras=_keras("Adamax", **ADAMAX), kerasopt=_kerasopt("Adamax", **ADAMAX), raw=_raw_adamax,
        torch=_torch("Adamax", lr=1e-3, betas=(0.9, 0.999), eps=1e-7),
    ),
    "nadam": Algorithm(
        name="Nadam", bytes_per_param=28, traffic="read w, g, m, v; write w, m, v",
        raw_op="n/a (TF has no Nadam op)",
        keras=_keras("Nadam", **NADAM), kerasopt=_kerasopt("Nadam", **NADAM), raw=None,
        torch=_torch("NAdam", lr=1e-3, betas=(0.9, 0.999), eps=1e-7),
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
    ),
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
    # Keras 3.15's newer optimizers (Adafactor, ScheduleFreeAdamW and Muon
    # have their fused ops).
    "adafactor": Algorithm(
        # Rank < 2 (cases a-c): pass 1 reads w, g, v and writes v (and sums
        # w^2, u^2); pass 2 reads w, g, v and writes w. Rank 2 (case f) moves
        # 36 bytes: g for the row and column sums, then w, g in, v out, then
        # w, g in, w out (v recomputed from r and c, not read back).
        name="Adafactor", bytes_per_param=32,
        traffic="read w, g, v; write v; then read w, g, v; write w",
        raw_op="n/a (TF has no Adafactor op)",
        keras=_keras("Adafactor", **ADAFACTOR), kerasopt=_kerasopt("Adafactor", **ADAFACTOR),
        raw=None, shaped=True,
        # No multi-tensor op (its slots depend on each variable's rank): one
        # op per variable in every kernel column.
        fused_ops=lambda case, multi: case.tensors,
    ),
    "muon": Algorithm(
        # Element-wise traffic only (the Newton-Schulz products come on top):
        # read w, g, m (and v for the AdamW variables); write w, m (v).
        name="Muon", bytes_per_param=20, traffic="read w, g, m; write w, m; + matrix products",
        raw_op="n/a (TF has no Muon op)",
        keras=_keras("Muon", **MUON), kerasopt=_kerasopt("Muon", **MUON), raw=None, shaped=True,
        fused_ops=_muon_fused_ops,
    ),
    # Muon without Newton-Schulz iterations: what both do around the matrix
    # products (momentum, norm, scaling, decay, the AdamW side), alone.
    "muon_ns0": Algorithm(
        name="Muon, ns_steps=0 (no matrix products)", bytes_per_param=20,
        traffic="read w, g, m; write w, m",
        raw_op="n/a (TF has no Muon op)",
        keras=_keras("Muon", ns_steps=0, **MUON), kerasopt=_kerasopt("Muon", ns_steps=0, **MUON),
        raw=None, shaped=True, fused_ops=lambda case, multi: _muon_fused_ops(case, multi, 0),
    ),
    "schedule_free_adamw": Algorithm(
        name="ScheduleFreeAdamW", bytes_per_param=28, traffic="read y, g, z, v; write y, z, v",
        raw_op="n/a (TF has no schedule-free op)",
        keras=_keras("ScheduleFreeAdamW", **SCHEDULE_FREE_ADAMW),
        kerasopt=_kerasopt("ScheduleFreeAdamW", **SCHEDULE_FREE_ADAMW), raw=None,
    ),
}


# ------------------------------------------------------------------- columns


@dataclasses.dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: str  # "keras", "kerasopt", "raw" or "torch"
    implementation: str | None = None  # kerasopt.implementation(...) while traced and run
    multi_tensor: bool | None = None  # KERASOPT_MULTI_TENSOR while traced (kerasopt columns)
    jit_compile: bool = False  # the step is XLA-compiled
    torch_mode: dict | None = None  # torch columns: {"foreach": True} or {"fused": True}


COLUMNS = (
    Column("keras", "Keras", "keras"),
    Column("keras_xla", "Keras XLA", "keras", jit_compile=True),
    Column("kernel", "kerasopt", "kerasopt", "kernel", multi_tensor=True),
    Column("kernel_1", "kerasopt\n1 op/var", "kerasopt", "kernel", multi_tensor=False),
    Column("tf", "kerasopt tf", "kerasopt", "tf"),
    Column("raw", "raw op", "raw"),
    Column("torch_foreach", "torch\nforeach", "torch", torch_mode={"foreach": True}),
    Column("torch_fused", "torch\nfused", "torch", torch_mode={"fused": True}),
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
    triad_gbps: float | None = None  # the machine's triad bandwidth, same run
    copy_gbps: float | None = None  # --device gpu: the device's copy bandwidth

    @property
    def percent_of_copy(self) -> float | None:
        if not self.ok or not self.copy_gbps:
            return None
        return 100.0 * self.gbps / self.copy_gbps

    @property
    def percent_of_triad(self) -> float | None:
        if not self.ok or not self.triad_gbps:
            return None
        return 100.0 * self.gbps / self.triad_gbps

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
            "percent_of_triad": self.percent_of_triad,
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

    def __init__(self, column: Column, algorithm: Algorithm, initial, gradients,
                 steps_per_call: int = 1, names=None):
        import keras
        import tensorflow as tf

        from kerasopt.optimizers.fused import tf_variable

        self.column = column
        self.variables = [
            keras.Variable(w, dtype="float32", name=names[i] if names else f"w{i}")
            for i, w in enumerate(initial)
        ]
        tf_vars = [tf_variable(v) for v in self.variables]
        last = tf_vars[-1]

        def probe():
            # One element of the last variable, read after its update. (Not
            # ResourceGather: a sparse read puts the variable in copy-on-read
            # mode, and every dense update would then copy it first.)
            return tf.raw_ops.ReadVariableOp(resource=last.handle, dtype=last.dtype)[0]

        if column.kind == "raw":
            if algorithm.raw is None:
                raise RuntimeError(f"no TensorFlow op: {algorithm.raw_op}")
            apply = algorithm.raw(tf_vars)

            def one_step():
                apply(gradients)
        else:
            make = algorithm.keras if column.kind == "keras" else algorithm.kerasopt
            optimizer = make()
            optimizer.build(self.variables)
            pairs = list(zip(gradients, self.variables))

            def one_step():
                optimizer.apply_gradients(pairs)

            self.optimizer = optimizer

        if steps_per_call == 1:
            def step():
                one_step()
                return probe()
        else:
            # A tf.while_loop (autograph turns the tf.range loop into one), as
            # Keras's steps_per_execution runs its train steps.
            def step():
                for _ in tf.range(steps_per_call):
                    one_step()
                return probe()
        self.step = tf.function(step, jit_compile=column.jit_compile)

    def _context(self):
        import contextlib

        import kerasopt
        from kerasopt.optimizers import multi_tensor

        stack = contextlib.ExitStack()
        if self.column.implementation is not None:
            stack.enter_context(kerasopt.implementation(self.column.implementation))
        if self.column.multi_tensor is not None:
            stack.enter_context(_environ(multi_tensor.ENV_SWITCH,
                                         "1" if self.column.multi_tensor else "0"))
        return stack

    def call(self) -> float:
        """Runs one call (steps_per_call steps); returns its wall time in seconds."""
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


class _environ:
    """Sets an environment variable for the duration of a with block."""

    def __init__(self, name, value):
        self.name, self.value = name, value

    def __enter__(self):
        self.saved = os.environ.get(self.name)
        os.environ[self.name] = self.value

    def __exit__(self, *exc):
        if self.saved is None:
            os.environ.pop(self.name, None)
        else:
            os.environ[self.name] = self.saved


def _error_line(e: Exception) -> str:
    """The gist of an exception (tf.function wraps it in a traceback: the last line)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    message = lines[-1] if lines else ""
    return message if message.startswith(type(e).__name__) else f"{type(e).__name__}: {message}"


def run_case(algorithm_key: str, case: Case, columns, repeats: int, warmup: int,
             seed: int = 0, triad=None, steps_per_call: int = 1) -> list[Result]:
    """Times every column on one case; `triad` (a kerasopt.bench.bandwidth.Triad) takes turns.
    Each call of a column makes `steps_per_call` steps; times are per step."""
    import tensorflow as tf

    algorithm = ALGORITHMS[algorithm_key]
    initial, gradients = torch_child.case_arrays(case.sizes, seed)
    if algorithm.shaped and case.shapes is not None:
        initial = [w.reshape(shape) for w, shape in zip(initial, case.shapes)]
        gradients = [g.reshape(shape) for g, shape in zip(gradients, case.shapes)]
    gradients = [tf.constant(g) for g in gradients]

    results, runners = {}, {}
    for column in columns:
        results[column.key] = Result(
            algorithm=algorithm_key, case=case.key, column=column.key, title=column.title,
            tensors=case.tensors, params_per_tensor=case.size, params=case.params,
            bytes_per_param=algorithm.bytes_per_param,
        )
        if column.kind == "torch":
            continue  # timed alone in a child process, below
        try:
            runner = _Runner(column, algorithm, initial, gradients, steps_per_call, case.names)
            results[column.key].first_call_s = runner.call()
            for _ in range(max(warmup - 1, 0)):
                runner.call()
            ops, fused = runner.op_counts()
            results[column.key].graph_ops, results[column.key].kerasopt_ops = ops, fused
            # The kernel columns must run the fused ops (one launch for all
            # variables, or one per variable), the others must not.
            wanted = 0
            if column.implementation == "kernel":
                wanted = 1 if column.multi_tensor else case.tensors
                if algorithm.fused_ops is not None:
                    wanted = algorithm.fused_ops(case, column.multi_tensor)
            if fused != wanted:
                raise RuntimeError(f"the traced step has {fused} kerasopt ops, expected {wanted}")
            runners[column.key] = runner
        except Exception as e:  # e.g. the op library did not load
            results[column.key].error = _error_line(e)
    del initial

    # The triad takes its turn with the columns, so that "% of triad" compares
    # bandwidths measured under the same machine load.
    live = [c.key for c in columns if c.key in runners]
    if triad is not None:
        runners["__triad__"] = triad
        live.append("__triad__")
        triad_times = []
    gc.collect()
    gc.disable()
    try:
        for key in torch_child.turns(live, repeats):
            seconds = runners[key].call()
            if key == "__triad__":
                triad_times.append(seconds)
            else:
                results[key].times_ms.append(seconds * 1e3 / steps_per_call)
    finally:
        gc.enable()
        runners.pop("__triad__", None)
    if triad is not None:
        for res in results.values():
            res.triad_gbps = triad.gbps(statistics.median(triad_times))

    weights = {key: runner.weights() for key, runner in runners.items()}
    torch_columns = [c for c in columns if c.kind == "torch"]
    if torch_columns:
        weights.update(_run_torch_columns(algorithm, case, torch_columns, repeats, warmup,
                                          seed, results, steps_per_call))

    # Every column made the same number of steps from the same start.
    if BASELINE in weights:
        reference = weights[BASELINE]
        for key, values in weights.items():
            diff = max((float(np.max(np.abs(a - b))) for a, b in zip(values, reference)
                        if a.size), default=0.0)
            results[key].max_abs_diff_vs_keras = diff
    base = results.get(BASELINE)
    for res in results.values():
        if base is not None and base.ok and res.ok:
            res.speedup_vs_keras = base.median_ms / res.median_ms
    del runners
    gc.collect()
    return [results[c.key] for c in columns]


def _run_torch_columns(algorithm: Algorithm, case: Case, columns, repeats: int, warmup: int,
                       seed: int, results: dict, steps_per_call: int = 1) -> dict:
    """Times the torch columns in a child process (see kerasopt/bench/torch_child.py);
    fills their results and returns {column key: weights after the steps}."""
    import subprocess
    import tempfile

    if algorithm.torch is None:
        for c in columns:
            results[c.key].error = "torch has no such optimizer"
        return {}
    script = os.path.abspath(torch_child.__file__)
    with tempfile.TemporaryDirectory(prefix="kerasopt-bench-torch-") as directory:
        request = {
            "optimizer": algorithm.torch.name,
            "hyperparameters": algorithm.torch.hyperparameters,
            "sizes": list(case.sizes), "seed": seed,
            "modes": {c.key: c.torch_mode for c in columns},
            "warmup": warmup, "repeats": repeats, "steps_per_call": steps_per_call,
        }
        request_path = os.path.join(directory, "request.json")
        with open(request_path, "w") as f:
            json.dump(request, f)
        child = subprocess.run([sys.executable, script, request_path, directory],
                               capture_output=True, text=True)
        if child.returncode != 0:
            lines = (child.stderr or child.stdout).strip().splitlines()
            for c in columns:
                results[c.key].error = "torch child process failed: " + (
                    lines[-1] if lines else f"exit code {child.returncode}")
            return {}
        with open(os.path.join(directory, "result.json")) as f:
            timed = json.load(f)
        weights = {}
        for c in columns:
            res, got = results[c.key], timed[c.key]
            res.first_call_s, res.times_ms, res.error = (
                got["first_call_s"], got["times_ms"], got["error"])
            if res.error is None:
                with np.load(os.path.join(directory, f"{c.key}.npz")) as saved:
                    weights[c.key] = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        return weights


# ------------------------------------------------------------------ printing


def _cell(res: Result) -> str:
    if not res.ok:
        return "[red]n/a[/red]"
    ratio = f"{res.speedup_vs_keras:.2f}×" if res.speedup_vs_keras is not None else "–"
    triad = f"\n{res.percent_of_triad:.0f}% triad" if res.percent_of_triad is not None else ""
    if res.percent_of_copy is not None:
        triad += f"\n{res.percent_of_copy:.0f}% of copy"
    return f"[bold]{res.median_ms:.3f} ms[/bold]\n{ratio}\n{res.gbps:.1f} GB/s{triad}"


def _diff(x: float | None) -> str:
    if x is None:
        return "–"
    return "0" if x == 0 else f"{x:.1e}"


def print_algorithm(console, algorithm_key: str, results: list[Result], columns, repeats: int,
                    steps_per_call: int = 1):
    from rich.table import Table

    algorithm = ALGORITHMS[algorithm_key]
    titles = {c.key: c.title for c in columns}
    if "raw" in titles:
        titles["raw"] = f"raw op\n{algorithm.raw_op}"
    table = Table(
        title=f"{algorithm.name}: one apply_gradients step, median of {repeats}"
              + ("" if steps_per_call == 1 else f" calls of {steps_per_call} steps"),
        caption=f"{algorithm.bytes_per_param} bytes/param ({algorithm.traffic}); "
                "cell: median ms / speedup vs Keras / GB/s / % of the triad bandwidth",
        show_lines=True,
    )
    table.add_column("case", min_width=12)
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
            f"{row[c.key].title.replace(chr(10), ' ')} {_diff(row[c.key].max_abs_diff_vs_keras)}"
            for c in columns if c.key != BASELINE and row[c.key].ok
        )
        if diffs:
            console.print(f"  case {case_key}: max |w - w_Keras| after the same steps: {diffs}")
    for case_key, row in by_case.items():
        line = ratio_line(row)
        if line:
            console.print(f"  case {case_key}: {line}")
    for res in results:
        if res.error:
            console.print(f"  [red]case {res.case}, {res.title.replace(chr(10), ' ')}: "
                          f"not run: {res.error}[/red]")
    console.print()


RATIOS = (("keras", "Keras"), ("keras_xla", "Keras XLA"), ("kernel_1", "1 op/var"),
          ("raw", "raw op"), ("torch_foreach", "torch foreach"), ("torch_fused", "torch fused"))


def ratio_line(row: dict) -> str:
    """kerasopt's (multi-tensor) speedup against every other column of one case."""
    ours = row.get("kernel")
    if ours is None or not ours.ok:
        return ""
    parts = [f"{title} {row[key].median_ms / ours.median_ms:.2f}×"
             for key, title in RATIOS if key in row and row[key].ok]
    triad = f" (triad {ours.triad_gbps:.1f} GB/s)" if ours.triad_gbps else ""
    return ("kerasopt is faster than " + ", ".join(parts) if parts else "") + triad


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
        "isa": _isa(),
        "torch": _torch_version(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def _isa() -> str | None:
    from kerasopt import op_library

    ops = op_library.library().ops
    return None if ops is None else ("avx2+f16c" if _cpu_has_avx2() else "baseline")


def _cpu_has_avx2() -> bool:
    if os.environ.get("KERASOPT_ISA") == "baseline":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return " avx2" in flags and " f16c" in flags
    except OSError:
        return False


def _torch_version() -> str | None:
    # Not imported here: torch in this process would slow TensorFlow's columns.
    import importlib.metadata

    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------- main


# The models of --fit: kerasopt/bench/fit.py's, then the embedding recommender.
FIT_MODELS = ("mnist", "many", "lm", "recommender")


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
    parser.add_argument("--cases", default="a,b,c,t",
                        type=lambda v: _choices(v, CASES, "case"),
                        help="comma-separated: " + "; ".join(c.label for c in CASES.values())
                        + " (default: a,b,c,t)")
    parser.add_argument("--algorithms", default="adam,sgd",
                        type=lambda v: _choices(v, ALGORITHMS, "algorithm"),
                        help=f"comma-separated from {', '.join(ALGORITHMS)} (default: adam,sgd)")
    parser.add_argument("--repeats", type=_positive, default=20,
                        help="timed calls per column (default: 20); the median is reported")
    parser.add_argument("--warmup", type=_positive, default=3,
                        help="untimed calls per column first, including the tracing call (default: 3)")
    parser.add_argument("--steps-per-call", type=_positive, default=1, metavar="K",
                        help="steps per call of each column's tf.function, in a tf.while_loop "
                             "(as Keras's steps_per_execution); times are per step (default: 1)")
    parser.add_argument("--columns", default=",".join(c.key for c in COLUMNS),
                        type=lambda v: _choices(v, {c.key: c for c in COLUMNS}, "column"),
                        help=f"comma-separated from {', '.join(c.key for c in COLUMNS)} "
                        "(default: all; torch columns need torch installed)")
    parser.add_argument("--device", choices=sorted(DEVICES), default="cpu",
                        help="where variables and steps live (default: cpu); gpu reports "
                             "%% of the GPU's measured copy bandwidth instead of the CPU triad")
    parser.add_argument("--fit", action="store_true",
                        help="also time model.fit steps, kerasopt against Keras (kerasopt/bench/fit.py, "
                             "and the embedding recommender of kerasopt/bench/recommender.py)")
    parser.add_argument("--fit-only", action="store_true", help="only the model.fit comparison")
    parser.add_argument("--fit-large", action="store_true",
                        help="--fit with the large recommender too (10M rows; Keras's Adam "
                             "holds about 4 GB)")
    parser.add_argument("--fit-models", default=",".join(FIT_MODELS),
                        type=lambda v: _choices(v, dict.fromkeys(FIT_MODELS), "model"),
                        help=f"comma-separated from {', '.join(FIT_MODELS)}: the models "
                             "--fit and --fit-only time (default: all; the docs check "
                             "times one)")
    parser.add_argument("--fit-steps", type=_positive, default=60, metavar="N",
                        help="model.fit steps timed per configuration of kerasopt/bench/fit.py "
                             "(default: 60; the docs check uses a few)")
    parser.add_argument("--fit-rows", type=_positive, metavar="ROWS",
                        help="rows per embedding table of the recommender (default: 1M; "
                             "the docs check uses a small table: its ratios then mean little)")
    parser.add_argument("--fit-rounds", type=_positive, default=12, metavar="N",
                        help="rounds of the recommender's turn-taking (default: 12)")
    parser.add_argument("--features", metavar="CONFIGS",
                        help="instead: Adam with Keras's per-step features (clip, clipnorm, wd, "
                             "ema, all, lso; comma-separated), fused against Keras's passes and "
                             "Keras (kerasopt/bench/features.py)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    retracing.hide_false_alarms()
    if args.features:
        from kerasopt.bench import features

        return features.main(["--features", args.features, "--repeats", str(args.repeats),
                              "--warmup", str(args.warmup)])

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
    columns = [c for c in COLUMNS if c.key in args.columns]
    if env["torch"] is None:
        columns = [c for c in columns if c.kind != "torch"]
        console.print("torch is not installed: no torch columns (pip install torch)")
    if args.device == "gpu":
        columns = [c for c in columns if c.kind != "torch"]  # torch runs on the CPU here
    per_call = ("" if args.steps_per_call == 1 else
                f" ({args.steps_per_call} steps per call in a tf.while_loop; times per step)")
    console.print(
        f"graph mode (tf.function; the Keras XLA column: jit_compile=True); {args.warmup} warmup "
        f"+ {args.repeats} timed calls per column{per_call}, columns interleaved; float32; "
        f"kernels: {env['isa']}; on {args.device}"
    )

    from kerasopt.bench import bandwidth

    started = time.perf_counter()
    try:
        if args.device != "cpu":
            raise RuntimeError("the steps run on the GPU (see '% of copy')")
        triad = bandwidth.Triad()
        console.print("memory bandwidth: a STREAM-style triad (a = b + s c, 8M float32, 12 "
                      "bytes/element, same thread pool) takes turns with the columns of every "
                      "case; '% triad' is against that case's median\n")
    except RuntimeError as e:
        triad = None
        console.print(f"no triad bandwidth: {e}\n")

    all_results = []
    fit_results = []
    if not args.fit_only:
        for algorithm_key in args.algorithms:
            results = []
            for case_key in args.cases:
                with log.status(f"{ALGORITHMS[algorithm_key].name}, case {CASES[case_key].label}"), \
                        tf.device(DEVICES[args.device]):
                    case_results = run_case(algorithm_key, CASES[case_key], columns,
                                            args.repeats, args.warmup, triad=triad,
                                            steps_per_call=args.steps_per_call)
                for res in case_results:
                    res.copy_gbps = copy_gbps
                results += case_results
            print_algorithm(console, algorithm_key, results, columns, args.repeats,
                            args.steps_per_call)
            all_results += results
        console.print(_summary_table(all_results, columns))
    if args.fit or args.fit_only or args.fit_large:
        from kerasopt.bench import fit as bench_fit

        from kerasopt.bench import recommender

        fit_results = []
        plain = [m for m in args.fit_models if m in bench_fit.MODELS]
        if plain:
            with log.status("model.fit"):
                fit_results = bench_fit.run(console, models=plain, steps=args.fit_steps,
                                            warmup=min(10, args.fit_steps))
        variants = ["recommender"] if "recommender" in args.fit_models else []
        variants += ["recommender-large"] if args.fit_large else []
        for variant in variants:
            with log.status(f"model.fit on the {variant}"):
                fit_results += recommender.run(console, variant, rounds=args.fit_rounds,
                                               rows=args.fit_rows)
    elapsed = time.perf_counter() - started
    console.print(f"total {elapsed:.1f} s")

    if args.json:
        document = {
            "benchmark": "kerasopt.bench",
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "settings": {
                "repeats": args.repeats, "warmup": args.warmup, "mode": "tf.function, no XLA",
                "steps_per_call": args.steps_per_call,
                "dtype": "float32", "cases": args.cases, "algorithms": args.algorithms,
                "device": args.device,
                "columns": [dataclasses.asdict(c) for c in columns],
            },
            "environment": env,
            "elapsed_s": elapsed,
            "results": [r.to_json() for r in all_results],
            "fit": fit_results,
        }
        directory = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(directory, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(document, f, indent=2)
        console.print(f"wrote {args.json}")
    return 0


def _summary_table(results: list[Result], columns=COLUMNS):
    from rich.table import Table

    table = Table(title="median ms per step (speedup vs Keras)")
    table.add_column("algorithm")
    table.add_column("case")
    for c in columns:
        table.add_column(c.title, justify="right")
    rows: dict[tuple, dict[str, Result]] = {}
    for res in results:
        rows.setdefault((res.algorithm, res.case), {})[res.column] = res
    for (algorithm_key, case_key), row in rows.items():
        cells = []
        for c in columns:
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
