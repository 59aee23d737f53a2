"""TensorFlow Addons' optimizer options in kerasopt (docs/tensorflow-addons.md).

TFA's test suites of RectifiedAdam, AdaBelief, LAMB, Yogi and NovoGrad
(tensorflow_addons/optimizers/tests/*_test.py), ported as a table: the same
hyperparameters, weights, gradients and step counts. Each case runs the Keras
class on the fused kernel and on the composed-TF fallback, which must give the
same bits, and is compared with a float64 reference (tests/references.py,
written from the paper or from TFA's semantics). Where TFA's behaviour is the
reference, the case also carries TFA's expected weights, with a note on what
TFA computed them from; they are checked within TFA's own tolerance.

Where kerasopt deliberately differs from TFA (Yogi's bias correction,
NovoGrad's first-step gradient averaging, sparse weight decay), the test says
so and checks what TFA's number is made of, so the docs' recipe is tested.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Callable

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
import references as ref
from conftest import assert_bit_identical, require_kernel_library

# --- the samples of TFA's tests ---------------------------------------------------------------

# run_dense_sample of TFA's RectifiedAdam / AdaBelief tests.
DENSE_WEIGHTS = ([1.0, 2.0], [3.0, 4.0])
DENSE_GRADS = ([0.1, 0.2], [0.03, 0.04])
# run_sparse_sample: one row of each variable has a gradient (0.1 and 0.04).
SPARSE_GRADS = (([0.1], [0]), ([0.04], [1]))
# Yogi's and LAMB's do_test_basic.
BASIC_GRADS = ([0.1, 0.1], [0.01, 0.01])
# NovoGrad's run_dense_sample / run_sparse_sample.
NOVOGRAD_GRADS = ([0.1, 0.2], [0.3, 0.4])
NOVOGRAD_SPARSE_GRADS = (([0.1], [0]), ([0.4], [1]))


def dense(grads):
    return [np.asarray(g, np.float64) for g in grads]


def densified(sparse, sizes=(2, 2)):
    """The dense gradients of IndexedSlices (values, indices)."""
    out = []
    for (values, indices), n in zip(sparse, sizes):
        g = np.zeros(n)
        g[indices] = values
        out.append(g)
    return out


def varying(grads, step):
    """Gradients that change with the step (so running maxima matter)."""
    scale = 1.0 + 0.8 * np.sin(1.7 * step) + (3.0 if step in (4, 5) else 0.0)
    return [np.asarray(g, np.float64) * scale * (-1.0 if step % 3 == 0 else 1.0) for g in grads]


# --- float64 references over several steps ---------------------------------------------------

def iterate(step, weights, slots, grads_at, steps):
    """Runs `step(w, g, slots, t) -> (w, slots)` per variable for t = 1..steps."""
    weights = [np.asarray(w, np.float64) for w in weights]
    for t in range(1, steps + 1):
        grads = grads_at(t)
        for i, g in enumerate(grads):
            weights[i], slots[i] = step(weights[i], np.asarray(g, np.float64), slots[i], t)
    return weights


def zeros_like(weights, count, value=0.0):
    return [[np.full(np.shape(w), value, np.float64) for _ in range(count)] for w in weights]


def radam_reference(weights, grads_at, steps, weight_decay=0.0, **hp):
    amsgrad = hp.get("amsgrad", False)

    def step(w, g, s, t):
        lr = hp["learning_rate"]
        w = w - lr * weight_decay * w  # Keras's decoupled decay, before the step (TFA: the same)
        out = ref.radam(w, g, *s, step=t, **hp)
        return out[0], list(out[1:])

    return iterate(step, weights, zeros_like(weights, 3 if amsgrad else 2), grads_at, steps)


def adabelief_reference(weights, grads_at, steps, weight_decay=0.0, **hp):
    def step(w, g, s, t):
        w = w - hp["learning_rate"] * weight_decay * w
        out = ref.adabelief(w, g, *s, step=t, **hp)
        return out[0], list(out[1:])

    return iterate(step, weights, zeros_like(weights, 2), grads_at, steps)


def lamb_reference(weights, grads_at, steps, learning_rate, weight_decay=0.0,
                   layer_adaptation=(True, True), **hp):
    """`learning_rate`: a number or a function of t."""
    rate = learning_rate if callable(learning_rate) else (lambda t: learning_rate)
    adapts = iter(layer_adaptation * steps)

    def step(w, g, s, t):
        w = w - rate(t) * weight_decay * w
        out = ref.lamb(w, s[0], s[1], g, learning_rate=rate(t), step=t,
                       layer_adaptation=next(adapts), **hp)
        return out[0], list(out[1:])

    return iterate(step, weights, zeros_like(weights, 2), grads_at, steps)


def yogi_reference(weights, grads_at, steps, learning_rate, initial_accumulator_value,
                   tfa_bias_correction=False, **hp):
    """kerasopt's Yogi; with tfa_bias_correction, TFA's: the learning rate of
    step t times sqrt(1 - beta_2^t) / (1 - beta_1^t) (its yogi_update_numpy)."""
    def step(w, g, s, t):
        lr = learning_rate
        if tfa_bias_correction:
            lr = lr * np.sqrt(1.0 - hp["beta_2"] ** t) / (1.0 - hp["beta_1"] ** t)
        out = ref.yogi(w, g, *s, learning_rate=lr, **hp)
        return out[0], list(out[1:])

    slots = [[np.zeros(np.shape(w)), np.full(np.shape(w), initial_accumulator_value)]
             for w in weights]
    return iterate(step, weights, slots, grads_at, steps)


def novograd_reference(weights, grads_at, steps, tfa_first_step=False, **hp):
    """kerasopt's NovoGrad; with tfa_first_step, TFA's: no (1 - beta_1) factor
    at the first step when grad_averaging (TFA skips it where iterations == 0)."""
    amsgrad = hp.get("amsgrad", False)

    def step(w, g, s, t):
        args = dict(hp)
        if tfa_first_step and t == 1:
            args["grad_averaging"] = False
        out = ref.novograd(w, g, *s, step=t, **args)
        return out[0], list(out[1:])

    slots = [[np.zeros(np.shape(w)), np.float64(0.0)] + ([np.float64(0.0)] if amsgrad else [])
             for w in weights]
    return iterate(step, weights, slots, grads_at, steps)


# --- the table --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[], keras.optimizers.Optimizer]
    weights: tuple
    steps: int
    grads_at: Callable[[int], list]  # dense gradients of step t (float64)
    reference: Callable[[], list]  # final weights, float64
    sparse: tuple | None = None  # IndexedSlices (values, indices) per variable, every step
    tfa: tuple | None = None  # TFA's expected final weights
    tfa_from: str = ""  # what TFA's number is computed from
    tfa_atol: float = 2e-4  # TFA's tolerance in these tests
    rtol: float = 2e-5  # float32 kernel vs float64 reference
    names: tuple = ("var0", "var1")


def _case(id, make, weights, steps, grads, reference, **kwargs):
    grads_at = grads if callable(grads) else (lambda t, g=grads: g)
    return Case(id=id, make=make, weights=weights, steps=steps, grads_at=grads_at,
                reference=lambda: reference(weights, grads_at, steps), **kwargs)


class TfaYogiBiasCorrection(keras.optimizers.schedules.LearningRateSchedule):
    """TFA's Yogi learning rate: lr sqrt(1 - beta_2^t) / (1 - beta_1^t), t = step + 1
    (docs/tensorflow-addons.md gives this recipe)."""

    def __init__(self, learning_rate, beta_1=0.9, beta_2=0.999):
        self.learning_rate, self.beta_1, self.beta_2 = learning_rate, beta_1, beta_2

    def __call__(self, step):
        t = tf.cast(step, tf.float32) + 1.0
        return (self.learning_rate * tf.sqrt(1.0 - self.beta_2 ** t)
                / (1.0 - self.beta_1 ** t))

    def get_config(self):
        return dict(learning_rate=self.learning_rate, beta_1=self.beta_1, beta_2=self.beta_2)


RADAM_TFA = "TFA's RectifiedAdam, sma_threshold=5 (its default), float32"
RADAM = dict(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, sma_threshold=5.0)

CASES = [
    # RectifiedAdam: test_dense_sample, _with_amsgrad, _with_weight_decay, _with_warmup, and
    # the sparse samples (TFA's sparse RAdam equals the dense step here: the rows without a
    # gradient keep m = 0, so they do not move; kerasopt densifies).
    _case("radam-dense", lambda: kerasopt.RAdam(learning_rate=1e-3, sma_threshold=5.0),
          DENSE_WEIGHTS, 100, dense(DENSE_GRADS),
          lambda w, g, n: radam_reference(w, g, n, **RADAM),
          tfa=([0.985769, 1.985269], [2.986119, 3.986068]), tfa_from=RADAM_TFA),
    _case("radam-amsgrad", lambda: kerasopt.RAdam(learning_rate=1e-3, sma_threshold=5.0,
                                                  amsgrad=True),
          DENSE_WEIGHTS, 100, dense(DENSE_GRADS),
          lambda w, g, n: radam_reference(w, g, n, amsgrad=True, **RADAM),
          tfa=([0.985769, 1.985269], [2.986119, 3.986068]),
          tfa_from=RADAM_TFA + " with amsgrad=True (no effect: the gradient is fixed)"),
    _case("radam-weight-decay", lambda: kerasopt.RAdam(learning_rate=1e-3, sma_threshold=5.0,
                                                       weight_decay=0.01),
          DENSE_WEIGHTS, 100, dense(DENSE_GRADS),
          lambda w, g, n: radam_reference(w, g, n, weight_decay=0.01, **RADAM),
          tfa=([0.984775, 1.983276], [2.983125, 3.982076]),
          tfa_from=RADAM_TFA + ", weight_decay=0.01 (TFA: lr * wd * w in the step, from the "
                   "old w: Keras's decoupled decay)"),
    _case("radam-warmup", lambda: kerasopt.RAdam(learning_rate=1e-3, sma_threshold=5.0,
                                                 total_steps=100, warmup_proportion=0.1,
                                                 min_lr=1e-5),
          DENSE_WEIGHTS, 100, dense(DENSE_GRADS),
          lambda w, g, n: radam_reference(w, g, n, total_steps=100, warmup_proportion=0.1,
                                          min_lr=1e-5, **RADAM),
          tfa=([0.994062, 1.993912], [2.994167, 3.994152]),
          tfa_from=RADAM_TFA + ", total_steps=100, warmup_proportion=0.1, min_lr=1e-5"),
    _case("radam-sparse", lambda: kerasopt.RAdam(learning_rate=1e-3, sma_threshold=5.0),
          DENSE_WEIGHTS, 200, densified(SPARSE_GRADS),
          lambda w, g, n: radam_reference(w, g, n, **RADAM), sparse=SPARSE_GRADS,
          tfa=([0.959333, 2.0], [3.0, 3.959632]), tfa_from=RADAM_TFA + ", sparse gradients"),
    _case("radam-sparse-warmup", lambda: kerasopt.RAdam(learning_rate=1e-3, sma_threshold=5.0,
                                                        total_steps=200, warmup_proportion=0.1,
                                                        min_lr=1e-5),
          DENSE_WEIGHTS, 200, densified(SPARSE_GRADS),
          lambda w, g, n: radam_reference(w, g, n, total_steps=200, warmup_proportion=0.1,
                                          min_lr=1e-5, **RADAM), sparse=SPARSE_GRADS,
          tfa=([0.982629, 2.0], [3.0, 3.982674]),
          tfa_from=RADAM_TFA + ", sparse, total_steps=200, warmup_proportion=0.1, min_lr=1e-5"),
    # amsgrad where it matters (TFA has no such test): gradients that grow, then shrink.
    _case("radam-amsgrad-varying", lambda: kerasopt.RAdam(learning_rate=1e-2, amsgrad=True,
                                                          sma_threshold=6.0, beta_2=0.99),
          DENSE_WEIGHTS, 30, lambda t: varying(DENSE_GRADS, t),
          lambda w, g, n: radam_reference(w, g, n, learning_rate=1e-2, beta_1=0.9, beta_2=0.99,
                                          epsilon=1e-7, sma_threshold=6.0, amsgrad=True)),

    # AdaBelief: TFA's samples with rectify=False, then rectify=True (TFA's default,
    # sma_threshold=5). TFA's epsilon default is 1e-14 (kerasopt's 1e-16): set.
    _case("adabelief-dense", lambda: kerasopt.AdaBelief(learning_rate=1e-3, epsilon=1e-14),
          DENSE_WEIGHTS, 100, dense(DENSE_GRADS),
          lambda w, g, n: adabelief_reference(w, g, n, learning_rate=1e-3, beta_1=0.9,
                                              beta_2=0.999, epsilon=1e-14),
          tfa=([0.66723955, 1.6672393], [2.6672382, 3.6672382]),
          tfa_from="TFA's AdaBelief, rectify=False, epsilon=1e-14, float32", rtol=1e-3),
    _case("adabelief-amsgrad", lambda: kerasopt.AdaBelief(learning_rate=1e-3, epsilon=1e-14,
                                                          amsgrad=True),
          DENSE_WEIGHTS, 100, dense(DENSE_GRADS),
          lambda w, g, n: adabelief_reference(w, g, n, learning_rate=1e-3, beta_1=0.9,
                                              beta_2=0.999, epsilon=1e-14, amsgrad=True),
          tfa=([0.67249274, 1.6724932], [2.6724923, 3.6724923]),
          tfa_from="TFA's AdaBelief, rectify=False, amsgrad=True (its separate maximum vhat; "
                   "kerasopt's in-place max of s agrees on this sample)", rtol=1e-3),
    _case("adabelief-weight-decay", lambda: kerasopt.AdaBelief(learning_rate=1e-3,
                                                               epsilon=1e-14, weight_decay=0.01),
          DENSE_WEIGHTS, 100, dense(DENSE_GRADS),
          lambda w, g, n: adabelief_reference(w, g, n, weight_decay=0.01, learning_rate=1e-3,
                                              beta_1=0.9, beta_2=0.999, epsilon=1e-14),
          tfa=([0.66637343, 1.6653734], [2.6643748, 3.6633751]),
          tfa_from="TFA's AdaBelief, rectify=False, weight_decay=0.01 (decoupled, as Keras's)",
          rtol=1e-3),
    _case("adabelief-rectify", lambda: kerasopt.AdaBelief(learning_rate=1e-3, epsilon=1e-14,
                                                          rectify=True, sma_threshold=5.0),
          DENSE_WEIGHTS, 200, densified(SPARSE_GRADS),
          lambda w, g, n: adabelief_reference(w, g, n, learning_rate=1e-3, beta_1=0.9,
                                              beta_2=0.999, epsilon=1e-14, rectify=True,
                                              sma_threshold=5.0),
          sparse=SPARSE_GRADS, tfa=([0.7836679, 2.0], [3.0, 3.7839665]),
          tfa_from="TFA's AdaBelief with its defaults (rectify=True, sma_threshold=5) on its "
                   "sparse sample, 200 steps (test_dense_sample_with_rectify)", rtol=1e-3),
    _case("adabelief-rectify-threshold", lambda: kerasopt.AdaBelief(
              learning_rate=1e-2, rectify=True, sma_threshold=7.0, beta_2=0.99, amsgrad=True),
          DENSE_WEIGHTS, 30, lambda t: varying(DENSE_GRADS, t),
          lambda w, g, n: adabelief_reference(w, g, n, learning_rate=1e-2, beta_1=0.9,
                                              beta_2=0.99, epsilon=1e-16, rectify=True,
                                              sma_threshold=7.0, amsgrad=True), rtol=1e-4),

    # LAMB: TFA's do_test_basic samples, 3 steps, epsilon=1e-6 (TFA's default); its
    # lamb_update_numpy is ref.lamb with weight_decay_rate (TFA's weight_decay / the older
    # weight_decay_rate: the paper's lambda, inside the trust ratio).
    _case("lamb-basic", lambda: kerasopt.Lamb(learning_rate=1e-3, epsilon=1e-6),
          DENSE_WEIGHTS, 3, dense(BASIC_GRADS),
          lambda w, g, n: lamb_reference(w, g, n, learning_rate=1e-3, beta_1=0.9, beta_2=0.999,
                                         epsilon=1e-6)),
    _case("lamb-decay-in-ratio-schedule", lambda: kerasopt.Lamb(
              learning_rate=keras.optimizers.schedules.InverseTimeDecay(1e-3, 1.0, 0.5),
              epsilon=1e-7, weight_decay_rate=0.01),
          DENSE_WEIGHTS, 3, dense(BASIC_GRADS),
          lambda w, g, n: lamb_reference(w, g, n, learning_rate=lambda t: 1e-3 / (1 + 0.5 * (t - 1)),
                                         beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                                         weight_decay_rate=0.01)),
    _case("lamb-sparse", lambda: kerasopt.Lamb(learning_rate=1e-3, epsilon=1e-6),
          ([1.0, 1.0, 2.0], [3.0, 3.0, 4.0]), 3,
          densified((([0.1, 0.1], [0, 2]), ([0.01, 0.01], [0, 2])), sizes=(3, 3)),
          lambda w, g, n: lamb_reference(w, g, n, learning_rate=1e-3, beta_1=0.9, beta_2=0.999,
                                         epsilon=1e-6),
          sparse=(([0.1, 0.1], [0, 2]), ([0.01, 0.01], [0, 2]))),
    # test_exclude_layer_adaptation, as numbers: var1 gets ratio 1; and both decays at once
    # (Keras's outside, the paper's inside).
    _case("lamb-exclude-layer-adaptation", lambda: kerasopt.Lamb(
              learning_rate=1e-2, weight_decay_rate=0.1, weight_decay=0.05,
              exclude_from_layer_adaptation=["var1"]),
          DENSE_WEIGHTS, 5, lambda t: varying(BASIC_GRADS, t),
          lambda w, g, n: lamb_reference(w, g, n, learning_rate=1e-2, weight_decay=0.05,
                                         layer_adaptation=(True, False), beta_1=0.9,
                                         beta_2=0.999, epsilon=1e-7, weight_decay_rate=0.1)),

    # Yogi: TFA's do_test_basic (initial_accumulator_value=1, 3 steps, beta1 0 or 0.9,
    # l1=0.1 / l2=0.2). TFA scales its learning rate by sqrt(1 - beta_2^t) / (1 - beta_1^t),
    # kerasopt does not (the paper's Algorithm 2): TfaYogiBiasCorrection gives TFA's rule.
    *[_case(f"yogi-basic-beta1-{beta_1}-l1-{l1}-l2-{l2}",
            lambda beta_1=beta_1, l1=l1, l2=l2: kerasopt.Yogi(
                learning_rate=TfaYogiBiasCorrection(0.01, beta_1), beta_1=beta_1,
                l1_regularization_strength=l1, l2_regularization_strength=l2,
                initial_accumulator_value=1.0),
            DENSE_WEIGHTS, 3, dense(BASIC_GRADS),
            lambda w, g, n, beta_1=beta_1, l1=l1, l2=l2: yogi_reference(
                w, g, n, learning_rate=0.01, initial_accumulator_value=1.0,
                tfa_bias_correction=True, beta_1=beta_1, beta_2=0.999, epsilon=1e-3, l1=l1,
                l2=l2))
      for beta_1 in (0.0, 0.9) for l1, l2 in ((0.0, 0.0), (0.1, 0.2))],
    _case("yogi-l2-only", lambda: kerasopt.Yogi(learning_rate=0.05,
                                                l2_regularization_strength=0.3),
          DENSE_WEIGHTS, 6, lambda t: varying(BASIC_GRADS, t),
          lambda w, g, n: yogi_reference(w, g, n, learning_rate=0.05,
                                         initial_accumulator_value=1e-6, beta_1=0.9,
                                         beta_2=0.999, epsilon=1e-3, l2=0.3)),
    # An l1 that sets some weights to 0 at the first step (|u| under the threshold
    # l1 lr_w: 1.2 and -0.02) and shrinks the others.
    _case("yogi-l1-zeroes", lambda: kerasopt.Yogi(learning_rate=0.5,
                                                  l1_regularization_strength=0.005),
          ([1.2, -2.0], [3.0, -0.02]), 3, dense(BASIC_GRADS),
          lambda w, g, n: yogi_reference(w, g, n, learning_rate=0.5,
                                         initial_accumulator_value=1e-6, beta_1=0.9,
                                         beta_2=0.999, epsilon=1e-3, l1=0.005)),
    _case("yogi-tanh", lambda: kerasopt.Yogi(learning_rate=0.05, activation="tanh",
                                             initial_accumulator_value=0.01),
          DENSE_WEIGHTS, 8, lambda t: varying(BASIC_GRADS, t),
          lambda w, g, n: yogi_reference(w, g, n, learning_rate=0.05,
                                         initial_accumulator_value=0.01, beta_1=0.9,
                                         beta_2=0.999, epsilon=1e-3, tanh_activation=True)),

    # NovoGrad: TFA's run_dense_sample (lr=0.1, epsilon=1e-8), and amsgrad (TFA has no test).
    _case("novograd-dense", lambda: kerasopt.NovoGrad(learning_rate=0.1, epsilon=1e-8),
          DENSE_WEIGHTS, 1, dense(NOVOGRAD_GRADS),
          lambda w, g, n: novograd_reference(w, g, n, learning_rate=0.1, beta_1=0.9,
                                             beta_2=0.999, epsilon=1e-8, weight_decay=0.0),
          tfa=([0.9552786425, 1.9105572849], [2.9400000012, 3.9200000016]),
          tfa_from="TFA's NovoGrad, lr=0.1, epsilon=1e-8, 1 step"),
    _case("novograd-weight-decay", lambda: kerasopt.NovoGrad(learning_rate=0.1, epsilon=1e-8,
                                                             weight_decay=0.1),
          DENSE_WEIGHTS, 1, dense(NOVOGRAD_GRADS),
          lambda w, g, n: novograd_reference(w, g, n, learning_rate=0.1, beta_1=0.9,
                                             beta_2=0.999, epsilon=1e-8, weight_decay=0.1),
          tfa=([0.945278642, 1.8905572849], [2.9100000012, 3.8800000016]),
          tfa_from="TFA's NovoGrad, weight_decay=0.1 (the paper's d, inside the momentum)"),
    _case("novograd-sparse", lambda: kerasopt.NovoGrad(learning_rate=0.1, epsilon=1e-8),
          DENSE_WEIGHTS, 2, densified(NOVOGRAD_SPARSE_GRADS),
          lambda w, g, n: novograd_reference(w, g, n, learning_rate=0.1, beta_1=0.9,
                                             beta_2=0.999, epsilon=1e-8, weight_decay=0.0),
          sparse=NOVOGRAD_SPARSE_GRADS, tfa=([0.71, 2.0], [3.0, 3.71]),
          tfa_from="TFA's NovoGrad, sparse sample, 2 steps", tfa_atol=1e-6),
    _case("novograd-amsgrad", lambda: kerasopt.NovoGrad(learning_rate=0.05, amsgrad=True,
                                                        beta_2=0.9, weight_decay=0.01),
          DENSE_WEIGHTS, 12, lambda t: varying(NOVOGRAD_GRADS, t),
          lambda w, g, n: novograd_reference(w, g, n, learning_rate=0.05, beta_1=0.9,
                                             beta_2=0.9, epsilon=1e-7, weight_decay=0.01,
                                             amsgrad=True)),
    _case("novograd-amsgrad-averaging", lambda: kerasopt.NovoGrad(
              learning_rate=0.05, amsgrad=True, grad_averaging=True, beta_2=0.5),
          DENSE_WEIGHTS, 12, lambda t: varying(NOVOGRAD_GRADS, t),
          lambda w, g, n: novograd_reference(w, g, n, learning_rate=0.05, beta_1=0.9,
                                             beta_2=0.5, epsilon=1e-7, weight_decay=0.0,
                                             grad_averaging=True, amsgrad=True)),
]


def run(case, implementation, steps=None):
    """The case's optimizer on float32 variables, `steps` traced steps; returns
    (weights, optimizer variables) as NumPy arrays."""
    with kerasopt.implementation(implementation):
        variables = [keras.Variable(np.asarray(w, np.float32), name=name)
                     for w, name in zip(case.weights, case.names)]
        optimizer = case.make()

        @tf.function
        def step(grads):
            optimizer.apply_gradients(zip(grads, variables))

        for t in range(1, (steps or case.steps) + 1):
            if case.sparse is not None:
                grads = [tf.IndexedSlices(tf.constant(values, tf.float32),
                                          tf.constant(indices, tf.int32),
                                          tf.constant([len(w)], tf.int32))
                         for (values, indices), w in zip(case.sparse, case.weights)]
            else:
                grads = [tf.constant(np.asarray(g, np.float32)) for g in case.grads_at(t)]
            step(grads)
        return ([np.array(v.numpy()) for v in variables],
                [np.array(v.numpy()) for v in optimizer.variables])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_kernel_and_fallback_give_the_same_bits(case):
    require_kernel_library()
    kernel_weights, kernel_state = run(case, "kernel")
    tf_weights, tf_state = run(case, "tf")
    for i, (a, b) in enumerate(zip(kernel_weights + kernel_state, tf_weights + tf_state,
                                   strict=True)):
        assert_bit_identical(a, b, f"{case.id}: array {i}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_float64_reference(case, impl):
    weights, _ = run(case, impl)
    for got, want in zip(weights, case.reference(), strict=True):
        np.testing.assert_allclose(got, want, rtol=case.rtol, atol=1e-7, err_msg=case.id)


TFA_CASES = [c for c in CASES if c.tfa is not None]


@pytest.mark.parametrize("case", TFA_CASES, ids=lambda c: c.id)
def test_tensorflow_addons_numbers(case):
    """TFA's expected weights (its tests' numbers; `tfa_from` says what they are)."""
    weights, _ = run(case, "kernel" if require_kernel_library() else "tf")
    for got, want in zip(weights, case.tfa, strict=True):
        np.testing.assert_allclose(got, want, atol=case.tfa_atol, err_msg=case.tfa_from)
    # ... and the float64 reference of kerasopt's rule gives them too.
    for got, want in zip(case.reference(), case.tfa, strict=True):
        np.testing.assert_allclose(got, want, atol=case.tfa_atol, err_msg=case.tfa_from)


# --- where kerasopt deliberately differs from TFA ----------------------------------------------

def test_yogi_keeps_the_papers_rule_and_a_schedule_gives_tfas():
    """TFA's Yogi multiplies the learning rate by sqrt(1 - beta_2^t) / (1 - beta_1^t)
    (Adam's bias correction); the paper's Algorithm 2, which kerasopt follows, does not."""
    case = next(c for c in CASES if c.id == "yogi-basic-beta1-0.9-l1-0.0-l2-0.0")
    plain = dataclasses.replace(case, make=lambda: kerasopt.Yogi(
        learning_rate=0.01, initial_accumulator_value=1.0))
    weights, _ = run(plain, "tf")
    papers = yogi_reference(case.weights, case.grads_at, 3, learning_rate=0.01,
                            initial_accumulator_value=1.0, beta_1=0.9, beta_2=0.999,
                            epsilon=1e-3)
    tfas = case.reference()  # TFA's yogi_update_numpy
    for start, got, want, theirs in zip(case.weights, weights, papers, tfas):
        np.testing.assert_allclose(got, want, rtol=2e-5)
        # The three steps' displacement is several times TFA's (its correction
        # sqrt(1 - beta_2^t) / (1 - beta_1^t) is 0.33, 0.24, 0.20 for t = 1, 2, 3).
        ratio = (got - np.asarray(start)) / (theirs - np.asarray(start))
        assert np.all(ratio > 3.0), ratio
    with_schedule, _ = run(case, "tf")
    for got, theirs in zip(with_schedule, tfas):
        np.testing.assert_allclose(got, theirs, rtol=2e-5)


def test_novograd_averages_the_first_gradient_too():
    """TFA's grad_averaging skips the (1 - beta_1) factor at the first step
    (iterations == 0); kerasopt applies it at every step, as NVIDIA's Apex and
    the paper's form m_t = beta_1 m + (1 - beta_1) u do."""
    tfa = ([0.9105572849, 1.8211145698], [2.8800000024, 3.8400000032])  # TFA's 2-step sample
    hp = dict(learning_rate=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=0.0,
              grad_averaging=True)
    case = _case("novograd-averaging", lambda: kerasopt.NovoGrad(
        learning_rate=0.1, epsilon=1e-8, grad_averaging=True), DENSE_WEIGHTS, 2,
        dense(NOVOGRAD_GRADS), lambda w, g, n: novograd_reference(w, g, n, **hp))
    theirs = novograd_reference(DENSE_WEIGHTS, case.grads_at, 2, tfa_first_step=True, **hp)
    for want, expected in zip(theirs, tfa):
        np.testing.assert_allclose(want, expected, atol=2e-4)  # TFA's number: its first-step rule
    weights, _ = run(case, "tf")
    for got, want, expected in zip(weights, case.reference(), tfa):
        np.testing.assert_allclose(got, want, rtol=2e-5)
        assert np.abs(got - np.asarray(expected)).max() > 1e-2


def test_novograd_decays_the_rows_a_sparse_gradient_does_not_name():
    """TFA's sparse NovoGrad decays only the named rows; kerasopt applies the
    dense update (the gradient densified), so every row decays, as it would
    with a dense gradient of zeros there."""
    tfa = ([0.6821, 2.0], [3.0, 3.5954])  # TFA's sparse sample with weight_decay=0.1
    hp = dict(learning_rate=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=0.1)
    case = _case("novograd-sparse-decay", lambda: kerasopt.NovoGrad(
        learning_rate=0.1, epsilon=1e-8, weight_decay=0.1), DENSE_WEIGHTS, 2,
        densified(NOVOGRAD_SPARSE_GRADS), lambda w, g, n: novograd_reference(w, g, n, **hp),
        sparse=NOVOGRAD_SPARSE_GRADS)
    weights, _ = run(case, "tf")
    for got, want in zip(weights, case.reference()):
        np.testing.assert_allclose(got, want, rtol=2e-5)
    np.testing.assert_allclose(weights[0][0], tfa[0][0], atol=1e-4)  # the named rows: TFA's
    np.testing.assert_allclose(weights[1][1], tfa[1][1], atol=1e-4)
    assert weights[0][1] < 2.0 and weights[1][0] < 3.0  # the others decay (TFA: unchanged)


# --- slots, config, validation --------------------------------------------------------------

def test_the_options_add_their_slots():
    variables = [keras.Variable(np.ones((3, 2), np.float32))]
    for make, count, scalar_slots in [(lambda: kerasopt.RAdam(), 2, 0),
                                      (lambda: kerasopt.RAdam(amsgrad=True), 3, 0),
                                      (lambda: kerasopt.NovoGrad(), 2, 1),
                                      (lambda: kerasopt.NovoGrad(amsgrad=True), 3, 2)]:
        optimizer = make()
        optimizer.build(variables)
        slots = optimizer.slots_for(variables[0])
        assert len(slots) == count
        assert [tuple(s.shape) for s in slots[count - scalar_slots:]] == [()] * scalar_slots


OPTIONS = [
    (kerasopt.RAdam, dict(amsgrad=True, sma_threshold=5.0, total_steps=1000,
                          warmup_proportion=0.2, min_lr=1e-5)),
    (kerasopt.AdaBelief, dict(rectify=True, sma_threshold=5.0)),
    (kerasopt.Lamb, dict(weight_decay_rate=0.01, exclude_from_layer_adaptation=["bias"])),
    (kerasopt.Yogi, dict(l1_regularization_strength=0.1, l2_regularization_strength=0.2,
                         initial_accumulator_value=0.5, activation="tanh")),
    (kerasopt.NovoGrad, dict(amsgrad=True)),
]


@pytest.mark.parametrize("cls, options", OPTIONS, ids=lambda x: getattr(x, "__name__", ""))
def test_config_round_trip(cls, options):
    config = cls(**options).get_config()
    for name, value in options.items():
        assert config[name] == value
    assert cls.from_config(config).get_config() == config


def test_lamb_keeps_keras_signature_and_default_config():
    """The options are keywords beyond Keras's signature; a default config is Keras's."""
    assert "weight_decay_rate" not in inspect.signature(kerasopt.Lamb.__init__).parameters
    assert set(kerasopt.Lamb().get_config()) == set(keras.optimizers.Lamb().get_config())


def test_lamb_weight_decay_rate_may_be_a_variable(impl):
    """Read at each step, as Keras reads its hyperparameters: the same bits as
    the float, and after assigning 0, those of no decay inside the ratio."""
    case = next(c for c in CASES if c.id == "lamb-exclude-layer-adaptation")
    rate = tf.Variable(0.1)

    def lamb(weight_decay_rate):
        return dataclasses.replace(case, make=lambda: kerasopt.Lamb(
            learning_rate=1e-2, weight_decay_rate=weight_decay_rate, weight_decay=0.05,
            exclude_from_layer_adaptation=["var1"]))

    for value in (0.1, 0.0):
        rate.assign(value)
        got, want = run(lamb(rate), impl, steps=3), run(lamb(value), impl, steps=3)
        for a, b in zip(got[0] + got[1], want[0] + want[1], strict=True):
            assert_bit_identical(a, b, f"weight_decay_rate={value}")


@pytest.mark.parametrize("make, words", [
    (lambda: kerasopt.RAdam(total_steps=-1), "`total_steps` must be an integer >= 0"),
    (lambda: kerasopt.RAdam(total_steps=10.5), "`total_steps` must be an integer >= 0"),
    (lambda: kerasopt.RAdam(total_steps=tf.Variable(10)), "`total_steps` must be a Python integer"),
    (lambda: kerasopt.RAdam(warmup_proportion=1.5), "`warmup_proportion` must be in [0, 1]"),
    (lambda: kerasopt.RAdam(min_lr=-1.0), "`min_lr` must be >= 0"),
    (lambda: kerasopt.RAdam(sma_threshold=float("nan")), "`sma_threshold` must be >= 0"),
    (lambda: kerasopt.AdaBelief(sma_threshold=-1.0), "`sma_threshold` must be >= 0"),
    (lambda: kerasopt.Lamb(weight_decay_rate=-0.1), "`weight_decay_rate` must be >= 0"),
    (lambda: kerasopt.Lamb(exclude_from_layer_adaptation="bias"),
     "`exclude_from_layer_adaptation` must be a list of strings"),
    (lambda: kerasopt.Yogi(l1_regularization_strength=-1.0),
     "`l1_regularization_strength` must be >= 0"),
    (lambda: kerasopt.Yogi(l2_regularization_strength=-1.0),
     "`l2_regularization_strength` must be >= 0"),
    (lambda: kerasopt.Yogi(activation="relu"), '`activation` must be "sign" or "tanh"'),
])
def test_bad_options_are_refused_with_their_name(make, words):
    with pytest.raises(ValueError) as error:
        make()
    assert words in str(error.value)


def test_the_binding_refuses_bad_option_values():
    """The declarations' checks (what the ops and the NumPy binding refuse)."""
    from kerasopt import _kernels

    w = np.ones(3, np.float32)
    z = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="sma_threshold must be >= 0"):
        _kernels.radam(w, w, z.copy(), z.copy(), learning_rate=0.1, beta_1=0.9, beta_2=0.999,
                       epsilon=1e-7, sma_threshold=-1.0, step=1)
    with pytest.raises(ValueError, match="l1 must be >= 0"):
        _kernels.yogi(w, w, z.copy(), z.copy(), learning_rate=0.1, beta_1=0.9, beta_2=0.999,
                      epsilon=1e-3, l1=-1.0)
    np.testing.assert_array_equal(w, 1.0)
