"""Determinism: the dense kernels give the same bits however the work is split.

* Through TensorFlow: every optimizer's kernel path with 1 and 2 intra-op
  threads (fresh interpreters: the thread count is fixed when TensorFlow
  initializes) gives identical weights and slots.
* Through the pybind11 module: running a rule over an array in arbitrary
  pieces (as a ``parallel_for`` would split it, at offsets that are not
  multiples of the block or the vector width) gives the bits of one pass.
  Rules with per-variable norms (LAMB) are left out of the split: a piece is
  not the variable; their thread test is LAMB's below (its norms over many
  blocks, in the same two interpreters). Rules that round
  by the variable's size get no one-element piece (CUTS_OF_TWO_OR_MORE).
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import isolated
from conftest import assert_bit_identical, np_dtype, require_kernel_library
from kernel_cases import CASES
from optimizer_table import OPTIMIZERS

SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[1]))
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import numpy as np, keras, kerasopt

    out = {}
    for name in sys.argv[2].split(","):
        cls = getattr(kerasopt, name)
        # FullMatrixAdagrad's blocked full-matrix step costs about a thousand
        # times an element-wise one per element: smaller sizes, still many blocks.
        scale = 20 if name == "FullMatrixAdagrad" else 1
        for dtype, n in (("float32", 200_003 // scale), ("float16", 70_001 // scale),
                         ("float64", 90_001 // scale)):
            rng = np.random.default_rng(0)
            var = keras.Variable(rng.standard_normal(n).astype(dtype))
            optimizer = cls()
            with kerasopt.implementation("kernel"):
                for _ in range(3):
                    g = tf.constant(rng.standard_normal(n).astype(dtype))
                    optimizer.apply_gradients([(g, var)])
            digest = hashlib.sha256()
            for v in [var] + list(optimizer.variables):
                digest.update(np.ascontiguousarray(v.numpy()).tobytes())
            out[f"{name}/{dtype}"] = digest.hexdigest()

    # LAMB's norms over many blocks, on both paths: float32 over 586 blocks;
    # float64 over 4400 blocks (more partials than TensorFlow's cumsum handles
    # on one thread).
    for dtype, n in (("float32", 300_001), ("float64", 2_252_800)):
        rng = np.random.default_rng(0)
        w0 = rng.standard_normal(n).astype(dtype)
        grads = [rng.standard_normal(n).astype(dtype) for _ in range(3)]
        for impl in ("kernel", "tf"):
            var = keras.Variable(w0)
            opt = kerasopt.Lamb(learning_rate=0.05)
            with kerasopt.implementation(impl):
                for g in grads:
                    opt.apply_gradients([(tf.constant(g), var)])
            digest = hashlib.sha256()
            for v in [var] + list(opt.variables[1:]):
                digest.update(np.ascontiguousarray(v.numpy()).tobytes())
            out[f"lamb-norms/{dtype}/{impl}"] = digest.hexdigest()
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def thread_runs(tmp_path_factory):
    """SCRIPT's digests with 1 and 2 intra-op threads (two interpreters at once)."""
    require_kernel_library()
    names = ",".join(cls.__name__ for cls in OPTIMIZERS)
    cwd = tmp_path_factory.mktemp("threads")
    runs = [isolated.start(SCRIPT, threads, names, cwd=cwd) for threads in (1, 2)]
    return [isolated.finish(run, timeout=400) for run in runs]


def test_same_bits_with_1_or_2_intra_op_threads(thread_runs):
    one, two = thread_runs
    assert len([key for key in one if not key.startswith("lamb-norms/")]) == 3 * len(OPTIMIZERS)
    for key in one:
        assert one[key] == two[key], key


def test_lamb_norms_same_bits_with_1_or_2_threads_and_on_both_paths(thread_runs):
    """LAMB's per-variable norms sum over blocks in a fixed order: the thread
    count does not change a bit, on either path, and kernel == fallback."""
    one, two = thread_runs
    for dtype in ("float32", "float64"):
        for impl in ("kernel", "tf"):
            assert one[f"lamb-norms/{dtype}/{impl}"] == two[f"lamb-norms/{dtype}/{impl}"], \
                (dtype, impl)
        assert one[f"lamb-norms/{dtype}/kernel"] == one[f"lamb-norms/{dtype}/tf"], dtype


ELEMENTWISE = sorted(name for name in CASES if name != "Lamb")
CUTS = (0, 1, 7, 509, 512, 515, 1024, 1031, 1500)  # piece boundaries, in elements
# For rules that round by the variable's size (kernel_cases.Case.size_dependent:
# AdamW, ScheduleFree), a piece of one element is a one-element variable to
# the binding, which the ops never make of a larger variable (its rule is
# built for the whole variable, then split): those pieces hold >= 2 elements.
CUTS_OF_TWO_OR_MORE = tuple(c for c in CUTS if c != 1)


def hyperparameters(case):
    """Mid-range values, every choice its last (momentum, amsgrad, centered on)."""
    return {k: v[-1] if isinstance(v, list) else (v[0] + v[1]) / 2
            for k, v in case.hyperparameters.items()}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_split_into_pieces_gives_the_bits_of_one_pass(name, dtype):
    case = CASES[name]
    hp = hyperparameters(case)
    rng = np.random.default_rng(1)
    cuts = CUTS_OF_TWO_OR_MORE if case.size_dependent else CUTS
    n = cuts[-1]
    storage = np_dtype(dtype)
    w = rng.standard_normal(n).astype(storage)
    slots = [np.abs(rng.standard_normal(n)).astype(storage) for _ in case.slots(hp)]
    whole_w, whole_slots = w.copy(), [s.copy() for s in slots]
    parts_w, parts_slots = w.copy(), [s.copy() for s in slots]
    for step in (1, 2, 3):
        g = rng.standard_normal(n).astype(storage)
        case.kernel(whole_w, g, whole_slots, hp, step)
        for a, b in zip(cuts[:-1], cuts[1:]):
            case.kernel(parts_w[a:b], g[a:b], [s[a:b] for s in parts_slots], hp, step)
    assert_bit_identical(parts_w, whole_w, f"{name} {dtype} weight")
    for i, (a, b) in enumerate(zip(parts_slots, whole_slots)):
        assert_bit_identical(a, b, f"{name} {dtype} slot {i}")
    assert np.any(whole_w != w), "the rule did nothing"
