"""Keras's gradient accumulation in kerasopt's ops (issue 19).

With ``gradient_accumulation_steps=k`` the accumulating steps are one
``KerasoptMultiAccumulateGradients`` launch and the k-th step's update op
reads (and zeroes) the accumulator itself
(kerasopt/optimizers/gradient_accumulation.py). Table-driven over a few rules
and Keras's step features, small shapes, 2k + 1 steps (two applying steps and
one accumulating step after them): Keras's numbers, the kernel equals the
fallback (Keras's own accumulation), a checkpoint taken mid-accumulation
loads into Keras and back, and Keras's own check refuses a bad k.
"""

from __future__ import annotations

import re
import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from conftest import require_kernel_library

K = 2
STEPS = 2 * K + 1
SHAPES = {"scale": (1,), "bias": (7,), "kernel": (33, 5)}

# (class, config): Adam and SGD give Keras's bits (their plain step does);
# the others within float32 rounding. AdaBelief has no Keras class: kernel
# against fallback only.
CASES = {
    "Adam-plain": ("Adam", dict(learning_rate=0.02)),
    "Adam-all": ("Adam", dict(learning_rate=0.02, global_clipnorm=1.0, weight_decay=0.1,
                              use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=2)),
    "SGD-clipnorm": ("SGD", dict(learning_rate=0.05, momentum=0.9, clipnorm=0.5)),
    "RMSprop-clipvalue-wd": ("RMSprop", dict(learning_rate=0.01, momentum=0.5,
                                             clipvalue=0.05, weight_decay=0.1)),
    "AdaBelief-ema": ("AdaBelief", dict(learning_rate=0.02, use_ema=True)),
    "AdamW": ("AdamW", dict(learning_rate=0.02, weight_decay=0.1)),
    # Nadam advances its u_product once per applying step, outside its ops:
    # its steps keep the cond.
    "Nadam": ("Nadam", dict(learning_rate=0.02)),
}
BITS = ("Adam", "SGD", "AdamW", "Nadam")
# Every pass of their applying step is inside the update ops: the accumulate
# and update ops run on every step, each writing nothing on the other's
# steps, with no cond between them (gradient_accumulation._runs_without_cond).
WITHOUT_COND = {"Adam-plain", "RMSprop-clipvalue-wd", "AdamW"}


def problem():
    rng = np.random.default_rng(1919)
    weights = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
    grads = [{k: (3.0 * rng.standard_normal(s)).astype(np.float32) for k, s in SHAPES.items()}
             for _ in range(STEPS)]
    return weights, grads


def make(cls, config):
    optimizer = cls(name="opt", gradient_accumulation_steps=K, **config)
    if optimizer.weight_decay is not None:
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    return optimizer


def train(optimizer, grads=None, variables=None):
    """({path: value} of every variable, {op type: [its nodes]} of the traced step)."""
    weights, all_grads = problem()
    if variables is None:
        variables = [keras.Variable(w, name=k) for k, w in weights.items()]

    @tf.function
    def step(gradients):
        optimizer.apply_gradients(zip(gradients, variables))

    for g in (all_grads if grads is None else grads):
        step([tf.constant(g[k]) for k in SHAPES])
    out = {f"model/{v.path}": v.numpy() for v in variables}
    out.update({v.path: v.numpy() for v in optimizer.variables})
    graph = step.get_concrete_function(
        [tf.TensorSpec(s, tf.float32) for s in SHAPES.values()]).graph.as_graph_def()
    nodes = {}
    for node in list(graph.node) + [n for f in graph.library.function for n in f.node_def]:
        nodes.setdefault(node.op, []).append(node)
    return out, nodes


def _unnumbered(path):
    # Keras numbers unnamed variables per process (Nadam's u_product:
    # opt/variable, opt/variable_2, ...).
    return re.sub(r"_\d+$", "", path)


def assert_close(ours, theirs, bits, what):
    assert [_unnumbered(k) for k in ours] == [_unnumbered(k) for k in theirs], what
    for (k, a), b in zip(ours.items(), theirs.values()):
        if bits:
            assert a.tobytes() == b.tobytes(), f"{what} {k}: max |diff| {np.max(np.abs(a - b))}"
        else:
            np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7, err_msg=f"{what} {k}")


@pytest.mark.parametrize("case", list(CASES))
def test_accumulation_is_fused_and_gives_kerass_numbers(case):
    """The kernel path fuses the accumulation (the accumulate op runs, and the
    update op takes the accumulators), and gives Keras's numbers, as does the
    fallback (Keras's own accumulation)."""
    require_kernel_library()
    name, config = CASES[case]
    runs, nodes = {}, {}
    for impl in ("kernel", "tf"):
        with kerasopt.implementation(impl):
            runs[impl], nodes[impl] = train(make(getattr(kerasopt, name), config))
    assert "KerasoptMultiAccumulateGradients" in nodes["kernel"], case
    assert "KerasoptMultiAccumulateGradients" not in nodes["tf"], case
    updates = [n for op, ns in nodes["kernel"].items() if op.startswith("KerasoptMultiApply")
               for n in ns]
    assert updates and all(n.attr["accumulation_steps"].i == K for n in updates), case
    has_cond = any(op in nodes["kernel"] for op in ("If", "StatelessIf"))
    assert has_cond == (case not in WITHOUT_COND), case
    keras_cls = getattr(keras.optimizers, name, None)
    reference = train(make(keras_cls, config))[0] if keras_cls else runs["tf"]
    assert any(k.endswith("_gradient_accumulator") for k in reference)
    for impl in ("kernel", "tf"):
        assert_close(runs[impl], reference, name in BITS and keras_cls is not None,
                     f"{case} [{impl}]")


def test_per_variable_ops_fuse_the_mean_too(monkeypatch):
    """KERASOPT_MULTI_TENSOR=0: each KerasoptApplyAdam takes its accumulator."""
    require_kernel_library()
    monkeypatch.setenv("KERASOPT_MULTI_TENSOR", "0")
    _, config = CASES["Adam-all"]
    with kerasopt.implementation("kernel"):
        ours, nodes = train(make(kerasopt.Adam, config))
    updates = nodes.get("KerasoptApplyAdam", [])
    assert len(updates) == len(SHAPES)
    assert all(n.attr["accumulation_steps"].i == K for n in updates)
    assert_close(ours, train(make(keras.optimizers.Adam, config))[0], True, "per-variable")


@pytest.mark.parametrize("writer,reader", [("kerasopt", "keras"), ("keras", "kerasopt")])
def test_checkpoint_mid_accumulation_loads_into_keras_and_back(writer, reader, tmp_path):
    """Keras's `<var>_gradient_accumulator` variables: a checkpoint with a
    non-zero accumulator restores into the other class and both go on alike."""
    require_kernel_library()
    classes = {"kerasopt": kerasopt.Adam, "keras": keras.optimizers.Adam}
    _, config = CASES["Adam-all"]
    weights, grads = problem()

    def setup(kind):
        variables = [keras.Variable(w, name=k) for k, w in weights.items()]
        optimizer = make(classes[kind], config)
        optimizer.build(variables)
        return variables, optimizer

    variables, optimizer = setup(writer)
    train(optimizer, grads[:K + 1], variables)  # one applying step, then one accumulated
    tf.train.Checkpoint(variables=variables, optimizer=optimizer).write(str(tmp_path / "ckpt"))
    accumulators = [v for v in optimizer.variables if v.path.endswith("_gradient_accumulator")]
    assert len(accumulators) == len(SHAPES) and all(np.any(a.numpy()) for a in accumulators)

    restored_vars, restored = setup(reader)
    tf.train.Checkpoint(variables=restored_vars, optimizer=restored).read(
        str(tmp_path / "ckpt")).assert_consumed()
    assert [v.path for v in restored.variables] == [v.path for v in optimizer.variables]
    ours = train(optimizer, grads[K + 1:], variables)[0]
    theirs = train(restored, grads[K + 1:], restored_vars)[0]
    assert_close(ours, theirs, True, f"{writer} -> {reader}")


@pytest.mark.parametrize("steps", [1, -2])
def test_bad_accumulation_steps_refused_by_kerass_check(steps):
    with pytest.raises(ValueError, match=r"`gradient_accumulation_steps` must be an integer >= 2"):
        kerasopt.Adam(gradient_accumulation_steps=steps)


def test_accumulate_op_refuses_a_mismatch_and_writes_nothing():
    lib = require_kernel_library()
    acc = tf.Variable(np.ones(3, np.float32))
    other = tf.Variable(np.ones(2, np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="has shape \\[2\\] but its grad"):
        lib.ops.kerasopt_multi_accumulate_gradients(
            accumulators=tf.stack([acc.handle, other.handle]), grads=[tf.ones(3), tf.ones(3)],
            cycle_start=False, skip=False)
    np.testing.assert_array_equal(acc.numpy(), np.ones(3, np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="cycle_start must be a scalar"):
        lib.ops.kerasopt_multi_accumulate_gradients(
            accumulators=tf.stack([acc.handle]), grads=[tf.ones(3)], cycle_start=[False], skip=False)
    np.testing.assert_array_equal(acc.numpy(), np.ones(3, np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="2 gradients need a 1-D tensor of 2 accumulator handles, got shape \\[1\\]"):
        lib.ops.kerasopt_multi_accumulate_gradients(
            accumulators=tf.stack([acc.handle]), grads=[tf.ones(3), tf.ones(2)],
            cycle_start=False, skip=False)
    np.testing.assert_array_equal(acc.numpy(), np.ones(3, np.float32))
    lib.ops.kerasopt_multi_accumulate_gradients(  # skip: the applying step, nothing written
        accumulators=tf.stack([acc.handle]), grads=[tf.ones(3)], cycle_start=False, skip=True)
    np.testing.assert_array_equal(acc.numpy(), np.ones(3, np.float32))
    lib.ops.kerasopt_multi_accumulate_gradients(accumulators=tf.stack([acc.handle, other.handle]),
                                                grads=[tf.fill([3], 2.0), tf.fill([2], 0.5)],
                                                cycle_start=False, skip=False)
    np.testing.assert_array_equal(acc.numpy(), np.full(3, 3.0, np.float32))
    np.testing.assert_array_equal(other.numpy(), np.full(2, 1.5, np.float32))


def test_accumulate_op_at_a_cycle_start_writes_g_plus_zero():
    """cycle_start: the accumulators are zero (Keras resets them all), so the
    op writes g + 0 without reading them: Keras's g + acc, -0 becoming +0."""
    lib = require_kernel_library()
    acc = tf.Variable(np.full(4, 7.0, np.float32))  # not read
    g = np.array([-0.0, 1.5, -2.0, np.nan], np.float32)
    lib.ops.kerasopt_multi_accumulate_gradients(accumulators=tf.stack([acc.handle]), grads=[g],
                                                cycle_start=True, skip=False)
    expected = g + np.zeros(4, np.float32)
    assert acc.numpy().tobytes() == expected.tobytes()
    assert not np.signbit(acc.numpy()[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_accumulate_op_streams_large_accumulators_with_the_same_bits(dtype):
    """Accumulators of 16 MiB or more are written with streaming stores at a
    cycle start (cc/tf/accumulate_gradients_op.cc): the same g + 0, also on
    the elements before and after each aligned run (odd sizes, shards that
    start inside a cache line)."""
    lib = require_kernel_library()
    rng = np.random.default_rng(5)
    sizes = [3, (17 << 20) // np.dtype(dtype).itemsize + 5, 1001]
    grads = [rng.standard_normal(n).astype(dtype) for n in sizes]
    for g in grads:
        g[:3] = [-0.0, np.nan, -np.inf]
        g[-2:] = [-0.0, 2.5]
    accs = [tf.Variable(np.full(n, 7.0, dtype)) for n in sizes]
    lib.ops.kerasopt_multi_accumulate_gradients(
        accumulators=tf.stack([a.handle for a in accs]), grads=grads,
        cycle_start=True, skip=False)
    for acc, g in zip(accs, grads):
        assert acc.numpy().tobytes() == (g + np.zeros_like(g)).tobytes()


def test_four_steps_per_cycle_give_kerass_bits():
    """k = 4: each cycle's first accumulating step writes g + 0, the next two
    add; Adam with clipping, decay and EMA gives Keras's bits over two cycles
    and one more step."""
    require_kernel_library()
    config = dict(CASES["Adam-all"][1])
    rng = np.random.default_rng(44)
    grads = [{k: (3.0 * rng.standard_normal(s)).astype(np.float32) for k, s in SHAPES.items()}
             for _ in range(9)]
    runs = {}
    for name, module in (("kerasopt", kerasopt), ("keras", keras.optimizers)):
        optimizer = module.Adam(name="opt", gradient_accumulation_steps=4, **config)
        with kerasopt.implementation("kernel"):
            runs[name], nodes = train(optimizer, grads)
        if name == "kerasopt":
            assert "KerasoptMultiAccumulateGradients" in nodes
    assert_close(runs["kerasopt"], runs["keras"], True, "k=4")


def test_applying_step_resets_every_accumulator_as_keras():
    """Keras resets every accumulator when it applies, also one whose variable
    has no gradient in that step (compared right after that step, so that
    the next cycle's start, which writes g + 0, cannot hide it)."""
    require_kernel_library()
    weights, grads = problem()
    runs = {}
    for name, module in (("kerasopt", kerasopt), ("keras", keras.optimizers)):
        variables = [keras.Variable(w, name=k) for k, w in weights.items()]
        optimizer = module.Adam(name="opt", learning_rate=0.02, gradient_accumulation_steps=K)
        optimizer.build(variables)

        @tf.function
        def step(gradients, count):
            optimizer.apply_gradients(zip(gradients, variables[:count]))

        with kerasopt.implementation("kernel"):
            for i, g in enumerate(grads[:K]):
                count = len(SHAPES) - 1 if i == K - 1 else len(SHAPES)  # "kernel": none on step K
                step([tf.constant(g[k]) for k in list(SHAPES)[:count]], count)
        runs[name] = {v.path: v.numpy() for v in variables + list(optimizer.variables)}
    kernel_accumulator = [v for k, v in runs["keras"].items() if k.endswith("kernel_gradient_accumulator")]
    assert len(kernel_accumulator) == 1 and not np.any(kernel_accumulator[0])
    assert_close(runs["kerasopt"], runs["keras"], True, "a variable without a gradient")


def test_k_not_a_power_of_two_keeps_kerass_accumulation():
    """Keras's `/ k` rounds as a division eagerly and as a multiplication by
    the float32 1/k in a tf.function (Grappler): only a k whose reciprocal is
    exact gives one answer the op can match (tests/test_keras_parity.py
    checks k = 3 against Keras)."""
    require_kernel_library()
    from kerasopt.optimizers import gradient_accumulation
    v = [keras.Variable(np.ones(3, np.float32))]
    for steps, fused in ((2, True), (3, False), (4, True), (6, False)):
        optimizer = kerasopt.Adam(gradient_accumulation_steps=steps)
        optimizer.build(v)
        assert gradient_accumulation.fusable(optimizer, [tf.ones(3)], v) is fused, steps
