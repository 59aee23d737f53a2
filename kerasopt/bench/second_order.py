"""``python -m kerasopt.bench.second_order``: the per-step cost of preconditioning.

What is measured
================

Whole training steps (forward, backward and the optimizer's update) of two
models on fixed synthetic batches of 128, in a ``tf.function`` (no XLA) whose
returned loss is read with ``.numpy()`` so that the clock stops when the step
has finished:

* ``mnist_mlp``: the MNIST MLP 784-512-512-10 (ReLU, softmax, cross-entropy);
* ``dense_1024``: one 1024 x 1024 Dense layer (no bias), mean squared error.

Optimizers: ``kerasopt.Adam`` (the baseline), ``kerasopt.Shampoo``
(``block_size`` 128, grafted to Adam) and ``kerasopt.FullMatrixAdagrad``
(``block_size`` 32), both recomputing their inverse roots every
``--frequency`` steps, and ``kerasopt.SOAP`` (``block_size`` 128), refreshing
its eigenbases every ``--frequency`` steps: ``soap`` with its fused op
(KerasoptApplySOAP between TensorFlow's matrix products), ``soap_tf`` the same
step all in composed TF ops (traced under ``kerasopt.implementation("tf")``).
``kfac`` (``kerasopt.KFAC``, composed TF ops) inverts its
factors every ``--frequency`` steps; its step is ``KFACModel.train_step``
(what ``fit`` runs, the loss metric's update included).
Each optimizer first runs one period of steps (the first traces the function),
then ``--rounds`` timed periods, the optimizers taking turns period by period
so that drifts of a shared machine hit all alike. Each step is timed on its
own, so the two kinds of step are reported separately:

* ``step``: the median step without a root recomputation (the per-step path:
  statistics update and preconditioned step);
* ``roots``: the median extra time of a step that recomputes the roots (SOAP:
  refreshes its bases);
* ``amortized``: step + roots / frequency, and its ratio to Adam's step.

The numbers depend on the machine and its load; only ratios measured in the
same run compare.
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
from kerasopt.bench import retracing  # noqa: E402

BATCH = 128


def mnist_mlp():
    model = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 784), np.float32)
    y = rng.integers(0, 10, BATCH)
    return model, x, y, keras.losses.SparseCategoricalCrossentropy()


def dense_1024():
    model = keras.Sequential([keras.Input((1024,)), keras.layers.Dense(1024, use_bias=False)])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 1024)).astype(np.float32)
    y = rng.standard_normal((BATCH, 1024)).astype(np.float32)
    return model, x, y, keras.losses.MeanSquaredError()


CASES = {"mnist_mlp": mnist_mlp, "dense_1024": dense_1024}


def optimizers(frequency):
    return {
        "adam": lambda: kerasopt.Adam(1e-3),
        "shampoo": lambda: kerasopt.Shampoo(1e-3, block_size=128, precondition_frequency=frequency,
                                            start_preconditioning_step=1),
        "full_matrix_adagrad": lambda: kerasopt.FullMatrixAdagrad(
            1e-3, block_size=32, update_frequency=frequency),
        "soap": lambda: kerasopt.SOAP(1e-3, block_size=128, precondition_frequency=frequency),
        "soap_tf": lambda: kerasopt.SOAP(1e-3, block_size=128, precondition_frequency=frequency),
        "kfac": lambda: kerasopt.KFAC(1e-3, inverse_frequency=frequency),
    }


# Optimizers whose step is traced with the composed-TF fallback.
FALLBACK = ("soap_tf",)
NAMES = ["adam", "shampoo", "full_matrix_adagrad", "soap", "soap_tf", "kfac"]


class Runner:
    """One model with one optimizer; `period()` runs `frequency` steps, timing each."""

    def __init__(self, case, make_optimizer, frequency, implementation=None):
        keras.utils.set_random_seed(0)
        self.model, x, y, loss_fn = CASES[case]()
        self.optimizer = make_optimizer()
        self.frequency = frequency
        x, y = tf.constant(x), tf.constant(y)
        if isinstance(self.optimizer, kerasopt.KFAC):
            # K-FAC needs the layers' inputs and pre-activation gradients: its
            # model wrapper's train_step (what fit runs) is the step.
            self.model = kerasopt.KFACModel(self.model)
            self.model.compile(optimizer=self.optimizer, loss=loss_fn)
            self.optimizer.build(self.model.trainable_variables)

            @tf.function
            def step():
                return self.model.train_step((x, y))["loss"]
        else:
            self.optimizer.build(self.model.trainable_variables)
            variables = self.model.trainable_variables

            @tf.function
            def step():
                with tf.GradientTape() as tape:
                    loss = loss_fn(y, self.model(x, training=True))
                self.optimizer.apply(tape.gradient(loss, variables), variables)
                return loss

        def step_on(implementation_name):
            with kerasopt.implementation(implementation_name):  # read when step() traces
                return step()

        self.step = step if implementation is None else (lambda: step_on(implementation))
        self.root_steps, self.plain_steps = [], []

    def period(self, record=True):
        # Step t recomputes the roots when (t - 1) % frequency == 0: the first of a period.
        for i in range(self.frequency):
            start = time.perf_counter()
            self.step().numpy()
            elapsed = time.perf_counter() - start
            if record:
                (self.root_steps if i == 0 else self.plain_steps).append(elapsed)


def run(cases, names, frequency, rounds):
    table = []
    for case in cases:
        runners = {name: Runner(case, optimizers(frequency)[name], frequency,
                                "tf" if name in FALLBACK else None) for name in names}
        for runner in runners.values():
            runner.period(record=False)  # traces and warms up
        gc.disable()
        try:
            for r in range(rounds):
                order = names[r % len(names):] + names[:r % len(names)]
                for name in order:
                    runners[name].period()
        finally:
            gc.enable()
        base = None
        for name in names:
            runner = runners[name]
            step = statistics.median(runner.plain_steps)
            roots = max(0.0, statistics.median(runner.root_steps) - step)
            if name == "adam":
                roots = 0.0  # Adam has no roots: its "first" steps are ordinary steps
                step = statistics.median(runner.plain_steps + runner.root_steps)
            amortized = step + roots / frequency
            base = step if name == "adam" else base
            table.append((case, name, step, roots, amortized, amortized / base if base else None))
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--optimizers", nargs="+", default=[n for n in NAMES if n not in FALLBACK],
                        choices=NAMES, help="soap_tf (SOAP all in TF ops) runs when named")
    parser.add_argument("--frequency", type=int, default=20,
                        help="steps between root recomputations (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="timed periods per optimizer")
    args = parser.parse_args(argv)
    retracing.hide_false_alarms()
    names = ["adam"] + [n for n in args.optimizers if n != "adam"]
    lib = kerasopt.op_library.library()
    print(f"TensorFlow {tf.__version__}, kerasopt op library: "
          f"{'loaded' if lib.loaded else 'NOT loaded (' + str(lib.error) + ')'}, "
          f"root recomputation every {args.frequency} steps, {args.rounds} timed periods")
    print(f"{'model':<11} {'optimizer':<20} {'step ms':>9} {'roots ms':>9} "
          f"{'amortized ms':>13} {'vs Adam':>8}")
    for case, name, step, roots, amortized, ratio in run(args.cases, names, args.frequency,
                                                        args.rounds):
        print(f"{case:<11} {name:<20} {step * 1e3:9.2f} {roots * 1e3:9.1f} "
              f"{amortized * 1e3:13.2f} {ratio:7.2f}x")


if __name__ == "__main__":
    main()
