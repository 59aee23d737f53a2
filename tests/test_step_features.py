"""Keras's clipping, weight decay and EMA inside the fused update (issue 19).

For the element-wise optimizers, ``clipnorm``, ``clipvalue``,
``global_clipnorm``, ``weight_decay`` (minus ``exclude_from_weight_decay``),
``use_ema`` and ``ema_overwrite_frequency`` run inside the dense and
multi-tensor ops (kerasopt/optimizers/step_features.py). Table-driven over the
optimizers and the features: the fused step equals Keras's own passes around
the same kernel bit for bit, equals Keras's optimizer where Keras has one, the
kernel equals the fallback, no separate decay or EMA pass is left in the
step's graph, and a checkpoint written with the features loads into Keras's
optimizer and back.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from conftest import graph_op_types, require_kernel_library
from kerasopt.optimizers import step_features

# The classes whose update fuses the features, with a small config each
# (and Keras's class of the same name, where Keras has one).
FUSING = {
    "Adam": dict(learning_rate=0.02),
    "AdamW": dict(learning_rate=0.02),
    "SGD": dict(learning_rate=0.05, momentum=0.9),
    "RMSprop": dict(learning_rate=0.01, momentum=0.5),
    "Adagrad": dict(learning_rate=0.05),
    "Adadelta": dict(learning_rate=0.5),
    "Adamax": dict(learning_rate=0.02),
    "Nadam": dict(learning_rate=0.02),
    "Lion": dict(learning_rate=0.002),
    "Ftrl": dict(learning_rate=0.05),
    # With TensorFlow Addons' options (rule inputs, and RAdam's amsgrad slot
    # before the EMA average): no extra cases.
    "AdaBelief": dict(learning_rate=0.02, rectify=True, sma_threshold=5.0),
    "RAdam": dict(learning_rate=0.02, amsgrad=True, total_steps=8, warmup_proportion=0.25),
    "Yogi": dict(learning_rate=0.02, l1_regularization_strength=0.001, activation="tanh"),
    "ScheduleFreeAdamW": dict(learning_rate=0.02),
    "ScheduleFreeSGD": dict(learning_rate=0.05),
}

FEATURES = {
    "global_clipnorm": dict(global_clipnorm=1.0),
    "clipnorm": dict(clipnorm=0.5),
    "clipvalue": dict(clipvalue=0.05),
    "weight_decay": dict(weight_decay=0.1),
    "use_ema": dict(use_ema=True, ema_momentum=0.9),
    "ema_overwrite": dict(use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=2),
    # The benchmark's config, with a variable excluded from the decay.
    "all": dict(global_clipnorm=1.0, weight_decay=0.1, use_ema=True, ema_momentum=0.9,
                ema_overwrite_frequency=3),
}

# Every feature on Adam and SGD; the combined config on every fusing class.
CASES = ([("Adam", f) for f in FEATURES] + [("SGD", f) for f in FEATURES if f != "all"]
         + [(name, "all") for name in FUSING if name != "Adam"])
CASE_IDS = [f"{n}-{f}" for n, f in CASES]

# A one-element variable (the decay rounds it differently), a bias (excluded
# from the decay by name), and two matrices.
SHAPES = {"scale": (1,), "bias": (7,), "kernel": (33, 5), "embedding": (11, 4)}
STEPS = 4


def problem():
    rng = np.random.default_rng(19)
    weights = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
    grads = [{k: (3.0 * rng.standard_normal(s)).astype(np.float32) for k, s in SHAPES.items()}
             for _ in range(STEPS)]
    return weights, grads


@contextmanager
def step_features_off():
    saved = os.environ.get("KERASOPT_STEP_FEATURES")
    os.environ["KERASOPT_STEP_FEATURES"] = "0"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["KERASOPT_STEP_FEATURES"]
        else:
            os.environ["KERASOPT_STEP_FEATURES"] = saved


def make(cls, name, feature):
    kwargs = dict(FUSING[name], **FEATURES[feature])
    if cls is keras.optimizers.AdamW or (cls is kerasopt.AdamW):
        kwargs.setdefault("weight_decay", 0.004)
    optimizer = cls(name="opt", **kwargs)
    if optimizer.weight_decay is not None:
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    return optimizer


def train(optimizer, steps=STEPS, sparse=False):
    """Returns ({path: value} of every variable, the traced step)."""
    weights, grads = problem()
    variables = [keras.Variable(w, name=k) for k, w in weights.items()]
    if "ScheduleFree" in type(optimizer).__name__:
        # Built eagerly: Keras's z = w assign, traced into a step, makes z
        # start at 0 (docs/keras-3.15-optimizers.md); kerasopt's is eager.
        optimizer.build(variables)

    @tf.function
    def step(gradients):
        if sparse:  # the embedding's gradient as rows, one of them twice
            dense = gradients[-1]
            gradients = list(gradients[:-1]) + [tf.IndexedSlices(
                tf.gather(dense, [0, 3, 3, 7]), tf.constant([0, 3, 3, 7]),
                tf.constant(SHAPES["embedding"]))]
        optimizer.apply_gradients(zip(gradients, variables))

    for g in grads[:steps]:
        step([tf.constant(g[k]) for k in SHAPES])
    out = {f"model/{v.path}": v.numpy() for v in variables}
    out.update({v.path: v.numpy() for v in optimizer.variables})
    return out, step


def keras_class(name):
    return getattr(keras.optimizers, name, None)


def _unnumbered(path):
    # Keras numbers unnamed variables per process (Nadam's u_product:
    # opt/variable, opt/variable_1, ...).
    return re.sub(r"_\d+$", "", path)


def assert_same_variables(ours, theirs, what):
    assert [_unnumbered(k) for k in ours] == [_unnumbered(k) for k in theirs], what


def assert_bits(ours, theirs, what):
    assert_same_variables(ours, theirs, what)
    for (k, a), b in zip(ours.items(), theirs.values()):
        a, b = np.asarray(a), np.asarray(b)
        assert a.tobytes() == b.tobytes(), (
            f"{what} {k}: max |diff| {np.max(np.abs(a.astype(float) - b))}")


@pytest.mark.parametrize("name,feature", CASES, ids=CASE_IDS)
def test_fused_equals_keras_passes(name, feature):
    """The fused step gives, bit for bit, what Keras's own passes around the
    same kernel give (KERASOPT_STEP_FEATURES=0)."""
    require_kernel_library()
    cls = getattr(kerasopt, name)
    with kerasopt.implementation("kernel"):
        fused, _ = train(make(cls, name, feature))
        with step_features_off():
            passes, _ = train(make(cls, name, feature))
    assert_bits(fused, passes, f"{name} {feature}")


def graph_nodes(step):
    graph = step.get_concrete_function(
        [tf.TensorSpec(s, tf.float32) for s in SHAPES.values()]).graph.as_graph_def()
    return list(graph.node) + [n for f in graph.library.function for n in f.node_def]


def variable_writes(step):
    return sorted(n.op for n in graph_nodes(step) if n.op in (
        "AssignVariableOp", "AssignSubVariableOp", "AssignAddVariableOp"))


def _decay_in_rule(cls) -> bool:
    # AdamW, ScheduleFree: the class folds the decay into its rule.
    from keras.src.backend.tensorflow.optimizer import TFOptimizer
    return cls._apply_weight_decay is not TFOptimizer._apply_weight_decay


@pytest.mark.parametrize("name,feature", CASES, ids=CASE_IDS)
def test_no_separate_pass_is_left(name, feature):
    """The decay and the EMA write nothing outside the update op: the step's
    graph assigns the same variables as the plain step (`iterations`, Nadam's
    u_product), where Keras's passes assign every decayed weight and average."""
    require_kernel_library()
    with kerasopt.implementation("kernel"):
        _, step = train(make(getattr(kerasopt, name), name, feature), steps=1)
        plain_kwargs = dict(FUSING[name])
        if _decay_in_rule(getattr(kerasopt, name)) and "weight_decay" in FEATURES[feature]:
            # (The decay is a rule input: the same config splits the groups alike.)
            plain_kwargs["weight_decay"] = FEATURES[feature]["weight_decay"]
        plain_optimizer = getattr(kerasopt, name)(**plain_kwargs)
        if plain_optimizer.weight_decay is not None:  # (AdamW: its groups split alike)
            plain_optimizer.exclude_from_weight_decay(var_names=["bias"])
        _, plain = train(plain_optimizer, steps=1)
    assert variable_writes(step) == variable_writes(plain)
    assert sum(n.op.startswith("KerasoptMultiApply") for n in graph_nodes(step)) == \
        sum(n.op.startswith("KerasoptMultiApply") for n in graph_nodes(plain))


@pytest.mark.parametrize("name,feature", [c for c in CASES if keras_class(c[0])],
                         ids=[i for c, i in zip(CASES, CASE_IDS) if keras_class(c[0])])
def test_matches_keras(name, feature):
    """Keras's optimizer with the same config: Adam and SGD to the bit (their
    plain step is), the others within float32 rounding."""
    require_kernel_library()
    theirs, _ = train(make(keras_class(name), name, feature))
    for impl in ("kernel", "tf"):
        with kerasopt.implementation(impl):
            ours, _ = train(make(getattr(kerasopt, name), name, feature))
        if name in ("Adam", "SGD"):
            assert_bits(ours, theirs, f"{name} {feature} [{impl}]")
        else:
            assert_same_variables(ours, theirs, name)
            for (k, a), b in zip(ours.items(), theirs.values()):
                np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7,
                                           err_msg=f"{name} {feature} [{impl}] {k}")


@pytest.mark.parametrize("name,feature", [c for c in CASES if not keras_class(c[0])],
                         ids=[i for c, i in zip(CASES, CASE_IDS) if not keras_class(c[0])])
def test_kernel_equals_fallback(name, feature):
    """The fallback keeps Keras's passes (KERASOPT_IMPL=tf: no plan). (Where
    Keras has the class, test_matches_keras compares both paths with it.)"""
    require_kernel_library()
    cls = getattr(kerasopt, name)
    runs = {}
    for impl in ("kernel", "tf"):
        with kerasopt.implementation(impl):
            runs[impl], _ = train(make(cls, name, feature))
    assert_same_variables(runs["kernel"], runs["tf"], name)
    for (k, a), b in zip(runs["kernel"].items(), runs["tf"].values()):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7, err_msg=f"{name} {feature} {k}")


# An IndexedSlices gradient (with a duplicate row): SGD with momentum and Adam
# update every row (the dense op, its features fused: global_clipnorm scales
# the summed gradient as Keras does), SGD without momentum only the rows
# named (sparse_rows_exact: the sparse op, Keras's operations around it).
SPARSE_CASES = [("SGD", "all"), ("SGD", "clipnorm"), ("SGD", "weight_decay"),
                ("Adam", "global_clipnorm"), ("SGD-rows", "global_clipnorm"),
                ("SGD-rows", "all")]


@pytest.mark.parametrize("name,feature", SPARSE_CASES, ids=[f"{n}-{f}" for n, f in SPARSE_CASES])
def test_sparse_gradient_keeps_kerass_numbers(name, feature):
    """Keras's numbers, fused or with Keras's passes (KERASOPT_STEP_FEATURES=0)."""
    require_kernel_library()
    cls_name, config = name.split("-")[0], dict(FUSING[name.split("-")[0]])
    if name == "SGD-rows":
        config["momentum"] = 0.0

    def build(module):
        optimizer = getattr(module, cls_name)(name="opt", **config, **FEATURES[feature])
        if optimizer.weight_decay is not None:
            optimizer.exclude_from_weight_decay(var_names=["bias"])
        return optimizer

    theirs, _ = train(build(keras.optimizers), sparse=True)
    with kerasopt.implementation("kernel"):
        ours, _ = train(build(kerasopt), sparse=True)
        with step_features_off():
            passes, _ = train(build(kerasopt), sparse=True)
    assert_bits(ours, theirs, f"sparse {name} {feature}")
    assert_bits(passes, theirs, f"sparse {name} {feature}, Keras's passes")


# A variable updated by rows (lazy=True Adam; Adagrad, exact on rows): the
# sparse op takes the gradient's features. Keras's operations on the
# IndexedSlices (its clip, the loss scale's division) act on each value, before
# the duplicate row is summed; global_clipnorm's scale on the summed row.
ROW_CASES = [("Adam", "global_clipnorm"), ("Adam", "clipvalue"), ("Adam", "clipnorm"),
             ("Adam", "all"), ("Adagrad", "global_clipnorm"), ("Adagrad", "clipvalue"),
             ("Adagrad", "clipnorm"), ("LossScale-Adam", "clipvalue"), ("LossScale-Adam", None)]
# Operations Keras's path runs for the rows and the fused step has none of:
# tf.unique before the sum and scale, the clip (the fused dense updates have
# none either), the division of tf.clip_by_norm and of the loss scale.
KERAS_ROW_OPS = {"global_clipnorm": {"Unique"}, "all": {"Unique"},
                 "clipvalue": {"Minimum", "Maximum"}, "clipnorm": {"RealDiv"},
                 None: {"RealDiv"}}


@pytest.mark.parametrize("name,feature", ROW_CASES, ids=[f"{n}-{f}" for n, f in ROW_CASES])
def test_rows_take_the_gradient_features_in_the_sparse_op(name, feature):
    """The same bits as Keras's operations around the sparse op
    (KERASOPT_STEP_FEATURES=0), without them in the step."""
    require_kernel_library()
    cls_name = name.split("-")[-1]

    def build():
        config = dict(FUSING[cls_name], **(FEATURES[feature] if feature else {}))
        if cls_name == "Adam":
            config["lazy"] = True
        optimizer = getattr(kerasopt, cls_name)(name="opt", **config)
        if optimizer.weight_decay is not None:
            optimizer.exclude_from_weight_decay(var_names=["bias"])
        if name.startswith("LossScale"):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=64.0,
                                                           name="lso")
        return optimizer

    with kerasopt.implementation("kernel"):
        fused, step = train(build(), sparse=True)
        with step_features_off():
            passes, keras_step = train(build(), sparse=True)
    assert_bits(fused, passes, f"rows {name} {feature}")

    def ops_of(s, types):
        return sorted(n.op for n in graph_nodes(s) if n.op in types)

    assert not ops_of(step, KERAS_ROW_OPS[feature]), ops_of(step, KERAS_ROW_OPS[feature])
    assert ops_of(keras_step, KERAS_ROW_OPS[feature])  # (what it checks for is there)
    sparse_ops = [n for n in graph_nodes(step) if n.op.startswith("KerasoptSparseApply")]
    assert sparse_ops and all(n.attr["features_on_sum"].b == (feature in ("global_clipnorm", "all"))
                              for n in sparse_ops)


@pytest.mark.parametrize("impl", ["kernel", "tf"])
def test_lazy_rows_stay_rows_under_global_clipnorm(impl):
    """lazy=True with global_clipnorm updates only the rows named (Keras's
    `v * scale` makes the IndexedSlices dense, which used to update every
    row), clipped as TensorFlow's clip_by_global_norm clips rows (Keras 2's,
    and TensorFlow Addons' LazyAdam's): the lazy update fed the rows that
    clipped, without clipping of its own, within float32 rounding (the norm's
    and the order of scaling and summing a repeated row)."""
    require_kernel_library()
    rng = np.random.default_rng(7)
    table = rng.standard_normal((6, 3)).astype(np.float32)
    steps = [([0, 2, 2], 4.0), ([1, 2], 0.5), ([5, 0, 5], 3.0)]  # rows, gradient size
    grads = [(tf.constant((size * rng.standard_normal((len(rows), 3))).astype(np.float32)),
              tf.constant(rows)) for rows, size in steps]
    results = []
    for clipped_by in ("optimizer", "tensorflow"):
        variable = keras.Variable(table)
        optimizer = kerasopt.Adam(0.1, lazy=True, **(
            dict(global_clipnorm=1.0) if clipped_by == "optimizer" else {}))

        @tf.function
        def step(values, rows):
            gradient = tf.IndexedSlices(values, rows, tf.constant([6, 3]))
            if clipped_by == "tensorflow":
                gradient = tf.clip_by_global_norm([gradient], 1.0)[0][0]
            optimizer.apply_gradients([(gradient, variable)])

        with kerasopt.implementation(impl):
            for values, rows in grads:
                step(values, rows)
        results.append(variable.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(results[0][[3, 4]], table[[3, 4]])  # never named


@pytest.mark.parametrize("writer,reader", [("kerasopt", "keras"), ("keras", "kerasopt")])
def test_checkpoint_loads_into_keras_and_back(writer, reader, tmp_path):
    """Keras's variable names, so a checkpoint written with the features on
    (the EMA averages included) restores into the other class and both go on
    alike."""
    require_kernel_library()
    classes = {"kerasopt": kerasopt.Adam, "keras": keras.optimizers.Adam}
    weights, grads = problem()

    def setup(kind):
        variables = [keras.Variable(w, name=k) for k, w in weights.items()]
        optimizer = make(classes[kind], "Adam", "all")
        optimizer.build(variables)
        return variables, optimizer

    def steps(variables, optimizer, gs):
        @tf.function
        def step(gradients):
            optimizer.apply_gradients(zip(gradients, variables))
        for g in gs:
            step([tf.constant(g[k]) for k in SHAPES])

    variables, optimizer = setup(writer)
    steps(variables, optimizer, grads[:2])
    tf.train.Checkpoint(variables=variables, optimizer=optimizer).write(str(tmp_path / "ckpt"))
    written = [v.numpy() for v in optimizer.variables]
    averages = [v.path for v in optimizer.variables if v.path.endswith("_average")]
    assert len(averages) == len(SHAPES), averages

    restored_vars, restored = setup(reader)
    tf.train.Checkpoint(variables=restored_vars, optimizer=restored).read(
        str(tmp_path / "ckpt")).assert_consumed()
    assert [v.path for v in restored.variables] == [v.path for v in optimizer.variables]
    for a, b in zip(restored.variables, written):
        np.testing.assert_array_equal(a.numpy(), b)
    steps(variables, optimizer, grads[2:])
    steps(restored_vars, restored, grads[2:])
    for a, b in zip(restored_vars + restored.variables, variables + optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_plan_is_off_where_keras_passes_must_run():
    """No features for the optimizers whose rule is not element-wise, with
    gradient accumulation, or with KERASOPT_STEP_FEATURES=0."""
    v = [keras.Variable(np.ones(3, np.float32))]
    g = [tf.ones(3)]
    assert step_features.plan_for(kerasopt.Adam(global_clipnorm=1.0), g, v) is not None
    assert step_features.plan_for(kerasopt.Adam(), g, v) is None
    assert step_features.plan_for(kerasopt.Lamb(global_clipnorm=1.0), g, v) is None
    assert step_features.plan_for(kerasopt.Muon(global_clipnorm=1.0, use_ema=True), g, v) is None
    assert step_features.plan_for(
        kerasopt.Adam(use_ema=True, gradient_accumulation_steps=2), g, v) is None
    with step_features_off():
        assert step_features.plan_for(kerasopt.Adam(use_ema=True), g, v) is None
    with kerasopt.implementation("tf"):
        assert step_features.plan_for(kerasopt.Adam(use_ema=True), g, v) is None


def _adam_op_inputs(features, with_average=False, n=5):
    ops = require_kernel_library().ops
    w, m, v, avg = (tf.Variable(tf.ones(n)) for _ in range(4))
    slots = [m, v] + ([avg] if with_average else [])
    return ops, [w] + slots, dict(
        var=w.handle, slots=[s.handle for s in slots], grad=tf.ones(n), learning_rate=0.1,
        step=tf.constant(1, tf.int64), beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
        features=features, with_average=with_average)


def test_op_refuses_features_of_the_wrong_shape():
    ops, variables, kwargs = _adam_op_inputs(tf.zeros([3], tf.float64))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`features` must have shape \[0\]"):
        ops.kerasopt_apply_adam(**kwargs)
    for v in variables:
        np.testing.assert_array_equal(v.numpy(), np.ones(5))
    ops, variables, kwargs = _adam_op_inputs(tf.zeros([0], tf.float64), with_average=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="with_average needs"):
        ops.kerasopt_apply_adam(**kwargs)
    for v in variables:
        np.testing.assert_array_equal(v.numpy(), np.ones(5))


def test_skip_step_writes_nothing():
    """SKIP_STEP (gradient accumulation's update op on an accumulating step):
    the dense and multi-tensor ops write nothing; the multi-tensor op's rows
    must agree on it, else a clear error and nothing written."""
    row = np.zeros(step_features.NUM_FEATURES)
    row[[step_features.GRAD_UNSCALE, step_features.GRAD_MULTIPLIER,
         step_features.GRAD_DIVISOR]] = 1.0
    skip = row.copy()
    skip[step_features.SKIP_STEP] = 1.0
    ops, variables, kwargs = _adam_op_inputs(tf.constant(skip))
    ops.kerasopt_apply_adam(**kwargs)
    for v in variables:
        np.testing.assert_array_equal(v.numpy(), np.ones(5))
    ops.kerasopt_apply_adam(**dict(kwargs, features=tf.constant(row)))  # not skipped: written
    assert not np.array_equal(variables[0].numpy(), np.ones(5))

    w = [tf.Variable(tf.ones(3)) for _ in range(2)]
    slots = [tf.Variable(tf.ones(3)) for _ in range(4)]
    multi = dict(vars=[v.handle for v in w], slots=tf.stack([s.handle for s in slots]),
                 grads=[tf.ones(3)] * 2, learning_rate=0.1, step=tf.constant(1, tf.int64),
                 beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, num_slots=2)
    ops.kerasopt_multi_apply_adam(**multi, features=tf.constant(np.stack([skip, skip])))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"every row of `features` must agree on skip_step .*row 1 has 0"):
        ops.kerasopt_multi_apply_adam(**multi, features=tf.constant(np.stack([skip, row])))
    for v in w + slots:
        np.testing.assert_array_equal(v.numpy(), np.ones(3))


def test_non_elementwise_ops_refuse_features():
    ops = require_kernel_library().ops
    w, m, v = (tf.Variable(tf.ones(4)) for _ in range(3))
    row = tf.constant([1.0, 1.0, 1.0, 0.0, 0.1, 0.0, 0.0, 0.0], tf.float64)
    with pytest.raises(tf.errors.InvalidArgumentError, match="takes no step features"):
        ops.kerasopt_apply_lamb(var=w.handle, slots=[m.handle, v.handle], grad=tf.ones(4),
                                learning_rate=0.1, step=tf.constant(1, tf.int64), beta_1=0.9,
                                beta_2=0.999, epsilon=1e-7, weight_decay_rate=0.0, features=row)
    np.testing.assert_array_equal(w.numpy(), np.ones(4))
    with pytest.raises(tf.errors.InvalidArgumentError, match="takes no EMA slot"):
        ops.kerasopt_apply_lamb(var=w.handle, slots=[m.handle, v.handle], grad=tf.ones(4),
                                learning_rate=0.1, step=tf.constant(1, tf.int64), beta_1=0.9,
                                beta_2=0.999, epsilon=1e-7, weight_decay_rate=0.0, features=row,
                                with_average=True)


# LossScaleOptimizer around a fusing optimizer (kerasopt/optimizers/loss_scale.py):
# Keras's division by the scale inside the update. Step 2's gradient
# overflows (inf): Keras's check skips it; growth every 2 finite steps.
LOSS_SCALE_CASES = {
    "Adam": dict(),
    "Adam-features": dict(weight_decay=0.1, use_ema=True, ema_momentum=0.9, clipvalue=0.05),
    "SGD": dict(),
    # (kerasopt's option; Keras's Adam runs without it.)
    "Adam-skip": dict(nonfinite="skip"),
}


def _loss_scaled(module, case, steps=STEPS):
    name = case.split("-")[0]
    options = dict(LOSS_SCALE_CASES[case])
    if module is keras.optimizers:
        options.pop("nonfinite", None)
    optimizer = getattr(module, name)(name="opt", **FUSING[name], **options)
    if optimizer.weight_decay is not None:
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    wrapper = keras.optimizers.LossScaleOptimizer(optimizer, name="lso", initial_scale=2.0 ** 10,
                                                   dynamic_growth_steps=2)
    weights, grads = problem()
    variables = [keras.Variable(w, name=k) for k, w in weights.items()]

    @tf.function
    def step(gradients):
        wrapper.apply_gradients(zip(gradients, variables))

    for i, g in enumerate(grads[:steps]):
        scaled = [tf.constant(g[k] * np.float32(wrapper.dynamic_scale.numpy()
                                                if wrapper.built else 2.0 ** 10))
                  for k in SHAPES]
        if i == 2:
            scaled[1] = tf.tensor_scatter_nd_update(scaled[1], [[0]], [np.inf])
        step(scaled)
    # (The scale did not join the inner optimizer's variables.)
    assert "dynamic_scale" not in [v.name for v in optimizer.variables]
    out = {f"model/{v.path}": v.numpy() for v in variables}
    out.update({v.path: v.numpy() for v in wrapper.variables})
    return out, step


@pytest.mark.parametrize("case", list(LOSS_SCALE_CASES))
def test_loss_scale_optimizer_matches_keras(case):
    """Keras's LossScaleOptimizer around kerasopt's optimizer gives Keras's
    bits (the inner Adam/SGD and the scale's variables), the overflowing step
    writing nothing, and its step has no division pass of its own: the
    step's graph has one RealDiv per gradient fewer than with Keras's passes
    (KERASOPT_STEP_FEATURES=0; the same count before the fusion)."""
    require_kernel_library()
    theirs, _ = _loss_scaled(keras.optimizers, case)
    with kerasopt.implementation("kernel"):
        ours, step = _loss_scaled(kerasopt, case)
        with step_features_off():
            passes, passes_step = _loss_scaled(kerasopt, case, steps=1)
    assert_bits(ours, theirs, f"LossScaleOptimizer({case})")
    divisions = [sum(n.op == "RealDiv" for n in graph_nodes(s)) for s in (step, passes_step)]
    assert divisions[0] == divisions[1] - len(SHAPES), divisions
    # One finite check, also the nonfinite="skip" policy's: one launch that
    # reads every gradient once (nonfinite.all_finite), no IsFinite per gradient.
    assert sum(n.op == "KerasoptMultiGradientStats" for n in graph_nodes(step)) == 1
    assert sum(n.op == "IsFinite" for n in graph_nodes(step)) == 0


def test_mixed_float16_compile_fuses_the_unscale(monkeypatch):
    """model.compile under mixed_float16 wraps the optimizer in Keras's
    LossScaleOptimizer: kerasopt's Adam gets the scale into its fused step and
    gives Keras's Adam's bits through fit."""
    require_kernel_library()
    unscales = []
    plan_init = step_features.StepPlan.__init__

    def recording(self, *args, **kwargs):
        plan_init(self, *args, **kwargs)
        unscales.append(self.unscale is not None)

    monkeypatch.setattr(step_features.StepPlan, "__init__", recording)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 6)).astype(np.float32)
    y = rng.standard_normal((16, 1)).astype(np.float32)
    results = []
    saved_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        for optimizer in (kerasopt.Adam(learning_rate=0.01), keras.optimizers.Adam(0.01)):
            keras.utils.set_random_seed(3)
            model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu"),
                                      keras.layers.Dense(1)])
            with kerasopt.implementation("kernel"):
                model.compile(optimizer=optimizer, loss="mse")
                model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
            assert int(model.optimizer.inner_optimizer.iterations.numpy()) == 2  # none skipped
            results.append([w.numpy() for w in model.weights])
    finally:
        keras.config.set_dtype_policy(saved_policy)
    assert unscales and all(unscales), unscales
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()
