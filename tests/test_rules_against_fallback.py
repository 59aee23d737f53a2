"""The C++ rules give the traced fallback's bits.

ScheduleFreeAdamW / ScheduleFreeSGD run through their fused op's rule as the
NumPy binding compiles it (kerasopt._kernels, the library's flags). The rules
with no NumPy binding (Adafactor, whose slots depend on the rank; Muon's
Newton-Schulz side) are compiled here into a small single-threaded driver
(tests/rule_harness/rules_on_arrays.cc, with the library's -ffp-contract=off),
which sums in the orders the headers define; Adafactor's fused op
(KerasoptApplyAdafactor, threaded) runs beside it. Their float32 results must
equal the composed-TF fallback's, traced as Keras traces a step (Grappler's
rewrites included), bit for bit. Muon is checked without Newton-Schulz
iterations (ns_steps = 0: its momentum, norm, scaling and decay; the matrix
products are the op's to choose). Skipped without a C++ compiler.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zlib

import numpy as np
import pytest
import tensorflow as tf

from conftest import require_kernel_library
from kerasopt import _kernels
from kerasopt.fallback.adafactor import apply_adafactor
from kerasopt.fallback.muon import apply_muon, apply_muon_adamw
from kerasopt.fallback.schedule_free import apply_schedule_free
from kerasopt.optimizers import step_features

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "tests", "rule_harness", "rules_on_arrays.cc")
COMPILER = shutil.which(os.environ.get("CXX", "g++"))
pytestmark = pytest.mark.skipif(COMPILER is None, reason="no C++ compiler")


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    binary = str(tmp_path_factory.mktemp("harness") / "rules_on_arrays")
    subprocess.run([COMPILER, "-std=c++17", "-O2", "-ffp-contract=off", f"-I{ROOT}", SOURCE,
                    "-o", binary], check=True)
    return binary


def run_rule(harness, tmp_path, rule, arrays, ints, doubles):
    """The harness's arrays after `rule`, split like `arrays`."""
    source, target = tmp_path / "in.bin", tmp_path / "out.bin"
    source.write_bytes(b"".join(np.ascontiguousarray(a, np.float32).tobytes() for a in arrays))
    subprocess.run([harness, rule, str(source), str(target), *map(str, ints), "--",
                    *map(repr, doubles)], check=True)
    flat = np.frombuffer(target.read_bytes(), np.float32)
    out, start = [], 0
    for a in arrays:
        out.append(flat[start:start + a.size].reshape(a.shape))
        start += a.size
    return out


def traced(fn, *tensors):
    """Runs `fn` in a tf.function whose learning rate and step are inputs (as in
    a Keras step, where they come from variables), so Grappler sees what it
    sees there."""
    tf.function(fn)(*tensors)


def assert_same_bits(ours, theirs, what):
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a.tobytes() == np.asarray(b, np.float32).tobytes(), (
            f"{what} array {k}: max |diff| {np.max(np.abs(a - b)) if a.size else 0}")


def _rng(*parts):
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


SF_CASES = [(0.01, 0.0, 0.9, 0.999, 1e-8, 0), (0.05, 0.1, 0.7, 0.99, 1e-3, 10)]


@pytest.mark.parametrize("adam", [True, False])
@pytest.mark.parametrize("interpolate", [False, True])
@pytest.mark.parametrize("case", range(len(SF_CASES)))
@pytest.mark.parametrize("step", [1, 3, 17])
# (): the average keeps Keras's grouping; (1,): the decay rounds as (w * wd) * lr
@pytest.mark.parametrize("shape", [(), (1,), (1100,)], ids=str)
def test_schedule_free(adam, interpolate, case, step, shape):
    require_kernel_library()
    lr, wd, beta_1, beta_2, epsilon, warmup = SF_CASES[case]
    rng = _rng("sf", adam, interpolate, case, step, shape)
    y, z, g = (np.asarray(rng.standard_normal(shape), np.float32) for _ in range(3))
    v = np.asarray(np.abs(rng.standard_normal(shape)), np.float32)
    ours = [a.copy() for a in (y, z, v)]
    common = dict(learning_rate=lr, weight_decay=wd, beta_1=beta_1, warmup_steps=float(warmup),
                  step=step, interpolate=interpolate, scalar_variable=shape == ())
    if adam:
        _kernels.schedulefreeadamw(ours[0], g, ours[1], ours[2], beta_2=beta_2, epsilon=epsilon,
                                   **common)
    else:
        _kernels.schedulefreesgd(ours[0], g, ours[1], **common)
    variables = [tf.Variable(a) for a in (y, z, v)]
    traced(lambda grad, rate, t: apply_schedule_free(
        variables[0], grad, variables[1], variables[2] if adam else None, learning_rate=rate,
        weight_decay=wd, beta_1=beta_1, warmup_steps=warmup, interpolate=interpolate, step=t,
        beta_2=beta_2, epsilon=epsilon),
        tf.constant(g), tf.constant(lr, tf.float32), tf.constant(step, tf.int64))
    assert_same_bits(ours, [v_.numpy() for v_ in variables], "ScheduleFree")


ADAFACTOR_CASES = [(0.01, -0.8, 1e-30, 1e-3, 1.0), (0.5, -0.6, 1e-10, 1e-2, 0.3),
                   (0.5, -0.8, 0.0, 1e-3, 0.7)]


def _adafactor_arrays(rng, shape, dtype=np.float32):
    """w, g, v, and r, c for rank >= 2 (positive statistics)."""
    w, g = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    v = np.abs(rng.standard_normal(shape)).astype(dtype)
    stats = [np.abs(rng.standard_normal(s)).astype(dtype)
             for s in (shape[:-1], shape[:-2] + shape[-1:])] if len(shape) >= 2 else []
    return w, g, v, stats


def _adafactor_op(w, g, v, stats, lr, decay, eps_1, eps_2, clip, step):
    """KerasoptApplyAdafactor on fresh variables: [w, v, (r, c)] after one step."""
    variables = [tf.Variable(a) for a in (w, *stats, v)]
    require_kernel_library().ops.kerasopt_apply_adafactor(
        var=variables[0].handle, features=[], slots=[x.handle for x in variables[1:]],
        grad=tf.constant(g),
        learning_rate=tf.constant(lr, tf.float64), step=tf.constant(step, tf.int64),
        beta_2_decay=decay, epsilon_1=eps_1, epsilon_2=eps_2, clip_threshold=clip)
    out = [x.numpy() for x in variables]
    return [out[0], out[-1]] + out[1:-1]


def _adafactor_fallback(w, g, v, stats, lr, decay, eps_1, eps_2, clip, step):
    """The traced fallback on fresh variables: [w, v, (r, c)] after one step."""
    weight, velocity = tf.Variable(w), tf.Variable(v)
    r, c = (tf.Variable(s) for s in stats) if stats else (None, None)
    traced(lambda grad, rate, t: apply_adafactor(
        weight, grad, r, c, velocity, learning_rate=rate, beta_2_decay=decay, epsilon_1=eps_1,
        epsilon_2=eps_2, clip_threshold=clip, step=t),
        tf.constant(g), tf.constant(lr, tf.float32), tf.constant(step, tf.int64))
    return [weight.numpy(), velocity.numpy()] + ([r.numpy(), c.numpy()] if stats else [])


# (130, 600): three chunks of column sums, rows of two blocks.
@pytest.mark.parametrize("shape", [(7,), (1100,), (1, 1), (3, 5), (40, 24), (130, 600),
                                   (2, 70, 5)], ids=str)
@pytest.mark.parametrize("case", range(len(ADAFACTOR_CASES)))
@pytest.mark.parametrize("step", [1, 9])
def test_adafactor(harness, tmp_path, shape, case, step):
    """The harness, the fused op and the traced fallback: the same bits."""
    hp = ADAFACTOR_CASES[case]
    w, g, v, stats = _adafactor_arrays(_rng("adafactor", shape, case, step), shape)
    factored = len(shape) >= 2
    dims = ([int(np.prod(shape[:-2])), shape[-2], shape[-1]] if factored else [1, shape[0], 0])
    ours = run_rule(harness, tmp_path, "adafactor", [w, g, v, *stats], dims + [step], list(hp))
    theirs = _adafactor_fallback(w, g, v, stats, *hp, step)
    assert_same_bits([ours[0], ours[2]] + ours[3:], theirs, f"Adafactor {shape}")
    assert_same_bits(_adafactor_op(w, g, v, stats, *hp, step), theirs, f"op {shape}")


# (3, 1100, 2): blocks across matrices; (0, 4), (4, 0): empty matrices (r or c still move).
@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16, tf.float64], ids=str)
@pytest.mark.parametrize("shape", [(), (1100,), (3, 1100, 2), (130, 600), (0, 4), (4, 0)],
                         ids=str)
def test_adafactor_op_dtypes(dtype, shape):
    """Other dtypes and edge shapes: the op's bits are the fallback's (16-bit
    storage computed in float32, v and u from the unrounded r and c). In
    float64 the traced fallback's statistics differ from the op's by an ulp
    where Grappler regroups them (measured: up to 4e-16 relative on r, c, v,
    2e-13 on w), so float64 is compared to 1e-12."""
    require_kernel_library()
    hp = ADAFACTOR_CASES[1]
    arrays = _adafactor_arrays(_rng("adafactor-dtypes", shape), shape, dtype.as_numpy_dtype)
    ours = _adafactor_op(*arrays, *hp, 5)
    theirs = _adafactor_fallback(*arrays, *hp, 5)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        if dtype == tf.float64:
            np.testing.assert_allclose(a, b, rtol=1e-12, err_msg=f"{shape} array {k}")
        else:
            assert a.tobytes() == b.tobytes(), f"{dtype.name} {shape} array {k}"


def test_adafactor_op_refuses_bad_slots_and_writes_nothing():
    """Slots that do not fit the variable's rank or shape, and bad
    hyperparameters, fail with the reason and leave every variable as it was."""
    ops = require_kernel_library().ops
    w, g, v, (r, c) = _adafactor_arrays(_rng("adafactor-errors"), (4, 3))

    def attempt(slots, **changes):
        variables = [tf.Variable(a) for a in (w, *slots)]
        kwargs = dict(learning_rate=tf.constant(0.1, tf.float64), step=tf.constant(1, tf.int64),
                      beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3, clip_threshold=1.0,
                      features=tf.zeros([0], tf.float64))
        kwargs.update(changes)
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            ops.kerasopt_apply_adafactor(var=variables[0].handle,
                                         slots=[x.handle for x in variables[1:]],
                                         grad=tf.constant(g), **kwargs)
        for variable, before in zip(variables, (w, *slots)):
            assert variable.numpy().tobytes() == before.tobytes()
        return str(error.value)

    assert "3 slots (r, c, velocity) for rank >= 2" in attempt([v])
    assert "slot" in attempt([c, r, v]) and "(want [4])" in attempt([c, r, v])
    assert "clip_threshold must be > 0" in attempt([r, c, v], clip_threshold=0.0)
    assert "beta_2_decay must be <= 0" in attempt([r, c, v], beta_2_decay=0.5)
    assert "step counts from 1" in attempt([r, c, v], step=tf.constant(0, tf.int64))
    # Clipping, weight decay and EMA stay Keras's passes for Adafactor: the op
    # refuses them instead of ignoring them.
    assert "takes no step features" in attempt(
        [r, c, v], features=tf.ones([step_features.NUM_FEATURES], tf.float64))


@pytest.mark.parametrize("shape", [(3, 5), (40, 24), (24, 40), (600, 30)], ids=str)
@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("rms_rate", [0.2, None])
# (Rates for which the grouping of lr * sqrt(max) * rms_rate changes the
# rounded scale at each of the sizes: 0.3 at 5 and 600, 0.0377 at 40.)
@pytest.mark.parametrize("lr", [0.3, 0.0377])
def test_muon_without_iterations(harness, tmp_path, shape, nesterov, rms_rate, lr):
    wd, momentum = 0.01, 0.95
    rng = _rng("muon", shape, nesterov, rms_rate)
    w, m, g = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
    ours = run_rule(harness, tmp_path, "muon_normalized_only", [w, m, g],
                    [shape[0], shape[1], int(nesterov), int(rms_rate is not None)],
                    [lr, wd, momentum, rms_rate or 0.0])
    weight, slot = tf.Variable(w), tf.Variable(m)
    traced(lambda grad, rate: apply_muon(
        weight, grad, slot, learning_rate=rate, weight_decay=wd, momentum_decay=momentum,
        nesterov=nesterov, ns_steps=0, coefficients=(3.4445, -4.775, 2.0315), rms_rate=rms_rate),
        tf.constant(g), tf.constant(lr, tf.float32))
    assert_same_bits(ours[:2], [weight.numpy(), slot.numpy()], f"Muon {shape}")


@pytest.mark.parametrize("ratio,wd", [(1.0, 0.004), (0.5, 0.05), (1.0, 0.0)])
@pytest.mark.parametrize("step", [1, 6])
def test_muon_adamw(harness, tmp_path, ratio, wd, step):
    rng = _rng("muon-adamw", ratio, wd, step)
    n = 1100
    w, m, g = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    v = np.abs(rng.standard_normal(n)).astype(np.float32)
    ours = run_rule(harness, tmp_path, "muon_adamw", [w, m, v, g], [n, step],
                    [0.02, ratio, wd, 0.9, 0.999, 1e-7])
    variables = [tf.Variable(a) for a in (w, m, v)]
    traced(lambda grad, rate, t: apply_muon_adamw(
        *variables[:1], grad, *variables[1:], learning_rate=rate, adam_lr_ratio=ratio,
        weight_decay=wd, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=t),
        tf.constant(g), tf.constant(0.02, tf.float32), tf.constant(step, tf.int64))
    assert_same_bits(ours[:3], [a.numpy() for a in variables], "Muon AdamW")
