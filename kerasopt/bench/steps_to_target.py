"""``python -m kerasopt.bench.steps_to_target``: steps to a target training loss
on the MNIST MLP or a small CNN, K-FAC, Shampoo and SOAP against Adam, each at
its best learning rate of a grid.

The MNIST MLP 784-512-512-10 (ReLU, softmax, cross-entropy), or with
``--model cnn`` two strided 3 x 3 Conv2D layers (16 and 32 filters, ReLU) and
a softmax Dense head, trains on real MNIST (``kerasopt.datasets.load_mnist``;
``--mnist PATH`` reads an ``mnist.pkl.gz``) in batches of 128 drawn in one fixed shuffled order, the
same for every run. Every ``--every`` steps the loss on the first 10,000
training images is measured; a run's score is the first such step at which
that loss is at or below ``--target`` (runs stop there or at ``--max-steps``).
Each optimizer reports its best setting's steps (Adam, Shampoo and SOAP:
learning rate; K-FAC: learning rate and ``kl_clip``), and the median
wall-clock of its steps in that run (the training step only, in a
``tf.function``; K-FAC's step is ``KFACModel.train_step``, its inverse
refreshes included; Shampoo refreshes its roots and SOAP its eigenbases every
``--inverse-frequency`` steps too, blocks of 128, as
``kerasopt.bench.second_order`` runs them). Timings of a shared machine: compare
within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kerasopt  # noqa: E402
from kerasopt.bench import retracing  # noqa: E402
from kerasopt.datasets import load_mnist  # noqa: E402

BATCH = 128
EVAL_EXAMPLES = 10_000


def mlp():
    return keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def cnn():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])


MODELS = {"mlp": (mlp, (784,), "MNIST MLP"), "cnn": (cnn, (28, 28, 1), "MNIST CNN")}


def make_optimizer(name, rate, kl_clip, inverse_frequency):
    if name == "adam":
        return kerasopt.Adam(rate)
    if name == "shampoo":
        return kerasopt.Shampoo(rate, block_size=128, precondition_frequency=inverse_frequency,
                                start_preconditioning_step=1)
    if name == "soap":
        return kerasopt.SOAP(rate, block_size=128, precondition_frequency=inverse_frequency)
    return kerasopt.KFAC(rate, kl_clip=kl_clip, inverse_frequency=inverse_frequency)


def train(name, rate, kl_clip, x, y, args):
    """Steps to the target (None if not reached) and the median step time."""
    keras.utils.set_random_seed(0)
    build, input_shape, _ = MODELS[args.model]
    model = build()
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    optimizer = make_optimizer(name, rate, kl_clip, args.inverse_frequency)
    spec = (tf.TensorSpec((BATCH, *input_shape), tf.float32), tf.TensorSpec((BATCH,), tf.int64))
    if name == "kfac":
        model = kerasopt.KFACModel(model)
        model.compile(optimizer=optimizer, loss=loss_fn)
        optimizer.build(model.trainable_variables)

        @tf.function(input_signature=spec)
        def step(xb, yb):
            return model.train_step((xb, yb))["loss"]
    else:
        optimizer.build(model.trainable_variables)
        variables = model.trainable_variables

        @tf.function(input_signature=spec)
        def step(xb, yb):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            optimizer.apply(tape.gradient(loss, variables), variables)
            return loss

    @tf.function
    def eval_loss():
        return loss_fn(y[:EVAL_EXAMPLES], model(x[:EVAL_EXAMPLES], training=False))

    order = np.random.default_rng(0).permutation(len(x))
    times = []
    for t in range(1, args.max_steps + 1):
        start_row = ((t - 1) * BATCH) % (len(x) - BATCH)
        rows = order[start_row:start_row + BATCH]
        xb, yb = tf.constant(x[rows]), tf.constant(y[rows])
        begin = time.perf_counter()
        step(xb, yb).numpy()
        times.append(time.perf_counter() - begin)
        if t % args.every == 0:
            loss = float(eval_loss())
            if not np.isfinite(loss):
                return None, statistics.median(times[1:])
            if loss <= args.target:
                return t, statistics.median(times[1:])
    return None, statistics.median(times[1:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="mlp")
    parser.add_argument("--target", type=float, default=0.15, help="training loss (default 0.15)")
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--every", type=int, default=10, help="steps between loss checks")
    parser.add_argument("--inverse-frequency", type=int, default=10)
    parser.add_argument("--adam-rates", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2])
    parser.add_argument("--shampoo-rates", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2])
    parser.add_argument("--soap-rates", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2])
    parser.add_argument("--kfac-rates", type=float, nargs="+", default=[0.1, 0.3])
    # While the KL clip binds, K-FAC's step is sqrt(kl_clip / v.g) v whatever the
    # rate: the clip is the step size to search.
    parser.add_argument("--kfac-kl-clips", type=float, nargs="+", default=[1e-3, 1e-2, 1e-1])
    parser.add_argument("--mnist", default=None, help="an mnist.pkl.gz to read")
    args = parser.parse_args(argv)
    retracing.hide_false_alarms()
    if args.mnist:
        (x, y), _, _ = load_mnist("offline", path=args.mnist)
    else:
        (x, y), _, _ = load_mnist()
    _, input_shape, title = MODELS[args.model]
    x = tf.reshape(tf.constant(x, tf.float32), (-1, *input_shape))
    x_np, y_np = x.numpy(), tf.constant(y, tf.int64).numpy()
    print(f"{title}, batch {BATCH}, target training loss {args.target} "
          f"(first {EVAL_EXAMPLES} images, checked every {args.every} steps), "
          f"K-FAC inverses, Shampoo roots and SOAP bases every {args.inverse_frequency} steps")
    print(f"{'optimizer':<10} {'rate':>8} {'kl_clip':>8} {'steps':>7} {'step ms':>8}")
    best = {}
    runs = [("adam", rate, None) for rate in args.adam_rates] + [
        ("shampoo", rate, None) for rate in args.shampoo_rates] + [
        ("soap", rate, None) for rate in args.soap_rates] + [
        ("kfac", rate, clip) for rate in args.kfac_rates for clip in args.kfac_kl_clips]
    for name, rate, clip in runs:
        steps, step_time = train(name, rate, clip, x_np, y_np, args)
        print(f"{name:<10} {rate:8.0e} {clip if clip else '':>8} {steps if steps else '-':>7} "
              f"{step_time * 1e3:8.2f}", flush=True)
        if steps and (name not in best or steps < best[name][0]):
            best[name] = (steps, step_time, rate, clip)
    for name, (steps, step_time, rate, clip) in best.items():
        print(f"best {name}: {steps} steps at rate {rate:g}"
              f"{f', kl_clip {clip:g}' if clip else ''}, {step_time * 1e3:.2f} ms/step")
    if "adam" in best:
        s_a, t_a, *_ = best["adam"]
        for name, title in (("kfac", "K-FAC"), ("shampoo", "Shampoo"), ("soap", "SOAP")):
            if name in best:
                s_k, t_k, *_ = best[name]
                print(f"{title} / Adam: {s_k / s_a:.2f}x the steps, {t_k / t_a:.2f}x the time "
                      f"per step, {s_k * t_k / (s_a * t_a):.2f}x the time to target")


if __name__ == "__main__":
    main()
