"""End to end: ``model.fit`` step time with kerasopt against Keras (``python -m kerasopt.bench --fit``).

Three models, each trained on synthetic data of the right shape (the data do
not change the time of a step):

* ``mnist``: the convnet of ``examples/mnist_fit.py`` (8 variables, 0.2M
  parameters; the step is dominated by the convolutions), with Adam;
* ``many``: 64 blocks of Dense(128) + LayerNormalization (258 variables, 1.1M
  parameters; many small variables, as in transformers), with Adam;
* ``lm``: a small transformer language model (2 pre-norm blocks of causal
  self-attention and a GELU MLP, width 256, 64 tokens of a 4,000-token
  vocabulary; 37 variables, 3.6M parameters) trained as language models are,
  with AdamW (weight decay 0.01) and ``global_clipnorm=1.0``: the training
  configuration whose clipping and decay kerasopt fuses
  (docs/training-configs.md).

Configurations: Keras's optimizer with ``jit_compile=False`` and with Keras's default
(``"auto"``: XLA), kerasopt's with ``jit_compile=False`` (the fused kernels;
one launch for all variables, and one op per variable), and kerasopt with the
default (inside XLA kerasopt uses its composed fallback). The time of a step
is the interval between consecutive ``on_train_batch_end`` callbacks; the
first ``warmup`` steps (tracing) are dropped and the median is reported.
"""

from __future__ import annotations

import os
import statistics
import time


def mnist_model():
    import keras

    return keras.Sequential([
        keras.Input(shape=(784,)),
        keras.layers.Reshape((28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10),
    ])


def many_variable_model(blocks: int = 64, width: int = 128):
    import keras

    layers = [keras.Input(shape=(width,))]
    for _ in range(blocks):
        layers += [keras.layers.Dense(width, activation="relu"), keras.layers.LayerNormalization()]
    layers.append(keras.layers.Dense(10))
    return keras.Sequential(layers)


LM_VOCAB, LM_TOKENS, LM_WIDTH, LM_BLOCKS, LM_HEADS = 4000, 64, 256, 2, 4


def transformer_lm():
    import keras

    tokens = keras.Input(shape=(LM_TOKENS,), dtype="int32")
    positions = keras.ops.arange(LM_TOKENS)
    h = (keras.layers.Embedding(LM_VOCAB, LM_WIDTH)(tokens)
         + keras.layers.Embedding(LM_TOKENS, LM_WIDTH)(positions))
    for _ in range(LM_BLOCKS):
        a = keras.layers.LayerNormalization()(h)
        a = keras.layers.MultiHeadAttention(LM_HEADS, LM_WIDTH // LM_HEADS)(
            a, a, use_causal_mask=True)
        h = h + a
        m = keras.layers.LayerNormalization()(h)
        m = keras.layers.Dense(4 * LM_WIDTH, activation="gelu")(m)
        h = h + keras.layers.Dense(LM_WIDTH)(m)
    logits = keras.layers.Dense(LM_VOCAB)(keras.layers.LayerNormalization()(h))
    return keras.Model(tokens, logits)


def _features_and_classes(rng, rows, features):
    return (rng.standard_normal((rows, features)).astype("float32"),
            rng.integers(0, 10, rows))


def _token_sequences(rng, rows, _):
    text = rng.integers(0, LM_VOCAB, (rows, LM_TOKENS + 1))
    return text[:, :-1].astype("int32"), text[:, 1:]  # each position predicts the next token


def _adam(module):
    return module.Adam(1e-3)


def _adamw_clipped(module):
    return module.AdamW(1e-3, weight_decay=0.01, global_clipnorm=1.0)


# key: (builder, data maker, its width argument, batch size, optimizer from a module)
MODELS = {
    "mnist": (mnist_model, _features_and_classes, 784, 128, _adam),
    "many": (many_variable_model, _features_and_classes, 128, 64, _adam),
    "lm": (transformer_lm, _token_sequences, None, 16, _adamw_clipped),
}

# (key, title, optimizer, jit_compile, multi-tensor switch)
CONFIGS = (
    ("keras", "Keras", "keras", False, None),
    ("keras_xla", "Keras (jit auto: XLA)", "keras", "auto", None),
    ("kerasopt", "kerasopt", "kerasopt", False, True),
    ("kerasopt_1", "kerasopt 1 op/var", "kerasopt", False, False),
    ("kerasopt_xla", "kerasopt (jit auto: fallback)", "kerasopt", "auto", None),
)


class _StepTimer:
    def __init__(self):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(cb, batch, logs=None):
                self.stamps.append(time.perf_counter())

        self.stamps = []
        self.callback = Callback()

    def step_times_ms(self, warmup: int) -> list[float]:
        diffs = [1e3 * (b - a) for a, b in zip(self.stamps, self.stamps[1:])]
        return diffs[warmup:]


def time_fit(model_key: str, config, steps: int = 60, warmup: int = 10, seed: int = 0) -> dict:
    import keras
    import numpy as np

    import kerasopt
    from kerasopt.optimizers import multi_tensor

    build, make_data, width, batch, make_optimizer = MODELS[model_key]
    _, title, which, jit, multi = config
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x, y = make_data(rng, batch * (steps + warmup + 1), width)
    model = build()
    optimizer = make_optimizer(keras.optimizers if which == "keras" else kerasopt)
    model.compile(optimizer=optimizer, jit_compile=jit,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    saved = os.environ.get(multi_tensor.ENV_SWITCH)
    if multi is not None:
        os.environ[multi_tensor.ENV_SWITCH] = "1" if multi else "0"
    try:
        timer = _StepTimer()
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0,
                  callbacks=[timer.callback])
    finally:
        if saved is None:
            os.environ.pop(multi_tensor.ENV_SWITCH, None)
        else:
            os.environ[multi_tensor.ENV_SWITCH] = saved
    times = timer.step_times_ms(warmup)
    return {"model": model_key, "config": config[0], "title": title,
            "variables": len(model.trainable_variables),
            "params": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
            "median_ms": statistics.median(times), "times_ms": times}


def run(console, models=("mnist", "many", "lm"), steps: int = 60, warmup: int = 10) -> list[dict]:
    from rich.table import Table

    results = []
    for model_key in models:
        for config in CONFIGS:
            results.append(time_fit(model_key, config, steps, warmup))
    table = Table(title=f"model.fit: median ms per training step ({steps} steps after {warmup})")
    table.add_column("model")
    for _, title, *_ in CONFIGS:
        table.add_column(title, justify="right")
    for model_key in models:
        row = {r["config"]: r for r in results if r["model"] == model_key}
        base = row["keras"]["median_ms"]
        first = row["keras"]
        table.add_row(f"{model_key} ({first['variables']} vars, {first['params'] / 1e6:.2f}M)",
                      *[f"{row[c[0]]['median_ms']:.2f} ({base / row[c[0]]['median_ms']:.2f}×)"
                        for c in CONFIGS])
    console.print(table)
    console.print("  (×: speedup against Keras with jit_compile=False)\n")
    return results
