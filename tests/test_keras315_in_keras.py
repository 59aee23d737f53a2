"""Adafactor, Muon and ScheduleFreeAdamW against Keras 3.15's own classes.

* numbers: 50 float32 steps of ``apply_gradients`` in a ``tf.function`` on
  scalars, vectors, matrices and a rank-3 variable; every model and
  optimizer variable equals Keras's within relative 1e-4 of its scale
  (ScheduleFreeAdamW: bit for bit; Adafactor and Muon sum their means, norms
  and matrix products in other orders than Keras's float32 ones);
* Keras's base-optimizer features (schedules, clipping, weight decay and its
  exclusions, EMA, gradient accumulation) on the same numbers;
* signature, config, slot variables and ``model.save`` files interchangeable
  with Keras's classes (a model saved with one loads into the other and
  trains on alike).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import math
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from conftest import require_kernel_library

SHAPES = ((), (7,), (513,), (3, 5), (40, 24), (24, 40), (2, 6, 5))
STEPS = 50
NAMES = ("Adafactor", "Muon", "ScheduleFreeAdamW")
BIT_IDENTICAL = {"ScheduleFreeAdamW"}


def _schedule():
    return keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=10, decay_rate=0.7)


# name -> (optimizer, constructor arguments); a callable for fresh schedules.
CASES = {
    "adafactor-defaults": ("Adafactor", dict()),
    "adafactor-lr": ("Adafactor", dict(learning_rate=0.05, beta_2_decay=-0.6, epsilon_1=1e-20,
                                       epsilon_2=1e-2, clip_threshold=0.5, relative_step=False)),
    "adafactor-schedule": ("Adafactor", lambda: dict(learning_rate=_schedule())),
    "adafactor-decay-clip": ("Adafactor", dict(learning_rate=0.05, weight_decay=0.1, clipnorm=0.5)),
    "adafactor-ema-accumulation": ("Adafactor", dict(learning_rate=0.05, use_ema=True,
                                                     gradient_accumulation_steps=3)),
    "muon-defaults": ("Muon", dict()),
    "muon-lr": ("Muon", dict(learning_rate=0.02, weight_decay=0.01, adam_weight_decay=0.05)),
    "muon-plain-momentum": ("Muon", dict(learning_rate=0.02, nesterov=False, momentum=0.8,
                                         adam_lr_ratio=0.5, ns_steps=3, rms_rate=None)),
    "muon-no-decay": ("Muon", dict(learning_rate=0.02, weight_decay=None,
                                   adam_weight_decay=None)),
    "muon-excluded": ("Muon", dict(learning_rate=0.02, exclude_layers=["w4"],
                                   adam_beta_1=0.8, adam_beta_2=0.95, epsilon=1e-5)),
    "muon-schedule-clip": ("Muon", lambda: dict(learning_rate=_schedule(), global_clipnorm=1.0)),
    "muon-ema-accumulation": ("Muon", dict(learning_rate=0.02, use_ema=True,
                                           gradient_accumulation_steps=2)),
    "sfadamw-defaults": ("ScheduleFreeAdamW", dict()),
    "sfadamw-warmup-decay": ("ScheduleFreeAdamW", dict(learning_rate=0.02, beta_1=0.8,
                                                       beta_2=0.95, epsilon=1e-6, warmup_steps=10,
                                                       weight_decay=0.1)),
    "sfadamw-schedule": ("ScheduleFreeAdamW", lambda: dict(learning_rate=_schedule())),
    "sfadamw-clip-ema": ("ScheduleFreeAdamW", dict(learning_rate=0.02, clipvalue=0.3,
                                                   use_ema=True, ema_momentum=0.9,
                                                   ema_overwrite_frequency=7)),
    "sfadamw-accumulation": ("ScheduleFreeAdamW", dict(learning_rate=0.02,
                                                       gradient_accumulation_steps=4)),
}


def _arguments(spec):
    return spec() if callable(spec) else dict(spec)


@functools.lru_cache(maxsize=None)
def problem(seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[(float(np.exp(rng.uniform(-2, 1))) * rng.standard_normal(s)).astype(np.float32)
              for s in SHAPES] for _ in range(STEPS)]
    return weights, grads


def train(optimizer, excluded=()):
    """50 steps; returns [(path, array)] of the model's then the optimizer's variables.

    A list, not a dict: Keras's Adafactor gives a variable's r and c the same path.
    The optimizer is built eagerly, as ``fit`` does (see test_schedule_free.py
    for what Keras does when it is built inside the step).
    """
    weights, grads = problem()
    variables = [keras.Variable(w, name=f"w{i}") for i, w in enumerate(weights)]
    optimizer.exclude_from_weight_decay(var_names=list(excluded))
    optimizer.build(variables)

    @tf.function
    def step(gradients):
        optimizer.apply_gradients(zip(gradients, variables))

    for step_grads in grads:
        step([tf.constant(g) for g in step_grads])
    return ([(f"model/{v.path}", v.numpy()) for v in variables]
            + [(v.path, np.asarray(v.numpy())) for v in optimizer.variables])


@functools.lru_cache(maxsize=None)
def run(case, implementation):
    """`implementation`: "keras" (Keras's class) or a kerasopt path."""
    name, spec = CASES[case]
    excluded = ("w1",) if "decay" in case else ()
    if implementation == "keras":
        return train(getattr(keras.optimizers, name)(name="opt", **_arguments(spec)), excluded)
    with kerasopt.implementation(implementation):
        return train(getattr(kerasopt, name)(name="opt", **_arguments(spec)), excluded)


def assert_close_to_keras(ours, theirs, what):
    """|ours - theirs| <= 1e-4 (|theirs| + max |theirs|) for every element."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, what
    if theirs.size == 0:
        return
    scale = np.max(np.abs(theirs))
    bad = ~(np.abs(ours - theirs) <= 1e-4 * (np.abs(theirs) + scale))
    assert not bad.any(), (f"{what}: {bad.sum()} of {bad.size} elements off, e.g. "
                           f"{ours[bad][:3]} vs Keras's {theirs[bad][:3]}")


def _has_fused_op(name):
    return getattr(kerasopt, name) in kerasopt.optimizers.ALL


@pytest.mark.parametrize("implementation", ["tf", "kernel"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_keras_over_50_steps(case, implementation):
    """The composed-TF path, and the fused op where one exists (the others
    are in kerasopt.optimizers.AWAITING_KERNELS)."""
    name = CASES[case][0]
    if implementation == "kernel":
        if not _has_fused_op(name):
            pytest.skip(f"{name} has no fused op yet (AWAITING_KERNELS)")
        require_kernel_library()
    theirs = run(case, "keras")
    ours = run(case, implementation)
    assert [p for p, _ in ours] == [p for p, _ in theirs], "variables differ (names or order)"
    initial = problem()[0]
    for i, w in enumerate(initial):  # the problem is not trivial: every weight moved
        assert not np.array_equal(theirs[i][1], w), theirs[i][0]
    for (path, a), (_, b) in zip(ours, theirs):
        assert a.dtype == b.dtype, path
        if name in BIT_IDENTICAL:
            np.testing.assert_array_equal(a, b, err_msg=f"{case}: {path}")
        else:
            assert_close_to_keras(a, b, f"{case}: {path}")


ONE_ELEMENT_SHAPES = ((), (1,), (1, 1), (2,), (7,))


@pytest.mark.parametrize("implementation", ["tf", "kernel"])
@pytest.mark.parametrize("weight_decay", [None, 0.1])
def test_schedule_free_one_element_variables_match_keras(weight_decay, implementation):
    """Grappler groups Keras's (1 - 1/t) * x_old three ways by the variable's
    shape (cc/kernels/schedule_free.h); variables of one element (shape (),
    (1,), (1, 1)) beside larger ones in one step, 30 steps, bit for bit. (This
    data showed a one-ulp difference for (1,) and (1, 1) while the one-element
    grouping was taken for the shape () one.) The step returns nothing: for
    one element of rank >= 1 Grappler's grouping also depends on the rest of
    the graph (a step returning apply_gradients's value changes Keras's own
    bits for the (1, 1) variable; docs/keras-3.15-optimizers.md)."""
    if implementation == "kernel":
        require_kernel_library()

    def train(optimizer):
        rng = np.random.default_rng(0)
        variables = [keras.Variable(rng.standard_normal(s).astype(np.float32), name=f"w{i}")
                     for i, s in enumerate(ONE_ELEMENT_SHAPES)]
        optimizer.build(variables)
        @tf.function
        def step(grads):
            optimizer.apply_gradients(zip(grads, variables))

        for _ in range(30):
            step([tf.constant(rng.standard_normal(s).astype(np.float32))
                  for s in ONE_ELEMENT_SHAPES])
        return [v.numpy() for v in variables + list(optimizer.variables)]

    arguments = dict(learning_rate=0.02, weight_decay=weight_decay, beta_1=0.8)
    theirs = train(keras.optimizers.ScheduleFreeAdamW(**arguments))
    with kerasopt.implementation(implementation):
        ours = train(kerasopt.ScheduleFreeAdamW(**arguments))
    for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"array {k}")


def test_features_change_the_result():
    """Each case differs from its optimizer's defaults, so a dropped feature shows."""
    defaults = {n: run(c, "keras") for c, (n, _) in CASES.items() if c.endswith("-defaults")}
    for case, (name, _) in CASES.items():
        if case.endswith("-defaults"):
            continue
        result = run(case, "keras")
        assert any(not np.array_equal(a, b) for (_, a), (_, b) in zip(result, defaults[name])
                   if a.shape == b.shape), case


# ------------------------------------------------------- signature, config, variables


@pytest.mark.parametrize("name", NAMES)
def test_signature_is_keras(name):
    ours = inspect.signature(getattr(kerasopt, name).__init__)
    theirs = inspect.signature(getattr(keras.optimizers, name).__init__)
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
        (p.name, p.kind, p.default) for p in theirs.parameters.values()]


CONFIG_CASES = ["adafactor-lr", "adafactor-decay-clip", "muon-plain-momentum", "muon-excluded",
                "muon-no-decay", "sfadamw-warmup-decay", "sfadamw-clip-ema", "sfadamw-schedule"]


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_config_matches_keras_and_round_trips(case):
    name, spec = CASES[case]
    ours = getattr(kerasopt, name)(name="cfg", **_arguments(spec))
    config = ours.get_config()
    assert config == getattr(keras.optimizers, name)(name="cfg", **_arguments(spec)).get_config()
    again = getattr(kerasopt, name).from_config(json.loads(json.dumps(
        keras.saving.serialize_keras_object(ours)))["config"])
    assert type(again) is type(ours) and again.get_config() == config
    with kerasopt.patched():  # saved under Keras's name
        restored = keras.optimizers.deserialize(keras.optimizers.serialize(ours))
    assert type(restored) is type(ours) and restored.get_config() == config


def _variables_of(optimizer_class, name, **kwargs):
    dense = keras.layers.Dense(3, name="dense")
    dense.build((None, 4))
    embedding = keras.layers.Embedding(10, 4, name="embedding")
    embedding.build((None,))
    extra = [keras.Variable(np.zeros(()), name="scalar"),
             keras.Variable(np.zeros((2, 3, 4)), name="cube")]
    optimizer = optimizer_class(name="slots", **kwargs)
    optimizer.build(dense.trainable_variables + embedding.trainable_variables + extra)
    return optimizer


@pytest.mark.parametrize("name,kwargs", [
    ("Adafactor", dict()), ("Adafactor", dict(use_ema=True, gradient_accumulation_steps=2)),
    ("Muon", dict()), ("Muon", dict(exclude_layers=["dense/kernel"], exclude_embeddings=False)),
    ("ScheduleFreeAdamW", dict()), ("ScheduleFreeAdamW", dict(use_ema=True)),
])
def test_optimizer_variables_are_keras(name, kwargs):
    ours = _variables_of(getattr(kerasopt, name), name, **kwargs)
    theirs = _variables_of(getattr(keras.optimizers, name), name, **kwargs)
    describe = lambda opt: [(v.path, v.name, tuple(v.shape), v.dtype)  # noqa: E731
                            for v in opt.variables]
    assert describe(ours) == describe(theirs)
    if name == "ScheduleFreeAdamW":  # z starts at the weights in both
        for opt in (ours, theirs):
            for variable, z in zip(opt._trainable_variables, opt._momentums):
                np.testing.assert_array_equal(z.numpy(), variable.numpy(), err_msg=z.path)


def test_muon_chooses_the_rule_as_keras():
    ours = _variables_of(kerasopt.Muon, "Muon", exclude_layers=["cube"])
    theirs = _variables_of(keras.optimizers.Muon, "Muon", exclude_layers=["cube"])
    for variable in ours._trainable_variables:
        assert ours._should_use_adamw(variable) == theirs._should_use_adamw(variable)
    uses_adamw = [v.path for v in ours._trainable_variables if ours._should_use_adamw(v)]
    assert uses_adamw == ["dense/bias", "embedding/embeddings", "scalar", "cube"]


# --------------------------------------------------- saved models, both directions


def _model():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, name="hidden"),
                             keras.layers.Dense(1, name="out")])


def _data():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((32, 6)).astype(np.float32)
    return x, (x @ rng.standard_normal((6, 1))).astype(np.float32)


def _swap_optimizer_class(path, target):
    """Rewrites the saved model's optimizer entry to `target`'s class (same config)."""
    with zipfile.ZipFile(path) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(files["config.json"])
    entry = config["compile_config"]["optimizer"]
    serialized = keras.saving.serialize_keras_object(target.from_config(dict(entry["config"])))
    entry.update(module=serialized["module"], class_name=serialized["class_name"],
                 registered_name=serialized["registered_name"])
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for n, data in files.items():
            archive.writestr(n, data)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("direction", ["kerasopt-to-keras", "keras-to-kerasopt"])
def test_saved_model_loads_into_the_other_class(name, direction, tmp_path):
    source, target = getattr(kerasopt, name), getattr(keras.optimizers, name)
    if direction == "keras-to-kerasopt":
        source, target = target, source
    x, y = _data()
    kwargs = dict(learning_rate=0.01) if name != "Muon" else dict(learning_rate=0.01,
                                                                  exclude_layers=["out"])
    model = _model()
    model.compile(optimizer=source(**kwargs), loss="mse")
    with kerasopt.implementation("tf"):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    _swap_optimizer_class(path, target)
    # kerasopt's class with Keras's options is saved under Keras's name
    # (kerasopt/optimizers/saved_name.py): it loads as kerasopt's when patched.
    with kerasopt.patched() if direction == "keras-to-kerasopt" else contextlib.nullcontext():
        loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is target
    assert int(loaded.optimizer.iterations.numpy()) == 8
    assert [tuple(v.shape) for v in loaded.optimizer.variables] == [
        tuple(v.shape) for v in model.optimizer.variables]
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # Both train on alike (Keras's and kerasopt's numbers agree).
    with kerasopt.implementation("tf"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        loaded.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert_close_to_keras(a, b, f"{name} weights after loading")


# ------------------------------------------------------------------ bad arguments

BAD = [
    ("Adafactor", dict(learning_rate=-1.0)), ("Adafactor", dict(beta_2_decay=0.5)),
    ("Adafactor", dict(epsilon_1=-1.0)), ("Adafactor", dict(epsilon_2=math.nan)),
    ("Adafactor", dict(clip_threshold=0.0)), ("Adafactor", dict(clip_threshold=-1.0)),
    ("Muon", dict(learning_rate=-1.0)), ("Muon", dict(adam_beta_1=1.0)),
    ("Muon", dict(adam_beta_2=-0.1)), ("Muon", dict(epsilon=-1.0)),
    ("Muon", dict(weight_decay=-0.1)), ("Muon", dict(adam_weight_decay=-0.1)),
    ("Muon", dict(momentum=1.5)), ("Muon", dict(ns_steps=-1)), ("Muon", dict(ns_steps=2.5)),
    ("Muon", dict(rms_rate=-0.2)), ("Muon", dict(adam_lr_ratio=-1)),
    ("Muon", dict(exclude_layers="dense")), ("Muon", dict(exclude_layers=["("])),
    ("Muon", dict(muon_a="x")),
    ("ScheduleFreeAdamW", dict(learning_rate=-1.0)), ("ScheduleFreeAdamW", dict(beta_1=0.0)),
    ("ScheduleFreeAdamW", dict(beta_1=1.5)), ("ScheduleFreeAdamW", dict(beta_2=1.0)),
    ("ScheduleFreeAdamW", dict(epsilon=-1.0)), ("ScheduleFreeAdamW", dict(warmup_steps=-1)),
    ("ScheduleFreeAdamW", dict(warmup_steps=2.5)), ("ScheduleFreeAdamW", dict(interpolate=1)),
    ("ScheduleFreeSGD", dict(beta_1=0.0)), ("ScheduleFreeSGD", dict(warmup_steps=True)),
]


@pytest.mark.parametrize("name,kwargs", BAD, ids=[f"{n}-{list(k)[0]}" for n, k in BAD])
def test_bad_arguments_raise(name, kwargs):
    with pytest.raises(ValueError, match=f"`{list(kwargs)[0]}`"):
        getattr(kerasopt, name)(**kwargs)


def test_edge_arguments_accepted():
    kerasopt.Adafactor(beta_2_decay=0.0, epsilon_1=0.0, epsilon_2=0.0)
    kerasopt.Muon(momentum=0.0, ns_steps=0, rms_rate=None, weight_decay=None)
    kerasopt.ScheduleFreeAdamW(beta_1=1.0, beta_2=0.0, epsilon=0.0, warmup_steps=0)
    kerasopt.ScheduleFreeSGD(beta_1=1.0, warmup_steps=5)
