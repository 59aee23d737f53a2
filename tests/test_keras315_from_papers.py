"""Adafactor, Muon, ScheduleFreeAdamW and ScheduleFreeSGD against the float64
references written from the papers (tests/keras315_references.py).

Each comparison is ONE step from the state the optimizer holds before it
(widened to float64), repeated over many steps, so errors cannot accumulate:
for every stored quantity (weight and slots) with new value `ref` and old
value `old`,

    |got - ref| <= 2 eps_s |ref| + K eps_c (|ref| + |ref - old|) + tiny_s

eps_s, eps_c: the storage and compute dtypes' epsilons (float32 computes
16-bit and float32 storage, float64 computes float64); K = 32 covers the
dozen roundings of a step; Adafactor's normalizations by RMS(u) and the
means spread a relative error of a few eps_c over the whole update, which
|ref - old| covers. Muon's quintic iteration amplifies rounding (its slope
at 0 is a = 3.4, five times): its weight gets K = 4096 against the update's
largest element, still 1e-7 of the update's scale in float64 and a few 1e-4
in float32.
"""

from __future__ import annotations

import zlib

import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
import keras315_references as ref  # tests/ is on sys.path
from conftest import require_kernel_library

NP_DTYPE = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16,
            "float32": np.float32, "float64": np.float64}
SHAPES = [(), (0,), (7,), (1100,), (3, 5), (40, 24), (24, 40), (2, 6, 5)]
STEPS = 12


def eps(dtype):
    return float(ml_dtypes.finfo(NP_DTYPE[dtype]).eps)


def compute_eps(dtype):
    return eps("float64") if dtype == "float64" else eps("float32")


def tiny(dtype):
    return float(ml_dtypes.finfo(NP_DTYPE[dtype]).smallest_subnormal)


def assert_step_close(got, want, old, dtype, what, k=32, scale=None):
    got, want, old = (np.asarray(a, np.float64) for a in (got, want, old))
    assert got.shape == want.shape, what
    if scale is None:
        scale = np.abs(want) + np.abs(want - old)
    tol = 2 * eps(dtype) * np.abs(want) + k * compute_eps(dtype) * scale + tiny(dtype)
    bad = ~(np.abs(got - want) <= tol)
    assert not bad.any(), (f"{what} ({dtype}): {bad.sum()} of {bad.size} off, e.g. got "
                           f"{got[bad][:3]} want {want[bad][:3]}")


def stepwise(optimizer, shapes, dtype, seed, implementation="tf"):
    """Runs STEPS steps one traced call at a time; yields (t, g, before, after)
    with before/after = [[weight, *slots] per variable] as float64 arrays.
    `implementation`: the composed-TF path, or "kernel" (the fused op)."""
    rng = np.random.default_rng(seed)
    variables = [keras.Variable(rng.standard_normal(s).astype(NP_DTYPE[dtype]), name=f"w{i}",
                                dtype=dtype) for i, s in enumerate(shapes)]
    optimizer.build(variables)

    def snapshot():
        return [[np.asarray(v.numpy(), np.float64)]
                + [np.asarray(s.numpy(), np.float64) for s in optimizer.slots_for(v)]
                for v in variables]

    @tf.function
    def step(gradients):
        optimizer.apply_gradients(zip(gradients, variables))

    for t in range(1, STEPS + 1):
        scale = float(np.exp(rng.uniform(-2, 1)))
        grads = [(scale * rng.standard_normal(s)).astype(NP_DTYPE[dtype]) for s in shapes]
        before = snapshot()
        with kerasopt.implementation(implementation):
            step([tf.constant(g) for g in grads])
        yield t, [np.asarray(g, np.float64) for g in grads], before, snapshot()


def _seed(*parts):
    return zlib.crc32(repr(parts).encode())


def f32(learning_rate):
    """The learning rate the optimizer holds: Keras keeps it in a float32 variable."""
    return float(np.float32(learning_rate))


# ------------------------------------------------------------------ Adafactor

ADAFACTOR_HP = [dict(learning_rate=0.05, beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3,
                     clip_threshold=1.0),
                dict(learning_rate=0.3, beta_2_decay=-0.5, epsilon_1=1e-10, epsilon_2=1e-2,
                     clip_threshold=0.5)]


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("hp", range(len(ADAFACTOR_HP)))
def test_adafactor_matches_the_paper_step_by_step(hp, dtype):
    hp = ADAFACTOR_HP[hp]
    optimizer = kerasopt.Adafactor(**hp)
    clipped = 0
    for t, grads, before, after in stepwise(optimizer, SHAPES, dtype, _seed("ada", hp, dtype)):
        for shape, g, old, new in zip(SHAPES, grads, before, after):
            w = old[0]
            state = ({"R": old[1] * shape[-1], "C": old[2] * shape[-2], "V": old[3]}
                     if len(shape) >= 2 else {"V": old[1]})
            want_w, want = ref.adafactor(w, g, state, step=t,
                                         **dict(hp, learning_rate=f32(hp["learning_rate"])))
            r, c, v = ref.adafactor_keras_slots(w, want)
            wants = [want_w] + ([r, c, v] if len(shape) >= 2 else [v])
            names = ["w"] + (["r", "c", "v"] if len(shape) >= 2 else ["v"])
            for got, expected, previous, name in zip(new, wants, old, names):
                assert_step_close(got, expected, previous, dtype,
                                  f"Adafactor {shape} step {t} {name}")
            u = g / np.sqrt(want["V"]) if g.size else g
            clipped += bool(g.size) and ref.rms(u) > hp["clip_threshold"]
    assert clipped, "the update clipping never acted"


# ------------------------------------------------------------------ Muon

MUON_HP = [dict(learning_rate=0.02, weight_decay=0.01, adam_weight_decay=0.05, momentum=0.95,
                nesterov=True, ns_steps=5, rms_rate=0.2, adam_lr_ratio=0.5, adam_beta_2=0.95),
           dict(learning_rate=0.05, weight_decay=None, adam_weight_decay=None, momentum=0.8,
                nesterov=False, ns_steps=3, rms_rate=None, adam_lr_ratio=1.0, adam_beta_2=0.95)]
# (beta_2 = 0.95, not Keras's 0.999: 1 - beta_2^t cancels, and 0.999 rounded to
# float32 is off by 1.3e-8, which the float32 bias correction then carries as a
# relative 1.3e-5; that is Keras's arithmetic, not a rounding of this step.)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hp", range(len(MUON_HP)))
def test_muon_matches_the_paper_step_by_step(hp, dtype):
    hp = MUON_HP[hp]
    optimizer = kerasopt.Muon(**hp)
    wd = hp["weight_decay"] or 0.0
    adam_wd = hp["adam_weight_decay"] or 0.0
    for t, grads, before, after in stepwise(optimizer, SHAPES, dtype, _seed("muon", hp, dtype)):
        for shape, g, old, new in zip(SHAPES, grads, before, after):
            if len(shape) == 2:
                want_w, want_m = ref.muon(old[0], g, old[1], learning_rate=f32(hp["learning_rate"]),
                                          momentum=hp["momentum"], nesterov=hp["nesterov"],
                                          ns_steps=hp["ns_steps"], weight_decay=wd,
                                          rms_rate=hp["rms_rate"])
                update = np.max(np.abs(want_w - old[0] * (1 - hp["learning_rate"] * wd)))
                assert_step_close(new[0], want_w, old[0], dtype, f"Muon {shape} step {t} w",
                                  k=4096, scale=update + np.abs(want_w) / 128)
                assert_step_close(new[1], want_m, old[1], dtype, f"Muon {shape} step {t} m")
            else:
                wants = ref.muon_adamw(old[0], g, old[1], old[2],
                                       learning_rate=f32(hp["learning_rate"]),
                                       adam_lr_ratio=hp["adam_lr_ratio"],
                                       adam_weight_decay=adam_wd, beta_1=0.9, beta_2=0.95,
                                       epsilon=1e-7, step=t)
                for got, want, previous, name in zip(new, wants, old, "wmv"):
                    assert_step_close(got, want, previous, dtype,
                                      f"Muon-AdamW {shape} step {t} {name}")


def test_newton_schulz_orthogonalizes():
    """The iteration drives the singular values into about [0.7, 1.2] (Jordan
    et al.: the quintic trades exactness for speed) and keeps the singular
    vectors: the fallback and the reference agree with U V^T of the SVD."""
    rng = np.random.default_rng(0)
    d = rng.standard_normal((24, 40))
    x = ref.newton_schulz5(d, steps=5, a=3.4445, b=-4.7750, c=2.0315)
    singular = np.linalg.svd(x, compute_uv=False)
    assert singular.min() > 0.6 and singular.max() < 1.25, singular
    u, _, vt = np.linalg.svd(d, full_matrices=False)
    cosine = np.sum(x * (u @ vt)) / (np.linalg.norm(x) * np.linalg.norm(u @ vt))
    assert cosine > 0.98
    ours = kerasopt.Muon().zeropower_via_newtonschulz5(tf.constant(d, tf.float64), 5)
    np.testing.assert_allclose(ours.numpy(), x, rtol=1e-10, atol=1e-12)
    tall = kerasopt.Muon().zeropower_via_newtonschulz5(tf.constant(d.T, tf.float64), 5)
    np.testing.assert_allclose(tall.numpy(), x.T, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ Schedule-Free

SF_HP = [dict(learning_rate=0.05, beta_1=0.9, warmup_steps=0, weight_decay=None),
         dict(learning_rate=0.1, beta_1=0.7, warmup_steps=5, weight_decay=0.05)]


@pytest.mark.parametrize("implementation", ["tf", "kernel"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("interpolate", [False, True])
@pytest.mark.parametrize("name", ["ScheduleFreeAdamW", "ScheduleFreeSGD"])
@pytest.mark.parametrize("hp", range(len(SF_HP)))
def test_schedule_free_matches_the_paper_step_by_step(hp, name, interpolate, dtype,
                                                      implementation):
    if implementation == "kernel":
        require_kernel_library()
    hp = SF_HP[hp]
    adam = name == "ScheduleFreeAdamW"
    extra = dict(beta_2=0.95, epsilon=1e-6) if adam else {}
    optimizer = getattr(kerasopt, name)(interpolate=interpolate, **hp, **extra)
    for t, grads, before, after in stepwise(optimizer, SHAPES, dtype,
                                            _seed("sf", hp, name, interpolate, dtype),
                                            implementation):
        for shape, g, old, new in zip(SHAPES, grads, before, after):
            y, z = old[0], old[1]
            x = ref.schedule_free_x(y, z, hp["beta_1"]) if interpolate else y
            v = old[2] if adam else None
            want_x, want_z, want_v, want_y = ref.schedule_free(
                x, z, v, g, learning_rate=f32(hp["learning_rate"]), beta_1=hp["beta_1"], step=t,
                warmup_steps=hp["warmup_steps"], weight_decay=hp["weight_decay"] or 0.0,
                adam=adam, interpolate=interpolate, **extra)
            wants = [want_y, want_z] + ([want_v] if adam else [])
            # y is formed from z and x, which are recovered from y by a division
            # by beta_1: their roundings reach it multiplied by 1 / beta_1.
            scale = (np.abs(want_y) + np.abs(want_y - y) + np.abs(want_z) + np.abs(x)) / \
                hp["beta_1"]
            assert_step_close(new[0], want_y, y, dtype, f"{name} {shape} step {t} y",
                              scale=scale)
            for got, want, previous, what in zip(new[1:], wants[1:], old[1:], ["z", "v"]):
                assert_step_close(got, want, previous, dtype, f"{name} {shape} step {t} {what}")


def test_keras_rule_is_primal_averaging():
    """With interpolate=False (Keras 3.15.1's rule) the weight after step t is
    the mean of z_2..z_{t+1}... i.e. the running average of the z's, whatever
    beta_1 is; with interpolate=True it is not."""
    results = {}
    for interpolate in (False, True):
        for beta_1 in (0.5, 0.9):
            optimizer = kerasopt.ScheduleFreeSGD(learning_rate=0.1, beta_1=beta_1,
                                                 interpolate=interpolate)
            zs, ys = [], []
            for _, _, _, after in stepwise(optimizer, [(5,)], "float64", 7):
                ys.append(after[0][0])
                zs.append(after[0][1])
            results[interpolate, beta_1] = ys
            if not interpolate:
                for t, y in enumerate(ys, start=1):
                    np.testing.assert_allclose(y, np.mean(zs[:t], axis=0), rtol=1e-12)
    np.testing.assert_allclose(results[False, 0.5], results[False, 0.9], rtol=1e-12)
    assert not np.allclose(results[True, 0.5], results[True, 0.9])
