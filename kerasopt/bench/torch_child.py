"""The torch columns of ``python -m kerasopt.bench``, timed in a child process.

Why a child: torch's OpenMP threads keep spinning for a while after each
torch step, on the cores TensorFlow's thread pool wants next. With torch's
steps taking turns in the same process, the triad measured on the 2-core
machine fell from 32 to 19 GB/s and the TensorFlow columns slowed with it;
making torch's threads wait passively instead (OMP_WAIT_POLICY=PASSIVE) more
than doubled torch's own 1000-tensor step. So each framework is timed alone:
the parent never imports torch, and this script never imports TensorFlow (it
is run by path, not as part of the ``kerasopt`` package, whose ``__init__``
loads TensorFlow).

The child rebuilds the case from the seed with ``case_arrays``, as
``kerasopt.bench.steps.run_case`` does, times its modes (foreach, fused) taking turns
(``turns``, as the parent's columns do), and
writes the times and the final weights for the parent's "same work" check.

Protocol: ``python torch_child.py REQUEST.json RESULT_DIR``. The request holds
``optimizer`` (a ``torch.optim`` class name), ``hyperparameters``, ``sizes``,
``seed``, ``modes`` ({column key: keyword arguments such as ``{"fused": true}``}),
``warmup``, ``repeats`` and ``steps_per_call`` (optimizer steps per timed call,
as the parent's columns make; the time recorded is per step). RESULT_DIR receives ``result.json``
({column key: {"first_call_s", "times_ms", "error"}}) and, per column that
ran, ``<key>.npz`` with the weights after the last step.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback

import numpy as np


# These two are shared with bench.run_case, so both processes time the same
# work in the same way (this module imports nothing but NumPy).
def case_arrays(sizes, seed):
    """The case's initial weights and gradients (float32, standard normal)."""
    rng = np.random.default_rng(seed)
    initial = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
    gradients = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
    return initial, gradients


def turns(keys, repeats):
    """The timed calls: `repeats` rounds of every key once, the order rotating
    by one each round, so that slow drifts of the machine hit all alike."""
    for r in range(repeats):
        shift = r % len(keys) if keys else 0
        yield from keys[shift:] + keys[:shift]


def run(request: dict, result_dir: str) -> dict:
    import torch

    initial, gradients = case_arrays(request["sizes"], request["seed"])
    optimizer_class = getattr(torch.optim, request["optimizer"])
    hyperparameters = dict(request["hyperparameters"])
    if "betas" in hyperparameters:  # a list after JSON; torch documents a tuple
        hyperparameters["betas"] = tuple(hyperparameters["betas"])
    steps_per_call = request.get("steps_per_call", 1)

    def call(optimizer):
        """One timed call: steps_per_call steps (synchronous on the CPU)."""
        for _ in range(steps_per_call):
            optimizer.step()

    results, runners = {}, {}
    for key, mode in request["modes"].items():
        results[key] = {"first_call_s": None, "times_ms": [], "error": None}
        try:
            params = [torch.tensor(w, requires_grad=True) for w in initial]
            for p, g in zip(params, gradients):
                p.grad = torch.from_numpy(g.copy())
            optimizer = optimizer_class(params, **hyperparameters, **mode)
            start = time.perf_counter()
            call(optimizer)
            results[key]["first_call_s"] = time.perf_counter() - start
            for _ in range(max(request["warmup"] - 1, 0)):
                call(optimizer)
            runners[key] = (optimizer, params)
        except Exception as e:  # e.g. no fused kernel for this optimizer
            results[key]["error"] = f"{type(e).__name__}: {e}".splitlines()[0]

    gc.collect()
    gc.disable()
    try:
        for key in turns(list(runners), request["repeats"]):
            optimizer, _ = runners[key]
            start = time.perf_counter()
            call(optimizer)
            results[key]["times_ms"].append(
                (time.perf_counter() - start) * 1e3 / steps_per_call)
    finally:
        gc.enable()

    for key, (_, params) in runners.items():
        np.savez(os.path.join(result_dir, f"{key}.npz"),
                 *[p.detach().numpy() for p in params])
    with open(os.path.join(result_dir, "result.json"), "w") as f:
        json.dump(results, f)
    return results


def main(argv) -> int:
    if len(argv) != 2:
        print("usage: python torch_child.py REQUEST.json RESULT_DIR", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        request = json.load(f)
    try:
        run(request, argv[1])
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
