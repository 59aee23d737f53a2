"""``model.fit`` on an embedding recommender, kerasopt against Keras
(``python -m kerasopt.bench --fit``; ``--fit-large`` adds the large variant).

The model: ``tables`` ``keras.layers.Embedding(rows, 32)`` tables (user, item),
each looked up with one id per example, concatenated into ``Dense(64, relu)``
and ``Dense(1)``; ``BinaryCrossentropy(from_logits=True)``, batch 1024, ids
drawn uniformly, random labels (the data do not change the time of a step).
``recommender``: two tables of 1M rows (128 MB each); ``recommender-large``:
two of 5M (10M rows, 1.28 GB of weights; Keras's Adam then holds 3.8 GB).

Configurations (all ``jit_compile=False``, Keras's default on a CPU-only
machine): Keras and kerasopt ``Adagrad`` and ``Ftrl``, Keras ``Adam`` against
kerasopt ``Adam(lazy=True)`` (Keras densifies the gradient and updates every
row; kerasopt updates the rows the batch names), and the same two with
``global_clipnorm=1.0``. The floors: the same model
with its tables frozen (``trainable=False``; kerasopt Adagrad trains the dense
layers), and the forward and backward pass of one batch alone in a
``tf.function`` (no update, no ``fit`` loop).

How it is timed: a fit step is the interval between consecutive
``on_train_batch_end`` callbacks (so the interval that spans a ``fit`` call's
start is never counted). Each kerasopt model and the frozen model are built
side by side and take turns, ``chunk`` steps at a time (one ``fit`` call
each), for ``rounds`` rounds after a warm-up call (tracing), so a shared
machine's slow drifts hit both alike: each kerasopt step is compared with the
frozen steps taken beside it (the frozen row shows all of them). Then each Keras model runs ``keras_steps`` steps on its
own: its steps move whole tables and would disturb short steps run right
after them (and the speedups asked for are tens of times). Reported: the
median of each configuration's steps; the targets of issue 18 are ratios of
those medians.
"""

from __future__ import annotations

import gc
import os
import statistics
import time

VARIANTS = {
    # name: (tables, rows per table)
    "recommender": (2, 1_000_000),
    "recommender-large": (2, 5_000_000),
}
WIDTH = 32
BATCH = 1024
LEARNING_RATE = 0.01

# (algorithm, Keras kwargs, kerasopt kwargs)
ALGORITHMS = (
    ("Adagrad", {}, {}),
    ("Ftrl", {}, {}),
    ("Adam", {}, {"lazy": True}),
    # A realistic config: Keras's v * scale makes each gradient a dense table;
    # kerasopt keeps the rows (docs/sparse.md#global_clipnorm-and-rows).
    ("Adam", {"global_clipnorm": 1.0}, {"lazy": True, "global_clipnorm": 1.0}),
)
FROZEN = "frozen"
FORWARD_BACKWARD = "forward_backward"
# (kind, ours, theirs, bound): "speedup": theirs / ours >= bound; "floor":
# ours / theirs <= bound.
TARGETS = (
    ("speedup", "kerasopt Adagrad", "Keras Adagrad", 25.0),
    ("speedup", "kerasopt Adam(lazy=True)", "Keras Adam", 40.0),
    ("speedup", "kerasopt Ftrl", "Keras Ftrl", 50.0),
    ("floor", "kerasopt Adagrad", FROZEN, 2.0),
    ("floor", "kerasopt Ftrl", FROZEN, 2.0),
    ("floor", "kerasopt Adam(lazy=True)", FROZEN, 2.0),
)
TITLES = {
    FROZEN: "tables frozen (trainable=False)",
    FORWARD_BACKWARD: "forward+backward only (tf.function)",
}


def build_model(tables: int, rows: int, trainable: bool = True):
    import keras

    inputs = [keras.Input((1,), dtype="int32", name=f"ids_{t}") for t in range(tables)]
    embedded = [
        keras.layers.Flatten()(keras.layers.Embedding(rows, WIDTH, trainable=trainable)(ids))
        for ids in inputs
    ]
    hidden = keras.layers.Dense(64, activation="relu")(keras.layers.Concatenate()(embedded))
    return keras.Model(inputs, keras.layers.Dense(1)(hidden))


def make_data(tables: int, rows: int, examples: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = [rng.integers(0, rows, (examples, 1), dtype=np.int32) for _ in range(tables)]
    y = rng.integers(0, 2, (examples, 1)).astype(np.float32)
    return x, y


def config_title(library: str, algorithm: str, kwargs: dict) -> str:
    args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{library} {algorithm}" + (f"({args})" if args else "")


class FitSteps:
    """A compiled model with its data; ``steps(n)`` runs one ``fit`` call of n
    steps and returns their times in ms."""

    def __init__(self, optimizer, tables: int, rows: int, max_steps: int,
                 trainable: bool = True):
        import keras

        keras.utils.set_random_seed(0)
        self.model = build_model(tables, rows, trainable)
        self.model.compile(optimizer=optimizer, jit_compile=False,
                           loss=keras.losses.BinaryCrossentropy(from_logits=True))
        self.x, self.y = make_data(tables, rows, BATCH * (max_steps + 1))
        self.stamps: list[float] = []
        stamps = self.stamps

        class Stamp(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                stamps.append(time.perf_counter())

        self.callback = Stamp()

    def steps(self, n: int) -> list[float]:
        self.stamps.clear()
        self.model.fit([a[:BATCH * (n + 1)] for a in self.x], self.y[:BATCH * (n + 1)],
                       batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                       callbacks=[self.callback])
        return [1e3 * (b - a) for a, b in zip(self.stamps, self.stamps[1:])]


def forward_backward_ms(tables: int, rows: int, steps: int, warmup: int) -> list[float]:
    """The floor: forward and backward of one batch, no update, no fit loop."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    x, y = make_data(tables, rows, BATCH)
    x = [tf.constant(a) for a in x]
    y = tf.constant(y)
    model = build_model(tables, rows)
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        # One number from every gradient, so none is pruned.
        return tf.add_n([tf.reduce_sum(tf.convert_to_tensor(
            g.values if isinstance(g, tf.IndexedSlices) else g)) for g in grads])

    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        forward_backward().numpy()
        if i >= warmup:
            times.append(1e3 * (time.perf_counter() - start))
    return times


def time_configs(tables: int, rows: int, rounds: int, chunk: int, warmup: int,
                 keras_steps: int, algorithms=ALGORITHMS):
    """({title: step times in ms}, {kerasopt title: the frozen model's step
    times taken beside it}). Each kerasopt model takes turns with the frozen
    model, `chunk` steps at a time for `rounds` rounds; then each Keras model
    runs `keras_steps` steps on its own (its densifying steps move whole
    tables, which would disturb the short steps run right after them)."""
    import keras

    import kerasopt

    times: dict[str, list[float]] = {FROZEN: []}
    beside: dict[str, list[float]] = {}
    most = max(chunk, warmup, keras_steps)
    frozen = FitSteps(kerasopt.Adagrad(LEARNING_RATE), tables, rows, most, trainable=False)
    frozen.steps(warmup)
    for algorithm, _, ours_kwargs in algorithms:
        ours = FitSteps(getattr(kerasopt, algorithm)(LEARNING_RATE, **ours_kwargs),
                        tables, rows, most)
        ours.steps(warmup)
        title = config_title("kerasopt", algorithm, ours_kwargs)
        times[title], beside[title] = [], []
        for r in range(rounds):
            for runner in ([ours, frozen] if r % 2 == 0 else [frozen, ours]):
                (times[title] if runner is ours else beside[title]).extend(runner.steps(chunk))
        times[FROZEN] += beside[title]
        del ours
        gc.collect()
    del frozen
    gc.collect()
    for algorithm, keras_kwargs, _ in algorithms:
        theirs = FitSteps(getattr(keras.optimizers, algorithm)(LEARNING_RATE, **keras_kwargs),
                          tables, rows, most)
        theirs.steps(warmup)
        times[config_title("Keras", algorithm, keras_kwargs)] = theirs.steps(keras_steps)
        del theirs
        gc.collect()
    times[FORWARD_BACKWARD] = forward_backward_ms(tables, rows, rounds * chunk, warmup)
    return times, beside


def check_targets(medians: dict[str, float],
                  floors: dict[str, float]) -> list[tuple[str, float, bool]]:
    """(description, measured ratio, met) for each target whose configurations
    ran; `floors`: the median frozen step beside each kerasopt configuration."""
    checks = []
    for kind, ours, theirs, bound in TARGETS:
        if ours not in medians or theirs not in medians:
            continue
        if kind == "speedup":
            ratio = medians[theirs] / medians[ours]
            checks.append((f"{ours} >= {bound:g}x faster than {theirs}", ratio, ratio >= bound))
        else:
            ratio = medians[ours] / floors[ours]
            checks.append((f"{ours} <= {bound:g}x the frozen-table step", ratio, ratio <= bound))
    return checks


def run(console, variant: str = "recommender", rounds: int = 12, chunk: int = 5,
        warmup: int = 3, keras_steps: int = 10, algorithms=ALGORITHMS,
        rows: int | None = None) -> list[dict]:
    from rich.table import Table

    tables, variant_rows = VARIANTS[variant]
    rows = rows or variant_rows  # a smaller table for quick checks
    load_before = os.getloadavg()[0]
    times, beside = time_configs(tables, rows, rounds, chunk, warmup, keras_steps, algorithms)
    load_after = os.getloadavg()[0]
    medians = {name: statistics.median(t) for name, t in times.items()}
    floors = {name: statistics.median(t) for name, t in beside.items()}
    table = Table(title=(
        f"model.fit on the {variant}: {tables} Embedding({rows:,}, {WIDTH}) tables, "
        f"Dense(64), Dense(1), batch {BATCH}; median ms per step (kerasopt and the frozen "
        f"model taking turns, {rounds} rounds of {chunk} steps; Keras {keras_steps} steps)"))
    table.add_column("configuration")
    table.add_column("ms / step", justify="right")
    table.add_column("x the frozen-table step (*: the steps beside it)", justify="right")
    for name, median in medians.items():
        floor = floors.get(name, medians[FROZEN])
        table.add_row(TITLES.get(name, name), f"{median:.2f}",
                      f"{median / floor:.2f}" + ("*" if name in floors else ""))
    console.print(table)
    for description, ratio, met in check_targets(medians, floors):
        console.print(f"  target: {description}: {ratio:.2f}x "
                      f"{'[green]met[/green]' if met else '[red]NOT met[/red]'}")
    console.print(f"  (1-minute load average {load_before:.1f} before, {load_after:.1f} after, "
                  f"on {os.cpu_count()} CPUs)\n")
    return [{"model": variant, "tables": tables, "rows": rows, "config": name,
             "title": TITLES.get(name, name), "median_ms": medians[name], "times_ms": t,
             **({"frozen_beside_ms": beside[name]} if name in beside else {})}
            for name, t in times.items()]
