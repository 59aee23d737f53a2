"""The multi-tensor path (KerasoptMultiApply<Algo>, kerasopt/optimizers/multi_tensor.py).

One op launch updates all of a step's variables; it must give the same bits as
one KerasoptApply<Algo> per variable, for every algorithm and dtype, for
mixed dtypes, odd sizes and empty tensors, and for any thread count; it must
stay out of the fallback path, of IndexedSlices gradients and of
distribution strategies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt import op_library
from kerasopt.optimizers import multi_tensor

from conftest import DTYPES, assert_bit_identical, graph_op_types, np_dtype, require_kernel_library

# Empty, scalar, odd, one block + 1, and more than one work item (kMultiChunk
# is 16384 elements) with a partial last item.
SHAPES = ((0,), (), (7,), (513,), (3, 0), (40_001,), (5, 3))
STEPS = 4

# Every algorithm, with the options that change its slot list or its branches.
CONFIGS = [
    (kerasopt.Adam, {}),
    (kerasopt.Adam, {"amsgrad": True}),
    (kerasopt.SGD, {}),
    (kerasopt.SGD, {"momentum": 0.9, "nesterov": True}),
    (kerasopt.RMSprop, {"momentum": 0.5, "centered": True}),
    (kerasopt.RMSprop, {}),
    (kerasopt.Adagrad, {}),
    (kerasopt.Adadelta, {"learning_rate": 1.0}),
    (kerasopt.AdamW, {"exclude": ["w2"]}),  # exclude_from_weight_decay(var_names=...)
    (kerasopt.Adamax, {}),
    (kerasopt.Nadam, {}),
    (kerasopt.Lion, {}),
    (kerasopt.Ftrl, {"l1_regularization_strength": 0.01, "l2_regularization_strength": 0.01}),
    (kerasopt.AdaBelief, {}),
    (kerasopt.AdaBelief, {"amsgrad": True}),
    (kerasopt.RAdam, {}),
    (kerasopt.Yogi, {}),
    # NovoGrad: per-variable ||g|| and a velocity slot of shape () per variable.
    (kerasopt.NovoGrad, {"weight_decay": 0.01, "exclude": ["w2"]}),
    (kerasopt.NovoGrad, {"grad_averaging": True}),
    # Lars: per-variable ||w||, ||g||; exclusions split the launches by value.
    (kerasopt.Lars, {"weight_decay": 0.01, "exclude_from_weight_decay": ["w2"],
                     "exclude_from_layer_adaptation": ["w5"]}),
    (kerasopt.Lars, {"momentum": 0.5, "nesterov": True, "weight_decay": 0.001}),
    (kerasopt.Lars, {"momentum": 0.0, "weight_decay": 0.1}),  # no slots at all
    (kerasopt.Lamb, {}),
    (kerasopt.ScheduleFreeAdamW, {"weight_decay": 0.01, "warmup_steps": 2}),
    (kerasopt.ScheduleFreeSGD, {}),
    # Muon: the (5, 3) and (3, 0) matrices take its list ops, the rest its AdamW side.
    (kerasopt.Muon, {}),
]
NORM_CONFIGS = [c for c in CONFIGS if c[0] in (kerasopt.Lamb, kerasopt.Lars, kerasopt.NovoGrad)]


def _config_id(config):
    cls, kwargs = config
    return cls.__name__ + "".join(f"-{k}" for k in kwargs)


@pytest.fixture
def multi(monkeypatch):
    """Sets the multi-tensor switch for the test: multi(True) / multi(False)."""
    def set_(on):
        monkeypatch.setenv(multi_tensor.ENV_SWITCH, "1" if on else "0")
    return set_


def _problem(shapes, dtypes, seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(s).astype(np_dtype(d)) for s, d in zip(shapes, dtypes)]
    grads = [[(rng.uniform(0.1, 2.0) * rng.standard_normal(s)).astype(np_dtype(d))
              for s, d in zip(shapes, dtypes)] for _ in range(STEPS)]
    return weights, grads


def _run(config, shapes, dtypes, multi_on, seed=0):
    """Trains from the same start with the kernel; returns (arrays, op types)."""
    os.environ[multi_tensor.ENV_SWITCH] = "1" if multi_on else "0"
    cls, kwargs = config
    kwargs = dict(kwargs)
    exclude = kwargs.pop("exclude", None)
    weights, grads = _problem(shapes, dtypes, seed)
    variables = [keras.Variable(w, dtype=d, name=f"w{i}")
                 for i, (w, d) in enumerate(zip(weights, dtypes))]
    opt = cls(**kwargs)
    if exclude:
        opt.exclude_from_weight_decay(var_names=exclude)

    @tf.function
    def step(gradients):
        opt.apply_gradients(zip(gradients, variables))

    with kerasopt.implementation("kernel"):
        for step_grads in grads:
            tensors = [tf.constant(g) for g in step_grads]
            step(tensors)
        op_types = graph_op_types(step.get_concrete_function(tensors))
    arrays = [v.numpy() for v in variables] + [v.numpy() for v in opt.variables]
    return arrays, op_types


def _assert_same(config, shapes, dtypes):
    one_op, multi_types = _run(config, shapes, dtypes, multi_on=True)
    per_variable, single_types = _run(config, shapes, dtypes, multi_on=False)
    multi_op = f"KerasoptMultiApply{config[0].kernel_name}"
    assert multi_op in multi_types, sorted(t for t in multi_types if t.startswith("Kerasopt"))
    assert not any(t.startswith("KerasoptApply") for t in multi_types), sorted(multi_types)
    assert multi_op not in single_types
    for i, (a, b) in enumerate(zip(one_op, per_variable)):
        assert_bit_identical(a, b, f"{_config_id(config)} array {i}")


@pytest.fixture(autouse=True)
def _restore_switch():
    saved = os.environ.get(multi_tensor.ENV_SWITCH)
    yield
    if saved is None:
        os.environ.pop(multi_tensor.ENV_SWITCH, None)
    else:
        os.environ[multi_tensor.ENV_SWITCH] = saved


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", CONFIGS, ids=_config_id)
def test_same_bits_as_one_op_per_variable(config, dtype):
    require_kernel_library()
    _assert_same(config, SHAPES, [dtype] * len(SHAPES))


@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[8]] + NORM_CONFIGS, ids=_config_id)
def test_mixed_dtypes_one_launch_per_dtype(config):
    require_kernel_library()
    dtypes = ["float32", "float16", "bfloat16", "float64", "float32", "float16", "float32"]
    _assert_same(config, SHAPES, dtypes)
    _, op_types = _run(config, SHAPES, dtypes, multi_on=True)
    assert f"KerasoptMultiApply{config[0].kernel_name}" in op_types


def test_adamw_groups_by_weight_decay():
    """Excluded variables (decay 0) and decayed ones go to two launches."""
    require_kernel_library()
    variables = [keras.Variable(np.ones(4, np.float32), name=n) for n in ("a", "b", "c")]
    opt = kerasopt.AdamW(weight_decay=0.1)
    opt.exclude_from_weight_decay(var_names=["b"])
    opt.build(variables)

    @tf.function
    def step(grads):
        opt.apply_gradients(zip(grads, variables))

    with kerasopt.implementation("kernel"):
        graph = step.get_concrete_function([tf.TensorSpec([4], tf.float32)] * 3).graph
    launches = [n for n in graph.as_graph_def().node if n.op == "KerasoptMultiApplyAdamW"]
    assert sorted(n.attr["N"].i for n in launches) == [1, 2]


def test_fallback_path_is_unchanged():
    variables = [keras.Variable(np.ones(s, np.float32)) for s in ((3,), (2, 2))]
    opt = kerasopt.Adam()

    @tf.function
    def step(grads):
        opt.apply_gradients(zip(grads, variables))

    with kerasopt.implementation("tf"):
        op_types = graph_op_types(step.get_concrete_function(
            [tf.TensorSpec(v.shape, tf.float32) for v in variables]))
    assert not any(t.startswith("Kerasopt") for t in op_types), sorted(op_types)


def test_indexed_slices_take_the_per_variable_path():
    require_kernel_library()
    dense = keras.Variable(np.ones((4, 3), np.float32))
    table = keras.Variable(np.ones((10, 3), np.float32))
    opt = kerasopt.Adam()

    @tf.function
    def step():
        sparse = tf.IndexedSlices(tf.ones((2, 3)), tf.constant([1, 7]), tf.constant([10, 3]))
        opt.apply_gradients([(tf.ones((4, 3)), dense), (sparse, table)])

    with kerasopt.implementation("kernel"):
        step()
        graph = step.get_concrete_function().graph
    launches = [n for n in graph.as_graph_def().node if n.op == "KerasoptMultiApplyAdam"]
    assert [n.attr["N"].i for n in launches] == [1]
    assert not np.array_equal(table.numpy()[1], np.ones(3))  # the sparse row moved
    np.testing.assert_array_equal(table.numpy()[0], np.ones(3))


def test_fit_with_the_multi_path_matches_per_variable(multi):
    require_kernel_library()

    def fit(on):
        multi(on)
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
            keras.layers.LayerNormalization(), keras.layers.Dense(3)])
        model.compile(optimizer=kerasopt.Adam(1e-2),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        x = rng.standard_normal((64, 8)).astype(np.float32)
        y = rng.integers(0, 3, 64)
        with kerasopt.implementation("kernel"):
            model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        return model.get_weights()

    for a, b in zip(fit(True), fit(False)):
        assert_bit_identical(a, b, "fit")


def test_strategy_keeps_the_per_variable_path():
    require_kernel_library()
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        var = keras.Variable(np.ones(3, np.float32))
        opt = kerasopt.Adam()
        opt.build([var])

    @tf.function
    def step():
        strategy.run(lambda: opt.apply_gradients([(tf.ones(3), var)]))

    with kerasopt.implementation("kernel"):
        step()
        op_types = graph_op_types(step.get_concrete_function())
    assert "KerasoptMultiApplyAdam" not in op_types
    assert not np.array_equal(var.numpy(), np.ones(3))


def test_op_rejects_a_wrong_slot_count_and_dtype():
    ops = require_kernel_library().ops
    var = tf.Variable(np.ones(3, np.float32))
    m, v = tf.Variable(np.zeros(3, np.float32)), tf.Variable(np.zeros(3, np.float32))
    scalars = dict(learning_rate=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                   step=tf.constant(1, tf.int64))
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="slot"):
        ops.kerasopt_multi_apply_adam(features=[], vars=[var.handle], slots=[m.handle], grads=[tf.ones(3)],
                                      num_slots=2, **scalars)
    half = tf.Variable(np.zeros(3, np.float16))
    with pytest.raises(tf.errors.InvalidArgumentError, match="dtype"):
        ops.kerasopt_multi_apply_adam(features=[], vars=[var.handle], slots=[m.handle, half.handle],
                                      grads=[tf.ones(3)], num_slots=2, **scalars)
    with pytest.raises(tf.errors.InvalidArgumentError, match="shape"):
        ops.kerasopt_multi_apply_adam(features=[], vars=[var.handle], slots=[m.handle, v.handle],
                                      grads=[tf.ones(4)], num_slots=2, **scalars)
    np.testing.assert_array_equal(var.numpy(), np.ones(3))  # nothing half-written


def test_norm_ops_check_each_slot_shape_and_write_nothing_on_error():
    """NovoGrad's velocity is one value per variable (shape ()), its momentum
    and Lars's have the variable's shape: as in the per-variable ops. A wrong
    shape anywhere in the list stops the launch before any write."""
    ops = require_kernel_library().ops
    first = tf.Variable(np.ones(3, np.float32))
    second = tf.Variable(np.ones((2, 2), np.float32))
    grads = [tf.ones(3), tf.ones((2, 2))]
    novograd = dict(learning_rate=0.1, beta_1=0.9, beta_2=0.99, epsilon=1e-7, weight_decay=0.0,
                    step=tf.constant(1, tf.int64))

    keep = []  # a tf.Variable frees its resource when collected: keep them alive

    def variables(*shapes):
        keep.extend(tf.Variable(np.zeros(s, np.float32)) for s in shapes)
        return [v.handle for v in keep[-len(shapes):]]

    def novograd_slots(second_velocity_shape, second_momentum_shape=(2, 2)):
        return variables(3, (), second_momentum_shape, second_velocity_shape)

    with pytest.raises(tf.errors.InvalidArgumentError, match="one value per variable"):
        ops.kerasopt_multi_apply_novo_grad(features=[], vars=[first.handle, second.handle],
                                           slots=novograd_slots((2, 2)), grads=grads,
                                           num_slots=2, **novograd)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"slot .* has shape \[\]"):
        ops.kerasopt_multi_apply_novo_grad(features=[], vars=[first.handle, second.handle],
                                           slots=novograd_slots((), ()), grads=grads,
                                           num_slots=2, **novograd)
    lars = dict(learning_rate=0.1, step=1, momentum=0.9, weight_decay=0.0, eta=0.01)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"slot .* has shape \[\]"):
        ops.kerasopt_multi_apply_lars(
            features=[], vars=[first.handle, second.handle],
            slots=variables(3, ()),
            grads=grads, num_slots=1, **lars)
    np.testing.assert_array_equal(first.numpy(), np.ones(3))  # nothing half-written
    np.testing.assert_array_equal(second.numpy(), np.ones((2, 2)))

    # The right shapes pass, and the velocity slot of each variable moves.
    slots = novograd_slots(())
    ops.kerasopt_multi_apply_novo_grad(features=[], vars=[first.handle, second.handle], slots=slots,
                                       grads=grads, num_slots=2, **novograd)
    assert not np.array_equal(first.numpy(), np.ones(3))
    velocities = [tf.raw_ops.ReadVariableOp(resource=slots[i], dtype=tf.float32).numpy()
                  for i in (1, 3)]
    np.testing.assert_allclose(velocities, [3.0, 4.0])  # ||g||^2 at step 1


_THREAD_SCRIPT = textwrap.dedent("""
    import hashlib, json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[1]))
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import numpy as np, keras, kerasopt

    out = {}
    shapes = [(70_001,), (513,), (0,), (3, 7), (40_000,)]
    for cls, kwargs in ((kerasopt.Adam, {}), (kerasopt.Lamb, {}),
                        (kerasopt.SGD, {"momentum": 0.9}),
                        (kerasopt.Lars, {"weight_decay": 0.01}),
                        (kerasopt.NovoGrad, {"weight_decay": 0.01})):
        for dtype in ("float16", "bfloat16", "float32", "float64"):
            rng = np.random.default_rng(0)
            variables = [keras.Variable(rng.standard_normal(s), dtype=dtype) for s in shapes]
            grads = [[tf.constant(rng.standard_normal(s), dtype) for s in shapes]
                     for _ in range(3)]
            opt = cls(learning_rate=0.01, **kwargs)
            with kerasopt.implementation("kernel"):
                for g in grads:
                    opt.apply_gradients(zip(g, variables))
            digest = hashlib.sha256()
            for v in variables + list(opt.variables):
                digest.update(np.ascontiguousarray(v.numpy()).tobytes())
            out[f"{cls.__name__}/{dtype}"] = digest.hexdigest()
    print(json.dumps(out))
""")


def test_same_bits_for_any_thread_count_and_instruction_set(tmp_path):
    """1, 2 or 4 threads, AVX2 or baseline loops (cc/cpu/isa.h): the same bits."""
    require_kernel_library()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", multi_tensor.ENV_SWITCH: "1"}
    env.pop("KERASOPT_ISA", None)
    runs = [subprocess.Popen([sys.executable, "-P", "-c", _THREAD_SCRIPT, str(n)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**env, **extra}, cwd=tmp_path)
            for n, extra in ((1, {}), (2, {}), (4, {}), (4, {"KERASOPT_ISA": "baseline"}))]
    results = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    assert results[0] == results[1] == results[2] == results[3]


def test_slots_reach_the_step_as_one_captured_tensor():
    """Each capture costs every call of the step; the slots come packed."""
    require_kernel_library()
    variables = [keras.Variable(np.ones(5, np.float32), name=f"w{i}") for i in range(20)]
    grads = [tf.constant(np.full(5, 0.5, np.float32)) for _ in variables]
    opt = kerasopt.Adam()
    opt.build(variables)

    @tf.function
    def step():
        opt.apply_gradients(zip(grads, variables))

    with kerasopt.implementation("kernel"):
        step()
        step()
        captured = step.get_concrete_function().captured_inputs
    handles = [t for t in captured if t.dtype == tf.resource]
    packed = [t for t in handles if t.shape.rank == 1]
    assert len(packed) == 1 and packed[0].shape == (40,)  # m and v of 20 variables
    assert len(handles) < 20 + 40  # the 40 slot handles are not captured one by one
    expected = keras.optimizers.Adam()
    ref = [keras.Variable(np.ones(5, np.float32)) for _ in variables]
    expected.build(ref)
    for _ in range(2):
        expected.apply_gradients(zip(grads, ref))
    for got, want in zip(variables, ref):
        assert_bit_identical(got.numpy(), want.numpy())


def test_slots_created_in_the_traced_step_are_packed_in_the_graph():
    """An optimizer built inside the traced step has slots that tf.function may
    initialize inside the step (here: Ftrl's accumulator starts from a
    variable, so its initializer cannot be lifted out). A tensor packed
    outside the step hides those slots from TensorFlow's automatic control
    dependencies, and the multi-tensor op could read a slot before it is
    initialized (it failed about one run in four with "its slot ... has shape
    [0]"). The handles must be packed in the graph, and every run must equal
    the same steps with the per-variable ops."""
    require_kernel_library()
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(shape).astype(np.float32) for shape in ((6, 5), (5,))]
    grads = [tf.constant(rng.standard_normal(a.shape).astype(np.float32)) for a in start]

    def train(multi_on):
        os.environ[multi_tensor.ENV_SWITCH] = "1" if multi_on else "0"
        variables = [keras.Variable(a) for a in start]
        opt = kerasopt.Ftrl(learning_rate=0.01, initial_accumulator_value=tf.Variable(0.1))

        @tf.function
        def step():
            opt.apply_gradients(zip(grads, variables))

        with kerasopt.implementation("kernel"):
            step()
            step()
        return [v.numpy() for v in variables], step.get_concrete_function().graph

    want, _ = train(multi_on=False)
    for _ in range(8):
        got, graph = train(multi_on=True)
        for g, w in zip(got, want):
            assert_bit_identical(g, w)
    multi_ops = [op for op in graph.get_operations() if op.type == "KerasoptMultiApplyFtrl"]
    assert len(multi_ops) == 1
    packed_slots = multi_ops[0].inputs[2]  # vars (2), then the packed slots
    assert packed_slots.op.type == "Pack", packed_slots.op.type


def test_eager_slot_free_rule_runs_per_variable():
    """Eager TensorFlow refuses an empty resource tensor ("Empty resource
    handle"), so SGD without momentum (no slots) must not reach the list op
    eagerly; inside tf.function it still takes the one launch."""
    require_kernel_library()
    variables = [keras.Variable(np.ones(s, np.float32)) for s in ((3,), (2, 2))]
    grads = [tf.fill(v.shape, 0.5) for v in variables]
    opt = kerasopt.SGD(learning_rate=0.1)
    with kerasopt.implementation("kernel"):
        opt.apply_gradients(zip(grads, variables))  # eager: must not raise
        for v in variables:
            np.testing.assert_array_equal(v.numpy(), np.full(v.shape, 0.95, np.float32))

        @tf.function
        def step():
            opt.apply_gradients(zip(grads, variables))

        step()
        launches = [n for n in step.get_concrete_function().graph.as_graph_def().node
                    if n.op == "KerasoptMultiApplySGD"]
    assert [n.attr["N"].i for n in launches] == [2]
    for v in variables:
        np.testing.assert_array_equal(v.numpy(), np.full(v.shape, 0.9, np.float32))
