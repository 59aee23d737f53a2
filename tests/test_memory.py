"""No leaks: 4,000 training steps keep resident memory flat.

A fresh interpreter runs one traced step that updates one variable per
optimizer (every optimizer, kernel path), warms up, then measures its
resident set size (VmRSS) before and after 4,000 more steps; then likewise
4,000 rounds of calls of every pybind11 kernel. A leak of even one small buffer per
step (~4 KiB) would grow the process by ~16 MiB, and any leak over about 1 KiB a
step passes the bound of a few MiB, what allocator caches and Python's own
arenas may still settle into. (It ran 10,000 steps until the suite outgrew
CI's time: this one test took over two minutes on the loaded machine.)
Measured (2-core machine, shared): +0.07 MiB over the 10,000 training steps
(then 11 optimizers; every class in kerasopt.optimizers.ALL is stepped, 18
now), +0.00 MiB over the 10,000 rounds of pybind calls.
"""

from __future__ import annotations

import os
import textwrap

import isolated
from conftest import require_kernel_library
from optimizer_table import OPTIMIZERS

STEPS = 4_000
WARMUP = 500
BOUND_MIB = 4.0

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf, keras, kerasopt

    def rss_mib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0

    steps = int(sys.argv[2])
    optimizers = [getattr(kerasopt, name)() for name in sys.argv[1].split(",")]
    variables = [keras.Variable(np.linspace(-1, 1, 1000).astype(np.float32)) for _ in optimizers]
    gradient = tf.constant(np.linspace(0.5, -0.5, 1000).astype(np.float32))

    @tf.function
    def step():
        for optimizer, variable in zip(optimizers, variables):
            optimizer.apply_gradients([(gradient, variable)])

    with kerasopt.implementation("kernel"):
        for _ in range(int(sys.argv[4])):
            step()
        before = rss_mib()
        for _ in range(steps):
            step()
        after = rss_mib()
    out = dict(graph_before=before, graph_after=after,
               iterations=int(optimizers[0].iterations.numpy()))

    # The pybind11 kernels: every rule, 10,000 calls each.
    sys.path.insert(0, sys.argv[3])  # tests/, for the kernel table
    from kernel_cases import CASES
    problems = []
    for name, case in sorted(CASES.items()):
        hp = {k: v[-1] if isinstance(v, list) else (v[0] + v[1]) / 2
              for k, v in case.hyperparameters.items()}
        w = np.linspace(-1, 1, 1000).astype(np.float32)
        slots = [np.full(1000, 0.1, np.float32) for _ in case.slots(hp)]
        problems.append((case, w, slots, hp))
    g = np.linspace(0.5, -0.5, 1000).astype(np.float32)

    def run(count):
        for i in range(count):
            for case, w, slots, hp in problems:
                case.kernel(w, g, slots, hp, i % 50 + 1)

    run(int(sys.argv[4]))
    out["pybind_before"] = rss_mib()
    run(steps)
    out["pybind_after"] = rss_mib()
    print(json.dumps(out))
""")

def test_steps_keep_memory_flat(tmp_path):
    require_kernel_library()
    names = ",".join(cls.__name__ for cls in OPTIMIZERS)
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    result = isolated.run(SCRIPT, names, STEPS, tests_dir, WARMUP, cwd=tmp_path, timeout=400)
    assert result["iterations"] == WARMUP + STEPS
    assert result["graph_after"] - result["graph_before"] < BOUND_MIB, result
    assert result["pybind_after"] - result["pybind_before"] < BOUND_MIB, result
