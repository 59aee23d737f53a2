"""kerasopt's optimizers that Keras also has are subclasses of Keras's classes.

``isinstance(kerasopt.Adam(), keras.optimizers.Adam)`` holds, while the update
is kerasopt's: no code of Keras's algorithm class runs (its ``__init__``,
``build``, ``update_step``, ``get_config``, Nadam's ``_backend_update_step``,
Muon's ``_apply_weight_decay`` ...). Optimizer variables and configs are
Keras's, so either class reads the other's state. Files across processes:
``tests/test_drop_in_files.py``; ``kerasopt.patch_keras()``:
``tests/test_patch_keras.py``.
"""

from __future__ import annotations

import copy
import inspect
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt.optimizers.fused import KERAS_BASE, FusedOptimizer, keras_counterpart
from kerasopt.patch import patchable_names

# Keras's optimizer classes that are not an update rule kerasopt could have.
KERAS_WRAPPERS = {"Optimizer", "LossScaleOptimizer", "MultiOptimizer", "OptimizerMap"}

PAIRS = [(getattr(kerasopt, name), getattr(keras.optimizers, name)) for name in patchable_names()]
IDS = [ours.__name__ for ours, _ in PAIRS]


def keras_optimizer_classes() -> set[str]:
    return {name for name, value in vars(keras.optimizers).items()
            if isinstance(value, type) and issubclass(value, KERAS_BASE)
            and name not in KERAS_WRAPPERS}


def test_every_optimizer_both_have_is_a_subclass():
    kerasopt_classes = {cls.__name__ for cls in
                        kerasopt.optimizers.ALL + kerasopt.optimizers.AWAITING_KERNELS}
    both = kerasopt_classes & keras_optimizer_classes()
    assert set(patchable_names()) == both, sorted(both ^ set(patchable_names()))
    # Keras 3.15.1: every one of its update rules.
    assert both == keras_optimizer_classes()
    for ours, theirs in PAIRS:
        assert issubclass(ours, theirs), ours
        assert keras_counterpart(ours) is theirs
        assert isinstance(ours(), theirs)
        # kerasopt's update path comes first.
        mro = ours.__mro__
        assert mro.index(FusedOptimizer) < mro.index(theirs), [c.__name__ for c in mro]


def test_classes_keras_lacks_have_no_counterpart():
    for cls in (kerasopt.AdaBelief, kerasopt.RAdam, kerasopt.Yogi, kerasopt.NovoGrad,
                kerasopt.Lars, kerasopt.Shampoo, kerasopt.FullMatrixAdagrad,
                kerasopt.ScheduleFreeSGD):
        assert keras_counterpart(cls) is None, cls
    assert isinstance(kerasopt.AdamW(), keras.optimizers.Adam)  # as Keras's AdamW is


def keras_algorithm_classes(cls):
    """The classes of Keras's in cls's MRO that are not Keras's base optimizer."""
    return [c for c in cls.__mro__
            if c.__module__.startswith("keras.") and issubclass(c, KERAS_BASE)
            and c not in KERAS_BASE.__mro__]


def small_model_variables():
    dense = keras.layers.Dense(3, name="dense")
    dense.build((None, 4))
    embedding = keras.layers.Embedding(6, 2, name="embedding")
    embedding.build((None,))
    return list(dense.trainable_variables) + list(embedding.trainable_variables)


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=IDS)
def test_no_code_of_keras_algorithm_class_runs(ours, theirs, monkeypatch):
    """Every function Keras's algorithm classes define is replaced by one that
    records its call; building, stepping (eagerly and traced, dense and
    sparse), get_config and from_config call none of them."""
    called = []

    def recording(owner, name, function):
        def record(*args, **kwargs):
            called.append(f"{owner.__name__}.{name}")
            return function(*args, **kwargs)
        return record

    for owner in keras_algorithm_classes(ours):
        for name, value in list(vars(owner).items()):
            if inspect.isfunction(value):
                monkeypatch.setattr(owner, name, recording(owner, name, value))
    assert keras_algorithm_classes(ours), ours

    variables = small_model_variables()
    optimizer = ours(learning_rate=0.01)
    rng = np.random.default_rng(0)
    def gradients():
        grads = [tf.constant(rng.standard_normal(v.shape), tf.float32) for v in variables]
        grads[-1] = tf.IndexedSlices(tf.ones((2, 2)), tf.constant([1, 4]),
                                     tf.constant([6, 2]))
        return grads
    optimizer.apply(gradients(), variables)
    step = tf.function(lambda grads: optimizer.apply(grads, variables))
    step(gradients())
    config = optimizer.get_config()
    again = ours.from_config(copy.deepcopy(config))
    again.build(variables)
    assert int(optimizer.iterations.numpy()) == 2
    assert called == [], called


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=IDS)
@pytest.mark.parametrize("options", [dict(), dict(use_ema=True, gradient_accumulation_steps=2)],
                         ids=["defaults", "ema-accumulation"])
def test_optimizer_variables_are_keras(ours, theirs, options):
    def build(cls):
        extra = keras.Variable(np.zeros(()), name="scalar")
        optimizer = cls(name="opt", **options)
        optimizer.build(small_model_variables() + [extra])
        return optimizer

    def described(optimizer):
        # An unnamed variable (Nadam's u_product) is numbered by a process-wide
        # counter, so its name depends on what was made before.
        return [(re.sub(r"^variable_\d+$", "variable", v.path.split("/")[-1]),
                 tuple(v.shape), v.dtype) for v in optimizer.variables]

    assert described(build(ours)) == described(build(theirs))


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=IDS)
def test_configs_are_keras_both_ways(ours, theirs):
    config = ours(name="opt").get_config()
    assert config == theirs(name="opt").get_config()
    # Keras's class takes kerasopt's default config and the other way round.
    assert type(theirs.from_config(copy.deepcopy(config))) is theirs
    assert theirs.from_config(copy.deepcopy(config)).get_config() == config
    keras_config = theirs(name="opt", learning_rate=0.05).get_config()
    back = ours.from_config(copy.deepcopy(keras_config))
    assert type(back) is ours
    assert back.get_config() == keras_config


KERASOPT_OPTIONS = [("lazy", True), ("nonfinite", "skip"), ("slot_dtype", "float32")]


@pytest.mark.parametrize("option,value", KERASOPT_OPTIONS)
def test_kerasopt_options_are_kerasopts_own(option, value):
    """In the config only when set; Keras's class refuses them, naming them."""
    opt = kerasopt.Adam(**{option: value})
    config = opt.get_config()
    assert config[option] == value
    assert option not in kerasopt.Adam().get_config()
    assert getattr(kerasopt.Adam.from_config(copy.deepcopy(config)), option) == value
    with pytest.raises(ValueError, match=option):
        keras.optimizers.Adam.from_config(copy.deepcopy(config))


def test_keras_serializes_kerasopt_under_its_own_name_only_with_its_options():
    """Keras's options only: Keras's name, so Keras alone reads the file
    (kerasopt/optimizers/saved_name.py); a kerasopt option: kerasopt's."""
    serialized = keras.optimizers.serialize(kerasopt.Adam())
    assert (serialized["module"], serialized["class_name"], serialized["registered_name"]) == \
        ("keras.optimizers", "Adam", None)
    serialized = keras.optimizers.serialize(kerasopt.Adam(lazy=True))
    assert serialized["registered_name"] == "kerasopt>Adam"
    assert serialized["module"] == "kerasopt.optimizers.adam"
    restored = keras.optimizers.deserialize(serialized)
    assert isinstance(restored, kerasopt.Adam) and restored.lazy


@pytest.mark.parametrize("identifier", ["kerasopt>Adam", "kerasopt>AdamW", "kerasopt>Yogi"])
def test_registered_names_resolve_without_patching(identifier):
    assert not kerasopt.keras_is_patched()
    want = getattr(kerasopt, identifier.split(">")[1])
    assert type(keras.optimizers.get(identifier)) is want
    config = {"class_name": identifier, "config": {"learning_rate": 0.5}}
    got = keras.optimizers.deserialize(config)
    assert type(got) is want and float(got.learning_rate) == 0.5
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=identifier, loss="mse")
    assert type(model.optimizer) is want
