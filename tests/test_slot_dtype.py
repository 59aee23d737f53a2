"""slot_dtype="float32": float32 slots for bfloat16/float16 variables.

For every per-element algorithm: the slots of 16-bit variables are float32;
the fused kernel (per variable, multi-tensor, sparse rows) and the fallback
give the same bits; the result is the float64 run with only the weight rounded
to 16 bits after each step (what "compute in float32, store the weight in 16
bits" means), within 2 * eps16 * S, S = |w_0| + |w_T - w_0| + 1: half the
bound tests/test_rules.py allows 16-bit storage whose slots are rounded too
(observed here: <= 0.7 eps16 * S; with 16-bit slots up to 4.4). float32 and
float64 variables are unaffected; algorithms whose drivers take slots of the
variable's dtype only refuse the option; the option survives get_config and
model.save / load_model; the ops refuse slots of any other dtype, naming them.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt import op_library
from kerasopt.optimizers import multi_tensor

from conftest import (FLOAT16_DTYPES, assert_bit_identical, finfo, graph_op_types, np_dtype,
                      quantize, require_kernel_library)

STEPS = 12
SHAPES = ((513,), (3, 5, 7), (), (0,))

# Every optimizer that takes slot_dtype, with options that add slots.
CONFIGS = [
    (kerasopt.Adam, {"learning_rate": 0.05}),
    (kerasopt.Adam, {"learning_rate": 0.05, "amsgrad": True}),
    (kerasopt.SGD, {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    (kerasopt.RMSprop, {"learning_rate": 0.01, "momentum": 0.5, "centered": True}),
    (kerasopt.Adagrad, {"learning_rate": 0.1}),
    (kerasopt.Adadelta, {"learning_rate": 1.0}),
    (kerasopt.AdamW, {"learning_rate": 0.05, "weight_decay": 0.1}),
    (kerasopt.Adamax, {"learning_rate": 0.05}),
    (kerasopt.Nadam, {"learning_rate": 0.05}),
    (kerasopt.Lion, {"learning_rate": 0.02}),
    (kerasopt.Ftrl, {"learning_rate": 0.1, "l1_regularization_strength": 0.01,
                     "l2_regularization_strength": 0.01}),
    (kerasopt.AdaBelief, {"learning_rate": 0.05}),
    (kerasopt.RAdam, {"learning_rate": 0.05}),
    (kerasopt.Yogi, {"learning_rate": 0.05}),
    (kerasopt.ScheduleFreeAdamW, {"learning_rate": 0.05, "weight_decay": 0.1,
                                  "warmup_steps": 3}),
    (kerasopt.ScheduleFreeSGD, {"learning_rate": 0.05, "weight_decay": 0.1}),
]
REFUSING = (kerasopt.Lamb, kerasopt.Lars, kerasopt.NovoGrad, kerasopt.FullMatrixAdagrad,
            kerasopt.Shampoo, kerasopt.Muon, kerasopt.SOAP,
            kerasopt.Adafactor)


def _config_id(config):
    cls, kwargs = config
    return cls.__name__ + "".join(f"-{k}" for k in kwargs if k != "learning_rate")


def _has_sparse_rows(config):
    cls, kwargs = config
    return cls.supports_lazy or cls(**kwargs).sparse_rows_exact()


def _sparse_kwargs(config):
    cls, kwargs = config
    return dict(kwargs, lazy=True) if cls.supports_lazy else dict(kwargs)


CONFIG_PARAMS = [pytest.param(c, id=_config_id(c)) for c in CONFIGS]
SPARSE_PARAMS = [pytest.param(c, id=_config_id(c)) for c in CONFIGS if _has_sparse_rows(c)]


@pytest.fixture(autouse=True)
def _restore_switch():
    saved = os.environ.get(multi_tensor.ENV_SWITCH)
    yield
    if saved is None:
        os.environ.pop(multi_tensor.ENV_SWITCH, None)
    else:
        os.environ[multi_tensor.ENV_SWITCH] = saved


def _problem(dtype, seed=0):
    """Weights and STEPS gradients, exactly representable in `dtype`."""
    rng = np.random.default_rng(seed)
    weights = [quantize(rng.standard_normal(s), dtype) for s in SHAPES]
    grads = [[quantize(rng.uniform(0.2, 2.0) * rng.standard_normal(s), dtype) for s in SHAPES]
             for _ in range(STEPS)]
    return weights, grads


# _GRAPPLER: the steps run eagerly. In a tf.function, Grappler rewrites the
# fallback's graph (e.g. rho * v + (1 - rho) * g * g in RMSprop, Adagrad,
# Adadelta) into forms that round differently in the last float32 bit, which
# 16-bit slots hid and float32 slots show (tests/test_accumulator_rules.py
# compares eagerly for the same reason). The op types come from a trace.
def _train(config, dtype, impl, *, multi=True, slot_dtype="float32", round_weights_to=None):
    """Runs STEPS steps; returns (weights, slots, op types, optimizer).

    ``round_weights_to``: after each step, round the weights to this dtype
    (the float64 reference of 16-bit storage with float32 slots).
    """
    os.environ[multi_tensor.ENV_SWITCH] = "1" if multi else "0"
    cls, kwargs = config
    weights, grads = _problem(round_weights_to or dtype)
    variables = [keras.Variable(w.astype(np_dtype(dtype)), dtype=dtype, name=f"w{i}")
                 for i, w in enumerate(weights)]
    opt = cls(slot_dtype=slot_dtype, **kwargs)
    opt.build(variables)

    def step(gradients):
        opt.apply_gradients(zip(gradients, variables))

    with kerasopt.implementation(impl):
        for step_grads in grads:
            tensors = [tf.constant(g.astype(np_dtype(dtype))) for g in step_grads]
            step(tensors)  # eagerly: see _GRAPPLER
            if round_weights_to is not None:
                for v in variables:
                    v.assign(quantize(v.numpy(), round_weights_to).astype(np_dtype(dtype)))
        op_types = graph_op_types(tf.function(step).get_concrete_function(tensors))
    slots = [[s.numpy() for s in opt.slots_for(v)] for v in variables]
    return [v.numpy() for v in variables], slots, op_types, opt


# --- slots ----------------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIG_PARAMS)
def test_slot_dtypes(config):
    cls, kwargs = config
    dtypes = ("bfloat16", "float16", "float32", "float64")
    variables = [keras.Variable(np.ones(3, np_dtype(d)), dtype=d) for d in dtypes]
    wide, default = cls(slot_dtype="float32", **kwargs), cls(**kwargs)
    wide.build(variables)
    default.build(variables)
    for v, d in zip(variables, dtypes):
        assert wide.slots_for(v), cls.__name__
        want = "float32" if d in FLOAT16_DTYPES else d
        assert [s.dtype for s in wide.slots_for(v)] == [want] * len(wide.slots_for(v)), d
        assert [s.dtype for s in default.slots_for(v)] == [d] * len(default.slots_for(v)), d


def test_keras_state_keeps_the_variable_dtype():
    """EMA averages and gradient accumulators are Keras's, not slots."""
    v = keras.Variable(np.ones(3, np_dtype("bfloat16")), dtype="bfloat16")
    opt = kerasopt.Adam(slot_dtype="float32", use_ema=True, gradient_accumulation_steps=2)
    opt.build([v])
    assert opt._model_variables_moving_average[0].dtype == "bfloat16"
    assert opt._accumulated_gradients[0].dtype == "bfloat16"
    assert [s.dtype for s in opt.slots_for(v)] == ["float32", "float32"]


# --- kernel, fallback and the float64 run ----------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT16_DTYPES)
@pytest.mark.parametrize("config", CONFIG_PARAMS)
def test_kernel_fallback_and_reference_agree(config, dtype):
    require_kernel_library()
    multi_w, multi_s, multi_ops, _ = _train(config, dtype, "kernel", multi=True)
    single_w, single_s, single_ops, _ = _train(config, dtype, "kernel", multi=False)
    fallback_w, fallback_s, fallback_ops, _ = _train(config, dtype, "tf")
    name = config[0].kernel_name
    if op_library._has_kernel(f"KerasoptMultiApply{name}", "CPU"):  # (not every rule has one)
        assert f"KerasoptMultiApply{name}" in multi_ops, sorted(multi_ops)
    else:
        assert f"KerasoptApply{name}" in multi_ops, sorted(multi_ops)
    assert f"KerasoptApply{name}" in single_ops, sorted(single_ops)
    assert not any(t.startswith("Kerasopt") for t in fallback_ops), sorted(fallback_ops)
    for i in range(len(SHAPES)):
        assert multi_w[i].dtype == np_dtype(dtype)
        assert all(s.dtype == np.float32 for s in multi_s[i])
        assert_bit_identical(multi_w[i], single_w[i], f"weight {i}: multi vs per variable")
        assert_bit_identical(multi_w[i], fallback_w[i], f"weight {i}: kernel vs fallback")
        for k, (a, b, c) in enumerate(zip(multi_s[i], single_s[i], fallback_s[i])):
            assert_bit_identical(a, b, f"slot {k} of weight {i}: multi vs per variable")
            assert_bit_identical(a, c, f"slot {k} of weight {i}: kernel vs fallback")

    # The float64 run with the weights rounded to `dtype` after each step.
    ref_w, _, _, _ = _train(config, "float64", "kernel", multi=False, slot_dtype=None,
                            round_weights_to=dtype)
    start, _ = _problem(dtype)
    eps = float(finfo(dtype).eps)
    for i in range(len(SHAPES)):
        got = multi_w[i].astype(np.float64)
        scale = np.abs(start[i].astype(np.float64)) + np.abs(ref_w[i] - start[i]) + 1.0
        err = np.abs(got - ref_w[i])
        assert np.all(err <= 2 * eps * scale), (
            f"weight {i}: max error {np.max(err / scale, initial=0) / eps:.2f} eps16 * S")


@pytest.mark.parametrize("config", CONFIG_PARAMS)
def test_float32_variables_unaffected(config):
    require_kernel_library()
    wide_w, wide_s, _, _ = _train(config, "float32", "kernel", slot_dtype="float32")
    plain_w, plain_s, _, _ = _train(config, "float32", "kernel", slot_dtype=None)
    for a, b in zip(wide_w + sum(wide_s, []), plain_w + sum(plain_s, [])):
        assert a.dtype == np.float32
        assert_bit_identical(a, b, "float32 variable with slot_dtype='float32'")


# --- sparse rows ---------------------------------------------------------------------------


def _train_sparse(config, dtype, impl):
    cls, _ = config
    rng = np.random.default_rng(3)
    table = keras.Variable(quantize(rng.standard_normal((20, 6)), dtype).astype(np_dtype(dtype)),
                           dtype=dtype, name="table")
    opt = cls(slot_dtype="float32", **_sparse_kwargs(config))
    opt.build([table])
    indices = tf.constant([3, 7, 3, 19, 0, 3], tf.int64)

    def step(values):
        opt.apply_gradients([(tf.IndexedSlices(values, indices, tf.constant([20, 6], tf.int64)),
                              table)])

    start = table.numpy().copy()
    with kerasopt.implementation(impl):
        for _ in range(STEPS):
            values = tf.constant(quantize(rng.standard_normal((6, 6)), dtype)
                                 .astype(np_dtype(dtype)))
            step(values)  # eagerly: see _GRAPPLER
        op_types = graph_op_types(tf.function(step).get_concrete_function(values))
    return start, table.numpy(), [s.numpy() for s in opt.slots_for(table)], op_types


@pytest.mark.parametrize("dtype", FLOAT16_DTYPES)
@pytest.mark.parametrize("config", SPARSE_PARAMS)
def test_sparse_rows_kernel_matches_fallback(config, dtype):
    require_kernel_library()
    start, kernel_w, kernel_s, kernel_ops = _train_sparse(config, dtype, "kernel")
    _, fallback_w, fallback_s, _ = _train_sparse(config, dtype, "tf")
    assert f"KerasoptSparseApply{config[0].kernel_name}" in kernel_ops, sorted(kernel_ops)
    assert all(s.dtype == np.float32 for s in kernel_s)
    assert_bit_identical(kernel_w, fallback_w, "table: kernel vs fallback")
    for k, (a, b) in enumerate(zip(kernel_s, fallback_s)):
        assert_bit_identical(a, b, f"slot {k}: kernel vs fallback")
    untouched = [r for r in range(20) if r not in (0, 3, 7, 19)]
    assert_bit_identical(kernel_w[untouched], start[untouched], "rows no index names")
    assert np.any(kernel_w[[0, 3, 7, 19]] != start[[0, 3, 7, 19]])


# --- configuration and saving -----------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIG_PARAMS)
def test_config_round_trip(config):
    cls, kwargs = config
    opt = cls(slot_dtype="float32", **kwargs)
    assert opt.get_config()["slot_dtype"] == "float32"
    assert cls.from_config(opt.get_config()).slot_dtype == "float32"
    assert "slot_dtype" not in cls(**kwargs).get_config()  # Keras's own config when unset


def test_model_save_and_load(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, dtype="bfloat16")])
    model.compile(optimizer=kerasopt.Adam(learning_rate=0.01, slot_dtype="float32"), loss="mse")
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    model.fit(x, x[:, :3], epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer, kerasopt.Adam)
    assert loaded.optimizer.slot_dtype == "float32"
    for original, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        assert restored.dtype == original.dtype, restored.path
        assert_bit_identical(restored.numpy(), original.numpy(), restored.path)
    assert {s.dtype for s in loaded.optimizer.slots_for(loaded.layers[0].kernel)} == {"float32"}


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", REFUSING, ids=lambda c: c.__name__)
def test_refused_where_the_driver_takes_no_wide_slots(cls):
    with pytest.raises(ValueError, match="slot_dtype"):
        cls(slot_dtype="float32")
    assert cls(slot_dtype=None).slot_dtype is None


def test_every_optimizer_is_covered():
    covered = {cls for cls, _ in CONFIGS} | set(REFUSING)
    assert covered == set(kerasopt.optimizers.ALL)
    assert all(not cls.supports_slot_dtype for cls in REFUSING)


@pytest.mark.parametrize("bad", ["float16", "bfloat16", "float64", "int32", 32, "f32x"])
def test_bad_slot_dtype_value(bad):
    with pytest.raises(ValueError, match="slot_dtype"):
        kerasopt.Adam(slot_dtype=bad)


def test_gpu_variables_with_float32_slots_take_the_fallback():
    class _GpuVariable:
        device = "/job:localhost/replica:0/task:0/device:GPU:0"
        name = "w"

    with kerasopt.implementation("auto"):
        reason = op_library.kernel_unavailable_reason(_GpuVariable(), "KerasoptApplyAdam",
                                                      wide_slots=True)
    if op_library.library().loaded:
        assert reason is not None and "float32 slots" in reason, reason


# --- the ops' own checks --------------------------------------------------------------------------


def _variables(*dtypes, shape=(4,)):
    return [tf.Variable(np.full(shape, 1.0 if i == 0 else 0.5, np_dtype(d)), name=f"v{i}")
            for i, d in enumerate(dtypes)]


def _adam_args():
    return dict(learning_rate=tf.constant(0.1, tf.float64), beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                step=tf.constant(1, tf.int64))


def _assert_refused(vs, run, *needles):
    before = [v.numpy().copy() for v in vs]
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        run()
    for needle in needles:
        assert needle in info.value.message, info.value.message
    for v, b in zip(vs, before):
        assert_bit_identical(v.numpy(), b, v.name)


@pytest.mark.parametrize("slot_dtypes, culprit", [
    (("float32", "bfloat16"), "v2"),  # mixed: every slot float32 or none
    (("bfloat16", "float32"), "v2"),
    (("float16", "float16"), "v1"),   # 16-bit, but not the variable's
    (("float64", "float64"), "v1"),
])
def test_dense_op_names_the_bad_slot(slot_dtypes, culprit):
    ops = require_kernel_library().ops
    vs = _variables("bfloat16", *slot_dtypes)
    _assert_refused(vs, lambda: ops.kerasopt_apply_adam(
        features=[], var=vs[0].handle, slots=[v.handle for v in vs[1:]], grad=tf.ones((4,), tf.bfloat16),
        **_adam_args()), f"slot '{culprit}", "v0")


def test_float32_variable_takes_no_other_slot_dtype():
    ops = require_kernel_library().ops
    vs = _variables("float32", "float64", "float64")
    _assert_refused(vs, lambda: ops.kerasopt_apply_adam(
        features=[], var=vs[0].handle, slots=[v.handle for v in vs[1:]], grad=tf.ones((4,)), **_adam_args()),
        "slot 'v1", "slots must have the variable's dtype")


def test_norm_driver_op_refuses_float32_slots():
    ops = require_kernel_library().ops
    vs = _variables("bfloat16", "float32", "float32")
    _assert_refused(vs, lambda: ops.kerasopt_apply_lamb(
        features=[], var=vs[0].handle, slots=[v.handle for v in vs[1:]], grad=tf.ones((4,), tf.bfloat16),
        weight_decay_rate=0.0, **_adam_args()), "KerasoptApplyLamb", "dtype only")


def test_sparse_and_multi_ops_name_the_bad_slot():
    ops = require_kernel_library().ops
    vs = _variables("float16", "float32", "float16", shape=(3, 2))
    _assert_refused(vs, lambda: ops.kerasopt_sparse_apply_adam(features=[],
        var=vs[0].handle, slots=[v.handle for v in vs[1:]], grad=tf.ones((1, 2), tf.float16),
        indices=tf.constant([1]), **_adam_args()), "slot 'v2")
    _assert_refused(vs, lambda: ops.kerasopt_multi_apply_adam(
        features=[], vars=[vs[0].handle], slots=tf.stack([v.handle for v in vs[1:]]),
        grads=[tf.ones((3, 2), tf.float16)], num_slots=2, **_adam_args()), "slot 'v2", "v0")


# --- with the rest of the optimizer ---------------------------------------------------------------


def test_nonfinite_skip_leaves_float32_slots_untouched():
    require_kernel_library()
    v = keras.Variable(np.linspace(-1, 1, 600).astype(np_dtype("bfloat16")), dtype="bfloat16")
    opt = kerasopt.Adam(learning_rate=0.05, slot_dtype="float32", nonfinite="skip")
    g = np.linspace(-2, 2, 600).astype(np_dtype("bfloat16"))
    with kerasopt.implementation("kernel"):
        opt.apply_gradients([(tf.constant(g), v)])
        before = [v.numpy().copy()] + [s.numpy().copy() for s in opt.slots_for(v)]
        g[17] = np.inf
        opt.apply_gradients([(tf.constant(g), v)])
    after = [v.numpy()] + [s.numpy() for s in opt.slots_for(v)]
    for a, b in zip(after, before):
        assert_bit_identical(a, b, "after a skipped step")
    assert int(opt.iterations.numpy()) == 1


MIRRORED_SCRIPT = """
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np, keras, ml_dtypes, kerasopt

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(0)
init = rng.standard_normal(1030).astype(ml_dtypes.bfloat16)
grads = [[rng.standard_normal(1030).astype(ml_dtypes.bfloat16) for _ in range(2)]
         for _ in range(3)]

def optimizer():
    return kerasopt.Adam(learning_rate=0.05, slot_dtype="float32")

with kerasopt.implementation("kernel"):
    with strategy.scope():
        variable = keras.Variable(init, dtype="bfloat16")
        opt = optimizer()
        opt.build([variable])

    @tf.function
    def distributed_step(per_replica):
        strategy.run(lambda g: opt.apply_gradients([(g, variable)]), args=(per_replica,))

    for step in range(3):
        distributed_step(strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(grads[step][ctx.replica_id_in_sync_group])))

    single = keras.Variable(init, dtype="bfloat16")
    reference = optimizer()

    @tf.function
    def single_step(g):
        reference.apply_gradients([(g, single)])

    for step in range(3):
        single_step(tf.constant(grads[step][0]) + tf.constant(grads[step][1]))

got = [variable.numpy()] + [s.numpy() for s in opt.slots_for(variable)]
want = [single.numpy()] + [s.numpy() for s in reference.slots_for(single)]
print(json.dumps(dict(
    slot_dtypes=[str(s.dtype) for s in opt.slots_for(variable)],
    identical=[a.tobytes() == b.tobytes() for a, b in zip(got, want)],
    replicas_agree=all(
        len({p.numpy().tobytes() for p in strategy.experimental_local_results(x.value)}) == 1
        for x in [variable] + list(opt.slots_for(variable))))))
"""


def test_mirrored_strategy_equals_one_device(tmp_path):
    require_kernel_library()
    import isolated

    result = isolated.run(MIRRORED_SCRIPT, cwd=tmp_path, timeout=300)
    assert result["slot_dtypes"] == ["float32", "float32"], result
    assert all(result["identical"]), result
    assert result["replicas_agree"], result
