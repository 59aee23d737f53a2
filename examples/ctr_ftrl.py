"""Click-through-rate style logistic regression over hashed sparse features,
trained with FTRL-Proximal and L1 (``kerasopt.Ftrl``), the setting of McMahan
et al., "Ad Click Prediction: a View from the Trenches" (KDD 2013).

No real click log is available offline, so the data are SYNTHETIC: a labeled
stream drawn from a known sparse logistic model. Each impression has
``--fields`` categorical fields (field f takes one of ``--values`` values,
Zipf-distributed, as ids in ads data are); every (field, value) pair is hashed
into a table of ``--table`` weights. The ground truth gives a nonzero weight to
only ``--true-density`` of the pairs, and the label is Bernoulli(sigmoid(bias +
sum of the impression's weights)).

The model is the same logistic regression, a ``keras.layers.Embedding`` of
width 1 (initialised to zero, as FTRL starts) summed over the fields plus a
bias, trained by ``model.fit`` for one pass over the stream. Its gradient
arrives as ``tf.IndexedSlices``, so each step updates only the rows it touches
(``kerasopt.Ftrl`` without shrinkage is exact row-wise). It prints held-out
log-loss and AUC next to the true model's and a constant predictor's, the
fraction of exactly-zero weights (the L1 term's sparsity), and the median
time of a ``model.fit`` step (``--keras``: the same with
``keras.optimizers.Ftrl``, which updates the whole table every step)::

    python examples/ctr_ftrl.py
    python examples/ctr_ftrl.py --l1 0 # no L1: few exact zeros
    python examples/ctr_ftrl.py --keras
"""

import argparse
import statistics
import time

import keras
import numpy as np

import kerasopt


def make_stream(n, fields, values, table, true_density, seed):
    rng = np.random.default_rng(seed)
    # Zipf-like popularity of each field's values.
    popularity = 1.0 / np.arange(1, values + 1) ** 1.1
    popularity /= popularity.sum()
    raw = rng.choice(values, size=(n, fields), p=popularity)
    hashed = (raw * 1_000_003 + np.arange(fields) * 7_919) % table  # feature hashing
    truth = np.where(rng.random(table) < true_density, rng.normal(0.0, 1.5, table), 0.0)
    bias = -1.5
    logits = bias + truth[hashed].sum(axis=1)
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    return hashed.astype(np.int64), labels, 1.0 / (1.0 + np.exp(-logits)), truth


class SumWithBias(keras.layers.Layer):
    """logit = bias + sum of the impression's weights ([batch, fields, 1] -> [batch, 1])."""

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")

    def call(self, weights):
        return keras.ops.sum(weights, axis=1) + self.bias


def build_model(fields, table, learning_rate, l1, l2, ftrl=kerasopt.Ftrl):
    ids = keras.Input((fields,), dtype="int64")
    weights = keras.layers.Embedding(table, 1, embeddings_initializer="zeros")(ids)
    probability = keras.layers.Activation("sigmoid")(SumWithBias()(weights))
    model = keras.Model(ids, probability)
    model.compile(
        optimizer=ftrl(learning_rate=learning_rate, l1_regularization_strength=l1,
                       l2_regularization_strength=l2),
        loss="binary_crossentropy",
    )
    return model


class StepTimer(keras.callbacks.Callback):
    """Wall time between consecutive training steps (a step ends at on_train_batch_end)."""

    def __init__(self):
        super().__init__()
        self.stamps = []

    def on_train_batch_end(self, batch, logs=None):
        self.stamps.append(time.perf_counter())

    def median_ms(self, skip=5):
        """Median step in ms, the first `skip` steps (tracing) left out."""
        steps = [b - a for a, b in zip(self.stamps, self.stamps[1:])][skip:]
        return 1e3 * statistics.median(steps) if steps else float("nan")


def log_loss(labels, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def auc(labels, scores):
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    positives = labels == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=400_000)
    parser.add_argument("--test", type=int, default=50_000)
    parser.add_argument("--fields", type=int, default=20)
    parser.add_argument("--values", type=int, default=5_000)
    parser.add_argument("--table", type=int, default=2**18)
    parser.add_argument("--true-density", type=float, default=0.05)
    parser.add_argument("--learning-rate", type=float, default=0.5)
    parser.add_argument("--l1", type=float, default=0.05)
    parser.add_argument("--l2", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keras", action="store_true",
                        help="train with keras.optimizers.Ftrl instead (for comparison)")
    args = parser.parse_args()

    x, y, p_true, truth = make_stream(args.train + args.test, args.fields, args.values, args.table,
                               args.true_density, args.seed)
    x_train, y_train = x[:args.train], y[:args.train]
    x_test, y_test, p_test = x[args.train:], y[args.train:], p_true[args.train:]
    print(f"SYNTHETIC click stream from a known sparse logistic model: {args.train:,} "
          f"training / {args.test:,} held-out impressions, {args.fields} hashed fields, "
          f"table of {args.table:,} weights, click rate {y.mean():.3f}")

    ftrl = keras.optimizers.Ftrl if args.keras else kerasopt.Ftrl
    model = build_model(args.fields, args.table, args.learning_rate, args.l1, args.l2, ftrl)
    timer = StepTimer()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=1, verbose=2,
              callbacks=[timer])
    p_model = model.predict(x_test, batch_size=4096, verbose=0).ravel()

    table = np.asarray(model.layers[1].embeddings).ravel()
    touched = np.zeros(args.table, bool)
    touched[np.unique(x_train)] = True
    print(f"{'keras.optimizers' if args.keras else 'kerasopt'}.Ftrl: median model.fit step "
          f"{timer.median_ms():.2f} ms (batch {args.batch_size}, table of {args.table:,} weights)")
    print(f"held-out log-loss: model {log_loss(y_test, p_model):.4f}, "
          f"true model {log_loss(y_test, p_test):.4f}, "
          f"constant click rate {log_loss(y_test, np.full_like(p_test, y_train.mean())):.4f}")
    print(f"held-out AUC:      model {auc(y_test, p_model):.4f}, "
          f"true model {auc(y_test, p_test):.4f}")
    print(f"exactly-zero weights: {np.mean(table == 0):.1%} of the table, "
          f"{np.mean(table[touched] == 0):.1%} of the {touched.sum():,} weights the stream "
          f"touched (L1 = {args.l1}); the true model has {np.mean(truth[touched] == 0):.1%} "
          "of those at zero")


if __name__ == "__main__":
    main()
