"""Lookahead and AveragedOptimizer (Polyak-Ruppert / SWA): their fused ops
(kernel, fallback, NumPy binding) against the float64 references from the
papers (tests/references.py), the identities that must hold exactly, the
averages against NumPy means, convergence, and Keras integration (fit,
config, model.save, tf.train.Checkpoint)."""

import zlib

import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt import _kernels, op_library
from kerasopt.fallback import iterate_average as average_fallback
from kerasopt.fallback import lookahead as lookahead_fallback
import references  # tests/ is on sys.path

DTYPES = {
    "float16": (np.float16, 2.0 ** -11),
    "bfloat16": (ml_dtypes.bfloat16, 2.0 ** -8),
    "float32": (np.float32, 2.0 ** -24),
    "float64": (np.float64, 2.0 ** -53),
}
SHAPES = [(), (0,), (7,), (3, 5), (513,), (2, 700)]


def _same_bits(a, b, what=""):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, what
    np.testing.assert_array_equal(np.ascontiguousarray(a).reshape(-1).view(np.uint8),
                                  np.ascontiguousarray(b).reshape(-1).view(np.uint8), err_msg=what)


def _close_to(got, want, eps, what):
    """One rounding of a float32 (float64) computation: |got - want| <= 4 eps |want| (+ scale)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = np.max(np.abs(want)) if want.size else 0.0
    bad = ~(np.abs(got - want) <= 4 * eps * (np.abs(want) + scale))
    assert not bad.any(), f"{what}: got {got[bad][:3]} want {want[bad][:3]}"


def _vars(*arrays):
    return [tf.Variable(a) for a in arrays]


def _ops():
    lib = op_library.library()
    assert lib.loaded, lib.error
    return lib.ops


# ------------------------------------------------------------------ the fused ops


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("alpha", [0.3, 1.0, 0.0])
def test_lookahead_sync_paths(alpha, shape, dtype):
    np_dtype, eps = DTYPES[dtype]
    rng = np.random.default_rng(zlib.crc32(repr((alpha, shape, dtype)).encode()))
    slow0 = np.asarray(rng.standard_normal(shape)).astype(np_dtype)
    fast0 = np.asarray(rng.standard_normal(shape)).astype(np_dtype)
    want_slow, _ = references.lookahead_sync(slow0, fast0, slow_step_size=alpha)

    slow, fast = _vars(slow0, fast0)
    _ops().kerasopt_lookahead_sync(slow=slow.handle, fast=fast.handle, slow_step_size=alpha,
                                   T=slow.dtype)
    kernel = slow.numpy(), fast.numpy()
    slow, fast = _vars(slow0, fast0)
    lookahead_fallback.lookahead_sync(slow, fast, slow_step_size=alpha)
    fallback = slow.numpy(), fast.numpy()
    binding = slow0.copy(), fast0.copy()
    _kernels.lookahead_sync(*binding, slow_step_size=alpha)

    _close_to(kernel[0], want_slow, eps if dtype != "float64" else 2.0 ** -53, "kernel slow")
    _same_bits(kernel[0], kernel[1], "fast = slow")
    for other, name in ((fallback, "fallback"), (binding, "binding")):
        _same_bits(other[0], kernel[0], f"{name} slow")
        _same_bits(other[1], kernel[1], f"{name} fast")
    if alpha == 1.0:
        _same_bits(kernel[0], fast0, "alpha = 1: slow = fast exactly")
    if alpha == 0.0:
        _same_bits(kernel[1], slow0, "alpha = 0: fast reset to slow exactly")


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("count", [0, 6, 1000])
def test_iterate_average_paths(count, shape, dtype):
    np_dtype, eps = DTYPES[dtype]
    rng = np.random.default_rng(zlib.crc32(repr((count, shape, dtype)).encode()))
    avg0 = np.asarray(rng.standard_normal(shape)).astype(np_dtype)
    w0 = np.asarray(rng.standard_normal(shape)).astype(np_dtype)
    a64, w64 = avg0.astype(np.float64), w0.astype(np.float64)
    want = w64 if count == 0 else (count * a64 + w64) / (count + 1)

    avg, w = _vars(avg0, w0)
    _ops().kerasopt_update_iterate_average(average=avg.handle, var=w.handle,
                                           count=tf.constant(count, tf.int64), T=avg.dtype)
    kernel = avg.numpy()
    _same_bits(w.numpy(), w0, "the weights are only read")
    avg, w = _vars(avg0, w0)
    average_fallback.update_iterate_average(avg, w, count=count)
    fallback = avg.numpy()
    binding = avg0.copy()
    _kernels.update_iterate_average(binding, w0, count=count)

    # float32 compute: (w - a) / (n + 1) rounds twice; then the add.
    _close_to(kernel, want, eps if dtype == "float64" else max(eps, 2.0 ** -22), "kernel")
    _same_bits(fallback, kernel, "fallback")
    _same_bits(binding, kernel, "binding")
    if count == 0:
        _same_bits(kernel, w0, "count 0: the average is the iterate, exactly")


def test_op_and_binding_errors():
    a, b = _vars(np.zeros(3, np.float32), np.zeros(4, np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="shape"):
        _ops().kerasopt_lookahead_sync(slow=a.handle, fast=b.handle, slow_step_size=0.5,
                                       T=tf.float32)
    c = tf.Variable(np.zeros(3))
    with pytest.raises(tf.errors.InvalidArgumentError, match="dtype"):
        _ops().kerasopt_lookahead_sync(slow=a.handle, fast=c.handle, slow_step_size=0.5,
                                       T=tf.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="count"):
        _ops().kerasopt_update_iterate_average(average=a.handle, var=a.handle,
                                               count=tf.constant(-1, tf.int64), T=tf.float32)
    with pytest.raises(ValueError, match="count"):
        _kernels.update_iterate_average(np.zeros(3), np.zeros(3), count=-1)
    with pytest.raises(ValueError, match="shape"):
        _kernels.lookahead_sync(np.zeros(3), np.zeros(4), slow_step_size=0.5)
    readonly = np.zeros(3)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="fast"):
        _kernels.lookahead_sync(np.zeros(3), readonly, slow_step_size=0.5)
    _kernels.update_iterate_average(np.zeros(3), readonly, count=2)  # var is only read


# ------------------------------------------------------------------ Lookahead


def _run(optimizer, w0, grads, implementation="auto", dtype="float32"):
    """Weights after each step of `optimizer` on one variable (tf.function steps)."""
    var = keras.Variable(np.asarray(w0).astype(dtype))
    optimizer.build([var])

    @tf.function
    def step(g):
        optimizer.apply_gradients([(g, var)])

    out = []
    with kerasopt.implementation(implementation):
        for g in grads:
            step(tf.constant(np.asarray(g).astype(dtype)))
            out.append(var.numpy().copy())
    return out


def _problem(n=37, steps=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n), [rng.standard_normal(n) for _ in range(steps)]


@pytest.mark.parametrize("implementation", ["kernel", "tf"])
def test_lookahead_matches_the_papers_algorithm(implementation):
    w0, grads = _problem()
    lr, mu = 0.1, 0.9
    got = _run(kerasopt.Lookahead(kerasopt.SGD(lr, momentum=mu), sync_period=3,
                                  slow_step_size=0.4), w0, grads, implementation, "float64")
    state = {"m": np.zeros_like(w0)}

    def inner(w, g, t):
        w, new = references.sgd(w, g, state, learning_rate=float(np.float32(lr)), momentum=mu)
        state.update(new)
        return w

    want = references.lookahead(inner, w0, grads, sync_period=3, slow_step_size=0.4)
    for t, (a, b) in enumerate(zip(got, want), start=1):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13, err_msg=f"step {t}")


INNERS = {
    "kerasopt.Adam": lambda: kerasopt.Adam(0.01),
    "keras.SGD": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    "kerasopt.Lars": lambda: kerasopt.Lars(learning_rate=1.0, eta=0.01),
}
IDENTITY_CASES = (
    [(k, "kerasopt.Adam", d) for k in (1, 4) for d in ("float16", "bfloat16", "float32", "float64")]
    + [(4, "keras.SGD", "float32"), (4, "kerasopt.Lars", "bfloat16")])


@pytest.mark.parametrize("sync_period,inner,dtype", IDENTITY_CASES, ids=str)
def test_lookahead_with_alpha_one_is_its_inner_optimizer(sync_period, inner, dtype):
    make_inner = INNERS[inner]
    w0, grads = _problem(steps=9)
    wrapped = _run(kerasopt.Lookahead(make_inner(), sync_period=sync_period, slow_step_size=1.0),
                   w0, grads, dtype=dtype)
    alone = _run(make_inner(), w0, grads, dtype=dtype)
    for t, (a, b) in enumerate(zip(wrapped, alone), start=1):
        _same_bits(a, b, f"step {t}")


def test_lookahead_state_variables_and_iterations():
    var = keras.Variable(np.arange(3.0, dtype=np.float32))
    inner = kerasopt.Adam(0.1)
    opt = kerasopt.Lookahead(inner, sync_period=2)
    opt.build([var])
    slow = opt.slow_weights_for(var)
    w0 = var.numpy().copy()
    var.assign(w0 + 1.0)  # e.g. weights loaded after build: the first step copies them
    assert [v.name for v in opt.variables[:len(opt._variables)]][-1].endswith("slow")
    assert opt.variables[len(opt._variables):] == inner.variables
    for k in range(1, 5):
        opt.apply_gradients([(tf.ones(3), var)])
        assert int(opt.iterations) == int(inner.iterations) == k
        if k % 2 == 0:
            _same_bits(slow.numpy(), var.numpy(), f"synced at step {k}")
        else:
            assert not np.array_equal(slow.numpy(), var.numpy())
        if k == 1:
            _same_bits(slow.numpy(), w0 + 1.0, "the weights before the first step")
        assert int(opt._iterations) == k  # the wrapper's own step counter
    opt.learning_rate = 0.5
    assert float(inner.learning_rate) == 0.5


# ------------------------------------------------------------------ averaging


@pytest.mark.parametrize("implementation", ["kernel", "tf"])
@pytest.mark.parametrize("method,start_step,average_period",
                         [("polyak", 1, 1), ("polyak", 5, 1), ("swa", 3, 4), ("swa", 1, 2)])
def test_average_is_the_mean_of_the_recorded_iterates(method, start_step, average_period,
                                                      implementation):
    w0, grads = _problem(steps=14)
    opt = kerasopt.AveragedOptimizer(kerasopt.SGD(0.05, momentum=0.5), method=method,
                                     start_step=start_step, average_period=average_period)
    iterates = _run(opt, w0, grads, implementation, "float64")
    average = opt._averages[0].numpy()
    want = references.iterate_average(iterates, start_step=start_step,
                                      average_period=average_period)
    np.testing.assert_allclose(average, want, rtol=1e-14, atol=1e-14)
    assert int(opt.averaged_count()) == len(range(start_step, 15, average_period))
    # The model trains on its own iterates: the same as the inner optimizer alone.
    alone = _run(kerasopt.SGD(0.05, momentum=0.5), w0, grads, implementation, "float64")
    _same_bits(iterates[-1], alone[-1], "weights are the inner optimizer's")


def test_swap_context_manager_and_finalize():
    w0, grads = _problem(steps=6)
    var = keras.Variable(w0.astype(np.float32))
    opt = kerasopt.AveragedOptimizer(kerasopt.SGD(0.1), start_step=3)
    with pytest.raises(ValueError, match="not built"):
        opt.swap_average_weights()
    for k, g in enumerate(grads, start=1):
        if k == 3:
            with pytest.raises(ValueError, match="no iterate has been averaged yet"):
                opt.swap_average_weights()
        opt.apply_gradients([(tf.constant(g.astype(np.float32)), var)])
    weights, average = var.numpy().copy(), opt.average_for(var).numpy().copy()
    with opt.averaged_weights():
        _same_bits(var.numpy(), average, "inside: the average")
    _same_bits(var.numpy(), weights, "after: the weights, exactly")
    _same_bits(opt.average_for(var).numpy(), average, "the average is kept")
    opt.finalize_variable_values([var])
    _same_bits(var.numpy(), average, "finalize: the average")


def test_averaging_starting_after_the_end_leaves_the_inner_optimizers_weights():
    w0, grads = _problem(steps=5)
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    results = []
    for make in (lambda: kerasopt.AveragedOptimizer(kerasopt.Adam(0.01), start_step=1000),
                 lambda: kerasopt.Adam(0.01)):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer=make(), loss="mse")
        model.fit(x, y, epochs=2, batch_size=4, verbose=0, shuffle=False)  # finalize runs
        results.append(model.get_weights())
    for a, b in zip(*results):
        _same_bits(a, b, "finalize before start_step changes nothing")


# ------------------------------------------------------------------ convergence


def rosenbrock(w):
    return (1.0 - w[0]) ** 2 + 100.0 * (w[1] - w[0] ** 2) ** 2


def _minimize(opt, loss_fn, w0, steps, noise=0.0, seed=0):
    var = keras.Variable(np.asarray(w0, np.float32))
    rng = np.random.default_rng(seed)
    noises = tf.constant(noise * rng.standard_normal((steps, var.shape[0])), tf.float32)

    @tf.function
    def step(k):
        with tf.GradientTape() as tape:
            loss = loss_fn(var.value)
        g = tape.gradient(loss, var.value) + noises[k]
        opt.apply_gradients([(g, var)])

    for k in range(steps):
        step(tf.constant(k))
    return var


def test_lookahead_converges_on_rosenbrock():
    schedule = keras.optimizers.schedules.CosineDecay(0.05, 3000)
    var = _minimize(kerasopt.Lookahead(kerasopt.Adam(schedule)), rosenbrock, [-1.2, 1.0], 3000)
    # From a loss of 24.2 at (-1.2, 1) along the curved valley (measured: 1.6e-4).
    assert float(rosenbrock(var.numpy())) < 1e-3, var.numpy()
    np.testing.assert_allclose(var.numpy(), [1.0, 1.0], atol=0.05)


def test_polyak_average_beats_the_last_iterate_on_a_noisy_ill_conditioned_quadratic():
    curvature = tf.constant(np.logspace(0, 2, 10), tf.float32)  # condition number 100

    def loss(w):
        return 0.5 * tf.reduce_sum(curvature * (w - 1.0) ** 2)

    opt = kerasopt.AveragedOptimizer(kerasopt.SGD(0.009), start_step=500)
    var = _minimize(opt, loss, np.full(10, 4.0), 3000, noise=1.0)
    last = float(loss(var.value))
    with opt.averaged_weights():
        averaged = float(loss(var.value))
    # The constant-step iterates keep bouncing; their average is far closer.
    assert averaged < 1e-3 and averaged < 0.1 * last, (averaged, last)


# ------------------------------------------------------------------ Keras integration


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x @ rng.standard_normal((4, 1))).astype(np.float32)
    return x, y


def _model(optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


WRAPPED = {
    "lookahead": lambda: kerasopt.Lookahead(kerasopt.Adam(0.05), sync_period=3,
                                            slow_step_size=0.6),
    "polyak": lambda: kerasopt.AveragedOptimizer(kerasopt.SGD(0.05, momentum=0.9),
                                                 start_step=4),
    "swa": lambda: kerasopt.AveragedOptimizer(kerasopt.Adam(0.05), method="swa",
                                              start_step=16, average_period=4),
}


@pytest.mark.parametrize("key", list(WRAPPED))
def test_fit_config_and_model_save_round_trip(key, tmp_path):
    x, y = _data()
    optimizer = WRAPPED[key]()
    config = optimizer.get_config()
    clone = type(optimizer).from_config(config)
    assert type(clone) is type(optimizer) and clone.get_config() == config
    assert type(clone.inner_optimizer) is type(optimizer.inner_optimizer)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert restored.get_config() == config

    model = _model(optimizer)
    first = model.evaluate(x, y, verbose=0)
    callbacks = [kerasopt.SwapAveragedWeights()] if "Averaged" in type(optimizer).__name__ else []
    model.fit(x, y, epochs=4, batch_size=8, verbose=0, callbacks=callbacks,
              validation_data=(x, y))
    assert model.evaluate(x, y, verbose=0) < 0.7 * first
    assert int(optimizer.iterations) == 32

    path = tmp_path / "model.keras"
    model.save(path)
    with kerasopt.patched():  # the inner Adam is saved under Keras's name
        loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is type(optimizer)
    assert type(loaded.optimizer.inner_optimizer) is type(optimizer.inner_optimizer)
    assert loaded.optimizer.get_config()["optimizer"]["class_name"] == \
        config["optimizer"]["class_name"]
    assert len(model.optimizer.variables) == len(loaded.optimizer.variables) > 4
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        assert a.path.rsplit("_", 1)[-1] == b.path.rsplit("_", 1)[-1], (a.path, b.path)
        _same_bits(a.numpy(), b.numpy(), a.path)  # slow weights / averages included
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        _same_bits(a, b, "training goes on identically after load")


def test_tf_train_checkpoint_round_trip(tmp_path):
    var = keras.Variable(np.ones(5, np.float32))
    opts = [kerasopt.Lookahead(kerasopt.Adam(0.1), sync_period=2),
            kerasopt.AveragedOptimizer(kerasopt.SGD(0.1))]
    for opt in opts:
        for _ in range(3):
            opt.apply_gradients([(tf.range(5, dtype=tf.float32), var)])
    saved = [[v.numpy().copy() for v in opt.variables] for opt in opts]
    path = tf.train.Checkpoint(a=opts[0], b=opts[1]).save(str(tmp_path / "ckpt"))
    for opt in opts:
        for v in opt.variables:
            v.assign(tf.zeros_like(v))
    tf.train.Checkpoint(a=opts[0], b=opts[1]).restore(path).assert_existing_objects_matched()
    for opt, values in zip(opts, saved):
        for v, want in zip(opt.variables, values):
            _same_bits(v.numpy(), want, v.path)


class _SgdLookahead(kerasopt.Lookahead):
    """How a named combination (Ranger = RAdam inside Lookahead) is written."""

    def __init__(self, learning_rate=0.01, momentum=0.9, sync_period=6, slow_step_size=0.5,
                 name=None, **kwargs):
        super().__init__(kerasopt.SGD(learning_rate, momentum=momentum, **kwargs),
                         sync_period=sync_period, slow_step_size=slow_step_size, name=name)

    def get_config(self):
        inner = self.inner_optimizer.get_config()
        return {"name": self.name, "learning_rate": inner["learning_rate"],
                "momentum": inner["momentum"], "sync_period": self.sync_period,
                "slow_step_size": self.slow_step_size}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


def test_named_subclass_pattern_round_trips():
    opt = _SgdLookahead(learning_rate=0.02, sync_period=3)
    clone = _SgdLookahead.from_config(opt.get_config())
    assert clone.get_config() == opt.get_config()
    assert clone.sync_period == 3 and clone.inner_optimizer.momentum == 0.9


def test_info_lists_the_wrappers_with_their_ops():
    from kerasopt import info
    report = info.collect()
    assert set(report["wrappers"]) == {cls.__name__ for cls in kerasopt.optimizers.WRAPPERS}
    assert report["wrappers"]["Lookahead"]["op"] == "KerasoptLookaheadSync"
    assert all(w["cpu"] for w in report["wrappers"].values())
    assert "Lookahead" in kerasopt.__all__ and "AveragedOptimizer" in kerasopt.__all__


BAD = [
    (dict(sync_period=0), "sync_period"),
    (dict(sync_period=2.0), "sync_period"),
    (dict(sync_period=True), "sync_period"),
    (dict(slow_step_size=1.5), "slow_step_size"),
    (dict(slow_step_size=-0.1), "slow_step_size"),
    (dict(clipnorm=1.0), "clipnorm"),
    (dict(learning_rate=0.1), "learning_rate"),
    (dict(bogus=1), "bogus"),
]


@pytest.mark.parametrize("kwargs,match", BAD, ids=str)
def test_lookahead_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kerasopt.Lookahead(kerasopt.SGD(), **kwargs)


BAD_AVERAGING = [
    (dict(method="ema"), "method"),
    (dict(method="polyak", average_period=2), "average_period"),
    (dict(start_step=0), "start_step"),
    (dict(method="swa", average_period=0), "average_period"),
    (dict(use_ema=True), "use_ema"),
]


@pytest.mark.parametrize("kwargs,match", BAD_AVERAGING, ids=str)
def test_averaging_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kerasopt.AveragedOptimizer(kerasopt.SGD(), **kwargs)


@pytest.mark.parametrize("cls", [kerasopt.Lookahead, kerasopt.AveragedOptimizer])
def test_wrappers_refuse_a_non_optimizer_and_gradient_accumulation(cls):
    with pytest.raises(TypeError, match="optimizer"):
        cls("adam")
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        cls(kerasopt.SGD(gradient_accumulation_steps=2))


def test_swap_callback_needs_an_averaged_optimizer():
    x, y = _data()
    model = _model(kerasopt.SGD())
    with pytest.raises(ValueError, match="AveragedOptimizer"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y),
                  callbacks=[kerasopt.SwapAveragedWeights()])


@pytest.mark.parametrize("make", [
    lambda: kerasopt.Lookahead(kerasopt.Adam(0.01), sync_period=2),
    lambda: kerasopt.AveragedOptimizer(kerasopt.SGD(0.01), start_step=2)],
    ids=["Lookahead", "AveragedOptimizer"])
def test_xla_compiled_fit_builds_and_runs_the_fallback(make):
    # Keras builds the optimizer inside the (XLA-compiled) train function here:
    # every wrapper variable must be liftable (constant initializers).
    x, y = _data()
    model = _model(make())
    model.compile(optimizer=model.optimizer, loss="mse", jit_compile=True)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    opt = model.optimizer
    assert int(opt.iterations) == 4 and int(opt._iterations) == 4
    own = opt.variables[2:len(opt._variables)]
    assert own and all(np.any(v.numpy() != 0) for v in own)
