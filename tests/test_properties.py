"""Property-based tests (hypothesis): every rule's C++ kernel, through the
pybind11 module, against its float64 reference, on random shapes, dtypes,
hyperparameters, steps and values that include +-inf, NaN, +-0, subnormals
and huge numbers.

Each example is one step from a slot state the reference itself reached from
the optimizer's initial slots (0 to 2 finite steps), rounded to the storage
dtype, so the state is one a real run can hold. What must hold, per stored
array (weight and slots), after rounding the reference to the storage dtype:

* NaN exactly where the reference has NaN;
* +-inf exactly where the reference has the same infinity (overflow included);
* elsewhere |got - want| <= 4 ulp(want) + 64 eps_c S + tiny, where eps_c is
  the epsilon of the compute type (float32, or float64 for float64), S the
  magnitude of the values meeting in the step (|old| + |want| + |g|, plus 16
  times the change |want - old|, which is computed through ~10 roundings,
  plus, where a rule says so (kernel_cases.Case.scales), the terms that
  cancel inside its step), and
  tiny the smallest subnormal of the storage type. Where the gradient or
  weight is subnormal in the compute type, products of it keep a few bits or
  none (Keras's lr * m rounds to 0 below the smallest subnormal), so only
  the size of the change is bounded there: |got - want| <= 3 |want - old|
  (a product of half a subnormal unit may round up to a whole one).

"Huge" is the largest power of ten whose fourth power the compute type still
holds (rules square gradients and multiply the squares by weights); beyond
that the float64 reference does not overflow where float32 must.

Example counts are bounded (max_examples below) to keep the suite fast;
``HYPOTHESIS_PROFILE=thorough`` runs more (``sanitize``: tools/sanitize.sh).
"""

from __future__ import annotations

import os

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import np_dtype, ulp
from kernel_cases import CASES, NOT_IN_TABLE, lamb_trust_ratio
from optimizer_table import OPTIMIZERS

settings.register_profile("default", max_examples=30, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("sanitize", max_examples=100, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])  # tools/sanitize.sh
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

DTYPES = ("float16", "bfloat16", "float32", "float64")
HUGE = {"float16": 6e4, "bfloat16": 1e9, "float32": 1e9, "float64": 1e75}
SPECIALS = ("inf", "-inf", "nan", "subnormal", "-subnormal", "huge", "-huge", "zero", "-zero")


def special_value(kind: str, dtype: str) -> float:
    info = ml_dtypes.finfo(np_dtype(dtype))
    sign = -1.0 if kind.startswith("-") else 1.0
    kind = kind.lstrip("-")
    if kind == "subnormal":
        return sign * float(info.smallest_subnormal) * 3
    if kind == "huge":
        return sign * HUGE[dtype]
    if kind == "zero":
        return sign * 0.0
    return float(kind)  # inf, nan


def compute_eps(dtype: str) -> float:
    return float(np.finfo(np.float64 if dtype == "float64" else np.float32).eps)


@st.composite
def hyperparameters(draw, spec: dict) -> dict:
    out = {}
    for name, allowed in spec.items():
        if isinstance(allowed, list):
            out[name] = draw(st.sampled_from(allowed))
        else:
            out[name] = draw(st.floats(*allowed))
    return out


@st.composite
def arrays(draw, shape, dtype: str, seed: int, scale_exponents=(-3, 3)):
    """Random normals times 10^u, with special values dropped in."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    values = rng.standard_normal(size) * 10.0 ** rng.uniform(*scale_exponents, size)
    if size:
        for index, kind in draw(st.lists(st.tuples(st.integers(0, size - 1),
                                                   st.sampled_from(SPECIALS)), max_size=6)):
            values[index] = special_value(kind, dtype)
    with np.errstate(over="ignore"):
        return values.reshape(shape).astype(np_dtype(dtype))


@st.composite
def problems(draw, name: str):
    case = CASES[name]
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 9), max_size=3)))
    if draw(st.booleans()):  # cross the driver's 512-element blocks
        shape = (draw(st.integers(500, 1100)),)
    hp = draw(hyperparameters(case.hyperparameters))
    step = draw(st.integers(1, 1000))
    history = draw(st.integers(0, min(2, step - 1)))
    seed = draw(st.integers(0, 2**32 - 1))
    w = draw(arrays(shape, dtype, seed))
    g = draw(arrays(shape, dtype, seed + 1))
    # A slot state a run can hold: the reference's own, from the optimizer's
    # initial value, over `history` finite steps, rounded to the storage dtype.
    rng = np.random.default_rng(seed + 2)
    slots = [np.full(shape, case.initial(hp), np.float64) for _ in case.slots(hp)]
    past_w = rng.standard_normal(shape)
    for t in range(step - history, step):
        past_g = rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 2)
        past_w, slots = case.reference(past_w, past_g, slots, hp, t)
    with np.errstate(over="ignore"):
        slots = [np.asarray(s, np.float64).astype(np_dtype(dtype)) for s in slots]
    return dtype, hp, step, w, g, slots


def subnormal_in_compute(x, dtype):
    """Nonzero elements below the compute type's smallest normal."""
    x = np.abs(np.asarray(x, np.float64))
    smallest = float(np.finfo(np.float64 if dtype == "float64" else np.float32).smallest_normal)
    return (x > 0) & (x < smallest)


def check_close(got, want, old, g, dtype, what, rough=None, extra=None):
    storage = np_dtype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        want = np.asarray(want, np.float64).astype(storage).astype(np.float64)
    got = np.asarray(got).astype(np.float64)
    nan_got, nan_want = np.isnan(got), np.isnan(want)
    assert np.array_equal(nan_got, nan_want), (
        f"{what}: NaN at {np.flatnonzero(nan_got != nan_want)[:5]}: got "
        f"{got[nan_got != nan_want][:5]} want {want[nan_got != nan_want][:5]}")
    inf = (np.isinf(got) | np.isinf(want)) & ~nan_want
    assert np.array_equal(got[inf], want[inf]), (
        f"{what}: infinities differ: got {got[inf][:5]} want {want[inf][:5]}")
    finite = ~(inf | nan_want)
    info = ml_dtypes.finfo(storage)
    old = np.asarray(old, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        change = np.abs(want - np.where(np.isfinite(old), old, 0))
    old = np.abs(old)
    g = np.abs(np.asarray(g, np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        scale = (np.where(np.isfinite(old), old, 0) + np.abs(want) + 16 * change
                 + np.where(np.isfinite(g), g, 0))
        if extra is not None:
            scale = scale + np.where(np.isfinite(extra), extra, 0)
        spacing = ulp(np.where(finite, want, 0), dtype)
    tol = 4 * spacing + 64 * compute_eps(dtype) * scale + float(info.smallest_subnormal)
    if rough is not None:  # subnormal inputs: intermediates keep only a few bits
        # (and a rule's divisions can amplify their absolute error of a few
        # subnormal units, e.g. AdaBelief's m / (sqrt(s) + eps): allow that much)
        noise = 1024 * float(np.finfo(np.float64 if dtype == "float64" else np.float32)
                             .smallest_subnormal)
        tol = np.where(rough, np.maximum(tol, 3 * change + 4 * spacing + noise), tol)
    error = np.abs(got - want)
    bad = finite & ~(error <= tol)
    assert not bad.any(), (
        f"{what}: {bad.sum()} of {bad.size} off: got {got[bad][:4]} want {want[bad][:4]} "
        f"(old {old[bad][:4]}, tol {tol[bad][:4]})")


def check_rule(name, problem):
    dtype, hp, step, w, g, slots = problem
    case = CASES[name]
    want_w, want_slots = case.reference(w, g, slots, hp, step)
    got_w, got_slots = w.copy(), [s.copy() for s in slots]
    with np.errstate(all="ignore"):
        case.kernel(got_w, g, got_slots, hp, step)
    assert len(want_slots) == len(slots)
    where = f"{name} {dtype} shape {w.shape} step {step} hp {hp}"
    # Where a gradient or weight is subnormal in the compute type, the kernel
    # works with a few significant bits (as any float32 code does); LAMB's
    # norms spread that to the whole variable's step.
    rough = subnormal_in_compute(g, dtype) | subnormal_in_compute(w, dtype)
    if name == "Lamb":
        # A gradient of subnormals makes ||r|| so small that the trust ratio
        # ||w|| / ||r|| overflows float32 (in Keras's float32 arithmetic as
        # in the kernel), where float64 keeps it: outside what float32 holds.
        limit = np.finfo(np.float64 if dtype == "float64" else np.float32).max
        assume(not lamb_trust_ratio(w, want_slots, hp, step) > limit)
        rough = np.broadcast_to(rough.any(), rough.shape)
    extras = case.scales(w, g, slots, hp) if case.scales else [None] * (1 + len(slots))
    for label, got, want, old, extra in zip(["w"] + case.slots(hp), [got_w] + got_slots,
                                            [want_w] + list(want_slots), [w] + slots, extras):
        check_close(got, want, old, g, dtype, f"{where}: {label}", rough, extra)


def _property_test(name):
    @given(problem=problems(name))
    def test(problem):
        with np.errstate(all="ignore"):
            check_rule(name, problem)
    return test


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_matches_reference(name):
    _property_test(name)()


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=[c.__name__ for c in OPTIMIZERS])
def test_every_optimizer_has_a_case(cls):
    if cls.kernel_name in NOT_IN_TABLE:
        pytest.skip(f"{cls.__name__}: checked in its own test file (kernel_cases.NOT_IN_TABLE)")
    assert cls.kernel_name in CASES, (
        f"{cls.__name__}: add its pybind kernel and reference to tests/kernel_cases.py")


def test_the_check_can_fail():
    """A kernel that is one ulp-per-step off in the wrong direction, or puts
    NaN where the reference has none, is caught."""
    rng = np.random.default_rng(0)
    want = rng.standard_normal(100)
    with pytest.raises(AssertionError, match="NaN"):
        bad = want.copy()
        bad[3] = np.nan
        check_close(bad, want, want, want, "float64", "nan")
    with pytest.raises(AssertionError, match="off"):
        check_close(want * (1 + 1e-9), want, want * 0, want * 0, "float64", "off")
    with pytest.raises(AssertionError, match="infinities"):
        bad = want.copy()
        bad[5] = np.inf
        want[5] = -np.inf
        check_close(bad, want, want, want, "float64", "inf")
