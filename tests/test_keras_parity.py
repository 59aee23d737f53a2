"""kerasopt.Adam / kerasopt.SGD against keras.optimizers.Adam / SGD.

Same random problem, 100 steps of ``apply_gradients`` in a ``tf.function``,
float32, on both kerasopt paths; every model variable and every optimizer
variable (iterations, slots, EMA copies, gradient accumulators) must agree with
Keras within rtol 1e-6. kerasopt computes in Keras's operation order, so they
are in fact bit-identical, which is checked separately.
"""

from __future__ import annotations

import copy
import functools
import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt

SHAPES = ((), (7,), (513,), (3, 5))
STEPS = 100
OPT_NAME = "parity_opt"

KERAS_CLASS = {kerasopt.Adam: keras.optimizers.Adam, kerasopt.SGD: keras.optimizers.SGD}

# name -> (kerasopt class, constructor arguments)
HYPERPARAMETERS = {
    "adam-defaults": (kerasopt.Adam, dict()),
    "adam-lr0.01": (kerasopt.Adam, dict(learning_rate=0.01)),
    "adam-betas": (kerasopt.Adam, dict(learning_rate=0.02, beta_1=0.5, beta_2=0.9, epsilon=1e-3)),
    "adam-beta1-0": (kerasopt.Adam, dict(learning_rate=0.05, beta_1=0.0, beta_2=0.99, epsilon=0.1)),
    "amsgrad": (kerasopt.Adam, dict(learning_rate=0.01, amsgrad=True)),
    "amsgrad-betas": (kerasopt.Adam, dict(learning_rate=0.02, beta_1=0.7, beta_2=0.8, amsgrad=True)),
    "sgd-defaults": (kerasopt.SGD, dict()),
    "sgd-lr0.1": (kerasopt.SGD, dict(learning_rate=0.1)),
    "momentum-0.9": (kerasopt.SGD, dict(learning_rate=0.02, momentum=0.9)),
    "momentum-0.5": (kerasopt.SGD, dict(learning_rate=0.1, momentum=0.5)),
    "nesterov-0.9": (kerasopt.SGD, dict(learning_rate=0.02, momentum=0.9, nesterov=True)),
    "nesterov-1.0": (kerasopt.SGD, dict(learning_rate=0.001, momentum=1.0, nesterov=True)),
}


def _schedule():
    return keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=10, decay_rate=0.7)


# Keras features that live in the Optimizer base class; kerasopt must keep them.
FEATURES = {
    "schedule": lambda: dict(learning_rate=_schedule()),
    "piecewise-schedule": lambda: dict(learning_rate=keras.optimizers.schedules.PiecewiseConstantDecay(
        [20, 60], [0.05, 0.01, 0.002])),
    "callable-lr": lambda: dict(learning_rate=lambda: 0.03),
    "weight_decay": lambda: dict(learning_rate=0.02, weight_decay=0.1),
    "clipnorm": lambda: dict(learning_rate=0.02, clipnorm=0.5),
    "clipvalue": lambda: dict(learning_rate=0.02, clipvalue=0.2),
    "global_clipnorm": lambda: dict(learning_rate=0.02, global_clipnorm=1.0),
    "use_ema": lambda: dict(learning_rate=0.02, use_ema=True),
    "use_ema-overwrite": lambda: dict(learning_rate=0.02, use_ema=True, ema_momentum=0.9,
                                      ema_overwrite_frequency=7),
    "loss_scale_factor": lambda: dict(learning_rate=0.02, loss_scale_factor=128.0),
    "gradient_accumulation": lambda: dict(learning_rate=0.02, gradient_accumulation_steps=3),
    "accumulation+schedule+decay": lambda: dict(learning_rate=_schedule(), weight_decay=0.05,
                                                gradient_accumulation_steps=4),
}
FEATURE_OPTIMIZERS = {"adam": (kerasopt.Adam, dict()),
                      "amsgrad": (kerasopt.Adam, dict(amsgrad=True)),
                      "nesterov": (kerasopt.SGD, dict(momentum=0.9, nesterov=True))}


def all_cases():
    cases = {name: (cls, lambda kw=kw: dict(kw)) for name, (cls, kw) in HYPERPARAMETERS.items()}
    for opt_name, (cls, base) in FEATURE_OPTIMIZERS.items():
        if opt_name == "amsgrad":
            features = ["schedule", "use_ema-overwrite", "gradient_accumulation"]
        else:
            features = list(FEATURES)
        for feature in features:
            cases[f"{opt_name}+{feature}"] = (
                cls, lambda base=base, feature=feature: dict(base, **FEATURES[feature]()))
    return cases


CASES = all_cases()


@functools.lru_cache(maxsize=None)
def problem(seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = []
    for _ in range(STEPS):
        scale = float(np.exp(rng.uniform(-2, 1)))
        grads.append([(scale * rng.standard_normal(s)).astype(np.float32) for s in SHAPES])
    return weights, grads


def train(optimizer):
    """100 steps of apply_gradients; returns {path: array} of every variable."""
    weights, grads = problem()
    variables = [keras.Variable(w, name=f"w{i}") for i, w in enumerate(weights)]

    @tf.function
    def step(gradients):
        optimizer.apply_gradients(zip(gradients, variables))

    for step_grads in grads:
        step([tf.constant(g) for g in step_grads])
    out = {f"model/{v.path}": v.numpy() for v in variables}
    for v in optimizer.variables:
        assert v.path not in out, f"duplicate optimizer variable path {v.path}"
        out[v.path] = v.numpy()
    return out


@functools.lru_cache(maxsize=None)
def run_keras(name):
    cls, kwargs = CASES[name]
    return train(KERAS_CLASS[cls](name=OPT_NAME, **kwargs()))


@functools.lru_cache(maxsize=None)
def run_kerasopt(name, path):
    cls, kwargs = CASES[name]
    with kerasopt.implementation(path):
        return train(cls(name=OPT_NAME, **kwargs()))


@pytest.mark.parametrize("name", list(CASES))
def test_matches_keras(name, impl):
    ours = run_kerasopt(name, impl)
    theirs = run_keras(name)
    assert list(ours) == list(theirs), "variables differ (names or order)"
    moved = [k for k in theirs if k.startswith("model/")]
    # The problem is not trivial: every non-empty weight moved.
    for k in moved:
        assert not np.array_equal(theirs[k], problem()[0][int(k.rsplit("w", 1)[1])]), k
    for k in theirs:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-6, atol=0, err_msg=f"{name}: {k}")


@pytest.mark.parametrize("name", list(CASES))
def test_bit_identical_to_keras(name):
    """Stronger than required: the same float32 operations in the same order."""
    theirs = run_keras(name)
    for path in ("kernel", "tf"):
        ours = run_kerasopt(name, path)
        for k in theirs:
            a, b = np.asarray(ours[k]), np.asarray(theirs[k])
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), (
                f"{name} [{path}] {k}: max |diff| {np.max(np.abs(a.astype(float) - b))}")


def make_step(opt, var):
    @tf.function
    def step(g):
        opt.apply_gradients([(g, var)])

    return step


@pytest.mark.parametrize("cls", [kerasopt.Adam, kerasopt.SGD])
def test_learning_rate_assigned_between_steps(cls, impl):
    """Callbacks like ReduceLROnPlateau assign optimizer.learning_rate between
    steps of an already traced function; the kernel must read the new value."""
    results = []
    for opt_cls in (cls, KERAS_CLASS[cls]):
        var = keras.Variable(np.linspace(-1, 1, 9).astype(np.float32))
        opt = opt_cls(learning_rate=0.1, name=OPT_NAME)
        step = make_step(opt, var)

        for i in range(20):
            if i == 10:
                opt.learning_rate = 0.001
            step(tf.constant(np.cos(np.arange(9) * (i + 1)).astype(np.float32)))
        results.append(var.numpy())
    np.testing.assert_array_equal(results[0], results[1])


def sparse_gradient(step, duplicates):
    rows = [step % 3, (step + 1) % 3] + ([step % 3] if duplicates else [])
    values = np.arange(2 * len(rows), dtype=np.float32).reshape(len(rows), 2) - step
    return tf.IndexedSlices(tf.constant(values), tf.constant(rows), tf.constant([5, 2]))


def run_sparse(opt, dense):
    var = keras.Variable(np.ones((5, 2), np.float32), name="table")
    for step in range(6):
        g = sparse_gradient(step, duplicates=True if dense is None else dense[1])
        if dense is not None and dense[0]:
            g = tf.convert_to_tensor(g)
        opt.apply_gradients([(g, var)])
    return var.numpy()


@pytest.mark.parametrize("cls,kwargs", [(kerasopt.Adam, dict(learning_rate=0.1)),
                                        (kerasopt.SGD, dict(learning_rate=0.1, momentum=0.9))])
def test_sparse_gradients(cls, kwargs, impl):
    """IndexedSlices gradients (Embedding layers) are densified: with distinct
    row indices the result is Keras's, bit for bit; with repeated indices it is
    the update by the summed (dense) gradient. (keras.optimizers.Adam differs
    there: its sparse m/v updates apply (g_i - m) * (1 - beta) once per
    repeated row.)"""
    for duplicates in (False, True):
        ours = run_sparse(cls(**kwargs), (False, duplicates))
        dense = run_sparse(cls(**kwargs), (True, duplicates))
        np.testing.assert_array_equal(ours, dense)
        if not duplicates:
            theirs = run_sparse(KERAS_CLASS[cls](**kwargs), (False, duplicates))
            np.testing.assert_array_equal(ours, theirs)
    assert not np.array_equal(ours, np.ones((5, 2)))


def test_features_change_the_result():
    """Each Keras feature visibly changes the optimizer's state, so the parity
    tests above would notice kerasopt dropping or misapplying it."""
    base = train(keras.optimizers.Adam(name=OPT_NAME, learning_rate=0.02))
    for feature in FEATURES:
        result = run_keras(f"adam+{feature}")
        same = list(result) == list(base) and all(
            np.array_equal(result[k], base[k]) for k in base)
        assert not same, feature


# --- constructor, config, slots -------------------------------------------------------


@pytest.mark.parametrize("cls", [kerasopt.Adam, kerasopt.SGD])
def test_signature_matches_keras(cls):
    ours = inspect.signature(cls.__init__)
    theirs = inspect.signature(KERAS_CLASS[cls].__init__)
    as_tuples = lambda sig: [(p.name, p.kind, p.default) for p in sig.parameters.values()]  # noqa: E731
    assert as_tuples(ours) == as_tuples(theirs)
    assert ours == theirs


CONFIG_KWARGS = [
    dict(),
    dict(learning_rate=0.02, weight_decay=0.01, clipnorm=1.0, use_ema=True, ema_momentum=0.9,
         ema_overwrite_frequency=5, loss_scale_factor=2.0, gradient_accumulation_steps=2),
    dict(clipvalue=0.5),
    dict(global_clipnorm=2.0),
]
CONFIG_EXTRA = {kerasopt.Adam: [dict(), dict(beta_1=0.8, beta_2=0.95, epsilon=1e-4, amsgrad=True)],
                kerasopt.SGD: [dict(), dict(momentum=0.9), dict(momentum=0.5, nesterov=True)]}


@pytest.mark.parametrize("cls", [kerasopt.Adam, kerasopt.SGD])
def test_config_matches_keras_and_round_trips(cls):
    for base in CONFIG_KWARGS:
        for extra in CONFIG_EXTRA[cls]:
            kwargs = dict(base, **extra, name="cfg")
            ours = cls(**kwargs)
            config = ours.get_config()
            assert config == KERAS_CLASS[cls](**kwargs).get_config()
            again = cls.from_config(copy.deepcopy(config))  # Keras edits it in place
            assert type(again) is cls
            assert again.get_config() == config
            for key, value in kwargs.items():
                if key != "learning_rate":
                    assert getattr(again, key) == value, key


@pytest.mark.parametrize("cls", [kerasopt.Adam, kerasopt.SGD])
def test_schedule_config_round_trips(cls):
    opt = cls(learning_rate=_schedule(), name="cfg")
    config = opt.get_config()
    assert config == KERAS_CLASS[cls](learning_rate=_schedule(), name="cfg").get_config()
    again = cls.from_config(copy.deepcopy(config))  # Keras edits it in place
    assert isinstance(again._learning_rate, keras.optimizers.schedules.ExponentialDecay)
    assert again.get_config() == config


@pytest.mark.parametrize("cls", [kerasopt.Adam, kerasopt.SGD])
def test_keras_serialize_round_trip(cls):
    opt = cls(learning_rate=0.02, name="ser")
    serialized = keras.optimizers.serialize(opt)
    # Keras's name: Keras alone reads it (kerasopt/optimizers/saved_name.py).
    assert serialized == keras.optimizers.serialize(KERAS_CLASS[cls](learning_rate=0.02,
                                                                     name="ser"))
    assert type(keras.optimizers.deserialize(serialized)) is KERAS_CLASS[cls]
    with kerasopt.patched():
        again = keras.optimizers.deserialize(serialized)
        assert type(again) is cls
        assert again.get_config() == opt.get_config()
        again = keras.optimizers.get(serialized)
        assert type(again) is cls


SLOT_ATTRIBUTES = {kerasopt.Adam: ["_momentums", "_velocities"], kerasopt.SGD: ["momentums"]}


@pytest.mark.parametrize("cls,kwargs", [
    (kerasopt.Adam, dict()), (kerasopt.Adam, dict(amsgrad=True)),
    (kerasopt.SGD, dict()), (kerasopt.SGD, dict(momentum=0.9)),
    (kerasopt.SGD, dict(momentum=0.9, nesterov=True)),
    (kerasopt.Adam, dict(use_ema=True, gradient_accumulation_steps=2)),
])
def test_slot_variables_match_keras(cls, kwargs):
    def build(opt_cls):
        layer = keras.layers.Dense(3, name="dense")
        layer.build((None, 4))
        extra = keras.Variable(np.zeros(()), name="scalar")
        opt = opt_cls(name="slots", **kwargs)
        opt.build(layer.trainable_variables + [extra])
        return opt

    ours, theirs = build(cls), build(KERAS_CLASS[cls])
    assert [v.path for v in ours.variables] == [v.path for v in theirs.variables]
    assert [v.name for v in ours.variables] == [v.name for v in theirs.variables]
    assert [(tuple(v.shape), v.dtype) for v in ours.variables] == [
        (tuple(v.shape), v.dtype) for v in theirs.variables]
    attributes = list(SLOT_ATTRIBUTES[cls])
    if kwargs.get("amsgrad"):
        attributes.append("_velocity_hats")
    for attribute in attributes:
        assert [v.path for v in getattr(ours, attribute)] == [
            v.path for v in getattr(theirs, attribute)], attribute
    if cls is kerasopt.SGD and not kwargs.get("momentum"):
        assert ours.momentums == [] and theirs.momentums == []
    assert any("momentum" in v.path for v in ours.variables) == any(
        "momentum" in v.path for v in theirs.variables)
