"""MNIST convergence race: how many steps each optimizer needs.

Protocol (the same for every optimizer, seeded and repeatable):

* model: a 784-512-512-10 MLP with ReLU, the same Glorot-uniform initial
  weights (drawn once from the seed) for every optimizer;
* data: ``kerasopt.datasets.load_mnist()``; each of the 1000 steps trains on
  a batch of 256 training examples drawn *with replacement*; the batch
  sequence is drawn once from the seed and shared by all optimizers;
* loss: the mean over the batch and over the 10 classes of
  ``-log_softmax(logits) * one_hot(label)``, i.e. cross-entropy / 10;
* after every step, that loss on a fixed sample of 1024 validation examples;
* result: the first step (1-based) at which the validation loss is below 0.15
  (cross-entropy 1.5), or none within the steps.

The optimizers are every class of :data:`kerasopt.optimizers.ALL` at its
defaults plus SGD, Adagrad and SGD with momentum 0.9 at learning rate 1e-3
(a variant equal to a default run is not run twice).
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np

from kerasopt.viz import specs as specs_lib

THRESHOLD = 0.15
NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class RaceConfig:
    steps: int = 1000
    batch_size: int = 256
    val_size: int = 1024
    hidden: tuple = (512, 512)
    threshold: float = THRESHOLD
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "batch_size", "val_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RaceConfig.{name} must be a positive int, got {value!r}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"RaceConfig.hidden must be positive layer widths, got {self.hidden!r}")


@dataclasses.dataclass
class RaceResult:
    label: str
    val_losses: np.ndarray  # validation loss after step 1, 2, ..., steps
    train_losses: np.ndarray  # the batch loss of each step (before its update)
    first_below: int | None
    seconds: float
    kernel_ops: tuple = ()  # kerasopt op types in the traced training step


def race_loss(logits, labels):
    """Mean over examples and the 10 classes of ``-log_softmax · one_hot`` (= cross-entropy / 10)."""
    import tensorflow as tf

    one_hot = tf.one_hot(labels, NUM_CLASSES, dtype=logits.dtype)
    return tf.reduce_mean(-tf.nn.log_softmax(logits) * one_hot)


def first_step_below(val_losses, threshold: float = THRESHOLD) -> int | None:
    """The 1-based step after which the loss is first below `threshold` (NaN never is)."""
    hits = np.flatnonzero(np.asarray(val_losses, dtype=np.float64) < threshold)
    return int(hits[0]) + 1 if hits.size else None


def default_specs() -> list:
    """Every kerasopt optimizer at its defaults, then the learning-rate-1e-3 variants.

    A class that cannot be built without arguments (e.g. a wrapper around
    another optimizer) is left out; a variant whose config equals a default
    run is not repeated.
    """
    from kerasopt.optimizers import SGD, Adagrad

    candidates = [specs_lib.OptimizerSpec(cls) for cls in specs_lib.available().values()]
    candidates += [
        specs_lib.OptimizerSpec(SGD, (("learning_rate", 1e-3),)),
        specs_lib.OptimizerSpec(Adagrad, (("learning_rate", 1e-3),)),
        specs_lib.OptimizerSpec(SGD, (("learning_rate", 1e-3), ("momentum", 0.9))),
    ]
    chosen, seen = [], []
    for spec in candidates:
        try:
            config = specs_lib.effective_config(spec)
        except ValueError:
            continue
        if config not in seen:
            seen.append(config)
            chosen.append(spec)
    return chosen


def glorot_weights(sizes, seed: int) -> list:
    """Glorot-uniform kernels and zero biases for layers of widths `sizes`."""
    rng = np.random.default_rng(seed)
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        weights.append(rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32))
        weights.append(np.zeros(fan_out, np.float32))
    return weights


def _mlp(sizes):
    import keras

    layers = [keras.Input((sizes[0],))]
    layers += [keras.layers.Dense(width, activation="relu") for width in sizes[1:-1]]
    layers.append(keras.layers.Dense(sizes[-1]))
    return keras.Sequential(layers)


def load_data(source: str = "auto"):
    """``(x_train, y_train, x_val, y_val)`` from :func:`kerasopt.datasets.load_mnist`."""
    from kerasopt.datasets import load_mnist

    (x_train, y_train), (x_val, y_val), _ = load_mnist(source)
    return x_train, y_train, x_val, y_val


def run_race(specs=None, config: RaceConfig = RaceConfig(), data=None, *,
             implementation: str = "kernel", progress=None) -> list:
    """Runs the race; returns one :class:`RaceResult` per spec, in order.

    Args:
      specs: :class:`~kerasopt.viz.specs.OptimizerSpec` list (strings are
        parsed); default :func:`default_specs`.
      config: steps, batch and sample sizes, hidden widths, threshold, seed.
      data: ``(x_train, y_train, x_val, y_val)`` NumPy arrays; default MNIST.
      implementation: kerasopt path for the updates (``"kernel"``: the fused
        ops, an error if they cannot run).
      progress: optional ``callable(message)`` for a line per optimizer.
    """
    import tensorflow as tf

    import kerasopt
    from kerasopt.viz.trajectories import kerasopt_op_types

    specs = default_specs() if specs is None else [
        specs_lib.parse(s) if isinstance(s, str) else s for s in specs]
    x_train, y_train, x_val, y_val = load_data() if data is None else data
    x_train = np.asarray(x_train, np.float32).reshape(len(x_train), -1)
    x_val = np.asarray(x_val, np.float32).reshape(len(x_val), -1)
    if config.val_size > len(x_val):
        raise ValueError(f"config.val_size={config.val_size} exceeds the {len(x_val)} validation examples")

    rng = np.random.default_rng(config.seed)
    batches = rng.integers(0, len(x_train), size=(config.steps, config.batch_size))
    val_pick = np.sort(rng.choice(len(x_val), config.val_size, replace=False))
    sizes = (x_train.shape[1], *map(int, config.hidden), NUM_CLASSES)
    initial = glorot_weights(sizes, config.seed)

    train_x, train_y = tf.constant(x_train), tf.constant(np.asarray(y_train, np.int64))
    val_x = tf.constant(x_val[val_pick])
    val_y = tf.constant(np.asarray(y_val, np.int64)[val_pick])
    batches = tf.constant(batches)

    results = []
    for spec in specs:
        model = _mlp(sizes)
        model.set_weights(initial)
        optimizer = spec.build()
        optimizer.build(model.trainable_variables)

        @tf.function
        def step(indices):
            x, y = tf.gather(train_x, indices), tf.gather(train_y, indices)
            with tf.GradientTape() as tape:
                loss = race_loss(model(x, training=True), y)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss, race_loss(model(val_x), val_y)  # ordered after the update

        with kerasopt.implementation(implementation):
            concrete = step.get_concrete_function(batches[0])
        train, val = np.empty(config.steps), np.empty(config.steps)
        start = time.perf_counter()
        for i in range(config.steps):
            loss, val_loss = concrete(batches[i])
            train[i], val[i] = float(loss), float(val_loss)
        seconds = time.perf_counter() - start
        result = RaceResult(spec.label, val, train, first_step_below(val, config.threshold),
                            seconds, kerasopt_op_types(concrete.graph))
        results.append(result)
        if progress is not None:
            progress(f"{result.label}: first below {config.threshold} at step "
                     f"{result.first_below or '-'}, final {val[-1]:.4f}, {seconds:.1f} s")
    return results


# --- reporting -----------------------------------------------------------------


def table(results, config: RaceConfig = RaceConfig()) -> str:
    """A Markdown table, fastest first (never-below runs last, by final loss)."""
    def key(r):
        return (r.first_below is None, r.first_below or 0, float(np.nan_to_num(r.val_losses[-1], nan=np.inf)))

    lines = [f"| optimizer | first step < {config.threshold} | val loss at step {config.steps} | best val loss |",
             "|---|---:|---:|---:|"]
    for r in sorted(results, key=key):
        first = str(r.first_below) if r.first_below is not None else f"> {config.steps}"
        lines.append(f"| `{r.label}` | {first} | {r.val_losses[-1]:.4f} | {np.nanmin(r.val_losses):.4f} |")
    return "\n".join(lines) + "\n"


def save_json(results, config: RaceConfig, path) -> None:
    """Settings and validation curves (6 significant digits), one optimizer per
    line, so tables and plots can be redrawn without re-running."""
    lines = [json.dumps({"config": dataclasses.asdict(config)})]
    for r in results:
        lines.append(json.dumps({
            "label": r.label, "first_below": r.first_below, "seconds": round(r.seconds, 2),
            "kernel_ops": list(r.kernel_ops),
            "val_losses": [float(f"{v:.6g}") for v in r.val_losses]}, separators=(",", ":")))
    with open(path, "w") as f:
        f.write("[\n" + ",\n".join(lines) + "\n]\n")


def load_json(path):
    """``(results, config)`` from :func:`save_json`'s file (without the batch losses)."""
    with open(path) as f:
        head, *rows = json.load(f)
    config = head["config"]
    config = RaceConfig(**{**config, "hidden": tuple(config["hidden"])})
    results = [RaceResult(r["label"], np.asarray(r["val_losses"], np.float64), np.zeros(0), r["first_below"],
                          r["seconds"], tuple(r.get("kernel_ops", ()))) for r in rows]
    return results, config


def figure(results, config: RaceConfig = RaceConfig(), *, figsize=(11, 5)):
    """Validation loss per step for every optimizer, with the threshold."""
    from kerasopt.viz import _mpl

    fig = _mpl.figure(figsize)
    ax = fig.add_subplot(1, 1, 1)
    steps = np.arange(1, config.steps + 1)
    styles = ("-", "--", ":", "-.")
    for i, (r, color) in enumerate(zip(results, _mpl.colors(len(results)))):
        first = r.first_below if r.first_below is not None else "—"
        ax.plot(steps[: len(r.val_losses)], r.val_losses, styles[i % len(styles)], color=color,
                linewidth=1.1, label=f"{r.label}: {first}")
    ax.axhline(config.threshold, color="black", linewidth=0.8, linestyle="--")
    ax.set_xscale("log")  # the threshold falls in the first steps; the tail is where rates differ
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="validation loss (cross-entropy / 10)", xlim=(1, config.steps),
           title=f"MNIST race, batch {config.batch_size}: validation loss after every step")
    ax.grid(linestyle="--", alpha=0.5, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              title=f"first step < {config.threshold}", title_fontsize=7)
    fig.subplots_adjust(left=0.08, right=0.7, bottom=0.1, top=0.93)
    return fig
