"""tf.distribute: MirroredStrategy over two logical CPU devices, and
MultiWorkerMirroredStrategy with two worker processes on localhost.

Logical devices must be configured before TensorFlow initializes, so each
scenario runs in a fresh interpreter (tests/isolated.py), bounded by a timeout.

Sparse (IndexedSlices) updates: MirroredStrategy below (the replicas'
gradients are gathered, repeated rows and all, and the sparse op sums them).
"""

from __future__ import annotations

import json
import os
import socket
import textwrap

import numpy as np
import pytest

import isolated
from conftest import require_kernel_library
from optimizer_table import OPTIMIZERS

# Both MirroredStrategy scenarios run in one interpreter (TensorFlow's import
# costs seconds): MIRRORED_SETUP, then the functions below, then MIRRORED_MAIN.
MIRRORED_SETUP = textwrap.dedent("""
    import json, math, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np, keras, kerasopt

    # One strategy for both: a second one in the process would number its
    # collective ops from the start again, and they would clash.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
""")

# dense_checks(cases): every optimizer's dense step on two replicas.
DENSE_CHECKS = textwrap.dedent("""
    cases = [case.split(":") for case in cases.split(",")]  # name:path
    devices = ["/cpu:0", "/cpu:1"]
    shapes = [(3, 4), (1030,)]
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    # grads[step][replica][variable]
    grads = [[[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in devices]
             for _ in range(3)]

    def op_count(concrete, op_type):
        graph_def = concrete.graph.as_graph_def()
        nodes = list(graph_def.node)
        for function in graph_def.library.function:
            nodes += list(function.node_def)
        # op_type ending in "*": a prefix. Every variable's update is one
        # KerasoptApply* op (Shampoo's 1-D ones: its grafted optimizer's op).
        if op_type.endswith("*"):
            return sum(node.op.startswith(op_type[:-1]) for node in nodes)
        return sum(node.op == op_type for node in nodes)

    def arrays(optimizer, variables):
        return [np.asarray(v.numpy()) for v in list(variables) + list(optimizer.variables)]

    def replicas_agree(optimizer, variables):
        for v in list(variables) + list(optimizer.variables):
            parts = [np.asarray(p.numpy()) for p in strategy.experimental_local_results(v.value)]
            if len(parts) != 2 or parts[0].tobytes() != parts[1].tobytes():
                return False
        return True

    out = {}
    for name, impl in cases:
        cls = getattr(kerasopt, name)
        with kerasopt.implementation(impl):
            with strategy.scope():
                variables = [keras.Variable(w) for w in init]
                optimizer = cls()
                optimizer.build(variables)

            @tf.function
            def distributed_step(per_replica):
                def replica_fn(grads):
                    optimizer.apply_gradients(zip(grads, variables))
                strategy.run(replica_fn, args=(per_replica,))

            def per_replica(step):
                return strategy.experimental_distribute_values_from_function(
                    lambda ctx: [tf.constant(g) for g in
                                 grads[step][ctx.replica_id_in_sync_group]])

            concrete = distributed_step.get_concrete_function(per_replica(0))
            # Muon's 2-D variables: one KerasoptMuonUpdateWeights each.
            kernel_ops = op_count(concrete, "KerasoptApply*") + \
                op_count(concrete, "KerasoptMuonUpdateWeights")
            for step in range(len(grads)):
                distributed_step(per_replica(step))

            single = [keras.Variable(w) for w in init]
            reference = cls()

            @tf.function
            def single_step(grads):
                reference.apply_gradients(zip(grads, single))

            for step in range(len(grads)):
                summed = [tf.constant(a) + tf.constant(b) for a, b in zip(*grads[step])]
                single_step(summed)
            got, want = arrays(optimizer, variables), arrays(reference, single)
            out[f"{name}/{impl}"] = dict(
                kernel_ops=kernel_ops,
                identical=[a.tobytes() == b.tobytes() for a, b in zip(got, want)],
                max_diff=max(float(np.max(np.abs(a.astype(np.float64) - b), initial=0))
                             for a, b in zip(got, want)),
                replicas_agree=replicas_agree(optimizer, variables),
                iterations=int(optimizer.iterations.numpy()))

    # nonfinite="skip": an inf on one replica only; both skip, together.
    with strategy.scope():
        variables = [keras.Variable(w) for w in init]
        optimizer = kerasopt.Adam(nonfinite="skip")
        optimizer.build(variables)

    @tf.function
    def skip_step(per_replica):
        strategy.run(lambda g: optimizer.apply_gradients(zip(g, variables)), args=(per_replica,))

    def values(step, bad_replica=None):
        def fn(ctx):
            g = [np.array(x) for x in grads[step][ctx.replica_id_in_sync_group]]
            if ctx.replica_id_in_sync_group == bad_replica:
                g[1][7] = np.inf
            return [tf.constant(x) for x in g]
        return strategy.experimental_distribute_values_from_function(fn)

    skip_step(values(0))
    before = arrays(optimizer, variables)
    skip_step(values(1, bad_replica=1))
    after = arrays(optimizer, variables)
    out["skip"] = dict(unchanged=all(a.tobytes() == b.tobytes() for a, b in zip(before, after)),
                       iterations=int(optimizer.iterations.numpy()),
                       replicas_agree=replicas_agree(optimizer, variables))

    # model.fit under the strategy: the same training as one device, to float tolerance.
    def fit(use_strategy):
        rng = np.random.default_rng(1)
        x = rng.standard_normal((128, 6)).astype(np.float32)
        y = (x @ rng.standard_normal((6, 1))).astype(np.float32)
        scope = strategy.scope() if use_strategy else tf.distribute.get_strategy().scope()
        with scope:
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"),
                                      keras.layers.Dense(1)])
            model.compile(optimizer=kerasopt.Adam(learning_rate=0.01), loss="mse")
        history = model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
        return model.get_weights(), history.history["loss"]

    with kerasopt.implementation(cases[0][1]):
        (w_dist, loss_dist), (w_one, loss_one) = fit(True), fit(False)
    out["fit"] = dict(
        max_diff=max(float(np.max(np.abs(a - b))) for a, b in zip(w_dist, w_one)),
        losses=[loss_dist, loss_one])
    return out
""")


# sparse_checks(): IndexedSlices steps of the sparse rules on two replicas.
SPARSE_CHECKS = textwrap.dedent("""
    rng = np.random.default_rng(0)
    init = np.zeros((50, 4), np.float32)  # FTRL's exact form: rows start at its solution
    # grads[step][replica] = (indices, values); rows repeat within and across replicas
    grads = [[(rng.integers(0, 20, 6).astype(np.int64),
               rng.standard_normal((6, 4)).astype(np.float32)) for _ in range(2)]
             for _ in range(3)]
    makers = {
        "Adagrad": lambda: kerasopt.Adagrad(0.1),
        "SGD": lambda: kerasopt.SGD(0.1),
        "Ftrl": lambda: kerasopt.Ftrl(0.1, l1_regularization_strength=0.01),
        "Adam-lazy": lambda: kerasopt.Adam(0.1, lazy=True),
    }

    def sparse_ops(concrete):
        graph_def = concrete.graph.as_graph_def()
        nodes = list(graph_def.node)
        for function in graph_def.library.function:
            nodes += list(function.node_def)
        return sum(node.op.startswith("KerasoptSparseApply") for node in nodes)

    out = {}
    for name, make in makers.items():
        with strategy.scope():
            table = keras.Variable(init)
            optimizer = make()
            optimizer.build([table])

        @tf.function
        def distributed_step(per_replica):
            def replica_fn(indices, values):
                g = tf.IndexedSlices(values, indices, tf.constant([50, 4], tf.int64))
                optimizer.apply_gradients([(g, table)])
            strategy.run(replica_fn, args=per_replica)

        def per_replica(step):
            return (strategy.experimental_distribute_values_from_function(
                        lambda ctx: tf.constant(grads[step][ctx.replica_id_in_sync_group][0])),
                    strategy.experimental_distribute_values_from_function(
                        lambda ctx: tf.constant(grads[step][ctx.replica_id_in_sync_group][1])))

        with kerasopt.implementation("kernel"):
            ops = sparse_ops(distributed_step.get_concrete_function(per_replica(0)))
            for step in range(3):
                distributed_step(per_replica(step))

            single, reference = keras.Variable(init), make()
            reference.build([single])

            @tf.function
            def single_step(indices, values):
                g = tf.IndexedSlices(values, indices, tf.constant([50, 4], tf.int64))
                reference.apply_gradients([(g, single)])

            for step in range(3):  # the two replicas' rows, one after the other
                single_step(tf.constant(np.concatenate([grads[step][0][0], grads[step][1][0]])),
                            tf.constant(np.concatenate([grads[step][0][1], grads[step][1][1]])))
        parts = [np.asarray(p.numpy()) for p in strategy.experimental_local_results(table.value)]
        touched = np.zeros(50, bool)
        touched[np.concatenate([i for s in grads for i, _ in s])] = True
        out[name] = dict(
            sparse_ops=ops,
            max_diff=float(np.max(np.abs(parts[0] - single.numpy()))),
            replicas_agree=parts[0].tobytes() == parts[1].tobytes(),
            untouched_rows_unchanged=bool(np.all(parts[0][~touched] == init[~touched])))
    return out
""")

# feature_checks(): Keras's per-step features (clipping, decay, EMA, loss
# scaling) under the strategy give keras.optimizers' bits. Gradient
# accumulation and the EMA overwrite, which Keras cannot run in a tf.function
# there, run as Keras's eager step does (kerasopt/optimizers/mirrored_conds.py);
# what kerasopt cannot run either is refused up front, nothing written.
FEATURE_CHECKS = textwrap.dedent("""
    shapes = [(3, 4), (1030,)]
    rng = np.random.default_rng(2)
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(2)]
             for _ in range(4)]
    configs = {
        "clip_wd_ema": dict(global_clipnorm=1.0, weight_decay=0.01, use_ema=True),
        "clipnorm_wd": dict(clipnorm=0.5, weight_decay=0.01),
        "clipvalue_ema": dict(clipvalue=0.1, use_ema=True),
        "loss_scale": dict(),  # LossScaleOptimizer(initial_scale=8)
    }

    def per_replica(step):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: [tf.constant(g) for g in grads[step][ctx.replica_id_in_sync_group]])

    def train(module, name, config, steps, eager=False):
        # Every variable's and slot's copies, device by device, and the error.
        with strategy.scope():
            variables = [keras.Variable(w) for w in init]
            kwargs = dict(config if isinstance(config, dict) else configs[config])
            loss_scale = kwargs.pop("loss_scale", config == "loss_scale")
            optimizer = getattr(module, name)(learning_rate=0.01, **kwargs)
            if loss_scale:
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=8.0)
            optimizer.build(variables)

        def step(per_replica):
            strategy.run(lambda g: optimizer.apply_gradients(zip(g, variables)),
                         args=(per_replica,))
        if not eager:
            step = tf.function(step)

        error = None
        for s in range(steps):
            try:
                step(per_replica(s))
            except (ValueError, RuntimeError) as e:
                error = f"{type(e).__name__}: {e}"
                break
        values = [[np.asarray(p.numpy()) for p in strategy.experimental_local_results(v.value)]
                  for v in list(variables) + list(optimizer.variables)]
        return [copy for copies in zip(*values) for copy in copies], error

    def compare(got, want):
        return dict(identical=[a.tobytes() == b.tobytes() for a, b in zip(got, want)],
                    max_diff=max(float(np.max(np.abs(a - b))) for a, b in zip(got, want)),
                    count=[len(got), len(want)])

    out = {}
    # Adam on the kernel path in every config; SGD and the fallback in one.
    runs = [(config, "Adam", "kernel") for config in configs] + [
        ("clip_wd_ema", "SGD", "kernel"), ("clip_wd_ema", "Adam", "tf")]
    for config, name, impl in runs:
        with kerasopt.implementation(impl):
            got, error = train(kerasopt, name, config, 4)
        want, _ = train(keras.optimizers, name, config, 4)
        out[f"{config}/{name}/{impl}"] = dict(error=error, **compare(got, want))

    # Gradient accumulation and the EMA overwrite in a tf.function, against
    # keras.optimizers' eager step (its tf.function fails).
    conds = {
        "Adam": dict(gradient_accumulation_steps=2),
        "SGD": dict(gradient_accumulation_steps=2, momentum=0.9),
        "AdamW": dict(gradient_accumulation_steps=4, clipvalue=0.1),
        "Adam-all": dict(gradient_accumulation_steps=2, global_clipnorm=1.0,
                         weight_decay=0.01, use_ema=True),
        "Adam-overwrite": dict(use_ema=True, ema_overwrite_frequency=2),
        "SGD-accumulation-overwrite": dict(gradient_accumulation_steps=2, use_ema=True,
                                           ema_overwrite_frequency=2),
        "Adam-loss_scale-accumulation": dict(gradient_accumulation_steps=2, loss_scale=True),
    }
    for case, kwargs in conds.items():
        name = case.split("-")[0]
        want, _ = train(keras.optimizers, name, kwargs, 4, eager=True)
        for impl in ("kernel", "tf") if case in ("Adam-all", "Adam-overwrite") else ("kernel",):
            with kerasopt.implementation(impl):
                got, error = train(kerasopt, name, kwargs, 4)
            out[f"conds/{case}/{impl}"] = dict(error=error, **compare(got, want))
    for case in ("Adam", "Adam-overwrite"):
        _, keras_error = train(keras.optimizers, "Adam", conds[case], 1)
        out[f"conds/keras_error/{case}"] = (keras_error or "")[:300]

    # model.fit (its train step is a tf.function) against Keras's eager fit.
    def fit(make_optimizer, run_eagerly):
        rng = np.random.default_rng(3)
        x = rng.standard_normal((32, 6)).astype(np.float32)
        y = (x @ rng.standard_normal((6, 1))).astype(np.float32)
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="tanh"),
                                      keras.layers.Dense(1)])
            model.compile(optimizer=make_optimizer(**fit_config), loss="mse",
                          run_eagerly=run_eagerly)
        history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        return model.get_weights(), history.history["loss"]

    fit_config = dict(learning_rate=0.05, gradient_accumulation_steps=2, use_ema=True,
                      ema_overwrite_frequency=2)
    with kerasopt.implementation("kernel"):
        (got, losses) = fit(kerasopt.Adam, False)
    want, _ = fit(keras.optimizers.Adam, True)
    out["conds/fit"] = dict(losses=losses, max_diff=max(
        float(np.max(np.abs(a - b))) for a, b in zip(got, want)))

    refused = {"Nadam-accumulation": dict(gradient_accumulation_steps=2)}
    for case, kwargs in refused.items():
        name = case.split("-")[0]
        with kerasopt.implementation("kernel"):
            before, _ = train(kerasopt, name, kwargs, 0)
            after, error = train(kerasopt, name, kwargs, 1)
        _, keras_error = train(keras.optimizers, name, kwargs, 1)
        # Eagerly Keras runs them, and so does kerasopt.
        with kerasopt.implementation("kernel"):
            got, eager_error = train(kerasopt, name, kwargs, 3, eager=True)
        want, _ = train(keras.optimizers, name, kwargs, 3, eager=True)
        out[f"refused/{case}"] = dict(
            error=error, keras_error=(keras_error or "")[:300],
            unchanged=[a.tobytes() == b.tobytes() for a, b in zip(before, after)],
            eager_error=eager_error, eager=compare(got, want))
    return out
""")

MIRRORED_SCRIPT = (MIRRORED_SETUP
                   + "def dense_checks(cases):\n" + textwrap.indent(DENSE_CHECKS, "    ")
                   + "def sparse_checks():\n" + textwrap.indent(SPARSE_CHECKS, "    ")
                   + "def feature_checks():\n" + textwrap.indent(FEATURE_CHECKS, "    ")
                   + 'print(json.dumps({"dense": dense_checks(sys.argv[1]), '
                   + '"sparse": sparse_checks(), "features": feature_checks()}))\n')


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """Both scenarios' results, from one child: {"dense": ..., "sparse": ...}.
    Every optimizer on the kernel path (the kernel op must be in the traced
    step, once per variable and replica), plus Adam on the fallback path."""
    require_kernel_library()
    cases = ",".join(f"{cls.__name__}:kernel" for cls in OPTIMIZERS) + ",Adam:tf"
    return isolated.run(MIRRORED_SCRIPT, cases, cwd=tmp_path_factory.mktemp("mirrored"),
                        timeout=500)


def test_mirrored_sparse_updates_equal_one_device_with_the_gathered_rows(mirrored):
    """IndexedSlices gradients under MirroredStrategy: the sparse kernels run
    (once per replica), the replicas agree, only touched rows change, and the
    result is one device's step on both replicas' rows (repeats summed)."""
    result = mirrored["sparse"]
    assert result, "no sparse case ran"
    for name, r in result.items():
        assert r["sparse_ops"] == 2, (name, r)
        assert r["replicas_agree"] and r["untouched_rows_unchanged"], (name, r)
        assert r["max_diff"] <= 1e-6, (name, r)


def test_mirrored_two_devices_equals_one_device_with_summed_gradient(mirrored):
    """Every optimizer, kernel path (the kernel op must be in the traced step,
    once per variable and replica), plus Adam on the fallback path."""
    result = mirrored["dense"]
    for cls in OPTIMIZERS:
        r = result[f"{cls.__name__}/kernel"]
        assert r["kernel_ops"] == 2 * 2, (cls.__name__, r)
        assert r["replicas_agree"], cls.__name__
        assert r["iterations"] == 3, (cls.__name__, r)
        assert all(r["identical"]), (cls.__name__, r)
    r = result["Adam/tf"]
    assert r["kernel_ops"] == 0 and r["replicas_agree"] and all(r["identical"]), r
    assert result["skip"] == dict(unchanged=True, iterations=1, replicas_agree=True), result["skip"]
    assert result["fit"]["max_diff"] < 1e-5, result["fit"]
    losses = result["fit"]["losses"][0]
    assert losses[-1] < losses[0], losses


def test_mirrored_step_features_give_kerass_bits(mirrored):
    """global_clipnorm, clipnorm, clipvalue, weight decay, EMA and
    LossScaleOptimizer under MirroredStrategy: kerasopt's Adam (kernel path;
    with all three features also SGD, and Adam on the fallback) ends with
    keras.optimizers' bits, every copy of every variable and slot (Keras clips
    each replica's gradient before the all-reduce)."""
    result = {k: r for k, r in mirrored["features"].items()
              if not k.startswith(("conds/", "refused/"))}
    assert len(result) == 6, sorted(result)
    for key, r in result.items():
        assert r["error"] is None, (key, r)
        assert r["count"][0] == r["count"][1] and all(r["identical"]), (key, r)


def test_mirrored_runs_the_conds_kerass_step_cannot(mirrored):
    """gradient_accumulation_steps and ema_overwrite_frequency in a
    tf.function under MirroredStrategy: keras.optimizers fails (tf.distribute's
    RuntimeError, keras-team/keras#20582); kerasopt's step (mirrored_conds.py)
    ends where Keras's eager step does (also under LossScaleOptimizer),
    every device's copy of every variable, slot, average and accumulator:
    the same bits, but for 1 float32
    ulp where the decay rounds differently in a graph than eagerly. And
    model.fit with both, against Keras's fit with run_eagerly=True."""
    result = mirrored["features"]
    for case in ("Adam", "Adam-overwrite"):
        keras_error = result[f"conds/keras_error/{case}"]
        assert keras_error.startswith("RuntimeError") and "merge_call" in keras_error, \
            (case, keras_error)
    r = result["conds/fit"]  # model.fit, against Keras's run_eagerly=True fit
    assert r["max_diff"] < 1e-6 and r["losses"][-1] < r["losses"][0], r
    cases = [k for k in result if k.startswith("conds/") and k.count("/") == 2
             and "keras_error" not in k]
    assert len(cases) == 9, cases
    for key in cases:
        r = result[key]
        assert r["error"] is None, (key, r)
        assert r["count"][0] == r["count"][1], (key, r)
        if "-all/" in key:
            assert r["max_diff"] <= 2.4e-7, (key, r)
        else:
            assert all(r["identical"]), (key, r)


def test_mirrored_refuses_accumulation_it_cannot_run(mirrored):
    """gradient_accumulation_steps for a class with per-step state of its own
    (Nadam's u_product) in a tf.function under MirroredStrategy: a ValueError
    naming it, before anything is written. keras.optimizers fails there too
    (tf.distribute's RuntimeError, keras-team/keras#20582). Eagerly both run
    it, to the same bits."""
    r = mirrored["features"]["refused/Nadam-accumulation"]
    assert r["error"] and r["error"].startswith("ValueError"), r
    assert "gradient_accumulation_steps=2" in r["error"] and "MirroredStrategy" in r["error"], r
    assert "nothing was updated" in r["error"], r
    assert r["unchanged"] and all(r["unchanged"]), r
    assert r["keras_error"].startswith("RuntimeError") and "merge_call" in r["keras_error"], r
    assert r["eager_error"] is None, r
    assert all(r["eager"]["identical"]), r


# Keras 3's model.fit cannot drive MultiWorkerMirroredStrategy (it hands a
# PerReplica batch to a function that wants tensors: keras-team/keras#20585),
# so the workers train with TensorFlow's documented custom loop: strategy.run
# over a distributed dataset, the Keras model and kerasopt optimizer inside.
WORKER_SCRIPT = textwrap.dedent("""
    import json, os
    import numpy as np, tensorflow as tf
    # Collectives give up after 120 s: a lost peer ends the worker, not hangs it.
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=120))
    import keras, kerasopt

    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    global_batch, steps = 64, 12
    rng = np.random.default_rng(0)  # the same data on both workers; each reads its shard
    labels = rng.integers(0, 10, size=global_batch * steps).astype(np.int32)
    x = rng.standard_normal((labels.size, 28, 28, 1)).astype(np.float32)
    x += labels[:, None, None, None] * 0.1  # something to learn
    dataset = tf.data.Dataset.from_tensor_slices((x, labels)).batch(global_batch)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ])
        optimizer = kerasopt.Adam(learning_rate=0.01)
        optimizer.build(model.trainable_variables)
    per_example = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    def train_step_of(optimizer):
        @tf.function
        def train_step(iterator):
            def step(x, y):
                with tf.GradientTape() as tape:
                    loss = tf.nn.compute_average_loss(per_example(y, model(x, training=True)),
                                                      global_batch_size=global_batch)
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables))
                return loss
            losses = strategy.run(step, args=next(iterator))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
        return train_step

    train_step = train_step_of(optimizer)
    losses = [float(train_step(iterator)) for _ in range(steps)]
    digest = [np.asarray(w).tobytes().hex()[:64] for w in model.get_weights()]

    # gradient_accumulation_steps=2 (which Keras's optimizers cannot run in a
    # tf.function under this strategy: kerasopt/optimizers/mirrored_conds.py),
    # 4 more steps on the trained model: 2 updates.
    with strategy.scope():
        accumulating = kerasopt.Adam(learning_rate=0.01, gradient_accumulation_steps=2)
        accumulating.build(model.trainable_variables)
    before = [np.asarray(w) for w in model.get_weights()]

    accumulating_step = train_step_of(accumulating)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    accumulating_step(iterator)
    after_one = [np.asarray(w) for w in model.get_weights()]
    for _ in range(3):
        accumulating_step(iterator)
    accumulated = dict(
        first_step_wrote=any(a.tobytes() != b.tobytes() for a, b in zip(before, after_one)),
        changed=any(a.tobytes() != b.tobytes() for a, b in zip(before, model.get_weights())),
        iterations=int(accumulating.iterations.numpy()),
        weights=[np.asarray(w).tobytes().hex()[:64] for w in model.get_weights()])
    print(json.dumps(dict(task=task, loss=losses, iterations=int(optimizer.iterations.numpy()),
                          weights=digest, replicas=strategy.num_replicas_in_sync,
                          accumulated=accumulated)))
""")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_mirrored_trains_on_two_local_workers(tmp_path):
    """Two worker processes on loopback train a small convnet on synthetic
    MNIST-shaped data (kernel path: KERASOPT_IMPL=kernel makes kerasopt raise
    rather than fall back); their weights stay identical and the loss goes
    down. Then with gradient_accumulation_steps=2, which Keras's optimizers
    cannot run in a tf.function under the strategy."""
    require_kernel_library()
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = isolated.child_env(TF_CONFIG=json.dumps(config), KERASOPT_IMPL="kernel")
        processes.append(isolated.start(WORKER_SCRIPT, cwd=tmp_path, env=env))
    try:
        results = [isolated.finish(p, timeout=300) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    first, second = sorted(results, key=lambda r: r["task"])
    assert first["replicas"] == second["replicas"] == 2
    assert first["weights"] == second["weights"]
    assert first["iterations"] == second["iterations"] == 12
    assert first["loss"] == second["loss"]
    assert np.mean(first["loss"][-3:]) < 0.8 * np.mean(first["loss"][:3]), first["loss"]
    # Then 4 steps with gradient_accumulation_steps=2: the first only
    # accumulates, 2 updates in all, and the workers still agree.
    for r in (first, second):
        acc = r["accumulated"]
        assert not acc["first_step_wrote"] and acc["changed"] and acc["iterations"] == 2, acc
    assert first["accumulated"]["weights"] == second["accumulated"]["weights"]
